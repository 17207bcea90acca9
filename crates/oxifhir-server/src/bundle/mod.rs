//! `POST [base]` with a `batch` or `transaction` Bundle (http.html §3.1.0.11): parsing the
//! entries here, then [`batch`] (entries independent) or [`transaction`] (all or nothing).

mod batch;
mod references;
mod transaction;

pub(crate) use references::conditional_references;

use base64::Engine;
use oxifhir_model::Instant;
use oxifhir_model::bundle::{BundleWriter, EntryParts};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::format::{BodyKind, body_kind};
use crate::interactions::Context;
use crate::request::{FhirRequest, Method, RequestHeaders};
use crate::response::FhirResponse;
use crate::route::truncate;

/// One entry's request, as parsed from `Bundle.entry[i]`.
#[derive(Debug, Clone)]
pub(crate) struct EntryRequest {
    pub index: usize,
    pub method: Method,
    /// `request.url` relative to the base (an absolute URL under the base is made relative).
    pub url: String,
    pub full_url: Option<String>,
    pub resource: Option<Value>,
    pub if_match: Option<String>,
    pub if_none_exist: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
}

impl EntryRequest {
    /// `Bundle.entry[i]`, for error locations.
    pub fn location(&self) -> String {
        format!("Bundle.entry[{}]", self.index)
    }

    /// The entry as a standalone request (for batch entries), with the outer `Prefer`.
    pub fn to_request(&self, prefer: Option<&str>) -> ApiResult<FhirRequest> {
        let mut request = FhirRequest::new(self.method, &self.url);
        request.headers = RequestHeaders {
            accept: None,
            content_type: None,
            prefer: prefer.map(str::to_string),
            if_match: self.if_match.clone(),
            if_none_match: self.if_none_match.clone(),
            if_none_exist: self.if_none_exist.clone(),
            if_modified_since: self.if_modified_since.clone(),
        };
        if let Some(resource) = &self.resource {
            let (content_type, body) = entry_body(self.method, resource)?;
            request.headers.content_type = Some(content_type);
            request.body = body;
        }
        Ok(request)
    }
}

/// The body of an entry's request: the resource, or for `PATCH` the JSON Patch carried in a
/// `Binary`.
fn entry_body(method: Method, resource: &Value) -> ApiResult<(String, Vec<u8>)> {
    if method == Method::Patch
        && resource.get("resourceType").and_then(Value::as_str) == Some("Binary")
    {
        let content_type = resource
            .get("contentType")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let data = resource.get("data").and_then(Value::as_str).unwrap_or("");
        let body = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| ApiError::bad_request("The PATCH entry's Binary.data is not base64"))?;
        return Ok((content_type, body));
    }
    Ok((
        "application/fhir+json".to_string(),
        oxifhir_model::json::to_bytes(resource),
    ))
}

/// Processes a batch or transaction Bundle.
pub async fn process(ctx: &Context<'_>) -> ApiResult<FhirResponse> {
    body_kind(ctx.request, &[BodyKind::Json])?;
    let bundle = oxifhir_model::json::parse(&ctx.request.body)
        .map_err(|e| ApiError::bad_request(format!("Malformed JSON: {e}")))?;
    if bundle.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(ApiError::bad_request(
            "POST to the base takes a Bundle of type batch or transaction",
        ));
    }
    let bundle_type = bundle
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let transaction = match bundle_type.as_str() {
        "transaction" => true,
        "batch" | "history" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "Bundle type '{}' cannot be processed here; POST batch or transaction Bundles to the base, store other Bundles at [base]/Bundle",
                truncate(other, 40)
            ))
            .at("Bundle.type"));
        }
    };
    let entries = match bundle.get("entry") {
        None => Vec::new(),
        Some(Value::Array(entries)) => entries.clone(),
        Some(_) => {
            return Err(ApiError::bad_request("Bundle.entry must be an array").at("Bundle.entry"));
        }
    };
    // bdl-7: fullUrl must be unique in a Bundle.
    let mut full_urls = std::collections::HashSet::new();
    for (i, entry) in entries.iter().enumerate() {
        if let Some(url) = entry.get("fullUrl").and_then(Value::as_str)
            && !full_urls.insert(url)
        {
            return Err(ApiError::bad_request(format!(
                "Bundle.entry[{i}].fullUrl '{}' appears more than once (bdl-7)",
                truncate(url, 120)
            ))
            .at(format!("Bundle.entry[{i}].fullUrl")));
        }
    }
    let base = ctx.server.config().base_url.clone();
    let parsed: Vec<ApiResult<EntryRequest>> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| parse_entry(i, e, &base))
        .collect();
    if transaction {
        let entries = parsed.into_iter().collect::<ApiResult<Vec<_>>>()?;
        transaction::process(ctx, entries).await
    } else {
        batch::process(ctx, parsed).await
    }
}

fn parse_entry(index: usize, entry: Value, base: &str) -> ApiResult<EntryRequest> {
    let at = |e: ApiError| e.at(format!("Bundle.entry[{index}]"));
    let Value::Object(mut entry) = entry else {
        return Err(at(ApiError::bad_request(format!(
            "Bundle.entry[{index}] is not an object"
        ))));
    };
    let Some(Value::Object(request)) = entry.remove("request") else {
        return Err(at(ApiError::bad_request(format!(
            "Bundle.entry[{index}] has no request"
        ))));
    };
    let text = |name: &str| {
        request
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let method = text("method")
        .and_then(|m| Method::parse(&m))
        .ok_or_else(|| {
            at(ApiError::bad_request(format!(
                "Bundle.entry[{index}].request.method is missing or not supported"
            )))
        })?;
    let url = text("url").ok_or_else(|| {
        at(ApiError::bad_request(format!(
            "Bundle.entry[{index}].request.url is missing"
        )))
    })?;
    let url = url
        .strip_prefix(base)
        .map(|u| u.trim_start_matches('/').to_string())
        .unwrap_or(url);
    if url.contains("://") {
        return Err(at(ApiError::bad_request(format!(
            "Bundle.entry[{index}].request.url '{}' is not on this server",
            truncate(&url, 120)
        ))));
    }
    let resource = entry.remove("resource");
    if matches!(method, Method::Post | Method::Put | Method::Patch) && resource.is_none() {
        return Err(at(ApiError::bad_request(format!(
            "Bundle.entry[{index}] ({}) has no resource",
            method.as_str()
        ))));
    }
    Ok(EntryRequest {
        index,
        method,
        url,
        full_url: entry
            .get("fullUrl")
            .and_then(Value::as_str)
            .map(str::to_string),
        resource,
        if_match: text("ifMatch"),
        if_none_exist: text("ifNoneExist"),
        if_none_match: text("ifNoneMatch"),
        if_modified_since: text("ifModifiedSince"),
    })
}

/// The outcome of one entry, as written into the response Bundle.
#[derive(Debug, Clone, Default)]
pub(crate) struct EntryResult {
    pub status: u16,
    pub location: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<Instant>,
    /// The resource (or search Bundle) returned.
    pub body: Option<Vec<u8>>,
    /// An OperationOutcome for failed entries or `return=OperationOutcome`.
    pub outcome: Option<Vec<u8>>,
}

impl EntryResult {
    /// Takes the parts of a synchronous response that an entry reports.
    pub fn from_response(response: FhirResponse) -> Self {
        let is_outcome = !response.is_success()
            || (!response.body.is_empty()
                && oxifhir_model::json::parse(&response.body)
                    .ok()
                    .as_ref()
                    .and_then(oxifhir_model::json::resource_type)
                    == Some("OperationOutcome"));
        let last_modified = response
            .header("last-modified")
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| Instant::from_millis(d.as_millis() as i64));
        let body = (!response.body.is_empty()).then_some(response.body.clone());
        EntryResult {
            status: response.status,
            location: response.header("location").map(str::to_string),
            etag: response.header("etag").map(str::to_string),
            last_modified,
            body: if is_outcome { None } else { body.clone() },
            outcome: if is_outcome { body } else { None },
        }
    }

    /// An entry that failed with `error`.
    pub fn from_error(error: &ApiError) -> Self {
        EntryResult {
            status: error.status(),
            outcome: Some(oxifhir_model::json::to_bytes(&error.outcome.to_json())),
            ..Default::default()
        }
    }
}

/// Writes the response Bundle of type `bundle_type` with one entry per result, in order.
pub(crate) fn response_bundle(bundle_type: &str, results: &[EntryResult]) -> Vec<u8> {
    let mut bundle = BundleWriter::new(
        bundle_type,
        &oxifhir_model::id::new_id(),
        Instant::now(),
        None,
        &[],
    );
    for r in results {
        let mut response = serde_json::Map::new();
        response.insert("status".into(), json!(status_line(r.status)));
        if let Some(l) = &r.location {
            response.insert("location".into(), json!(l));
        }
        if let Some(e) = &r.etag {
            response.insert("etag".into(), json!(e));
        }
        if let Some(t) = r.last_modified {
            response.insert("lastModified".into(), json!(t.to_string()));
        }
        let mut response = Value::Object(response);
        if let Some(outcome) = r
            .outcome
            .as_deref()
            .and_then(|o| oxifhir_model::json::parse(o).ok())
        {
            response["outcome"] = outcome;
        }
        bundle.entry(
            r.body.as_deref(),
            EntryParts {
                response: Some(response),
                ..Default::default()
            },
        );
    }
    bundle.finish()
}

/// `201 Created`, `404 Not Found`, …: the code first, then the reason.
pub(crate) fn status_line(status: u16) -> String {
    let reason = axum::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    format!("{status} {reason}").trim_end().to_string()
}
