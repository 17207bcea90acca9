//! Which search parameters searches honour: one answer for the parser and the
//! CapabilityStatement, so the statement lists exactly the parameters that work.

use oxifhir_model::index::{self, composite};
use oxifhir_model::search_param::{self, SearchParamDef, SearchParamType};
use oxifhir_store::IndexTable;

use crate::search_params::{ParamRef, SearchParams};

/// Parameters answered from the stored version itself rather than the index.
pub fn is_resource_column(code: &str) -> bool {
    index::NOT_EXTRACTED.contains(&code)
}

/// The index table a parameter's values live in (for a composite, its second component's);
/// `None` for special parameters and composites of a shape that is not supported.
pub fn table_of(def: &SearchParamDef) -> Option<IndexTable> {
    Some(match def.kind {
        SearchParamType::String => IndexTable::String,
        SearchParamType::Token => IndexTable::Token,
        SearchParamType::Reference => IndexTable::Reference,
        SearchParamType::Date => IndexTable::Date,
        SearchParamType::Number => IndexTable::Number,
        SearchParamType::Quantity => IndexTable::Quantity,
        SearchParamType::Uri => IndexTable::Uri,
        SearchParamType::Composite => {
            let [_, second] = composite::parts(def)?;
            return table_of(&SearchParamDef {
                kind: second,
                ..def.clone()
            });
        }
        SearchParamType::Special => return None,
    })
}

/// True when a search by `param` on `resource_type` works: `_id` and `_lastUpdated`, every
/// parameter whose values are extracted on write for that type, and the unions of such
/// parameters ([`search_param::union_parts`]).
pub fn supported(param: &ParamRef<'_>, resource_type: &str) -> bool {
    let def = param.def;
    if is_resource_column(&def.code) {
        return true;
    }
    if table_of(def).is_none() {
        return false;
    }
    if search_param::by_url(&def.url).is_none() {
        // Custom parameters are only active when they compiled.
        return true;
    }
    let extracted = |code: &str| {
        index::compiled_params(resource_type)
            .iter()
            .any(|c| c.code == code)
    };
    match search_param::union_parts(resource_type, &def.code) {
        Some(parts) => parts.iter().all(|code| extracted(code)),
        None => extracted(&def.code),
    }
}

/// The parameters of `resource_type` that searches honour, sorted by code.
pub fn supported_params<'a>(params: &'a SearchParams, resource_type: &str) -> Vec<ParamRef<'a>> {
    params
        .for_type(resource_type)
        .into_iter()
        .filter(|p| supported(p, resource_type))
        .collect()
}

/// The parameters a system-level search (over every type) honours: the `Resource` ones.
pub fn system_params() -> Vec<&'static SearchParamDef> {
    search_param::for_type("Resource")
        .into_iter()
        .filter(|def| {
            def.base.iter().any(|b| b == "Resource")
                && supported(
                    &ParamRef {
                        def,
                        pending: false,
                    },
                    "Patient",
                )
        })
        .collect()
}
