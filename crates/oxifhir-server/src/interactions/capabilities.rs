//! `GET [base]/metadata`: the CapabilityStatement, generated from the same tables the router
//! and the search parser use, so it cannot claim what the server does not do.

use oxifhir_model::{Instant, resource_type};
use serde_json::{Value, json};

use super::Context;
use crate::error::ApiResult;
use crate::operations;
use crate::response::FhirResponse;

/// Search parameters every type supports today, with their types.
pub const COMMON_SEARCH_PARAMS: &[(&str, &str, &str)] = &[
    (
        "_id",
        "token",
        "http://hl7.org/fhir/SearchParameter/Resource-id",
    ),
    (
        "_lastUpdated",
        "date",
        "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
    ),
];

/// Interactions every resource type supports.
const TYPE_INTERACTIONS: &[&str] = &[
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
];

/// The CapabilityStatement of this server.
pub fn capability_statement(ctx: &Context<'_>) -> ApiResult<FhirResponse> {
    let search_params: Vec<Value> = COMMON_SEARCH_PARAMS
        .iter()
        .map(|(name, kind, definition)| json!({"name": name, "type": kind, "definition": definition}))
        .collect();
    let interactions: Vec<Value> = TYPE_INTERACTIONS
        .iter()
        .map(|code| json!({"code": code}))
        .collect();
    let resources: Vec<Value> = resource_type::all()
        .iter()
        .map(|t| {
            let mut resource = json!({
                "type": t,
                "interaction": interactions,
                "versioning": "versioned",
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "full-support",
                "conditionalUpdate": true,
                "conditionalDelete": "single",
                "searchParam": search_params,
            });
            let ops = operations::capability_entries(Some(t));
            if !ops.is_empty() {
                resource["operation"] = Value::Array(ops);
            }
            resource
        })
        .collect();
    let mut rest = json!({
        "mode": "server",
        "resource": resources,
        "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "search-system"}, {"code": "history-system"}],
        "searchParam": search_params,
    });
    let ops = operations::capability_entries(None);
    if !ops.is_empty() {
        rest["operation"] = Value::Array(ops);
    }
    let statement = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": Instant::now().to_string(),
        "publisher": "oxifhir",
        "kind": "instance",
        "instantiates": ["http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
        "software": {"name": "oxifhir", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "oxifhir FHIR R4 server", "url": ctx.server.config().base_url},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "application/json"],
        "patchFormat": ["application/json-patch+json"],
        "rest": [rest],
    });
    Ok(FhirResponse::json(
        200,
        oxifhir_model::json::to_bytes(&statement),
    ))
}
