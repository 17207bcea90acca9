//! What to export: the level (system, all patients, one Group) and the kick-off parameters,
//! validated before anything is sent, and rendered as a GET query or a `Parameters` body.

use reqwest::Url;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Error;

/// A GET kick-off URL longer than this is sent as a POST instead (servers and proxies often
/// refuse long URLs).
pub const MAX_GET_URL: usize = 2000;

/// The output format the client asks for (the only one the IG requires).
pub const OUTPUT_FORMAT: &str = "application/fhir+ndjson";

/// Whose data is exported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportLevel {
    /// `[base]/$export`: everything.
    System,
    /// `[base]/Patient/$export`: every patient's compartment.
    Patient,
    /// `[base]/Group/{id}/$export`: the compartments of a Group's members.
    Group(String),
}

/// A kick-off request. Build one, then [`ExportRequest::validate`] it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExportRequest {
    /// The level; `None` is [`ExportLevel::System`].
    pub level: Option<ExportLevel>,
    /// `_type`: resource types to export (all when empty).
    pub types: Vec<String>,
    /// `_since`: only resources changed after this instant.
    pub since: Option<String>,
    /// `_until` (Bulk Data v3): only resources changed before this instant.
    pub until: Option<String>,
    /// `_typeFilter`: FHIR search queries (`Type?params`), each its own parameter.
    pub type_filters: Vec<String>,
    /// `_elements`: the elements to keep.
    pub elements: Vec<String>,
    /// `patient` (POST only): the patients whose compartments are exported.
    pub patients: Vec<String>,
    /// Kick off with POST and a `Parameters` body even when a GET would do.
    pub post: bool,
}

fn is_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// True for a plausible resource type name (letters and digits, starting with a capital).
pub fn is_type_name(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text.starts_with(|c: char| c.is_ascii_uppercase())
        && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

impl ExportRequest {
    /// The level, [`ExportLevel::System`] by default.
    pub fn level(&self) -> &ExportLevel {
        self.level.as_ref().unwrap_or(&ExportLevel::System)
    }

    /// Checks what can be checked before asking the server: ids, type names, filters.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |what: String| Err(Error::Protocol(what));
        if let ExportLevel::Group(id) = self.level()
            && !is_id(id)
        {
            return bad(format!(
                "'{id}' is not a FHIR id (letters, digits, '-', '.'; at most 64)"
            ));
        }
        if let Some(t) = self.types.iter().find(|t| !is_type_name(t)) {
            return bad(format!("'{t}' is not a resource type"));
        }
        if let Some(f) = self.type_filters.iter().find(|f| {
            let (t, query) = f.split_once('?').unwrap_or((f, ""));
            !is_type_name(t) || query.is_empty()
        }) {
            return bad(format!(
                "'{f}' is not a _typeFilter (Type?search-parameters)"
            ));
        }
        if let Some(p) = self
            .patients
            .iter()
            .find(|p| !is_id(p.strip_prefix("Patient/").unwrap_or(p)))
        {
            return bad(format!("'{p}' is not a Patient id or reference"));
        }
        if !self.patients.is_empty() && *self.level() == ExportLevel::System {
            return bad("--patient needs the Patient or Group level".to_owned());
        }
        Ok(())
    }

    /// `$export` at this level, relative to the server's base URL.
    pub fn path(&self) -> String {
        match self.level() {
            ExportLevel::System => "$export".to_owned(),
            ExportLevel::Patient => "Patient/$export".to_owned(),
            ExportLevel::Group(id) => format!("Group/{id}/$export"),
        }
    }

    /// The parameters other than `patient`, as name/value pairs in a fixed order.
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = vec![("_outputFormat", OUTPUT_FORMAT.to_owned())];
        if !self.types.is_empty() {
            pairs.push(("_type", self.types.join(",")));
        }
        pairs.extend(self.since.iter().map(|s| ("_since", s.clone())));
        pairs.extend(self.until.iter().map(|u| ("_until", u.clone())));
        pairs.extend(self.type_filters.iter().map(|f| ("_typeFilter", f.clone())));
        if !self.elements.is_empty() {
            pairs.push(("_elements", self.elements.join(",")));
        }
        pairs
    }

    /// The kick-off URL of a GET (every parameter in the query) under `base`.
    pub fn get_url(&self, base: &Url) -> Result<Url, Error> {
        let mut url = endpoint(base, &self.path())?;
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in self.pairs() {
                query.append_pair(name, &value);
            }
        }
        Ok(url)
    }

    /// Whether the kick-off must be a POST: asked for, needed for `patient`, or a GET URL
    /// would be too long.
    pub fn needs_post(&self, base: &Url) -> Result<bool, Error> {
        Ok(self.post
            || !self.patients.is_empty()
            || self.get_url(base)?.as_str().len() > MAX_GET_URL)
    }

    /// The `Parameters` body of a POST kick-off.
    pub fn parameters(&self) -> Value {
        let mut parameters: Vec<Value> = self
            .pairs()
            .into_iter()
            .map(|(name, value)| match name {
                "_since" | "_until" => json!({"name": name, "valueInstant": value}),
                _ => json!({"name": name, "valueString": value}),
            })
            .collect();
        parameters.extend(self.patients.iter().map(|p| {
            let id = p.strip_prefix("Patient/").unwrap_or(p);
            json!({"name": "patient", "valueReference": {"reference": format!("Patient/{id}")}})
        }));
        json!({"resourceType": "Parameters", "parameter": parameters})
    }
}

/// `base` joined with a relative `path` (the base's own path kept, as FHIR base URLs have one).
pub fn endpoint(base: &Url, path: &str) -> Result<Url, Error> {
    let mut base = base.clone();
    if !base.path().ends_with('/') {
        base.set_path(&format!("{}/", base.path()));
    }
    base.join(path)
        .map_err(|e| Error::Protocol(format!("cannot build a URL from {base} and {path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("http://h:1/fhir").unwrap()
    }

    #[test]
    fn get_urls() {
        let request = ExportRequest {
            level: Some(ExportLevel::Group("g-1".into())),
            types: vec!["Patient".into(), "Observation".into()],
            since: Some("2024-01-01T00:00:00Z".into()),
            type_filters: vec!["Observation?code=http://loinc.org|1,2&status=final".into()],
            ..Default::default()
        };
        request.validate().unwrap();
        assert_eq!(
            request.get_url(&base()).unwrap().as_str(),
            "http://h:1/fhir/Group/g-1/$export?_outputFormat=application%2Ffhir%2Bndjson\
             &_type=Patient%2CObservation&_since=2024-01-01T00%3A00%3A00Z\
             &_typeFilter=Observation%3Fcode%3Dhttp%3A%2F%2Floinc.org%7C1%2C2%26status%3Dfinal"
        );
        assert!(!request.needs_post(&base()).unwrap());
        let system = ExportRequest::default();
        assert_eq!(
            system
                .get_url(&Url::parse("http://h/fhir/").unwrap())
                .unwrap()
                .path(),
            "/fhir/$export"
        );
    }

    #[test]
    fn post_when_needed() {
        let patients = ExportRequest {
            level: Some(ExportLevel::Patient),
            patients: vec!["Patient/a".into(), "b".into()],
            since: Some("2024-01-01T00:00:00Z".into()),
            ..Default::default()
        };
        patients.validate().unwrap();
        assert!(patients.needs_post(&base()).unwrap());
        assert_eq!(
            patients.parameters(),
            json!({"resourceType": "Parameters", "parameter": [
                {"name": "_outputFormat", "valueString": OUTPUT_FORMAT},
                {"name": "_since", "valueInstant": "2024-01-01T00:00:00Z"},
                {"name": "patient", "valueReference": {"reference": "Patient/a"}},
                {"name": "patient", "valueReference": {"reference": "Patient/b"}},
            ]})
        );
        let long = ExportRequest {
            type_filters: (0..200).map(|i| format!("Observation?code={i}")).collect(),
            ..Default::default()
        };
        assert!(long.needs_post(&base()).unwrap());
    }

    #[test]
    fn validation() {
        let bad = [
            ExportRequest {
                level: Some(ExportLevel::Group("a/b".into())),
                ..Default::default()
            },
            ExportRequest {
                types: vec!["patient".into()],
                ..Default::default()
            },
            ExportRequest {
                type_filters: vec!["Observation".into()],
                ..Default::default()
            },
            ExportRequest {
                patients: vec!["a".into()],
                ..Default::default()
            },
        ];
        for request in bad {
            assert!(request.validate().is_err(), "{request:?}");
        }
    }
}
