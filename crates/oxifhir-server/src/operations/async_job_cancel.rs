//! `POST [base]/AsyncJob/{id}/$cancel` (seed 000): `accepted` → `cancelled` (200 "All OK");
//! already `cancelled` → 200, nothing changes; any other status → 400 with the status in the
//! text; an unknown job → 404 `Not found`.

use futures::FutureExt;
use futures::future::BoxFuture;
use oxifhir_model::Instant;
use oxifhir_model::outcome::{IssueCode, OperationOutcome};
use oxifhir_store::jobs::{CancelResult, JobState};

use super::{AsyncUse, Levels, OperationDef};
use crate::asynchronous::{async_job, status::visible_job};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::interactions::Context;
use crate::response::FhirResponse;
use crate::route::OperationTarget;

/// The operation's entry in the registry.
pub static DEF: OperationDef = OperationDef {
    name: "cancel",
    definition_id: "AsyncJob-cancel",
    canonical: "http://oxifhir.dev/fhir/OperationDefinition/AsyncJob-cancel",
    description: "Cancels an asynchronous job that has not finished; a running job stops within a second and its partial output is removed.",
    resource_types: &["AsyncJob"],
    levels: Levels {
        system: false,
        type_: false,
        instance: true,
    },
    affects_state: true,
    async_use: |_, _| AsyncUse::Allowed,
    validate: None,
    job_kind: None,
    handler: run,
};

fn run<'a>(
    ctx: &'a Context<'a>,
    target: &'a OperationTarget,
) -> BoxFuture<'a, ApiResult<FhirResponse>> {
    async move {
        let OperationTarget::Instance(_, id) = target else {
            return Err(ApiError::bad_request(
                "This operation can only be executed on an instance",
            ));
        };
        cancel(ctx, id).await
    }
    .boxed()
}

async fn cancel(ctx: &Context<'_>, id: &str) -> ApiResult<FhirResponse> {
    let not_found = || ApiError::with_code(ErrorKind::NotFound, IssueCode::NotFound, "Not found");
    let job = visible_job(ctx, id).await?.ok_or_else(not_found)?;
    if job.released_at.is_some() {
        return Err(not_found());
    }
    let now = Instant::now();
    let expires = Instant::from_millis(
        now.millis()
            + i64::try_from(ctx.server.async_config().retention.as_millis())
                .unwrap_or(i64::MAX / 4),
    );
    let outcome = ctx
        .server
        .store()
        .jobs()
        .cancel(&job.id, now, expires)
        .await?;
    let state = match outcome {
        CancelResult::Cancelled(_) => {
            ctx.server.polls().forget(&job.id);
            JobState::Cancelled
        }
        CancelResult::Unchanged(current) => current.state,
        CancelResult::NotFound => return Err(not_found()),
    };
    if state != JobState::Cancelled {
        return Err(ApiError::with_code(
            ErrorKind::BadRequest,
            IssueCode::Invalid,
            format!(
                "AsyncJob cannot be cancelled if status is not 'accepted', job had status '{}'",
                async_job::status_code(state)
            ),
        ));
    }
    Ok(FhirResponse::json(
        200,
        oxifhir_model::json::to_bytes(&OperationOutcome::all_ok().to_json()),
    ))
}
