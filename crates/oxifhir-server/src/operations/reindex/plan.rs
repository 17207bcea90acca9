//! What one `$reindex` re-extracts: the `url` parameters resolved against the search
//! parameters in force (an unknown url is a `400`), the resource types to scan, which index
//! entries of each resource are replaced, and which custom parameters count as indexed for
//! every stored resource once it completes.

use std::collections::BTreeMap;

use oxifhir_model::index::{self, CompiledParam, IndexEntries};
use oxifhir_model::search_param::SearchParamType;
use oxifhir_model::{resource_type, search_param};
use oxifhir_store::{IndexScope, IndexTable};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::operations::parameters;
use crate::request::FhirRequest;
use crate::route::{OperationTarget, truncate};
use crate::search_params::SearchParams;

/// One parameter chosen by `url`, compiled for each type it applies to.
#[derive(Debug, Clone)]
struct Chosen {
    code: String,
    compiled: BTreeMap<String, CompiledParam>,
}

/// A resolved `$reindex` request.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The types that may hold resources to reindex, in order.
    pub types: Vec<String>,
    /// Only this resource (instance level).
    pub id: Option<String>,
    /// The parameters chosen by `url`; empty: every parameter (the whole index).
    chosen: Vec<Chosen>,
    /// `(url, fingerprint)` of the custom parameters that every stored resource is indexed
    /// for once this reindex completes.
    pub marks: Vec<(String, String)>,
}

/// The `url` values of a request (from the query or a `Parameters` body).
pub fn urls(request: &FhirRequest) -> ApiResult<Vec<String>> {
    let params = parameters::gather(request, "reindex", &["url"])?;
    Ok(params.into_iter().map(|(_, v)| v).collect())
}

impl Plan {
    /// Resolves `urls` (empty: all parameters) at `target` against `params`.
    pub fn new(
        params: &SearchParams,
        target: &OperationTarget,
        urls: &[String],
    ) -> ApiResult<Plan> {
        let (only_type, id) = match target {
            OperationTarget::System => (None, None),
            OperationTarget::Type(t) => (Some(t.as_str()), None),
            OperationTarget::Instance(t, id) => (Some(t.as_str()), Some(id.clone())),
        };
        if let Some(t) = only_type
            && !resource_type::is_known(t)
        {
            return Err(ApiError::bad_request(format!(
                "Unknown resource type '{}'",
                truncate(t, 64)
            )));
        }
        let mut chosen: Vec<Chosen> = Vec::new();
        let mut marks = Vec::new();
        let mut seen: Vec<&str> = Vec::new();
        for url in urls {
            if seen.contains(&url.as_str()) {
                continue;
            }
            seen.push(url);
            let (code, compiled, mark) = resolve(params, url)?;
            if let Some(t) = only_type
                && !compiled.contains_key(t)
            {
                return Err(ApiError::bad_request(format!(
                    "SearchParameter '{}' does not apply to {t}",
                    truncate(url, 200)
                ))
                .at("url"));
            }
            let covers = only_type.is_none_or(|t| id.is_none() && compiled.keys().all(|k| k == t));
            if let Some(fingerprint) = mark
                && covers
            {
                marks.push((url.clone(), fingerprint));
            }
            if !chosen
                .iter()
                .any(|c| c.code == code && c.compiled.keys().eq(compiled.keys()))
            {
                chosen.push(Chosen { code, compiled });
            }
        }
        if urls.is_empty() {
            for custom in params.custom() {
                let types = custom.types();
                let covers =
                    id.is_none() && only_type.is_none_or(|t| types.iter().all(|k| *k == t));
                if covers {
                    marks.push((custom.def.url.clone(), custom.fingerprint.clone()));
                }
            }
        }
        let types: Vec<String> = match only_type {
            Some(t) => vec![t.to_owned()],
            None if chosen.is_empty() => resource_type::all()
                .iter()
                .filter(|t| **t != resource_type::ASYNC_JOB)
                .map(|t| (*t).to_owned())
                .collect(),
            None => {
                let mut types: Vec<String> = chosen
                    .iter()
                    .flat_map(|c| c.compiled.keys().cloned())
                    .collect();
                types.sort();
                types.dedup();
                types
            }
        };
        Ok(Plan {
            types,
            id,
            chosen,
            marks,
        })
    }

    /// The chosen parameters compiled for `resource_type`; `None` when the whole index of
    /// the type is rebuilt: no `url`, or a chosen composite (whose entries are stored under
    /// names derived from its values, so they cannot be replaced by code).
    fn chosen_for(&self, resource_type: &str) -> Option<Vec<&CompiledParam>> {
        if self.chosen.is_empty() {
            return None;
        }
        let compiled: Vec<&CompiledParam> = self
            .chosen
            .iter()
            .filter_map(|c| c.compiled.get(resource_type))
            .collect();
        let whole = compiled
            .iter()
            .any(|c| table_of(c.kind).is_none() || !c.components.is_empty());
        (!whole).then_some(compiled)
    }

    /// Which index entries of a resource of `resource_type` are replaced.
    pub fn scope(&self, resource_type: &str) -> IndexScope {
        let Some(compiled) = self.chosen_for(resource_type) else {
            return IndexScope::All;
        };
        let mut codes: Vec<String> = compiled.iter().map(|c| c.code.clone()).collect();
        codes.sort();
        codes.dedup();
        let mut tables: Vec<IndexTable> =
            compiled.iter().filter_map(|c| table_of(c.kind)).collect();
        tables.sort_by_key(|t| t.table_name());
        tables.dedup();
        IndexScope::Params { codes, tables }
    }

    /// What extracts the entries of resources of `resource_type`.
    pub fn extractor(&self, resource_type: &str) -> Extractor {
        match self.chosen_for(resource_type) {
            None => Extractor::All,
            Some(compiled) => Extractor::Only(compiled.into_iter().cloned().collect()),
        }
    }
}

/// How the entries of one type's resources are extracted.
#[derive(Debug, Clone)]
pub enum Extractor {
    /// Every parameter in force, as a write extracts them.
    All,
    /// Only these parameters.
    Only(Vec<CompiledParam>),
}

impl Extractor {
    /// The entries of `resource`, of type `resource_type`.
    pub fn extract(
        &self,
        params: &SearchParams,
        resource_type: &str,
        resource: &Value,
    ) -> IndexEntries {
        match self {
            Extractor::All => params.index(resource_type, resource),
            Extractor::Only(compiled) => params.index_only(compiled, resource),
        }
    }
}

/// The index table of a (non-composite) parameter type; `None` for composites and specials.
fn table_of(kind: SearchParamType) -> Option<IndexTable> {
    Some(match kind {
        SearchParamType::String => IndexTable::String,
        SearchParamType::Token => IndexTable::Token,
        SearchParamType::Reference => IndexTable::Reference,
        SearchParamType::Date => IndexTable::Date,
        SearchParamType::Number => IndexTable::Number,
        SearchParamType::Quantity => IndexTable::Quantity,
        SearchParamType::Uri => IndexTable::Uri,
        SearchParamType::Composite | SearchParamType::Special => return None,
    })
}

/// The code, compiled expressions per type and (for a custom parameter) fingerprint of the
/// parameter `url`.
fn resolve(
    params: &SearchParams,
    url: &str,
) -> ApiResult<(String, BTreeMap<String, CompiledParam>, Option<String>)> {
    if let Some(custom) = params.custom().iter().find(|c| c.def.url == url) {
        let compiled = custom
            .types()
            .into_iter()
            .filter_map(|t| custom.compiled_for(t).map(|c| (t.to_owned(), c.clone())))
            .collect();
        return Ok((
            custom.def.code.clone(),
            compiled,
            Some(custom.fingerprint.clone()),
        ));
    }
    let Some(def) = search_param::by_url(url) else {
        return Err(ApiError::bad_request(format!(
            "Unknown SearchParameter url '{}': no active SearchParameter on this server and no R4 search parameter has it",
            truncate(url, 200)
        ))
        .at("url"));
    };
    let compiled: BTreeMap<String, CompiledParam> = resource_type::all()
        .iter()
        .filter_map(|t| {
            index::compiled_params(t)
                .iter()
                .find(|c| c.code == def.code && def.applies_to(t))
                .map(|c| ((*t).to_owned(), c.clone()))
        })
        .collect();
    if let Some(parts) = resource_type::all()
        .iter()
        .find_map(|t| search_param::union_parts(t, &def.code).filter(|_| def.applies_to(t)))
    {
        return Err(ApiError::bad_request(format!(
            "SearchParameter '{}' is searched through the index entries of {}; reindex those",
            truncate(url, 200),
            parts.join(", ")
        ))
        .at("url"));
    }
    if compiled.is_empty() {
        return Err(ApiError::bad_request(format!(
            "SearchParameter '{}' has no index entries to rebuild",
            truncate(url, 200)
        ))
        .at("url"));
    }
    Ok((def.code.clone(), compiled, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "http://hl7.org/fhir/SearchParameter/individual-given";

    #[test]
    fn r4_urls_resolve_and_unknown_ones_are_400() {
        let params = SearchParams::r4();
        let plan = Plan::new(&params, &OperationTarget::System, &[NAME.to_owned()]).expect("plan");
        assert!(plan.types.contains(&"Patient".to_owned()));
        assert!(plan.types.contains(&"Practitioner".to_owned()));
        assert!(!plan.types.contains(&"Observation".to_owned()));
        assert_eq!(
            plan.scope("Patient"),
            IndexScope::Params {
                codes: vec!["given".into()],
                tables: vec![IndexTable::String]
            }
        );
        assert!(plan.marks.is_empty());
        let unknown = Plan::new(
            &params,
            &OperationTarget::System,
            &["http://x/y".to_owned()],
        );
        assert_eq!(unknown.unwrap_err().status(), 400);
        let wrong_type = Plan::new(
            &params,
            &OperationTarget::Type("Observation".into()),
            &[NAME.to_owned()],
        );
        assert_eq!(wrong_type.unwrap_err().status(), 400);
    }

    #[test]
    fn a_composite_rebuilds_the_whole_index_of_its_types() {
        let params = SearchParams::r4();
        let url = "http://hl7.org/fhir/SearchParameter/Observation-code-value-quantity";
        let plan = Plan::new(&params, &OperationTarget::System, &[url.to_owned()]).expect("plan");
        assert_eq!(plan.types, ["Observation"]);
        assert_eq!(plan.scope("Observation"), IndexScope::All);
        assert!(matches!(plan.extractor("Observation"), Extractor::All));
    }

    #[test]
    fn no_url_means_every_parameter() {
        let params = SearchParams::r4();
        let plan = Plan::new(&params, &OperationTarget::Type("Patient".into()), &[]).expect("plan");
        assert_eq!(plan.types, ["Patient"]);
        assert_eq!(plan.scope("Patient"), IndexScope::All);
        let plan = Plan::new(&params, &OperationTarget::System, &[]).expect("plan");
        assert!(plan.types.len() > 100);
        assert!(!plan.types.iter().any(|t| t == resource_type::ASYNC_JOB));
    }
}
