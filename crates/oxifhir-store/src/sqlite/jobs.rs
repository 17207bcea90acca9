//! The job queue on SQLite: statements that change jobs run on the writer connection (so a
//! claim is atomic under SQLite's single write lock, also across processes), plain reads on
//! the reader pool; idle workers of this process are woken through a watch channel.

use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::Connection;
use tokio::sync::{Mutex, watch};

use super::{ReaderPool, blocking, map_err};
use crate::StoreResult;
use crate::jobs::{JobRecord, JobRow, JobSql};
use crate::sql::{Dialect, Param};

/// The SQLite side of [`crate::jobs::SqlJobQueue`].
pub(crate) struct SqliteJobs {
    pub writer: Arc<Mutex<Connection>>,
    pub readers: Arc<ReaderPool>,
    pub wake: watch::Sender<u64>,
}

/// `$n` placeholders as SQLite spells them.
fn sqlite_text(sql: &str) -> String {
    sql.replace('$', "?")
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<JobRow> {
    Ok(JobRow {
        id: row.get(0)?,
        kind: row.get(1)?,
        owner: row.get(2)?,
        state: row.get(3)?,
        input: row.get(4)?,
        request_url: row.get(5)?,
        request_time: row.get(6)?,
        transaction_time: row.get(7)?,
        attempt: row.get(8)?,
        worker: row.get(9)?,
        lease_until: row.get(10)?,
        not_before: row.get(11)?,
        failures: row.get(12)?,
        progress: row.get(13)?,
        checkpoint: row.get(14)?,
        result: row.get(15)?,
        error: row.get(16)?,
        started_at: row.get(17)?,
        finished_at: row.get(18)?,
        expires_at: row.get(19)?,
        released_at: row.get(20)?,
        updated_at: row.get(21)?,
    })
}

fn query(conn: &Connection, sql: &str, params: &[Param]) -> StoreResult<Vec<JobRecord>> {
    let mut statement = conn.prepare_cached(&sqlite_text(sql)).map_err(map_err)?;
    let rows = statement
        .query_map(rusqlite::params_from_iter(params), read_row)
        .map_err(map_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(map_err)?;
    rows.into_iter().map(JobRow::into_record).collect()
}

/// Runs a job statement (`$n` placeholders) on `conn`; the number of rows it changed.
pub(super) fn execute(conn: &Connection, sql: &str, params: &[Param]) -> StoreResult<u64> {
    let mut statement = conn.prepare_cached(&sqlite_text(sql)).map_err(map_err)?;
    let changed = statement
        .execute(rusqlite::params_from_iter(params))
        .map_err(map_err)?;
    Ok(changed as u64)
}

impl SqliteJobs {
    /// Runs `f` on the writer connection (outside any transaction of a [`crate::StoreTx`]:
    /// it waits for the writer like one).
    async fn write<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let guard = self.writer.clone().lock_owned().await;
        blocking(move || {
            if !guard.is_autocommit() {
                guard.execute_batch("ROLLBACK").map_err(map_err)?;
            }
            f(&guard)
        })
        .await
    }
}

#[async_trait]
impl JobSql for SqliteJobs {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    async fn query_jobs(&self, sql: String, params: Vec<Param>) -> StoreResult<Vec<JobRecord>> {
        if sql.trim_start().starts_with("SELECT") {
            self.readers
                .run(move |conn| query(conn, &sql, &params))
                .await
        } else {
            self.write(move |conn| query(conn, &sql, &params)).await
        }
    }

    async fn execute(&self, sql: String, params: Vec<Param>) -> StoreResult<u64> {
        self.write(move |conn| execute(conn, &sql, &params)).await
    }

    async fn query_count(&self, sql: String, params: Vec<Param>) -> StoreResult<i64> {
        self.readers
            .run(move |conn| {
                conn.prepare_cached(&sqlite_text(&sql))
                    .and_then(|mut s| {
                        s.query_row(rusqlite::params_from_iter(&params), |r| r.get(0))
                    })
                    .map_err(map_err)
            })
            .await
    }

    async fn query_grouped_counts(&self, sql: String) -> StoreResult<Vec<(String, String, i64)>> {
        self.readers
            .run(move |conn| {
                let mut statement = conn.prepare_cached(&sqlite_text(&sql)).map_err(map_err)?;
                let rows = statement
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                    .map_err(map_err)?;
                rows.collect::<Result<Vec<_>, _>>().map_err(map_err)
            })
            .await
    }

    async fn notify(&self) {
        self.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn wakeups(&self) -> watch::Receiver<u64> {
        self.wake.subscribe()
    }
}
