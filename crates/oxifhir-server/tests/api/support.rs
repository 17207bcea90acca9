//! The test harness: a server per test on a fresh database, an HTTP client, and the
//! `fhir_test!` macro that runs a test body on both backends.

use std::sync::Arc;

use oxifhir_jobs::{RuntimeConfig, RuntimeHandle};
use oxifhir_server::asynchronous::AsyncConfig;
use oxifhir_server::auth::{AuthConfig, SmartAuth};
use oxifhir_server::operations::export::files::ExportLocation;
use oxifhir_server::{AuthMode, FhirServer, ServerConfig, http};
use oxifhir_server::{ExportConfig, MaintenanceConfig};
use oxifhir_store::StoreConfig;
use serde_json::Value;

/// A running server and a client for it.
pub struct TestServer {
    pub base: String,
    pub client: reqwest::Client,
    /// The directory export files are written to.
    pub export_dir: std::path::PathBuf,
    /// The server behind `base` (for hooks that have no HTTP interface yet).
    pub server: FhirServer,
    /// Its store.
    pub store: Arc<dyn oxifhir_store::Store>,
    cleanup: Option<(String, String)>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    jobs: Option<RuntimeHandle>,
    _dir: Option<tempfile::TempDir>,
}

/// How a test server is set up.
#[derive(Debug, Clone)]
pub struct TestOptions {
    /// Job workers (0: jobs stay queued).
    pub workers: usize,
    pub asynchronous: AsyncConfig,
    /// `Some`: run with `--auth smart` and this configuration.
    pub auth: Option<AuthConfig>,
    /// Export settings; the location is replaced by a directory of the test's own.
    pub export: ExportConfig,
    /// `$reindex` and `$expunge` settings.
    pub maintenance: MaintenanceConfig,
    /// How long a client may take to send headers and body.
    pub read_timeout: std::time::Duration,
    /// `--metrics-token`.
    pub metrics_token: Option<String>,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            workers: 2,
            asynchronous: AsyncConfig::default(),
            auth: None,
            export: ExportConfig {
                settle: std::time::Duration::from_millis(100),
                ..ExportConfig::default()
            },
            maintenance: MaintenanceConfig::default(),
            read_timeout: std::time::Duration::from_secs(60),
            metrics_token: None,
        }
    }
}

/// A response read fully.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl TestServer {
    /// A server on a fresh SQLite database in a temporary directory, set up as `options` say.
    pub async fn sqlite_with(options: TestOptions) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = StoreConfig::Sqlite {
            dir: dir.path().to_path_buf(),
        };
        Self::start(config, "sqlite", options, dir).await
    }

    /// A server on a fresh PostgreSQL schema, or `None` when `OXIFHIR_TEST_POSTGRES` is not
    /// set. Panics when it is set and the database cannot be reached: the suite must fail,
    /// not skip.
    pub async fn postgres_with(options: TestOptions) -> Option<Self> {
        let Ok(url) = std::env::var("OXIFHIR_TEST_POSTGRES") else {
            eprintln!("OXIFHIR_TEST_POSTGRES is not set; skipping the PostgreSQL variant");
            return None;
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let config = StoreConfig::Postgres {
            url: url.clone(),
            schema: Some(schema.clone()),
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Self::start(config, "postgres", options, dir).await;
        s.cleanup = Some((url, schema));
        Some(s)
    }

    async fn start(
        config: StoreConfig,
        backend: &'static str,
        options: TestOptions,
        dir: tempfile::TempDir,
    ) -> Self {
        let export_dir = dir.path().join("exports");
        // Every condition with a match is probed row by row, as on large databases (the
        // membership path runs for conditions matching nothing, and in the store's own tests).
        let store: Arc<dyn oxifhir_store::Store> = match &config {
            StoreConfig::Sqlite { dir } => Arc::new(
                oxifhir_store::sqlite::SqliteStore::open(dir)
                    .await
                    .expect("cannot open the sqlite store")
                    .with_probe_from(1),
            ),
            StoreConfig::Postgres { url, schema } => Arc::new(
                oxifhir_store::postgres::PostgresStore::open(url, schema.as_deref())
                    .await
                    .unwrap_or_else(|e| panic!("cannot open the {backend} store: {e}"))
                    .with_probe_from(1),
            ),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let base = format!("http://{addr}/fhir");
        let server_config = ServerConfig {
            base_url: base.clone(),
            max_body_bytes: 1024 * 1024,
            read_timeout: options.read_timeout,
            asynchronous: options.asynchronous.clone(),
            export: ExportConfig {
                location: ExportLocation::Local(export_dir.clone()),
                ..options.export.clone()
            },
            maintenance: options.maintenance.clone(),
            metrics_token: options
                .metrics_token
                .as_deref()
                .and_then(oxifhir_server::observability::endpoint::MetricsToken::new),
            ..Default::default()
        };
        let auth = match options.auth.clone() {
            Some(auth) => AuthMode::Smart(Arc::new(SmartAuth::new(auth, &base))),
            None => AuthMode::None,
        };
        let server = FhirServer::new(Arc::clone(&store), server_config).with_auth(auth);
        let jobs = server
            .job_runtime(RuntimeConfig {
                workers: options.workers,
                cancel_check: std::time::Duration::from_millis(50),
                ..RuntimeConfig::default()
            })
            .start();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let router = http::router(server.clone());
        let read_timeout = options.read_timeout;
        tokio::spawn(async move {
            let _ = http::serve_with(listener, router, read_timeout, async {
                let _ = rx.await;
            })
            .await;
        });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        TestServer {
            base,
            client,
            export_dir,
            server,
            store,
            cleanup: None,
            shutdown: Some(tx),
            jobs: Some(jobs),
            _dir: Some(dir),
        }
    }

    /// A new server on the same store, as after a restart: nothing but the database is
    /// shared with this one.
    pub fn restarted(&self) -> FhirServer {
        FhirServer::new(Arc::clone(&self.store), self.server.config().clone())
    }

    /// Stops the server and drops the PostgreSQL schema.
    pub async fn finish(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(jobs) = self.jobs.take() {
            jobs.shutdown().await;
        }
        if let Some((url, schema)) = self.cleanup.take()
            && let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
        {
            tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await;
        }
    }

    /// `{base}/{path}`, or `path` itself when it is an absolute URL.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else if path.is_empty() {
            self.base.clone()
        } else {
            format!("{}/{}", self.base, path.trim_start_matches('/'))
        }
    }

    /// Sends a request with optional headers and body.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.expect("body").to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `GET`.
    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], None).await
    }

    /// A request with a FHIR JSON body.
    pub async fn with_json(
        &self,
        method: &str,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut all = vec![("content-type", "application/fhir+json")];
        all.extend_from_slice(headers);
        self.send(
            method,
            path,
            &all,
            Some(serde_json::to_vec(body).expect("json")),
        )
        .await
    }

    /// `POST` a FHIR JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.with_json("POST", path, body, &[]).await
    }

    /// `PUT` a FHIR JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.with_json("PUT", path, body, &[]).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str) -> Reply {
        self.send("DELETE", path, &[], None).await
    }

    /// Creates a resource and returns it as stored (panics unless `201`).
    pub async fn create(&self, body: &Value) -> Value {
        let t = body["resourceType"].as_str().expect("resourceType");
        let r = self.post(t, body).await;
        assert_eq!(r.status, 201, "create failed: {}", r.text());
        r.json()
    }
}

/// Defines a test that runs on SQLite and on PostgreSQL, optionally with
/// `options = <TestOptions expression>;` before the function.
macro_rules! fhir_test {
    ($(#[$meta:meta])* async fn $name:ident($s:ident: &TestServer) $body:block) => {
        fhir_test!(options = TestOptions::default(); $(#[$meta])* async fn $name($s: &TestServer) $body);
    };
    (options = $options:expr; $(#[$meta:meta])* async fn $name:ident($s:ident: &TestServer) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[allow(unused_imports)]
            use crate::support::*;

            async fn run($s: &TestServer) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let s = TestServer::sqlite_with($options).await;
                run(&s).await;
                s.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                if let Some(s) = TestServer::postgres_with($options).await {
                    run(&s).await;
                    s.finish().await;
                }
            }
        }
    };
}

/// The first issue's `details.text` of an OperationOutcome body.
pub fn outcome_text(reply: &Reply) -> String {
    let v = reply.json();
    assert_eq!(
        v["resourceType"], "OperationOutcome",
        "not an OperationOutcome: {v}"
    );
    v["issue"][0]["details"]["text"]
        .as_str()
        .unwrap_or("")
        .to_string()
}
