//! Servers on loopback, for the servers' tests (feature `hostile`, enabled
//! only by the test builds): a free port for each server, and readiness as a
//! real answer (a 200 from a health route), not a port that accepts.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// A port nothing listens on now, chosen by the system; never the same twice in
/// this process, so tests running side by side (or one test's several servers)
/// do not share one.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("binding 127.0.0.1:0")
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The status line of `GET path` on `port`, asked over a connection of its own.
pub fn status_line(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    s.set_write_timeout(Some(Duration::from_secs(2)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut buf)? {
            0 => break,
            n => answer.extend_from_slice(&buf[..n]),
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    Ok(answer.lines().next().unwrap_or("").to_string())
}

/// Waits (20 s at most) until `what` on `port` answers `GET path` with 200; fails
/// at once if its process has exited.
pub fn wait_ready(what: &str, child: &mut Child, port: u16, path: &str, log: Option<&Path>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let last = match status_line(port, path) {
            Ok(line) if line.starts_with("HTTP/1.1 200") => None,
            Ok(line) if line.is_empty() => Some("closed without an answer".to_string()),
            Ok(line) => Some(format!("answered {line:?}")),
            Err(e) => Some(format!("error: {e}")),
        };
        if let Some(exit) = child.try_wait().expect("try_wait") {
            let log = log.map_or(String::new(), |l| format!("; its stderr: {}", l.display()));
            panic!("{what} on 127.0.0.1:{port} exited ({exit}) before it was ready{log}");
        }
        let Some(last) = last else { return };
        assert!(
            Instant::now() < deadline,
            "{what} on 127.0.0.1:{port} not ready after 20 s: GET {path} last {last}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
