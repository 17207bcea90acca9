//! Batch Bundles: each entry runs on its own through the same `dispatch` path as a single
//! request; one entry's failure does not affect the others.

use std::collections::HashSet;

use super::references::mentions_any;
use super::{EntryRequest, EntryResult, response_bundle};
use crate::error::{ApiError, ApiResult};
use crate::interactions::Context;
use crate::response::FhirResponse;

/// Runs every entry in order and answers `200` with a `batch-response` Bundle.
pub(super) async fn process(
    ctx: &Context<'_>,
    entries: Vec<ApiResult<EntryRequest>>,
) -> ApiResult<FhirResponse> {
    let full_urls: HashSet<String> = entries
        .iter()
        .filter_map(|e| e.as_ref().ok()?.full_url.clone())
        .collect();
    let mut results = Vec::with_capacity(entries.len());
    for entry in entries {
        let result = match entry {
            Ok(entry) => run_entry(ctx, &entry, &full_urls).await,
            Err(error) => Err(error),
        };
        results.push(result.unwrap_or_else(|e| EntryResult::from_error(&e)));
    }
    Ok(FhirResponse::json(
        200,
        response_bundle("batch-response", &results),
    ))
}

async fn run_entry(
    ctx: &Context<'_>,
    entry: &EntryRequest,
    full_urls: &HashSet<String>,
) -> ApiResult<EntryResult> {
    if entry
        .url
        .split('?')
        .next()
        .unwrap_or("")
        .trim_matches('/')
        .is_empty()
    {
        return Err(ApiError::not_supported(
            "A batch entry cannot itself be a batch or transaction",
        ));
    }
    if let Some(resource) = &entry.resource
        && let Some(reference) = mentions_any(resource, full_urls, entry.full_url.as_deref())
    {
        return Err(ApiError::bad_request(format!(
            "Batch entries must not depend on each other, but this entry refers to '{reference}' of the same batch; use a transaction"
        )));
    }
    let mut request = entry.to_request(ctx.request.headers.prefer.as_deref())?;
    request.principal = ctx.request.principal.clone();
    // A create of an asynchronous batch gets its id fixed at kick-off, as a lone create does.
    request.assigned_id = ctx
        .request
        .assigned_id
        .as_deref()
        .map(|seed| super::transaction::entry_id(seed, entry.index));
    let response = ctx.server.handle(&request).await?;
    Ok(EntryResult::from_response(response))
}
