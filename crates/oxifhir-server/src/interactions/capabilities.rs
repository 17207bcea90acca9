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

/// `AsyncJob`: the server's view of asynchronous requests, read-only, searchable by status.
fn async_job_entry() -> Value {
    let mut entry = json!({
        "type": resource_type::ASYNC_JOB,
        "documentation": "Asynchronous requests (Prefer: respond-async). Managed by the server: read and search only; cancel with $cancel or DELETE on the status URL.",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "searchParam": [{
            "name": "status",
            "type": "token",
            "documentation": "accepted (queued or running), completed, error or cancelled",
        }],
    });
    let ops = operations::capability_entries(Some(resource_type::ASYNC_JOB));
    if !ops.is_empty() {
        entry["operation"] = Value::Array(ops);
    }
    entry
}

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
    let mut resources: Vec<Value> = resource_type::all()
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
    resources.push(async_job_entry());
    let mut rest = json!({
        "mode": "server",
        "resource": resources,
        "interaction": [{"code": "transaction"}, {"code": "batch"}, {"code": "search-system"}, {"code": "history-system"}],
        "searchParam": search_params,
    });
    if let Some(security) = crate::auth::capability_security(ctx.server.auth()) {
        rest["security"] = security;
    }
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
