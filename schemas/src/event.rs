//! The scan event: one scan of items at one step of their journey, modelled on the
//! GS1 EPCIS 2.0 ObjectEvent. `scan_event.avsc` is its wire contract; this is the
//! typed form every binary works with, and the rules an accepted event obeys.

use crate::country;

/// Declares an Avro enum: its symbols in schema order (the order is the wire index).
macro_rules! avro_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $symbol:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every symbol, in the schema's order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $symbol),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                match s { $($symbol => Some($name::$variant),)+ _ => None }
            }

            /// The symbol's index on the wire.
            pub fn index(self) -> u32 {
                self as u32
            }

            pub fn from_index(i: u64) -> Option<Self> {
                Self::ALL.get(usize::try_from(i).ok()?).copied()
            }

            /// The symbols joined for error messages.
            pub fn expected() -> String {
                Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ")
            }
        }
    };
}

avro_enum!(
    /// EPCIS action.
    Action { Add = "ADD", Observe = "OBSERVE", Delete = "DELETE" }
);

avro_enum!(
    /// CBV business step, with sealtrail's customs clearance extension.
    BizStep {
        Commissioning = "commissioning",
        Packing = "packing",
        Loading = "loading",
        Shipping = "shipping",
        Departing = "departing",
        Arriving = "arriving",
        Receiving = "receiving",
        Inspecting = "inspecting",
        Storing = "storing",
        CustomsClearance = "customs_clearance",
        Accepting = "accepting",
        Other = "other",
    }
);

avro_enum!(
    /// CBV disposition, with sealtrail's customs extensions.
    Disposition {
        Active = "active",
        InProgress = "in_progress",
        InTransit = "in_transit",
        ContainerClosed = "container_closed",
        Conformant = "conformant",
        NonConformant = "non_conformant",
        Damaged = "damaged",
        CustomsHold = "customs_hold",
        CustomsReleased = "customs_released",
        SellableAccessible = "sellable_accessible",
        Returned = "returned",
        Destroyed = "destroyed",
        Other = "other",
    }
);

avro_enum!(
    /// CBV business transaction type, with the customs declaration extension.
    BizTransactionType {
        Po = "po",
        Desadv = "desadv",
        Inv = "inv",
        Bol = "bol",
        CustomsDeclaration = "customs_declaration",
        Other = "other",
    }
);

/// A business document the event belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct BizTransaction {
    pub kind: BizTransactionType,
    pub id: String,
}

/// One scan event. Field order and meaning follow `scan_event.avsc`.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanEvent {
    pub event_id: String,
    /// Milliseconds since the Unix epoch, UTC.
    pub event_time: i64,
    pub event_timezone_offset: String,
    pub action: Action,
    pub biz_step: BizStep,
    pub disposition: Disposition,
    pub item_ids: Vec<String>,
    pub read_point: String,
    pub biz_location: String,
    pub country: String,
    pub biz_transactions: Vec<BizTransaction>,
    pub temperature_c: Option<f32>,
    pub relative_humidity_pct: Option<f32>,
    pub device_id: String,
    /// Ed25519 signature over the canonical bytes; empty before signing.
    pub signature: Vec<u8>,
}

/// Limits an accepted event stays within.
pub const MAX_ITEMS: usize = 100;
pub const MAX_BIZ_TRANSACTIONS: usize = 16;
pub const MAX_TEXT: usize = 256;
/// Accepted event times: 2000-01-01 to 2100-01-01, UTC.
pub const MIN_EVENT_TIME: i64 = 946_684_800_000;
pub const MAX_EVENT_TIME: i64 = 4_102_444_800_000;

/// A field that breaks a rule: which one, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl ScanEvent {
    /// The Kafka key: the first item id, so one item's events stay in one partition
    /// and keep their order.
    pub fn key(&self) -> &str {
        self.item_ids.first().map(String::as_str).unwrap_or("")
    }

    /// Checks every rule an accepted event obeys; the first broken one is returned,
    /// named by its field path.
    pub fn validate(&self) -> Result<(), FieldError> {
        if !is_uuid(&self.event_id) {
            return Err(FieldError::new(
                "event_id",
                "must be a lowercase hyphenated UUID like 0f8fad5b-d9cb-469f-a165-70867728950e",
            ));
        }
        if !(MIN_EVENT_TIME..MAX_EVENT_TIME).contains(&self.event_time) {
            return Err(FieldError::new(
                "event_time",
                "must be between 2000-01-01 and 2100-01-01",
            ));
        }
        if !is_offset(&self.event_timezone_offset) {
            return Err(FieldError::new(
                "event_timezone_offset",
                "must be +HH:MM or -HH:MM within ±14:00",
            ));
        }
        if self.item_ids.is_empty() {
            return Err(FieldError::new("item_ids", "must list at least one item"));
        }
        if self.item_ids.len() > MAX_ITEMS {
            return Err(FieldError::new(
                "item_ids",
                format!("at most {MAX_ITEMS} items per event"),
            ));
        }
        for (i, id) in self.item_ids.iter().enumerate() {
            if let Err(problem) = check_item_id(id) {
                return Err(FieldError::new(format!("item_ids[{i}]"), problem));
            }
        }
        check_location("read_point", &self.read_point)?;
        check_location("biz_location", &self.biz_location)?;
        if !country::is_alpha2(&self.country) {
            return Err(FieldError::new(
                "country",
                format!(
                    "'{}' is not an ISO 3166-1 alpha-2 code (upper case, e.g. CN, DE)",
                    self.country
                ),
            ));
        }
        if self.biz_transactions.len() > MAX_BIZ_TRANSACTIONS {
            return Err(FieldError::new(
                "biz_transactions",
                format!("at most {MAX_BIZ_TRANSACTIONS} transactions per event"),
            ));
        }
        for (i, t) in self.biz_transactions.iter().enumerate() {
            if t.id.is_empty() || t.id.len() > 128 || t.id.chars().any(char::is_control) {
                return Err(FieldError::new(
                    format!("biz_transactions[{i}].id"),
                    "must be 1 to 128 printable characters",
                ));
            }
        }
        if let Some(t) = self.temperature_c {
            if !(t.is_finite() && (-100.0..=100.0).contains(&t)) {
                return Err(FieldError::new(
                    "temperature_c",
                    "must be between -100 and 100 °C",
                ));
            }
        }
        if let Some(h) = self.relative_humidity_pct {
            if !(h.is_finite() && (0.0..=100.0).contains(&h)) {
                return Err(FieldError::new(
                    "relative_humidity_pct",
                    "must be between 0 and 100",
                ));
            }
        }
        if !is_device_id(&self.device_id) {
            return Err(FieldError::new(
                "device_id",
                "must be 1 to 64 characters of a-z, 0-9, '-', '_' or '.'",
            ));
        }
        // A version 8 id is the one an event's hash gives (epcis::id_of_hash):
        // only that event may carry it, or anyone could take the id of a
        // partner's event before it is captured.
        if crate::epcis::is_hash_id(&self.event_id)
            && self.event_id != crate::epcis::id_of_hash(&crate::event_hash::event_hash(self))
        {
            return Err(FieldError::new(
                "event_id",
                "a version 8 UUID is the id an event's GS1 hash gives, and this is not this event's: use a random (version 4) UUID",
            ));
        }
        if !self.signature.is_empty() && self.signature.len() != 64 {
            return Err(FieldError::new(
                "signature",
                "an Ed25519 signature is 64 bytes",
            ));
        }
        Ok(())
    }
}

/// 16 bytes as a lowercase hyphenated UUID.
pub fn uuid_text(b: [u8; 16]) -> String {
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

pub fn is_offset(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 6 || !(b[0] == b'+' || b[0] == b'-') || b[3] != b':' {
        return false;
    }
    let digits = |x: &[u8]| -> Option<u32> {
        x.iter()
            .all(u8::is_ascii_digit)
            .then(|| x.iter().fold(0, |a, d| a * 10 + u32::from(d - b'0')))
    };
    match (digits(&b[1..3]), digits(&b[4..6])) {
        (Some(h), Some(m)) => m < 60 && h * 60 + m <= 14 * 60,
        _ => false,
    }
}

pub fn is_device_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"-_.".contains(&c))
}

/// SGTIN pure-identity URI or GS1 Digital Link URI with a GTIN and a serial.
fn check_item_id(id: &str) -> Result<(), String> {
    if id.len() > MAX_TEXT {
        return Err(format!("longer than {MAX_TEXT} characters"));
    }
    if let Some(rest) = id.strip_prefix("urn:epc:id:sgtin:") {
        let parts: Vec<&str> = rest.split('.').collect();
        let ok = parts.len() == 3
            && parts[..2]
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()))
            && parts[0].len() + parts[1].len() == 13
            && !parts[2].is_empty()
            && parts[2].len() <= 20
            && parts[2].bytes().all(|c| c.is_ascii_graphic());
        return if ok {
            Ok(())
        } else {
            Err(format!(
                "'{id}' is not an SGTIN: urn:epc:id:sgtin:CompanyPrefix.ItemRef.Serial with 13 digits before the serial"
            ))
        };
    }
    if id.starts_with("https://") {
        if let Some(at) = id.find("/01/") {
            let rest = &id[at + 4..];
            let gtin = rest.get(..14).unwrap_or("");
            let serial = rest
                .get(14..)
                .and_then(|r| r.strip_prefix("/21/"))
                .unwrap_or("");
            if gtin.len() == 14 && gtin.bytes().all(|c| c.is_ascii_digit()) && !serial.is_empty() {
                return Ok(());
            }
        }
        return Err(format!(
            "'{id}' is not a GS1 Digital Link of an item: https://host/01/<14-digit GTIN>/21/<serial>"
        ));
    }
    Err(format!(
        "'{id}' is neither an SGTIN URI (urn:epc:id:sgtin:...) nor a GS1 Digital Link (https://.../01/.../21/...)"
    ))
}

/// SGLN URI or GS1 Digital Link with a GLN (AI 414).
fn check_location(field: &str, loc: &str) -> Result<(), FieldError> {
    let ok = loc.len() <= MAX_TEXT
        && ((loc.starts_with("urn:epc:id:sgln:") && loc.len() > 16)
            || (loc.starts_with("https://") && loc.contains("/414/")))
        && !loc.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "'{loc}' is not a location: urn:epc:id:sgln:... or a GS1 Digital Link with /414/"
            ),
        ))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn sample() -> ScanEvent {
        ScanEvent {
            event_id: "0f8fad5b-d9cb-469f-a165-70867728950e".into(),
            event_time: 1_764_064_800_123,
            event_timezone_offset: "+08:00".into(),
            action: Action::Observe,
            biz_step: BizStep::CustomsClearance,
            disposition: Disposition::CustomsReleased,
            item_ids: vec!["urn:epc:id:sgtin:0614141.812345.6789".into()],
            read_point: "urn:epc:id:sgln:0614141.00777.0".into(),
            biz_location: "urn:epc:id:sgln:0614141.00888.0".into(),
            country: "CN".into(),
            biz_transactions: vec![BizTransaction {
                kind: BizTransactionType::CustomsDeclaration,
                id: "CD-2026-000123".into(),
            }],
            temperature_c: Some(4.5),
            relative_humidity_pct: None,
            device_id: "scanner-sh-01".into(),
            signature: Vec::new(),
        }
    }

    #[test]
    fn the_sample_is_valid() {
        sample().validate().unwrap();
    }

    #[test]
    fn each_rule_names_its_field() {
        type Breaker = Box<dyn Fn(&mut ScanEvent)>;
        let cases: Vec<(&str, Breaker)> = vec![
            (
                "event_id",
                Box::new(|e| e.event_id = "0F8FAD5B-D9CB-469F-A165-70867728950E".into()),
            ),
            ("event_time", Box::new(|e| e.event_time = 5)),
            (
                "event_timezone_offset",
                Box::new(|e| e.event_timezone_offset = "+15:00".into()),
            ),
            ("item_ids", Box::new(|e| e.item_ids.clear())),
            (
                "item_ids[0]",
                Box::new(|e| e.item_ids[0] = "urn:epc:id:sgtin:1.2.3".into()),
            ),
            (
                "read_point",
                Box::new(|e| e.read_point = "warehouse 7".into()),
            ),
            ("country", Box::new(|e| e.country = "XX".into())),
            (
                "biz_transactions[0].id",
                Box::new(|e| e.biz_transactions[0].id.clear()),
            ),
            (
                "temperature_c",
                Box::new(|e| e.temperature_c = Some(f32::NAN)),
            ),
            (
                "relative_humidity_pct",
                Box::new(|e| e.relative_humidity_pct = Some(101.0)),
            ),
            ("device_id", Box::new(|e| e.device_id = "Scanner 1".into())),
            ("signature", Box::new(|e| e.signature = vec![1; 10])),
        ];
        for (field, break_it) in cases {
            let mut e = sample();
            break_it(&mut e);
            assert_eq!(e.validate().unwrap_err().field, field);
        }
    }

    #[test]
    fn digital_link_items_are_accepted() {
        let mut e = sample();
        e.item_ids = vec!["https://id.gs1.org/01/09506000134352/21/ABC123".into()];
        e.validate().unwrap();
        e.item_ids = vec!["https://id.gs1.org/01/0950600013435/21/ABC123".into()];
        assert_eq!(e.validate().unwrap_err().field, "item_ids[0]");
    }
}
