//! The PostgreSQL backend: `tokio-postgres` connections in a `deadpool-postgres` pool,
//! statements prepared once per connection (`prepare_cached`), and write transactions at
//! `SERIALIZABLE`.
//!
//! With a schema, every pooled connection starts with `search_path=<schema>` (startup option),
//! so the SQL never names the schema. Every connection plans each execution of a prepared
//! statement for its values (`plan_cache_mode=force_custom_plan`).
//!
//! A transaction owns its pooled connection through a [`Lease`]: committed, the connection
//! goes back to the pool; dropped uncommitted, a task runs `ROLLBACK` before giving it back;
//! and if that cannot happen (no runtime, a failed rollback), the connection is closed
//! instead of being returned with an open transaction.

mod bulk;
mod export;
mod expunge;
mod history;
mod jobs;
mod schema;
mod search;
mod write;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::jobs::{JobQueue, SqlJobQueue};
use crate::sql::Param;
use crate::{
    ExportBatch, ExportScan, HistoryPage, HistoryQuery, IndexEntries, IndexReplacement, IndexScope,
    IndexedParam, Isolation, ResourceVersion, SearchPage, SearchQuery, Store, StoreError,
    StoreResult, StoreTx, VersionWrite,
};

/// Most connections one store keeps open.
const POOL_SIZE: usize = 16;

/// How long to wait for a new connection, and for a free one.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The PostgreSQL store. Cheap to share behind an `Arc`.
pub struct PostgresStore {
    pool: Pool,
    jobs: SqlJobQueue<jobs::PostgresJobs>,
    probe_from: usize,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl PostgresStore {
    /// Connects to `url` (a `postgres://` URL or key-value string), creates `schema` when
    /// given (names must match `[a-z0-9_]+`) and migrates it.
    pub async fn open(url: &str, schema: Option<&str>) -> StoreResult<Self> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL: {e}")))?;
        // Search statements are prepared once but their selectivity depends on their values
        // (a date range of a day or of ten years): a generic plan cached for all values can be
        // off by orders of magnitude, so every execution is planned for its values.
        let mut options = vec!["-c plan_cache_mode=force_custom_plan".to_owned()];
        if let Some(schema) = schema {
            schema::validate_schema_name(schema)?;
            options.push(format!("-c search_path={schema}"));
        }
        if let Some(existing) = config.get_options()
            && !existing.trim().is_empty()
        {
            options.insert(0, existing.to_owned());
        }
        config.options(options.join(" "));
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(WAIT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("cannot build connection pool: {e}")))?;
        let store = PostgresStore {
            jobs: SqlJobQueue(jobs::PostgresJobs {
                pool: pool.clone(),
                config,
                schema: schema.unwrap_or_default().to_owned(),
                wake: std::sync::Arc::new(tokio::sync::watch::Sender::new(0)),
                listener: std::sync::OnceLock::new(),
            }),
            pool,
            probe_from: crate::sql::PROBE_FROM,
        };
        schema::migrate(store.lease().await?, schema).await?;
        Ok(store)
    }

    /// The same store with searches probing a condition row by row once it matches at least
    /// `entries` index entries (see `sql::plan_search`); tests lower it to exercise probing
    /// on small data sets.
    pub fn with_probe_from(mut self, entries: usize) -> Self {
        self.probe_from = entries;
        self
    }

    async fn lease(&self) -> StoreResult<Lease> {
        Ok(Lease(Some(self.pool.get().await.map_err(map_pool_err)?)))
    }

    async fn client(&self) -> StoreResult<Object> {
        self.pool.get().await.map_err(map_pool_err)
    }

    /// Number of search index rows per table (in the order of the `IndexEntries` fields) for
    /// one resource. For tests.
    #[doc(hidden)]
    pub async fn debug_index_counts(&self, resource_type: &str, id: &str) -> StoreResult<[i64; 7]> {
        write::index_counts(&*self.client().await?, resource_type, id).await
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn backend_name(&self) -> &'static str {
        "postgres"
    }

    async fn end_bulk_load(&self) -> StoreResult<()> {
        // Fresh planner statistics: until autovacuum gets to them, the planner takes freshly
        // loaded tables for nearly empty ones and picks nested loops that take minutes.
        let tables: Vec<&str> = ["resources", "history"]
            .into_iter()
            .chain(crate::sql::INDEX_TABLES)
            .collect();
        self.client()
            .await?
            .batch_execute(&format!("ANALYZE {}", tables.join(", ")))
            .await
            .map_err(map_err)
    }

    fn jobs(&self) -> &dyn JobQueue {
        &self.jobs
    }

    async fn begin(&self, isolation: Isolation) -> StoreResult<Box<dyn StoreTx>> {
        let lease = self.lease().await?;
        lease
            .client()?
            .batch_execute(begin_statement(isolation))
            .await
            .map_err(map_err)?;
        Ok(Box::new(PostgresTx {
            lease: Some(lease),
            probe_from: self.probe_from,
            isolation,
            used: false,
            session_locks: false,
        }))
    }

    async fn read(&self, resource_type: &str, id: &str) -> StoreResult<Option<ResourceVersion>> {
        search::read(&*self.client().await?, resource_type, id).await
    }

    async fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> StoreResult<Option<ResourceVersion>> {
        search::vread(&*self.client().await?, resource_type, id, version_id).await
    }

    async fn history(&self, query: &HistoryQuery) -> StoreResult<HistoryPage> {
        history::history(&*self.client().await?, query).await
    }

    async fn search(&self, query: &SearchQuery) -> StoreResult<SearchPage> {
        search::search(&*self.client().await?, query, self.probe_from).await
    }

    async fn expunge(&self, batch: &crate::expunge::ExpungeBatch) -> StoreResult<u64> {
        let lease = self.lease().await?;
        let client = lease.client()?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
            .map_err(map_err)?;
        match expunge::run(client, batch).await {
            Ok(count) => {
                client.batch_execute("COMMIT").await.map_err(map_err)?;
                lease.release();
                Ok(count.versions)
            }
            // Dropping the lease closes the connection, which rolls the transaction back.
            Err(e) => Err(e),
        }
    }

    async fn referencing(
        &self,
        target_type: &str,
        target_id: &str,
    ) -> StoreResult<Vec<(String, String, String)>> {
        expunge::referencing(&self.client().await?, target_type, target_id).await
    }

    async fn export_scan(&self, scan: &ExportScan) -> StoreResult<ExportBatch> {
        export::scan(&*self.client().await?, scan).await
    }

    async fn export_count(&self, scan: &ExportScan) -> StoreResult<u64> {
        export::scan_count(&*self.client().await?, scan).await
    }

    async fn export_sample(&self, resource_type: &str, every: u64) -> StoreResult<Vec<String>> {
        export::sample(&*self.client().await?, resource_type, every).await
    }

    async fn indexed_params(&self) -> StoreResult<Vec<IndexedParam>> {
        let client = self.client().await?;
        let rows = client
            .query(crate::sql::SELECT_INDEXED_PARAMS, &[])
            .await
            .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(IndexedParam {
                    url: r.try_get(0).map_err(map_err)?,
                    fingerprint: r.try_get(1).map_err(map_err)?,
                })
            })
            .collect()
    }

    async fn mark_param_indexed(&self, param: &IndexedParam) -> StoreResult<()> {
        let client = self.client().await?;
        if param.fingerprint.is_empty() {
            client
                .execute(
                    "DELETE FROM search_param_indexed WHERE url = $1",
                    &[&param.url],
                )
                .await
                .map_err(map_err)?;
        } else {
            client
                .execute(
                    "INSERT INTO search_param_indexed (url, fingerprint, marked_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (url) DO UPDATE SET \
                     fingerprint = excluded.fingerprint, marked_at = excluded.marked_at",
                    &[
                        &param.url,
                        &param.fingerprint,
                        &oxifhir_model::Instant::now().millis(),
                    ],
                )
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }
}

/// A pooled connection that is closed, not returned to the pool, unless [`Lease::release`]
/// says it is clean (no transaction open).
pub(crate) struct Lease(Option<Object>);

impl Lease {
    fn client(&self) -> StoreResult<&Object> {
        self.0
            .as_ref()
            .ok_or_else(|| StoreError::Backend("connection already released".into()))
    }

    /// Returns the connection to the pool.
    fn release(mut self) {
        drop(self.0.take());
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(object) = self.0.take() {
            // Detached from the pool, the connection closes when dropped.
            drop(Object::take(object));
        }
    }
}

/// A transaction on one pooled connection.
struct PostgresTx {
    /// `None` once committed.
    lease: Option<Lease>,
    probe_from: usize,
    isolation: Isolation,
    /// True once a statement other than a lock ran in the transaction.
    used: bool,
    /// True when the session holds advisory locks taken by [`StoreTx::lock`] before the
    /// transaction's first statement; they are released when it ends.
    session_locks: bool,
}

impl PostgresTx {
    fn client(&self) -> StoreResult<&Object> {
        self.lease
            .as_ref()
            .ok_or_else(|| StoreError::Backend("transaction already finished".into()))?
            .client()
    }

    /// As [`PostgresTx::client`], for a statement that reads or writes data.
    fn client_used(&mut self) -> StoreResult<&Object> {
        self.used = true;
        self.client()
    }
}

/// The `BEGIN` statement of a transaction at `isolation`.
fn begin_statement(isolation: Isolation) -> &'static str {
    match isolation {
        Isolation::Serializable => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        Isolation::VersionChecked => "BEGIN ISOLATION LEVEL READ COMMITTED",
    }
}

/// The 64-bit advisory lock key of a lock name (FNV-1a, stable across processes).
fn advisory_key(name: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

impl Drop for PostgresTx {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        let session_locks = self.session_locks;
        // Without a runtime the lease closes the connection, which rolls back and unlocks too.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let clean = match lease.client() {
                    Ok(client) => {
                        client.batch_execute("ROLLBACK").await.is_ok()
                            && (!session_locks
                                || client
                                    .batch_execute("SELECT pg_advisory_unlock_all()")
                                    .await
                                    .is_ok())
                    }
                    Err(_) => false,
                };
                if clean {
                    lease.release();
                }
            });
        }
    }
}

#[async_trait]
impl StoreTx for PostgresTx {
    async fn read(
        &mut self,
        resource_type: &str,
        id: &str,
    ) -> StoreResult<Option<ResourceVersion>> {
        search::read(self.client_used()?, resource_type, id).await
    }

    async fn vread(
        &mut self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> StoreResult<Option<ResourceVersion>> {
        search::vread(self.client_used()?, resource_type, id, version_id).await
    }

    async fn search(&mut self, query: &SearchQuery) -> StoreResult<SearchPage> {
        let probe_from = self.probe_from;
        search::search(self.client_used()?, query, probe_from).await
    }

    async fn write(&mut self, write: VersionWrite) -> StoreResult<()> {
        write::write(self.client_used()?, &write).await
    }

    async fn read_many(
        &mut self,
        keys: &[(String, String)],
    ) -> StoreResult<Vec<Option<ResourceVersion>>> {
        bulk::read_many(self.client_used()?, keys).await
    }

    async fn write_many(&mut self, writes: Vec<VersionWrite>) -> StoreResult<()> {
        bulk::write_many(self.client_used()?, &writes).await
    }

    async fn replace_index(
        &mut self,
        resource_type: &str,
        id: &str,
        version_id: i64,
        index: IndexEntries,
    ) -> StoreResult<bool> {
        write::replace_index(self.client_used()?, resource_type, id, version_id, &index).await
    }

    async fn lock(&mut self, key: &str) -> StoreResult<()> {
        let key = advisory_key(key);
        if self.used {
            self.client()?
                .execute("SELECT pg_advisory_xact_lock($1)", &[&key])
                .await
                .map_err(map_err)?;
            return Ok(());
        }
        // Nothing ran yet: wait for the lock outside the (empty) transaction and begin it
        // again, so that its snapshot is taken after the previous holder committed. A
        // serializable snapshot taken before the wait would miss that holder's writes.
        // (The key is an integer computed here, so it can be written into the statement:
        // ending the empty transaction and waiting take one round trip.)
        self.session_locks = true;
        let begin = begin_statement(self.isolation);
        let client = self.client()?;
        client
            .batch_execute(&format!("ROLLBACK; SELECT pg_advisory_lock({key})"))
            .await
            .map_err(map_err)?;
        client.batch_execute(begin).await.map_err(map_err)
    }

    async fn replace_index_many(
        &mut self,
        scope: &IndexScope,
        replacements: Vec<IndexReplacement>,
    ) -> StoreResult<Vec<bool>> {
        bulk::replace_index_many(self.client_used()?, scope, &replacements).await
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
        let client = self.client_used()?;
        let statement = client.prepare_cached(&text).await.map_err(map_err)?;
        let values = driver_params(&params);
        let changed = client
            .execute(&statement, &param_refs(&values))
            .await
            .map_err(map_err)?;
        Ok(changed > 0)
    }

    async fn expunge(
        &mut self,
        batch: &crate::expunge::ExpungeBatch,
    ) -> StoreResult<crate::expunge::ExpungeCount> {
        expunge::run(self.client_used()?, batch).await
    }

    async fn commit(mut self: Box<Self>) -> StoreResult<()> {
        let statement = if self.session_locks {
            "COMMIT; SELECT pg_advisory_unlock_all()"
        } else {
            "COMMIT"
        };
        let result = self.client()?.batch_execute(statement).await;
        // A failed COMMIT ends the transaction too, so there is nothing to roll back; the
        // statements after it did not run.
        if let Some(lease) = self.lease.take() {
            let unlocked = !self.session_locks
                || result.is_ok()
                || match lease.client() {
                    Ok(client) => client
                        .batch_execute("SELECT pg_advisory_unlock_all()")
                        .await
                        .is_ok(),
                    Err(_) => false,
                };
            // A connection that may still hold locks is closed rather than pooled.
            if unlocked {
                lease.release();
            }
        }
        result.map_err(map_err)
    }
}

/// Maps a driver error into the store's terms: serialization failure and deadlock →
/// retryable, connection problems → unavailable, the rest → backend.
pub(crate) fn map_err(e: tokio_postgres::Error) -> StoreError {
    let text = describe(&e);
    if let Some(code) = e.code() {
        if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        {
            return StoreError::Retryable(text);
        }
        let c = code.code();
        if c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "53300") {
            return StoreError::Unavailable(text);
        }
        return StoreError::Backend(text);
    }
    let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed() || io {
        return StoreError::Unavailable(text);
    }
    StoreError::Backend(text)
}

/// The error with its chain of causes (the driver's `Display` leaves out the cause).
fn describe(e: &tokio_postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn map_pool_err(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => {
            // A connection that cannot be made is the database being unreachable.
            match map_err(e) {
                StoreError::Backend(text) => StoreError::Unavailable(text),
                other => other,
            }
        }
        PoolError::Timeout(kind) => {
            StoreError::Unavailable(format!("connection pool timeout: {kind:?}"))
        }
        PoolError::Closed => StoreError::Unavailable("connection pool closed".into()),
        other => StoreError::Backend(other.to_string()),
    }
}

/// True for a unique violation of a versioned key (`history (resource_type, id, version_id)`
/// or the `resources` primary key).
pub(crate) fn is_version_key_violation(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION
            && matches!(
                db.constraint(),
                Some("history_version_key" | "resources_pkey")
            )
    })
}

/// Bind parameters as the driver takes them.
pub(crate) fn driver_params(params: &[Param]) -> Vec<Box<dyn ToSql + Sync + Send>> {
    params
        .iter()
        .map(|p| -> Box<dyn ToSql + Sync + Send> {
            match p {
                Param::Int(n) => Box::new(*n),
                Param::Float(f) => Box::new(*f),
                Param::Text(t) => Box::new(t.clone()),
                Param::TextList(list) => Box::new(list.clone()),
                Param::OptInt(n) => Box::new(*n),
                Param::OptText(t) => Box::new(t.clone()),
                Param::OptBytes(b) => Box::new(b.clone()),
            }
        })
        .collect()
}

/// Borrows [`driver_params`] for a query call.
pub(crate) fn param_refs(params: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}
