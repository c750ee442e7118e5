//! GS1's `dl_normaliser`: EPC URIs and GS1 Digital Links to the canonical Digital Link
//! on id.gs1.org, or None. Its regular expressions are kept as they are written,
//! including `\d` matching any Unicode decimal digit and `.` in `id.gs1.org` matching
//! any character; indices count characters, as Python's do.

/// The canonical Digital Link of an EPC URI or a GS1 Digital Link, if the reference
/// finds one.
#[cfg(test)]
pub fn normalise(uri: &str) -> Option<String> {
    let mut link = String::new();
    normalise_into(&mut link, uri).then_some(link)
}

/// As `normalise`, writing the link to `out`; false (and nothing written) if none.
pub fn normalise_into(out: &mut String, uri: &str) -> bool {
    // The reference looks for a `.` first; an EPC URI has one after its company
    // prefix, and a Digital Link starts with `http`.
    if uri.starts_with("urn:") {
        epc_uri(out, uri)
    } else if uri.starts_with("http") && uri.bytes().any(|c| c == b'.') {
        match digital_link(uri) {
            Some(link) => {
                out.push_str(&link);
                true
            }
            None => false,
        }
    } else {
        false
    }
}

/// A piece of an EPC URI after the company prefix and its dot. `k` below is the
/// company prefix's length (6 to 12 digits).
#[derive(Clone, Copy)]
enum Tok {
    Dot,
    Star,
    /// The `n - k` digits that complete an `n`-digit key.
    Rest(usize),
    /// As `Rest`, but where the reference's pattern for a 12-digit company prefix
    /// is `\d{12}\.\.`: a dot instead of no digits.
    RestOrDot(usize),
    /// `min..=max` digits.
    Digits(usize, usize),
    /// 1 to `n` URI characters of GS1's AI 82 set (`%xx` counting as one).
    Chars(usize),
    /// 1 to `n - k` of them.
    CharsLeft(usize),
    /// 1 to `30 - k` characters of the CPI set.
    CpiChars,
}
use Tok::*;

/// An EPC URI matched against its scheme: characters, prefix length, company prefix
/// length `k` and the index `p` of the first dot.
struct Urn<'a> {
    c: &'a [char],
    /// The URI when it is ASCII: then its bytes are its characters.
    ascii: Option<&'a str>,
    plen: usize,
    k: usize,
    p: usize,
}

struct Scheme {
    prefix: &'static str,
    pattern: &'static [Tok],
    /// Writes the Digital Link path after `https://id.gs1.org/`.
    path: fn(&Urn, &mut String),
}

#[rustfmt::skip]
const SCHEMES: &[Scheme] = &[
    Scheme { prefix: "urn:epc:id:sgtin:", pattern: &[Rest(13), Dot, Chars(20)],
             path: |u, o| { o.push_str("01/"); u.gtin(o); o.push_str("/21/"); u.enc_from(32, o) } },
    Scheme { prefix: "urn:epc:id:sscc:", pattern: &[Rest(17)],
             path: |u, o| u.keyed(o, "00/", |o| { u.s(o, u.p + 1, u.p + 2); u.cp(o); u.from(o, u.p + 2) }) },
    Scheme { prefix: "urn:epc:id:sgln:", pattern: &[Rest(12), Dot, Chars(20)],
             path: |u, o| {
                 u.keyed(o, "414/", |o| { u.cp(o); u.rest(o, 12) });
                 if !u.tail_is(30, "0") {
                     o.push_str("/254/");
                     u.enc_from(30, o);
                 }
             } },
    Scheme { prefix: "urn:epc:id:grai:", pattern: &[RestOrDot(12), Dot, Chars(16)],
             path: |u, o| { u.keyed(o, "8003/", |o| { o.push('0'); u.cp(o); u.rest(o, 12) }); u.enc_from(30, o) } },
    Scheme { prefix: "urn:epc:id:giai:", pattern: &[CharsLeft(30)],
             path: |u, o| { o.push_str("8004/"); u.cp(o); u.enc_from(u.p + 1, o) } },
    Scheme { prefix: "urn:epc:id:gsrn:", pattern: &[Rest(17)],
             path: |u, o| u.keyed(o, "8018/", |o| { u.cp(o); u.from(o, u.p + 1) }) },
    Scheme { prefix: "urn:epc:id:gsrnp:", pattern: &[Rest(17)],
             path: |u, o| u.keyed(o, "8017/", |o| { u.cp(o); u.from(o, u.p + 1) }) },
    Scheme { prefix: "urn:epc:id:gdti:", pattern: &[RestOrDot(12), Chars(20)],
             path: |u, o| { u.keyed(o, "253/", |o| { u.cp(o); u.rest(o, 12) }); u.enc_from(30, o) } },
    Scheme { prefix: "urn:epc:id:cpi:", pattern: &[CpiChars, Dot, Digits(1, 12)],
             path: |u, o| { o.push_str("8010/"); u.cpi(o); o.push_str("/8011/"); u.from(o, u.last_dot() + 1) } },
    Scheme { prefix: "urn:epc:id:sgcn:", pattern: &[Rest(12), Dot, Digits(1, 12)],
             path: |u, o| { u.keyed(o, "255/", |o| { u.cp(o); u.rest(o, 12) }); u.from(o, 30) } },
    Scheme { prefix: "urn:epc:id:ginc:", pattern: &[CharsLeft(30)],
             path: |u, o| { o.push_str("401/"); u.cp(o); u.enc_from(u.p + 1, o) } },
    Scheme { prefix: "urn:epc:id:gsin:", pattern: &[Rest(16)],
             path: |u, o| u.keyed(o, "402/", |o| { u.cp(o); u.from(o, u.p + 1) }) },
    Scheme { prefix: "urn:epc:id:itip:",
             pattern: &[Rest(13), Dot, Digits(2, 2), Dot, Digits(2, 2), Dot, Chars(20)],
             path: |u, o| {
                 o.push_str("8006/"); u.gtin(o); u.s(o, 31, 33); u.s(o, 34, 36);
                 o.push_str("/21/"); u.enc_from(37, o)
             } },
    Scheme { prefix: "urn:epc:id:upui:", pattern: &[Rest(13), Dot, Chars(28)],
             path: |u, o| { o.push_str("01/"); u.gtin(o); o.push_str("/235/"); u.enc_from(31, o) } },
    Scheme { prefix: "urn:epc:id:pgln:", pattern: &[Rest(12)],
             path: |u, o| u.keyed(o, "417/", |o| { u.cp(o); u.rest(o, 12) }) },
    Scheme { prefix: "urn:epc:class:lgtin:", pattern: &[Rest(13), Dot, Chars(20)],
             path: |u, o| { o.push_str("01/"); u.gtin(o); o.push_str("/10/"); u.enc_from(35, o) } },
    Scheme { prefix: "urn:epc:idpat:sgtin:", pattern: &[Rest(13), Dot, Star],
             path: |u, o| { o.push_str("01/"); u.gtin(o) } },
    Scheme { prefix: "urn:epc:idpat:grai:", pattern: &[RestOrDot(12), Dot, Star],
             path: |u, o| u.keyed(o, "8003/", |o| { o.push('0'); u.cp(o); u.rest(o, 12) }) },
    Scheme { prefix: "urn:epc:idpat:gdti:", pattern: &[RestOrDot(12), Dot, Star],
             path: |u, o| u.keyed(o, "253/", |o| { u.cp(o); u.rest(o, 12) }) },
    Scheme { prefix: "urn:epc:idpat:sgcn:", pattern: &[RestOrDot(12), Dot, Star],
             path: |u, o| u.keyed(o, "255/", |o| { u.cp(o); u.rest(o, 12) }) },
    Scheme { prefix: "urn:epc:idpat:cpi:", pattern: &[CpiChars, Dot, Star],
             path: |u, o| { o.push_str("8010/"); u.cpi(o) } },
    Scheme { prefix: "urn:epc:idpat:itip:",
             pattern: &[Rest(13), Dot, Digits(2, 2), Dot, Digits(2, 2), Dot, Star],
             path: |u, o| { o.push_str("8006/"); u.gtin(o); u.s(o, 34, 36); u.s(o, 37, 39) } },
    Scheme { prefix: "urn:epc:idpat:upui:", pattern: &[Rest(13), Dot, Star],
             path: |u, o| { o.push_str("01/"); u.gtin(o) } },
];

fn epc_uri(out: &mut String, uri: &str) -> bool {
    // The prefixes are ASCII: as many characters as bytes.
    let Some(scheme) = SCHEMES.iter().find(|s| uri.starts_with(s.prefix)) else {
        return false;
    };
    let plen = scheme.prefix.len();
    let after = &uri[plen..];
    let k = after.chars().take_while(|&ch| is_digit(ch)).count();
    if !(6..=12).contains(&k) || after.chars().nth(k) != Some('.') {
        return false;
    }
    // The characters, on the stack when there are few.
    let mut few = ['\0'; 64];
    let many: Vec<char>;
    let chars: &[char] = if uri.len() <= few.len() {
        let mut n = 0;
        for (slot, ch) in few.iter_mut().zip(uri.chars()) {
            *slot = ch;
            n += 1;
        }
        &few[..n]
    } else {
        many = uri.chars().collect();
        &many
    };
    let u = Urn {
        c: chars,
        ascii: uri.is_ascii().then_some(uri),
        plen,
        k,
        p: plen + k,
    };
    if !u.matches(scheme.pattern) {
        return false;
    }
    out.push_str("https://id.gs1.org/");
    (scheme.path)(&u, out);
    true
}

impl Urn<'_> {
    fn matches(&self, pattern: &[Tok]) -> bool {
        let c = self.c;
        let mut i = self.p + 1;
        for &tok in pattern {
            let rest = c.get(i..).unwrap_or(&[]);
            let one = |want: char| (rest.first() == Some(&want)).then_some(1);
            let digits = rest.iter().take_while(|&&ch| is_digit(ch)).count();
            let taken = match tok {
                Dot => one('.'),
                Star => one('*'),
                RestOrDot(n) if self.k == n => one('.'),
                Rest(n) | RestOrDot(n) => Some(n - self.k).filter(|&want| digits >= want),
                Digits(min, max) => Some(digits).filter(|n| (min..=max).contains(n)),
                Chars(max) => units(rest, ai82_unit, max),
                CharsLeft(n) => units(rest, ai82_unit, n - self.k),
                CpiChars => units(rest, cpi_unit, 30 - self.k),
            };
            match taken {
                Some(n) => i += n,
                None => return false,
            }
        }
        at_end(c.get(i..).unwrap_or(&[]))
    }

    /// Python's `uri[a:b]`: the character indices it takes.
    fn range(&self, a: usize, b: usize) -> (usize, usize) {
        let b = b.min(self.c.len());
        (a.min(b), b)
    }
    /// Writes `uri[a:b]` to `o`.
    fn s(&self, o: &mut String, a: usize, b: usize) {
        let (a, b) = self.range(a, b);
        match self.ascii {
            Some(uri) => o.push_str(uri.get(a..b).unwrap_or("")),
            None => o.extend(self.c.get(a..b).unwrap_or(&[])),
        }
    }
    /// Writes `uri[a:b]` percent-encoded to `o`.
    fn enc(&self, o: &mut String, a: usize, b: usize) {
        let (a, b) = self.range(a, b);
        match self.ascii {
            Some(uri) => percent_encode(uri.get(a..b).unwrap_or("").chars(), o),
            None => percent_encode(self.c.get(a..b).unwrap_or(&[]).iter().copied(), o),
        }
    }
    fn from(&self, o: &mut String, a: usize) {
        self.s(o, a, self.c.len())
    }
    /// Whether `uri[a:]` is `text`.
    fn tail_is(&self, a: usize, text: &str) -> bool {
        let (a, b) = self.range(a, self.c.len());
        self.c
            .get(a..b)
            .unwrap_or(&[])
            .iter()
            .copied()
            .eq(text.chars())
    }
    fn enc_from(&self, a: usize, o: &mut String) {
        self.enc(o, a, self.c.len())
    }
    fn cp(&self, o: &mut String) {
        self.s(o, self.plen, self.p)
    }
    /// The digits after the company prefix that complete an `n`-digit key.
    fn rest(&self, o: &mut String, n: usize) {
        self.s(o, self.p + 1, self.p + 1 + n - self.k)
    }
    /// GTIN-14 with its check digit: indicator, company prefix, item reference.
    fn gtin(&self, o: &mut String) {
        self.keyed(o, "", |o| {
            let (a, b) = self.range(self.p + 1, self.p + 1 + 13 - self.k);
            let one = (a + 1).min(b);
            self.s(o, a, one);
            self.cp(o);
            self.s(o, one, b);
        })
    }
    /// `ai` followed by the key `raw` writes and its check digit.
    fn keyed(&self, o: &mut String, ai: &str, raw: impl FnOnce(&mut String)) {
        o.push_str(ai);
        let start = o.len();
        raw(o);
        let check = check_digit(&o[start..]);
        o.push(check);
    }
    fn last_dot(&self) -> usize {
        self.c.iter().rposition(|&ch| ch == '.').unwrap_or(0)
    }
    fn cpi(&self, o: &mut String) {
        self.enc(o, self.plen, self.p);
        self.enc(o, self.p + 1, self.last_dot());
    }
}

/// The characters taken by 1 to `max` units (`unit` says how long each is) from the
/// start of `c`, as many as there are.
fn units(c: &[char], unit: fn(&[char]) -> usize, max: usize) -> Option<usize> {
    let (mut count, mut len) = (0, 0);
    while let Some(n) = c.get(len..).map(unit).filter(|&n| n > 0) {
        (count, len) = (count + 1, len + n);
    }
    (1..=max).contains(&count).then_some(len)
}

/// `%xx` or one character of GS1's AI encodable set 82, as EPC URIs write it.
fn ai82_unit(c: &[char]) -> usize {
    match c {
        ['%', hi, lo, ..] => {
            let ok = |set: &str| set.contains(*lo);
            let hex = "ABCDEFabcdef";
            usize::from(match hi {
                '2' => ok("1256789") || ok(hex),
                '3' => lo.is_ascii_digit() || ok(hex),
                '4' | '6' => ok("123456789") || ok(hex),
                '5' => lo.is_ascii_digit() || ok("AaFf"),
                '7' => lo.is_ascii_digit() || ok("Aa"),
                _ => false,
            }) * 3
        }
        [ch, ..] => usize::from(ch.is_ascii_alphanumeric() || "!')(*+,.:;=_-".contains(*ch)),
        [] => 0,
    }
}

/// `%xx` or one character of the CPI set.
fn cpi_unit(c: &[char]) -> usize {
    match c {
        ['%', hi, lo, ..] => {
            usize::from(match hi {
                '2' => "3dfDF".contains(*lo),
                '3' => lo.is_ascii_digit(),
                '4' => "123456789ABCDEFabcdef".contains(*lo),
                '5' => lo.is_ascii_digit() || "Aa".contains(*lo),
                _ => false,
            }) * 3
        }
        [ch, ..] => usize::from(ch.is_ascii_digit() || ch.is_ascii_uppercase() || *ch == '-'),
        [] => 0,
    }
}

/// Python's `$`: the end, or a newline that ends the string.
fn at_end(rest: &[char]) -> bool {
    matches!(rest, [] | ['\n'])
}

fn str_end(rest: &str) -> bool {
    rest.is_empty() || rest == "\n"
}

/// GS1's check digit; every character is a decimal digit when it is called.
fn check_digit(key: &str) -> char {
    let sum: u32 = key
        .chars()
        .rev()
        .enumerate()
        .map(|(i, ch)| u32::from(digit(ch).unwrap_or(0)) * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    char::from(b'0' + ((10 - sum % 10) % 10) as u8)
}

/// The characters GS1 Digital Link requires percent-encoded that EPC URIs allow.
fn percent_encode(s: impl Iterator<Item = char>, out: &mut String) {
    for ch in s {
        match ch {
            '!' => out.push_str("%21"),
            '(' => out.push_str("%28"),
            ')' => out.push_str("%29"),
            '*' => out.push_str("%2A"),
            '+' => out.push_str("%2B"),
            ',' => out.push_str("%2C"),
            ':' => out.push_str("%3A"),
            _ => out.push(ch),
        }
    }
}

/// Primary keys a Digital Link may carry, as AI or short name.
fn key(s: &str) -> bool {
    ai_key(s)
        || matches!(
            s,
            "gtin"
                | "itip"
                | "cpid"
                | "gln"
                | "party"
                | "gsrnp"
                | "gsrn"
                | "gcn"
                | "sscc"
                | "gdti"
                | "ginc"
                | "gsin"
                | "grai"
                | "giai"
        )
}

/// Primary keys as AI.
fn ai_key(s: &str) -> bool {
    matches!(
        s,
        "01" | "8006"
            | "8010"
            | "414"
            | "417"
            | "8017"
            | "8018"
            | "255"
            | "00"
            | "253"
            | "401"
            | "402"
            | "8003"
            | "8004"
    )
}
/// In the order the reference looks for them when it moves a link to id.gs1.org.
const MOVE_ORDER: &[&str] = &[
    "/00/", "/01/", "/253/", "/255/", "/401/", "/402/", "/414/", "/417/", "/8003/", "/8004/",
    "/8006/", "/8010/", "/8017/", "/8018/",
];
const SHORT_NAMES: &[(&str, &str)] = &[
    ("/gtin/", "/01/"),
    ("/itip/", "/8006/"),
    ("/cpid/", "/8010/"),
    ("/gln/", "/414/"),
    ("/party/", "/417/"),
    ("/gsrnp/", "/8017/"),
    ("/gsrn/", "/8018/"),
    ("/gcn/", "/255/"),
    ("/sscc/", "/00/"),
    ("/gdti/", "/253/"),
    ("/ginc/", "/401/"),
    ("/gsin/", "/402/"),
    ("/grai/", "/8003/"),
    ("/giai/", "/8004/"),
    ("/cpv/", "/22/"),
    ("/lot/", "/10/"),
    ("/ser/", "/21/"),
];

/// `/key/` then four digits and a character that is not `/`.
fn keyed_path(s: &str, key: fn(&str) -> bool) -> bool {
    // No key holds a `/` or is longer than 5: `/key/` starts `s` when the first
    // segment is the key.
    let Some(r) = s.strip_prefix('/') else {
        return false;
    };
    let Some(end) = r.bytes().take(6).position(|c| c == b'/') else {
        return false;
    };
    key(&r[..end])
        && digits(&r[end + 1..], 4)
            .and_then(|r| r.chars().next())
            .is_some_and(|ch| ch != '/')
}

/// What follows `https://id.gs1.org`, read as the reference's pattern reads it
/// (each `.` any character but a newline).
fn after_host(u: &str) -> Option<&str> {
    fn any(s: &str) -> Option<&str> {
        let mut c = s.chars();
        c.next().filter(|&ch| ch != '\n').map(|_| c.as_str())
    }
    let r = u.strip_prefix("https://id")?;
    let r = any(r)?.strip_prefix("gs1")?;
    any(r)?.strip_prefix("org")
}

/// Exactly `n` digits, and what follows them.
fn digits(s: &str, n: usize) -> Option<&str> {
    let mut c = s.chars();
    for _ in 0..n {
        if !c.next().is_some_and(is_digit) {
            return None;
        }
    }
    Some(c.as_str())
}

/// The longest run of `ok` characters, if it is at most `max` long.
fn run(s: &str, ok: impl Fn(char) -> bool, max: usize) -> Option<&str> {
    let n = s.chars().take_while(|&ch| ok(ch)).count();
    (n <= max).then(|| s.char_indices().nth(n).map_or("", |(i, _)| &s[i..]))
}

/// The characters the reference allows in a canonical link's values.
fn value_char(ch: char) -> bool {
    matches!(ch, '"' | '\'' | '-' | '.' | '0'..='9' | ';'..='?' | 'A'..='Z' | '_' | 'a'..='z')
}

fn value_to_end(s: &str, max: usize) -> bool {
    run(s, value_char, max).is_some_and(str_end)
}

/// `qualifier` then a value to the end.
fn qualified(s: &str, qualifier: &str, max: usize) -> bool {
    s.strip_prefix(qualifier)
        .is_some_and(|v| value_to_end(v, max))
}

/// A Digital Link: query dropped, short names to AIs, moved to id.gs1.org, the
/// GTIN padded to 14 digits, variant and lot dropped; kept only if then canonical.
fn digital_link(uri: &str) -> Option<String> {
    let rest = uri
        .strip_prefix("https:")
        .or_else(|| uri.strip_prefix("http:"))?;
    // A keyed path has digits: ASCII, or other Unicode ones. Without any, no need to
    // look (a fold, not `any`, so that it is vectorised).
    if !rest
        .bytes()
        .fold(false, |seen, c| seen | c.is_ascii_digit() | !c.is_ascii())
    {
        return None;
    }
    // Each `/` before the query or fragment, in one pass: these strings are short,
    // `memchr` would cost more.
    let mut keyed = false;
    for (i, &c) in rest.as_bytes().iter().enumerate() {
        match c {
            b'?' | b'#' => break,
            b'/' if keyed_path(&rest[i..], key) => {
                keyed = true;
                break;
            }
            _ => {}
        }
    }
    if !keyed {
        return None;
    }
    let mut u = uri[..uri.find('?').unwrap_or(uri.len())].to_string();
    // Each replacement can only bring in a name after one was there to replace.
    if u.match_indices('/').any(|(i, _)| {
        SHORT_NAMES
            .iter()
            .any(|(short, _)| u[i..].starts_with(short))
    }) {
        for (short, ai) in SHORT_NAMES {
            u = u.replace(short, ai);
        }
    }
    if !after_host(&u).is_some_and(|r| keyed_path(r, ai_key)) {
        if let Some(i) = MOVE_ORDER.iter().find_map(|key| u.find(key)) {
            u = format!("https://id.gs1.org{}", &u[i..]);
        }
    }
    if let Some(r) = after_host(&u).and_then(|r| r.strip_prefix("/01/")) {
        let pad = match r.chars().take(14).take_while(|&ch| is_digit(ch)).count() {
            13 => "0",
            12 => "00",
            8..=11 => "000000",
            _ => "",
        };
        if !pad.is_empty() {
            u = u.replace("/01/", &format!("/01/{pad}"));
        }
    }
    drop_cpv(&mut u);
    drop_lot(&mut u);
    is_canonical(&u).then_some(u)
}

/// `/8006/` and 18 digits or `/01/` and 14, then what follows.
fn item_then(u: &str, then: impl Fn(&str) -> bool) -> bool {
    after_host(u).is_some_and(|r| {
        let gtin = |key, n| r.strip_prefix(key).and_then(|s| digits(s, n));
        gtin("/8006/", 18).is_some_and(&then) || gtin("/01/", 14).is_some_and(&then)
    })
}

/// Drops a consumer product variant (`/22/…`) after a GTIN.
fn drop_cpv(u: &mut String) {
    let Some(at) = u.find("/22/") else { return };
    let cpv = u[at + 4..].to_string();
    let cpv_to_end = |slash: bool| {
        move |s: &str| {
            s.strip_prefix("/22/")
                .and_then(|v| run(v, |c| value_char(c) || (slash && c == '/'), 20))
                .is_some_and(str_end)
        }
    };
    if item_then(u, cpv_to_end(false)) {
        u.truncate(at);
    } else if item_then(u, cpv_to_end(true)) {
        // The reference's x[x.find('/'):]: the last character when there is no `/`.
        let tail = match cpv.find('/') {
            Some(j) => cpv[j..].to_string(),
            None => cpv.chars().last().map(String::from).unwrap_or_default(),
        };
        u.truncate(at);
        u.push_str(&tail);
    }
}

/// Drops the lot (`/10/…`) of a GTIN that has a serial (`/21/…`) after it.
fn drop_lot(u: &mut String) {
    let lot_then_serial = |s: &str| {
        s.strip_prefix("/10/")
            .and_then(|v| run(v, value_char, 20))
            .is_some_and(|v| qualified(v, "/21/", 20))
    };
    if item_then(u, lot_then_serial) {
        if let Some(at) = u.find("/10/") {
            let after = u[at + 4..].to_string();
            u.truncate(at);
            u.push_str(after.find('/').map_or("", |j| &after[j..]));
        }
    }
}

/// The reference's final check that the result is a canonical link.
fn is_canonical(u: &str) -> bool {
    let Some(r) = after_host(u) else { return false };
    let key = |k: &str, n: usize| r.strip_prefix(k).and_then(|s| digits(s, n));
    key("/00/", 18).is_some_and(str_end)
        || key("/01/", 14).is_some_and(|s| {
            str_end(s)
                || qualified(s, "/21/", 20)
                || qualified(s, "/10/", 20)
                || qualified(s, "/235/", 28)
        })
        || key("/253/", 13).is_some_and(|s| value_to_end(s, 17))
        || key("/255/", 13).is_some_and(|s| run(s, is_digit, 12).is_some_and(str_end))
        || r.strip_prefix("/401/").is_some_and(|s| value_to_end(s, 30))
        || key("/402/", 17).is_some_and(str_end)
        || key("/414/", 13).is_some_and(|s| str_end(s) || qualified(s, "/254/", 20))
        || key("/417/", 13).is_some_and(str_end)
        || key("/8003/", 14).is_some_and(|s| value_to_end(s, 16))
        || r.strip_prefix("/8004/")
            .is_some_and(|s| value_to_end(s, 30))
        || key("/8006/", 18)
            .is_some_and(|s| str_end(s) || qualified(s, "/21/", 20) || qualified(s, "/10/", 20))
        || r.strip_prefix("/8010/").is_some_and(cpid)
        || key("/8017/", 18).is_some_and(str_end)
        || key("/8018/", 18).is_some_and(str_end)
}

/// A CPI, optionally `/8011/` and a serial; the CPI may itself hold `/8011/`.
fn cpid(s: &str) -> bool {
    fn ok(ch: char) -> bool {
        matches!(ch, '#' | '-' | '/' | '0'..='9' | 'A'..='Z')
    }
    run(s, ok, 30).is_some_and(str_end)
        || s.match_indices("/8011/").any(|(j, _)| {
            s[..j].chars().all(ok)
                && s[..j].chars().count() <= 30
                && run(&s[j + 6..], is_digit, 12).is_some_and(str_end)
        })
}

/// Unicode decimal digits (general category Nd) as Python 3.11 (Unicode 14.0) knows
/// them: `float()` reads them and the reference's `\d` matches them. The zero of
/// every run of ten, generated with Python 3.11:
/// `[c for c in range(0x110000) if unicodedata.category(chr(c)) == 'Nd'
///  and unicodedata.decimal(chr(c)) == 0]`.
const ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66,
    0xDE6, 0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

#[inline]
fn is_digit(c: char) -> bool {
    digit(c).is_some()
}

/// The digit's value, if `c` is a decimal digit.
#[inline]
pub fn digit(c: char) -> Option<u8> {
    if u32::from(c) < ZEROS[1] {
        return c.is_ascii_digit().then(|| c as u8 - b'0');
    }
    let c = u32::from(c);
    let zero = match ZEROS.binary_search(&c) {
        Ok(i) => ZEROS[i],
        Err(0) => return None,
        Err(i) => ZEROS[i - 1],
    };
    u8::try_from(c - zero).ok().filter(|d| *d < 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epc_uris_become_canonical_digital_links() {
        for (uri, link) in [
            // GTIN check digits: 8 0614141 12345 → 8, 0 4012345 11111 → 8.
            (
                "urn:epc:id:sgtin:0614141.812345.6789",
                "https://id.gs1.org/01/80614141123458/21/6789",
            ),
            (
                "urn:epc:id:sgtin:4012345.011111.9876",
                "https://id.gs1.org/01/04012345111118/21/9876",
            ),
            (
                "urn:epc:id:sgtin:950600013435.0.A(1)",
                "https://id.gs1.org/01/09506000134352/21/A%281%29",
            ),
            (
                "urn:epc:id:sgtin:061414.1812345.x%2Fy",
                "https://id.gs1.org/01/10614148123452/21/x%2Fy",
            ),
            (
                "urn:epc:id:sgln:0614141.00777.0",
                "https://id.gs1.org/414/0614141007776",
            ),
            (
                "urn:epc:id:sgln:0614141.00888.1",
                "https://id.gs1.org/414/0614141008889/254/1",
            ),
            (
                "urn:epc:id:sscc:0614141.1234567890",
                "https://id.gs1.org/00/106141412345678908",
            ),
            (
                "urn:epc:id:gdti:0614141.00001.1618034",
                "https://id.gs1.org/253/06141410000121618034",
            ),
            (
                "urn:epc:idpat:sgtin:4012345.011111.*",
                "https://id.gs1.org/01/04012345111118",
            ),
            // Unicode digits are digits to the reference.
            (
                "urn:epc:id:sgtin:٠٦١٤١٤١.812345.1",
                "https://id.gs1.org/01/8٠٦١٤١٤١123458/21/1",
            ),
        ] {
            assert_eq!(normalise(uri).as_deref(), Some(link), "{uri}");
        }
        for not_one in [
            "urn:epc:id:sgtin:0614141.81234.6789",  // 12 digits
            "urn:epc:id:sgtin:06141.41812345.6789", // 5-digit company prefix
            "urn:epc:id:sgtin:0614141.812345.a#b",  // `#` is not allowed
            "urn:epc:id:sgtin:0614141.812345.123456789012345678901", // 21 characters
        ] {
            assert_eq!(normalise(not_one), None, "{not_one}");
        }
    }

    #[test]
    fn digital_links_are_moved_to_id_gs1_org_and_trimmed() {
        for (uri, link) in [
            (
                "https://example.com/01/09506000134352/21/ABC123",
                "https://id.gs1.org/01/09506000134352/21/ABC123",
            ),
            (
                "https://example.com/gtin/9506000134352/ser/7?x=1",
                "https://id.gs1.org/01/09506000134352/21/7",
            ),
            (
                "https://id.gs1.org/01/09506000134352/10/LOT/21/7",
                "https://id.gs1.org/01/09506000134352/21/7",
            ),
            (
                "https://id.gs1.org/01/09506000134352/22/V1",
                "https://id.gs1.org/01/09506000134352",
            ),
            (
                "https://a.example/shop/414/0614141007776",
                "https://id.gs1.org/414/0614141007776",
            ),
        ] {
            assert_eq!(normalise(uri).as_deref(), Some(link), "{uri}");
        }
        // Not a canonical form after all: the caller keeps them as given.
        for kept in [
            "https://example.com/01/09506000134352/21/a b",
            "https://example.com/x.y",
        ] {
            assert_eq!(normalise(kept), None, "{kept}");
        }
    }

    #[test]
    fn unicode_digits() {
        assert_eq!(digit('7'), Some(7));
        assert_eq!(digit('\u{663}'), Some(3)); // ARABIC-INDIC DIGIT THREE
        assert_eq!(digit('\u{1D7FF}'), Some(9)); // MATHEMATICAL MONOSPACE DIGIT NINE
        for c in ['a', '/', '\u{2160}', '\u{B2}', '\u{65F}', '\u{10FFFF}'] {
            assert_eq!(digit(c), None, "{c:?}");
        }
    }

    #[test]
    fn check_digits() {
        for (key, d) in [
            ("0950600013435", '2'),
            ("061414112345", '2'),
            ("8061414112345", '8'),
            ("0", '0'),
        ] {
            assert_eq!(check_digit(key), d, "{key}");
        }
    }
}
