//! FHIR operations (`$name`): one module per operation, registered in one table here
//! ([`OPERATIONS`]) that the router, the async kick-off, the CapabilityStatement and the
//! published `OperationDefinition`s all read.
//!
//! Adding an operation: write `operations/<name>.rs` with a `pub static DEF: OperationDef` and
//! its handler, parameter parsing and tests beside it, then list `&<name>::DEF` in
//! [`OPERATIONS`].

pub mod async_job_cancel;
pub mod definition;
pub mod export;
pub mod expunge;
pub mod parameters;
pub mod reindex;
pub mod scheduling;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::interactions::Context;
use crate::response::FhirResponse;
use crate::route::{OperationTarget, truncate};

/// Whether an operation may run asynchronously (`Prefer: respond-async`) or must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncUse {
    /// Runs synchronously; asynchronously when the client asks.
    Allowed,
    /// Only asynchronously: without `Prefer: respond-async` the request is rejected with 400.
    Required,
}

impl AsyncUse {
    /// The value of the project's async-use extension on the `OperationDefinition`.
    pub fn code(self) -> &'static str {
        match self {
            AsyncUse::Allowed => "allowed",
            AsyncUse::Required => "required",
        }
    }
}

/// The levels an operation is invoked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Levels {
    /// `[base]/$name`
    pub system: bool,
    /// `[base]/[type]/$name`
    pub type_: bool,
    /// `[base]/[type]/[id]/$name`
    pub instance: bool,
}

/// Runs an operation: the context of the request and where it was invoked.
pub type Handler =
    for<'a> fn(&'a Context<'a>, &'a OperationTarget) -> BoxFuture<'a, ApiResult<FhirResponse>>;

/// Checks a request before it is accepted for asynchronous processing, so that a bad request
/// gets its 4xx at once rather than from the job.
pub type Validator =
    for<'a> fn(&'a Context<'a>, &'a OperationTarget) -> BoxFuture<'a, ApiResult<()>>;

/// Everything the server knows about one operation.
pub struct OperationDef {
    /// The name without `$`, as in the URL (`cancel`).
    pub name: &'static str,
    /// The id of its published `OperationDefinition` (`Appointment-cancel`).
    pub definition_id: &'static str,
    /// Its canonical URL, listed in the CapabilityStatement.
    pub canonical: &'static str,
    /// One sentence for the `OperationDefinition` and CapabilityStatement.
    pub description: &'static str,
    /// The resource types it is defined on; empty for a system-only operation.
    pub resource_types: &'static [&'static str],
    pub levels: Levels,
    /// Whether it changes stored data (`OperationDefinition.affectsState`).
    pub affects_state: bool,
    /// Whether asynchronous use is allowed or required at `target` for this request.
    pub async_use: fn(&OperationTarget, &crate::request::FhirRequest) -> AsyncUse,
    /// Checks run at kick-off of an asynchronous request; `None` when the handler's own
    /// checks are cheap enough to run only on the worker.
    pub validate: Option<Validator>,
    /// The job kind that runs it asynchronously; `None` replays the request through
    /// `dispatch` like any interaction.
    pub job_kind: Option<&'static str>,
    pub handler: Handler,
}

impl OperationDef {
    /// True when this operation may be invoked at `target`.
    pub fn applies_to(&self, target: &OperationTarget) -> bool {
        match target {
            OperationTarget::System => self.levels.system,
            OperationTarget::Type(t) => self.levels.type_ && self.on_type(t),
            OperationTarget::Instance(t, _) => self.levels.instance && self.on_type(t),
        }
    }

    fn on_type(&self, resource_type: &str) -> bool {
        self.resource_types.contains(&resource_type) || self.resource_types.contains(&"Resource")
    }
}

/// Every operation the server offers.
pub static OPERATIONS: &[&OperationDef] = &[
    &async_job_cancel::DEF,
    &export::SYSTEM,
    &export::PATIENT,
    &export::GROUP,
    &reindex::DEF,
    &expunge::DEF,
    &scheduling::FIND,
    &scheduling::BOOK,
    &scheduling::HOLD,
    &scheduling::CONFIRM,
    &scheduling::CANCEL,
];

/// The operation `name` at `target`, or the error a client gets for it (400 `not-supported`).
pub fn find(name: &str, target: &OperationTarget) -> ApiResult<&'static OperationDef> {
    OPERATIONS
        .iter()
        .copied()
        .find(|def| def.name == name && def.applies_to(target))
        .ok_or_else(|| {
            ApiError::not_supported(format!(
                "Operation ${} is not supported {}",
                truncate(name, 64),
                match target {
                    OperationTarget::System => "at system level".to_string(),
                    OperationTarget::Type(t) | OperationTarget::Instance(t, _) => {
                        let level = if matches!(target, OperationTarget::Type(_)) {
                            "type"
                        } else {
                            "instance"
                        };
                        format!("at {level} level on {t}")
                    }
                }
            ))
        })
}

/// What an operation's job stores when it ends: `response` formatted as `request` asked (so the
/// result URL answers like the synchronous request would), failed when it is an error, and the
/// job's last progress text.
pub(crate) fn job_output(
    request: &crate::request::FhirRequest,
    response: FhirResponse,
    progress: String,
) -> Result<oxifhir_jobs::JobOutput, oxifhir_jobs::JobError> {
    let failed = response.status >= 400;
    let response = crate::format::apply(
        response,
        crate::format::negotiate(request).unwrap_or_default(),
    );
    let result = serde_json::to_vec(&response)
        .map_err(|e| oxifhir_jobs::JobError::Fatal(format!("cannot store the response: {e}")))?;
    Ok(oxifhir_jobs::JobOutput {
        failed,
        result,
        progress: Some(progress),
    })
}

/// Runs operation `name` at `target`.
pub async fn invoke(
    ctx: &Context<'_>,
    name: &str,
    target: OperationTarget,
) -> ApiResult<FhirResponse> {
    let def = find(name, &target)?;
    (def.handler)(ctx, &target).await
}

/// CapabilityStatement `operation` entries at system level (`None`) or for a resource type.
pub fn capability_entries(resource_type: Option<&str>) -> Vec<Value> {
    OPERATIONS
        .iter()
        .filter(|def| match resource_type {
            None => def.levels.system,
            Some(t) => (def.levels.type_ || def.levels.instance) && def.on_type(t),
        })
        .map(|def| {
            serde_json::json!({
                "name": def.name,
                "definition": def.canonical,
                "documentation": format!(
                    "{} Asynchronous use: {}.",
                    def.description,
                    definition::published_async_use(def).code()
                ),
            })
        })
        .collect()
}
