//! Scenario: the asynchronous request pattern on a server with a job runtime (2 workers) over
//! the imported database.
//!
//! - kick-off latency: `GET Patient/{id}` with `Prefer: respond-async` (`202`), at each client
//!   count, beside the same read answered synchronously in the same run;
//! - status polls per second: `GET _async/{id}` of a running job (`202`), beside the trivial
//!   handler;
//! - time from kick-off to start on an idle worker: from the `202` until the job row shows the
//!   job claimed, one job at a time;
//! - time from `DELETE` to stop: from sending `DELETE` on the status URL of a running job until
//!   the job's code has stopped running, one job at a time.
//!
//! The last two are latencies, not rates: their rows give p50/p95/p99 and, in "per s", how
//! many such round trips one client completes per second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_trait::async_trait;
use oxifhir_jobs::{Job, JobContext, JobError, JobOutput, RuntimeConfig};
use oxifhir_server::asynchronous::AsyncConfig;
use oxifhir_server::{FhirServer, ServerConfig, http};
use oxifhir_store::Store;
use oxifhir_store::jobs::{JobState, NewJob};
use tokio::sync::mpsc;

use super::driver::{self, Req, Stats};
use super::{Env, Row};

/// The job kind of [`SpinJob`].
const SPIN: &str = "bench-spin";

/// Jobs measured one at a time for the start and stop latencies.
const SEQUENTIAL: usize = 100;

/// A job that reads Patients until it is stopped, and reports the moment it stopped.
struct SpinJob {
    patient: String,
    stopped: mpsc::UnboundedSender<Instant>,
}

/// Sends the time it is dropped: when the job's future ends, however it ends.
struct StopSignal(mpsc::UnboundedSender<Instant>);

impl Drop for StopSignal {
    fn drop(&mut self) {
        let _ = self.0.send(Instant::now());
    }
}

#[async_trait]
impl Job for SpinJob {
    async fn run(&self, ctx: &JobContext) -> Result<JobOutput, JobError> {
        let _signal = StopSignal(self.stopped.clone());
        loop {
            ctx.check()?;
            ctx.store().read("Patient", &self.patient).await?;
            tokio::task::yield_now().await;
        }
    }
}

/// Measures the async pattern; see the module documentation.
pub async fn run(env: &mut Env) -> anyhow::Result<Vec<Row>> {
    env.base().await?;
    let store = env.store().context("the store")?;
    let patient = env
        .patients
        .first()
        .cloned()
        .context("no Patient to read")?;
    let (stopped_tx, mut stopped) = mpsc::unbounded_channel();
    let (base, server) = start(store.clone(), patient.clone(), stopped_tx).await?;
    let mut rows = Vec::new();

    for &c in &env.clients.clone() {
        let url = format!("{base}/Patient/{patient}");
        let sync = driver::drive(&env.client, env.requests, c, {
            let url = url.clone();
            move |_| Req::Get(url.clone())
        })
        .await?;
        let kickoff = driver::drive(&env.client, env.requests, c, move |_| {
            Req::GetAsync(url.clone())
        })
        .await?;
        rows.push(
            row(env, "async kick-off (GET Patient)", c, &kickoff)
                .beside("synchronous GET Patient", Some(sync.per_sec)),
        );
        drain(&store).await?;
    }

    let id = enqueue_spin(&store).await?;
    wait_for(&store, &id, |s| s == JobState::Running).await?;
    for &c in &env.clients.clone() {
        let url = format!("{base}/_async/{id}");
        let polls =
            driver::drive(&env.client, env.requests, c, move |_| Req::Get(url.clone())).await?;
        rows.push(
            row(env, "async status poll (running job)", c, &polls)
                .beside("trivial handler GET", env.http_baseline.get(&c).copied()),
        );
    }
    delete(&env.client, &format!("{base}/_async/{id}")).await?;
    stopped.recv().await.context("the spin job never stopped")?;

    let mut to_start = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let response = env
            .client
            .get(format!("{base}/Patient/{patient}"))
            .header("prefer", "respond-async")
            .send()
            .await?;
        let accepted = Instant::now();
        anyhow::ensure!(response.status() == 202, "kick-off: {}", response.status());
        let status_url = response
            .headers()
            .get("content-location")
            .and_then(|v| v.to_str().ok())
            .context("kick-off without Content-Location")?
            .to_owned();
        let id = status_url.rsplit('/').next().unwrap_or_default().to_owned();
        wait_for(&store, &id, |s| s != JobState::Queued).await?;
        to_start.push(accepted.elapsed());
    }
    rows.push(latency_row(
        env,
        "async kick-off to start (idle worker)",
        to_start,
    ));

    let mut to_stop = Vec::with_capacity(SEQUENTIAL);
    for _ in 0..SEQUENTIAL {
        let id = enqueue_spin(&store).await?;
        wait_for(&store, &id, |s| s == JobState::Running).await?;
        let sent = Instant::now();
        delete(&env.client, &format!("{base}/_async/{id}")).await?;
        let at = stopped.recv().await.context("a spin job never stopped")?;
        to_stop.push(at.saturating_duration_since(sent));
    }
    rows.push(latency_row(env, "async DELETE to job stopped", to_stop));
    // Stopped, not dropped: its workers would otherwise go on claiming later scenarios' jobs.
    server.shutdown().await;
    Ok(rows)
}

/// A server with 2 workers, no `429` for fast polls and no limit of active jobs per client.
async fn start(
    store: Arc<dyn Store>,
    patient: String,
    stopped: mpsc::UnboundedSender<Instant>,
) -> anyhow::Result<(String, oxifhir_jobs::RuntimeHandle)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/fhir", listener.local_addr()?);
    let server = FhirServer::new(
        store,
        ServerConfig {
            base_url: base.clone(),
            asynchronous: AsyncConfig {
                poll_too_fast_ratio: 0.0,
                max_active_per_client: i64::MAX,
                kickoff_rate: None,
                poll_rate: None,
                ..AsyncConfig::default()
            },
            ..Default::default()
        },
    );
    let mut runtime = server.job_runtime(RuntimeConfig::default());
    runtime.register(SPIN, Arc::new(SpinJob { patient, stopped }));
    let handle = runtime.start();
    tokio::spawn(http::serve(
        listener,
        http::router(server),
        std::future::pending(),
    ));
    Ok((base, handle))
}

/// Queues a [`SpinJob`] straight into the store (no HTTP interaction starts one).
async fn enqueue_spin(store: &Arc<dyn Store>) -> anyhow::Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    store
        .jobs()
        .enqueue(NewJob {
            id: id.clone(),
            kind: SPIN.into(),
            owner: None,
            input: b"{}".to_vec(),
            request_url: "bench".into(),
            request_time: oxifhir_model::Instant::now(),
        })
        .await?;
    Ok(id)
}

/// Waits until job `id` is in a state `done` accepts, reading its row as fast as the store
/// answers (at most 30 s).
async fn wait_for(
    store: &Arc<dyn Store>,
    id: &str,
    done: impl Fn(JobState) -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(job) = store.jobs().job(id).await?
            && done(job.state)
        {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "job {id} did not get there in 30 s"
        );
        tokio::task::yield_now().await;
    }
}

/// Waits until no job is queued or running (the kick-offs of a row have all run).
async fn drain(store: &Arc<dyn Store>) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    while store.jobs().active_count(None).await? > 0 {
        anyhow::ensure!(Instant::now() < deadline, "jobs still active after 300 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn delete(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let status = client.delete(url).send().await?.status();
    anyhow::ensure!(status == 202, "DELETE {url} answered {status}");
    Ok(())
}

fn row(env: &Env, name: &str, clients: usize, stats: &Stats) -> Row {
    let mut row = Row::new(env.backend, name, clients, stats.requests, stats.per_sec);
    row.latency = Some(stats.percentiles());
    row
}

/// A row of sequential latencies: "per s" is how many fit in a second, one after another.
fn latency_row(env: &Env, name: &str, mut latencies: Vec<Duration>) -> Row {
    latencies.sort();
    let total: Duration = latencies.iter().sum();
    let stats = Stats {
        requests: latencies.len(),
        per_sec: latencies.len() as f64 / total.as_secs_f64().max(1e-9),
        latencies,
    };
    row(env, name, 1, &stats)
}
