//! Kick-off parameters of `$export`, parsed into an [`ExportRequest`]: from the query of a
//! `GET` or of an empty-body `POST`, and from a `Parameters` body. Repeated parameters are
//! comma-joined; each `_typeFilter` item is URL-decoded after splitting on commas.
//!
//! A parameter the server cannot honour is a `400` unless the client sent
//! `Prefer: handling=lenient`; then it is ignored and reported in the manifest's `error` file
//! ([`ExportRequest::ignored`]). Malformed values (an unparsable `_since`, a body that is not
//! `Parameters`) are always `400`.

use oxifhir_model::{DateRange, Instant, compartment, resource_type};
use serde_json::Value;

use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::interactions::search;
use crate::request::{FhirRequest, Method, parse_query};
use crate::route::{OperationTarget, truncate};
use crate::search_params::SearchParams;

/// Where an export was invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportLevel {
    /// `[base]/$export`: every resource.
    System,
    /// `[base]/Patient/$export`: the compartments of every Patient.
    Patient,
    /// `[base]/Group/{id}/$export`: the compartments of the Group's member Patients.
    Group(String),
}

/// One `_typeFilter` query: resources of `resource_type` matching the search `query`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeFilter {
    pub resource_type: String,
    /// The decoded query parameters.
    pub query: Vec<(String, String)>,
}

/// One `_elements` item: `element` of `resource_type`, or of every type when `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementSelector {
    pub resource_type: Option<String>,
    pub element: String,
}

/// Which Provenance resources an export returns, when not simply those of the exported type
/// `Provenance` (the system level without `includeAssociatedData`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvenanceRule {
    /// Patient and Group level without a provenance `includeAssociatedData` value (Bulk Data
    /// IG: the default): every Provenance with a target in the exported Patient compartments.
    InCompartment,
    /// `LatestProvenanceResources`: for each exported resource, its most recent Provenance.
    Latest,
    /// `RelevantProvenanceResources`: every Provenance with a target the export returns.
    Relevant,
}

/// The `includeAssociatedData` values the server supports.
pub const ASSOCIATED_DATA: [&str; 2] = ["LatestProvenanceResources", "RelevantProvenanceResources"];

/// A validated export request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub level: ExportLevel,
    /// The types to export, sorted, without repeats.
    pub types: Vec<String>,
    /// Only resources changed after this.
    pub since: Option<Instant>,
    /// Only resources as they stood at this time (caps the transaction time).
    pub until: Option<Instant>,
    pub type_filters: Vec<TypeFilter>,
    pub elements: Vec<ElementSelector>,
    /// `patient`: only the compartments of these Patient ids.
    pub patients: Option<Vec<String>>,
    /// How the Provenance resources are chosen; `None` exports them as any other type (when
    /// `types` holds `Provenance`). With a rule, `types` holds `Provenance`.
    pub provenance: Option<ProvenanceRule>,
    /// What was ignored under `handling=lenient`, one message each.
    pub ignored: Vec<String>,
}

/// The `_outputFormat` values that mean NDJSON.
const NDJSON_FORMATS: [&str; 3] = ["application/fhir+ndjson", "application/ndjson", "ndjson"];

/// Search-result parameters a `_typeFilter` query must not use.
const RESULT_PARAMS: [&str; 9] = [
    "_include",
    "_revinclude",
    "_sort",
    "_count",
    "_elements",
    "_summary",
    "_total",
    "_contained",
    search::CURSOR_PARAM,
];

/// Collects problems: unsupported ones are ignored under `handling=lenient`.
struct Problems {
    lenient: bool,
    ignored: Vec<String>,
}

impl Problems {
    fn unsupported(&mut self, parameter: &str, text: String) -> ApiResult<()> {
        if self.lenient {
            self.ignored.push(text);
            Ok(())
        } else {
            Err(ApiError::not_supported(text).at(parameter.to_owned()))
        }
    }
}

/// Parses the export parameters of `request`, invoked at `target`. `lenient` is an explicit
/// `Prefer: handling=lenient`.
pub fn parse(
    config: &ServerConfig,
    search_params: &SearchParams,
    request: &FhirRequest,
    target: &OperationTarget,
    lenient: bool,
) -> ApiResult<ExportRequest> {
    let level = match target {
        OperationTarget::System => ExportLevel::System,
        OperationTarget::Type(t) if t == "Patient" => ExportLevel::Patient,
        OperationTarget::Instance(t, id) if t == "Group" => ExportLevel::Group(id.clone()),
        _ => {
            return Err(ApiError::not_supported(
                "$export is defined at [base], [base]/Patient and [base]/Group/{id}",
            ));
        }
    };
    let mut problems = Problems {
        lenient,
        ignored: Vec::new(),
    };
    let params = gather(request)?;
    let values = |name: &str| -> Vec<String> {
        params
            .iter()
            .filter(|(k, _)| k == name)
            .flat_map(|(_, v)| v.split(','))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    };
    for (name, _) in &params {
        if !matches!(
            name.as_str(),
            "_outputFormat"
                | "_since"
                | "_until"
                | "_type"
                | "_typeFilter"
                | "_elements"
                | "patient"
                | "includeAssociatedData"
                | "_format"
                | "_pretty"
        ) {
            problems.unsupported(
                name,
                format!(
                    "The parameter '{}' is not supported by $export; it was ignored",
                    truncate(name, 64)
                ),
            )?;
        }
    }
    for format in values("_outputFormat") {
        // A `+` sent unescaped in a query arrives as a space.
        let format = format.replace(' ', "+");
        if !NDJSON_FORMATS.contains(&format.as_str()) {
            problems.unsupported(
                "_outputFormat",
                format!(
                    "_outputFormat '{}' is not supported; files are written as application/fhir+ndjson",
                    truncate(&format, 64)
                ),
            )?;
        }
    }
    let since = instant_param(&params, "_since")?;
    let until = instant_param(&params, "_until")?;
    let mut types = export_types(&level, &values("_type"), &mut problems)?;
    let provenance = provenance_rule(
        &level,
        &values("includeAssociatedData"),
        &mut types,
        &mut problems,
    )?;
    let type_filters = type_filters(config, search_params, &params, &types, &mut problems)?;
    let elements = elements(&values("_elements"), &mut problems)?;
    let patients = patients(config, request, &level, &params, &mut problems)?;
    Ok(ExportRequest {
        level,
        types,
        since,
        until,
        type_filters,
        elements,
        patients,
        provenance,
        ignored: problems.ignored,
    })
}

/// `includeAssociatedData`: the Provenance rule, adding `Provenance` to `types` when a value
/// asks for Provenance. Both values given: the least restrictive (`Relevant`). Without one, a
/// Patient or Group export that covers Provenance returns those of its compartments.
fn provenance_rule(
    level: &ExportLevel,
    values: &[String],
    types: &mut Vec<String>,
    problems: &mut Problems,
) -> ApiResult<Option<ProvenanceRule>> {
    let mut asked = None;
    for value in values {
        match value.as_str() {
            "RelevantProvenanceResources" => asked = Some(ProvenanceRule::Relevant),
            "LatestProvenanceResources" if asked.is_none() => {
                asked = Some(ProvenanceRule::Latest);
            }
            "LatestProvenanceResources" => {}
            _ => problems.unsupported(
                "includeAssociatedData",
                format!(
                    "includeAssociatedData '{}' is not supported (supported: {}); it was ignored",
                    truncate(value, 64),
                    ASSOCIATED_DATA.join(", ")
                ),
            )?,
        }
    }
    let provenance = "Provenance".to_owned();
    if asked.is_some() {
        if let Err(at) = types.binary_search(&provenance) {
            types.insert(at, provenance);
        }
        return Ok(asked);
    }
    let covered = types.binary_search(&provenance).is_ok();
    Ok((*level != ExportLevel::System && covered).then_some(ProvenanceRule::InCompartment))
}

/// The query parameters plus, for a `POST` with a body, the `Parameters` body's parameters
/// (as strings; `patient` references by their `reference`).
fn gather(request: &FhirRequest) -> ApiResult<Vec<(String, String)>> {
    let mut params: Vec<(String, String)> = request.query.clone();
    if request.method == Method::Post && !request.body.iter().all(u8::is_ascii_whitespace) {
        params.extend(crate::operations::parameters::from_body(request, "export")?);
    }
    Ok(params)
}

/// `_since` / `_until`: a FHIR instant (a partial date stands for its start).
fn instant_param(params: &[(String, String)], name: &str) -> ApiResult<Option<Instant>> {
    let given: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .collect();
    match given.as_slice() {
        [] => Ok(None),
        [one] => DateRange::parse(one)
            .map(|range| Some(Instant::from_millis(range.start)))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "{name} must be a FHIR instant such as 2024-01-31T12:00:00Z, not '{}'",
                    truncate(one, 64)
                ))
                .at(name.to_owned())
            }),
        _ => {
            Err(ApiError::bad_request(format!("{name} may be given only once")).at(name.to_owned()))
        }
    }
}

/// The types to export: `_type` or every type the level covers.
fn export_types(
    level: &ExportLevel,
    requested: &[String],
    problems: &mut Problems,
) -> ApiResult<Vec<String>> {
    let compartment_only = *level != ExportLevel::System;
    let mut types: Vec<String> = Vec::new();
    if requested.is_empty() {
        types = if compartment_only {
            compartment::patient_compartment_types()
                .iter()
                .map(|t| (*t).to_owned())
                .collect()
        } else {
            resource_type::all()
                .iter()
                .map(|t| (*t).to_owned())
                .collect()
        };
    }
    for t in requested {
        if !resource_type::is_r4(t) {
            problems.unsupported(
                "_type",
                format!(
                    "The resource type '{}' is not available for export",
                    truncate(t, 64)
                ),
            )?;
        } else if compartment_only && !compartment::in_patient_compartment(t) {
            problems.unsupported(
                "_type",
                format!(
                    "{t} is not in the Patient compartment, so a Patient or Group export has none"
                ),
            )?;
        } else {
            types.push(t.clone());
        }
    }
    types.sort();
    types.dedup();
    Ok(types)
}

/// `_typeFilter`: comma-separated, each item URL-decoded, `Type?query`.
fn type_filters(
    config: &ServerConfig,
    search_params: &SearchParams,
    params: &[(String, String)],
    types: &[String],
    problems: &mut Problems,
) -> ApiResult<Vec<TypeFilter>> {
    let mut filters = Vec::new();
    let items = params
        .iter()
        .filter(|(k, _)| k == "_typeFilter")
        .flat_map(|(_, v)| v.split(','))
        .filter(|item| !item.trim().is_empty());
    for item in items {
        let decoded = percent_encoding::percent_decode_str(item.trim())
            .decode_utf8_lossy()
            .into_owned();
        match type_filter(config, search_params, &decoded, types) {
            Ok(filter) => filters.push(filter),
            Err(error) => problems.unsupported(
                "_typeFilter",
                format!(
                    "_typeFilter '{}' cannot be applied: {}",
                    truncate(&decoded, 120),
                    error.message()
                ),
            )?,
        }
    }
    Ok(filters)
}

fn type_filter(
    config: &ServerConfig,
    search_params: &SearchParams,
    text: &str,
    types: &[String],
) -> ApiResult<TypeFilter> {
    let (resource_type, query) = text
        .split_once('?')
        .ok_or_else(|| ApiError::bad_request("it is not of the form Type?query"))?;
    if !types.iter().any(|t| t == resource_type) {
        return Err(ApiError::bad_request(format!(
            "{} is not one of the exported types",
            truncate(resource_type, 64)
        )));
    }
    let query = parse_query(query);
    if let Some((name, _)) = query
        .iter()
        .find(|(k, _)| RESULT_PARAMS.contains(&k.split(':').next().unwrap_or("")))
    {
        return Err(ApiError::bad_request(format!(
            "{} is not allowed in a _typeFilter",
            truncate(name, 64)
        )));
    }
    if query.is_empty() {
        return Err(ApiError::bad_request("the query is empty"));
    }
    search::parse(config, search_params, Some(resource_type), &query, true)?;
    Ok(TypeFilter {
        resource_type: resource_type.to_owned(),
        query,
    })
}

/// `_elements`: `Type.element` or `element`, top-level elements only.
fn elements(values: &[String], problems: &mut Problems) -> ApiResult<Vec<ElementSelector>> {
    let mut out = Vec::new();
    for value in values {
        let (resource_type, element) = match value.split_once('.') {
            Some((t, e)) => (Some(t), e),
            None => (None, value.as_str()),
        };
        let type_ok = resource_type.is_none_or(resource_type::is_r4);
        let element_ok = !element.is_empty()
            && element
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase())
            && element.chars().all(|c| c.is_ascii_alphanumeric())
            && resource_type.is_none_or(|t| {
                oxifhir_model::validation::element_names(t)
                    .iter()
                    .any(|name| choice_of(name, element))
            });
        if type_ok && element_ok {
            out.push(ElementSelector {
                resource_type: resource_type.map(str::to_owned),
                element: element.to_owned(),
            });
        } else {
            problems.unsupported(
                "_elements",
                format!(
                    "_elements '{}' is not a top-level element (Type.element or element)",
                    truncate(value, 64)
                ),
            )?;
        }
    }
    Ok(out)
}

/// True when the JSON property `name` is element `element` (`valueQuantity` is `value`).
pub fn choice_of(name: &str, element: &str) -> bool {
    name == element
        || name
            .strip_prefix(element)
            .is_some_and(|rest| rest.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
}

/// `patient` (POST only, Patient and Group level): Patient references → ids.
fn patients(
    config: &ServerConfig,
    request: &FhirRequest,
    level: &ExportLevel,
    params: &[(String, String)],
    problems: &mut Problems,
) -> ApiResult<Option<Vec<String>>> {
    let given: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "patient")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if given.is_empty() {
        return Ok(None);
    }
    if request.method != Method::Post {
        return Err(ApiError::bad_request(
            "The patient parameter is only available in a POST kick-off",
        )
        .at("patient"));
    }
    if *level == ExportLevel::System {
        problems.unsupported(
            "patient",
            "The patient parameter does not apply to a system-level export; it was ignored"
                .to_owned(),
        )?;
        return Ok(None);
    }
    let mut ids = Vec::new();
    for reference in given {
        let relative = reference
            .strip_prefix(&format!("{}/", config.base_url))
            .unwrap_or(reference);
        match relative.split_once('/') {
            Some(("Patient", id)) if oxifhir_model::id::is_valid(id) => ids.push(id.to_owned()),
            _ => problems.unsupported(
                "patient",
                format!(
                    "'{}' is not a reference to a Patient on this server; it was ignored",
                    truncate(reference, 80)
                ),
            )?,
        }
    }
    ids.sort();
    ids.dedup();
    Ok(Some(ids))
}

/// The Patient ids of a Group's active members (`member.entity` references to Patients).
pub fn group_patients(config: &ServerConfig, group: &Value) -> Vec<String> {
    let mut ids: Vec<String> = group
        .get("member")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter(|m| m.get("inactive").and_then(Value::as_bool) != Some(true))
        .filter_map(|m| m.pointer("/entity/reference").and_then(Value::as_str))
        .filter_map(|reference| {
            let relative = reference
                .strip_prefix(&format!("{}/", config.base_url))
                .unwrap_or(reference);
            match relative.split_once('/') {
                Some(("Patient", id)) if oxifhir_model::id::is_valid(id) => Some(id.to_owned()),
                _ => None,
            }
        })
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

/// `404` for a Group that does not exist (or was deleted).
pub fn unknown_group(id: &str) -> ApiError {
    ApiError::new(
        ErrorKind::NotFound,
        format!("Group/{} is not known", truncate(id, 64)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(method: Method, path: &str, body: &str, lenient: bool) -> Result<ExportRequest, u16> {
        let mut request = FhirRequest::new(method, path);
        request.body = body.as_bytes().to_vec();
        if !body.is_empty() {
            request.headers.content_type = Some("application/json".into());
        }
        let target = match request.segments.as_slice() {
            [_] => OperationTarget::System,
            [t, _] => OperationTarget::Type(t.clone()),
            [t, id, _] => OperationTarget::Instance(t.clone(), id.clone()),
            _ => unreachable!(),
        };
        parse(
            &ServerConfig::default(),
            &SearchParams::r4(),
            &request,
            &target,
            lenient,
        )
        .map_err(|e| e.status())
    }

    fn get(path: &str) -> Result<ExportRequest, u16> {
        p(Method::Get, path, "", false)
    }

    #[test]
    fn types_by_level() {
        let all = get("$export").unwrap();
        assert_eq!(all.types.len(), resource_type::all().len());
        let patient = get("Patient/$export").unwrap();
        assert_eq!(
            patient.types.len(),
            compartment::patient_compartment_types().len()
        );
        let some = get("$export?_type=Patient,Observation&_type=Patient").unwrap();
        assert_eq!(some.types, ["Observation", "Patient"]);
        assert_eq!(get("$export?_type=x,y"), Err(400));
        assert_eq!(get("Patient/$export?_type=Organization"), Err(400));
        let lenient = p(
            Method::Get,
            "Patient/$export?_type=Organization,Patient",
            "",
            true,
        )
        .unwrap();
        assert_eq!(lenient.types, ["Patient"]);
        assert_eq!(lenient.ignored.len(), 1);
    }

    #[test]
    fn formats_and_times() {
        for format in ["application/fhir+ndjson", "application/ndjson", "ndjson"] {
            assert!(
                get(&format!("$export?_outputFormat={format}")).is_ok(),
                "{format}"
            );
        }
        assert_eq!(get("$export?_outputFormat=text/csv"), Err(400));
        let r = get("$export?_since=2024-01-02T03:04:05Z&_until=2025-01-01T00:00:00Z").unwrap();
        assert_eq!(
            r.since.map(|i| i.to_string()).as_deref(),
            Some("2024-01-02T03:04:05.000Z")
        );
        assert!(r.until.is_some());
        assert_eq!(get("$export?_since=yesterday"), Err(400));
        assert_eq!(get("$export?foo=bar"), Err(400));
    }

    #[test]
    fn associated_provenance() {
        let rule = |path: &str| {
            get(path).map(|r| (r.provenance, r.types.contains(&"Provenance".to_owned())))
        };
        assert_eq!(rule("$export"), Ok((None, true)));
        assert_eq!(rule("$export?_type=Patient"), Ok((None, false)));
        assert_eq!(
            rule("Patient/$export"),
            Ok((Some(ProvenanceRule::InCompartment), true))
        );
        assert_eq!(rule("Group/g/$export?_type=Observation"), Ok((None, false)));
        assert_eq!(
            rule("$export?_type=Patient&includeAssociatedData=LatestProvenanceResources"),
            Ok((Some(ProvenanceRule::Latest), true))
        );
        for both in [
            "includeAssociatedData=LatestProvenanceResources,RelevantProvenanceResources",
            "includeAssociatedData=RelevantProvenanceResources&includeAssociatedData=LatestProvenanceResources",
        ] {
            assert_eq!(
                rule(&format!("Patient/$export?{both}")),
                Ok((Some(ProvenanceRule::Relevant), true)),
                "{both}"
            );
        }
        for bad in ["_custom", "latestprovenanceresources", "Nope"] {
            assert_eq!(
                get(&format!("$export?includeAssociatedData={bad}")),
                Err(400),
                "{bad}"
            );
        }
        let lenient = p(
            Method::Get,
            "Patient/$export?includeAssociatedData=_custom,LatestProvenanceResources",
            "",
            true,
        )
        .unwrap();
        assert_eq!(lenient.provenance, Some(ProvenanceRule::Latest));
        assert_eq!(lenient.ignored.len(), 1);
        // A Provenance `_typeFilter` is allowed once a value adds Provenance.
        assert!(
            get("$export?_type=Observation&includeAssociatedData=RelevantProvenanceResources&_typeFilter=Provenance%3F_id%3Dx")
                .is_ok()
        );
    }

    #[test]
    fn type_filters_split_then_decode() {
        let r = get(
            "$export?_type=Patient,Observation&_typeFilter=Patient%3F_id%3Da%252Cb,Observation%3F_lastUpdated%3Dge2024-01-01",
        )
        .unwrap();
        assert_eq!(r.type_filters.len(), 2);
        assert_eq!(
            r.type_filters[0].query,
            [("_id".to_owned(), "a,b".to_owned())]
        );
        assert_eq!(
            get("$export?_type=Patient&_typeFilter=Observation%3F_id%3Da"),
            Err(400)
        );
        assert_eq!(get("$export?_typeFilter=Patient%3F_sort%3D_id"), Err(400));
        assert_eq!(get("$export?_typeFilter=Patient"), Err(400));
    }

    #[test]
    fn elements_are_top_level() {
        let r = get("$export?_elements=Patient.name,id,Observation.value").unwrap();
        assert_eq!(r.elements.len(), 3);
        for bad in ["a.b.c", "x.id", "x-y", "Patient.nope"] {
            assert_eq!(get(&format!("$export?_elements={bad}")), Err(400), "{bad}");
        }
    }

    #[test]
    fn post_bodies() {
        let body = r#"{"resourceType":"Parameters","parameter":[
            {"name":"_type","valueString":"Patient"},
            {"name":"patient","valueReference":{"reference":"Patient/b"}},
            {"name":"patient","valueReference":{"reference":"Patient/a"}}]}"#;
        let r = p(Method::Post, "Group/g/$export", body, false).unwrap();
        assert_eq!(r.level, ExportLevel::Group("g".into()));
        assert_eq!(r.patients, Some(vec!["a".into(), "b".into()]));
        assert_eq!(p(Method::Post, "$export", body, false), Err(400));
        assert_eq!(p(Method::Post, "$export", "{}", false), Err(400));
        assert!(p(Method::Post, "$export?_type=Patient", "", false).is_ok());
        assert_eq!(get("Patient/$export?patient=Patient/a"), Err(400));
    }
}
