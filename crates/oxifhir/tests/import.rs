//! `oxifhir import` end to end: bad lines, `--upsert` idempotence, resuming after an
//! interruption, and HTTP import giving the same data as direct import — on SQLite and, when
//! `OXIFHIR_TEST_POSTGRES` is set, on PostgreSQL.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use oxifhir_server::{FhirServer, ServerConfig, http};
use oxifhir_store::sqlite::SqliteStore;
use oxifhir_store::{SearchQuery, Store, StoreConfig};
use serde_json::{Value, json};

fn write_ndjson(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("data.ndjson");
    let mut text = String::new();
    for i in 0..25 {
        let p = json!({"resourceType": "Patient", "id": format!("p{i}"), "name": [{"family": format!("F{i}")}], "birthDate": "1970-01-01"});
        text.push_str(&p.to_string());
        text.push('\n');
        if i == 10 {
            text.push_str("{this is not json\n");
        }
    }
    text.push_str(
        &json!({"resourceType": "Patient", "id": "invalid", "active": "yes"}).to_string(),
    );
    text.push('\n');
    let o = json!({"resourceType": "Observation", "id": "o1", "status": "final", "code": {"text": "x"}, "subject": {"reference": "Patient/p1"}, "valueQuantity": {"value": 1.50}});
    text.push_str(&o.to_string().replace("1.5", "1.50"));
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    path
}

/// Database flags for a fresh database of each backend.
struct Db {
    args: Vec<String>,
    config: StoreConfig,
    _dir: tempfile::TempDir,
}

fn backends() -> Vec<Db> {
    let mut out = Vec::new();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("db");
    out.push(Db {
        args: vec!["--data".into(), data.display().to_string()],
        config: StoreConfig::Sqlite { dir: data },
        _dir: dir,
    });
    if let Ok(url) = std::env::var("OXIFHIR_TEST_POSTGRES") {
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        out.push(Db {
            args: vec![
                "--database".into(),
                url.clone(),
                "--database-schema".into(),
                schema.clone(),
            ],
            config: StoreConfig::Postgres {
                url,
                schema: Some(schema),
            },
            _dir: tempfile::tempdir().unwrap(),
        });
    }
    out
}

fn import(args: &[&str], extra: &[String], cwd: &Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_oxifhir"))
        .arg("import")
        .args(args)
        .args(extra)
        .arg("--quiet")
        .current_dir(cwd)
        .output()
        .expect("run oxifhir import");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn all_resources(store: &dyn Store) -> Vec<(String, String, Value)> {
    let page = store
        .search(&SearchQuery {
            count: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut out: Vec<(String, String, Value)> = page
        .resources
        .into_iter()
        .map(|r| {
            let mut v: Value = serde_json::from_slice(&r.body).unwrap();
            v.as_object_mut().unwrap().shift_remove("meta");
            (r.resource_type, r.id, v)
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_reported_and_upsert_is_idempotent() {
    for db in backends() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_ndjson(dir.path());
        let f = file.to_str().unwrap();
        let (ok, stdout, stderr) = import(&[f], &db.args, dir.path());
        assert!(ok, "{stderr}");
        assert!(
            stdout.contains("imported 26 resources (0 unchanged, 2 bad lines)"),
            "{stdout}"
        );
        assert!(
            stderr.contains("data.ndjson:12: malformed JSON"),
            "{stderr}"
        );
        assert!(
            stderr.contains("data.ndjson:27: Patient.active"),
            "{stderr}"
        );
        let (ok, stdout, stderr) = import(&[f], &db.args, dir.path());
        assert!(ok);
        assert!(
            stdout.contains("imported 0 resources (0 unchanged, 28 bad lines)"),
            "{stdout}"
        );
        assert!(stderr.contains("already exists"), "{stderr}");
        let (ok, stdout, _) = import(&[f, "--upsert"], &db.args, dir.path());
        assert!(ok);
        assert!(
            stdout.contains("imported 0 resources (26 unchanged, 2 bad lines)"),
            "{stdout}"
        );
        let store = oxifhir_store::open(&db.config).await.unwrap();
        let all = all_resources(store.as_ref()).await;
        assert_eq!(all.len(), 26);
        let obs = store.read("Observation", "o1").await.unwrap().unwrap();
        assert!(
            String::from_utf8(obs.body)
                .unwrap()
                .contains("\"value\":1.50")
        );
        assert_eq!(
            store
                .read("Patient", "p3")
                .await
                .unwrap()
                .unwrap()
                .version_id,
            1,
            "unchanged data is not rewritten"
        );
    }
}

/// A load writes its first batches without reading (the resources are presumed new); a
/// resource met again in a later batch must still be found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_repeated_in_a_later_batch_is_found() {
    let patient = |id: &str, family: &str| {
        json!({"resourceType": "Patient", "id": id, "name": [{"family": family}]}).to_string()
    };
    let lines = [
        patient("a", "First"),
        patient("b", "B"),
        patient("a", "Second"),
        patient("c", "C"),
        patient("a", "Second"),
    ];
    for upsert in [false, true] {
        for db in backends() {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("repeated.ndjson");
            std::fs::write(&file, lines.join("\n") + "\n").unwrap();
            let mut args = vec![file.to_str().unwrap(), "--batch-size", "2"];
            if upsert {
                args.push("--upsert");
            }
            let (ok, stdout, stderr) = import(&args, &db.args, dir.path());
            assert!(ok, "{stderr}");
            let store = oxifhir_store::open(&db.config).await.unwrap();
            let a = store.read("Patient", "a").await.unwrap().unwrap();
            let family =
                serde_json::from_slice::<Value>(&a.body).unwrap()["name"][0]["family"].clone();
            if upsert {
                assert!(
                    stdout.contains("imported 4 resources (1 unchanged, 0 bad lines)"),
                    "{stdout}"
                );
                assert_eq!((a.version_id, family), (2, json!("Second")));
            } else {
                assert!(
                    stdout.contains("imported 3 resources (0 unchanged, 2 bad lines)"),
                    "{stdout}"
                );
                assert!(stderr.contains("repeated.ndjson:3: Patient/a already exists"));
                assert!(stderr.contains("repeated.ndjson:5: Patient/a already exists"));
                assert_eq!((a.version_id, family), (1, json!("First")));
            }
            assert_eq!(all_resources(store.as_ref()).await.len(), 3);
        }
    }
}

/// Imported Slots carry their end times, and the store says so: a server starting on it
/// has no Slot to reindex.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_slots_need_no_reindexing_at_start() {
    for db in backends() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("Slot.ndjson");
        let slot = json!({"resourceType": "Slot", "id": "s1", "schedule": {"reference": "Schedule/x"},
            "status": "free", "start": "2026-01-05T09:00:00Z", "end": "2026-01-05T09:30:00Z"});
        std::fs::write(&file, format!("{slot}\n")).unwrap();
        let (ok, stdout, stderr) = import(&[file.to_str().unwrap()], &db.args, dir.path());
        assert!(ok, "{stderr}");
        assert!(stdout.contains("imported 1 resources"), "{stdout}");
        let store = oxifhir_store::open(&db.config).await.unwrap();
        let marks = store.indexed_params().await.unwrap();
        assert!(
            marks
                .iter()
                .any(|m| m.url == oxifhir_model::search_param::SLOT_END_URL),
            "{marks:?}"
        );
        let server = FhirServer::new(store, ServerConfig::default());
        let reindexed = oxifhir_server::operations::scheduling::index_slot_ends(&server)
            .await
            .unwrap();
        assert_eq!(reindexed, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_import_resumes_where_it_stopped() {
    for db in backends() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_ndjson(dir.path());
        let f = file.to_str().unwrap();
        let (ok, _, stderr) = import(
            &[f, "--batch-size", "4", "--fail-after-batches", "2"],
            &db.args,
            dir.path(),
        );
        assert!(!ok, "the injected failure stops the import");
        assert!(stderr.contains("--fail-after-batches"), "{stderr}");
        assert!(dir.path().join(".oxifhir-import-state.json").exists());
        let store = oxifhir_store::open(&db.config).await.unwrap();
        assert_eq!(
            all_resources(store.as_ref()).await.len(),
            8,
            "two batches of four committed"
        );
        let (ok, stdout, stderr) = import(&[f, "--batch-size", "4"], &db.args, dir.path());
        assert!(ok, "{stderr}");
        assert!(
            !stderr.contains("already exists"),
            "resumed after the committed batches: {stderr}"
        );
        assert!(stdout.contains("imported 18 resources"), "{stdout}");
        assert_eq!(all_resources(store.as_ref()).await.len(), 26);
        assert!(
            !dir.path().join(".oxifhir-import-state.json").exists(),
            "a finished import clears its state"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_import_gives_the_same_data_as_direct_import() {
    for db in backends() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_ndjson(dir.path());
        let f = file.to_str().unwrap();
        let (ok, _, stderr) = import(&[f], &db.args, dir.path());
        assert!(ok, "{stderr}");
        let direct = oxifhir_store::open(&db.config).await.unwrap();

        let served_dir = tempfile::tempdir().unwrap();
        let served = oxifhir_store::open(&StoreConfig::Sqlite {
            dir: served_dir.path().to_path_buf(),
        })
        .await
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/fhir", listener.local_addr().unwrap());
        let server = FhirServer::new(
            Arc::clone(&served),
            ServerConfig {
                base_url: base.clone(),
                ..Default::default()
            },
        );
        tokio::spawn(http::serve(
            listener,
            http::router(server),
            std::future::pending(),
        ));
        let state = dir.path().join("http-state.json");
        let (ok, stdout, stderr) = import(
            &[f, "--server", &base, "--state", state.to_str().unwrap()],
            &[],
            dir.path(),
        );
        assert!(ok, "{stderr}");
        assert!(stdout.contains("imported 26 resources"), "{stdout}");
        assert!(
            stderr.contains(":12: malformed JSON") && stderr.contains(":27: "),
            "{stderr}"
        );
        assert_eq!(
            all_resources(direct.as_ref()).await,
            all_resources(served.as_ref()).await
        );
        // Versions, write methods and index rows as the API stores them.
        if let StoreConfig::Sqlite { dir } = &db.config {
            let direct = SqliteStore::open(dir).await.unwrap();
            let served = SqliteStore::open(served_dir.path()).await.unwrap();
            for (t, id, _) in all_resources(&direct).await {
                let (a, b) = (
                    direct.read(&t, &id).await.unwrap().unwrap(),
                    served.read(&t, &id).await.unwrap().unwrap(),
                );
                assert_eq!(
                    (a.version_id, a.method),
                    (b.version_id, b.method),
                    "{t}/{id}"
                );
                assert_eq!(
                    direct.debug_index_counts(&t, &id).await.unwrap(),
                    served.debug_index_counts(&t, &id).await.unwrap(),
                    "{t}/{id}"
                );
            }
            assert_eq!(index_names(dir), index_names(served_dir.path()));
        }
    }
}

/// The names of the indexes of a SQLite database: a direct import defers some and must
/// have rebuilt them all.
fn index_names(dir: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(dir.join("oxifhir.db")).unwrap();
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' ORDER BY name")
        .unwrap();
    stmt.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<String>>>()
        .unwrap()
}

/// Resources in the SQLite database of `dir`, and its integrity and journal mode.
fn sqlite_state(dir: &Path) -> (i64, String, String) {
    let conn = rusqlite::Connection::open(dir.join("oxifhir.db")).unwrap();
    let count = conn
        .query_row("SELECT count(*) FROM resources", [], |r| r.get(0))
        .unwrap();
    let integrity = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    let mode = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    (count, integrity, mode)
}

/// A direct SQLite import writes through a rollback journal: killed in the middle of its
/// batches (SIGKILL, nothing flushed or closed), it leaves a database that the next opening
/// rolls back to its last commit and returns to WAL mode, and a second run completes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sqlite_import_leaves_a_consistent_database_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let synth = dir.path().join("synth");
    let out = Command::new(env!("CARGO_BIN_EXE_oxifhir"))
        .args(["synth", "--patients", "60", "--seed", "3", "--out"])
        .arg(&synth)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut expected = 0;
    for file in std::fs::read_dir(&synth).unwrap() {
        let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
        expected += text.lines().filter(|l| !l.trim().is_empty()).count() as i64;
    }
    let data = dir.path().join("db");
    let args = ["--data", data.to_str().unwrap(), "--batch-size", "50"];
    let state = dir.path().join(".oxifhir-import-state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_oxifhir"))
        .arg("import")
        .arg(&synth)
        .args(args)
        .arg("--quiet")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !state.exists() && std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(state.exists(), "killed after its first committed batch");
    // Bytes 18 and 19 of the header: 1 for a rollback journal, 2 for the WAL.
    let header = std::fs::read(data.join("oxifhir.db")).unwrap();
    assert_eq!(
        header[18..20],
        [1, 1],
        "killed during a load in rollback-journal mode"
    );

    // Opening the store plays the journal back and returns to WAL.
    let store = SqliteStore::open(&data).await.unwrap();
    drop(store);
    let (count, integrity, mode) = sqlite_state(&data);
    assert_eq!(integrity, "ok");
    assert_eq!(mode, "wal");
    assert!(
        count < expected,
        "killed before the end: {count} of {expected}"
    );

    let synth = synth.to_str().unwrap();
    let (ok, stdout, stderr) = import(&[synth], &args.map(String::from), dir.path());
    assert!(ok, "{stderr}");
    assert!(stdout.contains("imported"), "{stdout}");
    let (count, integrity, mode) = sqlite_state(&data);
    assert_eq!(
        (count, integrity.as_str(), mode.as_str()),
        (expected, "ok", "wal")
    );
}
