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
/// `id` is placed right after `resourceType` and `meta` after `id`, as FHIR writes them; the
/// other elements keep their order.
pub fn stamp(resource: &mut Map<String, Value>, id: &str, version_id: i64, last_updated: Instant) {
    let old_meta = match resource.get_mut("meta") {
        Some(Value::Object(meta)) => std::mem::take(meta),
        _ => Map::new(),
    };
    let mut meta = Map::with_capacity(old_meta.len() + 2);
    meta.insert("versionId".into(), Value::String(version_id.to_string()));
    meta.insert(
        "lastUpdated".into(),
        Value::String(last_updated.to_string()),
    );
    meta.extend(
        old_meta
            .into_iter()
            .filter(|(k, _)| k != "versionId" && k != "lastUpdated"),
    );
    // Moving a key to where it already is costs a lookup; the map is never rebuilt.
    let mut at = 0;
    if let Some(resource_type) = resource.get("resourceType").cloned() {
        resource.shift_insert(at, "resourceType".into(), resource_type);
        at += 1;
    }
    resource.shift_insert(at, "id".into(), Value::String(id.to_string()));
    resource.shift_insert(at + 1, "meta".into(), Value::Object(meta));
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
    fn stamp_keeps_the_order_of_a_stamped_resource() {
        let mut v = parse(br#"{"resourceType":"Patient","id":"a","meta":{"versionId":"1","lastUpdated":"x","source":"s"},"active":true,"gender":"other"}"#)
            .unwrap();
        stamp(v.as_object_mut().unwrap(), "a", 2, Instant::from_millis(0));
        assert_eq!(
            String::from_utf8(to_bytes(&v)).unwrap(),
            r#"{"resourceType":"Patient","id":"a","meta":{"versionId":"2","lastUpdated":"1970-01-01T00:00:00.000Z","source":"s"},"active":true,"gender":"other"}"#
        );
        let mut v = parse(br#"{"gender":"other","id":"b","meta":"not an object"}"#).unwrap();
        stamp(v.as_object_mut().unwrap(), "c", 1, Instant::from_millis(0));
        assert_eq!(
            String::from_utf8(to_bytes(&v)).unwrap(),
            r#"{"id":"c","meta":{"versionId":"1","lastUpdated":"1970-01-01T00:00:00.000Z"},"gender":"other"}"#
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
