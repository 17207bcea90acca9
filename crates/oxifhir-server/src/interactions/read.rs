//! `read`, `vread` and `HEAD`: stored bytes back, unchanged, with conditional-read support.

use oxifhir_store::ResourceVersion;

use super::{Context, etag, resource_response};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::response::FhirResponse;

/// `GET [type]/[id]`: `200`, `410` if deleted, `404` if unknown; `304` for a matching
/// `If-None-Match` or an unmodified `If-Modified-Since`.
pub async fn read(ctx: &Context<'_>, resource_type: &str, id: &str) -> ApiResult<FhirResponse> {
    let current = ctx.server.store().read(resource_type, id).await?;
    let version = found(current, resource_type, id)?;
    if not_modified(ctx, &version) {
        return Ok(FhirResponse::empty(304).with_header("etag", etag(&version)));
    }
    Ok(resource_response(&version))
}

/// `GET [type]/[id]/_history/[vid]`.
pub async fn vread(
    ctx: &Context<'_>,
    resource_type: &str,
    id: &str,
    version_id: i64,
) -> ApiResult<FhirResponse> {
    let version = ctx
        .server
        .store()
        .vread(resource_type, id, version_id)
        .await?;
    match version {
        None => Err(ApiError::not_found(format!(
            "{resource_type}/{id} has no version {version_id}"
        ))),
        Some(v) if v.is_deleted() => Err(ApiError::new(
            ErrorKind::Gone,
            format!("Version {version_id} of {resource_type}/{id} is a deletion"),
        )),
        Some(v) => Ok(resource_response(&v)),
    }
}

/// The current version if it exists and is not deleted; else `404` or `410`.
pub fn found(
    current: Option<ResourceVersion>,
    resource_type: &str,
    id: &str,
) -> ApiResult<ResourceVersion> {
    match current {
        None => Err(ApiError::not_found(format!(
            "{resource_type}/{id} is not known"
        ))),
        Some(v) if v.is_deleted() => Err(ApiError::new(
            ErrorKind::Gone,
            format!(
                "{resource_type}/{id} was deleted (version {})",
                v.version_id
            ),
        )),
        Some(v) => Ok(v),
    }
}

fn not_modified(ctx: &Context<'_>, version: &ResourceVersion) -> bool {
    let headers = &ctx.request.headers;
    if let Some(tags) = &headers.if_none_match {
        let current = etag(version);
        return tags.split(',').any(|t| {
            let t = t.trim();
            t == "*"
                || t == current
                || t.trim_start_matches("W/") == current.trim_start_matches("W/")
        });
    }
    if let Some(since) = headers
        .if_modified_since
        .as_deref()
        .and_then(parse_http_date)
    {
        return version.last_updated.millis() / 1000 <= since;
    }
    false
}

/// Seconds since the epoch of an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn parse_http_date(text: &str) -> Option<i64> {
    let time = httpdate::parse_http_date(text).ok()?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
