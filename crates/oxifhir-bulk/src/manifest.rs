//! The completion manifest (Bulk Data IG v2 "Response - Complete Status") and the files it
//! lists, each given a local name: `Type-N.ndjson` for `output`, `error/Type-N.ndjson` and
//! `deleted/Type-N.ndjson` for the `error` and `deleted` lists (N counts the files of a type
//! from 1).

use std::collections::HashMap;

use reqwest::Url;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::request::is_type_name;

/// A manifest, as far as the client needs it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The server's cut: nothing changed after it is in the files.
    pub transaction_time: String,
    /// The kick-off URL as the server saw it.
    #[serde(default)]
    pub request: String,
    /// Whether file downloads need the access token.
    #[serde(default)]
    pub requires_access_token: bool,
    /// The resource files.
    #[serde(default)]
    pub output: Vec<ManifestEntry>,
    /// Files of OperationOutcomes about the export.
    #[serde(default)]
    pub error: Vec<ManifestEntry>,
    /// Files of deleted resources (with `_since`).
    #[serde(default)]
    pub deleted: Vec<ManifestEntry>,
}

/// One file of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The resource type of its lines.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Where to download it.
    pub url: String,
    /// Its number of resources (lines), when the server says.
    #[serde(default)]
    pub count: Option<u64>,
}

/// Which list of the manifest a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Output,
    Error,
    Deleted,
}

/// A file to download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileTask {
    pub section: Section,
    pub resource_type: String,
    /// The absolute URL.
    pub url: String,
    /// The manifest's `count`.
    pub count: Option<u64>,
    /// The path under the output directory (`/`-separated).
    pub name: String,
    /// Its line count once it is downloaded completely and checked.
    #[serde(default)]
    pub lines: Option<u64>,
}

impl Manifest {
    /// Parses a manifest received from `status_url` (relative file URLs resolve against it).
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(bytes)
            .map_err(|e| Error::Protocol(format!("the completion manifest is not valid: {e}")))
    }

    /// Every file to download, in manifest order, each with its local name.
    pub fn tasks(&self, status_url: &Url) -> Result<Vec<FileTask>, Error> {
        let mut numbers: HashMap<(Section, String), u32> = HashMap::new();
        let lists = [
            (Section::Output, &self.output),
            (Section::Error, &self.error),
            (Section::Deleted, &self.deleted),
        ];
        let mut tasks = Vec::new();
        for (section, entries) in lists {
            for entry in entries {
                if !is_type_name(&entry.resource_type) {
                    return Err(Error::Protocol(format!(
                        "the manifest lists a file of type '{}', which is not a resource type",
                        entry.resource_type
                    )));
                }
                let url = status_url.join(&entry.url).map_err(|e| {
                    Error::Protocol(format!("the manifest's URL '{}' is bad: {e}", entry.url))
                })?;
                let n = numbers
                    .entry((section, entry.resource_type.clone()))
                    .or_default();
                *n += 1;
                let file = format!("{}-{n}.ndjson", entry.resource_type);
                let name = match section {
                    Section::Output => file,
                    Section::Error => format!("error/{file}"),
                    Section::Deleted => format!("deleted/{file}"),
                };
                tasks.push(FileTask {
                    section,
                    resource_type: entry.resource_type.clone(),
                    url: url.into(),
                    count: entry.count,
                    name,
                    lines: None,
                });
            }
        }
        Ok(tasks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_get_local_names() {
        let manifest = Manifest::parse(
            br#"{"transactionTime":"2024-01-01T00:00:00Z","request":"x","requiresAccessToken":true,
            "output":[{"type":"Patient","url":"files/a.ndjson","count":3},
                      {"type":"Patient","url":"http://other/b","count":2},
                      {"type":"Observation","url":"c"}],
            "error":[{"type":"OperationOutcome","url":"e"}],
            "extension":{"x":1}}"#,
        )
        .unwrap();
        assert!(manifest.requires_access_token);
        let status = Url::parse("http://h/fhir/_async/1").unwrap();
        let tasks = manifest.tasks(&status).unwrap();
        let names: Vec<(&str, &str, Option<u64>)> = tasks
            .iter()
            .map(|t| (t.name.as_str(), t.url.as_str(), t.count))
            .collect();
        assert_eq!(
            names,
            [
                (
                    "Patient-1.ndjson",
                    "http://h/fhir/_async/files/a.ndjson",
                    Some(3)
                ),
                ("Patient-2.ndjson", "http://other/b", Some(2)),
                ("Observation-1.ndjson", "http://h/fhir/_async/c", None),
                (
                    "error/OperationOutcome-1.ndjson",
                    "http://h/fhir/_async/e",
                    None
                ),
            ]
        );
    }

    #[test]
    fn hostile_types_are_refused() {
        let manifest = Manifest::parse(
            br#"{"transactionTime":"t","output":[{"type":"../../etc","url":"x"}]}"#,
        )
        .unwrap();
        let status = Url::parse("http://h/").unwrap();
        assert!(manifest.tasks(&status).is_err());
        assert!(Manifest::parse(b"[]").is_err());
    }
}
