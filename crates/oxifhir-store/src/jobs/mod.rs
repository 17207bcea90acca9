//! The durable job queue: one row per asynchronous job, with the lease, fencing counter,
//! checkpoint and stored result that the job runtime (`oxifhir-jobs`) builds on.
//!
//! State transitions, each one statement (so concurrent nodes never disagree):
//!
//! ```text
//!            claim                    finish
//!   queued ─────────► running ───────────────────► completed | error
//!     ▲  ◄──────────────┘  │ (lease expired: claimed again, attempt + 1)
//!     │  retry / release   │
//!     └─ cancel / release ─┴──────────────────────► cancelled
//! ```
//!
//! Every write of a running attempt names its `attempt` (the fencing counter bumped by each
//! claim) and changes nothing unless that attempt still holds the job, so a worker that lost
//! its lease can never overwrite a newer attempt or a cancellation.

use std::time::Duration;

use async_trait::async_trait;
use oxifhir_model::Instant;

use crate::StoreResult;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    /// Waiting for a worker (new, handed back, or waiting to retry).
    Queued,
    /// Held by a worker under a lease.
    Running,
    /// Finished; its result is stored.
    Completed,
    /// Finished unsuccessfully; its result (if any) and error are stored.
    Failed,
    /// Stopped by a client before it finished.
    Cancelled,
}

impl JobState {
    /// The stable code stored in the database (FHIR's AsyncJob words where they exist).
    pub fn code(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "error",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Parses [`JobState::code`].
    pub fn from_code(code: &str) -> Option<Self> {
        Some(match code {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "completed" => JobState::Completed,
            "error" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }

    /// True once the job will never run again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Completed | JobState::Failed | JobState::Cancelled
        )
    }
}

/// A job to put on the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub id: String,
    /// Which registered job implementation runs it (`interaction`, `export`, …).
    pub kind: String,
    /// The client that started it; `None` without authentication.
    pub owner: Option<String>,
    /// The job's input as its kind defines it (JSON).
    pub input: Vec<u8>,
    /// The request URL, for the AsyncJob resource and logs.
    pub request_url: String,
    pub request_time: Instant,
}

/// One job as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub owner: Option<String>,
    pub state: JobState,
    pub input: Vec<u8>,
    pub request_url: String,
    pub request_time: Instant,
    /// The consistent cut a job reads at, when its kind sets one.
    pub transaction_time: Option<Instant>,
    /// The fencing counter: how many times the job has been claimed.
    pub attempt: i64,
    /// The worker holding (or last holding) the job.
    pub worker: Option<String>,
    /// Until when the current claim holds; after it another worker may take the job over.
    pub lease_until: Option<Instant>,
    /// A queued job is not claimed before this.
    pub not_before: Instant,
    /// Failed attempts so far.
    pub failures: i64,
    /// A short human-readable progress text (`X-Progress`).
    pub progress: Option<String>,
    /// Where a resumed attempt continues, as its kind defines it.
    pub checkpoint: Option<Vec<u8>>,
    /// The stored result, as its kind defines it.
    pub result: Option<Vec<u8>>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    pub started_at: Option<Instant>,
    pub finished_at: Option<Instant>,
    /// After this the janitor removes the job, its result and its files.
    pub expires_at: Option<Instant>,
    /// When a client let go of the job (`DELETE` on its status URL); from then on it is gone
    /// for clients.
    pub released_at: Option<Instant>,
    pub updated_at: Instant,
}

/// What a claim takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Names the claiming worker (for logs and the jobs page).
    pub worker: String,
    /// Only jobs of these kinds are taken.
    pub kinds: Vec<String>,
    /// How long the claim holds without a heartbeat.
    pub lease: Duration,
    pub now: Instant,
}

/// How a running attempt ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFinish {
    /// [`JobState::Completed`] or [`JobState::Failed`].
    pub state: JobState,
    pub result: Option<Vec<u8>>,
    pub error: Option<String>,
    pub progress: Option<String>,
    pub now: Instant,
    pub expires_at: Instant,
}

/// What `$cancel` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelResult {
    /// The job was queued or running and is now cancelled.
    Cancelled(JobRecord),
    /// The job was already final (or released); nothing changed.
    Unchanged(JobRecord),
    NotFound,
}

/// Which jobs a listing returns, oldest request first (newest first with `newest_first`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobFilter {
    /// Any of these states; empty for all.
    pub states: Vec<JobState>,
    /// Only jobs of this owner.
    pub owner: Option<String>,
    /// Only jobs listed after this one in the listing's order (keyset paging by
    /// `(request_time, id)`).
    pub after: Option<(Instant, String)>,
    /// Newest request first (the jobs page) instead of oldest first.
    pub newest_first: bool,
    /// Include jobs released by their client.
    pub include_released: bool,
    pub limit: usize,
}

/// How many jobs of one kind are in one state ([`JobQueue::counts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobCount {
    pub kind: String,
    pub state: JobState,
    pub count: i64,
}

/// The job queue both backends implement. Reached through [`crate::Store::jobs`].
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Stores a new queued job and wakes idle workers (on every node).
    async fn enqueue(&self, job: NewJob) -> StoreResult<JobRecord>;

    /// The job, released or not; `None` if there is no such job (or it expired).
    async fn job(&self, id: &str) -> StoreResult<Option<JobRecord>>;

    /// Jobs matching `filter`.
    async fn list(&self, filter: &JobFilter) -> StoreResult<Vec<JobRecord>>;

    /// Queued and running jobs of `owner`, released ones excluded.
    async fn active_count(&self, owner: Option<&str>) -> StoreResult<i64>;

    /// Jobs not released by their client, counted by kind and state in one grouped query
    /// (for metrics); combinations without jobs are left out.
    async fn counts(&self) -> StoreResult<Vec<JobCount>>;

    /// Takes the oldest claimable job: queued and due, or running with an expired lease. The
    /// claim sets it running, bumps its `attempt` and leases it to `claim.worker`.
    async fn claim(&self, claim: &Claim) -> StoreResult<Option<JobRecord>>;

    /// Extends the lease of `attempt` and records progress. `false` when the attempt no
    /// longer holds the job (cancelled, released, or taken over).
    async fn heartbeat(
        &self,
        id: &str,
        attempt: i64,
        lease_until: Instant,
        progress: Option<&str>,
    ) -> StoreResult<bool>;

    /// Records where `attempt` has got to (and, the first time, the job's transaction
    /// time). `false` when the attempt no longer holds the job.
    async fn checkpoint(
        &self,
        id: &str,
        attempt: i64,
        checkpoint: &[u8],
        progress: Option<&str>,
        transaction_time: Option<Instant>,
    ) -> StoreResult<bool>;

    /// Ends `attempt` with a result. `false` when the attempt no longer holds the job.
    async fn finish(&self, id: &str, attempt: i64, finish: &JobFinish) -> StoreResult<bool>;

    /// Puts the job of `attempt` back on the queue, to be claimed from `not_before` on;
    /// `failed` counts it as a failed attempt with `error`. `false` when the attempt no
    /// longer holds the job.
    async fn requeue(
        &self,
        id: &str,
        attempt: i64,
        not_before: Instant,
        failed: Option<&str>,
    ) -> StoreResult<bool>;

    /// Cancels a queued or running job (its worker notices at its next heartbeat).
    async fn cancel(
        &self,
        id: &str,
        now: Instant,
        expires_at: Instant,
    ) -> StoreResult<CancelResult>;

    /// A client lets go of the job: cancelled if not final, result dropped, due to expire at
    /// `expires_at`. `None` if there is no such job or it was already released.
    async fn release(
        &self,
        id: &str,
        now: Instant,
        expires_at: Instant,
    ) -> StoreResult<Option<JobRecord>>;

    /// Jobs whose `expires_at` has passed (at most `limit`).
    async fn expired(&self, now: Instant, limit: usize) -> StoreResult<Vec<JobRecord>>;

    /// Removes the job row for good.
    async fn purge(&self, id: &str) -> StoreResult<()>;

    /// A receiver that changes whenever work may have become claimable (enqueue, requeue) —
    /// on PostgreSQL also when another node enqueued.
    fn wakeups(&self) -> tokio::sync::watch::Receiver<u64>;
}

mod queue;
pub(crate) mod sql;

pub(crate) use queue::{JobRow, JobSql, SqlJobQueue, checkpoint_statement};
