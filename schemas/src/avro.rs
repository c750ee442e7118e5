//! The scan event on the wire: the Avro binary datum of `scan_event.avsc`, framed as
//! an Avro single-object encoding (C3 01, the schema's CRC-64-AVRO fingerprint,
//! the datum) so any Avro library decodes a Kafka record from the `.avsc` alone.
//!
//! Hand-written for this one schema because it sits on the sealer's hot path; the
//! tests check it byte for byte against the `apache-avro` crate reading the `.avsc`,
//! and the suite decodes records from the running topic with fastavro and with the
//! Java reference (`tests/avro_interop.rs` in the sealer).

use crate::event::{Action, BizStep, BizTransaction, BizTransactionType, Disposition, ScanEvent};

/// The schema file, as shipped.
pub const SCHEMA_JSON: &str = include_str!("../scan_event.avsc");

/// CRC-64-AVRO (Rabin) fingerprint of the schema's Parsing Canonical Form, as the
/// specification defines it: what the Java reference and fastavro look a record's
/// writer schema up by. A test recomputes it from `scan_event.avsc`; a schema change
/// must update it.
pub const FINGERPRINT: u64 = 0xb646_4265_f4e6_7b12;

/// The fingerprint records were written with before: computed over a canonical
/// form that kept `{"type":"string"}` for the logical types, where the
/// specification reduces them to `"string"` (the `apache-avro` crate still does).
/// Those records hold the same datum, so they are still read; nothing writes it.
pub const LEGACY_FINGERPRINT: u64 = 0x7ff5_9d72_215e_10b8;

/// The two marker bytes that open a single-object encoding.
pub const MAGIC: [u8; 2] = [0xC3, 0x01];

/// Why bytes are not a scan event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not an Avro single-object encoding (expected marker C3 01)")]
    NotSingleObject,
    #[error("unknown writer schema: fingerprint {0:016x}, this build knows {FINGERPRINT:016x} (and {LEGACY_FINGERPRINT:016x} of older records)")]
    UnknownSchema(u64),
    #[error("datum ends inside field {0}")]
    Truncated(&'static str),
    #[error("field {0}: malformed variable-length integer")]
    BadVarint(&'static str),
    #[error("field {0}: negative or oversized length {1}")]
    BadLength(&'static str, i64),
    #[error("field {0}: not valid UTF-8")]
    BadUtf8(&'static str),
    #[error("field {0}: no enum symbol or union branch with index {1}")]
    BadIndex(&'static str, i64),
    #[error("{0} bytes left over after the datum")]
    TrailingBytes(usize),
    #[error("not the canonical encoding of the event it decodes to (the leaf would differ from the signed bytes)")]
    NonCanonical,
}

impl DecodeError {
    /// A short machine-readable name: the dead-letter reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::NotSingleObject => "not_single_object",
            DecodeError::UnknownSchema(_) => "unknown_schema",
            DecodeError::NonCanonical => "non_canonical",
            _ => "malformed",
        }
    }
}

/// Rabin fingerprint as the Avro specification defines it (CRC-64-AVRO).
pub fn fingerprint(bytes: &[u8]) -> u64 {
    const EMPTY: u64 = 0xc15d_213a_a4d7_a795;
    const TABLE: [u64; 256] = {
        let mut table = [0u64; 256];
        let mut i = 0;
        while i < 256 {
            let mut fp = i as u64;
            let mut j = 0;
            while j < 8 {
                fp = (fp >> 1) ^ (EMPTY & (0u64.wrapping_sub(fp & 1)));
                j += 1;
            }
            table[i] = fp;
            i += 1;
        }
        table
    };
    bytes.iter().fold(EMPTY, |fp, &b| {
        (fp >> 8) ^ TABLE[((fp ^ u64::from(b)) & 0xff) as usize]
    })
}

// ---- encoding ----

pub(crate) fn put_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_long(out, b.len() as i64);
    out.extend_from_slice(b);
}

fn put_optional_float(out: &mut Vec<u8>, v: Option<f32>) {
    match v {
        None => put_long(out, 0),
        Some(f) => {
            put_long(out, 1);
            out.extend_from_slice(&f.to_le_bytes());
        }
    }
}

/// Every field but the signature: the part the device signs.
fn put_signed_fields(out: &mut Vec<u8>, e: &ScanEvent) {
    put_bytes(out, e.event_id.as_bytes());
    put_long(out, e.event_time);
    put_bytes(out, e.event_timezone_offset.as_bytes());
    put_long(out, e.action.index().into());
    put_long(out, e.biz_step.index().into());
    put_long(out, e.disposition.index().into());
    if !e.item_ids.is_empty() {
        put_long(out, e.item_ids.len() as i64);
        for id in &e.item_ids {
            put_bytes(out, id.as_bytes());
        }
    }
    put_long(out, 0);
    put_bytes(out, e.read_point.as_bytes());
    put_bytes(out, e.biz_location.as_bytes());
    put_bytes(out, e.country.as_bytes());
    if !e.biz_transactions.is_empty() {
        put_long(out, e.biz_transactions.len() as i64);
        for t in &e.biz_transactions {
            put_long(out, t.kind.index().into());
            put_bytes(out, t.id.as_bytes());
        }
    }
    put_long(out, 0);
    put_optional_float(out, e.temperature_c);
    put_optional_float(out, e.relative_humidity_pct);
    put_bytes(out, e.device_id.as_bytes());
}

/// The Avro binary datum, signature included: the leaf bytes the sealer hashes.
pub fn encode_datum(e: &ScanEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    put_signed_fields(&mut out, e);
    put_bytes(&mut out, &e.signature);
    out
}

/// The bytes a device signs: the datum with an empty signature.
pub fn canonical_bytes(e: &ScanEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(192);
    put_signed_fields(&mut out, e);
    put_bytes(&mut out, &[]);
    out
}

/// The Kafka record value: marker, fingerprint, datum.
pub fn encode_single_object(e: &ScanEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(266);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FINGERPRINT.to_le_bytes());
    put_signed_fields(&mut out, e);
    put_bytes(&mut out, &e.signature);
    out
}

// ---- decoding ----

pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

/// Longest string or array this decoder accepts: a bound against hostile lengths.
const MAX_LEN: i64 = 1 << 20;

impl<'a> Reader<'a> {
    pub(crate) fn long(&mut self, field: &'static str) -> Result<i64, DecodeError> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or(DecodeError::Truncated(field))?;
            self.pos += 1;
            z |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(DecodeError::BadVarint(field))
    }

    fn len(&mut self, field: &'static str) -> Result<usize, DecodeError> {
        let n = self.long(field)?;
        if !(0..=MAX_LEN).contains(&n) {
            return Err(DecodeError::BadLength(field, n));
        }
        Ok(n as usize)
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let n = self.len(field)?;
        let end = self
            .pos
            .checked_add(n)
            .ok_or(DecodeError::Truncated(field))?;
        let b = self
            .buf
            .get(self.pos..end)
            .ok_or(DecodeError::Truncated(field))?;
        self.pos = end;
        Ok(b)
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let b = self.bytes(field)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| DecodeError::BadUtf8(field))
    }

    fn index(&mut self, field: &'static str) -> Result<u64, DecodeError> {
        let i = self.long(field)?;
        u64::try_from(i).map_err(|_| DecodeError::BadIndex(field, i))
    }

    fn enum_of<T>(
        &mut self,
        field: &'static str,
        f: fn(u64) -> Option<T>,
    ) -> Result<T, DecodeError> {
        let i = self.index(field)?;
        f(i).ok_or(DecodeError::BadIndex(field, i as i64))
    }

    /// An array's blocks: a count, and for a negative count its byte size too.
    fn array<T>(
        &mut self,
        field: &'static str,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Vec<T>, DecodeError> {
        let mut out = Vec::new();
        loop {
            let mut n = self.long(field)?;
            if n == 0 {
                return Ok(out);
            }
            if n < 0 {
                // A negative count is followed by the block's size in bytes.
                n = n.checked_neg().ok_or(DecodeError::BadLength(field, n))?;
                self.long(field)?;
            }
            if n > MAX_LEN || out.len() as i64 + n > MAX_LEN {
                return Err(DecodeError::BadLength(field, n));
            }
            // Every item takes at least one byte: a hostile count reserves no more.
            out.reserve((n as usize).min(self.buf.len().saturating_sub(self.pos)));
            for _ in 0..n {
                out.push(item(self)?);
            }
        }
    }

    fn optional_float(&mut self, field: &'static str) -> Result<Option<f32>, DecodeError> {
        match self.index(field)? {
            0 => Ok(None),
            1 => {
                let b: [u8; 4] = self
                    .buf
                    .get(self.pos..)
                    .and_then(|rest| rest.get(..4))
                    .and_then(|b| b.try_into().ok())
                    .ok_or(DecodeError::Truncated(field))?;
                self.pos += 4;
                Ok(Some(f32::from_le_bytes(b)))
            }
            i => Err(DecodeError::BadIndex(field, i as i64)),
        }
    }
}

/// Decodes a binary datum written with this schema.
pub fn decode_datum(datum: &[u8]) -> Result<ScanEvent, DecodeError> {
    let mut r = Reader { buf: datum, pos: 0 };
    let event = ScanEvent {
        event_id: r.string("event_id")?,
        event_time: r.long("event_time")?,
        event_timezone_offset: r.string("event_timezone_offset")?,
        action: r.enum_of("action", Action::from_index)?,
        biz_step: r.enum_of("biz_step", BizStep::from_index)?,
        disposition: r.enum_of("disposition", Disposition::from_index)?,
        item_ids: r.array("item_ids", |r| r.string("item_ids"))?,
        read_point: r.string("read_point")?,
        biz_location: r.string("biz_location")?,
        country: r.string("country")?,
        biz_transactions: r.array("biz_transactions", |r| {
            Ok(BizTransaction {
                kind: r.enum_of("biz_transactions.type", BizTransactionType::from_index)?,
                id: r.string("biz_transactions.id")?,
            })
        })?,
        temperature_c: r.optional_float("temperature_c")?,
        relative_humidity_pct: r.optional_float("relative_humidity_pct")?,
        device_id: r.string("device_id")?,
        signature: r.bytes("signature")?.to_vec(),
    };
    if r.pos != datum.len() {
        return Err(DecodeError::TrailingBytes(datum.len() - r.pos));
    }
    Ok(event)
}

/// Splits a single-object record into its datum, checking marker and schema.
pub fn datum_of(record: &[u8]) -> Result<&[u8], DecodeError> {
    let (marker, rest) = record
        .split_first_chunk::<2>()
        .ok_or(DecodeError::NotSingleObject)?;
    if *marker != MAGIC {
        return Err(DecodeError::NotSingleObject);
    }
    let (fp, datum) = rest
        .split_first_chunk::<8>()
        .ok_or(DecodeError::NotSingleObject)?;
    let fp = u64::from_le_bytes(*fp);
    if fp != FINGERPRINT && fp != LEGACY_FINGERPRINT {
        return Err(DecodeError::UnknownSchema(fp));
    }
    Ok(datum)
}

/// Decodes a Kafka record value.
pub fn decode_single_object(record: &[u8]) -> Result<ScanEvent, DecodeError> {
    decode_datum(datum_of(record)?)
}

/// Decodes a Kafka record value and requires its datum to be the one encoding
/// of what it decodes to. Avro admits several encodings of one datum (array
/// blocks with byte sizes, split blocks, over-long varints); the leaf is the raw
/// datum while the signature covers the re-encoded one, so any other encoding
/// would seal one signed event under many leaves. Returns the event and its datum.
pub fn decode_canonical(record: &[u8]) -> Result<(ScanEvent, &[u8]), DecodeError> {
    let datum = datum_of(record)?;
    let event = decode_datum(datum)?;
    if !is_encoding_of(datum, &event) {
        return Err(DecodeError::NonCanonical);
    }
    Ok((event, datum))
}

/// Whether `datum` is exactly `encode_datum(event)`, without allocating.
fn is_encoding_of(datum: &[u8], event: &ScanEvent) -> bool {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with_borrow_mut(|buf| {
        buf.clear();
        put_signed_fields(buf, event);
        put_bytes(buf, &event.signature);
        buf.as_slice() == datum
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample;
    use apache_avro::types::Value;
    use apache_avro::Schema;

    fn schema() -> Schema {
        Schema::parse_str(SCHEMA_JSON).expect("scan_event.avsc parses")
    }

    /// The specification's Parsing Canonical Form, written from its rules
    /// (PRIMITIVES, FULLNAMES, STRIP, ORDER, WHITESPACE): not from any library,
    /// since the one at hand (`apache-avro`) keeps a logical type's
    /// `{"type":"string"}` where the specification writes `"string"`.
    fn parsing_canonical_form(schema: &serde_json::Value, namespace: &str) -> String {
        use serde_json::Value as J;
        const PRIMITIVES: [&str; 8] = [
            "null", "boolean", "int", "long", "float", "double", "bytes", "string",
        ];
        let full = |name: &str, ns: &str| {
            if name.contains('.') || ns.is_empty() {
                name.to_string()
            } else {
                format!("{ns}.{name}")
            }
        };
        let quote = |s: &str| serde_json::to_string(s).unwrap();
        match schema {
            J::String(t) if PRIMITIVES.contains(&t.as_str()) => quote(t),
            J::String(named) => quote(&full(named, namespace)),
            J::Array(branches) => format!(
                "[{}]",
                branches
                    .iter()
                    .map(|b| parsing_canonical_form(b, namespace))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            J::Object(o) => {
                let t = &o["type"];
                let Some(t) = t.as_str() else {
                    return parsing_canonical_form(t, namespace);
                };
                if PRIMITIVES.contains(&t) {
                    return quote(t);
                }
                let named = |o: &serde_json::Map<String, J>| {
                    let name = o["name"].as_str().unwrap();
                    let ns = o.get("namespace").and_then(J::as_str).unwrap_or(namespace);
                    full(name, ns)
                };
                match t {
                    "record" | "error" => {
                        let name = named(o);
                        let ns = name.rsplit_once('.').map_or("", |(ns, _)| ns);
                        let fields = o["fields"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|f| {
                                format!(
                                    "{{\"name\":{},\"type\":{}}}",
                                    quote(f["name"].as_str().unwrap()),
                                    parsing_canonical_form(&f["type"], ns)
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(",");
                        format!(
                            "{{\"name\":{},\"type\":\"{t}\",\"fields\":[{fields}]}}",
                            quote(&name)
                        )
                    }
                    "enum" => format!(
                        "{{\"name\":{},\"type\":\"enum\",\"symbols\":{}}}",
                        quote(&named(o)),
                        serde_json::to_string(&o["symbols"]).unwrap()
                    ),
                    "fixed" => format!(
                        "{{\"name\":{},\"type\":\"fixed\",\"size\":{}}}",
                        quote(&named(o)),
                        o["size"]
                    ),
                    "array" => format!(
                        "{{\"type\":\"array\",\"items\":{}}}",
                        parsing_canonical_form(&o["items"], namespace)
                    ),
                    "map" => format!(
                        "{{\"type\":\"map\",\"values\":{}}}",
                        parsing_canonical_form(&o["values"], namespace)
                    ),
                    other => quote(&full(other, namespace)),
                }
            }
            other => panic!("not a schema: {other}"),
        }
    }

    #[test]
    fn fingerprint_is_crc64_avro_of_the_specifications_canonical_form() {
        let json: serde_json::Value = serde_json::from_str(SCHEMA_JSON).unwrap();
        let canonical = parsing_canonical_form(&json, "");
        assert!(canonical.starts_with(
            r#"{"name":"dev.sealtrail.ScanEvent","type":"record","fields":[{"name":"event_id","type":"string"},{"name":"event_time","type":"long"}"#
        ), "{canonical}");
        assert!(!canonical.contains("logicalType") && !canonical.contains("doc"));
        assert_eq!(
            FINGERPRINT,
            fingerprint(canonical.as_bytes()),
            "FINGERPRINT must be {:#018x} for this schema",
            fingerprint(canonical.as_bytes())
        );
    }

    #[test]
    fn the_legacy_fingerprint_is_apache_avros_and_our_rabin_agrees_with_it() {
        let s = schema();
        let theirs = s.fingerprint::<apache_avro::rabin::Rabin>();
        let theirs = u64::from_le_bytes(theirs.bytes[..8].try_into().unwrap());
        assert_eq!(fingerprint(s.canonical_form().as_bytes()), theirs);
        assert_eq!(LEGACY_FINGERPRINT, theirs);
        assert!(s.canonical_form().contains(r#"{"type":"string"}"#));
    }

    #[test]
    fn rabin_matches_the_specifications_primitive_fingerprints() {
        // CRC-64-AVRO of `"int"` and `"string"` as fastavro 1.13 computes them
        // (`fastavro.schema.fingerprint`, which prints the little-endian bytes:
        // 8f5c393f1ad57572 and c70345637248018f).
        assert_eq!(fingerprint(br#""int""#), 0x7275_d51a_3f39_5c8f);
        assert_eq!(fingerprint(br#""string""#), 0x8f01_4872_6345_03c7);
    }

    #[test]
    fn records_with_either_fingerprint_decode_to_the_same_event() {
        let mut e = sample();
        e.signature = vec![4; 64];
        let record = encode_single_object(&e);
        assert_eq!(&record[2..10], &FINGERPRINT.to_le_bytes());
        let mut legacy = record.clone();
        legacy[2..10].copy_from_slice(&LEGACY_FINGERPRINT.to_le_bytes());
        let (a, datum_a) = decode_canonical(&record).unwrap();
        let (b, datum_b) = decode_canonical(&legacy).unwrap();
        assert_eq!((a, datum_a), (b, datum_b), "one event, one leaf");
    }

    #[test]
    fn the_avsc_alone_decodes_our_datum() {
        let mut e = sample();
        e.signature = vec![9; 64];
        let datum = encode_datum(&e);
        let value =
            apache_avro::from_avro_datum(&schema(), &mut datum.as_slice(), None).expect("decodes");
        let Value::Record(fields) = value else {
            panic!("not a record")
        };
        let get = |n: &str| {
            fields
                .iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(get("event_id"), Value::Uuid(e.event_id.parse().unwrap()));
        assert_eq!(get("event_time"), Value::TimestampMillis(e.event_time));
        assert_eq!(get("biz_step"), Value::Enum(9, "customs_clearance".into()));
        assert_eq!(get("country"), Value::String("CN".into()));
        assert_eq!(
            get("temperature_c"),
            Value::Union(1, Box::new(Value::Float(4.5)))
        );
        assert_eq!(get("signature"), Value::Bytes(vec![9; 64]));
    }

    #[test]
    fn we_decode_what_apache_avro_writes_from_the_avsc() {
        let mut e = sample();
        e.signature = vec![3; 64];
        let ours = encode_datum(&e);
        let value = apache_avro::from_avro_datum(&schema(), &mut ours.as_slice(), None).unwrap();
        let theirs = apache_avro::to_avro_datum(&schema(), value).unwrap();
        assert_eq!(theirs, ours, "byte-identical datum");
        assert_eq!(decode_datum(&theirs).unwrap(), e);
    }

    #[test]
    fn single_object_round_trips_and_apache_avro_reads_it() {
        let mut e = sample();
        e.signature = vec![1; 64];
        let record = encode_single_object(&e);
        assert_eq!(&record[..2], &MAGIC);
        assert_eq!(decode_single_object(&record).unwrap(), e);
        // apache-avro's single-object reader looks for its own (legacy) fingerprint;
        // the datum after the header is what it must read.
        let value = apache_avro::from_avro_datum(&schema(), &mut &record[10..], None)
            .expect("apache-avro reads the datum");
        assert!(matches!(value, Value::Record(_)));
    }

    #[test]
    fn a_reader_schema_with_an_added_optional_field_reads_old_records() {
        let mut json: serde_json::Value = serde_json::from_str(SCHEMA_JSON).unwrap();
        json["fields"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({
                "name": "carrier", "type": ["null", "string"], "default": null,
                "doc": "added later"
            }));
        let reader = Schema::parse_str(&json.to_string()).unwrap();
        let datum = encode_datum(&sample());
        let value =
            apache_avro::from_avro_datum(&schema(), &mut datum.as_slice(), Some(&reader)).unwrap();
        let Value::Record(fields) = value else {
            panic!()
        };
        assert_eq!(
            fields.last().unwrap(),
            &(
                "carrier".to_string(),
                Value::Union(0, Box::new(Value::Null))
            )
        );
        assert_eq!(fields[0].1, Value::Uuid(sample().event_id.parse().unwrap()));
    }

    #[test]
    fn enum_symbols_match_the_avsc() {
        let json: serde_json::Value = serde_json::from_str(SCHEMA_JSON).unwrap();
        let symbols = |field: &str| -> Vec<String> {
            let f = json["fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == field)
                .unwrap();
            f["type"]["symbols"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let ours = |all: Vec<&str>| all.into_iter().map(String::from).collect::<Vec<_>>();
        assert_eq!(
            symbols("action"),
            ours(Action::ALL.iter().map(|v| v.as_str()).collect())
        );
        assert_eq!(
            symbols("biz_step"),
            ours(BizStep::ALL.iter().map(|v| v.as_str()).collect())
        );
        assert_eq!(
            symbols("disposition"),
            ours(Disposition::ALL.iter().map(|v| v.as_str()).collect())
        );
        let bt = json["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "biz_transactions")
            .unwrap();
        let bt_symbols: Vec<String> = bt["type"]["items"]["fields"][0]["type"]["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            bt_symbols,
            ours(BizTransactionType::ALL.iter().map(|v| v.as_str()).collect())
        );
    }

    #[test]
    fn every_field_is_documented() {
        let json: serde_json::Value = serde_json::from_str(SCHEMA_JSON).unwrap();
        for f in json["fields"].as_array().unwrap() {
            assert!(
                f["doc"].as_str().is_some_and(|d| !d.is_empty()),
                "{} has no doc",
                f["name"]
            );
        }
    }

    #[test]
    fn canonical_bytes_are_the_datum_with_an_empty_signature() {
        let mut e = sample();
        let unsigned = encode_datum(&e);
        e.signature = vec![7; 64];
        assert_eq!(canonical_bytes(&e), unsigned);
        assert_ne!(encode_datum(&e), unsigned);
    }

    #[test]
    fn damaged_records_are_refused_with_a_reason() {
        let record = encode_single_object(&sample());
        assert_eq!(
            decode_single_object(b"{\"json\":1}"),
            Err(DecodeError::NotSingleObject)
        );
        let mut other = record.clone();
        other[2] ^= 1;
        assert!(matches!(
            decode_single_object(&other),
            Err(DecodeError::UnknownSchema(_))
        ));
        for cut in 10..record.len() {
            assert!(
                decode_single_object(&record[..cut]).is_err(),
                "cut at {cut} decoded"
            );
        }
        let mut longer = record.clone();
        longer.push(0);
        assert_eq!(
            decode_single_object(&longer),
            Err(DecodeError::TrailingBytes(1))
        );
        let mut bad_enum = encode_datum(&sample());
        // event_id (1 + 36 bytes), event_time (6), offset (1 + 6), action (1): then biz_step.
        bad_enum[37 + 6 + 7 + 1] = 0x7e;
        assert!(decode_datum(&bad_enum).is_err());
    }

    /// The datum of `sample()` with its item_ids array re-encoded as Avro also
    /// allows: one block with a negative count and its byte size.
    fn sized_block_encoding(e: &ScanEvent) -> Vec<u8> {
        let mut items = Vec::new();
        for id in &e.item_ids {
            put_bytes(&mut items, id.as_bytes());
        }
        let canonical = encode_datum(e);
        let mut head = Vec::new();
        put_bytes(&mut head, e.event_id.as_bytes());
        put_long(&mut head, e.event_time);
        put_bytes(&mut head, e.event_timezone_offset.as_bytes());
        put_long(&mut head, e.action.index().into());
        put_long(&mut head, e.biz_step.index().into());
        put_long(&mut head, e.disposition.index().into());
        let mut canonical_items = Vec::new();
        put_long(&mut canonical_items, e.item_ids.len() as i64);
        canonical_items.extend_from_slice(&items);
        put_long(&mut canonical_items, 0);
        let tail = &canonical[head.len() + canonical_items.len()..];
        let mut out = head;
        put_long(&mut out, -(e.item_ids.len() as i64));
        put_long(&mut out, items.len() as i64);
        out.extend_from_slice(&items);
        put_long(&mut out, 0);
        out.extend_from_slice(tail);
        out
    }

    fn framed(datum: &[u8]) -> Vec<u8> {
        let mut record = MAGIC.to_vec();
        record.extend_from_slice(&FINGERPRINT.to_le_bytes());
        record.extend_from_slice(datum);
        record
    }

    #[test]
    fn other_encodings_of_one_event_decode_but_are_not_canonical() {
        let mut e = sample();
        e.signature = vec![5; 64];
        let canonical = framed(&encode_datum(&e));
        let (decoded, datum) = decode_canonical(&canonical).unwrap();
        assert_eq!(decoded, e);
        assert_eq!(datum, encode_datum(&e).as_slice());

        // A block with a byte size: the same event, other bytes, so another leaf.
        let sized = framed(&sized_block_encoding(&e));
        assert_ne!(sized, canonical);
        assert_eq!(decode_single_object(&sized).unwrap(), e, "still valid Avro");
        assert_eq!(decode_canonical(&sized), Err(DecodeError::NonCanonical));

        // An over-long varint for event_time: 0x80 continuation bytes padding it.
        let mut datum = encode_datum(&e);
        let at = 37; // after the event id's length and 36 characters
        let mut long = Vec::new();
        put_long(&mut long, e.event_time);
        let last = at + long.len() - 1;
        datum[last] |= 0x80;
        datum.insert(last + 1, 0);
        let padded = framed(&datum);
        assert_eq!(decode_single_object(&padded).unwrap(), e);
        assert_eq!(decode_canonical(&padded), Err(DecodeError::NonCanonical));
    }

    #[test]
    fn hostile_block_counts_are_refused_without_a_panic() {
        let e = sample();
        let mut head = Vec::new();
        put_bytes(&mut head, e.event_id.as_bytes());
        put_long(&mut head, e.event_time);
        put_bytes(&mut head, e.event_timezone_offset.as_bytes());
        put_long(&mut head, 0);
        put_long(&mut head, 0);
        put_long(&mut head, 0);
        for count in [i64::MIN, i64::MAX, -(MAX_LEN + 1), MAX_LEN] {
            let mut datum = head.clone();
            put_long(&mut datum, count);
            put_long(&mut datum, 1);
            assert!(decode_datum(&datum).is_err(), "count {count}");
        }
        assert_eq!(
            decode_single_object(&[0xC3, 0x01, 0, 0]),
            Err(DecodeError::NotSingleObject)
        );
        assert_eq!(decode_single_object(&[]), Err(DecodeError::NotSingleObject));
    }

    #[test]
    fn long_encoding_matches_the_spec_examples() {
        for (v, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 1]),
        ] {
            let mut out = Vec::new();
            put_long(&mut out, v);
            assert_eq!(out, bytes, "{v}");
            assert_eq!(Reader { buf: &out, pos: 0 }.long("x").unwrap(), v);
        }
    }
}
