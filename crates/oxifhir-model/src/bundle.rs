//! Writing `Bundle` resources around stored resource bytes, without parsing them again.

use serde_json::{Map, Value, json};

use crate::Instant;

/// Builds a Bundle's JSON by appending entries whose resources are already-serialized bytes.
#[derive(Debug)]
pub struct BundleWriter {
    buf: Vec<u8>,
    entries: usize,
}

/// One entry's parts other than the resource.
#[derive(Debug, Default)]
pub struct EntryParts {
    pub full_url: Option<String>,
    /// `entry.search.mode` (`match`, `include`, `outcome`).
    pub search_mode: Option<&'static str>,
    /// `entry.request`, for history and batch/transaction requests.
    pub request: Option<Value>,
    /// `entry.response`, for history and batch/transaction responses.
    pub response: Option<Value>,
}

impl BundleWriter {
    /// Starts a Bundle of `bundle_type` with its `id`, `meta.lastUpdated`, optional `total` and
    /// `link`s (relation, url).
    pub fn new(
        bundle_type: &str,
        id: &str,
        last_updated: Instant,
        total: Option<u64>,
        links: &[(&str, String)],
    ) -> Self {
        let mut head = Map::new();
        head.insert("resourceType".into(), json!("Bundle"));
        head.insert("id".into(), json!(id));
        head.insert(
            "meta".into(),
            json!({ "lastUpdated": last_updated.to_string() }),
        );
        head.insert("type".into(), json!(bundle_type));
        if let Some(total) = total {
            head.insert("total".into(), json!(total));
        }
        if !links.is_empty() {
            let links: Vec<Value> = links
                .iter()
                .map(|(relation, url)| json!({"relation": relation, "url": url}))
                .collect();
            head.insert("link".into(), Value::Array(links));
        }
        let mut buf = crate::json::to_bytes(&Value::Object(head));
        buf.pop(); // the closing brace; entries follow
        BundleWriter { buf, entries: 0 }
    }

    /// Appends an entry; `resource` is exact JSON bytes of a resource.
    pub fn entry(&mut self, resource: Option<&[u8]>, parts: EntryParts) {
        self.buf.extend_from_slice(if self.entries == 0 {
            b",\"entry\":[{"
        } else {
            b",{"
        });
        self.entries += 1;
        let mut first = true;
        let mut field = |buf: &mut Vec<u8>, name: &str, value: &[u8]| {
            if !first {
                buf.push(b',');
            }
            first = false;
            buf.push(b'"');
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(b"\":");
            buf.extend_from_slice(value);
        };
        if let Some(url) = parts.full_url {
            field(
                &mut self.buf,
                "fullUrl",
                &crate::json::to_bytes(&Value::String(url)),
            );
        }
        if let Some(resource) = resource {
            field(&mut self.buf, "resource", resource);
        }
        if let Some(mode) = parts.search_mode {
            field(
                &mut self.buf,
                "search",
                format!("{{\"mode\":\"{mode}\"}}").as_bytes(),
            );
        }
        if let Some(request) = parts.request {
            field(&mut self.buf, "request", &crate::json::to_bytes(&request));
        }
        if let Some(response) = parts.response {
            field(&mut self.buf, "response", &crate::json::to_bytes(&response));
        }
        self.buf.push(b'}');
    }

    /// Number of entries so far.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// True when no entry was added.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The finished Bundle bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if self.entries > 0 {
            self.buf.push(b']');
        }
        self.buf.push(b'}');
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_valid_json_around_raw_resources() {
        let mut w = BundleWriter::new(
            "searchset",
            "b1",
            Instant::from_millis(0),
            Some(2),
            &[("self", "http://x/fhir/Patient".into())],
        );
        w.entry(
            Some(br#"{"resourceType":"Patient","id":"a"}"#),
            EntryParts {
                full_url: Some("http://x/fhir/Patient/a".into()),
                search_mode: Some("match"),
                ..Default::default()
            },
        );
        w.entry(
            None,
            EntryParts {
                response: Some(json!({"status": "204"})),
                ..Default::default()
            },
        );
        let v: Value = serde_json::from_slice(&w.finish()).unwrap();
        assert_eq!(v["total"], 2);
        assert_eq!(v["entry"][0]["resource"]["id"], "a");
        assert_eq!(v["entry"][0]["search"]["mode"], "match");
        assert_eq!(v["entry"][1]["response"]["status"], "204");
    }

    #[test]
    fn empty_bundles_have_no_entry_key() {
        let w = BundleWriter::new("searchset", "b", Instant::from_millis(0), Some(0), &[]);
        let v: Value = serde_json::from_slice(&w.finish()).unwrap();
        assert!(v.get("entry").is_none());
    }
}
