//! The runtime against a real store (SQLite, and PostgreSQL when `OXIFHIR_TEST_POSTGRES` is
//! set): completion, checkpoints and resume after a simulated crash, graceful hand-back,
//! cancellation mid-job, bounded retries, and what observers are told of jobs' ends.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use oxifhir_jobs::{
    Job, JobContext, JobError, JobObserver, JobOutcome, JobOutput, JobRuntime, RuntimeConfig,
};
use oxifhir_model::Instant;
use oxifhir_store::jobs::{CancelResult, JobRecord, JobState, NewJob};
use oxifhir_store::{Store, StoreConfig};

/// A database for one test; dropped schemas and directories clean up after it.
struct Db {
    config: StoreConfig,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    fn sqlite() -> Db {
        let dir = tempfile::tempdir().expect("tempdir");
        Db {
            config: StoreConfig::Sqlite {
                dir: dir.path().to_path_buf(),
            },
            _dir: Some(dir),
        }
    }

    fn postgres() -> Option<Db> {
        let url = std::env::var("OXIFHIR_TEST_POSTGRES").ok()?;
        Some(Db {
            config: StoreConfig::Postgres {
                url,
                schema: Some(format!("t_{}", uuid_like())),
            },
            _dir: None,
        })
    }

    /// A store on this database (call again for "another node" or "after a restart").
    async fn open(&self) -> Arc<dyn Store> {
        oxifhir_store::open(&self.config).await.expect("open store")
    }
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{nanos:x}{:x}", std::process::id())
}

/// Counts from its checkpoint to `to`, one step every `step_ms`, checkpointing each step;
/// the result lists every number counted, so a lost or repeated step shows.
#[derive(Default)]
struct Counter {
    discarded: Mutex<Vec<String>>,
    /// Fail with a transient error on the first this many attempts.
    flaky_attempts: i64,
}

#[async_trait]
impl Job for Counter {
    async fn run(&self, ctx: &JobContext) -> Result<JobOutput, JobError> {
        if ctx.job().attempt <= self.flaky_attempts {
            return Err(JobError::Transient(format!(
                "flaky attempt {}",
                ctx.job().attempt
            )));
        }
        let input: serde_json::Value = serde_json::from_slice(&ctx.job().input).unwrap();
        let to = input["to"].as_u64().unwrap();
        let step = Duration::from_millis(input["step_ms"].as_u64().unwrap());
        let mut done: Vec<u64> = match ctx.checkpoint_data() {
            Some(bytes) => serde_json::from_slice(bytes).unwrap(),
            None => Vec::new(),
        };
        while (done.len() as u64) < to {
            ctx.check()?;
            tokio::time::sleep(step).await;
            done.push(done.len() as u64);
            ctx.set_progress(format!("Counted {} of {to}", done.len()));
            ctx.checkpoint(&serde_json::to_vec(&done).unwrap(), None)
                .await?;
        }
        Ok(JobOutput {
            failed: false,
            result: serde_json::to_vec(&done).unwrap(),
            progress: None,
        })
    }

    async fn discard(&self, job: &JobRecord) -> Result<(), String> {
        self.discarded.lock().unwrap().push(job.id.clone());
        Ok(())
    }
}

fn config(lease_ms: u64) -> RuntimeConfig {
    RuntimeConfig {
        workers: 1,
        lease: Duration::from_millis(lease_ms),
        cancel_check: Duration::from_millis(50),
        idle_poll: Duration::from_millis(100),
        retry_backoff: Duration::from_millis(50),
        ..RuntimeConfig::default()
    }
}

fn runtime(store: Arc<dyn Store>, counter: Arc<Counter>, lease_ms: u64) -> JobRuntime {
    let mut runtime = JobRuntime::new(store, config(lease_ms));
    runtime.register("count", counter);
    runtime
}

async fn enqueue(store: &dyn Store, id: &str, to: u64, step_ms: u64) {
    store
        .jobs()
        .enqueue(NewJob {
            id: id.into(),
            kind: "count".into(),
            owner: None,
            input: serde_json::to_vec(&serde_json::json!({"to": to, "step_ms": step_ms})).unwrap(),
            request_url: "test".into(),
            request_time: Instant::now(),
        })
        .await
        .unwrap();
}

/// Waits (up to 30 s) until `check` holds for the job.
async fn wait_for(
    store: &dyn Store,
    id: &str,
    what: &str,
    check: impl Fn(&JobRecord) -> bool,
) -> JobRecord {
    for _ in 0..600 {
        if let Some(job) = store.jobs().job(id).await.unwrap()
            && check(&job)
        {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("job {id}: timed out waiting for {what}");
}

fn counted(job: &JobRecord) -> Vec<u64> {
    serde_json::from_slice(job.result.as_deref().expect("a result")).unwrap()
}

fn checkpointed(job: &JobRecord) -> usize {
    job.checkpoint
        .as_deref()
        .map(|b| serde_json::from_slice::<Vec<u64>>(b).unwrap().len())
        .unwrap_or(0)
}

async fn completes(db: Db) {
    let store = db.open().await;
    let counter = Arc::new(Counter::default());
    let handle = runtime(store.clone(), counter, 5_000).start();
    enqueue(store.as_ref(), "a", 5, 5).await;
    let job = wait_for(store.as_ref(), "a", "completion", |j| j.state.is_final()).await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(counted(&job), (0..5).collect::<Vec<_>>());
    assert_eq!(job.progress.as_deref(), Some("Counted 5 of 5"));
    assert!(job.expires_at.is_some());
    handle.shutdown().await;
}

async fn resumes_after_a_crash(db: Db) {
    let store = db.open().await;
    let first = runtime(store.clone(), Arc::new(Counter::default()), 1_000).start();
    enqueue(store.as_ref(), "c", 40, 20).await;
    wait_for(store.as_ref(), "c", "some progress", |j| {
        checkpointed(j) >= 5
    })
    .await;
    // The node dies: no hand-back, its lease just runs out.
    first.abort();
    let crashed_at = checkpointed(&store.jobs().job("c").await.unwrap().unwrap());

    let other_node = db.open().await;
    let second = runtime(other_node.clone(), Arc::new(Counter::default()), 1_000).start();
    let job = wait_for(other_node.as_ref(), "c", "completion", |j| {
        j.state.is_final()
    })
    .await;
    assert_eq!(job.state, JobState::Completed);
    assert_eq!(job.attempt, 2, "taken over once");
    assert_eq!(
        counted(&job),
        (0..40).collect::<Vec<_>>(),
        "nothing lost, nothing twice"
    );
    assert!(crashed_at < 40);
    second.shutdown().await;
}

async fn shutdown_hands_jobs_back(db: Db) {
    let store = db.open().await;
    let first = runtime(store.clone(), Arc::new(Counter::default()), 30_000).start();
    enqueue(store.as_ref(), "h", 30, 20).await;
    wait_for(store.as_ref(), "h", "some progress", |j| {
        checkpointed(j) >= 3
    })
    .await;
    first.shutdown().await;
    let handed_back = store.jobs().job("h").await.unwrap().unwrap();
    assert_eq!(handed_back.state, JobState::Queued);
    assert_eq!(handed_back.failures, 0, "a hand-back is no failure");
    // Resumed at once by the next process, although the lease was long.
    let second = runtime(db.open().await, Arc::new(Counter::default()), 30_000).start();
    let job = wait_for(store.as_ref(), "h", "completion", |j| j.state.is_final()).await;
    assert_eq!(counted(&job), (0..30).collect::<Vec<_>>());
    second.shutdown().await;
}

async fn cancellation_stops_a_running_job(db: Db) {
    let store = db.open().await;
    let counter = Arc::new(Counter::default());
    let handle = runtime(store.clone(), counter.clone(), 30_000).start();
    enqueue(store.as_ref(), "x", 100_000, 10).await;
    wait_for(store.as_ref(), "x", "some progress", |j| {
        checkpointed(j) >= 2
    })
    .await;
    let now = Instant::now();
    let cancelled = store.jobs().cancel("x", now, now).await.unwrap();
    assert!(matches!(cancelled, CancelResult::Cancelled(_)));
    for _ in 0..200 {
        if !counter.discarded.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        *counter.discarded.lock().unwrap(),
        ["x"],
        "partial output discarded"
    );
    let job = store.jobs().job("x").await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    let progress_then = checkpointed(&job);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let job = store.jobs().job("x").await.unwrap().unwrap();
    assert_eq!(checkpointed(&job), progress_then, "it stopped writing");
    // The janitor removes it once expired, discarding again (idempotently).
    let mut janitor = JobRuntime::new(store.clone(), config(30_000));
    janitor.register("count", counter.clone());
    assert_eq!(janitor.sweep().await.unwrap(), 1);
    assert!(store.jobs().job("x").await.unwrap().is_none());
    handle.shutdown().await;
}

async fn transient_failures_are_retried_then_fail(db: Db) {
    let store = db.open().await;
    let flaky_once = Arc::new(Counter {
        flaky_attempts: 1,
        ..Counter::default()
    });
    let handle = runtime(store.clone(), flaky_once, 30_000).start();
    enqueue(store.as_ref(), "f1", 3, 1).await;
    let job = wait_for(store.as_ref(), "f1", "completion", |j| j.state.is_final()).await;
    assert_eq!(
        (job.state, job.failures, job.attempt),
        (JobState::Completed, 1, 2)
    );
    handle.shutdown().await;

    let always = Arc::new(Counter {
        flaky_attempts: i64::MAX,
        ..Counter::default()
    });
    let handle = runtime(store.clone(), always, 30_000).start();
    enqueue(store.as_ref(), "f2", 3, 1).await;
    let job = wait_for(store.as_ref(), "f2", "failure", |j| j.state.is_final()).await;
    assert_eq!(job.state, JobState::Failed);
    assert_eq!(job.attempt, 3, "max_failures attempts");
    assert_eq!(job.error.as_deref(), Some("flaky attempt 3"));
    handle.shutdown().await;
}

/// Records every job end it is told of.
#[derive(Default)]
struct Ends(Mutex<Vec<(String, JobOutcome)>>);

impl JobObserver for Ends {
    fn job_ended(&self, job: &JobRecord, outcome: JobOutcome, _ran_for: Duration) {
        self.0.lock().unwrap().push((job.id.clone(), outcome));
    }
}

impl Ends {
    async fn wait_for(&self, id: &str) -> JobOutcome {
        for _ in 0..600 {
            let found = self
                .0
                .lock()
                .unwrap()
                .iter()
                .find(|(j, _)| j == id)
                .cloned();
            if let Some((_, outcome)) = found {
                return outcome;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("job {id}: no end reported");
    }
}

async fn observers_hear_how_jobs_end(db: Db) {
    let store = db.open().await;
    let ends = Arc::new(Ends::default());
    let mut observed = runtime(store.clone(), Arc::new(Counter::default()), 30_000);
    observed.observe(ends.clone());
    let handle = observed.start();
    enqueue(store.as_ref(), "done", 3, 1).await;
    assert_eq!(ends.wait_for("done").await, JobOutcome::Completed);
    enqueue(store.as_ref(), "stopped", 100_000, 10).await;
    wait_for(store.as_ref(), "stopped", "some progress", |j| {
        checkpointed(j) >= 2
    })
    .await;
    let now = Instant::now();
    store.jobs().cancel("stopped", now, now).await.unwrap();
    assert_eq!(ends.wait_for("stopped").await, JobOutcome::Cancelled);
    // A job handed back at shutdown has not ended.
    enqueue(store.as_ref(), "handed-back", 100_000, 10).await;
    wait_for(store.as_ref(), "handed-back", "some progress", |j| {
        checkpointed(j) >= 2
    })
    .await;
    handle.shutdown().await;
    let reported = |ends: &Ends| -> Vec<String> {
        ends.0
            .lock()
            .unwrap()
            .iter()
            .map(|(j, _)| j.clone())
            .collect()
    };
    assert_eq!(reported(&ends), ["done", "stopped"], "each end once");
    store.jobs().cancel("handed-back", now, now).await.unwrap();

    let mut failing = runtime(
        store.clone(),
        Arc::new(Counter {
            flaky_attempts: i64::MAX,
            ..Counter::default()
        }),
        30_000,
    );
    failing.observe(ends.clone());
    let handle = failing.start();
    enqueue(store.as_ref(), "failed", 3, 1).await;
    assert_eq!(ends.wait_for("failed").await, JobOutcome::Failed);
    handle.shutdown().await;
    assert_eq!(reported(&ends), ["done", "stopped", "failed"]);
}

macro_rules! runtime_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(super::Db::sqlite()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = super::Db::postgres() {
                    super::$name(db).await;
                }
            }
        }
    )+};
}

runtime_tests!(
    completes,
    resumes_after_a_crash,
    shutdown_hands_jobs_back,
    cancellation_stops_a_running_job,
    transient_failures_are_retried_then_fail,
    observers_hear_how_jobs_end,
);
