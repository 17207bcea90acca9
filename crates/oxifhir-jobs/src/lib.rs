//! The durable job runtime of oxifhir.
//!
//! Jobs live in the database ([`oxifhir_store::jobs`]), so any node can run any job. This crate
//! runs them: workers claim jobs under a lease, a heartbeat renews it and watches for
//! cancellation, each claim bumps a fencing counter that every write of the attempt checks,
//! long jobs checkpoint so that another worker resumes them after a crash, failures are
//! retried with backoff a bounded number of times, and a janitor removes expired results.
//!
//! Operations plug in by implementing [`Job`] and registering it under a kind with
//! [`JobRuntime::register`]; they get progress, checkpoints and cancellation for free through
//! their [`JobContext`]. This crate knows nothing of HTTP.

mod context;
mod runtime;

pub use context::JobContext;
pub use runtime::{JobRuntime, RuntimeConfig, RuntimeHandle};

use async_trait::async_trait;
use oxifhir_store::StoreError;
use oxifhir_store::jobs::JobRecord;

/// One kind of asynchronous work.
#[async_trait]
pub trait Job: Send + Sync + 'static {
    /// Runs the job, or resumes it from [`JobContext::checkpoint_data`]. It should return
    /// [`JobError::Stopped`] soon after [`JobContext::stopped`] completes; if it does not, the
    /// runtime stops awaiting it at its next `.await`.
    async fn run(&self, ctx: &JobContext) -> Result<JobOutput, JobError>;

    /// Removes everything the job wrote outside the job row (files, partial output). Called
    /// when a running job is cancelled and when an expired or released job is purged; must be
    /// idempotent.
    async fn discard(&self, _job: &JobRecord) -> Result<(), String> {
        Ok(())
    }
}

/// How a job ended on this process, as a [`JobObserver`] is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobOutcome {
    /// Finished; the AsyncJob is `completed`.
    Completed,
    /// Finished unsuccessfully or gave up; the AsyncJob is `error`.
    Failed,
    /// Its client cancelled or released it while this process ran it.
    Cancelled,
}

impl JobOutcome {
    /// The job state's code in the store (`completed`, `error`, `cancelled`).
    pub fn code(self) -> &'static str {
        match self {
            JobOutcome::Completed => "completed",
            JobOutcome::Failed => "error",
            JobOutcome::Cancelled => "cancelled",
        }
    }
}

/// Told when a job ends on this process (metrics); called on the worker's task, so it must
/// return quickly. Attempts that are retried, handed back or taken over are not reported.
pub trait JobObserver: Send + Sync + 'static {
    /// `job` ended with `outcome`, `ran_for` after its first claim (resumed attempts
    /// included).
    fn job_ended(&self, job: &JobRecord, outcome: JobOutcome, ran_for: std::time::Duration);
}

/// What a finished job leaves behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobOutput {
    /// True when the work was done but its outcome is a failure (an AsyncJob `error`).
    pub failed: bool,
    /// The stored result, as the job's kind defines it.
    pub result: Vec<u8>,
    /// A last progress text (`X-Progress`), if the job has one.
    pub progress: Option<String>,
}

/// Why a job did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// It was told to stop (cancelled, lease lost, or shutting down); the runtime knows which.
    Stopped,
    /// Another attempt later may succeed (the database was unavailable, …).
    Transient(String),
    /// Retrying will not help.
    Fatal(String),
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Stopped => f.write_str("stopped"),
            JobError::Transient(m) => write!(f, "{m} (will retry)"),
            JobError::Fatal(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for JobError {}

impl From<StoreError> for JobError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidCursor => JobError::Fatal(e.to_string()),
            other => JobError::Transient(other.to_string()),
        }
    }
}
