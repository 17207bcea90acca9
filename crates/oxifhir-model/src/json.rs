//! Helpers for resource JSON: parsing with exact decimals, setting `id` and `meta`, and
//! writing the minified bytes that are stored.

use serde_json::{Map, Value};

use crate::Instant;

/// Parses JSON keeping every number exactly as written (`1.50` stays `1.50`) and object keys in
/// their order.
pub fn parse(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice(bytes)
}

/// Minified JSON bytes of `value`.
pub fn to_bytes(value: &Value) -> Vec<u8> {
    // Serializing a `Value` cannot fail: its keys are strings and it holds no foreign types.
    serde_json::to_vec(value).unwrap_or_default()
}

/// The `resourceType` of a resource object, if it has a string one.
pub fn resource_type(value: &Value) -> Option<&str> {
    value.get("resourceType").and_then(Value::as_str)
}

/// Sets `id`, `meta.versionId` and `meta.lastUpdated`, keeping every other part of `meta`.
/// `id` is placed right after `resourceType` and `meta` after `id`, as FHIR writes them.
pub fn stamp(resource: &mut Map<String, Value>, id: &str, version_id: i64, last_updated: Instant) {
    let mut meta = match resource.shift_remove("meta") {
        Some(Value::Object(meta)) => meta,
        _ => Map::new(),
    };
    meta.shift_remove("versionId");
    meta.shift_remove("lastUpdated");
    let mut new_meta = Map::new();
    new_meta.insert("versionId".into(), Value::String(version_id.to_string()));
    new_meta.insert(
        "lastUpdated".into(),
        Value::String(last_updated.to_string()),
    );
    new_meta.extend(meta);
    resource.shift_remove("id");
    let mut out = Map::with_capacity(resource.len() + 2);
    let resource_type = resource.shift_remove("resourceType");
    if let Some(rt) = resource_type {
        out.insert("resourceType".into(), rt);
    }
    out.insert("id".into(), Value::String(id.to_string()));
    out.insert("meta".into(), Value::Object(new_meta));
    out.extend(std::mem::take(resource));
    *resource = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_their_precision() {
        let v = parse(br#"{"resourceType":"Observation","valueQuantity":{"value":1.50}}"#).unwrap();
        assert_eq!(
            String::from_utf8(to_bytes(&v)).unwrap(),
            r#"{"resourceType":"Observation","valueQuantity":{"value":1.50}}"#
        );
    }

    #[test]
    fn stamp_places_id_and_meta_first() {
        let mut v = parse(br#"{"active":true,"meta":{"tag":[{"code":"x"}],"versionId":"9"},"resourceType":"Patient","id":"old"}"#)
            .unwrap();
        let obj = v.as_object_mut().unwrap();
        stamp(obj, "p1", 2, Instant::from_millis(0));
        assert_eq!(
            String::from_utf8(to_bytes(&v)).unwrap(),
            r#"{"resourceType":"Patient","id":"p1","meta":{"versionId":"2","lastUpdated":"1970-01-01T00:00:00.000Z","tag":[{"code":"x"}]},"active":true}"#
        );
    }
}
