//! The job queue on PostgreSQL: claims with `FOR UPDATE SKIP LOCKED`, and wake-ups across
//! nodes with `LISTEN`/`NOTIFY` on one channel whose payload names the schema (so stores in
//! different schemas of one database do not wake each other).

use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use futures::StreamExt;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use super::{driver_params, map_err, map_pool_err, param_refs};
use crate::StoreResult;
use crate::jobs::{JobRecord, JobRow, JobSql};
use crate::sql::{Dialect, Param};

/// The notification channel shared by every oxifhir store in a database.
const CHANNEL: &str = "oxifhir_jobs";

/// The PostgreSQL side of [`crate::jobs::SqlJobQueue`].
pub(crate) struct PostgresJobs {
    pub pool: Pool,
    pub config: tokio_postgres::Config,
    /// The schema this store lives in (`""` for the default search path).
    pub schema: String,
    pub wake: Arc<watch::Sender<u64>>,
    /// Set once the listener task runs.
    pub listener: OnceLock<()>,
}

fn read_row(row: &tokio_postgres::Row) -> Result<JobRow, tokio_postgres::Error> {
    Ok(JobRow {
        id: row.try_get(0)?,
        kind: row.try_get(1)?,
        owner: row.try_get(2)?,
        state: row.try_get(3)?,
        input: row.try_get(4)?,
        request_url: row.try_get(5)?,
        request_time: row.try_get(6)?,
        transaction_time: row.try_get(7)?,
        attempt: row.try_get(8)?,
        worker: row.try_get(9)?,
        lease_until: row.try_get(10)?,
        not_before: row.try_get(11)?,
        failures: row.try_get(12)?,
        progress: row.try_get(13)?,
        checkpoint: row.try_get(14)?,
        result: row.try_get(15)?,
        error: row.try_get(16)?,
        started_at: row.try_get(17)?,
        finished_at: row.try_get(18)?,
        expires_at: row.try_get(19)?,
        released_at: row.try_get(20)?,
        updated_at: row.try_get(21)?,
    })
}

impl PostgresJobs {
    async fn rows(&self, sql: &str, params: &[Param]) -> StoreResult<Vec<tokio_postgres::Row>> {
        let client = self.pool.get().await.map_err(map_pool_err)?;
        let statement = client.prepare_cached(sql).await.map_err(map_err)?;
        let values = driver_params(params);
        client
            .query(&statement, &param_refs(&values))
            .await
            .map_err(map_err)
    }

    /// Forwards notifications for this schema to the watch channel, reconnecting with a
    /// pause when the connection drops, until the store is dropped.
    fn spawn_listener(&self) {
        let (config, schema) = (self.config.clone(), self.schema.clone());
        let wake = Arc::downgrade(&self.wake);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            while wake.strong_count() > 0 {
                if let Err(e) = listen(&config, &schema, &wake).await {
                    tracing::warn!(error = %e, "job notification listener lost its connection");
                }
                // Wake everyone: a notification may have been missed while disconnected.
                if let Some(wake) = wake.upgrade() {
                    wake.send_modify(|n| *n = n.wrapping_add(1));
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

/// Listens on [`CHANNEL`] until the connection fails or the store is dropped.
async fn listen(
    config: &tokio_postgres::Config,
    schema: &str,
    wake: &Weak<watch::Sender<u64>>,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    let subscribe = async {
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        std::future::pending::<Result<(), tokio_postgres::Error>>().await
    };
    let forward = async {
        while let Some(message) = messages.next().await {
            let Some(wake) = wake.upgrade() else {
                break;
            };
            if let AsyncMessage::Notification(n) = message?
                && n.payload() == schema
            {
                wake.send_modify(|c| *c = c.wrapping_add(1));
            }
        }
        Ok(())
    };
    tokio::select! {
        result = subscribe => result,
        result = forward => result,
    }
}

#[async_trait]
impl JobSql for PostgresJobs {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    async fn query_jobs(&self, sql: String, params: Vec<Param>) -> StoreResult<Vec<JobRecord>> {
        self.rows(&sql, &params)
            .await?
            .iter()
            .map(|row| read_row(row).map_err(map_err)?.into_record())
            .collect()
    }

    async fn execute(&self, sql: String, params: Vec<Param>) -> StoreResult<u64> {
        let client = self.pool.get().await.map_err(map_pool_err)?;
        let statement = client.prepare_cached(&sql).await.map_err(map_err)?;
        let values = driver_params(&params);
        client
            .execute(&statement, &param_refs(&values))
            .await
            .map_err(map_err)
    }

    async fn query_count(&self, sql: String, params: Vec<Param>) -> StoreResult<i64> {
        let rows = self.rows(&sql, &params).await?;
        match rows.first() {
            Some(row) => row.try_get(0).map_err(map_err),
            None => Ok(0),
        }
    }

    async fn query_grouped_counts(&self, sql: String) -> StoreResult<Vec<(String, String, i64)>> {
        self.rows(&sql, &[])
            .await?
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()
            .map_err(map_err)
    }

    async fn notify(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
        let sent = self
            .rows(
                "SELECT pg_notify($1, $2)::text",
                &[
                    Param::Text(CHANNEL.to_owned()),
                    Param::Text(self.schema.clone()),
                ],
            )
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not notify other nodes of a new job");
        }
    }

    fn wakeups(&self) -> watch::Receiver<u64> {
        self.listener.get_or_init(|| self.spawn_listener());
        self.wake.subscribe()
    }
}
