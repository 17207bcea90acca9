//! The `AsyncJob` resource (Medplum-compatible, seed 000): a read-only view of a job row,
//! readable at `{base}/AsyncJob/{id}` and searchable by `status`.

use oxifhir_model::Instant;
use oxifhir_model::bundle::{BundleWriter, EntryParts};
use oxifhir_store::jobs::{JobFilter, JobRecord, JobState};
use serde_json::{Map, Value, json};

use super::status::visible_job;
use crate::error::{ApiError, ApiResult};
use crate::interactions::{Context, paging_links, search::CURSOR_PARAM};
use crate::prefer::Handling;
use crate::response::FhirResponse;
use crate::server::FhirServer;

/// `AsyncJob.status` of a job: `accepted` while queued or running, then `completed`,
/// `error` or `cancelled`.
pub fn status_code(state: JobState) -> &'static str {
    match state {
        JobState::Queued | JobState::Running => "accepted",
        JobState::Completed => "completed",
        JobState::Failed => "error",
        JobState::Cancelled => "cancelled",
    }
}

/// The job as an `AsyncJob` resource.
pub fn resource(server: &FhirServer, job: &JobRecord) -> Value {
    let mut map = Map::new();
    map.insert("resourceType".into(), json!("AsyncJob"));
    map.insert("id".into(), json!(job.id));
    map.insert(
        "meta".into(),
        json!({ "lastUpdated": job.updated_at.to_string() }),
    );
    map.insert("status".into(), json!(status_code(job.state)));
    map.insert("requestTime".into(), json!(job.request_time.to_string()));
    if let Some(t) = job.transaction_time.or(job.finished_at) {
        map.insert("transactionTime".into(), json!(t.to_string()));
    }
    map.insert("request".into(), json!(job.request_url));
    let mut output = Vec::new();
    if matches!(job.state, JobState::Completed | JobState::Failed) && job.released_at.is_none() {
        output.push(json!({
            "name": "result",
            "valueUri": server.url(&format!("_async/{}/result", job.id)),
        }));
    }
    if let Some(error) = &job.error
        && job.state == JobState::Failed
    {
        output.push(json!({ "name": "error", "valueString": error }));
    }
    if let Some(progress) = &job.progress {
        output.push(json!({ "name": "progress", "valueString": progress }));
    }
    if !output.is_empty() {
        map.insert(
            "output".into(),
            json!({ "resourceType": "Parameters", "parameter": output }),
        );
    }
    Value::Object(map)
}

/// `GET {base}/AsyncJob/{id}`.
pub async fn read(ctx: &Context<'_>, id: &str) -> ApiResult<FhirResponse> {
    let job = visible_job(ctx, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("AsyncJob/{id} is not known")))?;
    Ok(FhirResponse::json(
        200,
        oxifhir_model::json::to_bytes(&resource(ctx.server, &job)),
    )
    .with_header("last-modified", job.updated_at.to_http_date()))
}

/// `GET {base}/AsyncJob?status=…`: jobs by status (comma-separated values are OR-ed),
/// oldest request first, paged with `_count` and a cursor.
pub async fn search(ctx: &Context<'_>) -> ApiResult<FhirResponse> {
    let config = ctx.server.config();
    let mut filter = JobFilter {
        limit: config.default_count,
        owner: super::kickoff::owner(ctx.request),
        ..Default::default()
    };
    for (name, value) in &ctx.request.query {
        match name.as_str() {
            "status" => {
                for code in value.split(',') {
                    filter.states.extend(states_of(code)?);
                }
            }
            "_count" => {
                let count: usize = value
                    .parse()
                    .map_err(|_| ApiError::bad_request(format!("Invalid _count '{value}'")))?;
                filter.limit = count.min(config.max_count);
            }
            CURSOR_PARAM => filter.after = Some(parse_cursor(value)?),
            "_format" | "_pretty" => {}
            other if ctx.prefs.handling == Handling::Strict => {
                return Err(ApiError::not_supported(format!(
                    "AsyncJob cannot be searched by '{}'; use status",
                    crate::route::truncate(other, 64)
                )));
            }
            _ => {}
        }
    }
    // Released jobs are gone for their clients.
    filter.include_released = false;
    let wanted = filter.limit;
    filter.limit = wanted + 1;
    let mut jobs = ctx.server.store().jobs().list(&filter).await?;
    let next = (jobs.len() > wanted).then(|| {
        jobs.truncate(wanted);
        jobs.last()
            .map(|j| format!("{}.{}", j.request_time.millis(), j.id))
            .unwrap_or_default()
    });
    let current = ctx.request.query_value(CURSOR_PARAM);
    let links = paging_links(
        config,
        "AsyncJob",
        &ctx.request.query,
        crate::interactions::PageCursors {
            current,
            next: next.as_deref(),
            previous: None,
        },
    );
    let total = (current.is_none() && next.is_none()).then_some(jobs.len() as u64);
    let mut bundle = BundleWriter::new(
        "searchset",
        &oxifhir_model::id::new_id(),
        Instant::now(),
        total,
        &links,
    );
    for job in &jobs {
        bundle.entry(
            Some(&oxifhir_model::json::to_bytes(&resource(ctx.server, job))),
            EntryParts {
                full_url: Some(ctx.server.url(&format!("AsyncJob/{}", job.id))),
                search_mode: Some("match"),
                ..Default::default()
            },
        );
    }
    Ok(FhirResponse::json(200, bundle.finish()))
}

/// The job states of an `AsyncJob.status` code (`accepted` is queued or running).
pub(crate) fn states_of(code: &str) -> ApiResult<Vec<JobState>> {
    Ok(match code.trim() {
        "accepted" => vec![JobState::Queued, JobState::Running],
        "completed" => vec![JobState::Completed],
        "error" => vec![JobState::Failed],
        "cancelled" => vec![JobState::Cancelled],
        other => {
            return Err(ApiError::bad_request(format!(
                "Unknown AsyncJob status '{}'; use accepted, completed, error or cancelled",
                crate::route::truncate(other, 40)
            )));
        }
    })
}

/// `{request_time ms}.{id}` of the last job of the previous page.
fn parse_cursor(text: &str) -> ApiResult<(Instant, String)> {
    text.split_once('.')
        .and_then(|(ms, id)| {
            let ms: i64 = ms.parse().ok()?;
            oxifhir_model::id::is_valid(id).then(|| (Instant::from_millis(ms), id.to_owned()))
        })
        .ok_or_else(|| ApiError::bad_request("Invalid or expired paging cursor"))
}
