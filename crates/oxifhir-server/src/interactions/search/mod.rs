//! `search` at type and system level (`GET [type]?…`, `POST [type]/_search`, `GET [base]?…`):
//! parameters parsed into a store query (`parse.rs`, `criteria.rs`, `values.rs`), the page
//! with its includes (`include.rs`) written as a `searchset` Bundle with keyset-cursor
//! `next`/`previous` links. Conditional interactions and transactions use the same parser
//! ([`conditional_matches`]).

mod criteria;
mod elements;
mod include;
mod parse;
pub mod table;
mod values;

pub use include::{Included, Searcher, fetch as fetch_includes};
pub use parse::{CURSOR_PARAM, Include, ParsedSearch, parse};

use oxifhir_model::bundle::{BundleWriter, EntryParts};
use oxifhir_model::outcome::{IssueCode, OperationOutcome};
use oxifhir_model::{Instant, resource_type};
use oxifhir_store::{ResourceVersion, SearchPage, StoreTx};

use super::Context;
use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult, warning};
use crate::format::{BodyKind, body_kind};
use crate::prefer::Handling;
use crate::request::{Method, parse_query};
use crate::response::FhirResponse;
use crate::search_params::SearchParams;

/// `GET [type]?…`, `POST [type]/_search`, `GET [base]?_type=…`.
pub async fn search(ctx: &Context<'_>, resource_type: Option<&str>) -> ApiResult<FhirResponse> {
    let mut params = ctx.request.query.clone();
    if ctx.request.method == Method::Post {
        if !ctx.request.body.is_empty() {
            body_kind(ctx.request, &[BodyKind::Form])?;
        }
        let form = std::str::from_utf8(&ctx.request.body)
            .map_err(|_| ApiError::bad_request("The form body is not UTF-8"))?;
        params.extend(parse_query(form));
    }
    let strict = ctx.prefs.handling == Handling::Strict;
    let config = ctx.server.config();
    let search_params = ctx.server.search_params().await?;
    let parsed = parse(config, &search_params, resource_type, &params, strict)?;
    let store = ctx.server.store();
    let page = store.search(&parsed.query).await?;
    let included = fetch_includes(
        &mut Searcher::Store(store),
        &parsed.includes,
        &page.resources,
        config.max_count,
    )
    .await?;
    Ok(FhirResponse::json(
        200,
        searchset(config, resource_type, &params, &parsed, &page, &included),
    ))
}

/// Writes a page of results as a `searchset` Bundle with `self`, `next` and `previous` links
/// built from `params` (the request's parameters) under `{base}/{type}`, the included
/// resources (`search.mode` `include`) and the warnings in an OperationOutcome entry.
pub fn searchset(
    config: &ServerConfig,
    resource_type: Option<&str>,
    params: &[(String, String)],
    parsed: &ParsedSearch,
    page: &SearchPage,
    included: &Included,
) -> Vec<u8> {
    let path = resource_type.unwrap_or("");
    let links = super::paging_links(
        config,
        path,
        params,
        super::PageCursors {
            current: parsed.query.cursor.as_deref(),
            next: page.next.as_deref(),
            previous: page.previous.as_deref(),
        },
    );
    let total = page.total.or_else(|| {
        (parsed.query.cursor.is_none() && page.next.is_none())
            .then_some(page.resources.len() as u64)
    });
    let mut bundle = BundleWriter::new(
        "searchset",
        &oxifhir_model::id::new_id(),
        Instant::now(),
        total,
        &links,
    );
    let full_url = |r: &ResourceVersion| config.url(&format!("{}/{}", r.resource_type, r.id));
    for resource in &page.resources {
        let subset = parsed
            .elements
            .as_deref()
            .map(|e| elements::subset(&resource.body, e));
        bundle.entry(
            Some(subset.as_deref().unwrap_or(&resource.body)),
            EntryParts {
                full_url: Some(full_url(resource)),
                search_mode: Some("match"),
                ..Default::default()
            },
        );
    }
    for resource in &included.resources {
        bundle.entry(
            Some(&resource.body),
            EntryParts {
                full_url: Some(full_url(resource)),
                search_mode: Some("include"),
                ..Default::default()
            },
        );
    }
    let mut warnings = parsed.warnings.clone();
    if included.truncated {
        warnings.push(format!(
            "More than {} resources matched an _include or _revinclude; only that many of them \
             are included",
            config.max_count
        ));
    }
    if !warnings.is_empty() {
        let outcome = OperationOutcome {
            id: None,
            issues: warnings
                .into_iter()
                .map(|why| warning(IssueCode::NotSupported, why))
                .collect(),
        };
        bundle.entry(
            Some(&oxifhir_model::json::to_bytes(&outcome.to_json())),
            EntryParts {
                search_mode: Some("outcome"),
                ..Default::default()
            },
        );
    }
    bundle.finish()
}

/// Up to two current resources of `resource_type` matching conditional-interaction criteria
/// (`If-None-Exist`, conditional update/delete/patch, conditional references). Criteria that
/// cannot be honoured exactly are `400`: ignoring one could touch the wrong resource.
pub async fn conditional_matches(
    tx: &mut dyn StoreTx,
    config: &ServerConfig,
    params: &SearchParams,
    resource_type: &str,
    criteria: &str,
) -> ApiResult<Vec<ResourceVersion>> {
    let criteria = criteria.trim_start_matches('?');
    let pairs: Vec<(String, String)> = parse_query(criteria)
        .into_iter()
        .filter(|(k, _)| !matches!(k.as_str(), "_format" | "_pretty"))
        .collect();
    if pairs.is_empty() {
        return Err(ApiError::new(
            crate::error::ErrorKind::PreconditionFailed,
            "A conditional interaction needs search criteria",
        ));
    }
    if !resource_type::is_known(resource_type) {
        return Err(ApiError::not_supported(format!(
            "Unknown resource type '{resource_type}'"
        )));
    }
    let mut parsed = parse(config, params, Some(resource_type), &pairs, true)?;
    parsed.query.count = 2;
    parsed.query.cursor = None;
    parsed.query.with_total = false;
    parsed.query.sort.clear();
    Ok(tx
        .search(&parsed.query)
        .await
        .map_err(ApiError::from)?
        .resources)
}

#[cfg(test)]
mod tests;
