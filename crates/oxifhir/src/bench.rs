//! `oxifhir bench`: create and read throughput with latency percentiles over HTTP, on SQLite and
//! PostgreSQL, each beside a baseline measured in the same run (a trivial handler on the same
//! HTTP stack and client). Prints a table; timings are never asserted anywhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use oxifhir_server::{FhirServer, ServerConfig, http};
use oxifhir_store::StoreConfig;

/// Flags of `oxifhir bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Resources created (and then read) per backend.
    #[arg(long, default_value_t = 5000)]
    pub resources: usize,
    /// Concurrent clients, comma-separated.
    #[arg(long, default_value = "1,8,32", value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// PostgreSQL URL to benchmark too (default: $OXIFHIR_TEST_POSTGRES, if set).
    #[arg(long, env = "OXIFHIR_BENCH_POSTGRES")]
    pub postgres: Option<String>,
    /// A shorter run: 1 000 resources, 1 and 32 clients.
    #[arg(long)]
    pub quick: bool,
}

/// One measured row.
struct Row {
    backend: String,
    what: String,
    clients: usize,
    requests: usize,
    per_sec: f64,
    p50: Duration,
    p95: Duration,
    p99: Duration,
    baseline: Option<f64>,
}

/// Runs the benchmark and prints the table.
pub async fn run(mut args: BenchArgs) -> anyhow::Result<()> {
    if args.quick {
        args.resources = 1000;
        args.clients = vec![1, 32];
    }
    let postgres = args
        .postgres
        .clone()
        .or_else(|| std::env::var("OXIFHIR_TEST_POSTGRES").ok());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;
    let mut rows = Vec::new();

    let baseline_url = start_baseline().await?;
    let mut baseline = std::collections::HashMap::new();
    for &c in &args.clients {
        let url = baseline_url.clone();
        let stats = drive(&client, args.resources, c, move |_| Req::Get(url.clone())).await?;
        baseline.insert(c, stats.per_sec);
        rows.push(stats.row("baseline", "trivial handler GET", c, None));
    }

    let dir = tempfile::tempdir()?;
    let mut backends = vec![(
        "sqlite",
        StoreConfig::Sqlite {
            dir: dir.path().to_path_buf(),
        },
    )];
    if let Some(url) = postgres {
        let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
        backends.push((
            "postgres",
            StoreConfig::Postgres {
                url,
                schema: Some(schema),
            },
        ));
    }
    for (name, config) in backends {
        let base = start_server(&config)
            .await
            .with_context(|| format!("starting the {name} server"))?;
        for &c in &args.clients {
            let url = format!("{base}/Patient");
            let stats = drive(&client, args.resources, c, move |i| {
                Req::Post(url.clone(), synthetic_patient(i))
            })
            .await?;
            rows.push(stats.row(name, "create Patient", c, baseline.get(&c).copied()));
            let all = list_ids(&client, &base).await?;
            let prefix = format!("{base}/Patient/");
            let stats = drive(&client, args.resources, c, move |i| {
                Req::Get(format!("{prefix}{}", all[i % all.len()]))
            })
            .await?;
            rows.push(stats.row(name, "read by id", c, baseline.get(&c).copied()));
        }
    }
    print_table(&rows);
    Ok(())
}

enum Req {
    Get(String),
    Post(String, Vec<u8>),
}

struct Stats {
    requests: usize,
    per_sec: f64,
    latencies: Vec<Duration>,
}

impl Stats {
    fn row(&self, backend: &str, what: &str, clients: usize, baseline: Option<f64>) -> Row {
        let pct = |p: f64| {
            let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies.get(i).copied().unwrap_or_default()
        };
        Row {
            backend: backend.to_string(),
            what: what.to_string(),
            clients,
            requests: self.requests,
            per_sec: self.per_sec,
            p50: pct(0.50),
            p95: pct(0.95),
            p99: pct(0.99),
            baseline,
        }
    }
}

/// Sends `total` requests from `clients` concurrent workers; fails on any non-2xx answer.
async fn drive(
    client: &reqwest::Client,
    total: usize,
    clients: usize,
    make: impl Fn(usize) -> Req + Send + Sync + 'static,
) -> anyhow::Result<Stats> {
    let next = Arc::new(AtomicUsize::new(0));
    let make = Arc::new(make);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (client, next, make) = (client.clone(), next.clone(), make.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let t = Instant::now();
                let response = match make(i) {
                    Req::Get(url) => client.get(url).send().await?,
                    Req::Post(url, body) => {
                        client
                            .post(url)
                            .header("content-type", "application/fhir+json")
                            .body(body)
                            .send()
                            .await?
                    }
                };
                let status = response.status();
                let _ = response.bytes().await?;
                anyhow::ensure!(status.is_success(), "request {i} answered {status}");
                latencies.push(t.elapsed());
            }
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    Ok(Stats {
        requests: total,
        per_sec: total as f64 / elapsed.max(1e-9),
        latencies,
    })
}

async fn list_ids(client: &reqwest::Client, base: &str) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut url = format!("{base}/Patient?_count=1000");
    loop {
        let page: serde_json::Value = client.get(&url).send().await?.json().await?;
        for e in page["entry"].as_array().cloned().unwrap_or_default() {
            if let Some(id) = e["resource"]["id"].as_str() {
                ids.push(id.to_string());
            }
        }
        let next = page["link"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
            .and_then(|l| l["url"].as_str())
            .map(str::to_string);
        match next {
            Some(n) => url = n,
            None => break,
        }
    }
    anyhow::ensure!(!ids.is_empty(), "no Patient to read");
    Ok(ids)
}

fn synthetic_patient(i: usize) -> Vec<u8> {
    let families = [
        "Smith", "Jones", "García", "Nguyen", "Müller", "Okafor", "Kowalski", "Tanaka",
    ];
    let givens = ["Ann", "Bo", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana"];
    let patient = serde_json::json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": format!("MRN{i:08}")}],
        "active": true,
        "name": [{"use": "official", "family": families[i % 8], "given": [givens[(i / 8) % 8]]}],
        "gender": if i.is_multiple_of(2) { "female" } else { "male" },
        "birthDate": format!("{}-{:02}-{:02}", 1930 + i % 90, 1 + i % 12, 1 + i % 28),
        "address": [{"line": [format!("{} Main St", i % 999)], "city": "Springfield", "postalCode": format!("{:05}", i % 99999)}],
    });
    serde_json::to_vec(&patient).unwrap_or_default()
}

async fn start_server(config: &StoreConfig) -> anyhow::Result<String> {
    let store = oxifhir_store::open(config).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/fhir", listener.local_addr()?);
    let server = FhirServer::new(
        store,
        ServerConfig {
            base_url: base.clone(),
            ..Default::default()
        },
    );
    let router = http::router(server);
    tokio::spawn(http::serve(listener, router, std::future::pending()));
    Ok(base)
}

async fn start_baseline() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/ping", listener.local_addr()?);
    let body = synthetic_patient(0);
    let router = axum::Router::new().route(
        "/ping",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/fhir+json")], body) }
        }),
    );
    tokio::spawn(http::serve(listener, router, std::future::pending()));
    Ok(url)
}

fn print_table(rows: &[Row]) {
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    println!(
        "| backend | operation | clients | requests | req/s | p50 ms | p95 ms | p99 ms | vs baseline |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let ratio = r
            .baseline
            .map(|b| format!("{:.2}", r.per_sec / b))
            .unwrap_or_else(|| "1.00".into());
        println!(
            "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} |",
            r.backend,
            r.what,
            r.clients,
            r.requests,
            r.per_sec,
            ms(r.p50),
            ms(r.p95),
            ms(r.p99),
            ratio
        );
    }
}
