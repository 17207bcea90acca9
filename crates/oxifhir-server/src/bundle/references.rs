//! Rewriting references inside a transaction: `fullUrl`s of entries (`urn:uuid:…`) become the
//! `Type/id` the server assigned, and conditional references (`Patient?identifier=…`) the one
//! resource they match.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// Replaces, anywhere in `value`, every string equal to a key of `map` by its value, and
/// occurrences inside narrative `div`s (`href`/`src` attributes).
pub fn rewrite(value: &mut Value, map: &HashMap<String, String>) {
    if map.is_empty() {
        return;
    }
    match value {
        Value::String(s) => {
            if let Some(new) = map.get(s.as_str()) {
                *s = new.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, map)),
        Value::Object(obj) => {
            for (key, v) in obj.iter_mut() {
                if key == "div"
                    && let Value::String(div) = v
                {
                    for (from, to) in map {
                        if div.contains(from.as_str()) {
                            *div = div.replace(&format!("\"{from}\""), &format!("\"{to}\""));
                        }
                    }
                    continue;
                }
                rewrite(v, map);
            }
        }
        _ => {}
    }
}

/// Every `reference` value of the form `Type?criteria` (conditional references).
pub fn conditional_references(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| conditional_references(v, out)),
        Value::Object(obj) => {
            for (key, v) in obj {
                match (key.as_str(), v) {
                    ("reference", Value::String(r)) if is_conditional(r) => out.push(r.clone()),
                    _ => conditional_references(v, out),
                }
            }
        }
        _ => {}
    }
}

/// `Type?criteria` with a known type.
pub fn is_conditional(reference: &str) -> bool {
    reference
        .split_once('?')
        .is_some_and(|(t, _)| !t.contains('/') && oxifhir_model::resource_type::is_known(t))
}

/// The first string in `value` that is one of `urls` (other than `own`), if any.
pub fn mentions_any(value: &Value, urls: &HashSet<String>, own: Option<&str>) -> Option<String> {
    match value {
        Value::String(s) if urls.contains(s) && Some(s.as_str()) != own => Some(s.clone()),
        Value::Array(items) => items.iter().find_map(|v| mentions_any(v, urls, own)),
        Value::Object(obj) => obj.values().find_map(|v| mentions_any(v, urls, own)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rewrites_references_and_narrative() {
        let mut v = json!({
            "resourceType": "Observation",
            "subject": {"reference": "urn:uuid:1"},
            "text": {"div": "<div><a href=\"urn:uuid:1\">p</a></div>"},
            "focus": [{"reference": "urn:uuid:2"}],
            "note": [{"text": "urn:uuid:1 stays in prose"}]
        });
        let map = HashMap::from([("urn:uuid:1".to_string(), "Patient/a".to_string())]);
        rewrite(&mut v, &map);
        assert_eq!(v["subject"]["reference"], "Patient/a");
        assert_eq!(v["text"]["div"], "<div><a href=\"Patient/a\">p</a></div>");
        assert_eq!(v["focus"][0]["reference"], "urn:uuid:2");
        assert_eq!(v["note"][0]["text"], "urn:uuid:1 stays in prose");
    }

    #[test]
    fn finds_conditional_references() {
        let v = json!({"subject": {"reference": "Patient?identifier=a|b"}, "x": {"reference": "Patient/1"}});
        let mut out = Vec::new();
        conditional_references(&v, &mut out);
        assert_eq!(out, ["Patient?identifier=a|b"]);
        assert!(!is_conditional("http://x/Patient?y"));
    }
}
