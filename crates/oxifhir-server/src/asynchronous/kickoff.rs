//! Kick-off: a request with `Prefer: respond-async` is checked at once (a bad request gets its
//! 4xx now, never from the job), stored as a job and answered `202 Accepted` with the status
//! URL in `Content-Location`.

use oxifhir_model::outcome::{Issue, IssueCode, IssueSeverity, OperationOutcome};
use oxifhir_model::{Instant, id::new_id};
use oxifhir_store::jobs::NewJob;
use serde_json::Value;

use super::INTERACTION_KIND;
use super::rate::{client_key, too_many};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::interactions::Context;
use crate::interactions::search;
use crate::operations;
use crate::repository;
use crate::request::FhirRequest;
use crate::response::FhirResponse;
use crate::route::Interaction;

/// Accepts `ctx.request` for asynchronous processing as `interaction`.
pub async fn kickoff(ctx: &Context<'_>, interaction: &Interaction) -> ApiResult<FhirResponse> {
    let server = ctx.server;
    let rate = server.async_config().kickoff_rate;
    if let (Some(limit), Err(wait)) = (
        rate,
        server.rates().kickoffs.take(&client_key(ctx.request), rate),
    ) {
        return Err(too_many("asynchronous requests", limit, wait));
    }
    let kind = validate(ctx, interaction).await?;
    let owner = owner(ctx.request);
    let config = &server.async_config();
    let active = server.store().jobs().active_count(owner.as_deref()).await?;
    if active >= config.max_active_per_client {
        return Err(ApiError::with_code(
            ErrorKind::TooManyRequests,
            IssueCode::Throttled,
            format!(
                "Too many asynchronous requests in progress ({active}); wait for one to finish or cancel one"
            ),
        ));
    }
    let mut stored = without_respond_async(ctx.request);
    if matches!(
        interaction,
        Interaction::Create { .. } | Interaction::BatchOrTransaction
    ) {
        stored.assigned_id = Some(new_id());
    }
    let input = serde_json::to_vec(&stored).map_err(ApiError::internal)?;
    let id = new_id();
    server
        .store()
        .jobs()
        .enqueue(NewJob {
            id: id.clone(),
            kind: kind.to_owned(),
            owner,
            input,
            request_url: server.url(&ctx.request.relative_url()),
            request_time: Instant::now(),
        })
        .await?;
    // Logged inside the request's span: this line ties the request id to the job id, which
    // every log line of the job carries.
    tracing::info!(job = %id, kind, "asynchronous request accepted");
    let status_url = server.url(&format!("_async/{id}"));
    let outcome = OperationOutcome::single(
        Issue::new(
            IssueSeverity::Information,
            IssueCode::Informational,
            "The request was accepted for asynchronous processing",
        )
        .with_diagnostics(status_url.clone()),
    );
    Ok(
        FhirResponse::json(202, oxifhir_model::json::to_bytes(&outcome.to_json()))
            .with_header("content-location", status_url),
    )
}

/// The checks a request must pass before it is accepted, the ones the synchronous
/// interaction would fail on its input alone; returns the job kind that will run it.
async fn validate(ctx: &Context<'_>, interaction: &Interaction) -> ApiResult<&'static str> {
    use Interaction as I;
    let request = ctx.request;
    let config = ctx.server.config();
    let strict = ctx.prefs.handling == crate::prefer::Handling::Strict;
    let params = ctx.server.search_params().await?;
    match interaction {
        I::Create { resource_type } | I::Update { resource_type, .. } => {
            crate::server::reject_client_writes(resource_type)?;
            repository::parse_resource(&request.body, Some(resource_type))?;
        }
        I::ConditionalUpdate { resource_type } => {
            crate::server::reject_client_writes(resource_type)?;
            repository::parse_resource(&request.body, Some(resource_type))?;
            search::parse(config, &params, Some(resource_type), &request.query, true)?;
        }
        I::ConditionalPatch { resource_type } | I::ConditionalDelete { resource_type } => {
            crate::server::reject_client_writes(resource_type)?;
            search::parse(config, &params, Some(resource_type), &request.query, true)?;
            if matches!(interaction, I::ConditionalPatch { .. }) {
                json_body(request)?;
            }
        }
        I::Patch { resource_type, .. } => {
            crate::server::reject_client_writes(resource_type)?;
            json_body(request)?;
        }
        I::Delete { resource_type, .. } => crate::server::reject_client_writes(resource_type)?,
        I::SearchType { resource_type } => {
            search::parse(config, &params, Some(resource_type), &request.query, strict)?;
        }
        I::SearchSystem => {
            search::parse(config, &params, None, &request.query, strict)?;
        }
        I::BatchOrTransaction => {
            let bundle = json_body(request)?;
            let bundle_type = bundle.get("type").and_then(Value::as_str);
            if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle")
                || !matches!(bundle_type, Some("batch" | "transaction"))
            {
                return Err(ApiError::bad_request(
                    "POST to the base takes a Bundle of type batch or transaction",
                ));
            }
        }
        I::Operation { name, target } => {
            let def = operations::find(name, target)?;
            if let Some(check) = def.validate {
                check(ctx, target).await?;
            }
            return Ok(def.job_kind.unwrap_or(INTERACTION_KIND));
        }
        I::AsyncStatus { .. } | I::AsyncResult { .. } | I::ExportPollStatus => {
            return Err(ApiError::bad_request(
                "The status of an asynchronous request cannot itself be requested asynchronously",
            ));
        }
        I::Capabilities
        | I::HistorySystem
        | I::HistoryType { .. }
        | I::HistoryInstance { .. }
        | I::Read { .. }
        | I::VRead { .. } => {}
    }
    Ok(INTERACTION_KIND)
}

/// The client a job belongs to (`None` while authentication is off): only it sees the job.
pub fn owner(request: &FhirRequest) -> Option<String> {
    request.principal.as_ref().map(|p| p.client_id.clone())
}

/// The body as JSON, or the `400` the interaction would answer.
fn json_body(request: &FhirRequest) -> ApiResult<Value> {
    oxifhir_model::json::parse(&request.body).map_err(|e| {
        ApiError::with_code(
            ErrorKind::BadRequest,
            IssueCode::Structure,
            format!("Malformed JSON: {e}"),
        )
    })
}

/// The request as the job replays it: the same, minus `respond-async` in `Prefer`.
pub fn without_respond_async(request: &FhirRequest) -> FhirRequest {
    let mut stored = request.clone();
    stored.headers.prefer = request.headers.prefer.as_deref().and_then(|prefer| {
        let kept: Vec<&str> = prefer
            .split(',')
            .map(str::trim)
            .filter(|item| {
                let name = item.split(['=', ';']).next().unwrap_or("").trim();
                !item.is_empty() && !name.eq_ignore_ascii_case("respond-async")
            })
            .collect();
        (!kept.is_empty()).then(|| kept.join(", "))
    });
    stored
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Method;

    #[test]
    fn respond_async_is_removed_from_prefer() {
        let mut r = FhirRequest::new(Method::Get, "Patient");
        r.headers.prefer = Some("respond-async, handling=strict".into());
        assert_eq!(
            without_respond_async(&r).headers.prefer.as_deref(),
            Some("handling=strict")
        );
        r.headers.prefer = Some("respond-async".into());
        assert_eq!(without_respond_async(&r).headers.prefer, None);
    }
}
