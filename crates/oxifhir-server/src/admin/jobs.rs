//! The jobs page's data as JSON: `GET /_admin/api/jobs` (the caller's jobs, newest request
//! first) and `GET /_admin/api/jobs/{id}` (one job with its output). Everything shown comes
//! from the asynchronous pattern's own views — the `AsyncJob` status code, the `X-Progress`
//! text, the status URL, the export manifest and the stored result — so the page says what
//! the status endpoint says.

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use oxifhir_model::Instant;
use oxifhir_store::jobs::{JobFilter, JobRecord, JobState};
use serde::Serialize;
use serde_json::Value;

use crate::asynchronous::progress::{self, Counts};
use crate::asynchronous::{async_job, status};
use crate::error::{ApiError, ApiResult};
use crate::http::{error_response, to_http};
use crate::interactions::Context;
use crate::operations::export;
use crate::request::{FhirRequest, Method, parse_query};
use crate::response::FhirResponse;
use crate::server::FhirServer;

/// Jobs a listing shows unless `_count` asks for another number (at most the server's
/// `max_count`).
pub const DEFAULT_LISTING: usize = 100;

/// A stored result body larger than this is not repeated in a job's detail (its result URL
/// serves it).
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// `GET /_admin/api/jobs[?status=…][&_count=…]`: the jobs the caller may see (its own with
/// `--auth smart`), newest request first, released ones left out like on the status URL.
pub async fn list(
    State(server): State<FhirServer>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let request = match caller(&server, &headers) {
        Ok(request) => request,
        Err(response) => return to_http(response),
    };
    let query = query.as_deref().map(parse_query).unwrap_or_default();
    match listing(&server, &request, &query).await {
        Ok(body) => json(&body),
        Err(error) => error_response(&error),
    }
}

/// `GET /_admin/api/jobs/{id}`: one job with its output; `404` for a job the caller may not
/// see, a released one, or none.
pub async fn detail(
    State(server): State<FhirServer>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let request = match caller(&server, &headers) {
        Ok(request) => request,
        Err(response) => return to_http(response),
    };
    let ctx = Context {
        server: &server,
        request: &request,
        prefs: Default::default(),
    };
    let job = match status::visible_job(&ctx, &id).await {
        Ok(Some(job)) if job.released_at.is_none() => job,
        Ok(_) => {
            return error_response(&ApiError::not_found(format!(
                "No asynchronous request has the id '{}' (it may have expired or been deleted)",
                crate::route::truncate(&id, 64)
            )));
        }
        Err(error) => return error_response(&error),
    };
    match JobDetail::of(&server, &job) {
        Ok(detail) => json(&detail),
        Err(error) => error_response(&error),
    }
}

/// The request the caller's rights travel in: its principal from the bearer token, or the
/// `401` the API would answer.
fn caller(server: &FhirServer, headers: &HeaderMap) -> Result<FhirRequest, FhirResponse> {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let principal = crate::auth::authenticate(server.auth(), authorization)?;
    let mut request = FhirRequest::new(Method::Get, "_admin/jobs");
    request.principal = principal;
    Ok(request)
}

fn json(body: &impl Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => to_http(
            FhirResponse::json(200, bytes)
                .with_header("content-type", "application/json")
                .with_header("cache-control", "no-store"),
        ),
        Err(error) => error_response(&ApiError::internal(error)),
    }
}

/// What `GET /_admin/api/jobs` answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing {
    /// When the listing was made (elapsed times are measured to it).
    pub server_time: String,
    /// The FHIR base URL.
    pub fhir_base: String,
    /// `none` or `smart`.
    pub auth: &'static str,
    pub jobs: Vec<JobSummary>,
}

async fn listing(
    server: &FhirServer,
    request: &FhirRequest,
    query: &[(String, String)],
) -> ApiResult<Listing> {
    let mut filter = JobFilter {
        owner: crate::asynchronous::kickoff::owner(request),
        newest_first: true,
        include_released: false,
        limit: DEFAULT_LISTING.min(server.config().max_count),
        ..Default::default()
    };
    for (name, value) in query {
        match name.as_str() {
            "status" => {
                for code in value.split(',') {
                    filter.states.extend(async_job::states_of(code)?);
                }
            }
            "_count" => {
                let count: usize = value
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("Invalid _count '{value}'")))?;
                filter.limit = count.min(server.config().max_count);
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "The jobs listing takes status and _count, not '{}'",
                    crate::route::truncate(other, 64)
                )));
            }
        }
    }
    let now = Instant::now();
    let jobs = server.store().jobs().list(&filter).await?;
    Ok(Listing {
        server_time: now.to_string(),
        fhir_base: server.config().base_url.clone(),
        auth: match server.auth() {
            crate::AuthMode::None => "none",
            crate::AuthMode::Smart(_) => "smart",
        },
        jobs: jobs
            .iter()
            .map(|job| JobSummary::of(server, job, now))
            .collect(),
    })
}

/// One job as the jobs page lists it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    pub id: String,
    /// The job kind (`export`, `reindex`, `expunge`, `interaction`).
    pub kind: String,
    /// The HTTP method of the request, when its stored form says.
    pub method: Option<&'static str>,
    /// The request URL.
    pub request: String,
    /// `AsyncJob.status`: `accepted`, `completed`, `error` or `cancelled`.
    pub status: &'static str,
    /// The finer state: `queued`, `running`, `completed`, `error` or `cancelled`.
    pub state: &'static str,
    /// The `X-Progress` text (the last one, once the job ended).
    pub progress: String,
    /// The numbers in `progress`, when it has any.
    pub counts: Option<Counts>,
    /// How far along (0–100), when `progress` says `N of M`; 100 once completed.
    pub percent: Option<f64>,
    pub request_time: String,
    pub started_time: Option<String>,
    pub finished_time: Option<String>,
    /// Seconds from the first start to the end (or to `serverTime` while it runs).
    pub elapsed_seconds: Option<f64>,
    /// `counts.done` per elapsed second.
    pub per_second: Option<f64>,
    /// `[base]/_async/{id}`: poll, or `DELETE` to cancel (or to delete a finished result).
    pub status_url: String,
    /// The job's page.
    pub page: String,
    /// A completed export's files, from its manifest.
    pub files: Vec<FileLink>,
}

/// A file of a completed export's manifest.
#[derive(Debug, Serialize)]
pub struct FileLink {
    /// The manifest list it is in: `output`, `error` or `deleted`.
    pub list: &'static str,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub url: String,
    pub count: u64,
}

impl JobSummary {
    /// The summary of `job` at `now`.
    pub fn of(server: &FhirServer, job: &JobRecord, now: Instant) -> JobSummary {
        let progress = progress::text(job);
        let counts = Counts::parse(&progress);
        let percent = match job.state {
            JobState::Completed => Some(100.0),
            _ => counts.as_ref().and_then(Counts::percent),
        };
        let end = match job.state {
            state if state.is_final() => job.finished_at.unwrap_or(job.updated_at),
            _ => now,
        };
        let elapsed = job
            .started_at
            .map(|start| end.millis().saturating_sub(start.millis()).max(0) as f64 / 1000.0);
        let per_second = match (&counts, elapsed) {
            (Some(counts), Some(seconds)) if seconds > 0.0 => Some(counts.done as f64 / seconds),
            _ => None,
        };
        JobSummary {
            id: job.id.clone(),
            kind: job.kind.clone(),
            method: serde_json::from_slice::<FhirRequest>(&job.input)
                .ok()
                .map(|r| r.method.as_str()),
            request: job.request_url.clone(),
            status: async_job::status_code(job.state),
            state: job.state.code(),
            progress,
            counts,
            percent,
            request_time: job.request_time.to_string(),
            started_time: job.started_at.map(|t| t.to_string()),
            finished_time: job.state.is_final().then(|| end.to_string()),
            elapsed_seconds: elapsed,
            per_second,
            status_url: server.url(&format!("_async/{}", job.id)),
            page: format!("{}/{}", super::JOBS_PAGE, job.id),
            files: files(server, job),
        }
    }
}

/// The files of a completed export, as its manifest lists them.
fn files(server: &FhirServer, job: &JobRecord) -> Vec<FileLink> {
    let result = match (job.kind.as_str(), job.state, &job.result) {
        (export::KIND, JobState::Completed, Some(bytes)) => {
            export::manifest::ExportResult::from_bytes(bytes)
        }
        _ => return Vec::new(),
    };
    let Ok(result) = result else {
        return Vec::new();
    };
    let manifest = export::manifest::manifest(server, &job.id, &result);
    let mut links = Vec::new();
    for list in ["output", "error", "deleted"] {
        for entry in manifest[list].as_array().into_iter().flatten() {
            links.push(FileLink {
                list,
                resource_type: entry["type"].as_str().unwrap_or_default().to_owned(),
                url: entry["url"].as_str().unwrap_or_default().to_owned(),
                count: entry["count"].as_u64().unwrap_or(0),
            });
        }
    }
    links
}

/// One job with everything the status endpoint knows of it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobDetail {
    #[serde(flatten)]
    pub summary: JobSummary,
    pub server_time: String,
    /// The consistent cut an export reads at.
    pub transaction_time: Option<String>,
    pub updated_time: String,
    /// When the job and its output will be removed.
    pub expires_time: Option<String>,
    /// How many times a worker claimed it.
    pub attempt: i64,
    /// Failed attempts.
    pub failures: i64,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// What its result URL answers, once it has ended (not for a cancelled job).
    pub output: Option<Output>,
}

/// A finished job's answer: an export's manifest (or failure), or the stored response.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Output {
    /// `[base]/_async/{id}/result`.
    pub url: String,
    /// The HTTP status of the answer.
    pub status: u16,
    pub content_type: Option<String>,
    /// The body: JSON as JSON, other text as a string; `null` when larger than
    /// [`MAX_OUTPUT_BYTES`] (then `truncated` is true) or empty.
    pub body: Value,
    pub truncated: bool,
}

impl JobDetail {
    /// The detail of `job` now.
    pub fn of(server: &FhirServer, job: &JobRecord) -> ApiResult<JobDetail> {
        let now = Instant::now();
        let output = match job.state {
            JobState::Completed | JobState::Failed => Some(output(server, job)?),
            _ => None,
        };
        Ok(JobDetail {
            summary: JobSummary::of(server, job, now),
            server_time: now.to_string(),
            transaction_time: job.transaction_time.map(|t| t.to_string()),
            updated_time: job.updated_at.to_string(),
            expires_time: job.expires_at.map(|t| t.to_string()),
            attempt: job.attempt,
            failures: job.failures,
            error: job.error.clone(),
            output,
        })
    }
}

fn output(server: &FhirServer, job: &JobRecord) -> ApiResult<Output> {
    let response = status::stored_response(server, job)?;
    let truncated = response.body.len() > MAX_OUTPUT_BYTES;
    let body = if truncated || response.body.is_empty() {
        Value::Null
    } else {
        oxifhir_model::json::parse(&response.body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&response.body).into_owned()))
    };
    Ok(Output {
        url: server.url(&format!("_async/{}/result", job.id)),
        status: response.status,
        content_type: response.header("content-type").map(str::to_owned),
        body,
        truncated,
    })
}
