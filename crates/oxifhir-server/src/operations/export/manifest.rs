//! The complete-status manifest of an export (Bulk Data IG v2): what a finished export job
//! stores ([`ExportResult`], file names only) and the `200 application/json` answer built from
//! it at poll time with absolute file URLs — or, for a failed export, its 4xx/5xx
//! OperationOutcome.

use oxifhir_model::Instant;
use oxifhir_store::jobs::{JobRecord, JobState};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::response::FhirResponse;
use crate::server::FhirServer;

/// Which manifest list a file belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// Exported resources (`output`).
    Output,
    /// Transaction Bundles of `DELETE` entries (`deleted`).
    Deleted,
    /// OperationOutcomes (`error`).
    Error,
}

/// One written file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportFile {
    pub kind: FileKind,
    /// The resource type of every line.
    #[serde(rename = "type")]
    pub resource_type: String,
    pub name: String,
    /// Lines in the file.
    pub count: u64,
}

/// What a completed export job stores as its result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportResult {
    /// The consistent cut, in milliseconds.
    pub transaction_time: i64,
    /// The kick-off URL.
    pub request: String,
    pub files: Vec<ExportFile>,
}

impl ExportResult {
    /// Reads a stored result.
    pub fn from_bytes(bytes: &[u8]) -> ApiResult<Self> {
        serde_json::from_slice(bytes)
            .map_err(|e| ApiError::internal(format!("unreadable export result: {e}")))
    }

    /// The file `name`, if the export wrote it.
    pub fn file(&self, name: &str) -> Option<&ExportFile> {
        self.files.iter().find(|f| f.name == name)
    }
}

/// `{base}/_async/{id}/files/{name}`.
pub fn file_url(server: &FhirServer, job_id: &str, name: &str) -> String {
    server.url(&format!("_async/{job_id}/files/{name}"))
}

/// The manifest JSON with absolute URLs.
pub fn manifest(server: &FhirServer, job_id: &str, result: &ExportResult) -> Value {
    let list = |kind: FileKind| -> Vec<Value> {
        result
            .files
            .iter()
            .filter(|f| f.kind == kind)
            .map(|f| {
                json!({
                    "type": f.resource_type,
                    "url": file_url(server, job_id, &f.name),
                    "count": f.count,
                })
            })
            .collect()
    };
    json!({
        "transactionTime": Instant::from_millis(result.transaction_time).to_string(),
        "request": result.request,
        // With SMART on, files are served only to the client that started the export, on its
        // bearer token.
        "requiresAccessToken": matches!(server.auth(), crate::AuthMode::Smart(_)),
        "output": list(FileKind::Output),
        "error": list(FileKind::Error),
        "deleted": list(FileKind::Deleted),
    })
}

/// The answer to a poll of a finished export: `200` + manifest when it completed, its own
/// status + OperationOutcome when it failed.
pub fn final_response(server: &FhirServer, job: &JobRecord) -> ApiResult<FhirResponse> {
    let mut response = match (job.state, &job.result) {
        (JobState::Completed, Some(bytes)) => {
            let result = ExportResult::from_bytes(bytes)?;
            let body = serde_json::to_vec(&manifest(server, &job.id, &result))
                .map_err(ApiError::internal)?;
            FhirResponse::json(200, body).with_header("content-type", "application/json")
        }
        (JobState::Failed, Some(bytes)) => serde_json::from_slice::<FhirResponse>(bytes)
            .map_err(|e| ApiError::internal(format!("unreadable export failure: {e}")))?,
        _ => FhirResponse::from_error(&ApiError::new(
            ErrorKind::Internal,
            job.error
                .clone()
                .unwrap_or_else(|| "The export failed".to_owned()),
        )),
    };
    if let Some(expires) = job.expires_at {
        response.set_header("expires", expires.to_http_date());
    }
    Ok(response)
}
