//! `GET [base]/metadata`: the CapabilityStatement, generated from the same tables the router
//! and the search parser use, so it cannot claim what the server does not do.

use std::collections::HashMap;

use oxifhir_model::search_param::SearchParamType;
use oxifhir_model::{Instant, resource_type};
use serde_json::{Value, json};

use super::Context;
use super::search::table;
use crate::error::ApiResult;
use crate::operations;
use crate::response::FhirResponse;
use crate::search_params::ParamRef;

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

/// A `searchParam` entry.
fn search_param(param: &ParamRef<'_>) -> Value {
    let mut entry = json!({
        "name": param.def.code,
        "definition": param.def.url,
        "type": param.def.kind.code(),
    });
    if param.pending {
        entry["documentation"] =
            json!("Not yet indexed for resources stored before it was defined ($reindex)");
    }
    entry
}

/// The CapabilityStatement of this server. Each type lists exactly the search parameters the
/// search parser honours for it ([`table::supported_params`]), custom ones included.
pub async fn capability_statement(ctx: &Context<'_>) -> ApiResult<FhirResponse> {
    let params = ctx.server.search_params().await?;
    let system_params: Vec<Value> = table::system_params()
        .into_iter()
        .map(|def| {
            search_param(&ParamRef {
                def,
                pending: false,
            })
        })
        .collect();
    let interactions: Vec<Value> = TYPE_INTERACTIONS
        .iter()
        .map(|code| json!({"code": code}))
        .collect();
    // `_include` values of each type, and the `_revinclude` values that can reach it.
    let mut includes: HashMap<&str, Vec<String>> = HashMap::new();
    let mut revincludes: HashMap<String, Vec<String>> = HashMap::new();
    for t in resource_type::all() {
        let list = includes.entry(t).or_default();
        for p in table::supported_params(&params, t) {
            if p.def.kind != SearchParamType::Reference {
                continue;
            }
            list.push(format!("{t}:{}", p.def.code));
            let targets: Vec<&str> = if p.def.target.is_empty() {
                resource_type::all().to_vec()
            } else {
                p.def.target.iter().map(String::as_str).collect()
            };
            for target in targets {
                revincludes
                    .entry(target.to_string())
                    .or_default()
                    .push(format!("{t}:{}", p.def.code));
            }
        }
        if !list.is_empty() {
            list.push(format!("{t}:*"));
        }
    }
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
                "searchInclude": includes.get(t).cloned().unwrap_or_default(),
                "searchRevInclude": revincludes.get(*t).cloned().unwrap_or_default(),
                "searchParam": table::supported_params(&params, t)
                    .iter()
                    .map(search_param)
                    .collect::<Vec<_>>(),
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
        "searchParam": system_params,
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
