//! The expunge job: the request's phases (deleted resources, previous versions, everything,
//! or a Patient's compartment and then the Patient) run as bounded batches, each its own
//! transaction. As a job, each batch's transaction also stores the checkpoint (phase and
//! counts), so a resumed attempt continues with exact counts; batches are idempotent, so what
//! a batch removes is simply gone for the next one.

use async_trait::async_trait;
use oxifhir_jobs::{Job, JobContext, JobError, JobOutput};
use oxifhir_model::compartment;
use oxifhir_store::expunge::{ExpungeBatch, ExpungeCount, ExpungeScope, ExpungeWhat};
use oxifhir_store::{Isolation, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::ExpungeRequest;
use crate::request::FhirRequest;
use crate::response::FhirResponse;
use crate::route::{self, Interaction, OperationTarget};
use crate::server::FhirServer;

/// Attempts at one batch's transaction when the database asks for a retry.
const TRANSACTION_ATTEMPTS: u32 = 5;

/// Runs `$expunge` jobs.
pub struct ExpungeJob {
    server: FhirServer,
}

impl ExpungeJob {
    /// Expunges from the store of `server`.
    pub fn new(server: FhirServer) -> Self {
        ExpungeJob { server }
    }
}

/// Where an expunge has got to (the job's checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// Index of the current phase.
    phase: usize,
    /// Versions removed so far.
    count: u64,
    /// What the current phase removed so far, as its `limit` counts (resources, or versions).
    removed: u64,
}

impl Progress {
    fn text(&self) -> String {
        format!("Expunged {} versions.", self.count)
    }
}

/// One phase of an expunge.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Resources whose current version is a deletion, every version.
    Deleted,
    /// Versions older than the current one.
    Previous,
    /// Everything in the scope.
    Everything,
    /// The resources in the compartment of this Patient, then the Patient.
    Compartment(String),
}

fn phases(request: &ExpungeRequest) -> Vec<Phase> {
    match (&request.target, request.everything) {
        (OperationTarget::Instance(_, id), true) => vec![Phase::Compartment(id.clone())],
        (_, true) => vec![Phase::Everything],
        _ => {
            let mut phases = Vec::new();
            if request.deleted {
                phases.push(Phase::Deleted);
            }
            if request.previous {
                phases.push(Phase::Previous);
            }
            phases
        }
    }
}

fn scope(target: &OperationTarget) -> ExpungeScope {
    match target {
        OperationTarget::System => ExpungeScope::default(),
        OperationTarget::Type(t) => ExpungeScope {
            resource_type: Some(t.clone()),
            id: None,
        },
        OperationTarget::Instance(t, id) => ExpungeScope {
            resource_type: Some(t.clone()),
            id: Some(id.clone()),
        },
    }
}

/// The next batch of `phase`; `None` when the phase is done. The flag marks a compartment's
/// last batch (the Patient itself).
async fn next_batch(
    store: &dyn Store,
    request: &ExpungeRequest,
    phase: &Phase,
    progress: &Progress,
    size: usize,
) -> Result<Option<(ExpungeBatch, bool)>, JobError> {
    let remaining = request
        .limit
        .map_or(u64::MAX, |l| l.saturating_sub(progress.removed));
    let bounded = usize::try_from(remaining).unwrap_or(usize::MAX).min(size);
    let (what, limit) = match phase {
        Phase::Deleted | Phase::Previous if remaining == 0 => return Ok(None),
        Phase::Deleted => (ExpungeWhat::DeletedResources, bounded),
        Phase::Previous => (ExpungeWhat::PreviousVersions, bounded),
        Phase::Everything => (ExpungeWhat::Everything, size),
        Phase::Compartment(patient) => {
            let mut members: Vec<(String, String)> = store
                .referencing("Patient", patient)
                .await?
                .into_iter()
                .filter(|(t, id, param)| {
                    !(t == "Patient" && id == patient)
                        && compartment::patient_compartment_params(t).contains(param)
                })
                .map(|(t, id, _)| (t, id))
                .collect();
            members.dedup();
            members.truncate(size);
            let last = members.is_empty();
            if last {
                members.push(("Patient".into(), patient.clone()));
            }
            let batch = ExpungeBatch {
                scope: ExpungeScope::default(),
                what: ExpungeWhat::Resources(members),
                limit: size,
            };
            return Ok(Some((batch, last)));
        }
    };
    let batch = ExpungeBatch {
        scope: scope(&request.target),
        what,
        limit,
    };
    Ok(Some((batch, false)))
}

fn job_error(e: StoreError) -> JobError {
    match e {
        StoreError::Retryable(m) => JobError::Transient(format!("{RETRYABLE}: {m}")),
        other => other.into(),
    }
}

/// The text a retryable store error starts with, as [`JobError`] carries it.
const RETRYABLE: &str = "retryable";

/// Runs an expunge from `progress` to its end; with a job context each batch's transaction
/// stores the checkpoint, and the expunge stops when the job must.
pub async fn execute(
    server: &FhirServer,
    request: &ExpungeRequest,
    ctx: Option<&JobContext>,
    mut progress: Progress,
) -> Result<Progress, JobError> {
    let store = server.store();
    let settings = &server.config().maintenance;
    let phases = phases(request);
    while progress.phase < phases.len() {
        if let Some(ctx) = ctx {
            ctx.check()?;
        }
        let phase = &phases[progress.phase];
        let next = next_batch(store, request, phase, &progress, settings.batch.max(1)).await?;
        let mut attempt = 0;
        progress = loop {
            attempt += 1;
            match write(store, ctx, phase, next.as_ref(), &progress).await {
                Err(JobError::Transient(message))
                    if attempt < TRANSACTION_ATTEMPTS && message.starts_with(RETRYABLE) =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                other => break other?,
            }
        };
        if !settings.throttle.is_zero() {
            tokio::time::sleep(settings.throttle).await;
        }
    }
    if let Err(e) = server.load_search_params().await {
        tracing::warn!(error = %e.message(), "reloading search parameters after an expunge failed");
    }
    Ok(progress)
}

/// Runs one batch (`None`: the phase is over) and stores the checkpoint after it, in one
/// transaction; the progress after it.
async fn write(
    store: &dyn Store,
    ctx: Option<&JobContext>,
    phase: &Phase,
    batch: Option<&(ExpungeBatch, bool)>,
    progress: &Progress,
) -> Result<Progress, JobError> {
    let mut tx = store
        .begin(Isolation::VersionChecked)
        .await
        .map_err(job_error)?;
    let mut next = progress.clone();
    let mut done = true;
    if let Some((batch, last)) = batch {
        let ExpungeCount {
            resources,
            versions,
        } = tx.expunge(batch).await.map_err(job_error)?;
        next.count += versions;
        let (removed, limit) = match phase {
            Phase::Previous => (versions, batch.limit as u64),
            _ => (resources, batch.limit as u64),
        };
        next.removed += removed;
        // A compartment is done with the Patient (its last batch); the other phases when a
        // batch finds less than it may remove.
        done = match phase {
            Phase::Compartment(_) => *last,
            _ => removed < limit,
        };
    }
    if done {
        next.phase += 1;
        next.removed = 0;
    }
    if let Some(ctx) = ctx {
        let bytes = serde_json::to_vec(&next)
            .map_err(|e| JobError::Fatal(format!("cannot checkpoint: {e}")))?;
        ctx.checkpoint_in(tx.as_mut(), &bytes, &next.text()).await?;
    }
    tx.commit().await.map_err(job_error)?;
    if let Some(ctx) = ctx {
        ctx.set_progress(next.text());
    }
    Ok(next)
}

/// The result `Parameters` of a finished expunge.
pub fn result(progress: &Progress) -> serde_json::Value {
    json!({
        "resourceType": "Parameters",
        "parameter": [{"name": "count", "valueInteger": progress.count}],
    })
}

#[async_trait]
impl Job for ExpungeJob {
    async fn run(&self, ctx: &JobContext) -> Result<JobOutput, JobError> {
        let request: FhirRequest = serde_json::from_slice(&ctx.job().input)
            .map_err(|e| JobError::Fatal(format!("the stored request is unreadable: {e}")))?;
        let Ok(Interaction::Operation { target, .. }) = route::route(&request) else {
            return Err(JobError::Fatal(
                "the stored request is not an $expunge".into(),
            ));
        };
        let expunge = ExpungeRequest::parse(&request, &target)
            .map_err(|e| JobError::Fatal(e.message().to_owned()))?;
        let progress = match ctx.checkpoint_data() {
            Some(bytes) => serde_json::from_slice(bytes)
                .map_err(|e| JobError::Fatal(format!("unreadable checkpoint: {e}")))?,
            None => Progress::default(),
        };
        ctx.set_progress(progress.text());
        let done = execute(&self.server, &expunge, Some(ctx), progress).await?;
        crate::operations::job_output(
            &request,
            FhirResponse::json(200, oxifhir_model::json::to_bytes(&result(&done))),
            done.text(),
        )
    }
}
