//! Scenario: `POST` of new Patients at each client count, beside the trivial handler.

use super::driver::{self, Req};
use super::{Env, Row};

/// Creates `requests` Patients at each client count; one row per count.
pub async fn run(env: &mut Env) -> anyhow::Result<Vec<Row>> {
    let url = format!("{}/Patient", env.base().await?);
    let mut rows = Vec::new();
    for &c in &env.clients.clone() {
        let url = url.clone();
        let stats = driver::drive(&env.client, env.requests, c, move |i| {
            Req::Post(url.clone(), driver::synthetic_patient(i, None))
        })
        .await?;
        let mut row = Row::new(
            env.backend,
            "create Patient",
            c,
            stats.requests,
            stats.per_sec,
        )
        .beside("trivial handler GET", env.http_baseline.get(&c).copied());
        row.latency = Some(stats.percentiles());
        rows.push(row);
    }
    Ok(rows)
}
