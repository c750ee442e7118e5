//! The scan event as JSON: what scanners POST to the gateway (`scan_event.schema.json`).
//! Same field names as the Avro schema; `event_time` is RFC 3339 text, the signature
//! and nothing else is hex. Parsing names the exact field that is wrong.

use serde_json::{json, Map, Value};

use crate::event::{
    Action, BizStep, BizTransaction, BizTransactionType, Disposition, FieldError, ScanEvent,
};
use crate::time::{format_rfc3339, parse_rfc3339};

const FIELDS: &[&str] = &[
    "event_id",
    "event_time",
    "event_timezone_offset",
    "action",
    "biz_step",
    "disposition",
    "item_ids",
    "read_point",
    "biz_location",
    "country",
    "biz_transactions",
    "temperature_c",
    "relative_humidity_pct",
    "device_id",
    "signature",
];

/// Parses and validates one JSON event; `path` prefixes field names in errors
/// (e.g. `events[3]`), empty for a single event.
pub fn parse_event(value: &Value, path: &str) -> Result<ScanEvent, FieldError> {
    let at = |field: &str| {
        if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        }
    };
    let obj = value.as_object().ok_or_else(|| {
        FieldError::new(
            if path.is_empty() { "(event)" } else { path },
            "must be a JSON object",
        )
    })?;
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(FieldError::new(at(unknown), "unknown field"));
    }
    let f = Fields { obj, at: &at };
    let event_time_text = f.string("event_time")?;
    let event = ScanEvent {
        event_id: f.string("event_id")?,
        event_time: parse_rfc3339(&event_time_text)
            .map_err(|p| FieldError::new(at("event_time"), p))?,
        event_timezone_offset: f.string("event_timezone_offset")?,
        action: f.symbol("action", Action::parse, Action::expected)?,
        biz_step: f.symbol("biz_step", BizStep::parse, BizStep::expected)?,
        disposition: f.symbol("disposition", Disposition::parse, Disposition::expected)?,
        item_ids: f
            .array("item_ids", true)?
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    FieldError::new(at(&format!("item_ids[{i}]")), "must be a string")
                })
            })
            .collect::<Result<_, _>>()?,
        read_point: f.string("read_point")?,
        biz_location: f.string("biz_location")?,
        country: f.string("country")?,
        biz_transactions: f
            .array("biz_transactions", false)?
            .iter()
            .enumerate()
            .map(|(i, v)| parse_transaction(v, &at(&format!("biz_transactions[{i}]"))))
            .collect::<Result<_, _>>()?,
        temperature_c: f.optional_number("temperature_c")?,
        relative_humidity_pct: f.optional_number("relative_humidity_pct")?,
        device_id: f.string("device_id")?,
        signature: {
            let hex_sig = f.string("signature")?;
            hex::decode(&hex_sig)
                .ok()
                .filter(|s| s.len() == 64)
                .ok_or_else(|| {
                    FieldError::new(
                        at("signature"),
                        "must be 128 hex digits (an Ed25519 signature)",
                    )
                })?
        },
    };
    event
        .validate()
        .map_err(|e| FieldError::new(at(&e.field), e.problem))?;
    Ok(event)
}

fn parse_transaction(v: &Value, path: &str) -> Result<BizTransaction, FieldError> {
    let obj = v
        .as_object()
        .ok_or_else(|| FieldError::new(path, "must be an object {\"type\", \"id\"}"))?;
    if let Some(unknown) = obj.keys().find(|k| *k != "type" && *k != "id") {
        return Err(FieldError::new(
            format!("{path}.{unknown}"),
            "unknown field",
        ));
    }
    let at = |field: &str| format!("{path}.{field}");
    let f = Fields { obj, at: &at };
    Ok(BizTransaction {
        kind: f.symbol(
            "type",
            BizTransactionType::parse,
            BizTransactionType::expected,
        )?,
        id: f.string("id")?,
    })
}

struct Fields<'a, F: Fn(&str) -> String> {
    obj: &'a Map<String, Value>,
    at: &'a F,
}

impl<F: Fn(&str) -> String> Fields<'_, F> {
    fn required(&self, name: &str) -> Result<&Value, FieldError> {
        match self.obj.get(name) {
            None | Some(Value::Null) => {
                Err(FieldError::new((self.at)(name), "missing required field"))
            }
            Some(v) => Ok(v),
        }
    }

    fn string(&self, name: &str) -> Result<String, FieldError> {
        let v = self.required(name)?;
        v.as_str().map(str::to_owned).ok_or_else(|| {
            FieldError::new(
                (self.at)(name),
                format!("must be a string, got {}", kind(v)),
            )
        })
    }

    fn symbol<T>(
        &self,
        name: &str,
        parse: fn(&str) -> Option<T>,
        expected: fn() -> String,
    ) -> Result<T, FieldError> {
        let s = self.string(name)?;
        parse(&s).ok_or_else(|| {
            FieldError::new(
                (self.at)(name),
                format!("'{s}' is not one of: {}", expected()),
            )
        })
    }

    fn array(&self, name: &str, required: bool) -> Result<&[Value], FieldError> {
        match self.obj.get(name) {
            None | Some(Value::Null) if !required => Ok(&[]),
            _ => {
                let v = self.required(name)?;
                v.as_array().map(Vec::as_slice).ok_or_else(|| {
                    FieldError::new(
                        (self.at)(name),
                        format!("must be an array, got {}", kind(v)),
                    )
                })
            }
        }
    }

    fn optional_number(&self, name: &str) -> Result<Option<f32>, FieldError> {
        match self.obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v.as_f64().map(|n| Some(n as f32)).ok_or_else(|| {
                FieldError::new(
                    (self.at)(name),
                    format!("must be a number, got {}", kind(v)),
                )
            }),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The JSON form of an event, as a scanner sends it.
pub fn to_json(e: &ScanEvent) -> Value {
    let mut v = json!({
        "event_id": e.event_id,
        "event_time": format_rfc3339(e.event_time, &e.event_timezone_offset),
        "event_timezone_offset": e.event_timezone_offset,
        "action": e.action.as_str(),
        "biz_step": e.biz_step.as_str(),
        "disposition": e.disposition.as_str(),
        "item_ids": e.item_ids,
        "read_point": e.read_point,
        "biz_location": e.biz_location,
        "country": e.country,
        "biz_transactions": e.biz_transactions.iter()
            .map(|t| json!({"type": t.kind.as_str(), "id": t.id}))
            .collect::<Vec<_>>(),
        "device_id": e.device_id,
        "signature": hex::encode(&e.signature),
    });
    if let Some(t) = e.temperature_c {
        v["temperature_c"] = json!(t);
    }
    if let Some(h) = e.relative_humidity_pct {
        v["relative_humidity_pct"] = json!(h);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::tests::sample;

    fn signed_sample() -> ScanEvent {
        let mut e = sample();
        e.signature = vec![5; 64];
        e.relative_humidity_pct = Some(61.3);
        e
    }

    #[test]
    fn round_trips_exactly() {
        let e = signed_sample();
        assert_eq!(parse_event(&to_json(&e), "").unwrap(), e);
    }

    #[test]
    fn errors_name_the_field_and_the_problem() {
        let base = to_json(&signed_sample());
        let case = |edit: &dyn Fn(&mut Value), field: &str, problem: &str| {
            let mut v = base.clone();
            edit(&mut v);
            let err = parse_event(&v, "events[2]").unwrap_err();
            assert_eq!(err.field, field, "{err}");
            assert!(err.problem.contains(problem), "{err}");
        };
        case(
            &|v| v["colour"] = json!("red"),
            "events[2].colour",
            "unknown field",
        );
        case(
            &|v| v["country"] = json!(49),
            "events[2].country",
            "must be a string, got a number",
        );
        case(
            &|v| {
                v.as_object_mut().unwrap().remove("device_id");
            },
            "events[2].device_id",
            "missing required",
        );
        case(
            &|v| v["biz_step"] = json!("teleporting"),
            "events[2].biz_step",
            "not one of",
        );
        case(
            &|v| v["event_time"] = json!("noon"),
            "events[2].event_time",
            "RFC 3339",
        );
        case(
            &|v| v["item_ids"] = json!([7]),
            "events[2].item_ids[0]",
            "must be a string",
        );
        case(
            &|v| v["biz_transactions"] = json!([{"type": "po"}]),
            "events[2].biz_transactions[0].id",
            "missing",
        );
        case(
            &|v| v["signature"] = json!("abc"),
            "events[2].signature",
            "128 hex digits",
        );
        case(
            &|v| v["country"] = json!("XX"),
            "events[2].country",
            "ISO 3166-1",
        );
        case(
            &|v| v["temperature_c"] = json!("cold"),
            "events[2].temperature_c",
            "must be a number",
        );
    }

    #[test]
    fn optional_fields_may_be_left_out() {
        let mut v = to_json(&signed_sample());
        let o = v.as_object_mut().unwrap();
        o.remove("biz_transactions");
        o.remove("temperature_c");
        o.remove("relative_humidity_pct");
        let e = parse_event(&v, "").unwrap();
        assert!(e.biz_transactions.is_empty() && e.temperature_c.is_none());
    }
}
