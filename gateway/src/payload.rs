//! Payloads between the two doors and the cores. Cores keep a payload as the JSON text of
//! an object; HTTP clients send and receive that text as it is, gRPC clients send and
//! receive it as a `google.protobuf.Struct`, whose JSON form is that same object. So a
//! payload is converted once on the way in from gRPC, once on the way out to gRPC, and
//! never for HTTP.

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

/// Integers up to 2⁵³ are exact in an `f64`; such numbers are written without a
/// fraction, so `{"year": 1969}` sent over gRPC reads back over HTTP as it was written.
const EXACT_INTEGER: f64 = 9_007_199_254_740_992.0;

/// The JSON text of a `Struct`.
///
/// # Errors
/// A number that is NaN or infinite, which JSON cannot hold.
pub(crate) fn struct_to_json(payload: &Struct) -> Result<Vec<u8>, String> {
    serde_json::to_vec(&StructJson(payload)).map_err(|e| e.to_string())
}

/// The `Struct` of a payload's JSON text; empty text is no payload.
///
/// # Errors
/// Text that is not a JSON object (cores only store objects, so this means a bug).
pub(crate) fn json_to_struct(text: &[u8]) -> Result<Option<Struct>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    let map: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(text).map_err(|e| e.to_string())?;
    Ok(Some(object(map)))
}

fn object(map: serde_json::Map<String, serde_json::Value>) -> Struct {
    Struct {
        fields: map.into_iter().map(|(k, v)| (k, value(v))).collect(),
    }
}

fn value(json: serde_json::Value) -> Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(b),
        // Every JSON number has an f64 approximation; serde_json never yields NaN.
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => Kind::StringValue(s),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.into_iter().map(value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(object(map)),
    };
    Value { kind: Some(kind) }
}

/// The nesting depth of a payload as JSON (`vectron_proto::rules::json_depth` of its
/// JSON form): 1 for an object of scalars.
pub(crate) fn struct_depth(payload: &Struct) -> usize {
    let mut deepest = 1;
    let mut stack: Vec<(&Value, usize)> = payload.fields.values().map(|v| (v, 2)).collect();
    while let Some((value, depth)) = stack.pop() {
        match &value.kind {
            Some(Kind::StructValue(inner)) => {
                deepest = deepest.max(depth);
                stack.extend(inner.fields.values().map(|v| (v, depth + 1)));
            }
            Some(Kind::ListValue(list)) => {
                deepest = deepest.max(depth);
                stack.extend(list.values.iter().map(|v| (v, depth + 1)));
            }
            _ => {}
        }
    }
    deepest
}

struct StructJson<'a>(&'a Struct);
struct ValueJson<'a>(&'a Value);

impl Serialize for StructJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.fields.len()))?;
        for (k, v) in &self.0.fields {
            map.serialize_entry(k, &ValueJson(v))?;
        }
        map.end()
    }
}

impl Serialize for ValueJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0.kind {
            None | Some(Kind::NullValue(_)) => s.serialize_unit(),
            Some(Kind::BoolValue(b)) => s.serialize_bool(*b),
            Some(Kind::NumberValue(n)) => {
                if !n.is_finite() {
                    return Err(S::Error::custom(format!(
                        "{n} is not a finite number, which JSON cannot hold"
                    )));
                }
                if n.fract() == 0.0 && n.abs() <= EXACT_INTEGER {
                    #[expect(
                        clippy::cast_possible_truncation,
                        reason = "integral and within ±2^53, so exact"
                    )]
                    let i = *n as i64;
                    s.serialize_i64(i)
                } else {
                    s.serialize_f64(*n)
                }
            }
            Some(Kind::StringValue(v)) => s.serialize_str(v),
            Some(Kind::ListValue(list)) => {
                let mut seq = s.serialize_seq(Some(list.values.len()))?;
                for v in &list.values {
                    seq.serialize_element(&ValueJson(v))?;
                }
                seq.end()
            }
            Some(Kind::StructValue(inner)) => StructJson(inner).serialize(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to_struct(json: serde_json::Value) -> Struct {
        match json {
            serde_json::Value::Object(map) => object(map),
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn a_payload_round_trips_with_integers_kept_integral() {
        let json = serde_json::json!({
            "title": "Moon", "year": 1969, "score": 0.5, "tags": ["a", "b"],
            "nested": {"ok": true, "none": null}, "big": -12345678901234i64
        });
        let text = struct_to_json(&to_struct(json.clone())).unwrap();
        let back: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(back, json);
        assert!(String::from_utf8(text).unwrap().contains("\"year\":1969"));
        let again = json_to_struct(&serde_json::to_vec(&json).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(again, to_struct(json));
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        let mut s = Struct::default();
        s.fields.insert(
            "x".into(),
            Value {
                kind: Some(Kind::NumberValue(f64::NAN)),
            },
        );
        assert!(struct_to_json(&s).unwrap_err().contains("finite"));
    }

    /// `{"a": {"a": … [[…[1]…]] …}}`: `objects` levels of objects around `arrays` of arrays.
    fn nested(objects: usize, arrays: usize) -> serde_json::Value {
        let mut v = serde_json::json!(1);
        for _ in 0..arrays {
            v = serde_json::json!([v]);
        }
        for _ in 0..objects {
            v = serde_json::json!({ "a": v });
        }
        v
    }

    /// A payload at the depth limit decodes in the deepest gRPC answer that carries
    /// payloads (a batch of searches), whatever mix of objects and arrays it nests; a
    /// deeper one may not, which is why the limit exists.
    #[test]
    fn a_payload_at_the_depth_limit_decodes_in_every_grpc_answer() {
        use prost::Message as _;
        use vectron_proto::rules::{MAX_PAYLOAD_DEPTH, json_depth};
        use vectron_proto::v1::{ScoredPoint, SearchBatchResponse, SearchResponse};

        let decodes = |json: &serde_json::Value| {
            let payload = to_struct(json.clone());
            assert_eq!(struct_depth(&payload), json_depth(json));
            let answer = SearchBatchResponse {
                results: vec![SearchResponse {
                    hits: vec![ScoredPoint {
                        payload: Some(payload),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            };
            SearchBatchResponse::decode(answer.encode_to_vec().as_slice()).is_ok()
        };
        for arrays in 0..MAX_PAYLOAD_DEPTH {
            let json = nested(MAX_PAYLOAD_DEPTH - arrays, arrays);
            assert_eq!(json_depth(&json), MAX_PAYLOAD_DEPTH);
            assert!(decodes(&json), "{arrays} arrays deep");
        }
        assert!(!decodes(&nested(40, 0)));
    }

    #[test]
    fn empty_text_is_no_payload_and_non_objects_are_refused() {
        assert_eq!(json_to_struct(b"").unwrap(), None);
        assert!(json_to_struct(b"[1]").is_err());
    }
}
