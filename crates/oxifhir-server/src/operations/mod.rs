//! FHIR operations (`$name`): one module per operation, registered in one table here that both
//! the router and the CapabilityStatement read.

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::interactions::Context;
use crate::response::FhirResponse;
use crate::route::{OperationTarget, truncate};

/// Runs operation `name` at `target`.
pub async fn invoke(
    _ctx: &Context<'_>,
    name: &str,
    _target: OperationTarget,
) -> ApiResult<FhirResponse> {
    Err(ApiError::not_supported(format!(
        "Operation ${} is not supported",
        truncate(name, 64)
    )))
}

/// CapabilityStatement `operation` entries at system level (`None`) or for a resource type.
pub fn capability_entries(_resource_type: Option<&str>) -> Vec<Value> {
    Vec::new()
}
