//! The GS1 CBV 2.0 event hash ID of one EPCIS 2.0 event of any type, kept whole as its
//! JSON (`json_event_hash`), computed exactly as GS1's reference implementation (PyPI
//! `epcis-event-hash-generator` 1.9.3) computes it for the event alone in a document
//!
//! ```json
//! {"@context": ["https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld", {<the event's own @context>}],
//!  "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2026-01-01T00:00:00Z",
//!  "epcisBody": {"eventList": [<the event without its @context>]}}
//! ```
//!
//! (without an own `@context`, the context is the EPCIS one alone). Partners who hash
//! the events we give back with GS1's tool get the same IDs;
//! `tests/event_hash_json_reference.rs` checks it against the tool itself.
//!
//! `event_hash` computes the same for one shape of ObjectEvent, writing its pre-hash
//! string directly. Here any event may come, and the reference's result depends on
//! the whole shape of its data, so this follows its own data model step by step:
//! 1. the JSON read as Python's `json` reads it (key order kept; a repeated key keeps
//!    its first place and its last value; numbers as Python prints them);
//! 2. the vocabulary: the CBV and GS1 Web Vocabulary URIs among the strings of pyld's
//!    JSON-LD expansion of the document. That expansion is modelled for GS1's context
//!    (copied below as tables, scoped contexts and all), the event's own prefixes,
//!    type coercion, keyword aliases (`id`, `type`, `eventID`, `bizTransaction`,
//!    `baseURL`), type-scoped contexts and pyld's relative IRI resolution; where pyld
//!    raises an error (two `@id`s in one object, a non-string `@id`, a redefined
//!    protected term…) the reference gives no hash, and neither do we;
//! 3. `json_to_py`: every string that ends exactly one vocabulary URI after `-` or `/`
//!    replaced by it, prefixes of the own `@context` written out (`{iri}local` in keys,
//!    `iri` + local in values), arrays flattened into repeated keys, siblings sorted
//!    (except in objects with a `bizTransaction`, `source` or `destination` key);
//! 4. `json_xml_model_mismatch_correction`: `…List` keys to list elements,
//!    `bizTransactionList`/`sourceList`/`destinationList` elements cut to their first
//!    two members (no hash with fewer), `childEPCs`, `quantityElement`, `epc`;
//! 5. `hash_generator`: the fields of `PROP_ORDER` in its order, the user extensions of
//!    each nested level after them, then whatever is left (the three lists above always
//!    are: the reference never matches its own entry for them), sorted; values through
//!    its canonicalisation (`canonical_into`), times to UTC milliseconds.
//!
//! Where this knowingly differs from the reference:
//! - JSON that Python reads and RFC 8259 does not (`NaN`, `Infinity`), strings with an
//!   unpaired surrogate escape, and nesting deeper than 128: no hash here (the
//!   reference hashes some of them);
//! - keys starting with `@` anywhere in the event (JSON-LD keywords, `@xmlns…`), and an
//!   own `@context` that is more than prefixes: not an object, or an entry whose key
//!   is empty, starts with `@` or holds `:` or `/`, whose value is not a string, that
//!   aliases a keyword (unless exactly as GS1's context does), or that is defined
//!   through a chain of more than 16 other entries: no hash here (the reference hashes
//!   some of them);
//! - times: only `YYYY-MM-DD(T|t| )HH:MM[:SS[(.|,)digits]][Z|z|±HH[[:]MM]]` (ASCII
//!   digits) is read as a time; the reference's `dateutil` also reads other forms
//!   (some relative to the current date) and keeps them as text here. A time without
//!   offset is read as UTC, which is what the reference does on a machine set to UTC
//!   (it uses the machine's local time zone).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;

use super::{canonical_into, digital_link, is_vocabulary, push_py_repr, py_space, py_strip};

/// The event hash ID of an event's JSON; None where the reference gives none (or the
/// text is not a JSON object).
pub fn hash(event: &str) -> Option<String> {
    pre_hash(event).map(|p| super::hash_id(&p))
}

/// The reference's pre-hash string of an event's JSON (what `hash` is the SHA-256 of).
pub fn pre_hash(event: &str) -> Option<String> {
    let Json::Obj(mut fields) = Parser::read(event)? else {
        return None;
    };
    let own = match fields.iter().position(|(k, _)| k == "@context") {
        Some(i) => match fields.remove(i).1 {
            Json::Obj(prefixes) => prefixes,
            _ => return None,
        },
        None => Vec::new(),
    };
    if has_at_key(&fields) {
        return None;
    }
    let user = User::read(&own).ok()?;
    let event = Json::Obj(fields);

    let mut expander = Expander {
        user: &user,
        found: Vec::new(),
    };
    expander
        .element(&Ctx::default(), "eventList", &event)
        .ok()?;
    let mut found = expander.found;
    found.sort_unstable();
    found.dedup();
    let doc = Doc::new(&found, &own);
    let root = doc.to_py(&event).ok()?;
    let root = correct(root).ok()?;
    prehash(root).ok()
}

/// What makes the reference give no hash (a Python exception, a pyld error), or an
/// input this port does not take.
#[derive(Debug)]
struct Fail;

type R<T> = Result<T, Fail>;

// ---- JSON, as Python's `json.loads` reads it ----

enum Json {
    Null,
    Bool(bool),
    /// Python's `str()` of the number.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    /// In the order the keys first come; a repeated key has its last value.
    Obj(Vec<(String, Json)>),
}

/// A recursive-descent reader; the nesting is bounded, so is its recursion.
struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    depth: usize,
}

/// As serde_json's default limit: no event kept is deeper.
const MAX_DEPTH: usize = 128;

/// Python refuses to read integers of more digits (`sys.int_info`).
const MAX_INT_DIGITS: usize = 4300;

impl<'a> Parser<'a> {
    fn read(text: &'a str) -> Option<Json> {
        let mut p = Parser {
            s: text,
            b: text.as_bytes(),
            i: 0,
            depth: 0,
        };
        let v = p.value()?;
        p.ws();
        (p.i == p.b.len()).then_some(v)
    }

    fn ws(&mut self) {
        while matches!(self.b.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn value(&mut self) -> Option<Json> {
        self.ws();
        match *self.b.get(self.i)? {
            b'{' | b'[' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return None;
                }
                let v = if self.b[self.i] == b'{' {
                    self.object()
                } else {
                    self.array()
                };
                self.depth -= 1;
                v
            }
            b'"' => self.string().map(Json::Str),
            b't' => self.word("true", Json::Bool(true)),
            b'f' => self.word("false", Json::Bool(false)),
            b'n' => self.word("null", Json::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn word(&mut self, w: &str, v: Json) -> Option<Json> {
        self.b[self.i..].starts_with(w.as_bytes()).then(|| {
            self.i += w.len();
            v
        })
    }

    fn object(&mut self) -> Option<Json> {
        self.i += 1;
        let mut fields: Vec<(String, Json)> = Vec::new();
        // Where each key is, once there are enough to look up.
        let mut index: HashMap<String, usize> = HashMap::new();
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(Json::Obj(fields));
        }
        loop {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            let v = self.value()?;
            let at = if fields.len() <= 16 {
                fields.iter().position(|(k, _)| *k == key)
            } else {
                if index.is_empty() {
                    index.extend(fields.iter().enumerate().map(|(i, (k, _))| (k.clone(), i)));
                }
                index.get(&key).copied()
            };
            match at {
                Some(at) => fields[at].1 = v,
                None => {
                    if !index.is_empty() {
                        index.insert(key.clone(), fields.len());
                    }
                    fields.push((key, v));
                }
            }
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(Json::Obj(fields));
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self) -> Option<Json> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat(b']').is_some() {
            return Some(Json::Arr(items));
        }
        loop {
            items.push(self.value()?);
            self.ws();
            match *self.b.get(self.i)? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(Json::Arr(items));
                }
                _ => return None,
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while self
                .b
                .get(self.i)
                .is_some_and(|&c| c != b'"' && c != b'\\' && c >= 0x20)
            {
                self.i += 1;
            }
            out.push_str(self.s.get(start..self.i)?);
            match *self.b.get(self.i)? {
                b'"' => {
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    let c = *self.b.get(self.i + 1)?;
                    self.i += 2;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let hi = self.hex4()?;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                // Python keeps an unpaired surrogate; a Rust string cannot.
                                if self.b.get(self.i..self.i + 2) != Some(b"\\u") {
                                    return None;
                                }
                                self.i += 2;
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return None;
                                }
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else {
                                hi
                            };
                            out.push(char::from_u32(cp)?);
                        }
                        _ => return None,
                    }
                }
                _ => return None, // a control character
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        let mut n = 0;
        for &c in digits {
            n = n * 16 + char::from(c).to_digit(16)?;
        }
        self.i += 4;
        Some(n)
    }

    fn number(&mut self) -> Option<Json> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let from = p.i;
            while p.b.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i - from
        };
        let _ = self.eat(b'-');
        match *self.b.get(self.i)? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        let mut float = false;
        // A `.` or an exponent without digits after it is not part of the number.
        if self.b.get(self.i) == Some(&b'.')
            && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit)
        {
            self.i += 1;
            digits(self);
            float = true;
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            let save = self.i;
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                self.i = save;
            } else {
                float = true;
            }
        }
        let text = self.s.get(start..self.i)?;
        if !float {
            let magnitude = text.trim_start_matches('-');
            if magnitude.len() > MAX_INT_DIGITS {
                return None;
            }
            return Some(Json::Num(match magnitude == "0" {
                true => "0".into(),
                false => text.into(),
            }));
        }
        let x: f64 = text.parse().ok()?;
        let mut printed = String::new();
        if x.is_infinite() {
            printed.push_str(if x < 0.0 { "-inf" } else { "inf" });
        } else {
            push_py_repr(&mut printed, x);
        }
        Some(Json::Num(printed))
    }
}

/// Whether a key anywhere starts with `@` (this port does not take JSON-LD keywords).
fn has_at_key(fields: &[(String, Json)]) -> bool {
    fn any(v: &Json) -> bool {
        match v {
            Json::Obj(f) => has_at_key(f),
            Json::Arr(items) => items.iter().any(any),
            _ => false,
        }
    }
    fields.iter().any(|(k, v)| k.starts_with('@') || any(v))
}

// ---- GS1's EPCIS 2.0 context, as pyld holds it ----

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Coerce {
    /// No `@type`: strings stay literals.
    Literal,
    /// `@type: @id`: strings are IRIs, relative to the document.
    Id,
    /// `@type: @vocab`: strings are terms, else IRIs.
    Vocab,
    /// A datatype: strings stay literals.
    Typed(&'static str),
}

/// A term definition: pyld's mapping, which two definitions are compared by when a
/// protected term is defined again.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Def<'a> {
    iri: &'a str,
    coerce: Coerce,
    set: bool,
    scope: Option<Scope>,
    /// Usable as the prefix of a compact IRI.
    prefix: bool,
}

/// The scoped contexts of GS1's context: applied to the value of their term (or to an
/// object whose `@type` is the term).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Scope {
    BizStep,
    Disp,
    PersistentDisp,
    SourceList,
    DestinationList,
    SourceType,
    BizTransactionList,
    BizTransactionType,
    SensorElementList,
    SensorMetadata,
    SensorReport,
    Measurement,
    Exception,
    Component,
    ErrorDeclaration,
    Reason,
}

type Entry = (&'static str, Def<'static>);

/// One context object of a scope: its terms, sorted by name, and whether it is
/// `@protected`.
struct Table {
    protected: bool,
    entries: &'static [Entry],
}

const fn lit(iri: &'static str) -> Def<'static> {
    Def {
        iri,
        coerce: Coerce::Literal,
        set: false,
        scope: None,
        prefix: false,
    }
}
const fn prefix(iri: &'static str) -> Def<'static> {
    let mut d = lit(iri);
    d.prefix = true;
    d
}
const fn coerced(iri: &'static str, coerce: Coerce) -> Def<'static> {
    let mut d = lit(iri);
    d.coerce = coerce;
    d
}
const fn set(mut d: Def<'static>) -> Def<'static> {
    d.set = true;
    d
}
const fn scoped(mut d: Def<'static>, scope: Scope) -> Def<'static> {
    d.scope = Some(scope);
    d
}
const ID: Coerce = Coerce::Id;
const VOCAB: Coerce = Coerce::Vocab;
const DATE_TIME_STAMP: Coerce = Coerce::Typed("http://www.w3.org/2001/XMLSchema#dateTimeStamp");
const DOUBLE: Coerce = Coerce::Typed("http://www.w3.org/2001/XMLSchema#double");

macro_rules! epcis {
    ($local:literal) => {
        concat!("https://ref.gs1.org/epcis/", $local)
    };
}

/// A vocabulary: each word a term for `$iri` + the word.
macro_rules! words {
    ($name:ident, $iri:literal, [$($w:ident),* $(,)?]) => {
        const $name: &[Entry] = &[$((stringify!($w), lit(concat!($iri, stringify!($w)))),)*];
    };
}

const EPCIS: &[Entry] = &[
    ("AggregationEvent", lit(epcis!("AggregationEvent"))),
    ("AssociationEvent", lit(epcis!("AssociationEvent"))),
    ("Collection", lit(epcis!("Collection"))),
    ("EPCISDocument", lit(epcis!("EPCISDocument"))),
    ("EPCISQueryDocument", lit(epcis!("EPCISQueryDocument"))),
    ("ObjectEvent", lit(epcis!("ObjectEvent"))),
    ("TransactionEvent", lit(epcis!("TransactionEvent"))),
    ("TransformationEvent", lit(epcis!("TransformationEvent"))),
    ("action", lit(epcis!("action"))),
    ("baseURL", lit("@base")),
    ("bizLocation", coerced(epcis!("bizLocation"), ID)),
    (
        "bizStep",
        scoped(coerced(epcis!("bizStep"), VOCAB), Scope::BizStep),
    ),
    (
        "bizTransactionList",
        scoped(
            set(lit(epcis!("bizTransactionList"))),
            Scope::BizTransactionList,
        ),
    ),
    ("cbv", prefix("https://ref.gs1.org/cbv/")),
    ("cbvmda", prefix("urn:epcglobal:cbv:mda:")),
    (
        "certificationInfo",
        set(coerced(epcis!("certificationInfo"), ID)),
    ),
    ("childEPCs", set(coerced(epcis!("childEPCs"), ID))),
    ("childQuantityList", set(lit(epcis!("childQuantityList")))),
    ("children", set(coerced(epcis!("children"), ID))),
    (
        "creationDate",
        coerced(
            "http://purl.org/dc/terms/created",
            Coerce::Typed("http://www.w3.org/2001/XMLSchema#dateTime"),
        ),
    ),
    ("dcterms", prefix("http://purl.org/dc/terms/")),
    (
        "destinationList",
        scoped(set(lit(epcis!("destinationList"))), Scope::DestinationList),
    ),
    (
        "disposition",
        scoped(coerced(epcis!("disposition"), VOCAB), Scope::Disp),
    ),
    ("epcClass", coerced(epcis!("epcClass"), ID)),
    ("epcList", set(coerced(epcis!("epcList"), ID))),
    ("epcis", prefix("https://ref.gs1.org/epcis/")),
    ("epcisBody", lit(epcis!("epcisBody"))),
    ("epcisHeader", lit(epcis!("epcisHeader"))),
    (
        "errorDeclaration",
        scoped(lit(epcis!("errorDeclaration")), Scope::ErrorDeclaration),
    ),
    ("eventID", lit("@id")),
    ("eventList", lit(epcis!("eventList"))),
    ("eventTime", coerced(epcis!("eventTime"), DATE_TIME_STAMP)),
    ("eventTimeZoneOffset", lit(epcis!("eventTimeZoneOffset"))),
    ("gs1", prefix("https://gs1.org/voc/")),
    ("id", lit("@id")),
    ("ilmd", lit(epcis!("ilmd"))),
    ("inputEPCList", set(coerced(epcis!("inputEPCList"), ID))),
    ("inputQuantityList", set(lit(epcis!("inputQuantityList")))),
    ("instanceIdentifier", lit(epcis!("instanceIdentifier"))),
    ("masterData", lit(epcis!("masterData"))),
    (
        "member",
        set(coerced("http://www.w3.org/2000/01/rdf-schema#member", ID)),
    ),
    ("outputEPCList", set(coerced(epcis!("outputEPCList"), ID))),
    ("outputQuantityList", set(lit(epcis!("outputQuantityList")))),
    ("owl", prefix("http://www.w3.org/2002/07/owl#")),
    ("parentID", coerced(epcis!("parentID"), ID)),
    (
        "persistentDisposition",
        scoped(
            set(lit(epcis!("persistentDisposition"))),
            Scope::PersistentDisp,
        ),
    ),
    ("quantity", coerced(epcis!("quantity"), DOUBLE)),
    ("quantityList", set(lit(epcis!("quantityList")))),
    ("queryName", lit(epcis!("queryName"))),
    ("queryResults", lit(epcis!("queryResults"))),
    ("rdfs", prefix("http://www.w3.org/2000/01/rdf-schema#")),
    ("readPoint", coerced(epcis!("readPoint"), ID)),
    (
        "receiver",
        coerced(
            epcis!("receiver"),
            Coerce::Typed("http://www.w3.org/2001/XMLSchema#string"),
        ),
    ),
    ("recordTime", coerced(epcis!("recordTime"), DATE_TIME_STAMP)),
    ("resultsBody", lit(epcis!("resultsBody"))),
    (
        "schemaVersion",
        lit("http://www.w3.org/2002/07/owl#versionInfo"),
    ),
    (
        "sender",
        coerced(
            epcis!("sender"),
            Coerce::Typed("http://www.w3.org/2001/XMLSchema#string"),
        ),
    ),
    (
        "sensorElementList",
        scoped(
            set(lit(epcis!("sensorElementList"))),
            Scope::SensorElementList,
        ),
    ),
    (
        "sourceList",
        scoped(set(lit(epcis!("sourceList"))), Scope::SourceList),
    ),
    ("subscriptionID", lit(epcis!("subscriptionID"))),
    ("transformationID", coerced(epcis!("transformationID"), ID)),
    ("type", lit("@type")),
    ("uom", lit(epcis!("uom"))),
    ("vocabularyList", lit(epcis!("vocabularyList"))),
    ("xsd", prefix("http://www.w3.org/2001/XMLSchema#")),
];

const EPCIS_PREFIX: Entry = ("epcis", prefix("https://ref.gs1.org/epcis/"));

words!(
    BIZ_STEP,
    "https://ref.gs1.org/cbv/BizStep-",
    [
        accepting,
        arriving,
        assembling,
        collecting,
        commissioning,
        consigning,
        creating_class_instance,
        cycle_counting,
        decommissioning,
        departing,
        destroying,
        disassembling,
        dispensing,
        encoding,
        entering_exiting,
        holding,
        inspecting,
        installing,
        killing,
        loading,
        other,
        packing,
        picking,
        receiving,
        removing,
        repackaging,
        repairing,
        replacing,
        reserving,
        retail_selling,
        sampling,
        sensor_reporting,
        shipping,
        staging_outbound,
        stock_taking,
        stocking,
        storing,
        transporting,
        unloading,
        unpacking,
        void_shipping,
    ]
);
words!(
    DISP,
    "https://ref.gs1.org/cbv/Disp-",
    [
        active,
        available,
        completeness_inferred,
        completeness_verified,
        conformant,
        container_closed,
        container_open,
        damaged,
        destroyed,
        dispensed,
        disposed,
        encoded,
        expired,
        in_progress,
        in_transit,
        inactive,
        mismatch_class,
        mismatch_instance,
        mismatch_quantity,
        needs_replacement,
        no_pedigree_match,
        non_conformant,
        non_sellable_other,
        partially_dispensed,
        recalled,
        reserved,
        retail_sold,
        returned,
        sellable_accessible,
        sellable_not_accessible,
        stolen,
        unavailable,
        unknown,
    ]
);
words!(
    SOURCE_TYPE,
    "https://ref.gs1.org/cbv/SDT-",
    [location, owning_party, possessing_party]
);
words!(
    BIZ_TRANSACTION_TYPE,
    "https://ref.gs1.org/cbv/BTT-",
    [bol, cert, desadv, inv, pedigree, po, poc, prodorder, recadv, rma, testprd, testres, upevt,]
);
words!(
    MEASUREMENT,
    "https://gs1.org/voc/",
    [
        AbsoluteHumidity,
        AbsorbedDose,
        AbsorbedDoseRate,
        Acceleration,
        Altitude,
        AmountOfSubstance,
        AmountOfSubstancePerUnitVolume,
        Angle,
        AngularAcceleration,
        AngularMomentum,
        AngularVelocity,
        Area,
        Capacitance,
        Conductance,
        Conductivity,
        Count,
        Density,
        Dimensionless,
        DoseEquivalent,
        DoseEquivalentRate,
        DynamicViscosity,
        ElectricCharge,
        ElectricCurrent,
        ElectricCurrentDensity,
        ElectricFieldStrength,
        Energy,
        Exposure,
        Force,
        Frequency,
        Illuminance,
        Inductance,
        Irradiance,
        KinematicViscosity,
        Length,
        LinearMomentum,
        Luminance,
        LuminousFlux,
        LuminousIntensity,
        MagneticFlux,
        MagneticFluxDensity,
        MagneticVectorPotential,
        Mass,
        MassConcentration,
        MassFlowRate,
        MassPerAreaTime,
        MemoryCapacity,
        MolalityOfSolute,
        MolarEnergy,
        MolarMass,
        MolarVolume,
        Power,
        Pressure,
        RadiantFlux,
        RadiantIntensity,
        Radioactivity,
        RelativeHumidity,
        Resistance,
        Resistivity,
        SolidAngle,
        SpecificVolume,
        Speed,
        SurfaceDensity,
        SurfaceTension,
        Temperature,
        Time,
        Torque,
        Voltage,
        Volume,
        VolumeFlowRate,
        VolumeFraction,
        VolumetricFlux,
        Wavenumber,
    ]
);
words!(
    EXCEPTION,
    "https://gs1.org/voc/",
    [ALARM_CONDITION, ERROR_CONDITION]
);
words!(
    COMPONENT,
    "https://ref.gs1.org/cbv/Comp-",
    [
        altitude,
        axial_distance,
        azimuth,
        easting,
        elevation_angle,
        height,
        latitude,
        longitude,
        northing,
        polar_angle,
        spherical_radius,
        x,
        y,
        z,
    ]
);
words!(
    REASON,
    "https://ref.gs1.org/cbv/ER-",
    [did_not_occur, incorrect_data]
);

const PERSISTENT_DISP: &[Entry] = &[
    EPCIS_PREFIX,
    ("set", set(coerced(epcis!("set"), VOCAB))),
    ("unset", set(coerced(epcis!("unset"), VOCAB))),
];
const SOURCE_OR_DESTINATION_TYPE: Def<'static> = scoped(
    coerced(epcis!("sourceOrDestinationType"), VOCAB),
    Scope::SourceType,
);
const SOURCE_LIST: &[Entry] = &[
    EPCIS_PREFIX,
    ("source", coerced(epcis!("sourceOrDestination"), ID)),
    ("type", SOURCE_OR_DESTINATION_TYPE),
];
const DESTINATION_LIST: &[Entry] = &[
    ("destination", coerced(epcis!("sourceOrDestination"), ID)),
    EPCIS_PREFIX,
    ("type", SOURCE_OR_DESTINATION_TYPE),
];
const BIZ_TRANSACTION_LIST: &[Entry] = &[
    ("bizTransaction", lit("@id")),
    EPCIS_PREFIX,
    (
        "type",
        scoped(
            coerced(epcis!("bizTransactionType"), VOCAB),
            Scope::BizTransactionType,
        ),
    ),
];
const SENSOR_ELEMENT_LIST: &[Entry] = &[
    (
        "dataProcessingMethod",
        coerced(epcis!("dataProcessingMethod"), ID),
    ),
    ("deviceID", coerced(epcis!("deviceID"), ID)),
    ("deviceMetadata", coerced(epcis!("deviceMetadata"), ID)),
    EPCIS_PREFIX,
    ("rawData", coerced(epcis!("rawData"), ID)),
    (
        "sensorMetadata",
        scoped(lit(epcis!("sensorMetadata")), Scope::SensorMetadata),
    ),
    (
        "sensorReport",
        scoped(lit(epcis!("sensorReport")), Scope::SensorReport),
    ),
    ("time", coerced(epcis!("time"), DATE_TIME_STAMP)),
    ("type", lit("@type")),
];
const SENSOR_METADATA: &[Entry] = &[
    ("bizRules", coerced(epcis!("bizRules"), ID)),
    ("endTime", coerced(epcis!("endTime"), DATE_TIME_STAMP)),
    EPCIS_PREFIX,
    ("startTime", coerced(epcis!("startTime"), DATE_TIME_STAMP)),
];
const SENSOR_REPORT: &[Entry] = &[
    (
        "booleanValue",
        coerced(
            epcis!("booleanValue"),
            Coerce::Typed("http://www.w3.org/2001/XMLSchema#boolean"),
        ),
    ),
    (
        "chemicalSubstance",
        coerced(epcis!("chemicalSubstance"), ID),
    ),
    (
        "component",
        scoped(coerced(epcis!("component"), VOCAB), Scope::Component),
    ),
    (
        "coordinateReferenceSystem",
        coerced(epcis!("coordinateReferenceSystem"), ID),
    ),
    EPCIS_PREFIX,
    (
        "exception",
        scoped(coerced(epcis!("exception"), VOCAB), Scope::Exception),
    ),
    (
        "hexBinaryValue",
        coerced(
            epcis!("hexBinaryValue"),
            Coerce::Typed("http://www.w3.org/2001/XMLSchema#hexBinary"),
        ),
    ),
    ("maxValue", coerced(epcis!("maxValue"), DOUBLE)),
    ("meanValue", coerced(epcis!("meanValue"), DOUBLE)),
    ("microorganism", coerced(epcis!("microorganism"), ID)),
    ("minValue", coerced(epcis!("minValue"), DOUBLE)),
    ("percRank", coerced(epcis!("percRank"), DOUBLE)),
    ("percValue", coerced(epcis!("percValue"), DOUBLE)),
    ("sDev", coerced(epcis!("sDev"), DOUBLE)),
    ("stringValue", lit(epcis!("stringValue"))),
    ("time", coerced(epcis!("time"), DATE_TIME_STAMP)),
    (
        "type",
        scoped(
            coerced(epcis!("measurementType"), VOCAB),
            Scope::Measurement,
        ),
    ),
    ("uriValue", coerced(epcis!("uriValue"), ID)),
    ("value", coerced(epcis!("value"), DOUBLE)),
];
const ERROR_DECLARATION: &[Entry] = &[
    (
        "correctiveEventIDs",
        set(coerced(epcis!("correctiveEventIDs"), ID)),
    ),
    (
        "declarationTime",
        coerced(epcis!("declarationTime"), DATE_TIME_STAMP),
    ),
    EPCIS_PREFIX,
    (
        "reason",
        scoped(coerced(epcis!("reason"), VOCAB), Scope::Reason),
    ),
];

const fn open(entries: &'static [Entry]) -> Table {
    Table {
        protected: false,
        entries,
    }
}
const fn protected(entries: &'static [Entry]) -> Table {
    Table {
        protected: true,
        entries,
    }
}

/// A scope's context objects, in the order they are applied.
fn tables(s: Scope) -> &'static [Table] {
    const BIZ_STEP_T: &[Table] = &[open(BIZ_STEP)];
    const DISP_T: &[Table] = &[open(DISP)];
    const PERSISTENT_DISP_T: &[Table] = &[open(DISP), protected(PERSISTENT_DISP)];
    const SOURCE_LIST_T: &[Table] = &[protected(SOURCE_LIST)];
    const DESTINATION_LIST_T: &[Table] = &[protected(DESTINATION_LIST)];
    const SOURCE_TYPE_T: &[Table] = &[open(SOURCE_TYPE)];
    const BIZ_TRANSACTION_LIST_T: &[Table] = &[protected(BIZ_TRANSACTION_LIST)];
    const BIZ_TRANSACTION_TYPE_T: &[Table] = &[open(BIZ_TRANSACTION_TYPE)];
    const SENSOR_ELEMENT_LIST_T: &[Table] = &[protected(SENSOR_ELEMENT_LIST)];
    const SENSOR_METADATA_T: &[Table] = &[protected(SENSOR_METADATA)];
    const SENSOR_REPORT_T: &[Table] = &[protected(SENSOR_REPORT)];
    const MEASUREMENT_T: &[Table] = &[open(MEASUREMENT)];
    const EXCEPTION_T: &[Table] = &[open(EXCEPTION)];
    const COMPONENT_T: &[Table] = &[open(COMPONENT)];
    const ERROR_DECLARATION_T: &[Table] = &[protected(ERROR_DECLARATION)];
    const REASON_T: &[Table] = &[open(REASON)];
    match s {
        Scope::BizStep => BIZ_STEP_T,
        Scope::Disp => DISP_T,
        Scope::PersistentDisp => PERSISTENT_DISP_T,
        Scope::SourceList => SOURCE_LIST_T,
        Scope::DestinationList => DESTINATION_LIST_T,
        Scope::SourceType => SOURCE_TYPE_T,
        Scope::BizTransactionList => BIZ_TRANSACTION_LIST_T,
        Scope::BizTransactionType => BIZ_TRANSACTION_TYPE_T,
        Scope::SensorElementList => SENSOR_ELEMENT_LIST_T,
        Scope::SensorMetadata => SENSOR_METADATA_T,
        Scope::SensorReport => SENSOR_REPORT_T,
        Scope::Measurement => MEASUREMENT_T,
        Scope::Exception => EXCEPTION_T,
        Scope::Component => COMPONENT_T,
        Scope::ErrorDeclaration => ERROR_DECLARATION_T,
        Scope::Reason => REASON_T,
    }
}

/// Whether a name is a JSON-LD keyword or a term of GS1's EPCIS context, at its
/// top or in any of its scoped contexts: what a document may not define as a
/// prefix of its own (it would change what a standard key or value means).
pub fn is_gs1_term(name: &str) -> bool {
    const SCOPES: [Scope; 16] = [
        Scope::BizStep,
        Scope::Disp,
        Scope::PersistentDisp,
        Scope::SourceList,
        Scope::DestinationList,
        Scope::SourceType,
        Scope::BizTransactionList,
        Scope::BizTransactionType,
        Scope::SensorElementList,
        Scope::SensorMetadata,
        Scope::SensorReport,
        Scope::Measurement,
        Scope::Exception,
        Scope::Component,
        Scope::ErrorDeclaration,
        Scope::Reason,
    ];
    is_keyword(name)
        || name == EPCIS_PREFIX.0
        || EPCIS.iter().any(|(t, _)| *t == name)
        || SCOPES.iter().any(|s| {
            tables(*s)
                .iter()
                .any(|t| t.entries.iter().any(|(n, _)| *n == name))
        })
}

fn find(entries: &'static [Entry], term: &str) -> Option<Def<'static>> {
    entries
        .binary_search_by(|(name, _)| (*name).cmp(term))
        .ok()
        .map(|i| entries[i].1)
}

/// pyld's keywords.
fn is_keyword(v: &str) -> bool {
    v.starts_with('@')
        && matches!(
            v,
            "@base"
                | "@container"
                | "@context"
                | "@default"
                | "@direction"
                | "@embed"
                | "@explicit"
                | "@first"
                | "@graph"
                | "@id"
                | "@import"
                | "@included"
                | "@index"
                | "@json"
                | "@language"
                | "@list"
                | "@nest"
                | "@none"
                | "@omitDefault"
                | "@propagate"
                | "@protected"
                | "@preserve"
                | "@requireAll"
                | "@reverse"
                | "@set"
                | "@type"
                | "@value"
                | "@version"
                | "@vocab"
        )
}

/// Python's `re.match(r'^@[a-zA-Z]+$', v)`; `$` also matches before a final newline.
fn looks_like_keyword(v: &str) -> bool {
    let v = v.strip_suffix('\n').unwrap_or(v);
    v.strip_prefix('@')
        .is_some_and(|w| !w.is_empty() && w.bytes().all(|c| c.is_ascii_alphabetic()))
}

/// pyld's `_is_absolute_iri`: `^([A-Za-z][A-Za-z0-9+-.]*|_):[^\s]*$` (`+-.` is the
/// range `+,-.`).
fn is_absolute_iri(v: &str) -> bool {
    let Some((scheme, rest)) = v.split_once(':') else {
        return false;
    };
    let mut s = scheme.bytes();
    let scheme_ok = scheme == "_"
        || (s.next().is_some_and(|c| c.is_ascii_alphabetic())
            && s.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b',' | b'-' | b'.')));
    let rest = rest.strip_suffix('\n').unwrap_or(rest);
    scheme_ok && !rest.chars().any(py_space)
}

/// `re.match(r'.*[:/\?#\[\]@]$', iri)`: whether a simple term's IRI makes it a prefix.
fn ends_with_gen_delim(iri: &str) -> bool {
    let b = iri.as_bytes();
    let at = |k: usize| !b[..k].contains(&b'\n') && b":/?#[]@".contains(&b[k]);
    let n = b.len();
    (n >= 1 && at(n - 1)) || (n >= 2 && b[n - 1] == b'\n' && at(n - 2))
}

// ---- the event's own @context ----

/// The event's own prefixes as terms of the active context (those that are not GS1's
/// own already).
struct User<'a> {
    terms: HashMap<&'a str, (String, bool)>,
}

#[derive(Clone, Copy, PartialEq)]
enum Defining {
    Now,
    Done,
}

/// How deep one prefix may be defined through others.
const MAX_CHAIN: usize = 16;

impl<'a> User<'a> {
    fn read(own: &'a [(String, Json)]) -> R<User<'a>> {
        let mut values: HashMap<&'a str, &'a str> = HashMap::new();
        for (k, v) in own {
            let Json::Str(v) = v else { return Err(Fail) };
            if k.is_empty() || k.starts_with('@') || k.contains([':', '/']) {
                return Err(Fail);
            }
            values.insert(k.as_str(), v.as_str());
        }
        let mut user = User {
            terms: HashMap::new(),
        };
        let mut state = HashMap::new();
        for (k, _) in own {
            user.define(k.as_str(), &values, &mut state, 0)?;
        }
        Ok(user)
    }

    /// pyld's `_create_term_definition` for a string value.
    fn define(
        &mut self,
        term: &'a str,
        values: &HashMap<&'a str, &'a str>,
        state: &mut HashMap<&'a str, Defining>,
        depth: usize,
    ) -> R<()> {
        match state.get(term) {
            Some(Defining::Done) => return Ok(()),
            Some(Defining::Now) => return Err(Fail), // a cycle
            None if depth > MAX_CHAIN => return Err(Fail),
            None => {}
        }
        state.insert(term, Defining::Now);
        let value = *values.get(term).ok_or(Fail)?;
        if looks_like_keyword(value) && !is_keyword(value) {
            // Ignored by pyld (with a warning): the term stays undefined.
            state.insert(term, Defining::Done);
            return Ok(());
        }
        if value == term {
            return Err(Fail); // no @vocab to make it an IRI
        }
        let iri = if is_keyword(value) {
            value.to_string()
        } else {
            self.expand(value, values, state, depth)?
        };
        if !is_absolute_iri(&iri) && !is_keyword(&iri) {
            return Err(Fail);
        }
        let new = Def {
            iri: &iri,
            prefix: iri.starts_with("_:") || ends_with_gen_delim(&iri),
            ..lit("")
        };
        match find(EPCIS, term) {
            // GS1's terms are protected: only the same definition again.
            Some(old) if old == new => {}
            Some(_) => return Err(Fail),
            None if is_keyword(&iri) => return Err(Fail), // a keyword alias of its own
            None => {
                let prefix = new.prefix;
                self.terms.insert(term, (iri, prefix));
            }
        }
        state.insert(term, Defining::Done);
        Ok(())
    }

    /// pyld's `_expand_iri` (vocab, no base) during context processing.
    fn expand(
        &mut self,
        value: &'a str,
        values: &HashMap<&'a str, &'a str>,
        state: &mut HashMap<&'a str, Defining>,
        depth: usize,
    ) -> R<String> {
        if values.contains_key(value) && state.get(value) != Some(&Defining::Done) {
            self.define(value, values, state, depth + 1)?;
        }
        if let Some(d) = self.base_lookup(value) {
            return Ok(d.iri.to_string());
        }
        if let Some(c) = value.find(':').filter(|&c| c > 0) {
            let (p, suffix) = (&value[..c], &value[c + 1..]);
            if p == "_" || suffix.starts_with("//") {
                return Ok(value.to_string());
            }
            if values.contains_key(p) && state.get(p) != Some(&Defining::Done) {
                self.define(p, values, state, depth + 1)?;
            }
            if let Some(d) = self.base_lookup(p).filter(|d| d.prefix) {
                return Ok(format!("{}{suffix}", d.iri));
            }
        }
        Ok(value.to_string())
    }

    /// A term of GS1's context or of these prefixes.
    fn base_lookup(&self, term: &str) -> Option<Def<'_>> {
        match self.terms.get(term) {
            Some((iri, prefix)) => Some(Def {
                iri: iri.as_str(),
                prefix: *prefix,
                ..lit("")
            }),
            None => find(EPCIS, term),
        }
    }
}

// ---- pyld's expansion, as far as the vocabulary needs it ----

/// The active context: the scoped contexts applied over GS1's and the event's own
/// (the last applied first to look in), and the context before the first type-scoped
/// context (what nested objects revert to).
#[derive(Clone, Default)]
struct Ctx {
    /// Each scope once: applied again, a scope redefines all of its terms, so its older
    /// place shadows nothing. At most one of each, so lookups stay short however deep
    /// the event.
    layers: Vec<Scope>,
    previous: Option<Vec<Scope>>,
}

impl Ctx {
    /// A property-scoped context (it propagates).
    fn with(mut self, s: Scope) -> Ctx {
        if self.layers.last() != Some(&s) {
            self.layers.retain(|l| *l != s);
            self.layers.push(s);
        }
        self
    }

    fn reverted(&self) -> Ctx {
        match &self.previous {
            Some(layers) => Ctx {
                layers: layers.clone(),
                previous: None,
            },
            None => self.clone(),
        }
    }
}

struct Expander<'u> {
    user: &'u User<'u>,
    /// The vocabulary URIs met.
    found: Vec<String>,
}

impl<'u> Expander<'u> {
    fn lookup(&self, ctx: &Ctx, term: &str) -> Option<(Def<'u>, bool)> {
        for s in ctx.layers.iter().rev() {
            for t in tables(*s).iter().rev() {
                if let Some(d) = find(t.entries, term) {
                    return Some((d, t.protected));
                }
            }
        }
        let user: &'u User<'u> = self.user;
        if let Some((iri, prefix)) = user.terms.get(term) {
            let d = Def {
                iri: iri.as_str(),
                prefix: *prefix,
                ..lit("")
            };
            return Some((d, false));
        }
        find(EPCIS, term).map(|d| (d, true))
    }

    /// A key's IRI (`_expand_iri`, vocab, no base); None for null.
    fn key<'k>(&self, ctx: &Ctx, key: &'k str) -> Option<Cow<'k, str>>
    where
        'u: 'k,
    {
        if is_keyword(key) {
            return Some(Cow::Borrowed(key));
        }
        if looks_like_keyword(key) {
            return None;
        }
        if let Some((d, _)) = self.lookup(ctx, key) {
            return Some(Cow::Borrowed(d.iri));
        }
        if let Some(c) = key.find(':').filter(|&c| c > 0) {
            let (p, suffix) = (&key[..c], &key[c + 1..]);
            if p != "_" && !suffix.starts_with("//") {
                if let Some((d, _)) = self.lookup(ctx, p).filter(|(d, _)| d.prefix) {
                    return Some(Cow::Owned(format!("{}{suffix}", d.iri)));
                }
            }
        }
        Some(Cow::Borrowed(key))
    }

    /// A string value's IRI (`_expand_iri` with the document's empty base), where it can
    /// be a vocabulary URI; None where it cannot.
    fn value_iri<'v>(&self, ctx: &Ctx, v: &'v str, vocab: bool) -> Option<Cow<'v, str>>
    where
        'u: 'v,
    {
        if is_keyword(v) || looks_like_keyword(v) {
            return None;
        }
        if vocab {
            if let Some((d, _)) = self.lookup(ctx, v) {
                return Some(Cow::Borrowed(d.iri));
            }
        }
        if let Some(c) = v.find(':').filter(|&c| c > 0) {
            let (p, suffix) = (&v[..c], &v[c + 1..]);
            if p == "_" || suffix.starts_with("//") {
                return Some(Cow::Borrowed(v));
            }
            if let Some((d, _)) = self.lookup(ctx, p).filter(|(d, _)| d.prefix) {
                return Some(Cow::Owned(format!("{}{suffix}", d.iri)));
            }
            if is_absolute_iri(v) {
                return Some(Cow::Borrowed(v));
            }
        }
        // Resolved against http://example.org/base/: only what has a scheme of its own
        // keeps it (an empty value, a query or a fragment is appended to the base).
        if v.starts_with(['?', '#']) {
            return None;
        }
        let c = v.find(':')?;
        Some(Cow::Owned(remove_dot_segments_of_path(v, c)))
    }

    fn add(&mut self, v: Option<Cow<'_, str>>) {
        if let Some(v) = v.filter(|v| is_vocabulary(v)) {
            self.found.push(v.into_owned());
        }
    }

    /// `_expand` of a property's value (`ap` is the property).
    fn element(&mut self, ctx: &Ctx, ap: &str, el: &Json) -> R<()> {
        match el {
            Json::Null | Json::Bool(_) | Json::Num(_) => Ok(()),
            Json::Str(s) => {
                self.string_value(ctx, ap, s);
                Ok(())
            }
            Json::Arr(items) => items.iter().try_for_each(|e| self.element(ctx, ap, e)),
            Json::Obj(fields) => self.node(ctx, ap, fields),
        }
    }

    /// `_expand_value` of a string.
    fn string_value(&mut self, ctx: &Ctx, ap: &str, s: &str) {
        let ap_iri = self.key(ctx, ap);
        let v = match ap_iri.as_deref() {
            Some("@id") => self.value_iri(ctx, s, false),
            Some("@type") => self.value_iri(ctx, s, true),
            _ => match self.lookup(ctx, ap).map(|(d, _)| d.coerce) {
                Some(Coerce::Id) => self.value_iri(ctx, s, false),
                Some(Coerce::Vocab) => self.value_iri(ctx, s, true),
                _ => Some(Cow::Borrowed(s)),
            },
        };
        self.add(v);
    }

    /// `_expand` of an object: the node object of a property.
    fn node(&mut self, outer: &Ctx, ap: &str, fields: &[(String, Json)]) -> R<()> {
        let property_scope = self.lookup(outer, ap).and_then(|(d, _)| d.scope);
        // Below a type-scoped context the context reverts, except for a reference to a
        // node (an object of one `@id`).
        let keep = outer.previous.is_some()
            && fields.len() == 1
            && self.key(outer, &fields[0].0).as_deref() == Some("@id");
        let mut ctx = if keep {
            outer.clone()
        } else {
            outer.reverted()
        };
        if let Some(s) = property_scope {
            ctx = ctx.with(s);
        }
        let mut sorted: Vec<&(String, Json)> = fields.iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));

        // Type-scoped contexts, looked up in the context before any of them.
        let mut typed: Option<Ctx> = None;
        for (k, v) in &sorted {
            if self.key(typed.as_ref().unwrap_or(&ctx), k).as_deref() != Some("@type") {
                continue;
            }
            let mut types: Vec<&str> = match v {
                Json::Str(t) => vec![t],
                Json::Arr(items) => items
                    .iter()
                    .filter_map(|t| match t {
                        Json::Str(t) => Some(t.as_str()),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            };
            types.sort_unstable();
            for t in types {
                if let Some(s) = self.lookup(&ctx, t).and_then(|(d, _)| d.scope) {
                    let current = typed.take().unwrap_or_else(|| ctx.clone());
                    typed = Some(self.type_scoped(current, s)?);
                }
            }
        }
        let before_types = &ctx;
        let ctx = typed.as_ref().unwrap_or(&ctx);

        let mut has_id = false;
        for (k, v) in sorted {
            let Some(iri) = self.key(ctx, k) else {
                continue; // dropped
            };
            let keyword = is_keyword(&iri);
            if !keyword && !is_absolute_iri(&iri) {
                continue; // dropped, its value unseen
            }
            match iri.as_ref() {
                "@id" => {
                    if has_id {
                        return Err(Fail); // colliding keywords
                    }
                    has_id = true;
                    let Json::Str(s) = v else { return Err(Fail) };
                    let id = self.value_iri(ctx, s, false);
                    self.add(id);
                }
                "@type" => match v {
                    Json::Str(s) => {
                        let t = self.value_iri(before_types, s, true);
                        self.add(t);
                    }
                    Json::Arr(items) => {
                        for t in items {
                            let Json::Str(s) = t else { return Err(Fail) };
                            let t = self.value_iri(before_types, s, true);
                            self.add(t);
                        }
                    }
                    _ => return Err(Fail),
                },
                _ => match self.lookup(ctx, k).and_then(|(d, _)| d.scope) {
                    Some(s) => self.element(&ctx.clone().with(s), k, v)?,
                    None => self.element(ctx, k, v)?,
                },
            }
        }
        Ok(())
    }

    /// A type-scoped context (it does not propagate, and may not redefine a protected
    /// term otherwise).
    fn type_scoped(&self, mut ctx: Ctx, s: Scope) -> R<Ctx> {
        for t in tables(s) {
            // Only a name some protected context defines can be protected here; most
            // are vocabulary words no other context has.
            for (name, def) in t.entries.iter().filter(|(name, _)| may_be_protected(name)) {
                if let Some((old, true)) = self.lookup(&ctx, name) {
                    if old != *def {
                        return Err(Fail);
                    }
                }
            }
        }
        if ctx.previous.is_none() {
            ctx.previous = Some(ctx.layers.clone());
        }
        Ok(ctx.with(s))
    }
}

/// Whether GS1's context or one of its protected scoped contexts defines `name`.
fn may_be_protected(name: &str) -> bool {
    const PROTECTED: &[&[Entry]] = &[
        EPCIS,
        PERSISTENT_DISP,
        SOURCE_LIST,
        DESTINATION_LIST,
        BIZ_TRANSACTION_LIST,
        SENSOR_ELEMENT_LIST,
        SENSOR_METADATA,
        SENSOR_REPORT,
        ERROR_DECLARATION,
    ];
    PROTECTED.iter().any(|t| find(t, name).is_some())
}

/// pyld's `remove_dot_segments_of_path` (iri_resolver.py).
fn remove_dot_segments_of_path(iri: &str, colon: usize) -> String {
    let b = iri.as_bytes();
    let search = if b.len() > colon + 2 && b[colon + 1] == b'/' && b[colon + 2] == b'/' {
        colon + 3
    } else {
        colon + 1
    };
    match iri.get(search..).and_then(|r| r.find('/')) {
        Some(j) => {
            let at = search + j;
            let mut out = iri[..at].to_string();
            out.push_str(&remove_dot_segments(&iri[at..]));
            out
        }
        None => iri.to_string(),
    }
}

/// pyld's `remove_dot_segments` (iri_resolver.py), which always starts with `/`.
fn remove_dot_segments(path: &str) -> String {
    let b = path.as_bytes();
    let n = b.len();
    let allowed_after = |i: usize| matches!(b.get(i), None | Some(b'#' | b'?' | b'/'));
    let mut segments: Vec<String> = Vec::new();
    let mut i = 0;
    while i < n {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'.') => {
                if b.get(i + 2) == Some(&b'.') {
                    if !allowed_after(i + 3) {
                        segments.push(String::new());
                        i += 1;
                        continue;
                    }
                    segments.pop();
                    if i + 3 >= n {
                        segments.push(String::new());
                    }
                    i += 3;
                    continue;
                }
                if !allowed_after(i + 2) {
                    segments.push(String::new());
                    i += 1;
                    continue;
                }
                if i + 2 >= n {
                    segments.push(String::new());
                }
                i += 2;
            }
            b'/' => {
                segments.push(String::new());
                i += 1;
            }
            b'#' | b'?' => {
                if segments.is_empty() {
                    segments.push(String::new());
                }
                if let Some(last) = segments.last_mut() {
                    last.push_str(&path[i..]);
                }
                break;
            }
            _ => {
                let j = b[i..]
                    .iter()
                    .position(|c| matches!(c, b'/' | b'#' | b'?'))
                    .map_or(n, |j| i + j);
                if segments.is_empty() {
                    segments.push(String::new());
                }
                if let Some(last) = segments.last_mut() {
                    last.push_str(&path[i..j]);
                }
                i = j;
            }
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    out.push('/');
    out.push_str(&segments.join("/"));
    out
}

// ---- json_to_py, with the bare strings replaced ----

/// What the reference knows of the document when it reads the event: the vocabulary
/// and the own prefixes.
struct Doc<'a> {
    /// Each tail of a vocabulary URI after a `-` or `/`: how many URIs end so, and one.
    tails: HashMap<&'a str, (usize, &'a str)>,
    /// Each own prefix and its namespace (`{iri}`, the IRI replaced as a value is).
    namespaces: HashMap<&'a str, String>,
}

impl<'a> Doc<'a> {
    fn new(vocabulary: &'a [String], own: &'a [(String, Json)]) -> Doc<'a> {
        let mut tails: HashMap<&'a str, (usize, &'a str)> = HashMap::new();
        for uri in vocabulary {
            for (i, c) in uri.bytes().enumerate() {
                if c == b'-' || c == b'/' {
                    let e = tails.entry(&uri[i + 1..]).or_insert((0, uri.as_str()));
                    e.0 += 1;
                }
            }
        }
        let mut d = Doc {
            tails,
            namespaces: HashMap::new(),
        };
        for (k, v) in own {
            if let Json::Str(v) = v {
                let ns = format!("{{{}}}", d.bare(v));
                d.namespaces.insert(k.as_str(), ns);
            }
        }
        d
    }

    /// The reference's bare-string replacement: a string that ends exactly one
    /// vocabulary URI after a `-` or `/` becomes that URI.
    fn bare<'s>(&self, v: &'s str) -> &'s str
    where
        'a: 's,
    {
        match self.tails.get(v) {
            Some(&(1, uri)) => uri,
            _ => v,
        }
    }

    /// `_namespace_replace`: a key's own prefix written out as `{iri}`; in values, the
    /// IRI without any braces.
    fn with_namespace<'s>(&self, text: &'s str, value: bool) -> Cow<'s, str> {
        let Some((p, local)) = text.split_once(':') else {
            return Cow::Borrowed(text);
        };
        match self.namespaces.get(p) {
            Some(ns) if value => Cow::Owned(ns.replace(['{', '}'], "") + local),
            Some(ns) => Cow::Owned(format!("{ns}{local}")),
            None => Cow::Borrowed(text),
        }
    }

    /// A `type` or `#text` member as the reference holds it (strings in it replaced).
    fn py(&self, v: &Json) -> Py {
        match v {
            Json::Str(s) => Py::Str(self.bare(s).to_string()),
            Json::Null => Py::Null,
            Json::Bool(b) => Py::Int(false, if *b { "1" } else { "0" }.into()),
            Json::Num(printed) if printed.contains(['.', 'e', 'n']) => {
                Py::Float(match printed.as_str() {
                    "inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    p => p.parse().unwrap_or(f64::NAN),
                })
            }
            Json::Num(printed) => match printed.strip_prefix('-') {
                Some(digits) => Py::Int(true, digits.into()),
                None => Py::Int(false, printed.clone()),
            },
            Json::Arr(items) => Py::List(items.iter().map(|e| self.py(e)).collect()),
            Json::Obj(fields) => Py::Dict(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), self.py(v)))
                    .collect(),
            ),
        }
    }

    /// `_json_to_py`.
    fn to_py(&self, v: &Json) -> R<Node> {
        let unsorted = |k: &str| matches!(k, "bizTransaction" | "source" | "destination");
        match v {
            Json::Arr(items) => {
                let mut children = items
                    .iter()
                    .map(|e| self.to_py(e).map(Item::Node))
                    .collect::<R<Vec<_>>>()?;
                // `k in list`: an item that is one of the three words.
                if !items
                    .iter()
                    .any(|e| matches!(e, Json::Str(s) if unsorted(self.bare(s))))
                {
                    py_sort(&mut children)?;
                }
                Ok(Node::new(Py::Str(String::new()), children))
            }
            Json::Obj(fields) => {
                let get = |k: &str| fields.iter().find(|(key, _)| key == k).map(|(_, v)| v);
                let name = get("type").map_or(Py::Str(String::new()), |t| self.py(t));
                let text = get("#text").map_or(Py::Str(String::new()), |t| self.py(t));
                let mut children = Vec::with_capacity(fields.len());
                for (k, val) in fields {
                    if matches!(k.as_str(), "#text" | "rdfs:comment" | "comment") {
                        continue;
                    }
                    let child = self.to_py(val)?;
                    let key = self.with_namespace(k, false).into_owned();
                    if matches!(val, Json::Arr(_)) {
                        for e in child.children {
                            if let Item::Node(e) = e {
                                children.push(Item::Node(Node {
                                    name: Py::Str(key.clone()),
                                    text: e.text,
                                    children: e.children,
                                }));
                            }
                        }
                    } else {
                        children.push(Item::Node(Node {
                            name: Py::Str(key),
                            text: child.text,
                            children: child.children,
                        }));
                    }
                }
                if !fields.iter().any(|(k, _)| unsorted(k)) {
                    py_sort(&mut children)?;
                }
                Ok(Node {
                    name,
                    text,
                    children,
                })
            }
            Json::Str(s) => Ok(Node::leaf(
                self.with_namespace(self.bare(s), true).into_owned(),
            )),
            Json::Num(printed) => Ok(Node::leaf(printed.clone())),
            Json::Bool(b) => Ok(Node::leaf(if *b { "True" } else { "False" }.into())),
            Json::Null => Ok(Node::leaf("None".into())),
        }
    }
}

/// A name or text of the reference's triples: a string, or (from a `type` or `#text`
/// member) another JSON value as Python holds it.
#[derive(Debug, Clone)]
enum Py {
    Str(String),
    Null,
    /// An int (a bool is one): negative, and its digits (no leading zeros).
    Int(bool, String),
    Float(f64),
    List(Vec<Py>),
    Dict(Vec<(String, Py)>),
}

impl Py {
    fn truthy(&self) -> bool {
        match self {
            Py::Str(s) => !s.is_empty(),
            Py::Null => false,
            Py::Int(_, digits) => digits != "0",
            Py::Float(x) => *x != 0.0,
            Py::List(items) => !items.is_empty(),
            Py::Dict(fields) => !fields.is_empty(),
        }
    }
    /// The string; anything else fails where the reference uses a string.
    fn str(&self) -> R<&str> {
        match self {
            Py::Str(s) => Ok(s),
            _ => Err(Fail),
        }
    }
    /// Python's `==` with a string (never an error).
    fn is(&self, s: &str) -> bool {
        matches!(self, Py::Str(v) if v == s)
    }
}

/// Python's `==`.
fn py_eq(a: &Py, b: &Py) -> bool {
    match (a, b) {
        (Py::Str(x), Py::Str(y)) => x == y,
        (Py::Null, Py::Null) => true,
        (Py::List(x), Py::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Py::Dict(x), Py::Dict(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| k == k2 && py_eq(v, v2)))
        }
        _ => number_order(a, b) == Some(Ordering::Equal),
    }
}

/// Python's order of two values (`<` where they are not `==`); it fails (TypeError)
/// between values of kinds that have none.
fn py_order(a: &Py, b: &Py) -> R<Ordering> {
    if py_eq(a, b) {
        return Ok(Ordering::Equal);
    }
    match (a, b) {
        (Py::Str(x), Py::Str(y)) => Ok(x.cmp(y)),
        (Py::List(x), Py::List(y)) => {
            for (p, q) in x.iter().zip(y) {
                if !py_eq(p, q) {
                    return py_order(p, q);
                }
            }
            Ok(x.len().cmp(&y.len()))
        }
        _ => number_order(a, b).ok_or(Fail),
    }
}

/// Python's exact order of two numbers (ints, bools and floats); None for others.
fn number_order(a: &Py, b: &Py) -> Option<Ordering> {
    fn ints(a: (bool, &str), b: (bool, &str)) -> Ordering {
        let magnitude = |x: &str, y: &str| x.len().cmp(&y.len()).then(x.cmp(y));
        match (a.0, b.0) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => magnitude(a.1, b.1),
            (true, true) => magnitude(b.1, a.1),
        }
    }
    fn int_float(negative: bool, digits: &str, x: f64) -> Option<Ordering> {
        if x.is_nan() {
            return None;
        }
        if x.is_infinite() {
            return Some(if x > 0.0 {
                Ordering::Less
            } else {
                Ordering::Greater
            });
        }
        // The float's floor exactly, as an int.
        let floor = format!("{:.0}", x.floor());
        let (f_negative, f_digits) = match floor.strip_prefix('-') {
            Some(d) => (d != "0", d),
            None => (false, floor.as_str()),
        };
        Some(match ints((negative, digits), (f_negative, f_digits)) {
            Ordering::Equal if x != x.floor() => Ordering::Less,
            o => o,
        })
    }
    match (a, b) {
        (Py::Int(n, d), Py::Int(m, e)) => Some(ints((*n, d), (*m, e))),
        (Py::Float(x), Py::Float(y)) => x.partial_cmp(y),
        (Py::Int(n, d), Py::Float(x)) => int_float(*n, d, *x),
        (Py::Float(x), Py::Int(n, d)) => int_float(*n, d, *x).map(Ordering::reverse),
        _ => None,
    }
}

/// The reference's `(name, text, children)`.
#[derive(Debug, Clone)]
struct Node {
    name: Py,
    text: Py,
    children: Vec<Item>,
}

/// A child: a triple, or the pair a `bizTransactionList`, `sourceList` or
/// `destinationList` element is cut to.
#[derive(Debug, Clone)]
enum Item {
    Node(Node),
    Pair(Box<(Node, Node)>),
}

impl Node {
    fn new(name: Py, children: Vec<Item>) -> Node {
        Node {
            name,
            text: Py::Str(String::new()),
            children,
        }
    }
    fn leaf(text: String) -> Node {
        Node {
            name: Py::Str(String::new()),
            text: Py::Str(text),
            children: Vec::new(),
        }
    }
    fn named(name: &str, text: Py, children: Vec<Item>) -> Node {
        Node {
            name: Py::Str(name.to_string()),
            text,
            children,
        }
    }
}

/// Python's `list.sort()` of triples: by name, text, then children.
fn py_sort(items: &mut [Item]) -> R<()> {
    let mut failed = false;
    items.sort_by(|a, b| {
        py_cmp(a, b).unwrap_or_else(|_| {
            failed = true;
            Ordering::Equal
        })
    });
    if failed {
        Err(Fail)
    } else {
        Ok(())
    }
}

fn py_cmp(a: &Item, b: &Item) -> R<Ordering> {
    let (Item::Node(a), Item::Node(b)) = (a, b) else {
        return Err(Fail); // pairs are never sorted here
    };
    // Python compares the first members that differ.
    for (x, y) in [(&a.name, &b.name), (&a.text, &b.text)] {
        let o = match (x, y) {
            (Py::Str(x), Py::Str(y)) => x.cmp(y),
            _ => py_order(x, y)?,
        };
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    for (x, y) in a.children.iter().zip(&b.children) {
        let o = py_cmp(x, y)?;
        if o != Ordering::Equal {
            return Ok(o);
        }
    }
    Ok(a.children.len().cmp(&b.children.len()))
}

// ---- json_xml_model_mismatch_correction ----

/// The lists whose elements become pairs.
fn is_pair_list(name: &str) -> bool {
    matches!(
        name,
        "sourceList" | "destinationList" | "bizTransactionList"
    )
}

/// `deep_structure_correction`.
fn correct(node: Node) -> R<Node> {
    let Node {
        name,
        text,
        children,
    } = node;
    let mut rest: Vec<Item> = Vec::with_capacity(children.len());
    let mut lists: Vec<(String, Vec<Node>)> = Vec::new();
    for item in children {
        match item {
            Item::Node(n) => {
                let list = n.name.str()?.strip_suffix("List").map(str::to_string);
                match list {
                    Some(short) => {
                        let long = format!("{short}List");
                        let element = Node::named(&short, n.text, n.children);
                        match lists.iter_mut().find(|(l, _)| *l == long) {
                            Some((_, elements)) => elements.push(element),
                            None => lists.push((long, vec![element])),
                        }
                    }
                    None => rest.push(Item::Node(n)),
                }
            }
            pair => rest.push(pair),
        }
    }
    for (list, elements) in lists {
        let children = if is_pair_list(&list) {
            elements
                .into_iter()
                .map(|e| {
                    let mut members = e.children.into_iter();
                    match (members.next(), members.next()) {
                        (Some(Item::Node(a)), Some(Item::Node(b))) => {
                            Ok(Item::Pair(Box::new((a, b))))
                        }
                        _ => Err(Fail), // IndexError
                    }
                })
                .collect::<R<Vec<_>>>()?
        } else {
            elements.into_iter().map(Item::Node).collect()
        };
        rest.push(Item::Node(Node::new(Py::Str(list), children)));
    }
    let mut epcs = Vec::new();
    rest.retain_mut(|item| match item {
        Item::Node(n) if n.name.is("childEPCs") => {
            let text = std::mem::replace(&mut n.text, Py::Str(String::new()));
            epcs.push(Item::Node(Node::named("epc", text, Vec::new())));
            false
        }
        _ => true,
    });
    if !epcs.is_empty() {
        rest.push(Item::Node(Node::new(Py::Str("childEPCs".into()), epcs)));
    }
    let corrected = rest
        .into_iter()
        .map(|item| match item {
            Item::Node(n) if !n.name.str().is_ok_and(is_pair_list) => correct(n).map(Item::Node),
            other => Ok(other),
        })
        .collect::<R<Vec<_>>>()?;
    let name = match &name {
        Py::Str(s) if s == "inputEPC" || s == "outputEPC" => Py::Str("epc".into()),
        Py::Str(s)
            if matches!(
                s.as_str(),
                "inputQuantity" | "outputQuantity" | "childQuantity"
            ) || (s == "quantity" && !corrected.is_empty()) =>
        {
            Py::Str("quantityElement".into())
        }
        _ => name,
    };
    Ok(Node {
        name,
        text,
        children: corrected,
    })
}

// ---- hash_generator ----

/// What a field's children are ordered by.
enum Sub {
    Leaf,
    Fields(&'static [Prop]),
    /// The entry of the three pair lists, which matches none of their members.
    Pairs,
}

struct Prop(&'static str, Sub);

const QUANTITY_ELEMENT: &[Prop] = &[Prop(
    "quantityElement",
    Sub::Fields(&[
        Prop("epcClass", Sub::Leaf),
        Prop("quantity", Sub::Leaf),
        Prop("uom", Sub::Leaf),
    ]),
)];
const EPC: &[Prop] = &[Prop("epc", Sub::Leaf)];

/// The reference's `PROP_ORDER`.
const PROP_ORDER: &[Prop] = &[
    Prop("eventTime", Sub::Leaf),
    Prop("eventTimeZoneOffset", Sub::Leaf),
    Prop("certificationInfo", Sub::Leaf),
    Prop("parentID", Sub::Leaf),
    Prop("epcList", Sub::Fields(EPC)),
    Prop("inputEPCList", Sub::Fields(EPC)),
    Prop("childEPCs", Sub::Fields(EPC)),
    Prop("quantityList", Sub::Fields(QUANTITY_ELEMENT)),
    Prop("childQuantityList", Sub::Fields(QUANTITY_ELEMENT)),
    Prop("inputQuantityList", Sub::Fields(QUANTITY_ELEMENT)),
    Prop("outputEPCList", Sub::Fields(EPC)),
    Prop("outputQuantityList", Sub::Fields(QUANTITY_ELEMENT)),
    Prop("action", Sub::Leaf),
    Prop("transformationID", Sub::Leaf),
    Prop("bizStep", Sub::Leaf),
    Prop("disposition", Sub::Leaf),
    Prop(
        "persistentDisposition",
        Sub::Fields(&[Prop("set", Sub::Leaf), Prop("unset", Sub::Leaf)]),
    ),
    Prop("readPoint", Sub::Fields(&[Prop("id", Sub::Leaf)])),
    Prop("bizLocation", Sub::Fields(&[Prop("id", Sub::Leaf)])),
    Prop("bizTransactionList", Sub::Pairs),
    Prop("sourceList", Sub::Pairs),
    Prop("destinationList", Sub::Pairs),
    Prop(
        "sensorElementList",
        Sub::Fields(&[Prop(
            "sensorElement",
            Sub::Fields(&[
                Prop(
                    "sensorMetadata",
                    Sub::Fields(&[
                        Prop("time", Sub::Leaf),
                        Prop("startTime", Sub::Leaf),
                        Prop("endTime", Sub::Leaf),
                        Prop("deviceID", Sub::Leaf),
                        Prop("deviceMetadata", Sub::Leaf),
                        Prop("rawData", Sub::Leaf),
                        Prop("dataProcessingMethod", Sub::Leaf),
                        Prop("bizRules", Sub::Leaf),
                    ]),
                ),
                Prop(
                    "sensorReport",
                    Sub::Fields(&[
                        Prop("type", Sub::Leaf),
                        Prop("exception", Sub::Leaf),
                        Prop("deviceID", Sub::Leaf),
                        Prop("deviceMetadata", Sub::Leaf),
                        Prop("rawData", Sub::Leaf),
                        Prop("dataProcessingMethod", Sub::Leaf),
                        Prop("time", Sub::Leaf),
                        Prop("microorganism", Sub::Leaf),
                        Prop("chemicalSubstance", Sub::Leaf),
                        Prop("value", Sub::Leaf),
                        Prop("component", Sub::Leaf),
                        Prop("stringValue", Sub::Leaf),
                        Prop("booleanValue", Sub::Leaf),
                        Prop("hexBinaryValue", Sub::Leaf),
                        Prop("uriValue", Sub::Leaf),
                        Prop("minValue", Sub::Leaf),
                        Prop("maxValue", Sub::Leaf),
                        Prop("meanValue", Sub::Leaf),
                        Prop("sDev", Sub::Leaf),
                        Prop("percRank", Sub::Leaf),
                        Prop("percValue", Sub::Leaf),
                        Prop("uom", Sub::Leaf),
                        Prop("coordinateReferenceSystem", Sub::Leaf),
                    ]),
                ),
            ]),
        )]),
    ),
];

/// `derive_prehashes_from_events` for one event.
fn prehash(root: Node) -> R<String> {
    let mut s = String::with_capacity(1024);
    s.push_str("eventType=");
    s.push_str(root.name.str()?);
    let mut children = root.children;
    s.push_str(&in_order(&mut children, PROP_ORDER)?);
    // `_gather_elements_not_in_order`
    children.retain(|item| match item {
        Item::Node(n) => !["recordTime", "eventID", "type", "errorDeclaration"]
            .iter()
            .any(|ignored| n.name.is(ignored)),
        Item::Pair(_) => true,
    });
    if !children.is_empty() {
        s.push_str(&generic(&children)?);
    }
    Ok(s)
}

/// `_recurse_through_children_in_order`: the fields of `order`, then the user
/// extensions of this level; what is written is taken out of `list`, unless it has
/// children left.
fn in_order(list: &mut Vec<Item>, order: &[Prop]) -> R<String> {
    let extensions = user_extensions(list)?;
    let mut pre = String::new();
    for Prop(name, sub) in order {
        if !list
            .iter()
            .any(|i| matches!(i, Item::Node(n) if n.name.is(name)))
        {
            continue;
        }
        let mut values = Vec::new();
        let mut emptied = vec![false; list.len()];
        for (i, item) in list.iter_mut().enumerate() {
            let Item::Node(n) = item else { continue };
            if !n.name.is(name) {
                continue;
            }
            let s = field(n, name, sub)?;
            if !s.is_empty() {
                values.push(s);
            }
            emptied[i] = n.children.is_empty();
        }
        let mut i = 0;
        list.retain(|_| {
            i += 1;
            !emptied[i - 1]
        });
        values.sort_unstable();
        for v in values {
            pre.push_str(&v);
        }
    }
    if !extensions.is_empty() {
        pre.push_str(&generic(&extensions)?);
    }
    Ok(pre)
}

/// `_child_to_pre_hash_string`.
fn field(n: &mut Node, name: &str, sub: &Sub) -> R<String> {
    let below = match sub {
        Sub::Leaf => String::new(),
        Sub::Fields(order) => in_order(&mut n.children, order)?,
        Sub::Pairs => in_order(&mut n.children, &[])?,
    };
    let mut text = String::new();
    if n.text.truthy() {
        let t = py_strip(n.text.str()?);
        if !t.is_empty() {
            text.push('=');
            // `'time' in name.lower() and 'offset' not in name.lower()`, for the names
            // of PROP_ORDER.
            if matches!(name, "eventTime" | "time" | "startTime" | "endTime") {
                text.push_str(&utc_time(t)?);
            } else {
                canonize(&mut text, t)?;
            }
        }
    }
    if text.is_empty() && below.is_empty() {
        return Ok(String::new());
    }
    Ok(format!("{name}{text}{below}"))
}

/// `_gather_user_extensions`: the `{…/}` fields of a nested level, taken out of it.
fn user_extensions(list: &mut Vec<Item>) -> R<Vec<Item>> {
    if list.len() <= 1 {
        return Ok(Vec::new());
    }
    // `'x' in child[0]`: a substring of a name; of a pair, its first triple's name or
    // text being it.
    let has = |item: &Item, x: &str| -> R<bool> {
        match item {
            Item::Node(n) => Ok(n.name.str()?.contains(x)),
            Item::Pair(p) => Ok(p.0.name.is(x) || p.0.text.is(x)),
        }
    };
    for item in list.iter() {
        if has(item, "eventTime")? || has(item, "action")? {
            return Ok(Vec::new());
        }
    }
    let mut is_extension = Vec::with_capacity(list.len());
    for item in list.iter() {
        is_extension.push(has(item, "{")? && has(item, "/}")?);
    }
    if !is_extension.contains(&true) {
        return Ok(Vec::new());
    }
    let mut extensions = Vec::new();
    let mut kept = Vec::with_capacity(list.len());
    for (item, ext) in list.drain(..).zip(is_extension) {
        if ext {
            extensions.push(item);
        } else {
            kept.push(item);
        }
    }
    *list = kept;
    Ok(extensions)
}

/// `_generic_child_list_to_prehash_string`.
fn generic(items: &[Item]) -> R<String> {
    let mut values = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Pair(p) => {
                let (a, b) = &**p;
                values.push(generic_nodes(&[a, b])?);
            }
            Item::Node(n) => values.push(generic_node(n)?),
        }
    }
    let names = items.iter().filter_map(|i| match i {
        Item::Node(n) => Some(&n.name),
        Item::Pair(_) => None,
    });
    finish(values, names)
}

fn generic_nodes(nodes: &[&Node]) -> R<String> {
    let values = nodes
        .iter()
        .map(|n| generic_node(n))
        .collect::<R<Vec<_>>>()?;
    finish(values, nodes.iter().map(|n| &n.name))
}

fn generic_node(n: &Node) -> R<String> {
    let t = py_strip(n.text.str()?);
    let mut s = n.name.str()?.to_string();
    if !t.is_empty() {
        s.push('=');
        canonize(&mut s, t)?;
    }
    s.push_str(&generic(&n.children)?);
    Ok(s)
}

/// Sorted unless one is a `bizTransaction`, `source` or `destination` (`should_sort`).
fn finish<'n>(mut values: Vec<String>, mut names: impl Iterator<Item = &'n Py>) -> R<String> {
    if values.len() > 1
        && !names.any(|n| n.is("bizTransaction") || n.is("source") || n.is("destination"))
    {
        values.sort_unstable();
    }
    Ok(values.concat())
}

/// `_canonize_value`; a value Python's `float()` reads as infinite makes the reference
/// fail (`int(inf)`).
fn canonize(out: &mut String, text: &str) -> R<()> {
    if py_float_is_infinite(text) {
        return Err(Fail);
    }
    canonical_into(out, text);
    Ok(())
}

/// Whether Python's `float(text)` is infinite: `inf`, `infinity` (any case, signed) or
/// a number too large, with any Unicode digits and `_` between digits.
fn py_float_is_infinite(text: &str) -> bool {
    let mut ascii = String::with_capacity(text.len());
    for c in text.chars() {
        match digital_link::digit(c) {
            Some(d) => ascii.push(char::from(b'0' + d)),
            None if py_space(c) => ascii.push(' '),
            None if c.is_ascii() => ascii.push(c),
            None => return false,
        }
    }
    let s = ascii
        .trim_matches(' ')
        .trim_matches(|c: char| c.is_ascii_whitespace());
    let b = s.as_bytes();
    let digit_at = |i: Option<usize>| i.and_then(|i| b.get(i)).is_some_and(u8::is_ascii_digit);
    let underscores_ok = b
        .iter()
        .enumerate()
        .all(|(i, &c)| c != b'_' || (digit_at(i.checked_sub(1)) && digit_at(Some(i + 1))));
    // Rust reads the same grammar (`inf`, `infinity`, `nan` included), without `_`.
    underscores_ok
        && s.replace('_', "")
            .parse::<f64>()
            .is_ok_and(f64::is_infinite)
}

// ---- times, as the reference's `_fix_time_stamp_format` writes them ----

/// The time in UTC with milliseconds; text that is not a time we read stays as it is.
fn utc_time(text: &str) -> R<Cow<'_, str>> {
    let Some(t) = read_time(text) else {
        return Ok(Cow::Borrowed(text));
    };
    // `astimezone`: an offset of a day or more, or a time outside the years 1 to 9999
    // in UTC, fails; so does rounding up to a whole second (`replace(microsecond=
    // 1000000)`).
    if t.offset_minutes.abs() >= 24 * 60 {
        return Err(Fail);
    }
    let minutes =
        days_from_civil(t.year, t.month, t.day) * 1440 + t.hour * 60 + t.minute - t.offset_minutes;
    let first = days_from_civil(1, 1, 1) * 1440;
    let last = days_from_civil(9999, 12, 31) * 1440 + 1439;
    if !(first..=last).contains(&minutes) {
        return Err(Fail);
    }
    let (q, r) = (t.micros / 1000, t.micros % 1000);
    let ms = if r > 500 || (r == 500 && q % 2 == 1) {
        q + 1
    } else {
        q
    };
    if ms == 1000 {
        return Err(Fail);
    }
    let (y, mo, d) = civil_from_days(minutes.div_euclid(1440));
    let m = minutes.rem_euclid(1440);
    Ok(Cow::Owned(format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        m / 60,
        m % 60,
        t.second
    )))
}

struct Time {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// The first six fractional digits, as `dateutil` reads them.
    micros: i64,
    /// East of UTC.
    offset_minutes: i64,
}

/// `YYYY-MM-DD(T|t| )HH:MM[:SS[(.|,)digits]][Z|z|±HH[[:]MM]]`, a valid date and time
/// of day; a time without offset is in UTC.
fn read_time(text: &str) -> Option<Time> {
    let b = text.as_bytes();
    let num = |at: usize, n: usize| -> Option<i64> {
        let d = b.get(at..at + n)?;
        d.iter().try_fold(0i64, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let at = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":")) {
        return None;
    }
    let (hour, minute) = (num(11, 2)?, num(14, 2)?);
    let mut i = 16;
    let (mut second, mut micros) = (0, 0);
    if at(i, b":") {
        second = num(i + 1, 2)?;
        i += 3;
        if at(i, b".,") {
            let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
            if digits == 0 {
                return None;
            }
            for k in 0..6 {
                let d = if k < digits {
                    i64::from(b[i + 1 + k] - b'0')
                } else {
                    0
                };
                micros = micros * 10 + d;
            }
            i += 1 + digits;
        }
    }
    let offset_minutes = match b.get(i) {
        None => 0,
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let hh = num(i + 1, 2)?;
            i += 3;
            let mm = match b.get(i) {
                None => 0,
                Some(b':') => {
                    i += 3;
                    num(i - 2, 2)?
                }
                Some(_) => {
                    i += 2;
                    num(i - 2, 2)?
                }
            };
            if i != b.len() {
                return None;
            }
            let m = hh * 60 + mm;
            if sign == b'-' {
                -m
            } else {
                m
            }
        }
        Some(_) => return None,
    };
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    let valid = year >= 1
        && (1..=days_in_month).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 59;
    valid.then_some(Time {
        year,
        month,
        day,
        hour,
        minute,
        second,
        micros,
        offset_minutes,
    })
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epcis::{GS1_VOC, NAMESPACE};
    use crate::event::tests::sample;
    use crate::{BizStep, BizTransaction, BizTransactionType, Disposition, ScanEvent};

    fn with_context(e: &ScanEvent) -> String {
        let mut v = crate::epcis::object_event(e);
        v["@context"] = serde_json::json!({"gs1": GS1_VOC, "st": NAMESPACE});
        v.to_string()
    }

    /// A scan event's JSON (`epcis::object_event`) hashes as the scan event does.
    #[test]
    fn scan_events_hash_as_event_hash() {
        let tx = |kind, id: &str| BizTransaction {
            kind,
            id: id.into(),
        };
        let mut events = vec![sample()];
        let mut e = sample();
        e.item_ids
            .push("https://example.com/01/09506000134352/21/ABC123".into());
        e.biz_step = BizStep::Shipping;
        e.disposition = Disposition::InTransit;
        e.biz_transactions
            .push(tx(BizTransactionType::Po, "shipping"));
        e.relative_humidity_pct = Some(55.0);
        events.push(e);
        for (i, ids) in [
            vec![
                "20260123000000012345",
                "007",
                "1_000",
                "4.50",
                "nan",
                "  PO-9\u{3000}",
            ],
            vec![
                "cbv:BizStep-receiving",
                "st:po/1",
                "gs1:Thing",
                "po",
                "in_transit",
            ],
            vec![
                "urn:epc:id:gdti:0614141.00001.1618034",
                "urn:epcglobal:cbv:btt:po",
                "https://erp.example/po/01/09506000134352/21/PO1",
                "Temperature",
                "\u{663}\u{664}",
            ],
        ]
        .into_iter()
        .enumerate()
        {
            let mut e = sample();
            e.event_time += 86_400_000 * i as i64 + 7;
            e.event_timezone_offset = ["-03:30", "+00:00", "-00:00"][i].into();
            e.action = [
                crate::Action::Add,
                crate::Action::Delete,
                crate::Action::Observe,
            ][i];
            e.biz_step = [
                BizStep::Receiving,
                BizStep::Storing,
                BizStep::CustomsClearance,
            ][i];
            e.disposition = Disposition::ALL[i * 3 % Disposition::ALL.len()];
            e.biz_transactions = ids
                .iter()
                .enumerate()
                .map(|(j, id)| {
                    tx(
                        BizTransactionType::ALL[j % BizTransactionType::ALL.len()],
                        id,
                    )
                })
                .collect();
            e.device_id = ["receiving", "1_0", "shipping"][i].into();
            e.temperature_c = [Some(-18.0), None, Some(0.1)][i];
            e.relative_humidity_pct = [None, Some(33.3), Some(100.0)][i];
            e.item_ids = vec![
                "urn:epc:id:sgtin:0614141.812345.6789".into(),
                "https://brand.example/01/09506000134352/21/7?linkType=all".into(),
                "urn:epc:id:sgtin:0614141.812345.6789".into(),
            ];
            events.push(e);
        }
        for e in &events {
            let json = with_context(e);
            assert_eq!(
                pre_hash(&json).as_deref(),
                Some(super::super::pre_hash(e).as_str()),
                "{json}"
            );
            assert_eq!(hash(&json), Some(super::super::event_hash(e)), "{json}");
        }
    }

    #[test]
    fn not_an_object_is_no_hash() {
        for text in [
            "",
            "[]",
            "1",
            "\"x\"",
            "{",
            "{\"type\":\"ObjectEvent\"",
            "{} x",
            "null",
        ] {
            assert_eq!(hash(text), None, "{text}");
        }
        assert!(
            hash("{}").is_some(),
            "an empty object is an event of no type"
        );
    }

    #[test]
    fn json_as_python_reads_it() {
        let read = |t: &str| match Parser::read(t) {
            Some(Json::Obj(f)) => f
                .into_iter()
                .map(|(k, v)| {
                    let v = match v {
                        Json::Num(p) => p,
                        Json::Str(s) => s,
                        _ => "?".into(),
                    };
                    format!("{k}={v}")
                })
                .collect::<Vec<_>>()
                .join(","),
            _ => "none".into(),
        };
        assert_eq!(read(r#"{"a":1,"b":2,"a":3}"#), "a=3,b=2");
        assert_eq!(
            read(r#"{"a":-0,"b":-0.0,"c":1E2,"d":1e400,"e":0.1,"f":1e-7}"#),
            "a=0,b=-0.0,c=100.0,d=inf,e=0.1,f=1e-07"
        );
        assert_eq!(read(r#"{"s":"\ud83e\udd80\u00e9\n"}"#), "s=🦀é\n");
        for bad in [
            r#"{"s":"\ud800"}"#,
            r#"{"a":NaN}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":1,}"#,
            "{\"a\":\"\u{1}\"}",
        ] {
            assert_eq!(read(bad), "none", "{bad}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(Parser::read(&deep).is_none());
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(Parser::read(&ok).is_some());
    }

    #[test]
    fn times_as_dateutil_reads_them() {
        for (text, utc) in [
            ("2024-01-01T10:00:00Z", Some("2024-01-01T10:00:00.000Z")),
            (
                "2024-01-01t10:00:00+01:00",
                Some("2024-01-01T09:00:00.000Z"),
            ),
            ("2024-01-01 10:00", Some("2024-01-01T10:00:00.000Z")),
            (
                "2024-01-01T10:00:00.0015Z",
                Some("2024-01-01T10:00:00.002Z"),
            ),
            (
                "2024-01-01T10:00:00.0025Z",
                Some("2024-01-01T10:00:00.002Z"),
            ),
            (
                "2024-01-01T10:00:00,5-01:30",
                Some("2024-01-01T11:30:00.500Z"),
            ),
            (
                "2024-01-01T10:00:00+05:99",
                Some("2024-01-01T03:21:00.000Z"),
            ),
            ("2024-01-01T10:00:00+0530", Some("2024-01-01T04:30:00.000Z")),
            (
                "2024-01-01T10:00:00-23:59",
                Some("2024-01-02T09:59:00.000Z"),
            ),
            (
                "0001-01-01T01:00:00+01:00",
                Some("0001-01-01T00:00:00.000Z"),
            ),
            ("2024-02-30T00:00:00Z", Some("2024-02-30T00:00:00Z")),
            ("2024-01-01T24:00:00Z", Some("2024-01-01T24:00:00Z")),
            ("2016-12-31T23:59:60Z", Some("2016-12-31T23:59:60Z")),
            ("0000-01-01T00:00:00Z", Some("0000-01-01T00:00:00Z")),
            ("2024-01-01T10:00:00.Z", Some("2024-01-01T10:00:00.Z")),
            ("2024-01-01T10:00:00.9996Z", None),
            ("2024-01-01T10:00:00+24:00", None),
            ("0001-01-01T00:00:00+01:00", None),
            ("9999-12-31T23:00:00-01:00", None),
        ] {
            assert_eq!(utc_time(text).ok().as_deref(), utc, "{text}");
        }
    }

    #[test]
    fn infinities_as_python_reads_them() {
        for (text, inf) in [
            ("inf", true),
            ("-Infinity", true),
            ("1e400", true),
            ("1_0e3_0_9", true),
            ("1_0e3_0_0", false),
            ("\u{661}e\u{664}00", true),
            ("nan", false),
            ("1e300", false),
            ("in_f", false),
            ("1__0e400", false),
            ("x", false),
        ] {
            assert_eq!(py_float_is_infinite(text), inf, "{text}");
        }
    }

    #[test]
    fn tables_are_sorted() {
        let all: &[&[Entry]] = &[
            EPCIS,
            BIZ_STEP,
            DISP,
            PERSISTENT_DISP,
            SOURCE_LIST,
            DESTINATION_LIST,
            SOURCE_TYPE,
            BIZ_TRANSACTION_LIST,
            BIZ_TRANSACTION_TYPE,
            SENSOR_ELEMENT_LIST,
            SENSOR_METADATA,
            SENSOR_REPORT,
            MEASUREMENT,
            EXCEPTION,
            COMPONENT,
            ERROR_DECLARATION,
            REASON,
        ];
        for t in all {
            assert!(t.windows(2).all(|w| w[0].0 < w[1].0), "{:?}", t[0].0);
        }
    }

    #[test]
    fn dot_segments_as_pyld_removes_them() {
        for (iri, out) in [
            ("https:/.//gs1.org/voc/a b", "https://gs1.org/voc/a b"),
            ("a:b/../c", "a:b/c"),
            ("x y:/a/./b/../c?d/../e", "x y:/a/c?d/../e"),
            ("a:", "a:"),
        ] {
            let c = iri.find(':').unwrap();
            assert_eq!(remove_dot_segments_of_path(iri, c), out, "{iri}");
        }
    }

    /// The deepest JSON taken, in a thread with less stack than tokio's workers have
    /// (2 MiB): the recursion is bounded by the nesting.
    #[test]
    fn deepest_events_fit_a_small_stack() {
        let half = MAX_DEPTH / 2 - 1;
        let texts = [
            format!(
                r#"{{"type":"ObjectEvent","@context":{{"ex":"https://ex/"}},"ex:a":{}"x"{}}}"#,
                r#"[{"type":"bizStep","bizStep":"#.repeat(half),
                "}]".repeat(half)
            ),
            format!(
                r#"{{"type":"ObjectEvent","ex:a":{}"x"{}}}"#,
                r#"{"sensorElementList":[{"sensorReport":"#.repeat(half / 2),
                "}]}".repeat(half / 2)
            ),
        ];
        for text in texts {
            assert!(Parser::read(&text).is_some(), "{text}");
            let run = std::thread::Builder::new()
                .stack_size(1 << 20)
                .spawn(move || hash(&text))
                .unwrap();
            assert!(matches!(run.join(), Ok(Some(_))));
        }
    }

    /// Hostile JSON: nothing panics, whatever comes back.
    #[test]
    fn hostile_events_do_not_panic() {
        let deep = format!(
            "{{\"type\":\"ObjectEvent\",\"ex:a\":{}1{}}}",
            "[{\"type\":[".repeat(40),
            "]}]".repeat(40)
        );
        let texts = [
            r#"{"type":5}"#,
            r#"{"type":"ObjectEvent","bizTransactionList":[{"bizTransaction":"x"}]}"#,
            r#"{"type":"ObjectEvent","bizTransactionList":["x"]}"#,
            r#"{"type":"ObjectEvent","ex:a":[[{"type":5},{"type":"x"}]],"@context":{"ex":"https://ex/"}}"#,
            r##"{"type":"ObjectEvent","#text":7,"x":{"#text":[1]}}"##,
            r#"{"type":"ObjectEvent","eventTime":"9999-12-31T23:59:59.9999-23:59","quantityList":[{"quantity":1e400}]}"#,
            r#"{"type":"ObjectEvent","@context":{"a":"b:","b":"a:"}}"#,
            r#"{"type":"ObjectEvent","@context":{"a":"@id","b":"@foo","c":"c"}}"#,
            r#"{"type":["bizStep","sensorElementList","sourceList"],"shipping":{"id":"x"}}"#,
            r#"{"type":"ObjectEvent","readPoint":{"id":"https:/.//ref.gs1.org/cbv/x y"},"x":"x y"}"#,
            deep.as_str(),
        ];
        for t in texts {
            let _ = hash(t);
        }
    }
}
