//! Scenario: `$reindex` over the imported database, through the real operation on a server
//! with a job runtime, from kick-off until the job has finished:
//!
//! - one custom SearchParameter defined on every type (`Resource.id` as a token, one entry per
//!   resource), reindexed at system level: what defining a new parameter costs;
//! - every parameter of every type (`$reindex` without `url`): the whole index rebuilt.
//!
//! Both are in resources per second (`resourcesScanned` ÷ wall time), beside a raw keyset scan
//! of the same rows through the store (`Store::export_scan`, bodies read and dropped).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use oxifhir_jobs::RuntimeConfig;
use oxifhir_model::resource_type;
use oxifhir_server::{FhirServer, ServerConfig, http};
use oxifhir_store::jobs::JobState;
use oxifhir_store::{ExportFilter, ExportScan, Store};
use serde_json::{Value, json};

use super::{Env, Row};

/// The canonical of the parameter the first row reindexes.
const URL: &str = "http://oxifhir.dev/bench/SearchParameter/any-id";

/// Measures `$reindex`; see the module documentation.
pub async fn run(env: &mut Env) -> anyhow::Result<Vec<Row>> {
    env.base().await?;
    let store = env.store().context("the store")?;
    let (base, runtime) = start(store.clone()).await?;
    let raw = raw_scan(store.as_ref()).await?;
    let mut rows = Vec::new();

    let parameter = json!({"resourceType": "SearchParameter", "id": "bench-any-id", "url": URL,
        "name": "AnyId", "status": "active", "description": "Every resource's id, as a token",
        "code": "bench-any-id", "base": ["Resource"], "type": "token", "expression": "Resource.id"});
    let r = env
        .client
        .put(format!("{base}/SearchParameter/bench-any-id"))
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(&parameter)?)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "SearchParameter: {}", r.status());

    for (name, path) in [
        (
            "reindex one new parameter (all types)",
            format!("{base}/$reindex?url={URL}"),
        ),
        (
            "reindex every parameter (system)",
            format!("{base}/$reindex"),
        ),
    ] {
        let (scanned, elapsed) = reindex(env, store.as_ref(), &path).await?;
        let per_sec = scanned as f64 / elapsed.as_secs_f64().max(1e-9);
        rows.push(
            Row::new(env.backend, name, 1, scanned as usize, per_sec)
                .beside("raw keyset scan of the rows", Some(raw)),
        );
    }
    // Stopped, not dropped: its workers would otherwise go on claiming later scenarios' jobs.
    runtime.shutdown().await;
    Ok(rows)
}

/// A server over `store` with a job runtime (2 workers).
async fn start(store: Arc<dyn Store>) -> anyhow::Result<(String, oxifhir_jobs::RuntimeHandle)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/fhir", listener.local_addr()?);
    let server = FhirServer::new(
        store,
        ServerConfig {
            base_url: base.clone(),
            ..Default::default()
        },
    );
    let handle = server.job_runtime(RuntimeConfig::default()).start();
    tokio::spawn(http::serve(
        listener,
        http::router(server),
        std::future::pending(),
    ));
    Ok((base, handle))
}

/// Runs one reindex from kick-off to its end; the resources it scanned and the wall time.
async fn reindex(env: &Env, store: &dyn Store, url: &str) -> anyhow::Result<(u64, Duration)> {
    let started = Instant::now();
    let r = env
        .client
        .post(url)
        .header("prefer", "respond-async")
        .send()
        .await?;
    anyhow::ensure!(r.status() == 202, "kick-off {url}: {}", r.status());
    let status_url = r
        .headers()
        .get("content-location")
        .and_then(|v| v.to_str().ok())
        .context("kick-off without Content-Location")?
        .to_owned();
    let id = status_url.rsplit('/').next().unwrap_or_default().to_owned();
    let deadline = started + Duration::from_secs(3600);
    let job = loop {
        let job = store.jobs().job(&id).await?.context("the job vanished")?;
        if job.state.is_final() {
            break job;
        }
        anyhow::ensure!(Instant::now() < deadline, "reindex {id} took over an hour");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let elapsed = started.elapsed();
    anyhow::ensure!(
        job.state == JobState::Completed,
        "reindex {id} ended {:?}: {:?}",
        job.state,
        job.error
    );
    let result = env
        .client
        .get(format!("{status_url}/result"))
        .send()
        .await?
        .json::<Value>()
        .await?;
    let scanned = result["parameter"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "resourcesScanned"))
        .and_then(|p| p["valueUnsignedInt"].as_u64())
        .context("no resourcesScanned in the result")?;
    Ok((scanned, elapsed))
}

/// Resources per second of a keyset scan of every current resource through the store.
async fn raw_scan(store: &dyn Store) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut rows = 0usize;
    for t in resource_type::all() {
        let mut after_id = None;
        loop {
            let batch = store
                .export_scan(&ExportScan {
                    resource_type: (*t).to_owned(),
                    after_id: after_id.clone(),
                    up_to: None,
                    since: None,
                    cut: i64::MAX,
                    include_deleted: false,
                    filter: ExportFilter::All,
                    ids: None,
                    limit: 2000,
                    as_ndjson: false,
                })
                .await?;
            rows += batch.rows.len();
            if batch.last_id.is_some() {
                after_id = batch.last_id;
            }
            if batch.complete {
                break;
            }
        }
    }
    Ok(rows as f64 / started.elapsed().as_secs_f64().max(1e-9))
}
