//! Scenario: a system-level Bulk Data `$export` of the whole database (every type, NDJSON
//! files in a local directory) by an `oxifhir serve` process of its own with one job worker,
//! beside a raw scan of the same rows (`SELECT body` of every current, undeleted resource)
//! through the same driver; three rounds of each, alternating, and their medians.
//!
//! The export's time runs from the kick-off to the job's completion, read from its row in the
//! store (no status-poll granularity); the count is the sum of the manifest's `count`s. The
//! row's memory figures are that server process's alone, sampled while it exports: its peak
//! resident memory (which counts SQLite's memory-mapped pages) and its peak anonymous memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicBool, Ordering};

use oxifhir_store::jobs::JobState;
use oxifhir_store::{Store, StoreConfig};
use serde_json::Value;

use super::{Env, Row};

/// Rounds of (raw scan, export); the row reports the median of each.
const ROUNDS: usize = 3;

/// Exports everything and scans it raw, [`ROUNDS`] times each, alternating; one row with the
/// medians.
///
/// Before each measurement the operating system writes back every dirty page (`sync`), so that
/// neither side pays for writes left pending by what ran before (the import leaves gigabytes),
/// and each round's files are removed before the next.
pub async fn run(env: &mut Env) -> anyhow::Result<Vec<Row>> {
    env.base().await?;
    let store = env
        .store()
        .ok_or_else(|| anyhow::anyhow!("the server's store is not open"))?;
    let files = env.scratch.join("exports");
    let server = ServerProcess::start(&env.config, &files).await?;
    let mut raw_rates = Vec::with_capacity(ROUNDS);
    let mut exports = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        settle_writeback().await?;
        raw_rates.push(raw_scan(&env.config).await?);
        settle_writeback().await?;
        exports.push(export_once(env, &server, &store, &files).await?);
    }
    drop(server);

    let raw = median(raw_rates);
    let exported = exports[0].exported;
    anyhow::ensure!(
        exports.iter().all(|e| e.exported == exported),
        "the rounds exported different counts"
    );
    let per_sec = median(exports.iter().map(|e| e.per_sec).collect());
    let mb_per_sec = median(exports.iter().map(|e| e.mb_per_sec).collect());
    let label = format!(
        "$export system ({} files, {mb_per_sec:.0} MB/s; median of {ROUNDS})",
        exports[0].files
    );
    let mut row = Row::new(env.backend, &label, 1, exported as usize, per_sec).beside(
        &format!("raw scan of the rows (median of {ROUNDS})"),
        Some(raw),
    );
    row.peak_rss = exports.iter().filter_map(|e| e.peak_rss).max();
    row.peak_heap = exports.iter().filter_map(|e| e.peak_heap).max();
    Ok(vec![row])
}

/// One measured export.
struct Exported {
    exported: u64,
    files: usize,
    per_sec: f64,
    mb_per_sec: f64,
    peak_rss: Option<u64>,
    peak_heap: Option<u64>,
}

/// Kicks off a system export, waits for it, reads its manifest, and removes its files.
async fn export_once(
    env: &Env,
    server: &ServerProcess,
    store: &Arc<dyn Store>,
    files: &std::path::Path,
) -> anyhow::Result<Exported> {
    let base = &server.base;
    let kicked_off = Instant::now();
    let memory = server.sample_memory();
    let response = env
        .client
        .get(format!("{base}/$export"))
        .header("prefer", "respond-async")
        .header("accept", "application/fhir+json")
        .send()
        .await?;
    anyhow::ensure!(response.status() == 202, "kick-off: {}", response.status());
    let status_url = response
        .headers()
        .get("content-location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("kick-off without Content-Location"))?;
    let id = status_url.rsplit('/').next().unwrap_or_default().to_owned();
    wait_until_done(store, &id).await?;
    let elapsed = kicked_off.elapsed().as_secs_f64().max(1e-9);
    let (peak_rss, peak_heap) = memory.stop();

    let manifest: Value = env.client.get(&status_url).send().await?.json().await?;
    let outputs = manifest["output"].as_array().cloned().unwrap_or_default();
    let exported: u64 = outputs.iter().filter_map(|o| o["count"].as_u64()).sum();
    anyhow::ensure!(exported > 0, "the export wrote nothing: {manifest}");
    let dir = files.join(&id);
    let bytes = directory_size(&dir);
    std::fs::remove_dir_all(&dir)?;
    Ok(Exported {
        exported,
        files: outputs.len(),
        per_sec: exported as f64 / elapsed,
        mb_per_sec: bytes as f64 / 1e6 / elapsed,
        peak_rss,
        peak_heap,
    })
}

/// Waits until the operating system has written every dirty page back (`sync(1)`).
async fn settle_writeback() -> anyhow::Result<()> {
    let status = tokio::process::Command::new("sync").status().await?;
    anyhow::ensure!(status.success(), "sync failed: {status}");
    Ok(())
}

/// The median of a non-empty list (the upper one of the middle two for an even count).
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

/// An `oxifhir serve` process (this binary) on the benchmark's database, with one job worker
/// and export files under a directory of the scenario's; killed on drop.
struct ServerProcess {
    child: std::process::Child,
    base: String,
}

impl ServerProcess {
    async fn start(config: &StoreConfig, files: &std::path::Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let database: Vec<String> = match config {
            StoreConfig::Sqlite { dir } => vec!["--data".into(), dir.display().to_string()],
            StoreConfig::Postgres { url, schema } => {
                let mut args = vec!["--database".into(), url.clone()];
                if let Some(schema) = schema {
                    args.extend(["--database-schema".into(), schema.clone()]);
                }
                args
            }
        };
        let child = std::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .args(&database)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--workers", "1", "--export-settle", "10ms"])
            .arg("--export-store")
            .arg(files)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let server = ServerProcess {
            child,
            base: format!("http://127.0.0.1:{port}/fhir"),
        };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(r) = client.get(format!("{}/metadata", server.base)).send().await
                && r.status().is_success()
            {
                return Ok(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("oxifhir serve did not come up for the export scenario")
    }

    /// Samples the process's memory until [`MemorySampler::stop`].
    fn sample_memory(&self) -> MemorySampler {
        let status = format!("/proc/{}/status", self.child.id());
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut rss, mut heap) = (None, None);
            while !flag.load(Ordering::Relaxed) {
                if let Ok(text) = std::fs::read_to_string(&status) {
                    rss = rss.max(kib_field(&text, "VmHWM:"));
                    heap = heap.max(kib_field(&text, "RssAnon:"));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (rss, heap)
        });
        MemorySampler { stop, thread }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A field of `/proc/<pid>/status` given in kB, in bytes.
fn kib_field(status: &str, name: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(name))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Peak resident and peak anonymous memory of a process, sampled on a thread of its own.
struct MemorySampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(Option<u64>, Option<u64>)>,
}

impl MemorySampler {
    fn stop(self) -> (Option<u64>, Option<u64>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((None, None))
    }
}

/// Waits for job `id` to complete, reading its row every few milliseconds (at most an hour).
async fn wait_until_done(store: &Arc<dyn Store>, id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let job = store
            .jobs()
            .job(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("export job {id} vanished"))?;
        match job.state {
            JobState::Completed => return Ok(()),
            JobState::Queued | JobState::Running => {}
            other => anyhow::bail!("export job {id} ended {other:?}: {:?}", job.error),
        }
        anyhow::ensure!(Instant::now() < deadline, "export {id} ran over an hour");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Rows per second of one `SELECT body` over every current, undeleted resource.
async fn raw_scan(config: &StoreConfig) -> anyhow::Result<f64> {
    const SQL: &str = "SELECT body FROM resources WHERE method <> 'D'";
    let started = Instant::now();
    let rows = match config {
        StoreConfig::Sqlite { dir } => {
            let path = dir.join("oxifhir.db");
            tokio::task::spawn_blocking(move || -> anyhow::Result<u64> {
                let conn = rusqlite::Connection::open(&path)?;
                let mut stmt = conn.prepare(SQL)?;
                let mut rows = stmt.query([])?;
                let mut n = 0u64;
                while let Some(row) = rows.next()? {
                    std::hint::black_box(row.get_ref(0)?.as_blob()?);
                    n += 1;
                }
                Ok(n)
            })
            .await??
        }
        StoreConfig::Postgres { url, schema } => {
            let (mut client, connection) =
                tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            if let Some(schema) = schema {
                client
                    .batch_execute(&format!("SET search_path TO {schema}"))
                    .await?;
            }
            let tx = client.transaction().await?;
            let portal = tx.bind(SQL, &[]).await?;
            let mut n = 0u64;
            loop {
                let rows = tx.query_portal(&portal, 10_000).await?;
                if rows.is_empty() {
                    break;
                }
                for row in &rows {
                    let body: &[u8] = row.try_get(0)?;
                    std::hint::black_box(body);
                    n += 1;
                }
            }
            n
        }
    };
    Ok(rows as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// Total size of the files under `dir`.
fn directory_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
