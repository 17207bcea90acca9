//! The HTTP side of the benchmark: the server under test and a trivial-handler baseline on the
//! same axum/hyper stack, and a load driver that sends requests from N concurrent clients and
//! measures throughput and latency.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use oxifhir_server::{FhirServer, ServerConfig, http};
use oxifhir_store::Store;

/// One request to send.
pub enum Req {
    /// `GET url`.
    Get(String),
    /// `GET url` with `Prefer: respond-async` (answered `202`).
    GetAsync(String),
    /// `POST url` with a FHIR JSON body.
    Post(String, Vec<u8>),
    /// `PUT url` with a FHIR JSON body.
    Put(String, Vec<u8>),
}

/// What a run of requests measured.
pub struct Stats {
    /// Requests sent (all answered 2xx).
    pub requests: usize,
    /// Requests per second over the whole run.
    pub per_sec: f64,
    /// Sorted latencies.
    pub latencies: Vec<Duration>,
}

impl Stats {
    /// p50, p95, p99.
    pub fn percentiles(&self) -> [Duration; 3] {
        [0.50, 0.95, 0.99].map(|p| {
            let i = ((self.latencies.len() as f64 - 1.0) * p).round() as usize;
            self.latencies.get(i).copied().unwrap_or_default()
        })
    }
}

/// Sends `total` requests from `clients` concurrent workers; fails on any non-2xx answer.
pub async fn drive(
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
                let request = match make(i) {
                    Req::Get(url) => client.get(url),
                    Req::GetAsync(url) => client.get(url).header("prefer", "respond-async"),
                    Req::Post(url, body) => client.post(url).body(body),
                    Req::Put(url, body) => client.put(url).body(body),
                };
                let response = request
                    .header("content-type", "application/fhir+json")
                    .send()
                    .await?;
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

/// Serves `store` on an ephemeral loopback port; returns the FHIR base URL.
pub async fn start_server(store: Arc<dyn Store>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}/fhir", listener.local_addr()?);
    let server = FhirServer::new(
        store,
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
    Ok(base)
}

/// A trivial handler answering `GET` with a fixed Patient-sized body; returns its URL.
pub async fn start_baseline() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/ping", listener.local_addr()?);
    let body = synthetic_patient(0, None);
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

/// A small valid Patient, different for each `i`, with `id` when given.
pub fn synthetic_patient(i: usize, id: Option<&str>) -> Vec<u8> {
    let families = [
        "Smith", "Jones", "García", "Nguyen", "Müller", "Okafor", "Kowalski", "Tanaka",
    ];
    let givens = ["Ann", "Bo", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana"];
    let mut patient = serde_json::json!({
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": format!("MRN{i:08}")}],
        "active": true,
        "name": [{"use": "official", "family": families[i % 8], "given": [givens[(i / 8) % 8]]}],
        "gender": if i.is_multiple_of(2) { "female" } else { "male" },
        "birthDate": format!("{}-{:02}-{:02}", 1930 + i % 90, 1 + i % 12, 1 + i % 28),
        "address": [{"line": [format!("{} Main St", i % 999)], "city": "Springfield", "postalCode": format!("{:05}", i % 99999)}],
    });
    if let (Some(id), Some(map)) = (id, patient.as_object_mut()) {
        map.insert("id".into(), id.into());
    }
    serde_json::to_vec(&patient).unwrap_or_default()
}
