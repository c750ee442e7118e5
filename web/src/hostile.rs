//! Hostile HTTP requests for the servers' tests (feature `hostile`, enabled only
//! by the test builds): byte- and form-level mutations of valid requests, sent
//! raw over TCP, so a test can show that no request line, header, query or body
//! panics a server or gets a 500. Deterministic: a seed gives the same requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// xorshift64*: small and deterministic, so a failure reproduces from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Pieces that have broken parsers: multi-byte and invalid UTF-8, percent
/// escapes cut short, numbers past every integer, separators, control bytes.
const NASTY: &[&[u8]] = &[
    "é".as_bytes(),
    "€".as_bytes(),
    "😀".as_bytes(),
    b"\xff\xfe",
    b"\xc3",
    b"%",
    b"%zz",
    b"%c3",
    b"%00",
    b"99999999999999999999999",
    b"-1",
    b"NaN",
    b"1e999",
    b"\"",
    b"\\",
    b"{",
    b"}]",
    b"[",
    b",",
    b"&",
    b"=",
    b"?",
    b"/",
    b"..",
    b"\0",
    b"\r\n",
    b"\n",
    b" ",
    b"+00:00",
    b"T",
    b":",
];

/// One mutation of `request`: a few edits anywhere (request line, headers or
/// body), at most a few kilobytes longer than the seed.
pub fn mutate(request: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut v = request.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(v.len() + 1);
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let piece = NASTY[rng.below(NASTY.len())];
                v.splice(at..at, piece.iter().copied());
            }
            2 if at < v.len() => {
                let end = (at + 1 + rng.below(16)).min(v.len());
                v.drain(at..end);
            }
            3 if at < v.len() => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                let span = v[at..end].to_vec();
                let times = 1 + rng.below(40);
                for _ in 0..times {
                    v.splice(at..at, span.iter().copied());
                }
            }
            4 => v.truncate(at),
            5 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] = rng.next_u64() as u8;
            }
            _ => {
                let piece = NASTY[rng.below(NASTY.len())];
                let end = (at + rng.below(8)).min(v.len());
                v.splice(at..end, piece.iter().copied());
            }
        }
    }
    v
}

/// A raw request as a client would send it; `Content-Length` matches `body`.
pub fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// What the server made of a raw request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The status code of the first response line.
    Status(u16),
    /// The connection closed (or timed out) without a response line: what a
    /// server does with a request it cannot parse, and what a panic looks like.
    Nothing,
}

/// Sends `request` on a new connection and reads the answer. The connection
/// is not half-closed (hyper drops a request whose client half-closed): a
/// request cut short waits for the server's header deadline, so give the
/// server a short one.
pub fn send(port: u16, request: &[u8], timeout: Duration) -> std::io::Result<Answer> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    // A server may answer and close before reading everything: not a failure.
    let _ = s.write_all(request);
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while head.len() < 64 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    Ok(line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .map_or(Answer::Nothing, Answer::Status))
}

/// Sends `count` mutations of `seeds` (in turn) from `threads` clients at once
/// and returns each request with the server's answer and how long it took, in order.
pub fn barrage(
    port: u16,
    seeds: &[Vec<u8>],
    count: usize,
    seed: u64,
    threads: usize,
) -> Vec<(Vec<u8>, Answer, Duration)> {
    let mut rng = Rng::new(seed);
    let requests: Vec<Vec<u8>> = (0..count)
        .map(|i| mutate(&seeds[i % seeds.len()], &mut rng))
        .collect();
    let threads = threads.max(1);
    let mut answers: Vec<Option<(Answer, Duration)>> = vec![None; count];
    std::thread::scope(|scope| {
        let chunks: Vec<_> = answers
            .chunks_mut(count.div_ceil(threads).max(1))
            .enumerate()
            .map(|(k, out)| {
                let requests = &requests;
                scope.spawn(move || {
                    let start = k * count.div_ceil(threads).max(1);
                    for (j, slot) in out.iter_mut().enumerate() {
                        let started = std::time::Instant::now();
                        let answer = send(port, &requests[start + j], Duration::from_secs(5))
                            .unwrap_or(Answer::Nothing);
                        *slot = Some((answer, started.elapsed()));
                    }
                })
            })
            .collect();
        for c in chunks {
            c.join().expect("a client thread");
        }
    });
    requests
        .into_iter()
        .zip(answers)
        .map(|(r, a)| {
            let (answer, took) = a.expect("every request sent");
            (r, answer, took)
        })
        .collect()
}

/// The answers of a barrage, by status, and how many connections closed
/// without one.
#[derive(Debug, Default)]
pub struct Tally {
    pub statuses: std::collections::BTreeMap<u16, usize>,
    pub closed: usize,
}

impl Tally {
    /// Counts `answers`; Err names the first request answered with a status
    /// `allowed` refuses.
    pub fn of(
        answers: &[(Vec<u8>, Answer, Duration)],
        allowed: impl Fn(u16) -> bool,
    ) -> Result<Tally, String> {
        let mut t = Tally::default();
        for (req, answer, _) in answers {
            match answer {
                Answer::Status(s) if !allowed(*s) => {
                    return Err(format!("{s} for {:?}", String::from_utf8_lossy(req)))
                }
                Answer::Status(s) => *t.statuses.entry(*s).or_insert(0) += 1,
                Answer::Nothing => t.closed += 1,
            }
        }
        Ok(t)
    }

    pub fn answered(&self) -> usize {
        self.statuses.values().sum()
    }
}

/// After a barrage: the server still answers `/healthz` with 200, and its log
/// (`log`, its standard error) holds no panic.
pub fn still_serving(port: u16, log: &std::path::Path) -> Result<(), String> {
    let health = send(
        port,
        &request("GET", "/healthz", &[], b""),
        Duration::from_secs(5),
    )
    .map_err(|e| format!("connecting after the barrage: {e}"))?;
    if health != Answer::Status(200) {
        return Err(format!("/healthz answered {health:?} after the barrage"));
    }
    let said = std::fs::read_to_string(log).map_err(|e| format!("{}: {e}", log.display()))?;
    if said.contains("panicked") {
        return Err(format!("the server panicked: {said}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_deterministic_and_differ_from_the_seed() {
        let seed = request("GET", "/v1/items/x/trail?limit=3", &[], b"");
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        let (ma, mb): (Vec<_>, Vec<_>) = (0..200)
            .map(|_| (mutate(&seed, &mut a), mutate(&seed, &mut b)))
            .unzip();
        assert_eq!(ma, mb);
        assert!(ma.iter().filter(|m| **m != seed).count() > 150);
        // At most four edits, each at most 40 copies of 64 bytes.
        assert!(ma
            .iter()
            .all(|m| m.len() <= seed.len() + 4 * 64 * 40 + 4 * 32));
    }
}
