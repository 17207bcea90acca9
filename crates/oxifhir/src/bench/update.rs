//! Scenario: `PUT` of existing Patients (a new version each) at each client count, beside
//! the trivial handler.

use super::driver::{self, Req};
use super::{Env, Row};

/// Updates imported Patients `requests` times at each client count; one row per count.
pub async fn run(env: &mut Env) -> anyhow::Result<Vec<Row>> {
    let base = env.base().await?;
    let ids = std::sync::Arc::new(env.patients.clone());
    anyhow::ensure!(!ids.is_empty(), "no Patient to update");
    let mut rows = Vec::new();
    for &c in &env.clients.clone() {
        let (base, ids) = (base.clone(), ids.clone());
        let stats = driver::drive(&env.client, env.requests, c, move |i| {
            let id = &ids[i % ids.len()];
            Req::Put(
                format!("{base}/Patient/{id}"),
                driver::synthetic_patient(i, Some(id)),
            )
        })
        .await?;
        let mut row = Row::new(
            env.backend,
            "update Patient",
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
