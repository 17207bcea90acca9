//! Workers, heartbeats and the janitor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use oxifhir_model::Instant;
use oxifhir_store::Store;
use oxifhir_store::jobs::{Claim, JobFinish, JobRecord, JobState};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::{Job, JobContext, JobError, JobObserver, JobOutcome, JobOutput};

/// How the runtime behaves.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Concurrent jobs this process runs; 0 runs none (an API-only node).
    pub workers: usize,
    /// How long a claim holds without a heartbeat; a job whose worker died is taken over this
    /// long after its last heartbeat.
    pub lease: Duration,
    /// How often a running job looks for cancellation.
    pub cancel_check: Duration,
    /// How long an idle worker waits before looking for due retries and expired leases when
    /// nothing wakes it.
    pub idle_poll: Duration,
    /// Failed attempts before a job ends in `error`.
    pub max_failures: i64,
    /// Claims of one job (crashed workers included) before it ends in `error`.
    pub max_attempts: i64,
    /// The wait before the first retry; doubled for each further one.
    pub retry_backoff: Duration,
    /// How long results are kept after a job ends.
    pub retention: Duration,
    /// How often the janitor looks for expired jobs.
    pub janitor_interval: Duration,
    /// Names this process in job rows (`host:pid` by default).
    pub worker_name: String,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            workers: 2,
            lease: Duration::from_secs(30),
            cancel_check: Duration::from_millis(200),
            idle_poll: Duration::from_secs(1),
            max_failures: 3,
            max_attempts: 10,
            retry_backoff: Duration::from_secs(1),
            retention: Duration::from_secs(24 * 3600),
            janitor_interval: Duration::from_secs(5),
            worker_name: format!("pid{}", std::process::id()),
        }
    }
}

/// The job kinds of a process and how it runs them.
pub struct JobRuntime {
    store: Arc<dyn Store>,
    kinds: HashMap<String, Arc<dyn Job>>,
    config: RuntimeConfig,
    observers: Vec<Arc<dyn JobObserver>>,
}

/// A started runtime; [`RuntimeHandle::shutdown`] stops it gracefully.
pub struct RuntimeHandle {
    shutdown: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Why a running attempt was told to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum StopReason {
    None = 0,
    /// Cancelled, released or taken over: the attempt no longer holds the job.
    Lost = 1,
    /// The process is shutting down: hand the job back.
    Shutdown = 2,
}

impl JobRuntime {
    /// A runtime over `store` with no job kinds yet.
    pub fn new(store: Arc<dyn Store>, config: RuntimeConfig) -> Self {
        JobRuntime {
            store,
            kinds: HashMap::new(),
            config,
            observers: Vec::new(),
        }
    }

    /// Tells `observer` about every job that ends on this process.
    pub fn observe(&mut self, observer: Arc<dyn JobObserver>) {
        self.observers.push(observer);
    }

    /// Runs jobs of `kind` with `job`.
    pub fn register(&mut self, kind: &str, job: Arc<dyn Job>) {
        self.kinds.insert(kind.to_owned(), job);
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &RuntimeConfig {
        &self.config
    }

    /// Starts the workers and the janitor on the current tokio runtime.
    pub fn start(self) -> RuntimeHandle {
        let shutdown = CancellationToken::new();
        let runtime = Arc::new(self);
        let mut tasks = Vec::new();
        for n in 0..runtime.config.workers {
            let (runtime, shutdown) = (runtime.clone(), shutdown.clone());
            let name = format!("{}/{n}", runtime.config.worker_name);
            tasks.push(tokio::spawn(async move {
                runtime.work(name, shutdown).await;
            }));
        }
        let (janitor, stop) = (runtime.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move { janitor.janitor(stop).await }));
        RuntimeHandle { shutdown, tasks }
    }

    fn claim_for(&self, worker: &str) -> Claim {
        Claim {
            worker: worker.to_owned(),
            kinds: self.kinds.keys().cloned().collect(),
            lease: self.config.lease,
            now: Instant::now(),
        }
    }

    /// One worker: claim, run, repeat; sleep until woken when there is nothing to do.
    async fn work(&self, name: String, shutdown: CancellationToken) {
        let mut wakeups = self.store.jobs().wakeups();
        while !shutdown.is_cancelled() {
            // Mark the current wake-up as seen before looking, so none is missed.
            wakeups.borrow_and_update();
            match self.store.jobs().claim(&self.claim_for(&name)).await {
                Ok(Some(job)) => {
                    let span = tracing::info_span!("job", job = %job.id, kind = %job.kind);
                    self.run_attempt(job, &shutdown).instrument(span).await
                }
                Ok(None) => {
                    tokio::select! {
                        _ = wakeups.changed() => {}
                        _ = tokio::time::sleep(self.config.idle_poll) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(worker = %name, error = %e, "claiming a job failed");
                    tokio::select! {
                        _ = tokio::time::sleep(self.config.idle_poll) => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    async fn run_attempt(&self, job: JobRecord, shutdown: &CancellationToken) {
        let Some(kind) = self.kinds.get(&job.kind).cloned() else {
            return;
        };
        tracing::info!(job = %job.id, kind = %job.kind, attempt = job.attempt, "job started");
        if job.attempt > self.config.max_attempts {
            let message = format!(
                "The job was abandoned after {} attempts: its workers stopped without finishing it",
                job.attempt - 1
            );
            self.finish_failed(&job, message).await;
            return;
        }
        let ctx = JobContext {
            store: self.store.clone(),
            stop: CancellationToken::new(),
            progress: Arc::new(Mutex::new(job.progress.clone())),
            record: job.clone(),
        };
        let reason = Arc::new(AtomicU8::new(StopReason::None as u8));
        let heartbeat = AbortOnDrop(tokio::spawn(heartbeat(
            self.store.clone(),
            job.clone(),
            self.config.clone(),
            ctx.stop.clone(),
            ctx.progress.clone(),
            reason.clone(),
            shutdown.clone(),
        )));
        let result = tokio::select! {
            result = kind.run(&ctx) => result,
            _ = ctx.stop.cancelled() => Err(JobError::Stopped),
        };
        drop(heartbeat);
        let reason = match reason.load(Ordering::SeqCst) {
            1 => StopReason::Lost,
            2 => StopReason::Shutdown,
            _ => StopReason::None,
        };
        self.settle(&job, kind.as_ref(), &ctx, result, reason).await;
    }

    /// Records how an attempt ended.
    async fn settle(
        &self,
        job: &JobRecord,
        kind: &dyn Job,
        ctx: &JobContext,
        result: Result<JobOutput, JobError>,
        reason: StopReason,
    ) {
        let jobs = self.store.jobs();
        let now = Instant::now();
        let mut ended = None;
        let outcome = match result {
            Ok(output) => {
                ended = Some(if output.failed {
                    JobOutcome::Failed
                } else {
                    JobOutcome::Completed
                });
                let finish = JobFinish {
                    state: if output.failed {
                        JobState::Failed
                    } else {
                        JobState::Completed
                    },
                    result: Some(output.result),
                    error: None,
                    progress: output.progress.or_else(|| ctx.progress()),
                    now,
                    expires_at: self.expiry(now),
                };
                jobs.finish(&job.id, job.attempt, &finish).await
            }
            Err(JobError::Stopped) if reason == StopReason::Shutdown => {
                tracing::info!(job = %job.id, "job handed back at shutdown");
                jobs.requeue(&job.id, job.attempt, now, None).await
            }
            Err(JobError::Stopped) => Ok(false),
            Err(JobError::Transient(message)) if job.failures + 1 < self.config.max_failures => {
                let backoff = self.config.retry_backoff * 2u32.saturating_pow(job.failures as u32);
                tracing::warn!(job = %job.id, error = %message, "job attempt failed; will retry");
                jobs.requeue(&job.id, job.attempt, later(now, backoff), Some(&message))
                    .await
            }
            Err(JobError::Transient(message) | JobError::Fatal(message)) => {
                self.finish_failed(job, message).await;
                return;
            }
        };
        match outcome {
            Ok(true) => {
                tracing::info!(job = %job.id, "job attempt ended");
                if let Some(ended) = ended {
                    self.ended(job, ended);
                }
            }
            Ok(false) => self.after_lost(job, kind).await,
            Err(e) => tracing::warn!(job = %job.id, error = %e, "could not record the job's end"),
        }
    }

    /// The attempt no longer holds the job: if the job was cancelled or released its output
    /// is discarded; if another worker took it over, the output is that worker's.
    async fn after_lost(&self, job: &JobRecord, kind: &dyn Job) {
        let current = match self.store.jobs().job(&job.id).await {
            Ok(current) => current,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "cannot read the stopped job");
                return;
            }
        };
        let stopped_by_client = match &current {
            None => true,
            Some(c) => c.state == JobState::Cancelled || c.released_at.is_some(),
        };
        if stopped_by_client {
            tracing::info!(job = %job.id, "job cancelled; discarding its output");
            self.ended(job, JobOutcome::Cancelled);
            if let Err(e) = kind.discard(job).await {
                tracing::warn!(job = %job.id, error = %e, "discarding a cancelled job's output failed");
            }
        } else {
            tracing::warn!(job = %job.id, "job taken over by another worker");
        }
    }

    async fn finish_failed(&self, job: &JobRecord, message: String) {
        tracing::warn!(job = %job.id, error = %message, "job failed");
        let now = Instant::now();
        let finish = JobFinish {
            state: JobState::Failed,
            result: None,
            error: Some(message),
            progress: None,
            now,
            expires_at: self.expiry(now),
        };
        match self
            .store
            .jobs()
            .finish(&job.id, job.attempt, &finish)
            .await
        {
            Ok(true) => self.ended(job, JobOutcome::Failed),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "could not record the job's failure")
            }
        }
    }

    /// Tells the observers that `job` ended (its run time counted from its first claim).
    fn ended(&self, job: &JobRecord, outcome: JobOutcome) {
        let started = job.started_at.unwrap_or(job.request_time).millis();
        let ran_for =
            Duration::from_millis(u64::try_from(Instant::now().millis() - started).unwrap_or(0));
        for observer in &self.observers {
            observer.job_ended(job, outcome, ran_for);
        }
    }

    fn expiry(&self, now: Instant) -> Instant {
        later(now, self.config.retention)
    }

    /// Removes expired jobs with their output, every `janitor_interval`.
    async fn janitor(&self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "the job janitor failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.config.janitor_interval) => {}
                _ = shutdown.cancelled() => {}
            }
        }
    }

    /// One janitor pass: discards the output of every expired job and removes it.
    pub async fn sweep(&self) -> Result<usize, oxifhir_store::StoreError> {
        let expired = self.store.jobs().expired(Instant::now(), 100).await?;
        let mut removed = 0;
        for job in expired {
            if job.state == JobState::Running {
                // Released while running: its worker discards what it wrote when it stops.
                continue;
            }
            if let Some(kind) = self.kinds.get(&job.kind)
                && let Err(e) = kind.discard(&job).await
            {
                tracing::warn!(job = %job.id, error = %e, "discarding an expired job's output failed");
                continue;
            }
            self.store.jobs().purge(&job.id).await?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// Keeps the lease of a running attempt, stores its progress, and stops it when it is
/// cancelled, released or taken over, or when the process shuts down.
async fn heartbeat(
    store: Arc<dyn Store>,
    job: JobRecord,
    config: RuntimeConfig,
    stop: CancellationToken,
    progress: Arc<Mutex<Option<String>>>,
    reason: Arc<AtomicU8>,
    shutdown: CancellationToken,
) {
    let renew_every = config.lease / 3;
    let mut last_renewal = std::time::Instant::now();
    let mut stored_progress = job.progress.clone();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => {
                reason.store(StopReason::Shutdown as u8, Ordering::SeqCst);
                stop.cancel();
                return;
            }
            _ = stop.cancelled() => {
                // Stopped from inside (a checkpoint found the lease lost).
                reason.store(StopReason::Lost as u8, Ordering::SeqCst);
                return;
            }
            _ = tokio::time::sleep(config.cancel_check) => {}
        }
        let current = progress.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let progressed = current != stored_progress;
        let still_held = if progressed || last_renewal.elapsed() >= renew_every {
            let lease_until = later(Instant::now(), config.lease);
            let held = store
                .jobs()
                .heartbeat(&job.id, job.attempt, lease_until, current.as_deref())
                .await;
            if matches!(held, Ok(true)) {
                last_renewal = std::time::Instant::now();
                stored_progress = current;
            }
            held
        } else {
            store.jobs().job(&job.id).await.map(|c| {
                c.is_some_and(|c| {
                    c.state == JobState::Running
                        && c.attempt == job.attempt
                        && c.released_at.is_none()
                })
            })
        };
        match still_held {
            Ok(true) => {}
            Ok(false) => {
                reason.store(StopReason::Lost as u8, Ordering::SeqCst);
                stop.cancel();
                return;
            }
            // The database is unreachable: keep running until the lease is surely gone.
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "job heartbeat failed");
                if last_renewal.elapsed() >= config.lease {
                    reason.store(StopReason::Lost as u8, Ordering::SeqCst);
                    stop.cancel();
                    return;
                }
            }
        }
    }
}

fn later(now: Instant, by: Duration) -> Instant {
    Instant::from_millis(
        now.millis()
            .saturating_add(i64::try_from(by.as_millis()).unwrap_or(i64::MAX / 4)),
    )
}

/// Aborts a task when dropped: a heartbeat never outlives the attempt it belongs to, even when
/// the worker itself is aborted.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl RuntimeHandle {
    /// Stops every task at once without handing jobs back, as if the process had been
    /// killed: leases run out and other workers take the jobs over. For crash tests.
    #[doc(hidden)]
    pub fn abort(self) {
        for task in &self.tasks {
            task.abort();
        }
    }

    /// Stops claiming, hands running jobs back to the queue (another node, or this one after
    /// a restart, resumes them from their checkpoints) and waits for the workers to return.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}
