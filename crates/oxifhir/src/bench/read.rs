//! Scenario: `GET` by id of Patients at each client count, beside a raw `SELECT body` of the
//! same rows through the same driver at the same concurrency (one connection per client).

use std::sync::Arc;
use std::time::Instant;

use oxifhir_store::StoreConfig;

use super::driver::{self, Req};
use super::{Env, Row};

/// The `i`th id to read: spread over the whole list.
fn pick(ids: &[String], i: usize) -> &str {
    &ids[i.wrapping_mul(7919) % ids.len()]
}

/// Reads imported Patients `requests` times at each client count, each row beside the raw
/// read rate at the same count.
pub async fn run(env: &mut Env) -> anyhow::Result<Vec<Row>> {
    let base = env.base().await?;
    let ids = Arc::new(env.patients.clone());
    anyhow::ensure!(!ids.is_empty(), "no Patient to read");
    let mut rows = Vec::new();
    for &c in &env.clients.clone() {
        let raw = raw_reads(&env.config, ids.clone(), env.requests, c).await?;
        let (base, ids) = (base.clone(), ids.clone());
        let stats = driver::drive(&env.client, env.requests, c, move |i| {
            Req::Get(format!("{base}/Patient/{}", pick(&ids, i)))
        })
        .await?;
        let mut row = Row::new(
            env.backend,
            "read Patient by id",
            c,
            stats.requests,
            stats.per_sec,
        )
        .beside("raw SELECT body", Some(raw));
        row.latency = Some(stats.percentiles());
        rows.push(row);
    }
    Ok(rows)
}

/// Reads per second of `SELECT body FROM resources` by key from `clients` connections.
async fn raw_reads(
    config: &StoreConfig,
    ids: Arc<Vec<String>>,
    total: usize,
    clients: usize,
) -> anyhow::Result<f64> {
    let clients = clients.max(1);
    let per_client = total.div_ceil(clients);
    let started = Instant::now();
    match config {
        StoreConfig::Sqlite { dir } => {
            let path = dir.join("oxifhir.db");
            let mut tasks = Vec::new();
            for c in 0..clients {
                let (path, ids) = (path.clone(), ids.clone());
                tasks.push(tokio::task::spawn_blocking(
                    move || -> anyhow::Result<()> {
                        let conn = rusqlite::Connection::open(&path)?;
                        let mut stmt = conn.prepare(
                        "SELECT body FROM resources WHERE resource_type = 'Patient' AND id = ?1",
                    )?;
                        for i in c * per_client..(c + 1) * per_client {
                            let body: Vec<u8> = stmt.query_row([pick(&ids, i)], |r| r.get(0))?;
                            std::hint::black_box(body);
                        }
                        Ok(())
                    },
                ));
            }
            for task in tasks {
                task.await??;
            }
        }
        StoreConfig::Postgres { url, schema } => {
            let schema = schema.clone().unwrap_or_else(|| "public".into());
            let mut tasks = Vec::new();
            for c in 0..clients {
                let (url, schema, ids) = (url.clone(), schema.clone(), ids.clone());
                tasks.push(tokio::spawn(async move {
                    let (client, connection) =
                        tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
                    tokio::spawn(connection);
                    let stmt = client
                        .prepare(&format!(
                            "SELECT body FROM {schema}.resources \
                             WHERE resource_type = 'Patient' AND id = $1"
                        ))
                        .await?;
                    for i in c * per_client..(c + 1) * per_client {
                        let row = client.query_one(&stmt, &[&pick(&ids, i)]).await?;
                        let body: Vec<u8> = row.try_get(0)?;
                        std::hint::black_box(body);
                    }
                    Ok::<_, anyhow::Error>(())
                }));
            }
            for task in tasks {
                task.await??;
            }
        }
    }
    Ok((per_client * clients) as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// Drops a benchmark's PostgreSQL schema.
pub async fn drop_schema(url: &str, schema: &str) -> anyhow::Result<()> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await?;
    Ok(())
}
