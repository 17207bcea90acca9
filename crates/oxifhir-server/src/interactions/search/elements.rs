//! `_elements`: a match reduced to the elements asked for, plus what identifies it
//! (`resourceType`, `id`, `meta`), tagged `SUBSETTED` as FHIR requires of partial resources.

use serde_json::{Map, Value, json};

/// The system of the `SUBSETTED` tag.
pub const SUBSETTED_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// `body` with only `elements` (and their `_element` extensions) at the top level. A body
/// that is not a JSON object comes back unchanged.
pub fn subset(body: &[u8], elements: &[String]) -> Vec<u8> {
    let Ok(Value::Object(resource)) = oxifhir_model::json::parse(body) else {
        return body.to_vec();
    };
    let mut kept = Map::new();
    for (name, value) in resource {
        let base = name.strip_prefix('_').unwrap_or(&name);
        if matches!(name.as_str(), "resourceType" | "id" | "meta")
            || elements.iter().any(|e| e == base)
        {
            kept.insert(name, value);
        }
    }
    let meta = kept
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        let tags = meta
            .entry("tag")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(tags) = tags {
            tags.push(json!({"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"}));
        }
    }
    oxifhir_model::json::to_bytes(&Value::Object(kept))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_asked_elements_and_tags() {
        let body = br#"{"resourceType":"Patient","id":"p","meta":{"versionId":"2"},"name":[{"family":"X"}],"birthDate":"2000","_birthDate":{"id":"b"},"gender":"male"}"#;
        let out: Value = serde_json::from_slice(&subset(body, &["birthDate".to_string()])).unwrap();
        assert_eq!(
            out,
            json!({"resourceType": "Patient", "id": "p",
                "meta": {"versionId": "2", "tag": [{"system": SUBSETTED_SYSTEM, "code": "SUBSETTED"}]},
                "birthDate": "2000", "_birthDate": {"id": "b"}})
        );
        assert_eq!(subset(b"[1]", &[]), b"[1]");
    }
}
