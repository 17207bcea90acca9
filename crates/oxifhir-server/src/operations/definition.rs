//! The `OperationDefinition` resource of each registered operation, served at
//! `{base}/OperationDefinition/{id}` and referenced from the CapabilityStatement. Its
//! extension [`ASYNC_USE_URL`] says whether asynchronous use is allowed or required (seed 003).

use serde_json::{Value, json};

use super::{AsyncUse, OPERATIONS, OperationDef};
use crate::error::{ApiError, ApiResult};
use crate::request::{FhirRequest, Method};
use crate::response::FhirResponse;
use crate::route::OperationTarget;

/// The extension on each `OperationDefinition` whose `valueCode` is `allowed` or `required`.
pub const ASYNC_USE_URL: &str = "http://oxifhir.dev/fhir/StructureDefinition/async-use";

/// The operation whose `OperationDefinition` has `id`.
pub fn by_id(id: &str) -> Option<&'static OperationDef> {
    OPERATIONS
        .iter()
        .copied()
        .find(|def| def.definition_id == id)
}

/// How the operation may be run asynchronously at its most general level.
pub fn published_async_use(def: &OperationDef) -> AsyncUse {
    let resource_type = def.resource_types.first().copied().unwrap_or("Resource");
    let target = if def.levels.system {
        OperationTarget::System
    } else if def.levels.type_ {
        OperationTarget::Type(resource_type.to_owned())
    } else {
        OperationTarget::Instance(resource_type.to_owned(), "id".to_owned())
    };
    (def.async_use)(&target, &FhirRequest::new(Method::Post, ""))
}

/// The `OperationDefinition` resource of `def`.
pub fn resource(def: &OperationDef) -> Value {
    let async_use = published_async_use(def);
    let how = match async_use {
        AsyncUse::Allowed => {
            "It runs synchronously, or asynchronously with 'Prefer: respond-async'."
        }
        AsyncUse::Required => "It runs only asynchronously: send 'Prefer: respond-async'.",
    };
    let resource_types: Vec<&str> = def
        .resource_types
        .iter()
        .copied()
        .filter(|t| *t != "Resource")
        .collect();
    let mut value = json!({
        "resourceType": "OperationDefinition",
        "id": def.definition_id,
        "extension": [{"url": ASYNC_USE_URL, "valueCode": async_use.code()}],
        "url": def.canonical,
        "name": def.definition_id.replace('-', "_"),
        "status": "active",
        "kind": "operation",
        "description": format!("{} {how}", def.description),
        "affectsState": def.affects_state,
        "code": def.name,
        "system": def.levels.system,
        "type": def.levels.type_,
        "instance": def.levels.instance,
    });
    if !resource_types.is_empty() {
        value["resource"] = json!(resource_types);
    }
    value
}

/// `GET {base}/OperationDefinition/{id}` for a registered operation.
pub fn read(id: &str) -> ApiResult<FhirResponse> {
    let def = by_id(id).ok_or_else(|| ApiError::not_found(format!("OperationDefinition/{id}")))?;
    Ok(FhirResponse::json(
        200,
        oxifhir_model::json::to_bytes(&resource(def)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_is_published() {
        for def in OPERATIONS {
            let value = resource(def);
            assert_eq!(by_id(def.definition_id).map(|d| d.name), Some(def.name));
            assert_eq!(value["url"], def.canonical);
            let code = value["extension"][0]["valueCode"].as_str().unwrap();
            assert!(code == "allowed" || code == "required");
            assert!(
                oxifhir_model::validation::validate(&value).is_ok(),
                "{value}"
            );
        }
    }
}
