//! The embedded SQLite backend: one file `oxifhir.db` in WAL mode, one writer connection
//! behind an async mutex (every [`StoreTx`] holds it from `BEGIN IMMEDIATE` to commit or
//! rollback), and a small pool of reader connections for reads outside transactions.
//!
//! SQLite calls block, so they run on tokio's blocking pool (`spawn_blocking`), never on the
//! async worker threads. A transaction moves its connection guard into each blocking call
//! and takes it back afterwards.

mod borrowed;
mod bulk;
mod export;
mod expunge;
mod group;
mod history;
mod jobs;
mod schema;
mod search;
mod write;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use rusqlite::types::{ToSql, ToSqlOutput};
use rusqlite::{Connection, ErrorCode};
use tokio::sync::{Mutex, OwnedMutexGuard, Semaphore};

use crate::jobs::{JobQueue, SqlJobQueue};
use crate::sql::Param;
use crate::{
    BulkLoad, ExportBatch, ExportScan, HistoryPage, HistoryQuery, IndexEntries, IndexReplacement,
    IndexScope, IndexedParam, Isolation, ResourceVersion, SearchPage, SearchQuery, Store,
    StoreError, StoreResult, StoreTx, VersionWrite,
};
use schema::Role;

/// Number of reader connections.
const READERS: usize = 4;

/// Number of scanner connections (export and reindex scans; see [`schema::Role::Scanner`]).
const SCANNERS: usize = 4;

/// The SQLite store. Cheap to share behind an `Arc`.
pub struct SqliteStore {
    writer: Arc<Mutex<Connection>>,
    group: Arc<group::GroupCommit>,
    readers: Arc<ReaderPool>,
    scanners: Arc<ReaderPool>,
    jobs: SqlJobQueue<jobs::SqliteJobs>,
    /// Conditions matching at least this many index entries are probed row by row.
    probe_from: usize,
    /// The bulk load in progress, if any.
    bulk_load: Arc<std::sync::Mutex<Option<bulk::Running>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.readers.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens the database `oxifhir.db` in `dir` (both created when missing) and migrates it.
    pub async fn open(dir: &Path) -> StoreResult<Self> {
        let dir = dir.to_path_buf();
        blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|e| {
                StoreError::Unavailable(format!("cannot create {}: {e}", dir.display()))
            })?;
            let path = dir.join("oxifhir.db");
            let mut writer = schema::connect(&path, Role::Writer)?;
            schema::migrate(&mut writer)?;
            let rebuilt = bulk::restore(&writer)?;
            if rebuilt > 0 {
                tracing::info!(
                    rebuilt,
                    "rebuilt search indexes left out by an interrupted bulk load"
                );
            }
            let readers = Arc::new(ReaderPool::open(path.clone(), Role::Reader, READERS)?);
            let scanners = Arc::new(ReaderPool::open(path, Role::Scanner, SCANNERS)?);
            let writer = Arc::new(Mutex::new(writer));
            Ok(SqliteStore {
                jobs: SqlJobQueue(jobs::SqliteJobs {
                    writer: writer.clone(),
                    readers: readers.clone(),
                    wake: tokio::sync::watch::Sender::new(0),
                }),
                writer,
                group: Arc::default(),
                readers,
                scanners,
                probe_from: crate::sql::PROBE_FROM,
                bulk_load: Arc::default(),
            })
        })
        .await
    }

    /// The same store with searches probing a condition row by row once it matches at least
    /// `entries` index entries (see `sql::plan_search`); tests lower it to exercise probing
    /// on small data sets.
    pub fn with_probe_from(mut self, entries: usize) -> Self {
        self.probe_from = entries;
        self
    }

    /// Number of search index rows per table (in [`crate::sql::INDEX_TABLES`] order) for one
    /// resource. For tests.
    #[doc(hidden)]
    pub async fn debug_index_counts(&self, resource_type: &str, id: &str) -> StoreResult<[i64; 7]> {
        let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
        self.readers
            .run(move |conn| write::index_counts(conn, &resource_type, &id))
            .await
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend_name(&self) -> &'static str {
        "sqlite"
    }

    fn jobs(&self) -> &dyn JobQueue {
        &self.jobs
    }

    async fn begin(&self, _isolation: Isolation) -> StoreResult<Box<dyn StoreTx>> {
        let guard = self.writer.clone().lock_owned().await;
        let mut tx = SqliteTx {
            conn: Some(guard),
            probe_from: self.probe_from,
        };
        tx.run(|conn| {
            // A transaction whose future was cancelled mid-call may have left one open.
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK").map_err(map_err)?;
            }
            conn.execute_batch("BEGIN IMMEDIATE").map_err(map_err)
        })
        .await?;
        Ok(Box::new(tx))
    }

    async fn write_alone(&self, write: VersionWrite) -> StoreResult<()> {
        group::write_alone(&self.group, &self.writer, write).await
    }

    async fn begin_bulk_load(&self, load: BulkLoad) -> StoreResult<()> {
        let conn = self.writer.clone().lock_owned().await;
        // Only a database no other connection has open can leave WAL mode (see `bulk.rs`).
        let closed = (
            self.readers.close_idle().await?,
            self.scanners.close_idle().await?,
        );
        let (path, bulk_load) = (self.readers.path.clone(), self.bulk_load.clone());
        blocking(move || {
            let _closed = closed;
            let mut running = bulk_load.lock().unwrap_or_else(|e| e.into_inner());
            if running.is_none() {
                *running = Some(bulk::Running::begin(
                    &conn,
                    &path,
                    load.input_bytes,
                    load.defer_indexes,
                )?);
            }
            Ok(())
        })
        .await
    }

    async fn end_bulk_load(&self) -> StoreResult<()> {
        let conn = self.writer.clone().lock_owned().await;
        let closed = (
            self.readers.close_idle().await?,
            self.scanners.close_idle().await?,
        );
        let bulk_load = self.bulk_load.clone();
        blocking(move || {
            let _closed = closed;
            let running = bulk_load.lock().unwrap_or_else(|e| e.into_inner()).take();
            match running {
                Some(running) => running.end(&conn),
                None => Ok(()),
            }
        })
        .await
    }

    async fn read(&self, resource_type: &str, id: &str) -> StoreResult<Option<ResourceVersion>> {
        let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
        self.readers
            .run(move |conn| search::read(conn, &resource_type, &id))
            .await
    }

    async fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> StoreResult<Option<ResourceVersion>> {
        let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
        self.readers
            .run(move |conn| search::vread(conn, &resource_type, &id, version_id))
            .await
    }

    async fn history(&self, query: &HistoryQuery) -> StoreResult<HistoryPage> {
        let query = query.clone();
        self.readers
            .run(move |conn| history::history(conn, &query))
            .await
    }

    async fn search(&self, query: &SearchQuery) -> StoreResult<SearchPage> {
        let (query, probe_from) = (query.clone(), self.probe_from);
        self.readers
            .run(move |conn| search::search(conn, &query, probe_from))
            .await
    }

    async fn expunge(&self, batch: &crate::expunge::ExpungeBatch) -> StoreResult<u64> {
        let batch = batch.clone();
        let guard = self.writer.clone().lock_owned().await;
        blocking(move || {
            if !guard.is_autocommit() {
                guard.execute_batch("ROLLBACK").map_err(map_err)?;
            }
            expunge::expunge(&guard, &batch)
        })
        .await
    }

    async fn referencing(
        &self,
        target_type: &str,
        target_id: &str,
    ) -> StoreResult<Vec<(String, String, String)>> {
        let (target_type, target_id) = (target_type.to_owned(), target_id.to_owned());
        self.readers
            .run(move |conn| expunge::referencing(conn, &target_type, &target_id))
            .await
    }

    async fn export_scan(&self, scan: &ExportScan) -> StoreResult<ExportBatch> {
        let scan = scan.clone();
        self.scanners
            .run(move |conn| export::scan(conn, &scan))
            .await
    }

    /// Batches are read on a connection of their own by one blocking task, which keeps
    /// reading while the consumer handles the batches before (two wait at most).
    fn export_batches(
        &self,
        scan: ExportScan,
        rows: u64,
    ) -> BoxStream<'_, StoreResult<ExportBatch>> {
        let (sender, receiver) = tokio::sync::mpsc::channel(2);
        let scanners = self.scanners.clone();
        tokio::spawn(async move {
            let batches = crate::export::Batches::new(scan, rows);
            let read = sender.clone();
            let done = scanners
                .run(move |conn| {
                    let mut batches = batches;
                    while let Some(scan) = batches.next_scan() {
                        let batch = export::scan(conn, &scan)?;
                        batches.advance(&batch);
                        if read.blocking_send(Ok(batch)).is_err() {
                            break;
                        }
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = done {
                let _ = sender.send(Err(e)).await;
            }
        });
        futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|batch| (batch, receiver))
        })
        .boxed()
    }

    async fn export_count(&self, scan: &ExportScan) -> StoreResult<u64> {
        let scan = scan.clone();
        self.scanners
            .run(move |conn| export::scan_count(conn, &scan))
            .await
    }

    async fn export_sample(&self, resource_type: &str, every: u64) -> StoreResult<Vec<String>> {
        let resource_type = resource_type.to_owned();
        self.scanners
            .run(move |conn| export::sample(conn, &resource_type, every))
            .await
    }
    async fn indexed_params(&self) -> StoreResult<Vec<IndexedParam>> {
        self.readers
            .run(|conn| {
                let mut stmt = conn
                    .prepare_cached(crate::sql::SELECT_INDEXED_PARAMS)
                    .map_err(map_err)?;
                stmt.query_map([], |r| {
                    Ok(IndexedParam {
                        url: r.get(0)?,
                        fingerprint: r.get(1)?,
                    })
                })
                .map_err(map_err)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(map_err)
            })
            .await
    }

    async fn mark_param_indexed(&self, param: &IndexedParam) -> StoreResult<()> {
        let param = param.clone();
        let mut tx = SqliteTx {
            conn: Some(self.writer.clone().lock_owned().await),
            probe_from: self.probe_from,
        };
        tx.run(move |conn| {
            if !conn.is_autocommit() {
                conn.execute_batch("ROLLBACK").map_err(map_err)?;
            }
            if param.fingerprint.is_empty() {
                conn.execute(
                    "DELETE FROM search_param_indexed WHERE url = ?1",
                    [&param.url],
                )
            } else {
                conn.execute(
                    "INSERT INTO search_param_indexed (url, fingerprint, marked_at) \
                     VALUES (?1, ?2, ?3) ON CONFLICT (url) DO UPDATE SET \
                     fingerprint = excluded.fingerprint, marked_at = excluded.marked_at",
                    (
                        &param.url,
                        &param.fingerprint,
                        oxifhir_model::Instant::now().millis(),
                    ),
                )
            }
            .map(|_| ())
            .map_err(map_err)
        })
        .await
    }
}

/// A write transaction on the writer connection.
struct SqliteTx {
    /// `None` only while a blocking call holds it, or after commit.
    conn: Option<OwnedMutexGuard<Connection>>,
    probe_from: usize,
}

impl SqliteTx {
    async fn run<T, F>(&mut self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let mut guard = self
            .conn
            .take()
            .ok_or_else(|| StoreError::Backend("transaction already finished".to_owned()))?;
        let (guard, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut guard);
            (guard, result)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("SQLite task failed: {e}")))?;
        self.conn = Some(guard);
        result
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        // Rolling back a WAL transaction only discards pages held in memory: cheap enough
        // to do right here rather than on the blocking pool.
        if let Some(conn) = self.conn.take()
            && !conn.is_autocommit()
            && let Err(e) = conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "SQLite rollback failed");
        }
    }
}

#[async_trait]
impl StoreTx for SqliteTx {
    async fn read(
        &mut self,
        resource_type: &str,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>> {
        let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
        self.run(move |conn| search::read(conn, &resource_type, &id))
            .await
    }

    async fn vread(
        &mut self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> StoreResult<Option<ResourceVersion>> {
        let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
        self.run(move |conn| search::vread(conn, &resource_type, &id, version_id))
            .await
    }

    async fn search(&mut self, query: &SearchQuery) -> StoreResult<SearchPage> {
        let query = query.clone();
        let probe_from = self.probe_from;
        self.run(move |conn| search::search(conn, &query, probe_from))
            .await
    }

    async fn write(&mut self, write: VersionWrite) -> StoreResult<()> {
        self.run(move |conn| write::write(conn, &write)).await
    }

    async fn read_many(
        &mut self,
        keys: &[(String, String)],
    ) -> StoreResult<Vec<Option<ResourceVersion>>> {
        let keys = keys.to_vec();
        self.run(move |conn| {
            keys.iter()
                .map(|(resource_type, id)| search::read(conn, resource_type, id))
                .collect()
        })
        .await
    }

    async fn write_many(&mut self, writes: Vec<VersionWrite>) -> StoreResult<()> {
        self.run(move |conn| write::write_many(conn, &writes)).await
    }

    async fn replace_index(
        &mut self,
        resource_type: &str,
        id: &str,
        version_id: i64,
        index: IndexEntries,
    ) -> StoreResult<bool> {
        let (resource_type, id) = (resource_type.to_owned(), id.to_owned());
        self.run(move |conn| write::replace_index(conn, &resource_type, &id, version_id, &index))
            .await
    }

    async fn replace_index_many(
        &mut self,
        scope: &IndexScope,
        replacements: Vec<IndexReplacement>,
    ) -> StoreResult<Vec<bool>> {
        let scope = scope.clone();
        self.run(move |conn| write::replace_index_many(conn, &scope, &replacements))
            .await
    }

    async fn job_checkpoint(
        &mut self,
        job_id: &str,
        attempt: i64,
        checkpoint: &[u8],
        progress: Option<&str>,
    ) -> StoreResult<bool> {
        let (text, params) = crate::jobs::checkpoint_statement(
            job_id,
            attempt,
            checkpoint,
            progress,
            None,
            oxifhir_model::Instant::now(),
        );
        self.run(move |conn| jobs::execute(conn, &text, &params).map(|n| n > 0))
            .await
    }

    async fn expunge(
        &mut self,
        batch: &crate::expunge::ExpungeBatch,
    ) -> StoreResult<crate::expunge::ExpungeCount> {
        let batch = batch.clone();
        self.run(move |conn| expunge::run(conn, &batch)).await
    }

    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        self.run(|conn| conn.execute_batch("COMMIT").map_err(map_err))
            .await
        // On failure, `Drop` rolls back what is left of the transaction.
    }
}

/// Read-only connections handed out one per blocking call.
struct ReaderPool {
    path: PathBuf,
    role: Role,
    idle: std::sync::Mutex<Vec<Connection>>,
    /// One permit per reader connection.
    permits: Arc<Semaphore>,
    /// The number of connections.
    size: u32,
}

impl ReaderPool {
    /// `size` connections for `role` to the database at `path`.
    fn open(path: PathBuf, role: Role, size: usize) -> StoreResult<Self> {
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            idle.push(schema::connect(&path, role)?);
        }
        Ok(ReaderPool {
            path,
            role,
            idle: std::sync::Mutex::new(idle),
            permits: Arc::new(Semaphore::new(size)),
            size: u32::try_from(size).unwrap_or(u32::MAX),
        })
    }

    /// Waits until no connection is in use and closes them all; they are opened again on
    /// their next use, once the returned permits are dropped.
    async fn close_idle(&self) -> StoreResult<tokio::sync::OwnedSemaphorePermit> {
        let all = self
            .permits
            .clone()
            .acquire_many_owned(self.size)
            .await
            .map_err(|e| StoreError::Backend(format!("reader pool closed: {e}")))?;
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).clear();
        Ok(all)
    }

    /// Runs `f` on a reader connection on the blocking pool.
    async fn run<T, F>(self: &Arc<Self>, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> StoreResult<T> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Backend(format!("reader pool closed: {e}")))?;
        let pool = self.clone();
        blocking(move || {
            let _permit = permit;
            let popped = pool.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            // A connection lost to a panic is replaced here.
            let conn = match popped {
                Some(conn) => conn,
                None => schema::connect(&pool.path, pool.role)?,
            };
            let result = f(&conn);
            pool.idle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            result
        })
        .await
    }
}

/// Runs a blocking closure on tokio's blocking pool.
async fn blocking<T, F>(f: F) -> StoreResult<T>
where
    T: Send + 'static,
    F: FnOnce() -> StoreResult<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Backend(format!("SQLite task failed: {e}")))?
}

/// Maps a SQLite error into the store's terms (busy/locked → retryable, unopenable →
/// unavailable, the rest → backend).
pub(crate) fn map_err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Retryable(e.to_string())
        }
        Some(ErrorCode::CannotOpen | ErrorCode::NotADatabase | ErrorCode::PermissionDenied) => {
            StoreError::Unavailable(e.to_string())
        }
        _ => StoreError::Backend(e.to_string()),
    }
}

/// True for a violated `UNIQUE`/`PRIMARY KEY` constraint.
pub(crate) fn is_unique_violation(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation)
}

impl ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Param::Int(n) => ToSqlOutput::from(*n),
            Param::Float(f) => ToSqlOutput::from(*f),
            Param::Text(t) => ToSqlOutput::from(t.as_str()),
            Param::TextList(list) => ToSqlOutput::from(
                serde_json::to_string(list)
                    .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
            ),
            Param::OptInt(n) => n.to_sql()?,
            Param::OptText(t) => t.to_sql()?,
            Param::OptBytes(b) => b.to_sql()?,
        })
    }
}
