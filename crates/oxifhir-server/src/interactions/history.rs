//! `history` at instance, type and system level, newest first, with `_since`, `_count` and
//! cursor paging.

use oxifhir_model::Instant;
use oxifhir_model::bundle::{BundleWriter, EntryParts};
use oxifhir_store::{HistoryQuery, HistoryScope, WriteMethod};
use serde_json::json;

use super::{Context, etag};
use crate::error::{ApiError, ApiResult};
use crate::interactions::search::CURSOR_PARAM;
use crate::response::FhirResponse;
use crate::route::{Interaction, truncate};

/// Answers a history interaction with a `history` Bundle.
pub async fn history(ctx: &Context<'_>, interaction: Interaction) -> ApiResult<FhirResponse> {
    let (scope, path) = match interaction {
        Interaction::HistoryInstance { resource_type, id } => {
            let path = format!("{resource_type}/{id}/_history");
            if ctx
                .server
                .store()
                .read(&resource_type, &id)
                .await?
                .is_none()
            {
                return Err(ApiError::not_found(format!(
                    "{resource_type}/{id} is not known"
                )));
            }
            (HistoryScope::Instance { resource_type, id }, path)
        }
        Interaction::HistoryType { resource_type } => {
            let path = format!("{resource_type}/_history");
            (HistoryScope::Type(resource_type), path)
        }
        _ => (HistoryScope::System, "_history".to_string()),
    };
    let config = ctx.server.config();
    let mut query = HistoryQuery {
        scope,
        since: None,
        before: None,
        count: config.default_count,
        cursor: None,
    };
    for (name, value) in &ctx.request.query {
        match name.as_str() {
            "_since" => {
                let since = Instant::parse(value).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "_since must be a FHIR instant, not '{}'",
                        truncate(value, 64)
                    ))
                })?;
                query.since = Some(since.millis());
            }
            "_count" => {
                let n: usize = value.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "_count must be a non-negative integer, not '{}'",
                        truncate(value, 40)
                    ))
                })?;
                query.count = n.min(config.max_count);
            }
            CURSOR_PARAM => query.cursor = Some(value.clone()),
            _ => {}
        }
    }
    let page = ctx.server.store().history(&query).await?;
    let links = super::paging_links(
        config,
        &path,
        &ctx.request.query,
        super::PageCursors {
            current: query.cursor.as_deref(),
            next: page.next.as_deref(),
            previous: None,
        },
    );
    let mut bundle = BundleWriter::new(
        "history",
        &oxifhir_model::id::new_id(),
        Instant::now(),
        Some(page.total),
        &links,
    );
    for v in &page.versions {
        let (method, url, status) = match v.method {
            WriteMethod::Create => ("POST", v.resource_type.clone(), "201 Created"),
            WriteMethod::Update if v.version_id == 1 => (
                "PUT",
                format!("{}/{}", v.resource_type, v.id),
                "201 Created",
            ),
            WriteMethod::Update => ("PUT", format!("{}/{}", v.resource_type, v.id), "200 OK"),
            WriteMethod::Delete => (
                "DELETE",
                format!("{}/{}", v.resource_type, v.id),
                "204 No Content",
            ),
        };
        bundle.entry(
            (!v.is_deleted()).then_some(v.body.as_slice()),
            EntryParts {
                full_url: Some(config.url(&format!("{}/{}", v.resource_type, v.id))),
                request: Some(json!({ "method": method, "url": url })),
                response: Some(json!({
                    "status": status,
                    "etag": etag(v),
                    "lastModified": v.last_updated.to_string(),
                })),
                ..Default::default()
            },
        );
    }
    Ok(FhirResponse::json(200, bundle.finish()))
}
