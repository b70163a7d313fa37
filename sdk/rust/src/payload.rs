//! JSON payloads ↔ `google.protobuf.Struct`, the payload type on the wire.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

use crate::Error;

/// Turns a JSON object into a payload. Anything but an object is refused.
pub fn to_struct(json: serde_json::Value) -> Result<Struct, Error> {
    match json {
        serde_json::Value::Object(map) => Ok(Struct {
            fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
        }),
        other => Err(Error::InvalidPayload(format!("got {}", kind_name(&other)))),
    }
}

/// Turns a payload back into a JSON object. Numbers that are not finite (which a
/// server never returns) become `null`.
pub fn from_struct(payload: Struct) -> serde_json::Value {
    serde_json::Value::Object(
        payload
            .fields
            .into_iter()
            .map(|(k, v)| (k, from_value(v)))
            .collect(),
    )
}

fn to_value(json: serde_json::Value) -> Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(Struct {
            fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
        }),
    };
    Value { kind: Some(kind) }
}

fn from_value(value: Value) -> serde_json::Value {
    match value.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::NumberValue(n)) => number(n),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.into_iter().map(from_value).collect())
        }
        Some(Kind::StructValue(s)) => from_struct(s),
    }
}

/// Integral values that fit an `i64` come back as integers, so `{"year": 1969}`
/// round-trips unchanged.
fn number(n: f64) -> serde_json::Value {
    const EXACT_INT: f64 = 9_007_199_254_740_992.0; // 2^53
    if n.fract() == 0.0 && n.abs() <= EXACT_INT {
        serde_json::Value::from(n as i64)
    } else {
        serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

fn kind_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_round_trip() {
        let doc = json!({
            "title": "Moon", "year": 1969, "score": 0.25, "tags": ["a", 1, null, true],
            "author": {"name": "Sagan", "born": -1934}, "empty": {}
        });
        assert_eq!(from_struct(to_struct(doc.clone()).unwrap()), doc);
    }

    #[test]
    fn non_objects_are_refused() {
        for bad in [json!(null), json!(3), json!("x"), json!([1])] {
            let err = to_struct(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidPayload(_)), "{err}");
        }
    }
}
