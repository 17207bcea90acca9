//! Scenario: Appointment scheduling on a busy month.
//!
//! Set-up (not measured): a HealthcareService and a Schedule whose actor is in New York,
//! available on weekdays 08:00–18:00 local with 15-minute appointments on a 15-minute grid,
//! two of every three of whose June 2026 times are booked (busy Slots), plus
//! [`OTHER_SCHEDULES`] other Schedules as busy in the same month (so the Slot index holds
//! far more than the one Schedule's rows). Slots are stored with transaction Bundles.
//!
//! Rows:
//! - `$find` latency over the whole month (every free time, `_count=1000`) and over one day,
//!   one client, beside `GET Schedule` by id in the same run;
//! - bookings per second under contention: clients book July times on one Schedule, every
//!   time asked for by two clients at once (one wins, one gets `400`), and every time asked
//!   for by all clients at once; "per s" counts won bookings, the latency is of all
//!   attempts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};

use super::driver::{self, Req};
use super::{Env, Row};

/// Schedules other than the measured one, each as busy in the same month.
const OTHER_SCHEDULES: usize = 20;
/// Slots per transaction Bundle of the set-up.
const BUNDLE: usize = 500;

const PARAMS_URL: &str = "https://medplum.com/fhir/StructureDefinition/SchedulingParameters";
const SERVICE_REF_URL: &str = "https://medplum.com/fhir/service-type-reference";

/// Runs the scenario.
pub async fn run(env: &mut Env) -> anyhow::Result<Vec<Row>> {
    let base = env.base().await?;
    let client = env.client.clone();
    let busy = setup(&client, &base).await.context("scheduling set-up")?;
    let repeat = (env.requests / 20).max(20);

    let read = {
        let url = format!("{base}/Schedule/s0");
        driver::drive(&client, repeat, 1, move |_| Req::Get(url.clone())).await?
    };
    let baseline = ("GET Schedule by id", read.per_sec);
    let mut rows = Vec::new();
    for (name, start, end) in [
        (
            "$find over a month",
            "2026-06-01T00:00:00Z",
            "2026-07-01T00:00:00Z",
        ),
        (
            "$find over one day",
            "2026-06-10T00:00:00Z",
            "2026-06-11T00:00:00Z",
        ),
    ] {
        let url = find_url(&base, "s0", start, end);
        let found = proposals(&client, &url).await?.len();
        let stats = driver::drive(&client, repeat, 1, move |_| Req::Get(url.clone())).await?;
        let mut row = Row::new(
            env.backend,
            &format!("{name} ({busy} busy Slots, {found} proposals)"),
            1,
            stats.requests,
            stats.per_sec,
        )
        .beside(baseline.0, Some(baseline.1));
        row.latency = Some(stats.percentiles());
        rows.push(row);
    }

    // July proposals on s0 (nothing booked there yet), one day per measured row.
    let mut day = 1;
    for &clients in &env.clients {
        let mut contention = vec![2];
        if clients > 2 {
            contention.push(clients);
        }
        for contenders in contention {
            let start = format!("2026-07-{day:02}T00:00:00Z");
            let end = format!("2026-07-{:02}T00:00:00Z", day + 1);
            day += 1;
            let times = proposals(&client, &find_url(&base, "s0", &start, &end)).await?;
            anyhow::ensure!(!times.is_empty(), "no July proposals on {start}");
            let (won, attempts, elapsed, mut latencies) =
                contend(&client, &base, times, clients, contenders).await?;
            latencies.sort();
            let per_sec = won as f64 / elapsed.as_secs_f64().max(1e-9);
            let mut row = Row::new(
                env.backend,
                &format!("$book, {contenders} clients per time ({won} won of {attempts} attempts)"),
                clients,
                won,
                per_sec,
            )
            .beside(baseline.0, Some(baseline.1));
            row.latency = Some(
                driver::Stats {
                    requests: attempts,
                    per_sec,
                    latencies,
                }
                .percentiles(),
            );
            rows.push(row);
            // A weekend or an empty day ahead: skip to keep rows on working days.
            while matches!(day % 7, 4 | 5) {
                day += 1;
            }
        }
    }
    Ok(rows)
}

fn find_url(base: &str, schedule: &str, start: &str, end: &str) -> String {
    format!(
        "{base}/Appointment/$find?start={start}&end={end}&service-type-reference=HealthcareService/hs&schedule=Schedule/{schedule}&_count=1000"
    )
}

async fn proposals(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<Value>> {
    let response = client.get(url).send().await?;
    let status = response.status();
    let body: Value = serde_json::from_slice(&response.bytes().await?)?;
    anyhow::ensure!(status.is_success(), "GET {url} answered {status}: {body}");
    Ok(body["entry"]
        .as_array()
        .map(|e| e.iter().map(|x| x["resource"].clone()).collect())
        .unwrap_or_default())
}

/// `clients` workers book `times` so that each time is asked for by `contenders` requests
/// in a row; the number won, the attempts, the elapsed time and every attempt's latency.
async fn contend(
    client: &reqwest::Client,
    base: &str,
    times: Vec<Value>,
    clients: usize,
    contenders: usize,
) -> anyhow::Result<(usize, usize, Duration, Vec<Duration>)> {
    let attempts = times.len() * contenders;
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        times
            .iter()
            .map(|t| {
                serde_json::to_vec(&json!({"resourceType": "Parameters",
                    "parameter": [{"name": "appointment", "resource": t}]}))
                .unwrap_or_default()
            })
            .collect(),
    );
    let next = Arc::new(AtomicUsize::new(0));
    let won = Arc::new(AtomicUsize::new(0));
    let url = format!("{base}/Appointment/$book");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients.max(1) {
        let (client, next, won, bodies, url) = (
            client.clone(),
            next.clone(),
            won.clone(),
            bodies.clone(),
            url.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= attempts {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let t = Instant::now();
                let response = client
                    .post(&url)
                    .header("content-type", "application/fhir+json")
                    .body(bodies[i / contenders].clone())
                    .send()
                    .await?;
                let status = response.status().as_u16();
                let _ = response.bytes().await?;
                latencies.push(t.elapsed());
                match status {
                    201 => {
                        won.fetch_add(1, Ordering::Relaxed);
                    }
                    400 | 409 => {}
                    other => anyhow::bail!("$book answered {other}"),
                }
            }
        }));
    }
    let mut latencies = Vec::with_capacity(attempts);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    let won = won.load(Ordering::Relaxed);
    anyhow::ensure!(
        won == times.len(),
        "{won} bookings won for {} times: each time is booked exactly once",
        times.len()
    );
    Ok((won, attempts, elapsed, latencies))
}

/// Stores the service, the Schedules and June's busy Slots; the busy Slots of `s0`.
async fn setup(client: &reqwest::Client, base: &str) -> anyhow::Result<usize> {
    let mut resources = vec![json!({"resourceType": "HealthcareService", "id": "hs",
        "type": [{"coding": [{"system": "http://example.org/services", "code": "consult"}]}],
        "extension": [{"url": PARAMS_URL, "extension": [
            {"url": "duration", "valueDuration": {"value": 15, "unit": "min", "code": "min"}},
            {"url": "alignmentInterval", "valueDuration": {"value": 15, "unit": "min", "code": "min"}},
            {"url": "alignmentTimezone", "valueCode": "America/New_York"}]}]})];
    for s in 0..=OTHER_SCHEDULES {
        resources.push(json!({"resourceType": "Practitioner", "id": format!("dr{s}"),
            "extension": [{"url": "http://hl7.org/fhir/StructureDefinition/timezone", "valueCode": "America/New_York"}]}));
        let days: Vec<Value> = ["mon", "tue", "wed", "thu", "fri"]
            .iter()
            .map(|d| json!({"url": "daysOfWeek", "valueCode": d}))
            .collect();
        let mut available = days;
        available.push(json!({"url": "availableStartTime", "valueTime": "08:00:00"}));
        available.push(json!({"url": "availableEndTime", "valueTime": "18:00:00"}));
        resources.push(json!({"resourceType": "Schedule", "id": format!("s{s}"),
            "actor": [{"reference": format!("Practitioner/dr{s}")}],
            "serviceType": [{"extension": [{"url": SERVICE_REF_URL, "valueReference": {"reference": "HealthcareService/hs"}}]}],
            "extension": [{"url": PARAMS_URL, "extension": [
                {"url": "service", "valueReference": {"reference": "HealthcareService/hs"}},
                {"url": "availability", "extension": [{"url": "availableTime", "extension": available}]}]}]}));
    }
    for r in &resources {
        let url = format!(
            "{base}/{}/{}",
            r["resourceType"].as_str().unwrap_or_default(),
            r["id"].as_str().unwrap_or_default()
        );
        let response = client
            .put(url)
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(r)?)
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "set-up PUT failed");
    }
    // June 2026, weekdays 08:00–18:00 New York (EDT, UTC-4): two of every three quarter
    // hours busy.
    let june_first = 1_780_272_000_000i64;
    let mut slots = Vec::new();
    let mut busy_s0 = 0;
    for s in 0..=OTHER_SCHEDULES {
        for day in 0..30i64 {
            if matches!((day + 1) % 7, 6 | 0) {
                continue; // 2026-06-06 and 07 are a weekend
            }
            let opening = june_first + day * 86_400_000 + 12 * 3_600_000;
            for q in 0..40i64 {
                if q % 3 == 2 {
                    continue;
                }
                let start = opening + q * 900_000;
                let fmt = |ms: i64| oxifhir_model::Instant::from_millis(ms).to_string();
                slots.push(json!({"resourceType": "Slot", "schedule": {"reference": format!("Schedule/s{s}")},
                    "status": "busy", "start": fmt(start), "end": fmt(start + 900_000)}));
                if s == 0 {
                    busy_s0 += 1;
                }
            }
        }
    }
    for chunk in slots.chunks(BUNDLE) {
        let entries: Vec<Value> = chunk
            .iter()
            .map(|s| json!({"resource": s, "request": {"method": "POST", "url": "Slot"}}))
            .collect();
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let response = client
            .post(base)
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(&bundle)?)
            .send()
            .await?;
        let status = response.status();
        anyhow::ensure!(
            status.is_success(),
            "storing Slots answered {status}: {}",
            String::from_utf8_lossy(&response.bytes().await?)
        );
    }
    Ok(busy_s0)
}
