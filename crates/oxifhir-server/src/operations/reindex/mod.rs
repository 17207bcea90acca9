//! `$reindex` at system, type and instance level (seed 003, DESIGN.md §5): re-extracts the
//! search index entries of stored resources for the `SearchParameter`s named by `url`
//! (repeatable; all parameters when absent), so that searches on a parameter defined after
//! the data find that data too. Once a reindex has covered every type a custom parameter
//! applies to, the parameter is marked indexed and its searches stop warning.
//!
//! System and type level run only asynchronously (a durable, checkpointed, cancellable job,
//! [`job`]); an instance may also be reindexed synchronously. The kick-off checks the `url`s
//! ([`plan`]): an unknown one is a `400` at once.

pub mod job;
pub mod plan;

use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{AsyncUse, Levels, OperationDef};
use crate::error::{ApiError, ApiResult};
use crate::interactions::Context;
use crate::response::FhirResponse;
use crate::route::OperationTarget;
use crate::search_params::SearchParams;
use plan::Plan;

/// The job kind of reindexes.
pub const KIND: &str = "reindex";

/// `[base]/$reindex`, `[base]/{type}/$reindex`, `[base]/{type}/{id}/$reindex`.
pub static DEF: OperationDef = OperationDef {
    name: "reindex",
    definition_id: "reindex",
    canonical: "http://oxifhir.dev/fhir/OperationDefinition/reindex",
    description: "Rebuilds the search index entries of stored resources for the SearchParameters given by 'url' (a canonical, repeatable; every parameter when absent), so that searches on a SearchParameter defined after the data find that data too; the result Parameters count the resources scanned and the entries created. At system and type level asynchronous use is required; an instance may be reindexed synchronously.",
    resource_types: &["Resource"],
    levels: Levels {
        system: true,
        type_: true,
        instance: true,
    },
    affects_state: true,
    async_use: |target, _| match target {
        OperationTarget::Instance(..) => AsyncUse::Allowed,
        _ => AsyncUse::Required,
    },
    validate: Some(validate),
    job_kind: Some(KIND),
    handler: run,
};

/// The plan of a request, with the resource of an instance-level request checked to exist.
async fn checked_plan(
    ctx: &Context<'_>,
    target: &OperationTarget,
) -> ApiResult<(Arc<SearchParams>, Plan)> {
    let urls = plan::urls(ctx.request)?;
    let params = ctx.server.search_params().await?;
    let (params, plan) = match Plan::new(&params, target, &urls) {
        Ok(plan) => (params, plan),
        // The url may be of a SearchParameter another node stored since the last refresh.
        Err(_) if !urls.is_empty() => {
            let params = ctx.server.load_search_params().await?;
            let plan = Plan::new(&params, target, &urls)?;
            (params, plan)
        }
        Err(e) => return Err(e),
    };
    if let OperationTarget::Instance(t, id) = target {
        let current = ctx.server.store().read(t, id).await?;
        if current.is_none_or(|v| v.is_deleted()) {
            return Err(ApiError::not_found(format!(
                "{t}/{} is not stored here",
                crate::route::truncate(id, 64)
            )));
        }
    }
    Ok((params, plan))
}

/// The kick-off checks: the `url`s, the type, and at instance level the resource.
fn validate<'a>(ctx: &'a Context<'a>, target: &'a OperationTarget) -> BoxFuture<'a, ApiResult<()>> {
    async move { checked_plan(ctx, target).await.map(drop) }.boxed()
}

/// The synchronous reindex of one resource (other levels are asynchronous only, which the
/// server checks before it gets here).
fn run<'a>(
    ctx: &'a Context<'a>,
    target: &'a OperationTarget,
) -> BoxFuture<'a, ApiResult<FhirResponse>> {
    async move {
        if !matches!(target, OperationTarget::Instance(..)) {
            return Err(ApiError::bad_request(
                "Operation $reindex requires \"Prefer: respond-async\" at this level",
            ));
        }
        let (params, plan) = checked_plan(ctx, target).await?;
        let progress = job::start(ctx.server.store(), &plan).await?;
        let done = job::execute(ctx.server, params, Arc::new(plan), None, progress)
            .await
            .map_err(|e| ApiError::internal(format!("reindex failed: {e}")))?;
        Ok(FhirResponse::json(
            200,
            oxifhir_model::json::to_bytes(&job::result(&done)),
        ))
    }
    .boxed()
}
