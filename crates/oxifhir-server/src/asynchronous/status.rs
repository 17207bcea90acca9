//! The status URL of an asynchronous request (`{base}/_async/{id}`), its result
//! (`/result`), and the `$export-poll-status?_jobId=` alias.

use std::time::Duration;

use oxifhir_model::Instant;
use oxifhir_model::outcome::{Issue, IssueCode, IssueSeverity, OperationOutcome};
use oxifhir_store::jobs::{JobRecord, JobState};

use super::rate::{client_key, too_many};
use super::{async_job, retry_after};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::interactions::Context;
use crate::operations::export;
use crate::request::Method;
use crate::response::FhirResponse;
use crate::server::FhirServer;

/// The diagnostics of a `DELETE` on a job that does not exist (seed 001).
pub const UNKNOWN_JOB: &str = "Endpoint artefact not found for the provided job ID.";

/// `GET` (poll) or `DELETE` (cancel, or release a finished result) on `{base}/_async/{id}`.
pub async fn status(ctx: &Context<'_>, id: &str) -> ApiResult<FhirResponse> {
    match ctx.request.method {
        Method::Delete => delete(ctx, id, false).await,
        _ => poll(ctx, id).await,
    }
}

/// `{base}/$export-poll-status?_jobId={id}`: as [`status`], except that a successful
/// `DELETE` answers `202` without a body (seed 001).
pub async fn export_poll_status(ctx: &Context<'_>) -> ApiResult<FhirResponse> {
    let id = ctx
        .request
        .query_value("_jobId")
        .ok_or_else(|| ApiError::bad_request("The _jobId parameter is required"))?
        .to_owned();
    match ctx.request.method {
        Method::Delete => delete(ctx, &id, true).await,
        _ => poll(ctx, &id).await,
    }
}

/// The job `id` if the caller may see it: another client's job does not exist for them.
pub async fn visible_job(ctx: &Context<'_>, id: &str) -> ApiResult<Option<JobRecord>> {
    if !oxifhir_model::id::is_valid(id) {
        return Ok(None);
    }
    let job = ctx.server.store().jobs().job(id).await?;
    let owner = super::kickoff::owner(ctx.request);
    Ok(job.filter(|job| job.owner == owner))
}

fn gone(job: Option<&JobRecord>) -> ApiError {
    let text = match job {
        Some(job) if job.released_at.is_some() => {
            "The asynchronous request was deleted by its client"
        }
        Some(job) if job.state == JobState::Cancelled => "The asynchronous request was cancelled",
        _ => "No asynchronous request has this id (it may have expired)",
    };
    ApiError::not_found(text)
}

async fn poll(ctx: &Context<'_>, id: &str) -> ApiResult<FhirResponse> {
    let rate = ctx.server.async_config().poll_rate;
    if let (Some(limit), Err(wait)) = (
        rate,
        ctx.server
            .rates()
            .polls
            .take(&client_key(ctx.request), rate),
    ) {
        return Err(too_many("status polls", limit, wait));
    }
    let job = visible_job(ctx, id).await?;
    let job = match job {
        Some(job) if job.released_at.is_none() && job.state != JobState::Cancelled => job,
        other => return Err(gone(other.as_ref())),
    };
    let server = ctx.server;
    if !job.state.is_final() {
        let age = Instant::now()
            .millis()
            .saturating_sub(job.request_time.millis());
        let advised = retry_after(Duration::from_millis(u64::try_from(age).unwrap_or(0)));
        let ratio = server.async_config().poll_too_fast_ratio;
        if let Err(wait) = server.polls().poll(&job.id, advised, ratio) {
            return Err(too_fast(wait));
        }
        let body = oxifhir_model::json::to_bytes(&async_job::resource(server, &job));
        return Ok(FhirResponse::json(202, body)
            .with_header("content-type", "application/fhir+json")
            .with_header("retry-after", advised.as_secs().to_string())
            .with_header("x-progress", super::progress::text(&job)));
    }
    server.polls().forget(&job.id);
    if job.kind == export::KIND {
        return export::manifest::final_response(server, &job);
    }
    let mut response = FhirResponse::empty(303)
        .with_header("location", server.url(&format!("_async/{}/result", job.id)));
    if let Some(expires) = job.expires_at {
        response = response.with_header("expires", expires.to_http_date());
    }
    Ok(response)
}

/// `429` telling a client that polls too fast how long to wait.
fn too_fast(wait: Duration) -> ApiError {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    ApiError::with_code(
        ErrorKind::TooManyRequests,
        IssueCode::Throttled,
        format!("Polled too soon; wait {secs} s (the Retry-After of the previous answer)"),
    )
    .with_retry_after(secs)
}

async fn delete(ctx: &Context<'_>, id: &str, alias: bool) -> ApiResult<FhirResponse> {
    let Some(job) = visible_job(ctx, id).await? else {
        return Err(
            ApiError::with_code(ErrorKind::BadRequest, IssueCode::Invalid, UNKNOWN_JOB)
                .with_diagnostics(UNKNOWN_JOB),
        );
    };
    if job.released_at.is_some() {
        return Err(gone(Some(&job)));
    }
    let now = Instant::now();
    let Some(_released) = ctx.server.store().jobs().release(&job.id, now, now).await? else {
        return Err(gone(Some(&job)));
    };
    ctx.server.polls().forget(&job.id);
    if alias {
        return Ok(FhirResponse::empty(202));
    }
    let outcome = OperationOutcome::single(Issue::new(
        IssueSeverity::Information,
        IssueCode::Informational,
        "Accepted",
    ))
    .with_id("accepted");
    Ok(FhirResponse::json(
        202,
        oxifhir_model::json::to_bytes(&outcome.to_json()),
    ))
}

/// `GET {base}/_async/{id}/result`: the stored response, byte for byte, until it expires.
pub async fn result(ctx: &Context<'_>, id: &str) -> ApiResult<FhirResponse> {
    let job = visible_job(ctx, id).await?;
    let job = match job {
        Some(job) if job.released_at.is_none() && job.state != JobState::Cancelled => job,
        other => return Err(gone(other.as_ref())),
    };
    if !job.state.is_final() {
        return Err(ApiError::not_found(format!(
            "The request has not finished yet; poll {}",
            ctx.server.url(&format!("_async/{}", job.id))
        )));
    }
    stored_response(ctx.server, &job)
}

/// What the result of a finished job answers: an export's manifest (or its failure), or the
/// stored response of any other kind, with `Expires`.
pub fn stored_response(server: &FhirServer, job: &JobRecord) -> ApiResult<FhirResponse> {
    if job.kind == export::KIND {
        return export::manifest::final_response(server, job);
    }
    let mut response = match &job.result {
        Some(bytes) => serde_json::from_slice::<FhirResponse>(bytes).map_err(|e| {
            ApiError::internal(format!(
                "the stored result of job {} is unreadable: {e}",
                job.id
            ))
        })?,
        None => FhirResponse::from_error(&ApiError::new(
            ErrorKind::Internal,
            job.error
                .clone()
                .unwrap_or_else(|| "The asynchronous request failed".into()),
        )),
    };
    if let Some(expires) = job.expires_at {
        response.set_header("expires", expires.to_http_date());
    }
    Ok(response)
}
