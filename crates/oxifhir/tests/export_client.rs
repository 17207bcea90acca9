//! `oxifhir export` end to end against an in-process oxifhir, on SQLite and (when
//! `OXIFHIR_TEST_POSTGRES` is set) PostgreSQL. The server's base URL points at a loopback
//! proxy in front of it, so every request of the client, files included, passes the proxy,
//! which records them and injects faults: a connection cut in the middle of a file, `429`
//! polls, a refused token, a server that ignores `Range`, a manifest whose count is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use oxifhir_jobs::{RuntimeConfig, RuntimeHandle};
use oxifhir_server::auth::{AuthConfig, SmartAuth};
use oxifhir_server::operations::export::files::ExportLocation;
use oxifhir_server::{AuthMode, ExportConfig, FhirServer, ServerConfig, http};
use oxifhir_store::StoreConfig;
use serde_json::{Value, json};

#[path = "export_client/proxy.rs"]
mod proxy;

use proxy::{Proxy, Seen, forward};

/// An oxifhir server behind a [`Proxy`]; `base` is the proxy's.
struct Served {
    base: String,
    /// The base URL of a server on the same store without auth (for the test's own requests).
    direct: String,
    proxy: Arc<Proxy>,
    _jobs: RuntimeHandle,
    _dir: tempfile::TempDir,
    cleanup: Option<(String, String)>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some((url, schema)) = self.cleanup.take() {
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok((client, conn)) =
                        tokio_postgres::connect(&url, tokio_postgres::NoTls).await
                    {
                        tokio::spawn(conn);
                        let _ = client
                            .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .await;
                    }
                });
            })
            .join()
            .ok();
        }
    }
}

/// The backends to run on: SQLite, and PostgreSQL when `OXIFHIR_TEST_POSTGRES` is set.
fn backends() -> Vec<&'static str> {
    let mut out = vec!["sqlite"];
    if std::env::var("OXIFHIR_TEST_POSTGRES").is_ok() {
        out.push("postgres");
    }
    out
}

async fn serve(backend: &str, auth: Option<AuthConfig>) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let mut cleanup = None;
    let store: Arc<dyn oxifhir_store::Store> = match backend {
        "sqlite" => oxifhir_store::open(&StoreConfig::Sqlite {
            dir: dir.path().join("db"),
        })
        .await
        .unwrap(),
        _ => {
            let url = std::env::var("OXIFHIR_TEST_POSTGRES").unwrap();
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            cleanup = Some((url.clone(), schema.clone()));
            oxifhir_store::open(&StoreConfig::Postgres {
                url,
                schema: Some(schema),
            })
            .await
            .expect("OXIFHIR_TEST_POSTGRES is set but PostgreSQL cannot be used")
        }
    };
    let server_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let seed_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", server_listener.local_addr().unwrap());
    let direct = format!("http://{}/fhir", seed_listener.local_addr().unwrap());
    let base = format!("http://{}/fhir", proxy_listener.local_addr().unwrap());
    let config = ServerConfig {
        base_url: base.clone(),
        export: ExportConfig {
            location: ExportLocation::Local(dir.path().join("exports")),
            // Several files per type.
            file_resources: 7,
            settle: std::time::Duration::from_millis(100),
            ..ExportConfig::default()
        },
        ..Default::default()
    };
    let mode = match auth {
        Some(auth) => AuthMode::Smart(Arc::new(SmartAuth::new(auth, &base))),
        None => AuthMode::None,
    };
    // The test writes its data through a second server on the same store, without auth and
    // without workers.
    let seeder = FhirServer::new(Arc::clone(&store), config.clone());
    tokio::spawn(http::serve(
        seed_listener,
        http::router(seeder),
        std::future::pending(),
    ));
    let server = FhirServer::new(store, config).with_auth(mode);
    let jobs = server
        .job_runtime(RuntimeConfig {
            workers: 2,
            ..RuntimeConfig::default()
        })
        .start();
    tokio::spawn(http::serve(
        server_listener,
        http::router(server),
        std::future::pending(),
    ));
    let proxy = Arc::new(Proxy::new(upstream));
    let router = axum::Router::new()
        .fallback(forward)
        .with_state(Arc::clone(&proxy));
    tokio::spawn(async move { axum::serve(proxy_listener, router).await });
    Served {
        base,
        direct,
        proxy,
        _jobs: jobs,
        _dir: dir,
        cleanup,
    }
}

/// Writes the test data straight to the server (not through the proxy): 12 patients with two
/// Observations each, a Group of p1–p3, an Organization outside every compartment.
async fn seed(s: &Served) {
    let client = reqwest::Client::new();
    let put = |body: Value| {
        let url = format!(
            "{}/{}/{}",
            s.direct,
            body["resourceType"].as_str().unwrap(),
            body["id"].as_str().unwrap()
        );
        let client = client.clone();
        async move {
            let r = client
                .put(url)
                .header("content-type", "application/fhir+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    };
    for i in 1..=12 {
        put(json!({"resourceType": "Patient", "id": format!("p{i}"), "name": [{"family": format!("Family{i}")}]})).await;
        for j in 1..=2 {
            put(
                json!({"resourceType": "Observation", "id": format!("o{i}-{j}"), "status": "final",
                "code": {"text": "weight"}, "subject": {"reference": format!("Patient/p{i}")},
                "valueQuantity": {"value": i * 10 + j}}),
            )
            .await;
        }
    }
    put(json!({"resourceType": "Group", "id": "g1", "type": "person", "actual": true,
        "member": [{"entity": {"reference": "Patient/p1"}}, {"entity": {"reference": "Patient/p2"}}, {"entity": {"reference": "Patient/p3"}}]}))
    .await;
    put(json!({"resourceType": "Organization", "id": "org1", "name": "Clinic"})).await;
}

/// `oxifhir export` run to its end: (success, stdout, stderr).
async fn export(args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_oxifhir"))
        .arg("export")
        .arg("--quiet")
        .args(args)
        .output()
        .await
        .expect("run oxifhir export");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `oxifhir export --server {s.base} --out {out} {extra…}`.
async fn export_to(s: &Served, out: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = out.to_str().unwrap();
    export(&[&["--server", s.base.as_str(), "--out", out][..], extra].concat()).await
}

/// The ids of every resource in the top-level NDJSON files of `dir`, by type; checks that
/// each file holds only its type and that no id repeats.
fn exported(dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if !name.ends_with(".ndjson") {
            continue;
        }
        let file_type = name.split('-').next().unwrap().to_owned();
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let resource: Value = serde_json::from_str(line).unwrap();
            assert_eq!(
                resource["resourceType"],
                file_type.as_str(),
                "{name}: {line}"
            );
            let id = resource["id"].as_str().unwrap().to_owned();
            assert!(
                found.entry(file_type.clone()).or_default().insert(id),
                "repeated in {name}: {line}"
            );
        }
    }
    found
}

fn ids(prefix: &str, range: std::ops::RangeInclusive<u32>, per: &[&str]) -> BTreeSet<String> {
    range
        .flat_map(|i| {
            if per.is_empty() {
                vec![format!("{prefix}{i}")]
            } else {
                per.iter().map(|j| format!("{prefix}{i}-{j}")).collect()
            }
        })
        .collect()
}

fn count(seen: &[Seen], method: &str, needle: &str) -> usize {
    seen.iter()
        .filter(|s| s.method == method && s.target.contains(needle))
        .count()
}

/// The status URL's path the proxy saw kicked off (from the first poll).
fn status_path(seen: &[Seen]) -> String {
    seen.iter()
        .find(|s| {
            s.method == "GET" && s.target.contains("/_async/") && !s.target.contains("/files/")
        })
        .map(|s| s.target.clone())
        .expect("a poll")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_each_level_completely_and_deletes_the_export() {
    for backend in backends() {
        let s = serve(backend, None).await;
        seed(&s).await;
        let out = tempfile::tempdir().unwrap();

        let system = out.path().join("system");
        let (ok, stdout, stderr) = export_to(&s, &system, &[]).await;
        assert!(ok, "{backend}: {stderr}");
        assert!(stdout.contains("exported 38 resources"), "{stdout}");
        let found = exported(&system);
        assert_eq!(found["Patient"], ids("p", 1..=12, &[]), "{backend}");
        assert_eq!(found["Observation"], ids("o", 1..=12, &["1", "2"]));
        assert_eq!(found["Group"], BTreeSet::from(["g1".to_owned()]));
        assert_eq!(found["Organization"], BTreeSet::from(["org1".to_owned()]));
        assert!(
            system.join("Observation-4.ndjson").exists(),
            "24 Observations in files of 7"
        );
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(system.join("manifest.json")).unwrap()).unwrap();
        assert_eq!(manifest["output"].as_array().unwrap().len(), 2 + 4 + 1 + 1);
        assert!(
            !system.join(".oxifhir-export.json").exists(),
            "the state is removed"
        );
        let seen = s.proxy.seen();
        let status = status_path(&seen);
        assert_eq!(count(&seen, "GET", "/fhir/$export?"), 1, "{seen:?}");
        assert_eq!(
            count(&seen, "DELETE", &status),
            1,
            "DELETE of the status URL: {seen:?}"
        );
        assert!(seen.iter().all(|s| !s.authorized), "no auth, no token");

        let patients = out.path().join("patients");
        let (ok, _, stderr) = export_to(
            &s,
            &patients,
            &["--patient-level", "--type", "Patient,Observation"],
        )
        .await;
        assert!(ok, "{stderr}");
        let found = exported(&patients);
        assert_eq!(found.keys().collect::<Vec<_>>(), ["Observation", "Patient"]);
        assert_eq!(found["Patient"], ids("p", 1..=12, &[]));
        assert_eq!(found["Observation"], ids("o", 1..=12, &["1", "2"]));
        assert!(count(&s.proxy.seen(), "GET", "/fhir/Patient/$export?") == 1);

        let group = out.path().join("group");
        let (ok, _, stderr) = export_to(
            &s,
            &group,
            &[
                "--group",
                "g1",
                "--type-filter",
                "Observation?value-quantity=gt12",
            ],
        )
        .await;
        assert!(ok, "{stderr}");
        let found = exported(&group);
        assert_eq!(found["Patient"], ids("p", 1..=3, &[]));
        let expected: BTreeSet<String> = ["o2-1", "o2-2", "o3-1", "o3-2"].map(String::from).into();
        assert_eq!(found["Observation"], expected, "the _typeFilter applies");
        assert!(!found.contains_key("Organization"));

        let posted = out.path().join("posted");
        let (ok, _, stderr) = export_to(
            &s,
            &posted,
            &["--group", "g1", "--patient", "p2", "--type", "Patient"],
        )
        .await;
        assert!(ok, "{stderr}");
        assert_eq!(exported(&posted)["Patient"], ids("p", 2..=2, &[]));
        assert_eq!(count(&s.proxy.seen(), "POST", "/fhir/Group/g1/$export"), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_download_resumes_with_a_range_request() {
    for backend in backends() {
        let s = serve(backend, None).await;
        seed(&s).await;
        {
            let mut faults = s.proxy.faults();
            faults.cut_files = 1;
            faults.cut_at = 100;
        }
        let out = tempfile::tempdir().unwrap();
        let (ok, _, stderr) =
            export_to(&s, out.path(), &["--type", "Patient", "--parallel", "1"]).await;
        assert!(ok, "{backend}: {stderr}");
        assert!(
            stderr.contains("the connection broke at byte 100"),
            "{stderr}"
        );
        assert_eq!(exported(out.path())["Patient"], ids("p", 1..=12, &[]));
        let seen = s.proxy.seen();
        let resumed: Vec<&Seen> = seen.iter().filter(|s| s.range.is_some()).collect();
        assert_eq!(resumed.len(), 1, "{seen:?}");
        assert_eq!(resumed[0].range.as_deref(), Some("bytes=100-"));
        assert_eq!(
            resumed[0].status, 206,
            "oxifhir serves the rest of the file"
        );
        assert!(
            !out.path().read_dir().unwrap().any(|e| e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".part"))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_is_continued_by_the_next_one() {
    let s = serve("sqlite", None).await;
    seed(&s).await;
    {
        let mut faults = s.proxy.faults();
        faults.cut_files = 1;
        faults.cut_at = 100;
    }
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().to_str().unwrap();
    let args = [
        "--server",
        &s.base,
        "--out",
        dir,
        "--type",
        "Patient",
        "--parallel",
        "1",
    ];
    let (ok, _, stderr) = export(&[&args[..], &["--retries", "0"]].concat()).await;
    assert!(!ok, "the first run gives up at the cut");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    assert!(out.path().join(".oxifhir-export.json").exists());
    assert_eq!(
        std::fs::metadata(out.path().join("Patient-1.ndjson.part"))
            .unwrap()
            .len(),
        100
    );

    let (ok, _, stderr) = export(&args).await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains("continuing the export"), "{stderr}");
    assert_eq!(exported(out.path())["Patient"], ids("p", 1..=12, &[]));
    let seen = s.proxy.seen();
    assert_eq!(
        count(&seen, "GET", "/fhir/$export?"),
        1,
        "one kick-off for both runs"
    );
    let ranges: Vec<(Option<&str>, u16)> = seen
        .iter()
        .filter(|s| s.range.is_some())
        .map(|s| (s.range.as_deref(), s.status))
        .collect();
    assert_eq!(ranges, [(Some("bytes=100-"), 206)]);
    assert_eq!(count(&seen, "DELETE", "/_async/"), 1);
    assert!(!out.path().join(".oxifhir-export.json").exists());

    // Another request into a directory holding an unfinished export is refused.
    let other = tempfile::tempdir().unwrap();
    let state = json!({"server": s.base, "request": {"level": "Patient"}, "status_url": format!("{}/_async/x", s.base)});
    std::fs::write(other.path().join(".oxifhir-export.json"), state.to_string()).unwrap();
    let (ok, _, stderr) = export_to(&s, other.path(), &[]).await;
    assert!(!ok);
    assert!(
        stderr.contains("unfinished export of another request"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_ignores_range_gets_the_file_again() {
    let s = serve("sqlite", None).await;
    seed(&s).await;
    {
        let mut faults = s.proxy.faults();
        faults.cut_files = 1;
        faults.cut_at = 100;
        faults.ignore_range = true;
    }
    let out = tempfile::tempdir().unwrap();
    let (ok, _, stderr) =
        export_to(&s, out.path(), &["--type", "Patient", "--parallel", "1"]).await;
    assert!(ok, "{stderr}");
    assert!(stderr.contains("did not resume at byte 100"), "{stderr}");
    assert_eq!(exported(out.path())["Patient"], ids("p", 1..=12, &[]));
    let seen = s.proxy.seen();
    let resumed: Vec<u16> = seen
        .iter()
        .filter(|s| s.range.is_some())
        .map(|s| s.status)
        .collect();
    assert_eq!(resumed, [200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_poll_is_waited_out_and_keep_leaves_the_export() {
    for backend in backends() {
        let s = serve(backend, None).await;
        seed(&s).await;
        s.proxy.faults().throttle_polls = 1;
        let out = tempfile::tempdir().unwrap();
        let (ok, _, stderr) = export_to(&s, out.path(), &["--type", "Observation", "--keep"]).await;
        assert!(ok, "{backend}: {stderr}");
        assert!(stderr.contains("answered 429"), "{stderr}");
        assert_eq!(
            exported(out.path())["Observation"],
            ids("o", 1..=12, &["1", "2"])
        );
        let seen = s.proxy.seen();
        let status = status_path(&seen);
        let polls: Vec<u16> = seen
            .iter()
            .filter(|x| x.method == "GET" && x.target == status)
            .map(|x| x.status)
            .collect();
        assert_eq!(polls.first(), Some(&429), "{polls:?}");
        assert_eq!(polls.last(), Some(&200), "{polls:?}");
        assert_eq!(
            count(&seen, "DELETE", "/_async/"),
            0,
            "--keep sends no DELETE"
        );
        let again = reqwest::get(format!("{}{}", s.direct.trim_end_matches("/fhir"), status))
            .await
            .unwrap();
        assert_eq!(again.status(), 200, "the export is still there");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_does_not_match_its_count_fails_the_export() {
    let s = serve("sqlite", None).await;
    seed(&s).await;
    s.proxy.faults().miscount = true;
    let out = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = export_to(&s, out.path(), &["--type", "Patient"]).await;
    assert!(!ok);
    assert!(
        stderr.contains(
            "do not match the manifest: Patient-1.ndjson has 6 lines, the manifest says 7"
        ),
        "{stderr}"
    );
    let seen = s.proxy.seen();
    assert_eq!(
        count(&seen, "DELETE", "/_async/"),
        0,
        "a failed export is left on the server"
    );
    assert!(
        out.path().join(".oxifhir-export.json").exists(),
        "and can be tried again"
    );
}

/// A P-384 key as PEM and its public JWK under `kid`.
fn ec_key(kid: &str) -> (String, Value) {
    use p384::pkcs8::EncodePrivateKey;
    let key = p384::SecretKey::random(&mut rsa::rand_core::OsRng);
    let pem = key
        .to_pkcs8_pem(p384::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string();
    public_jwk(pem, Some(kid))
}

/// An RSA key as PKCS#1 PEM and its public JWK under its thumbprint.
fn rsa_key() -> (String, Value) {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048).unwrap();
    let pem = key
        .to_pkcs1_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string();
    public_jwk(pem, None)
}

fn public_jwk(pem: String, kid: Option<&str>) -> (String, Value) {
    let credentials =
        oxifhir_bulk::auth::SmartCredentials::from_pem("x", &pem, kid.map(String::from), "s")
            .unwrap();
    (pem, credentials.public_jwk())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_backend_services_tokens_are_fetched_and_renewed() {
    let (ec_pem, ec_jwk) = ec_key("ec-1");
    // The RSA client's key is registered under its thumbprint, the client's default kid.
    let (rsa_pem, rsa_jwk) = rsa_key();
    let config = json!({
        "signing_secret": "test-secret-that-is-at-least-32-bytes-long",
        "clients": [
            {"client_id": "ec-client", "keys": [ec_jwk], "scopes": ["system/*.read"]},
            {"client_id": "rsa-client", "keys": [rsa_jwk], "scopes": ["system/Patient.read"]},
        ]
    });
    for backend in backends() {
        let auth = AuthConfig::parse(&config.to_string(), Path::new(".")).unwrap();
        let s = serve(backend, Some(auth)).await;
        let keys = tempfile::tempdir().unwrap();
        let ec = keys.path().join("ec.pem");
        let rsa = keys.path().join("rsa.pem");
        std::fs::write(&ec, &ec_pem).unwrap();
        std::fs::write(&rsa, &rsa_pem).unwrap();
        seed(&s).await;
        let out = tempfile::tempdir().unwrap();
        let (ok, _, stderr) = export_to(&s, out.path(), &["--type", "Patient"]).await;
        assert!(!ok, "without credentials the kick-off is refused");
        assert!(stderr.contains("401"), "{stderr}");
        let _ = std::fs::remove_file(out.path().join(".oxifhir-export.json"));
        s.proxy.faults().refuse_tokens = 1;
        let (ok, _, stderr) = export_to(
            &s,
            out.path(),
            &[
                "--type",
                "Patient",
                "--client-id",
                "ec-client",
                "--key",
                ec.to_str().unwrap(),
                "--kid",
                "ec-1",
            ],
        )
        .await;
        assert!(ok, "{backend}: {stderr}");
        assert_eq!(exported(out.path())["Patient"], ids("p", 1..=12, &[]));
        let seen = s.proxy.seen();
        assert_eq!(count(&seen, "GET", "/.well-known/smart-configuration"), 1);
        assert_eq!(
            count(&seen, "POST", "/fhir/auth/token"),
            2,
            "a new token after the 401: {seen:?}"
        );
        let files: Vec<&Seen> = seen
            .iter()
            .filter(|x| x.target.contains("/files/"))
            .collect();
        assert!(
            files.iter().all(|f| f.authorized && f.status == 200),
            "{files:?}"
        );
        assert!(
            seen.iter()
                .filter(|x| x.target.contains("/_async/"))
                .all(|x| x.authorized)
        );

        let rsa_out = tempfile::tempdir().unwrap();
        let (ok, _, stderr) = export_to(
            &s,
            rsa_out.path(),
            &[
                "--type",
                "Patient",
                "--client-id",
                "rsa-client",
                "--key",
                rsa.to_str().unwrap(),
                "--scope",
                "system/Patient.read",
            ],
        )
        .await;
        assert!(ok, "{backend}: {stderr}");
        assert_eq!(exported(rsa_out.path())["Patient"], ids("p", 1..=12, &[]));

        let (ok, _, stderr) = export_to(
            &s,
            &keys.path().join("x"),
            &["--client-id", "ec-client", "--key", rsa.to_str().unwrap()],
        )
        .await;
        assert!(!ok);
        assert!(stderr.contains("getting an access token"), "{stderr}");
    }
}
