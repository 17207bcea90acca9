//! The job kind of generic asynchronous requests: replay the stored request through the same
//! [`FhirServer::dispatch`] as the synchronous path and store the response.

use async_trait::async_trait;
use oxifhir_jobs::{Job, JobContext, JobError, JobOutput};

use crate::request::FhirRequest;
use crate::server::FhirServer;

/// Runs stored requests (any interaction or operation without a job kind of its own).
pub struct InteractionJob {
    server: FhirServer,
}

impl InteractionJob {
    /// Replays requests on `server`.
    pub fn new(server: FhirServer) -> Self {
        InteractionJob { server }
    }
}

#[async_trait]
impl Job for InteractionJob {
    async fn run(&self, ctx: &JobContext) -> Result<JobOutput, JobError> {
        let request: FhirRequest = serde_json::from_slice(&ctx.job().input)
            .map_err(|e| JobError::Fatal(format!("the stored request is unreadable: {e}")))?;
        ctx.set_progress(format!(
            "Running {} {}",
            request.method.as_str(),
            request.relative_url()
        ));
        let response = self.server.dispatch(request).await;
        // A database that went away is worth another attempt; any other answer is the answer.
        if response.status == 503 {
            return Err(JobError::Transient(format!(
                "the database was unavailable: {}",
                String::from_utf8_lossy(&response.body)
            )));
        }
        let failed = response.status >= 400;
        let result = serde_json::to_vec(&response)
            .map_err(|e| JobError::Fatal(format!("cannot store the response: {e}")))?;
        Ok(JobOutput {
            failed,
            result,
            progress: Some(format!("Finished with status {}", response.status)),
        })
    }
}
