//! Process crash tests of Bulk Data export, `$reindex` and `$expunge` on the job runtime: the real
//! `oxifhir serve` binary, a long (throttled) job, the process running it killed with SIGKILL,
//! and the job finished from its checkpoint — by a second process sharing the PostgreSQL
//! schema, or by the same SQLite database started again — with files equal to an
//! uninterrupted run's (export), with exact counts and every resource indexed (reindex), or
//! with exact counts and the data gone (expunge). An export to an S3-compatible bucket (a
//! local `moto_server`) is finished by another node too, and a node that took no part serves
//! every file.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Node, free_port};
use oxifhir_store::{Store, StoreConfig};
use serde_json::{Value, json};

/// Starts `oxifhir serve` with `db` flags, one worker, a 2 s lease and a slow export.
async fn start(db: &[String], exports: &Path, log: &Path) -> Node {
    start_with(db, exports.as_os_str(), &[], log).await
}

/// [`start`] with export files at `exports` (a directory or `s3://…`) and extra environment.
async fn start_with(
    db: &[String],
    exports: &std::ffi::OsStr,
    env: &[(&str, String)],
    log: &Path,
) -> Node {
    let mut args: Vec<OsString> = db.iter().map(OsString::from).collect();
    args.extend(["--workers", "1", "--job-lease", "2s", "--export-store"].map(OsString::from));
    args.push(exports.to_owned());
    for arg in [
        "--export-part-size",
        "20",
        "--export-batch",
        "10",
        "--export-throttle",
        "60ms",
        "--maintenance-batch",
        "10",
        "--maintenance-throttle",
        "100ms",
    ] {
        args.push(arg.into());
    }
    common::serve(&args, env, log).await
}

/// Two Provenance for each Observation of [`common::load_patients`]: `v{i}a` recorded in January, `v{i}b`
/// (the latest) in February.
async fn load_provenance(base: &str) {
    let mut entries = Vec::new();
    for i in 0..250 {
        for (suffix, recorded) in [("a", "2024-01-01T00:00:00Z"), ("b", "2024-02-01T00:00:00Z")] {
            let id = format!("v{i:03}{suffix}");
            entries.push(json!({"resource": {"resourceType": "Provenance", "id": id,
                "target": [{"reference": format!("Observation/o{i:03}")}], "recorded": recorded,
                "agent": [{"who": {"display": "loader"}}]},
                "request": {"method": "PUT", "url": format!("Provenance/{id}")}}));
        }
    }
    common::transaction(base, entries).await;
}

async fn kickoff(base: &str) -> String {
    kickoff_query(base, "_type=Patient,Observation").await
}

async fn kickoff_query(base: &str, query: &str) -> String {
    let r = reqwest::Client::new()
        .get(format!("{base}/$export?{query}"))
        .header("prefer", "respond-async")
        .send()
        .await
        .expect("kick-off");
    assert_eq!(r.status(), 202);
    let location = r.headers()["content-location"]
        .to_str()
        .expect("text")
        .to_owned();
    location.rsplit('/').next().expect("id").to_owned()
}

/// Waits until the job has checkpointed some work (its progress starts with `done` and is
/// not `done 0`); returns its worker's pid.
async fn running_worker(store: &dyn Store, id: &str, done: &str) -> u32 {
    for _ in 0..400 {
        if let Some(job) = store.jobs().job(id).await.expect("job")
            && let (Some(worker), Some(progress)) = (&job.worker, &job.progress)
            && progress.starts_with(done)
            && !progress.starts_with(&format!("{done}0 "))
        {
            let pid = worker
                .strip_prefix("pid")
                .and_then(|w| w.split('/').next())
                .and_then(|p| p.parse().ok());
            return pid.unwrap_or_else(|| panic!("worker {worker}"));
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the job made no progress");
}

/// Polls `{base}/_async/{id}` until the manifest; returns it.
async fn manifest(base: &str, id: &str) -> Value {
    let client = reqwest::Client::new();
    for _ in 0..120 {
        let r = client
            .get(format!("{base}/_async/{id}"))
            .send()
            .await
            .expect("poll");
        if r.status() == 200 {
            return r.json().await.expect("manifest");
        }
        assert_eq!(r.status(), 202, "poll of {id}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("export {id} did not finish");
}

/// `(type, file name, count, content)` of each output file, in manifest order.
async fn files(manifest: &Value) -> Vec<(String, String, u64, String)> {
    let client = reqwest::Client::new();
    let mut out = Vec::new();
    for item in manifest["output"].as_array().expect("output") {
        let url = item["url"].as_str().expect("url");
        let text = client
            .get(url)
            .send()
            .await
            .expect("file")
            .text()
            .await
            .expect("text");
        let name = url.rsplit('/').next().expect("name").to_owned();
        out.push((
            item["type"].as_str().expect("type").to_owned(),
            name,
            item["count"].as_u64().expect("count"),
            text,
        ));
    }
    out
}

/// Checks the files: 500 distinct resources, each once, counts equal to lines.
fn check(files: &[(String, String, u64, String)]) {
    check_count(files, 500);
}

/// Checks the files: `expected` distinct resources, each once, counts equal to lines.
fn check_count(files: &[(String, String, u64, String)], expected: usize) {
    let mut ids = std::collections::BTreeSet::new();
    for (t, _, count, text) in files {
        assert_eq!(text.lines().count() as u64, *count);
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).expect("line");
            assert_eq!(v["resourceType"], t.as_str());
            assert!(
                ids.insert(format!("{t}/{}", v["id"].as_str().expect("id"))),
                "{line}"
            );
        }
    }
    assert_eq!(ids.len(), expected);
}

struct Setup {
    db: Vec<String>,
    config: StoreConfig,
    exports: PathBuf,
    dir: tempfile::TempDir,
}

fn setup(db: Option<(String, String)>) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let exports = dir.path().join("exports");
    let (args, config) = match db {
        Some((url, schema)) => (
            vec![
                "--database".into(),
                url.clone(),
                "--database-schema".into(),
                schema.clone(),
            ],
            StoreConfig::Postgres {
                url,
                schema: Some(schema),
            },
        ),
        None => {
            let data = dir.path().join("db");
            (
                vec!["--data".into(), data.display().to_string()],
                StoreConfig::Sqlite { dir: data },
            )
        }
    };
    Setup {
        db: args,
        config,
        exports,
        dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_export_survives_a_killed_node() {
    let Some((url, schema)) = common::postgres_schema() else {
        return;
    };
    let s = setup(Some((url.clone(), schema.clone())));
    let mut a = start(&s.db, &s.exports, &s.dir.path().join("a.log")).await;
    let mut b = start(&s.db, &s.exports, &s.dir.path().join("b.log")).await;
    common::load_patients(&a.base, 250).await;
    let store = oxifhir_store::open(&s.config).await.expect("store");
    let id = kickoff(&a.base).await;
    let pid = running_worker(store.as_ref(), &id, "Exported ").await;
    let survivor = if pid == a.pid() {
        a.kill();
        &b
    } else {
        assert_eq!(pid, b.pid(), "the job runs on one of the two nodes");
        b.kill();
        &a
    };
    let resumed = manifest(&survivor.base, &id).await;
    let job = store.jobs().job(&id).await.expect("job").expect("exists");
    assert!(job.attempt >= 2, "resumed by another attempt");
    assert_eq!(
        job.worker.as_deref(),
        Some(format!("pid{}/0", survivor.child.id()).as_str())
    );
    let resumed = files(&resumed).await;
    check(&resumed);
    let again = kickoff(&survivor.base).await;
    let uninterrupted = files(&manifest(&survivor.base, &again).await).await;
    assert_eq!(resumed, uninterrupted);
    drop((a, b));
    if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_export_survives_a_restart() {
    let s = setup(None);
    let mut node = start(&s.db, &s.exports, &s.dir.path().join("1.log")).await;
    common::load_patients(&node.base, 250).await;
    let id = kickoff(&node.base).await;
    {
        let store = oxifhir_store::open(&s.config).await.expect("store");
        let pid = running_worker(store.as_ref(), &id, "Exported ").await;
        assert_eq!(pid, node.pid());
    }
    node.kill();
    let node = start(&s.db, &s.exports, &s.dir.path().join("2.log")).await;
    let resumed = manifest(&node.base, &id).await;
    let store = oxifhir_store::open(&s.config).await.expect("store");
    let job = store.jobs().job(&id).await.expect("job").expect("exists");
    assert!(job.attempt >= 2, "resumed by another attempt");
    let resumed = files(&resumed).await;
    check(&resumed);
    let again = kickoff(&node.base).await;
    let uninterrupted = files(&manifest(&node.base, &again).await).await;
    assert_eq!(resumed, uninterrupted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_export_of_latest_provenance_survives_a_restart() {
    let s = setup(None);
    let mut node = start(&s.db, &s.exports, &s.dir.path().join("1.log")).await;
    common::load_patients(&node.base, 250).await;
    load_provenance(&node.base).await;
    let query = "_type=Observation&includeAssociatedData=LatestProvenanceResources";
    let id = kickoff_query(&node.base, query).await;
    {
        // 250 Observations are written first: "Exported 3…" is inside the Provenance.
        let store = oxifhir_store::open(&s.config).await.expect("store");
        let pid = running_worker(store.as_ref(), &id, "Exported 3").await;
        assert_eq!(pid, node.pid());
    }
    node.kill();
    let node = start(&s.db, &s.exports, &s.dir.path().join("2.log")).await;
    let resumed = files(&manifest(&node.base, &id).await).await;
    let store = oxifhir_store::open(&s.config).await.expect("store");
    let job = store.jobs().job(&id).await.expect("job").expect("exists");
    assert!(job.attempt >= 2, "resumed by another attempt");
    check_count(&resumed, 500);
    for (t, _, _, text) in &resumed {
        if t == "Provenance" {
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).expect("line");
                let id = v["id"].as_str().expect("id");
                assert!(id.ends_with('b'), "only the latest Provenance: {id}");
            }
        }
    }
    let again = kickoff_query(&node.base, query).await;
    let uninterrupted = files(&manifest(&node.base, &again).await).await;
    assert_eq!(resumed, uninterrupted);
}

/// A local S3-compatible endpoint (`moto_server`) with one bucket, stopped on drop.
struct Moto {
    child: Child,
    endpoint: String,
    bucket: &'static str,
}

impl Moto {
    /// Starts `moto_server` (or `python3 -m moto.server`) on a free loopback port, or `None`
    /// when moto is not installed and `OXIFHIR_TEST_S3` is not `required` (`.ci/run` requires
    /// it).
    async fn start() -> Option<Moto> {
        let bucket = "oxifhir-exports";
        let client = reqwest::Client::new();
        let mut failures = Vec::new();
        for (program, prefix) in [
            ("moto_server", &[][..]),
            ("python3", &["-m", "moto.server"][..]),
        ] {
            let port = free_port();
            let spawned = Command::new(program)
                .args(prefix)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut moto = match spawned {
                Ok(child) => Moto {
                    child,
                    endpoint: format!("http://127.0.0.1:{port}"),
                    bucket,
                },
                Err(e) => {
                    failures.push(format!("{program}: {e}"));
                    continue;
                }
            };
            for _ in 0..300 {
                if let Ok(Some(status)) = moto.child.try_wait() {
                    failures.push(format!("{program} exited: {status}"));
                    break;
                }
                if let Ok(r) = client
                    .put(format!("{}/{bucket}", moto.endpoint))
                    .send()
                    .await
                {
                    assert!(r.status().is_success(), "create bucket: {}", r.status());
                    return Some(moto);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        if std::env::var("OXIFHIR_TEST_S3").as_deref() == Ok("required") {
            panic!("OXIFHIR_TEST_S3=required but moto cannot start: {failures:?}");
        }
        eprintln!("moto is not available ({failures:?}); skipping the S3 variant");
        None
    }

    /// The environment `oxifhir serve` needs to reach the endpoint.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// The keys of every object in the bucket.
    async fn keys(&self) -> Vec<String> {
        let text = reqwest::Client::new()
            .get(format!("{}/{}?list-type=2", self.endpoint, self.bucket))
            .send()
            .await
            .expect("list")
            .text()
            .await
            .expect("text");
        text.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_export_survives_a_killed_node_and_every_node_serves_its_files() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let postgres = std::env::var("OXIFHIR_TEST_POSTGRES").ok();
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let s = setup(postgres.clone().map(|url| (url, schema.clone())));
    let exports = std::ffi::OsString::from(format!("s3://{}/exports", moto.bucket));
    let env = moto.env();
    let log = |name: &str| s.dir.path().join(name);
    let mut a = start_with(&s.db, &exports, &env, &log("a.log")).await;
    common::load_patients(&a.base, 250).await;
    let id = kickoff(&a.base).await;
    let store = oxifhir_store::open(&s.config).await.expect("store");
    assert_eq!(
        running_worker(store.as_ref(), &id, "Exported ").await,
        a.pid()
    );
    a.kill();
    drop(store);
    // On PostgreSQL a second node takes the job over; SQLite has one node, started again.
    let b = start_with(&s.db, &exports, &env, &log("b.log")).await;
    let resumed = manifest(&b.base, &id).await;
    let keys = moto.keys().await;
    for item in resumed["output"].as_array().expect("output") {
        let name = item["url"]
            .as_str()
            .expect("url")
            .rsplit('/')
            .next()
            .expect("name");
        assert!(
            keys.contains(&format!("exports/{id}/{name}")),
            "{name} is in the bucket: {keys:?}"
        );
    }
    let resumed_files = files(&resumed).await;
    check(&resumed_files);
    let again = kickoff(&b.base).await;
    let uninterrupted = files(&manifest(&b.base, &again).await).await;
    assert_eq!(resumed_files, uninterrupted);
    if postgres.is_some() {
        // A node that took no part in the export serves its files from the bucket.
        let c = start_with(&s.db, &exports, &env, &log("c.log")).await;
        let via_c = resumed.to_string().replace(&b.base, &c.base);
        let via_c: Value = serde_json::from_str(&via_c).expect("manifest");
        assert_eq!(files(&via_c).await, resumed_files);
    }
    drop(b);
    if let Some(url) = postgres
        && let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
    {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
    }
}

/// A custom parameter on Patient's family name, defined after the data was loaded.
const FAMILY: &str = "http://example.org/SearchParameter/patient-fam";

async fn define_family(base: &str) {
    let parameter = json!({"resourceType": "SearchParameter", "id": "fam", "url": FAMILY,
        "name": "Fam", "status": "active", "description": "Family name", "code": "fam",
        "base": ["Patient"], "type": "string", "expression": "Patient.name.family"});
    let r = reqwest::Client::new()
        .put(format!("{base}/SearchParameter/fam"))
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(&parameter).expect("json"))
        .send()
        .await
        .expect("SearchParameter");
    assert!(
        r.status().is_success(),
        "{}",
        r.text().await.unwrap_or_default()
    );
}

async fn reindex_kickoff(base: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/Patient/$reindex?url={FAMILY}"))
        .header("prefer", "respond-async")
        .send()
        .await
        .expect("kick-off");
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let location = r.headers()["content-location"]
        .to_str()
        .expect("text")
        .to_owned();
    location.rsplit('/').next().expect("id").to_owned()
}

/// Polls `{base}/_async/{id}` until it redirects (the client follows the `303`); returns the
/// result.
async fn job_result(base: &str, id: &str) -> Value {
    let client = reqwest::Client::new();
    for _ in 0..120 {
        let r = client
            .get(format!("{base}/_async/{id}"))
            .send()
            .await
            .expect("poll");
        if r.status() == 200 {
            assert!(r.url().path().ends_with("/result"), "{}", r.url());
            return r.json().await.expect("Parameters");
        }
        assert_eq!(r.status(), 202, "poll of {id}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    panic!("job {id} did not finish");
}

/// A count of the reindex result (a parameter or a part of `processingSummary`).
fn reindex_count(result: &Value, name: &str) -> u64 {
    let params = result["parameter"].as_array().expect("parameter");
    params
        .iter()
        .chain(
            params
                .iter()
                .filter(|p| p["name"] == "processingSummary")
                .flat_map(|p| p["part"].as_array().cloned().unwrap_or_default())
                .collect::<Vec<_>>()
                .iter(),
        )
        .find(|p| p["name"] == name)
        .and_then(|p| p["valueUnsignedInt"].as_u64())
        .unwrap_or_else(|| panic!("{name} in {result}"))
}

/// Checks a resumed reindex: exact counts, and every Patient found by the new parameter
/// without the "not yet indexed" warning.
async fn check_reindex(base: &str, result: &Value) {
    assert_eq!(reindex_count(result, "resourcesScanned"), 250, "{result}");
    assert_eq!(
        reindex_count(result, "indexEntriesCreated"),
        250,
        "{result}"
    );
    assert_eq!(reindex_count(result, "resourcesIndexedSuccessfully"), 250);
    assert_eq!(reindex_count(result, "resourcesSkippedNoMatchingPath"), 0);
    let client = reqwest::Client::new();
    let bundle: Value = client
        .get(format!("{base}/Patient?fam=F&_count=500"))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("bundle");
    let entries = bundle["entry"].as_array().expect("entries");
    assert!(
        entries.iter().all(|e| e["search"]["mode"] == "match"),
        "no warning"
    );
    assert_eq!(entries.len(), 250);
}

/// The result of a job that another attempt finished.
async fn resumed_job(base: &str, store: &dyn Store, id: &str) -> Value {
    let result = job_result(base, id).await;
    let job = store.jobs().job(id).await.expect("job").expect("exists");
    assert!(job.attempt >= 2, "resumed by another attempt");
    result
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reindex_survives_a_restart() {
    let s = setup(None);
    let mut node = start(&s.db, &s.exports, &s.dir.path().join("1.log")).await;
    common::load_patients(&node.base, 250).await;
    define_family(&node.base).await;
    let id = reindex_kickoff(&node.base).await;
    {
        let store = oxifhir_store::open(&s.config).await.expect("store");
        let pid = running_worker(store.as_ref(), &id, "Indexed ").await;
        assert_eq!(pid, node.pid());
    }
    node.kill();
    let node = start(&s.db, &s.exports, &s.dir.path().join("2.log")).await;
    let store = oxifhir_store::open(&s.config).await.expect("store");
    let result = resumed_job(&node.base, store.as_ref(), &id).await;
    check_reindex(&node.base, &result).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reindex_survives_a_killed_node() {
    let Some((url, schema)) = common::postgres_schema() else {
        return;
    };
    let s = setup(Some((url.clone(), schema.clone())));
    let mut a = start(&s.db, &s.exports, &s.dir.path().join("a.log")).await;
    let mut b = start(&s.db, &s.exports, &s.dir.path().join("b.log")).await;
    common::load_patients(&a.base, 250).await;
    define_family(&a.base).await;
    let store = oxifhir_store::open(&s.config).await.expect("store");
    let id = reindex_kickoff(&a.base).await;
    let pid = running_worker(store.as_ref(), &id, "Indexed ").await;
    let survivor = if pid == a.pid() {
        a.kill();
        &b
    } else {
        assert_eq!(pid, b.pid(), "the job runs on one of the two nodes");
        b.kill();
        &a
    };
    let result = resumed_job(&survivor.base, store.as_ref(), &id).await;
    check_reindex(&survivor.base, &result).await;
    drop((a, b));
    if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
    }
}

/// Deletes the 250 Observations of [`common::load_patients`] in one transaction.
async fn delete_observations(base: &str) {
    let entries: Vec<Value> = (0..250)
        .map(|i| json!({"request": {"method": "DELETE", "url": format!("Observation/o{i:03}")}}))
        .collect();
    common::transaction(base, entries).await;
}

async fn expunge_kickoff(base: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!(
            "{base}/Observation/$expunge?expungeDeletedResources=true"
        ))
        .header("prefer", "respond-async")
        .send()
        .await
        .expect("kick-off");
    assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
    let location = r.headers()["content-location"]
        .to_str()
        .expect("text")
        .to_owned();
    location.rsplit('/').next().expect("id").to_owned()
}

/// Checks a resumed expunge: every version of the 250 deleted Observations counted once and
/// gone, the Patients untouched.
async fn check_expunge(base: &str, result: &Value) {
    assert_eq!(result["parameter"][0]["name"], "count", "{result}");
    assert_eq!(result["parameter"][0]["valueInteger"], 500, "{result}");
    let client = reqwest::Client::new();
    let history: Value = client
        .get(format!("{base}/Observation/_history"))
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("bundle");
    assert!(
        history["entry"].as_array().is_none_or(Vec::is_empty),
        "{history}"
    );
    let patients: Value = client
        .get(format!("{base}/Patient?_summary=count"))
        .send()
        .await
        .expect("search")
        .json()
        .await
        .expect("bundle");
    assert_eq!(patients["total"], 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_expunge_survives_a_restart() {
    let s = setup(None);
    let mut node = start(&s.db, &s.exports, &s.dir.path().join("1.log")).await;
    common::load_patients(&node.base, 250).await;
    delete_observations(&node.base).await;
    let id = expunge_kickoff(&node.base).await;
    {
        let store = oxifhir_store::open(&s.config).await.expect("store");
        let pid = running_worker(store.as_ref(), &id, "Expunged ").await;
        assert_eq!(pid, node.pid());
    }
    node.kill();
    let node = start(&s.db, &s.exports, &s.dir.path().join("2.log")).await;
    let store = oxifhir_store::open(&s.config).await.expect("store");
    let result = resumed_job(&node.base, store.as_ref(), &id).await;
    check_expunge(&node.base, &result).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_expunge_survives_a_killed_node() {
    let Some((url, schema)) = common::postgres_schema() else {
        return;
    };
    let s = setup(Some((url.clone(), schema.clone())));
    let mut a = start(&s.db, &s.exports, &s.dir.path().join("a.log")).await;
    let mut b = start(&s.db, &s.exports, &s.dir.path().join("b.log")).await;
    common::load_patients(&a.base, 250).await;
    delete_observations(&a.base).await;
    let store = oxifhir_store::open(&s.config).await.expect("store");
    let id = expunge_kickoff(&a.base).await;
    let pid = running_worker(store.as_ref(), &id, "Expunged ").await;
    let survivor = if pid == a.pid() {
        a.kill();
        &b
    } else {
        assert_eq!(pid, b.pid(), "the job runs on one of the two nodes");
        b.kill();
        &a
    };
    let result = resumed_job(&survivor.base, store.as_ref(), &id).await;
    check_expunge(&survivor.base, &result).await;
    drop((a, b));
    if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await;
    }
}
