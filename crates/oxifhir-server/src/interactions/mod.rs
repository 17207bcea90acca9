//! The FHIR REST interactions (http.html): one module each, sharing the response helpers here.

pub mod capabilities;
pub mod history;
pub mod read;
pub mod search;
pub mod write;

use oxifhir_model::OperationOutcome;
use oxifhir_store::ResourceVersion;

use crate::prefer::{Preferences, ReturnPreference};
use crate::request::FhirRequest;
use crate::response::FhirResponse;
use crate::server::FhirServer;

/// What every interaction gets: the server, the request and its parsed `Prefer` header.
pub struct Context<'a> {
    pub server: &'a FhirServer,
    pub request: &'a FhirRequest,
    pub prefs: Preferences,
}

/// `W/"<versionId>"`.
pub fn etag(version: &ResourceVersion) -> String {
    format!("W/\"{}\"", version.version_id)
}

/// `{base}/{type}/{id}/_history/{version}`.
pub fn version_url(server: &FhirServer, version: &ResourceVersion) -> String {
    server.url(&format!(
        "{}/{}/_history/{}",
        version.resource_type, version.id, version.version_id
    ))
}

/// A `200` response carrying a stored version, with `ETag` and `Last-Modified`.
pub fn resource_response(version: &ResourceVersion) -> FhirResponse {
    FhirResponse::json(200, version.body.clone())
        .with_header("etag", etag(version))
        .with_header("last-modified", version.last_updated.to_http_date())
}

/// The response of a create or update: `status`, `Location`, `ETag`, `Last-Modified`, and a
/// body as `Prefer: return` asks.
pub fn write_response(ctx: &Context<'_>, version: &ResourceVersion, status: u16) -> FhirResponse {
    let body = match ctx.prefs.return_ {
        ReturnPreference::Representation => version.body.clone(),
        ReturnPreference::Minimal => Vec::new(),
        ReturnPreference::OperationOutcome => oxifhir_model::json::to_bytes(
            &OperationOutcome::information(format!(
                "{} {}/{} version {}",
                if status == 201 { "Created" } else { "Updated" },
                version.resource_type,
                version.id,
                version.version_id
            ))
            .to_json(),
        ),
    };
    FhirResponse::json(status, body)
        .with_header("location", version_url(ctx.server, version))
        .with_header("etag", etag(version))
        .with_header("last-modified", version.last_updated.to_http_date())
}

/// The cursors of a page: the one it was fetched with and those of its neighbours.
#[derive(Debug, Clone, Copy, Default)]
pub struct PageCursors<'a> {
    pub current: Option<&'a str>,
    pub next: Option<&'a str>,
    pub previous: Option<&'a str>,
}

/// `self`, `next` and `previous` links for a page under `{base}/{path}`: the request's
/// parameters (without the cursor and formatting ones) plus the cursor of that page.
pub fn paging_links(
    config: &crate::config::ServerConfig,
    path: &str,
    params: &[(String, String)],
    cursors: PageCursors<'_>,
) -> Vec<(&'static str, String)> {
    let kept: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), search::CURSOR_PARAM | "_format" | "_pretty"))
        .cloned()
        .collect();
    let link = |cursor: Option<&str>| {
        let mut pairs = kept.clone();
        if let Some(c) = cursor {
            pairs.push((search::CURSOR_PARAM.to_string(), c.to_string()));
        }
        let query = crate::request::encode_query(&pairs);
        if query.is_empty() {
            config.url(path)
        } else {
            format!("{}?{query}", config.url(path))
        }
    };
    let mut links = vec![("self", link(cursors.current))];
    if let Some(next) = cursors.next {
        links.push(("next", link(Some(next))));
    }
    if let Some(previous) = cursors.previous {
        links.push(("previous", link(Some(previous))));
    }
    links
}
