//! Process crash tests of writes: the real `oxifhir serve` binary under a write load (creates,
//! updates, transaction Bundles, asynchronous transactions) killed with SIGKILL, then started
//! again on the same database (SQLite directory or PostgreSQL schema). Every write that was
//! acknowledged with a 2xx is there at (at least) the acknowledged version, every transaction is
//! there whole or not at all, and every accepted asynchronous request is finished by the new
//! process.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Node;
use oxifhir_store::StoreConfig;
use serde_json::{Value, json};

/// Starts `oxifhir serve` on `db` with one worker, a 2 s lease and no rate limits.
async fn start(db: &[String], log: &Path) -> Node {
    let mut args: Vec<OsString> = db.iter().map(OsString::from).collect();
    for arg in [
        "--workers",
        "1",
        "--job-lease",
        "2s",
        "--kickoff-rate",
        "off",
        "--poll-rate",
        "off",
        "--poll-too-fast-ratio",
        "0",
        "--max-active-jobs",
        "100000",
    ] {
        args.push(arg.into());
    }
    common::serve(&args, &[], log).await
}

const MARKER_SYSTEM: &str = "urn:oxifhir:crash";

/// What the load was told was done, and what it tried.
#[derive(Debug, Default)]
struct Ledger {
    /// `(id, version)` of acknowledged creates.
    created: Vec<(String, u64)>,
    /// The highest acknowledged version of each updated resource.
    updated: BTreeMap<String, u64>,
    /// Markers of transactions answered `200`.
    transactions: Vec<String>,
    /// Markers of every transaction sent (answered or not).
    tried: Vec<String>,
    /// `(status URL, marker)` of asynchronous transactions answered `202`.
    jobs: Vec<(String, String)>,
    /// Answers that were neither 2xx nor a broken connection.
    refused: Vec<String>,
}

/// A transaction of three resources sharing `marker` as a tag: a Patient created with `POST`
/// and two Observations referring to it. Run as a job, a transaction may run again after a
/// crash; its creates have ids fixed at kick-off, so it still writes three.
fn transaction(marker: &str) -> Value {
    let meta = json!({"tag": [{"system": MARKER_SYSTEM, "code": marker}]});
    let patient = format!("urn:uuid:{}", uuid::Uuid::new_v4());
    let observation = |code: &str| {
        json!({"resource": {"resourceType": "Observation", "meta": meta, "status": "final",
            "code": {"text": code}, "subject": {"reference": patient}},
            "request": {"method": "POST", "url": "Observation"}})
    };
    json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": patient, "request": {"method": "POST", "url": "Patient"},
         "resource": {"resourceType": "Patient", "meta": meta, "name": [{"family": marker}]}},
        observation("a"),
        observation("b"),
    ]})
}

fn version_of(resource: &Value) -> u64 {
    resource["meta"]["versionId"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("meta.versionId")
}

/// One writer: creates, updates of its own Patient, transactions and asynchronous
/// transactions in turn, until the server stops answering.
async fn writer(base: String, w: usize, ledger: Arc<Mutex<Ledger>>) {
    let client = reqwest::Client::new();
    let own = format!("u{w}");
    for i in 0.. {
        let (request, step) = match i % 4 {
            0 => (
                client.post(format!("{base}/Patient")).body(
                    json!({"resourceType": "Patient", "name": [{"family": format!("c{w}-{i}")}]})
                        .to_string(),
                ),
                0,
            ),
            1 => (
                client.put(format!("{base}/Patient/{own}")).body(
                    json!({"resourceType": "Patient", "id": own, "name": [{"family": format!("v{i}")}]})
                        .to_string(),
                ),
                1,
            ),
            2 => {
                let marker = format!("t{w}-{i}");
                ledger.lock().expect("ledger").tried.push(marker.clone());
                (
                    client
                        .post(&base)
                        .body(transaction(&marker).to_string()),
                    2,
                )
            }
            _ => {
                let marker = format!("a{w}-{i}");
                ledger.lock().expect("ledger").tried.push(marker.clone());
                (
                    client
                        .post(&base)
                        .header("prefer", "respond-async")
                        .body(transaction(&marker).to_string()),
                    3,
                )
            }
        };
        let sent = request
            .header("content-type", "application/fhir+json")
            .send()
            .await;
        let Ok(response) = sent else {
            return;
        };
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("content-location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let Ok(body) = response.bytes().await else {
            return;
        };
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mut ledger = ledger.lock().expect("ledger");
        match (step, status) {
            (0, 201) => {
                let id = body["id"].as_str().expect("id").to_owned();
                ledger.created.push((id, version_of(&body)));
            }
            (1, 200 | 201) => {
                ledger.updated.insert(own.clone(), version_of(&body));
            }
            (2, 200) => ledger.transactions.push(format!("t{w}-{i}")),
            (3, 202) => ledger
                .jobs
                .push((location.expect("Content-Location"), format!("a{w}-{i}"))),
            _ => ledger.refused.push(format!("step {step}: {status} {body}")),
        }
    }
}

/// Resources tagged `marker`.
async fn tagged(client: &reqwest::Client, base: &str, marker: &str) -> u64 {
    let r = client
        .get(format!(
            "{base}?_type=Patient,Observation&_tag={MARKER_SYSTEM}|{marker}&_summary=count"
        ))
        .send()
        .await
        .expect("search");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    v["total"].as_u64().expect("total")
}

/// Runs the load on a node of `db`, kills it once enough has been acknowledged, starts it
/// again and checks every acknowledgement.
async fn kill_during_writes(db: Vec<String>, config: StoreConfig, dir: &Path) {
    let node = start(&db, &dir.join("1.log")).await;
    let old_base = node.base.clone();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let writers: Vec<_> = (0..4)
        .map(|w| tokio::spawn(writer(node.base.clone(), w, Arc::clone(&ledger))))
        .collect();
    for _ in 0..600 {
        {
            let l = ledger.lock().expect("ledger");
            if l.transactions.len() >= 20 && l.jobs.len() >= 20 && l.created.len() >= 20 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut node = node;
    node.kill();
    for w in writers {
        w.await.expect("writer");
    }
    let ledger = Arc::try_unwrap(ledger)
        .expect("writers are done")
        .into_inner()
        .expect("ledger");
    assert!(
        ledger.refused.is_empty(),
        "only 2xx before the kill: {:?}",
        ledger.refused
    );
    assert!(ledger.transactions.len() >= 20 && ledger.jobs.len() >= 20);
    // How many accepted jobs the killed process left unfinished (for the record).
    let unfinished = {
        let store = oxifhir_store::open(&config).await.expect("store");
        let mut n = 0;
        for (url, _) in &ledger.jobs {
            let id = url.rsplit('/').next().expect("id");
            let job = store
                .jobs()
                .job(id)
                .await
                .expect("job")
                .expect("accepted job");
            n += usize::from(!job.state.is_final());
        }
        n
    };
    let node = start(&db, &dir.join("2.log")).await;
    let base = &node.base;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for (id, version) in &ledger.created {
        let r = client
            .get(format!("{base}/Patient/{id}/_history/{version}"))
            .send()
            .await
            .expect("vread");
        assert_eq!(r.status(), 200, "acknowledged create Patient/{id}");
    }
    for (id, version) in &ledger.updated {
        let r = client
            .get(format!("{base}/Patient/{id}"))
            .send()
            .await
            .expect("read");
        assert_eq!(r.status(), 200, "acknowledged update Patient/{id}");
        let now = version_of(&r.json().await.expect("json"));
        assert!(
            now >= *version,
            "Patient/{id} is at {now}, {version} was acknowledged"
        );
    }
    for marker in &ledger.tried {
        let n = tagged(&client, base, marker).await;
        assert!(
            n == 0 || n == 3,
            "transaction {marker} is half applied: {n} of 3"
        );
    }
    for marker in &ledger.transactions {
        assert_eq!(
            tagged(&client, base, marker).await,
            3,
            "acknowledged {marker}"
        );
    }
    // Every accepted asynchronous transaction is finished by the new process.
    for (url, marker) in &ledger.jobs {
        // The new process listens on another port.
        let url = &url.replace(&old_base, base);
        let mut finished = false;
        for _ in 0..600 {
            let r = client.get(url).send().await.expect("poll");
            match r.status().as_u16() {
                202 => tokio::time::sleep(Duration::from_millis(100)).await,
                303 => {
                    finished = true;
                    break;
                }
                other => panic!("poll of {url}: {other}"),
            }
        }
        assert!(finished, "{url} did not finish after the restart");
        let result = client
            .get(format!("{url}/result"))
            .send()
            .await
            .expect("result");
        assert_eq!(result.status(), 200, "{marker}");
        assert_eq!(tagged(&client, base, marker).await, 3, "{marker}");
    }
    eprintln!(
        "acknowledged before the kill: {} creates, {} updated resources, {} transactions, {} jobs ({unfinished} unfinished at the kill; {} transactions tried)",
        ledger.created.len(),
        ledger.updated.len(),
        ledger.transactions.len(),
        ledger.jobs.len(),
        ledger.tried.len(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_keeps_every_acknowledged_write_through_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("db");
    kill_during_writes(
        vec!["--data".into(), data.display().to_string()],
        StoreConfig::Sqlite { dir: data },
        dir.path(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_keeps_every_acknowledged_write_through_sigkill() {
    let Some((url, schema)) = common::postgres_schema() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    kill_during_writes(
        vec![
            "--database".into(),
            url.clone(),
            "--database-schema".into(),
            schema.clone(),
        ],
        StoreConfig::Postgres {
            url: url.clone(),
            schema: Some(schema.clone()),
        },
        dir.path(),
    )
    .await;
    if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
    }
}
