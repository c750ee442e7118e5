//! The GS1 CBV 2.0 event hash ID of a scan event (`ni:///sha-256;<hex>?ver=CBV2.0`),
//! computed exactly as GS1's reference implementation (PyPI
//! `epcis-event-hash-generator` 1.9.3) computes it for the EPCIS 2.0 JSON-LD document
//! that `epcis::document` writes of the event alone. Partners who hash our documents
//! with GS1's tool get the same ID; `tests/event_hash_reference.rs` checks it.
//!
//! The algorithm is the CBV 2.0 one (a pre-hash string of `key=value` pieces in a
//! canonical order, identifiers in canonical GS1 Digital Link form, times in UTC with
//! milliseconds), but "exactly as the reference" means keeping its quirks, and every
//! value here may be device-chosen, so each quirk is reachable:
//! - bare JSON strings that end a CBV or GS1 Web Vocabulary URI found anywhere in the
//!   document are replaced by that URI, whatever field they are in (a transaction id
//!   `shipping` becomes `https://ref.gs1.org/cbv/BizStep-shipping` when the event ships);
//! - every value Python's `float()` reads is rewritten as Python prints the number
//!   (`007` is `7`, `1_0` is `10`, a 20-digit customs declaration number becomes the
//!   nearest double's digits), except NaN (kept) and infinities (the reference then
//!   drops the event: no hash; here the text is kept);
//! - every value that parses as an EPC URI or GS1 Digital Link is replaced by its
//!   canonical Digital Link, with the reference's own patterns (Unicode digits and all);
//! - `bizTransactionList` is not where the CBV order puts it: it goes with the user
//!   extensions at the end, and each transaction is `bizTransaction=…type=…`, in the
//!   order its JSON keys come.
//!
//! The replacement of bare strings looks at the whole document, so in a document of
//! several events an event's hash can depend on the others; ours is the hash of the
//! event in a document of its own. The reference gives the same in a larger document
//! unless another event there brings in a vocabulary URI that one of this event's
//! strings ends (a transaction id `shipping` next to an event that ships).
//!
//! Where this still differs from the reference: event times outside the years 1 to
//! 9999 (we accept 2000 to 2100), values Python reads as infinite (the reference gives
//! no hash), and identifiers with white space that start with a scheme and no `//`
//! (pyld resolves them as relative IRIs).

use std::borrow::Cow;
use std::ops::Range;

use sha2::{Digest, Sha256};

use crate::epcis::{self, GS1_VOC, NAMESPACE};
use crate::event::ScanEvent;
use crate::time::{format_rfc3339, parse_rfc3339};

mod digital_link;
pub mod json;

/// The CBV 2.0 event hash ID.
pub fn event_hash(e: &ScanEvent) -> String {
    HashId::of(e).to_string()
}

/// The hash ID of a pre-hash string: `ni:///sha-256;<hex>?ver=CBV2.0`.
fn hash_id(pre_hash: &str) -> String {
    HashId(Sha256::digest(pre_hash.as_bytes()).into()).to_string()
}

/// A GS1 event hash ID held as its SHA-256 digest: 32 bytes inline, where
/// its text takes 89 and an allocation. The sealer holds one for every event
/// of the epochs in flight, and writes the text from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashId(pub [u8; 32]);

const HASH_PREFIX: &str = "ni:///sha-256;";
const HASH_SUFFIX: &str = "?ver=CBV2.0";
const HASH_TEXT_LEN: usize = 89;

impl HashId {
    /// A scan event's. Its pre-hash string is written into a buffer of the
    /// thread's, kept: the gate's threads hash every event, and a kilobyte
    /// allocated and freed per event there, between the events they decode
    /// (which live on), grew the sealer's heap by hundreds of MB.
    pub fn of(e: &ScanEvent) -> HashId {
        thread_local! {
            static PRE_HASH: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(1024));
        }
        PRE_HASH.with(|buf| match buf.try_borrow_mut() {
            Ok(mut s) => {
                s.clear();
                write_pre_hash(e, &mut s);
                HashId(Sha256::digest(s.as_bytes()).into())
            }
            // Only if a hash were computed inside another on this thread.
            Err(_) => HashId(Sha256::digest(pre_hash(e).as_bytes()).into()),
        })
    }

    /// `ni:///sha-256;<64 lower-case hex digits>?ver=CBV2.0`, and nothing else.
    pub fn parse(text: &str) -> Option<HashId> {
        let hex = text.strip_prefix(HASH_PREFIX)?.strip_suffix(HASH_SUFFIX)?;
        let hex = hex.as_bytes();
        if hex.len() != 64 {
            return None;
        }
        let nibble = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        let mut digest = [0; 32];
        for (d, pair) in digest.iter_mut().zip(hex.chunks_exact(2)) {
            *d = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(HashId(digest))
    }

    /// Its text, written on the stack.
    pub fn text(&self) -> HashText {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut t = [0; HASH_TEXT_LEN];
        t[..14].copy_from_slice(HASH_PREFIX.as_bytes());
        for (i, b) in self.0.iter().enumerate() {
            t[14 + 2 * i] = HEX[usize::from(b >> 4)];
            t[15 + 2 * i] = HEX[usize::from(b & 15)];
        }
        t[78..].copy_from_slice(HASH_SUFFIX.as_bytes());
        HashText(t)
    }
}

/// A hash ID's text, without an allocation.
pub struct HashText([u8; HASH_TEXT_LEN]);

impl HashText {
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into it.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for HashId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.text().as_str())
    }
}

impl serde::Serialize for HashId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.text().as_str())
    }
}

/// The CBV 2.0 event hash ID of an EPCIS event kept whole (its JSON).
pub fn json_event_hash(event: &str) -> Option<String> {
    json::hash(event)
}

/// The string the event hash ID is the SHA-256 of.
///
/// It is written in one pass into one string: each field is appended as it comes,
/// and the siblings that are sorted are written apart first (`sorted`).
pub fn pre_hash(e: &ScanEvent) -> String {
    let mut s = String::with_capacity(1024);
    write_pre_hash(e, &mut s);
    s
}

/// Writes `pre_hash(e)` at the end of `s`.
fn write_pre_hash(e: &ScanEvent, s: &mut String) {
    let reports = epcis::sensor_reports(e);
    let d = Document::of(e, &reports);
    s.push_str("eventType=");
    s.push_str(d.bare("ObjectEvent"));
    match quick_time(e.event_time, &e.event_timezone_offset) {
        Some(time) => {
            let raw = d.value(&time);
            if raw == time.as_str() {
                // Text of our own that `parse_rfc3339` reads back as the instant.
                s.push_str("eventTime=");
                push_time(s, e.event_time, "");
            } else {
                d.leaf(s, "eventTime", &time, true);
            }
        }
        None => {
            let time = format_rfc3339(e.event_time, &e.event_timezone_offset);
            d.leaf(s, "eventTime", &time, true);
        }
    }
    d.leaf(s, "eventTimeZoneOffset", &e.event_timezone_offset, false);
    node(s, "epcList", |s| {
        sorted(s, e.item_ids.len(), |i, s| {
            d.leaf(s, "epc", &e.item_ids[i], false)
        })
    });
    d.leaf(s, "action", e.action.as_str(), false);
    d.leaf(s, "bizStep", epcis::biz_step(e.biz_step), false);
    d.leaf(s, "disposition", epcis::disposition(e.disposition), false);
    node(s, "readPoint", |s| d.leaf(s, "id", &e.read_point, false));
    node(s, "bizLocation", |s| {
        d.leaf(s, "id", &e.biz_location, false)
    });
    node(s, "sensorElementList", |s| {
        node(s, "sensorElement", |s| {
            sorted(s, reports.len(), |i, s| {
                let (kind, v, uom) = reports[i];
                node(s, "sensorReport", |s| {
                    d.leaf(s, "type", kind, false);
                    // The reference reads a JSON number as a Python float and prints
                    // it back (`py_repr`); as any value, that text is then read as a
                    // number, `v` again, and printed as numbers are.
                    s.push_str("value=");
                    push_py_number(s, v);
                    d.leaf(s, "uom", uom, false);
                })
            })
        })
    });

    // The rest, sorted as wholes: the reference never matches its own entry for
    // bizTransactionList, so the list lands here with the extensions.
    let txs = &e.biz_transactions;
    let skip = usize::from(txs.is_empty());
    sorted(s, 3 - skip, |i, s| match i + skip {
        0 => {
            s.push_str("bizTransactionList");
            sorted(s, txs.len(), |j, s| {
                let t = &txs[j];
                d.loose_leaf(s, &["bizTransaction"], &t.id);
                d.loose_leaf(s, &["type"], epcis::biz_transaction_type(t.kind));
            })
        }
        1 => d.loose_leaf(s, &["{", &d.st, "}country"], &e.country),
        _ => d.loose_leaf(s, &["{", &d.st, "}deviceID"], &e.device_id),
    });
}

/// What the reference knows of the document before it builds the pre-hash string.
struct Document<'a> {
    /// The CBV and GS1 Web Vocabulary URIs in the JSON-LD expansion of the document:
    /// what bare strings are matched against.
    vocabulary: Vec<Cow<'a, str>>,
    /// The `@context` prefixes, their IRIs after the bare-string replacement; the
    /// values' prefixes expand to them without braces.
    st: Cow<'a, str>,
    gs1_iri: Cow<'a, str>,
    st_iri: Cow<'a, str>,
}

impl<'a> Document<'a> {
    fn of(e: &'a ScanEvent, reports: &[(&'static str, f64, &'static str)]) -> Document<'a> {
        // Only the values that expand to a vocabulary URI are kept.
        let mut vocabulary: Vec<Cow<'a, str>> = Vec::new();
        let mut add = |v: Cow<'a, str>| {
            if is_vocabulary(&v) {
                vocabulary.push(v);
            }
        };
        let vocab = |v: &'static str, kind: &str| match v.contains(':') {
            false => Cow::Owned(format!("https://ref.gs1.org/cbv/{kind}-{v}")),
            true => Cow::Borrowed(v),
        };
        add(vocab(epcis::biz_step(e.biz_step), "BizStep"));
        add(vocab(epcis::disposition(e.disposition), "Disp"));
        for t in &e.biz_transactions {
            add(vocab(epcis::biz_transaction_type(t.kind), "BTT"));
            add(expand_iri(&t.id));
        }
        for &(kind, _, uom) in reports {
            add(expand_iri(kind));
            add(Cow::Borrowed(uom));
        }
        for i in &e.item_ids {
            add(expand_iri(i));
        }
        add(expand_iri(&e.read_point));
        add(expand_iri(&e.biz_location));
        // Literals are kept as they are, and collected all the same. The event
        // time's text never is one (it starts with a digit or a sign).
        add(Cow::Borrowed(&e.event_timezone_offset));
        add(Cow::Borrowed(&e.country));
        add(Cow::Borrowed(&e.device_id));
        vocabulary.sort_unstable();
        vocabulary.dedup();
        let mut d = Document {
            vocabulary,
            st: Cow::Borrowed(NAMESPACE),
            gs1_iri: Cow::Borrowed(GS1_VOC),
            st_iri: Cow::Borrowed(NAMESPACE),
        };
        let no_braces = |v: &str| -> Cow<'a, str> { Cow::Owned(v.replace(['{', '}'], "")) };
        let (st, gs1) = (d.bare(NAMESPACE), d.bare(GS1_VOC));
        // Mostly themselves (without braces): then nothing to copy.
        let st = (st != NAMESPACE).then(|| st.to_string());
        let gs1 = (gs1 != GS1_VOC).then(|| no_braces(gs1));
        if let Some(st) = st {
            d.st_iri = no_braces(&st);
            d.st = Cow::Owned(st);
        }
        if let Some(gs1) = gs1 {
            d.gs1_iri = gs1;
        }
        d
    }

    /// The reference's bare-string replacement: a string that ends exactly one of the
    /// document's vocabulary URIs after a `-` or `/` becomes that URI.
    fn bare<'s>(&'s self, v: &'s str) -> &'s str {
        let mut hits = self.vocabulary.iter().filter(|uri| {
            uri.strip_suffix(v)
                .is_some_and(|head| head.ends_with('-') || head.ends_with('/'))
        });
        match (hits.next(), hits.next()) {
            (Some(uri), None) => uri,
            _ => v,
        }
    }

    /// A JSON string value as the reference holds it: replaced, then with a
    /// `@context` prefix (`gs1:`, `st:`) written out.
    fn value<'s>(&'s self, v: &'s str) -> Cow<'s, str> {
        let v = self.bare(v);
        if let Some(local) = v.strip_prefix("gs1:") {
            Cow::Owned(self.gs1_iri.to_string() + local)
        } else if let Some(local) = v.strip_prefix("st:") {
            Cow::Owned(self.st_iri.to_string() + local)
        } else {
            Cow::Borrowed(v)
        }
    }

    /// A field in the canonical order: `name=value`, nothing when the value is empty.
    fn leaf(&self, out: &mut String, name: &str, v: &str, time: bool) {
        let raw = self.value(v);
        if raw.is_empty() {
            return;
        }
        let text = py_strip(&raw);
        if text.is_empty() {
            return; // what `canonical` and `utc_time` make of it
        }
        out.push_str(name);
        out.push('=');
        if time {
            out.push_str(&utc_time(text));
        } else {
            canonical_into(out, text);
        }
    }

    /// A field outside the canonical order: there the name (written in pieces) stays
    /// even without a value.
    fn loose_leaf(&self, out: &mut String, name: &[&str], v: &str) {
        for piece in name {
            out.push_str(piece);
        }
        match py_strip(&self.value(v)) {
            "" => {}
            text => {
                out.push('=');
                canonical_into(out, text);
            }
        }
    }
}

/// The URIs that bare strings are matched against.
fn is_vocabulary(v: &str) -> bool {
    v.starts_with("https://ref.gs1.org/cbv") || v.starts_with(GS1_VOC_ROOT)
}

/// `https://gs1.org/voc`, the second root the reference matches bare strings under.
const GS1_VOC_ROOT: &str = "https://gs1.org/voc";

/// pyld's expansion of an identifier (`@type: @id`), as far as it can yield a
/// vocabulary URI: only the `cbv:` and `gs1:` prefixes expand to one.
fn expand_iri(v: &str) -> Cow<'_, str> {
    match (v.strip_prefix("cbv:"), v.strip_prefix("gs1:")) {
        (Some(local), _) if !local.starts_with("//") => {
            Cow::Owned(format!("https://ref.gs1.org/cbv/{local}"))
        }
        (_, Some(local)) if !local.starts_with("//") => Cow::Owned(format!("{GS1_VOC}{local}")),
        _ => Cow::Borrowed(v),
    }
}

/// A parent field: its name and what `children` write, or nothing when they write
/// nothing.
fn node(out: &mut String, name: &str, children: impl FnOnce(&mut String)) {
    let start = out.len();
    out.push_str(name);
    let inner = out.len();
    children(out);
    if out.len() == inner {
        out.truncate(start);
    }
}

/// `n` sibling fields (`part` writes the `i`th), in code point order.
fn sorted(out: &mut String, n: usize, mut part: impl FnMut(usize, &mut String)) {
    if n <= 1 {
        (0..n).for_each(|i| part(i, out));
        return;
    }
    let mut parts = String::with_capacity(128 * n);
    let mut ranges: Vec<Range<usize>> = Vec::with_capacity(n);
    for i in 0..n {
        let start = parts.len();
        part(i, &mut parts);
        ranges.push(start..parts.len());
    }
    ranges.sort_unstable_by(|a, b| parts[a.clone()].cmp(&parts[b.clone()]));
    for r in ranges {
        out.push_str(&parts[r]);
    }
}

/// The time in UTC with milliseconds, `Z`; what is not a time stays as it is.
fn utc_time(text: &str) -> Cow<'_, str> {
    match parse_rfc3339(text) {
        Ok(ms) => Cow::Owned(format_rfc3339(ms, "")),
        Err(_) => Cow::Borrowed(text),
    }
}

/// `format_rfc3339(ms, offset)` without the `time` crate, where both the instant and
/// its local time are in the years 1970 to 9999 and the offset is `±HH:MM` up to
/// 23:59 (or empty, for UTC): all accepted events. There `parse_rfc3339` reads the
/// text back as `ms`. Elsewhere None.
fn quick_time(ms: i64, offset: &str) -> Option<String> {
    offset_ms(offset)
        .and_then(|off| ms.checked_add(off))
        .filter(|local| QUICK_TIMES.contains(local) && QUICK_TIMES.contains(&ms))?;
    let mut text = String::with_capacity(29);
    push_time(&mut text, ms, offset);
    Some(text)
}

/// From 1970-01-01T00:00:00.000 to 9999-12-31T23:59:59.999.
const QUICK_TIMES: std::ops::RangeInclusive<i64> = 0..=253_402_300_799_999;

/// The milliseconds an offset `format_rfc3339` writes adds to UTC: `±HH:MM` with
/// hours up to 23, or nothing (UTC, written `Z`).
fn offset_ms(offset: &str) -> Option<i64> {
    let n = |a: u8, b: u8| {
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from((a - b'0') * 10 + (b - b'0')))
    };
    match *offset.as_bytes() {
        [] => Some(0),
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (
                n(h1, h2).filter(|&h| h <= 23)?,
                n(m1, m2).filter(|&m| m <= 59)?,
            );
            let ms = (h * 60 + m) * 60_000;
            Some(if sign == b'-' { -ms } else { ms })
        }
        _ => None,
    }
}

/// Writes what `quick_time` returns; `ms` and its local time are in `QUICK_TIMES`
/// and `offset` is one `offset_ms` reads.
fn push_time(out: &mut String, ms: i64, offset: &str) {
    let local = ms.saturating_add(offset_ms(offset).unwrap_or(0));
    let (days, ms_of_day) = (local.div_euclid(86_400_000), local.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days, for days since 1970-01-01 (not negative).
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut text = *b"YYYY-MM-DDTHH:MM:SS.mmm";
    for (at, width, n) in [
        (0, 4, year),
        (5, 2, month),
        (8, 2, day),
        (11, 2, ms_of_day / 3_600_000),
        (14, 2, ms_of_day / 60_000 % 60),
        (17, 2, ms_of_day / 1000 % 60),
        (20, 3, ms_of_day % 1000),
    ] {
        let mut n = n;
        for slot in text.iter_mut().skip(at).take(width).rev() {
            *slot = b"0123456789"[usize::try_from(n % 10).unwrap_or(0)];
            n /= 10;
        }
    }
    out.push_str(std::str::from_utf8(&text).unwrap_or(""));
    out.push_str(if offset.is_empty() { "Z" } else { offset });
}

/// The reference's `_canonize_value`: old CBV URNs to web URIs, numbers as Python
/// prints them, GS1 identifiers as canonical Digital Links.
#[cfg(test)]
fn canonical(text: &str) -> String {
    let mut out = String::new();
    canonical_into(&mut out, text);
    out
}

/// Writes `canonical(text)`, which is empty only when `text` is.
fn canonical_into(out: &mut String, text: &str) {
    let replaced: String;
    let t = if has_cbv_urn(text) {
        let mut t = text.to_string();
        for (urn, web) in [
            (
                "urn:epcglobal:cbv:bizstep:",
                "https://ref.gs1.org/cbv/BizStep-",
            ),
            ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-"),
            ("urn:epcglobal:cbv:btt:", "https://ref.gs1.org/cbv/BTT-"),
            ("urn:epcglobal:cbv:sdt:", "https://ref.gs1.org/cbv/SDT-"),
            ("urn:epcglobal:cbv:er:", "https://ref.gs1.org/cbv/ER-"),
        ] {
            t = t.replace(urn, web);
        }
        replaced = t;
        &replaced
    } else {
        text
    };
    // A number's text is no identifier (it starts with a digit or `-`).
    if let Some(x) = py_float(t) {
        push_py_number(out, x);
    } else if !digital_link::normalise_into(out, t) {
        out.push_str(t);
    }
}

/// Whether one of the old CBV URNs is in `text`: all five start so, and no
/// replacement writes any of it, so without it there is nothing to replace.
fn has_cbv_urn(text: &str) -> bool {
    // `str::contains` of a short needle is SIMD where the haystack is long enough.
    text.contains("urn:epcglobal:cbv:")
}

/// Python's `str.isspace`: Unicode White_Space and the four ASCII separators.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// The text of a number Python's `float()` reads, printed as the reference prints it:
/// whole numbers as integers, others as `repr`.
#[cfg(test)]
fn py_number(text: &str) -> Option<String> {
    let mut out = String::new();
    push_py_number(&mut out, py_float(text)?);
    Some(out)
}

/// Writes a finite number as the reference prints it.
fn push_py_number(out: &mut String, x: f64) {
    use std::fmt::Write;
    if x.fract() != 0.0 {
        push_py_repr(out, x);
    } else if x == 0.0 {
        out.push('0'); // -0.0 too: Python's int(-0.0) is 0
    } else if x.abs() < 1e18 {
        // A whole number below 2^63 converts exactly.
        let n = x as i64;
        if n < 0 {
            out.push('-');
        }
        let mut digits = [b'0'; 20];
        let mut rest = n.unsigned_abs();
        let mut start = digits.len();
        while let Some(i) = start.checked_sub(1).filter(|_| rest > 0) {
            digits[i] = b'0' + (rest % 10) as u8;
            rest /= 10;
            start = i;
        }
        out.push_str(std::str::from_utf8(&digits[start..]).unwrap_or(""));
    } else {
        let _ = write!(out, "{x:.0}"); // the double's exact value, as Python's int() has it
    }
}

/// Python's `float(str)` where it gives a finite number: any Unicode decimal digits,
/// `_` between digits. Python also reads `inf`, `infinity` and `nan`; the reference
/// keeps the text of a NaN and fails on the event for an infinity, so here neither
/// is a number.
fn py_float(text: &str) -> Option<f64> {
    // Any other ASCII character would stay in the number's text and spoil it.
    let numeric = |c: u8| {
        matches!(c, b'0'..=b'9' | b'+' | b'-' | b'.' | b'e' | b'E' | b'_')
            || matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
    };
    let ascii: Cow<str> = if text.is_ascii() {
        if !text.bytes().all(numeric) {
            return None;
        }
        Cow::Borrowed(text)
    } else {
        let mut ascii = String::with_capacity(text.len());
        for c in text.chars() {
            match digital_link::digit(c) {
                Some(d) => ascii.push(char::from(b'0' + d)),
                None if c.is_ascii() => ascii.push(c),
                None if py_space(c) => ascii.push(' '),
                None => return None,
            }
        }
        Cow::Owned(ascii)
    };
    let s = ascii.trim_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let b = s.as_bytes();
    let digit_at = |i: Option<usize>| i.and_then(|i| b.get(i)).is_some_and(u8::is_ascii_digit);
    let underscores_ok = b
        .iter()
        .enumerate()
        .all(|(i, &c)| c != b'_' || (digit_at(i.checked_sub(1)) && digit_at(Some(i + 1))));
    if !underscores_ok {
        return None;
    }
    let s = match s.contains('_') {
        true => Cow::Owned(s.replace('_', "")),
        false => Cow::Borrowed(s),
    };
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(&s);
    let digits = |t: &str| t.bytes().all(|c| c.is_ascii_digit());
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let exponent_ok = exponent.is_none_or(|x| {
        let x = x.strip_prefix(['+', '-']).unwrap_or(x);
        !x.is_empty() && digits(x)
    });
    if !(digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty()) && exponent_ok) {
        return None;
    }
    s.parse().ok().filter(|x: &f64| x.is_finite())
}

/// Python's `repr` of a finite float: the shortest digits that read back, in fixed
/// notation from 1e-4 up to 1e16, else as `d.ddde±XX`.
#[cfg(test)]
fn py_repr(x: f64) -> String {
    let mut out = String::new();
    push_py_repr(&mut out, x);
    out
}

/// Writes `py_repr(x)`.
fn push_py_repr(out: &mut String, x: f64) {
    use std::fmt::Write;
    // On the stack: the shortest `{:e}` of a double has at most 23 bytes, and its
    // digits fewer.
    let mut short = Short::default();
    let long: String;
    let sci = match write!(short, "{:e}", x.abs()) {
        Ok(()) => short.as_str(),
        Err(_) => {
            long = format!("{:e}", x.abs());
            &long
        }
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let mut short = Short::default();
    let long: String;
    let digits = match mantissa
        .chars()
        .filter(char::is_ascii_digit)
        .try_for_each(|c| short.write_char(c))
    {
        Ok(()) => short.as_str(),
        Err(_) => {
            long = mantissa.chars().filter(char::is_ascii_digit).collect();
            &long
        }
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if x.is_sign_negative() {
        out.push('-');
    }
    let zeros = |out: &mut String, n: usize| out.extend(std::iter::repeat_n('0', n));
    let point = exp + 1; // digits before the decimal point
    if (-3..=16).contains(&point) {
        match usize::try_from(point) {
            Err(_) | Ok(0) => {
                out.push_str("0.");
                zeros(out, point.unsigned_abs() as usize);
                out.push_str(digits);
            }
            Ok(p) if p >= digits.len() => {
                out.push_str(digits);
                zeros(out, p - digits.len());
                out.push_str(".0");
            }
            Ok(p) => {
                out.push_str(&digits[..p]);
                out.push('.');
                out.push_str(&digits[p..]);
            }
        }
    } else {
        let (first, more) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !more.is_empty() {
            out.push('.');
            out.push_str(more);
        }
        let exp_sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{exp_sign}{:02}", exp.unsigned_abs());
    }
}

/// A few ASCII bytes on the stack; writing more than fit is an error.
#[derive(Default)]
struct Short {
    bytes: [u8; 32],
    len: usize,
}

impl Short {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for Short {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample;

    #[test]
    fn a_hash_id_reads_back_from_its_text_and_nothing_else_does() {
        let e = crate::event::tests::sample();
        let text = event_hash(&e);
        let id = HashId::parse(&text).unwrap();
        assert_eq!(id, HashId::of(&e));
        assert_eq!(id.text().as_str(), text);
        assert_eq!(serde_json::to_value(id).unwrap(), text);
        for bad in [
            text.to_uppercase(),
            text.replace("?ver=CBV2.0", ""),
            text[..text.len() - 12].to_string() + "?ver=CBV2.0",
            text.replacen('a', "g", 1),
            String::new(),
        ] {
            assert_eq!(HashId::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn numbers_as_python_prints_them() {
        for (text, printed) in [
            ("007", Some("7")),
            ("1_000", Some("1000")),
            ("4.50", Some("4.5")),
            ("+.5", Some("0.5")),
            ("1e-5", Some("1e-05")),
            ("-0", Some("0")),
            ("20260123000000012345", Some("20260123000000012288")),
            ("١٢", Some("12")),
            ("1e400", None),
            ("nan", None),
            ("-Infinity", None),
            ("1__0", None),
            ("_1", None),
            ("1_", None),
            ("1e", None),
            (".", None),
            ("PO-1", None),
            ("0x10", None),
        ] {
            assert_eq!(py_number(text).as_deref(), printed, "{text}");
        }
        for (x, repr) in [
            (20.0, "20.0"),
            (4.5, "4.5"),
            (1e-5, "1e-05"),
            (1e-4, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
        ] {
            assert_eq!(py_repr(x), repr, "{x}");
        }
    }

    /// The reference's pre-hash string for this event (`python3 -m
    /// epcis_event_hash_generator doc.jsonld -p` on `epcis::document` of it).
    #[test]
    fn pre_hash_of_one_event() {
        let mut e = sample();
        e.item_ids
            .push("https://example.com/01/09506000134352/21/ABC123".into());
        e.biz_step = crate::BizStep::Shipping;
        e.disposition = crate::Disposition::InTransit;
        e.biz_transactions.push(crate::BizTransaction {
            kind: crate::BizTransactionType::Po,
            id: "shipping".into(),
        });
        e.relative_humidity_pct = Some(55.0);
        e.signature = vec![0x01; 64];
        let expected = "eventType=ObjectEvent\
            eventTime=2025-11-25T10:00:00.123ZeventTimeZoneOffset=+08:00\
            epcListepc=https://id.gs1.org/01/09506000134352/21/ABC123\
            epc=https://id.gs1.org/01/80614141123458/21/6789\
            action=OBSERVEbizStep=https://ref.gs1.org/cbv/BizStep-shipping\
            disposition=https://ref.gs1.org/cbv/Disp-in_transit\
            readPointid=https://id.gs1.org/414/0614141007776\
            bizLocationid=https://id.gs1.org/414/0614141008889\
            sensorElementListsensorElement\
            sensorReporttype=https://gs1.org/voc/RelativeHumidityvalue=55uom=P1\
            sensorReporttype=https://gs1.org/voc/Temperaturevalue=4.5uom=CEL\
            bizTransactionList\
            bizTransaction=CD-2026-000123type=https://sealtrail.dev/epcis/BTT-customs_declaration\
            bizTransaction=https://ref.gs1.org/cbv/BizStep-shippingtype=https://ref.gs1.org/cbv/BTT-po\
            {https://sealtrail.dev/epcis/}country=CN\
            {https://sealtrail.dev/epcis/}deviceID=scanner-sh-01";
        assert_eq!(pre_hash(&e), expected);
        let mut unsigned = e.clone();
        unsigned.signature.clear();
        assert_eq!(
            event_hash(&unsigned),
            event_hash(&e),
            "signing never changes the hash"
        );
        assert!(
            event_hash(&e).starts_with("ni:///sha-256;") && event_hash(&e).ends_with("?ver=CBV2.0")
        );
    }

    /// `quick_time` is `format_rfc3339` where it answers, and its text reads back.
    #[test]
    fn quick_times_are_the_time_crates() {
        let instants = [
            0,
            1,
            999,
            86_399_999,
            crate::event::MIN_EVENT_TIME,
            crate::event::MAX_EVENT_TIME - 1,
            951_782_400_000, // 2000-02-29
            1_709_164_799_999,
            1_767_225_599_500,
            4_107_542_399_999, // 2100-02-28T23:59:59.999Z
            253_402_300_799_999,
        ];
        let mut offsets = vec![String::new()];
        for sign in ['+', '-'] {
            for h in 0..=25 {
                for m in (0..=61).step_by(1) {
                    offsets.push(format!("{sign}{h:02}:{m:02}"));
                }
            }
        }
        offsets.extend(
            [
                "Z", "+8:00", "+08:0", "+08:000", " +08:00", "+0a:00", "08:00",
            ]
            .map(String::from),
        );
        let mut quick = 0;
        for (n, off) in offsets.iter().enumerate() {
            // Each instant, and one more that walks through the calendar.
            let walk = (n as i64 * 7_919_999_999_917) % 253_402_300_800_000;
            for ms in instants
                .into_iter()
                .chain([walk, -1, -86_400_000, 253_402_300_800_000])
            {
                let slow = format_rfc3339(ms, off);
                match quick_time(ms, off) {
                    Some(text) => {
                        quick += 1;
                        assert_eq!(text, slow, "{ms} {off}");
                        assert_eq!(parse_rfc3339(&text), Ok(ms), "{text}");
                        assert_eq!(
                            quick_time(ms, "").as_deref(),
                            Some(format_rfc3339(ms, "").as_str())
                        );
                    }
                    None => {
                        let b = off.as_bytes();
                        let accepted_offset = off.is_empty()
                            || (b.len() == 6
                                && (b[0] == b'+' || b[0] == b'-')
                                && b[3] == b':'
                                && [1, 2, 4, 5].iter().all(|&i| b[i].is_ascii_digit())
                                && off[1..3] <= *"23"
                                && off[4..] <= *"59");
                        assert!(
                            !accepted_offset
                                || !(crate::event::MIN_EVENT_TIME..crate::event::MAX_EVENT_TIME)
                                    .contains(&ms),
                            "{ms} {off}: an accepted event's time, not quick"
                        );
                    }
                }
            }
        }
        assert!(quick > 20_000);
    }

    /// Device-chosen strings in every field: nothing panics.
    #[test]
    fn hostile_values_do_not_panic() {
        let nasty = [
            "",
            " ",
            "\n",
            ".",
            "%",
            "%2",
            "urn:epc:id:sgtin:",
            "urn:epc:id:sgtin:1234567.",
            "urn:epc:id:cpi:123456.",
            "urn:epc:id:grai:123456789012...x",
            "urn:epc:idpat:itip:1234567.123456.",
            "https:",
            "https://id.gs1.org/01/",
            "https://x/01/1234\u{e9}/22/",
            "https://x/8010/AB/8011/",
            "https://x/01/123456789/10/a/21/b\n?",
            "https://id\ngs1.org/01/12345678901234",
            "1e999999",
            "-٣.٣e٣",
            "gs1:",
            "st:",
            "cbv://",
            "https://ref.gs1.org/cbv/BizStep-shipping",
            "\u{1c}\u{3000}",
            "🦀.🦀",
            "urn:epc:id:gdti:061414\u{663}.00001.\u{663}",
        ];
        for s in nasty {
            let _ = canonical(s);
            let mut e = sample();
            e.item_ids = vec![s.into(), s.into()];
            e.read_point = s.into();
            e.biz_location = s.into();
            e.event_timezone_offset = s.into();
            e.event_time = i64::MIN;
            e.device_id = s.into();
            e.country = s.into();
            e.biz_transactions[0].id = s.into();
            e.temperature_c = Some(f32::MAX);
            let _ = event_hash(&e);
        }
    }
}
