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

use sha2::{Digest, Sha256};

use crate::epcis::{self, GS1_VOC, NAMESPACE};
use crate::event::ScanEvent;
use crate::time::{format_rfc3339, parse_rfc3339};

mod digital_link;

/// The CBV 2.0 event hash ID.
pub fn event_hash(e: &ScanEvent) -> String {
    let digest = Sha256::digest(pre_hash(e).as_bytes());
    format!("ni:///sha-256;{}?ver=CBV2.0", hex::encode(digest))
}

/// The string the event hash ID is the SHA-256 of.
pub fn pre_hash(e: &ScanEvent) -> String {
    let d = Document::of(e);
    let mut s = format!("eventType={}", d.bare("ObjectEvent"));
    let time = format_rfc3339(e.event_time, &e.event_timezone_offset);
    s += &leaf("eventTime", &d.value(&time), true);
    s += &leaf(
        "eventTimeZoneOffset",
        &d.value(&e.event_timezone_offset),
        false,
    );
    let epcs = e.item_ids.iter().map(|i| leaf("epc", &d.value(i), false));
    s += &node("epcList", &[sorted(epcs)]);
    s += &leaf("action", &d.value(e.action.as_str()), false);
    s += &leaf("bizStep", &d.value(epcis::biz_step(e.biz_step)), false);
    s += &leaf(
        "disposition",
        &d.value(epcis::disposition(e.disposition)),
        false,
    );
    s += &node("readPoint", &[leaf("id", &d.value(&e.read_point), false)]);
    s += &node(
        "bizLocation",
        &[leaf("id", &d.value(&e.biz_location), false)],
    );
    let reports = epcis::sensor_reports(e).into_iter().map(|(kind, v, uom)| {
        // The reference reads a JSON number as a Python float and prints it back.
        let parts = [
            leaf("type", &d.value(kind), false),
            leaf("value", &py_repr(v), false),
            leaf("uom", &d.value(uom), false),
        ];
        node("sensorReport", &parts)
    });
    s += &node(
        "sensorElementList",
        &[node("sensorElement", &[sorted(reports)])],
    );

    // The rest, sorted as wholes: the reference never matches its own entry for
    // bizTransactionList, so the list lands here with the extensions.
    let mut rest = Vec::new();
    if !e.biz_transactions.is_empty() {
        let pairs = e.biz_transactions.iter().map(|t| {
            let kind = epcis::biz_transaction_type(t.kind);
            loose_leaf("bizTransaction", &d.value(&t.id)) + &loose_leaf("type", &d.value(kind))
        });
        rest.push(format!("bizTransactionList{}", sorted(pairs)));
    }
    rest.push(loose_leaf(&d.key("country"), &d.value(&e.country)));
    rest.push(loose_leaf(&d.key("deviceID"), &d.value(&e.device_id)));
    s + &sorted(rest)
}

/// What the reference knows of the document before it builds the pre-hash string.
struct Document {
    /// The CBV and GS1 Web Vocabulary URIs in the JSON-LD expansion of the document:
    /// what bare strings are matched against.
    vocabulary: Vec<String>,
    /// The `@context` prefixes, their IRIs after the bare-string replacement.
    gs1: String,
    st: String,
}

impl Document {
    fn of(e: &ScanEvent) -> Document {
        let mut expanded: Vec<String> = Vec::new();
        let vocab = |v: &str, kind: &str| match v.contains(':') {
            false => format!("https://ref.gs1.org/cbv/{kind}-{v}"),
            true => v.to_string(),
        };
        expanded.push(vocab(epcis::biz_step(e.biz_step), "BizStep"));
        expanded.push(vocab(epcis::disposition(e.disposition), "Disp"));
        for t in &e.biz_transactions {
            expanded.push(vocab(epcis::biz_transaction_type(t.kind), "BTT"));
            expanded.push(expand_iri(&t.id));
        }
        for (kind, _, uom) in epcis::sensor_reports(e) {
            expanded.push(expand_iri(kind));
            expanded.push(uom.to_string());
        }
        expanded.extend(e.item_ids.iter().map(|i| expand_iri(i)));
        expanded.push(expand_iri(&e.read_point));
        expanded.push(expand_iri(&e.biz_location));
        // Literals are kept as they are, and collected all the same.
        expanded.push(format_rfc3339(e.event_time, &e.event_timezone_offset));
        expanded.push(e.event_timezone_offset.clone());
        expanded.push(e.country.clone());
        expanded.push(e.device_id.clone());
        expanded
            .retain(|v| v.starts_with("https://ref.gs1.org/cbv") || v.starts_with(GS1_VOC_ROOT));
        expanded.sort();
        expanded.dedup();
        let mut d = Document {
            vocabulary: expanded,
            gs1: String::new(),
            st: String::new(),
        };
        d.gs1 = d.bare(GS1_VOC);
        d.st = d.bare(NAMESPACE);
        d
    }

    /// The reference's bare-string replacement: a string that ends exactly one of the
    /// document's vocabulary URIs after a `-` or `/` becomes that URI.
    fn bare(&self, v: &str) -> String {
        let mut hits = self.vocabulary.iter().filter(|uri| {
            uri.strip_suffix(v)
                .is_some_and(|head| head.ends_with('-') || head.ends_with('/'))
        });
        match (hits.next(), hits.next()) {
            (Some(uri), None) => uri.clone(),
            _ => v.to_string(),
        }
    }

    /// A JSON string value as the reference holds it: replaced, then with a
    /// `@context` prefix (`gs1:`, `st:`) written out.
    fn value(&self, v: &str) -> String {
        let v = self.bare(v);
        match v.split_once(':') {
            Some(("gs1", local)) => self.gs1.replace(['{', '}'], "") + local,
            Some(("st", local)) => self.st.replace(['{', '}'], "") + local,
            _ => v,
        }
    }

    /// The name of one of our extension fields, `{namespace}local`.
    fn key(&self, local: &str) -> String {
        format!("{{{}}}{local}", self.st)
    }
}

/// `https://gs1.org/voc`, the second root the reference matches bare strings under.
const GS1_VOC_ROOT: &str = "https://gs1.org/voc";

/// pyld's expansion of an identifier (`@type: @id`), as far as it can yield a
/// vocabulary URI: only the `cbv:` and `gs1:` prefixes expand to one.
fn expand_iri(v: &str) -> String {
    match v.split_once(':') {
        Some(("cbv", local)) if !local.starts_with("//") => {
            format!("https://ref.gs1.org/cbv/{local}")
        }
        Some(("gs1", local)) if !local.starts_with("//") => format!("{GS1_VOC}{local}"),
        _ => v.to_string(),
    }
}

/// A field in the canonical order: `name=value`, nothing when the value is empty.
fn leaf(name: &str, raw: &str, time: bool) -> String {
    if raw.is_empty() {
        return String::new();
    }
    let text = py_strip(raw);
    let text = if time {
        utc_time(text)
    } else {
        canonical(text)
    };
    if text.is_empty() {
        String::new()
    } else {
        format!("{name}={text}")
    }
}

/// A field outside the canonical order: there the name stays even without a value.
fn loose_leaf(name: &str, raw: &str) -> String {
    match py_strip(raw) {
        "" => name.to_string(),
        text => format!("{name}={}", canonical(text)),
    }
}

/// A parent field: its name and its children, or nothing when they are all empty.
fn node(name: &str, children: &[String]) -> String {
    let inner = children.concat();
    if inner.is_empty() {
        inner
    } else {
        format!("{name}{inner}")
    }
}

/// Sibling fields of one name, in code point order.
fn sorted(parts: impl IntoIterator<Item = String>) -> String {
    let mut parts: Vec<String> = parts.into_iter().collect();
    parts.sort();
    parts.concat()
}

/// The time in UTC with milliseconds, `Z`; what is not a time stays as it is.
fn utc_time(text: &str) -> String {
    match parse_rfc3339(text) {
        Ok(ms) => format_rfc3339(ms, ""),
        Err(_) => text.to_string(),
    }
}

/// The reference's `_canonize_value`: old CBV URNs to web URIs, numbers as Python
/// prints them, GS1 identifiers as canonical Digital Links.
fn canonical(text: &str) -> String {
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
    let t = py_number(&t).unwrap_or(t);
    digital_link::normalise(&t).unwrap_or(t)
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
fn py_number(text: &str) -> Option<String> {
    let x = py_float(text)?;
    if x.fract() != 0.0 {
        Some(py_repr(x))
    } else if x == 0.0 {
        Some("0".into()) // -0.0 too: Python's int(-0.0) is 0
    } else {
        Some(format!("{x:.0}")) // the double's exact value, as Python's int() has it
    }
}

/// Python's `float(str)` where it gives a finite number: any Unicode decimal digits,
/// `_` between digits. Python also reads `inf`, `infinity` and `nan`; the reference
/// keeps the text of a NaN and fails on the event for an infinity, so here neither
/// is a number.
fn py_float(text: &str) -> Option<f64> {
    let mut ascii = String::with_capacity(text.len());
    for c in text.chars() {
        match digital_link::digit(c) {
            Some(d) => ascii.push(char::from(b'0' + d)),
            None if c.is_ascii() => ascii.push(c),
            None if py_space(c) => ascii.push(' '),
            None => return None,
        }
    }
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
    let s = s.replace('_', "");
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
fn py_repr(x: f64) -> String {
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if x.is_sign_negative() { "-" } else { "" };
    let point = exp + 1; // digits before the decimal point
    let body = if (-3..=16).contains(&point) {
        match usize::try_from(point) {
            Err(_) | Ok(0) => format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize)),
            Ok(p) if p >= digits.len() => format!("{digits}{}.0", "0".repeat(p - digits.len())),
            Ok(p) => format!("{}.{}", &digits[..p], &digits[p..]),
        }
    } else {
        let (first, more) = digits.split_at(1.min(digits.len()));
        let more = if more.is_empty() {
            String::new()
        } else {
            format!(".{more}")
        };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        format!("{first}{more}e{exp_sign}{:02}", exp.unsigned_abs())
    };
    format!("{sign}{body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample;

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
