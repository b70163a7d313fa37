//! The JSON form of every message, as the HTTP API and the admin endpoints speak it:
//! the proto3 JSON mapping with the `.proto` field names (snake_case), 64-bit integers
//! as numbers, payloads (`google.protobuf.Struct`) as plain objects, and enum values as
//! lowercase words without their type prefix (`METRIC_COSINE` is `"cosine"`). Parsing
//! also accepts the full enum names and numbers, and refuses unknown fields.
//!
//! ```
//! use vectron_proto::json;
//! use vectron_proto::v1::{CollectionSpec, Metric};
//!
//! let spec: CollectionSpec = json::from_json(&serde_json::json!({
//!     "name": "docs", "dimension": 384, "metric": "cosine", "shard_count": 2
//! }))?;
//! assert_eq!(spec.metric(), Metric::Cosine);
//! assert_eq!(json::to_json(&spec)["metric"], "cosine");
//! # Ok::<(), vectron_proto::json::JsonError>(())
//! ```

use std::sync::LazyLock;

use prost::{Message, Name};
use prost_reflect::{
    DescriptorPool, DeserializeOptions, DynamicMessage, EnumDescriptor, Kind, MessageDescriptor,
    SerializeOptions,
};
use serde_json::Value;

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(crate::FILE_DESCRIPTOR_SET).expect("the embedded descriptors decode")
});

/// A JSON document that is not a valid message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(String);

fn descriptor<M: Name>() -> MessageDescriptor {
    POOL.get_message_by_name(&M::full_name())
        .unwrap_or_else(|| panic!("{} is not in the embedded descriptors", M::full_name()))
}

/// The JSON form of `message`, every field included.
pub fn to_json<M: Message + Name>(message: &M) -> Value {
    let desc = descriptor::<M>();
    let dynamic = DynamicMessage::decode(desc.clone(), message.encode_to_vec().as_slice())
        .expect("a message decodes as its own descriptor");
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    let mut value = dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("messages serialize to JSON values");
    enums_out(&desc, &mut value);
    value
}

/// Parses the JSON form of a message.
pub fn from_json<M: Message + Name + Default>(json: &Value) -> Result<M, JsonError> {
    let desc = descriptor::<M>();
    let mut json = json.clone();
    enums_in(&desc, &mut json);
    let options = DeserializeOptions::new().deny_unknown_fields(true);
    let dynamic = DynamicMessage::deserialize_with_options(desc, json, &options)
        .map_err(|e| JsonError(e.to_string()))?;
    dynamic
        .transcode_to::<M>()
        .map_err(|e| JsonError(e.to_string()))
}

/// `Metric` → `METRIC_`: the prefix every value name of the enum starts with.
fn enum_prefix(e: &EnumDescriptor) -> String {
    let mut out = String::new();
    for (i, ch) in e.name().chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out.push('_');
    out
}

fn is_well_known(desc: &MessageDescriptor) -> bool {
    desc.package_name() == "google.protobuf"
}

/// Applies `f` to the JSON value of every enum field under `value`, recursively.
fn walk(desc: &MessageDescriptor, value: &mut Value, f: &dyn Fn(&EnumDescriptor, &mut Value)) {
    if is_well_known(desc) {
        return;
    }
    let Value::Object(map) = value else { return };
    for field in desc.fields() {
        let Some(v) = map.get_mut(field.name()).or(None) else {
            continue;
        };
        let each = |v: &mut Value| match field.kind() {
            Kind::Enum(e) => f(&e, v),
            Kind::Message(m) => walk(&m, v, f),
            _ => {}
        };
        match v {
            Value::Array(items) if field.is_list() => items.iter_mut().for_each(each),
            Value::Object(entries) if field.is_map() => {
                let Kind::Message(entry) = field.kind() else {
                    continue;
                };
                let value_field = entry.map_entry_value_field();
                for v in entries.values_mut() {
                    match value_field.kind() {
                        Kind::Enum(e) => f(&e, v),
                        Kind::Message(m) => walk(&m, v, f),
                        _ => {}
                    }
                }
            }
            v => each(v),
        }
    }
}

fn enums_out(desc: &MessageDescriptor, value: &mut Value) {
    walk(desc, value, &|e, v| {
        if let Value::String(name) = v {
            let prefix = enum_prefix(e);
            if let Some(short) = name.strip_prefix(&prefix) {
                *v = Value::String(short.to_ascii_lowercase());
            }
        }
    });
}

fn enums_in(desc: &MessageDescriptor, value: &mut Value) {
    walk(desc, value, &|e, v| {
        if let Value::String(name) = v {
            let full = format!("{}{}", enum_prefix(e), name.to_ascii_uppercase());
            if e.get_value_by_name(&full).is_some() {
                *v = Value::String(full);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::v1::{
        CollectionInfo, CollectionSpec, Condition, CountResponse, Filter, Point, Range,
        SearchRequest,
    };

    #[test]
    fn enums_are_short_lowercase_words_both_ways() {
        let spec: CollectionSpec = from_json(&json!({
            "name": "docs", "dimension": 3, "metric": "l2", "quantization": "INT8",
            "payload_indexes": [{"field": "title", "kind": "keyword"}]
        }))
        .unwrap();
        assert_eq!(spec.metric(), crate::v1::Metric::L2);
        assert_eq!(spec.quantization(), crate::v1::Quantization::Int8);
        let out = to_json(&CollectionInfo {
            spec: Some(spec),
            ..Default::default()
        });
        assert_eq!(out["spec"]["metric"], "l2");
        assert_eq!(out["spec"]["quantization"], "int8");
        assert_eq!(out["spec"]["payload_indexes"][0]["kind"], "keyword");
        assert_eq!(out["state"], "unspecified");
    }

    #[test]
    fn payloads_are_plain_objects_and_integers_numbers() {
        let point: Point = from_json(&json!({
            "id": "7", "vector": [0.5, -1.0], "payload": {"title": "Moon", "tags": ["a"], "n": 3}
        }))
        .unwrap();
        let back = to_json(&point);
        assert_eq!(
            back["payload"],
            json!({"title": "Moon", "tags": ["a"], "n": 3.0})
        );
        assert_eq!(
            to_json(&CountResponse { count: 1 << 40 })["count"],
            json!(1u64 << 40)
        );
        assert_eq!(to_json(&CountResponse { count: 0 })["count"], json!(0));
    }

    #[test]
    fn filters_parse_from_their_documented_shape() {
        let request: SearchRequest = from_json(&json!({
            "collection": "docs", "vector": [1.0], "k": 5,
            "filter": {"must": [{"field": {"key": "title", "keyword": "Moon"}}],
                       "must_not": [{"has_id": {"ids": ["1"]}}],
                       "should": [{"field": {"key": "y", "range": {"gte": 1, "lt": 2}}}]}
        }))
        .unwrap();
        let expected = Filter {
            must: vec![Condition::keyword("title", "Moon")],
            should: vec![Condition::range("y", Range::half_open(1.0, 2.0))],
            must_not: vec![Condition::has_id(["1"])],
        };
        assert_eq!(request.filter, Some(expected));
    }

    #[test]
    fn bad_documents_are_refused() {
        let unknown = from_json::<CollectionSpec>(&json!({"name": "x", "dimensions": 3}));
        assert!(unknown.unwrap_err().to_string().contains("dimensions"));
        assert!(from_json::<CollectionSpec>(&json!({"metric": "manhattan"})).is_err());
        assert!(from_json::<CollectionSpec>(&json!({"dimension": "many"})).is_err());
        assert!(from_json::<CollectionSpec>(&json!([1, 2])).is_err());
    }
}
