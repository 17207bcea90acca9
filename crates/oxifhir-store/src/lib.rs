//! Persistence for oxifhir: versioned FHIR resources, their search index, and jobs,
//! behind one [`Store`] trait with two backends side by side — [`sqlite`] (embedded, the
//! default) and [`postgres`] (many nodes sharing one database).
//!
//! The store knows nothing about HTTP. It stores the exact bytes it is given and hands them
//! back unchanged; FHIR REST semantics (version numbering, conditional interactions, bundle
//! processing) live above it and reach it through [`StoreTx`].

mod cursor;
mod error;
pub mod export;
pub mod expunge;
pub mod jobs;
pub mod postgres;
mod query;
mod sql;
pub mod sqlite;
mod types;

pub use error::{StoreError, StoreResult};
pub use export::{ExportBatch, ExportFilter, ExportRow, ExportScan};
pub use jobs::JobQueue;
pub use query::*;
pub use types::*;

use std::sync::Arc;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// An embedded SQLite database in this directory (created when missing).
    Sqlite { dir: std::path::PathBuf },
    /// A PostgreSQL database; `schema`, when given, is created if missing and used for
    /// every table (tests give each run its own schema).
    Postgres { url: String, schema: Option<String> },
}

/// Opens (and migrates) the store described by `config`.
pub async fn open(config: &StoreConfig) -> StoreResult<Arc<dyn Store>> {
    match config {
        StoreConfig::Sqlite { dir } => Ok(Arc::new(sqlite::SqliteStore::open(dir).await?)),
        StoreConfig::Postgres { url, schema } => Ok(Arc::new(
            postgres::PostgresStore::open(url, schema.as_deref()).await?,
        )),
    }
}

/// Read access and transactions over versioned resources. Implemented by every backend.
///
/// Reads outside a transaction see committed data only.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A short name for logs and benchmark tables: `sqlite` or `postgres`.
    fn backend_name(&self) -> &'static str;

    /// The durable queue of asynchronous jobs in the same database.
    fn jobs(&self) -> &dyn JobQueue;

    /// Starts a write transaction. All writes go through one. SQLite transactions are always
    /// serial (`BEGIN IMMEDIATE` on the single writer connection); on PostgreSQL `isolation`
    /// chooses the level. Dropping it without [`StoreTx::commit`] rolls it back.
    async fn begin(&self, isolation: Isolation) -> StoreResult<Box<dyn StoreTx>>;

    /// Stores one version as a transaction of its own, with the guarantees of
    /// [`StoreTx::write`] at [`Isolation::VersionChecked`]. Backends may commit several such
    /// writes together (group commit); each still succeeds or fails on its own.
    async fn write_alone(&self, write: VersionWrite) -> StoreResult<()> {
        let mut tx = self.begin(Isolation::VersionChecked).await?;
        tx.write(write).await?;
        tx.commit().await
    }

    /// Tunes the store for loading many versions in big transactions (an import) until
    /// [`Store::end_bulk_load`]. Data written meanwhile is as durable as the backend's crash
    /// safety allows (never inconsistent), and reads and searches stay correct, if slower when
    /// indexes are deferred. A load interrupted before its end is finished by the next
    /// opening of the store. The default does nothing.
    async fn begin_bulk_load(&self, load: BulkLoad) -> StoreResult<()> {
        let _ = load;
        Ok(())
    }

    /// Ends a bulk load: rebuilds deferred indexes and restores the normal settings.
    async fn end_bulk_load(&self) -> StoreResult<()> {
        Ok(())
    }

    /// The current version of a resource, including a deletion tombstone; `None` if the id was
    /// never used for this type.
    async fn read(&self, resource_type: &str, id: &str) -> StoreResult<Option<ResourceVersion>>;

    /// One specific version (a tombstone for a deletion); `None` if there is no such version.
    async fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> StoreResult<Option<ResourceVersion>>;

    /// A page of history, newest first.
    async fn history(&self, query: &HistoryQuery) -> StoreResult<HistoryPage>;

    /// A page of current, not deleted resources matching `query`.
    async fn search(&self, query: &SearchQuery) -> StoreResult<SearchPage>;

    /// Removes one bounded batch for good (`$expunge`), in a transaction of its own; the
    /// number of versions removed (0 when nothing in the batch's scope is left).
    async fn expunge(&self, batch: &expunge::ExpungeBatch) -> StoreResult<u64>;

    /// `(type, id, search parameter)` of every current resource whose index has a reference
    /// to `target_type/target_id` (compartment membership is decided from the parameter).
    async fn referencing(
        &self,
        target_type: &str,
        target_id: &str,
    ) -> StoreResult<Vec<(String, String, String)>>;
    /// One batch of an export scan: versions of one type as they stood at `scan.cut`, in id
    /// order after `scan.after_id` (see [`export`]).
    async fn export_scan(&self, scan: &ExportScan) -> StoreResult<ExportBatch>;

    /// The batches of an export scan one after another, each continuing after the one
    /// before (from `scan.after_id`, at most `scan.limit` rows each), until the scan is
    /// complete or has read `rows` rows. A backend may read ahead of the consumer; dropping
    /// the stream stops the scan.
    fn export_batches(
        &self,
        scan: ExportScan,
        rows: u64,
    ) -> BoxStream<'_, StoreResult<ExportBatch>> {
        let batches = export::Batches::new(scan, rows);
        futures::stream::unfold(Some(batches), move |batches| async move {
            let mut batches = batches?;
            let scan = batches.next_scan()?;
            match self.export_scan(&scan).await {
                Ok(batch) => {
                    batches.advance(&batch);
                    Some((Ok(batch), Some(batches)))
                }
                Err(e) => Some((Err(e), None)),
            }
        })
        .boxed()
    }

    /// How many live resources at or before the cut the scan keeps, not counting resources
    /// changed after the cut (for progress reports).
    async fn export_count(&self, scan: &ExportScan) -> StoreResult<u64>;

    /// About one id in `every` of the current resources of a type (deleted ones included),
    /// unordered, the same on every call over the same data: for cutting an export of the
    /// type into slices ([`export::split_points`]) that run side by side.
    async fn export_sample(&self, resource_type: &str, every: u64) -> StoreResult<Vec<String>>;

    /// The custom search parameters marked as indexed for all stored resources.
    async fn indexed_params(&self) -> StoreResult<Vec<IndexedParam>>;

    /// Records that every stored resource has index entries for the custom search parameter
    /// `param.url` as defined by `param.fingerprint` (replacing an earlier mark), or removes
    /// the mark when `param.fingerprint` is empty.
    async fn mark_param_indexed(&self, param: &IndexedParam) -> StoreResult<()>;
}

/// What a bulk load ([`Store::begin_bulk_load`]) is about to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BulkLoad {
    /// Bytes of NDJSON input to load: a hint for choosing how to load.
    pub input_bytes: u64,
    /// Drop secondary search indexes for the load and rebuild them at its end; `None` lets
    /// the store decide (SQLite defers when the input is large beside the database).
    pub defer_indexes: Option<bool>,
}

/// How isolated a write transaction is from concurrent ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// Every read and write as if transactions ran one after another. Needed when a decision
    /// rests on a search (conditional interactions, transactions, scheduling).
    Serializable,
    /// Enough for writes whose only precondition is the current version of the resource they
    /// write: the version keys make concurrent writers of one resource conflict anyway, and
    /// unrelated writers do not abort each other.
    VersionChecked,
}

/// One write transaction. Reads inside it see its own writes.
#[async_trait]
pub trait StoreTx: Send {
    /// As [`Store::read`], inside this transaction.
    async fn read(&mut self, resource_type: &str, id: &str)
    -> StoreResult<Option<ResourceVersion>>;

    /// As [`Store::vread`], inside this transaction.
    async fn vread(
        &mut self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> StoreResult<Option<ResourceVersion>>;

    /// As [`Store::search`], inside this transaction.
    async fn search(&mut self, query: &SearchQuery) -> StoreResult<SearchPage>;

    /// Stores a new version and makes it current, replacing its search index entries.
    ///
    /// Fails with [`StoreError::VersionConflict`] unless the current version is exactly
    /// `write.previous_version` (`None`: the id must not exist yet for this type).
    async fn write(&mut self, write: VersionWrite) -> StoreResult<()>;

    /// The current versions of many resources, in the order of `keys` (as [`StoreTx::read`]
    /// each, in one round trip where the backend can).
    async fn read_many(
        &mut self,
        keys: &[(String, String)],
    ) -> StoreResult<Vec<Option<ResourceVersion>>> {
        let mut out = Vec::with_capacity(keys.len());
        for (resource_type, id) in keys {
            out.push(self.read(resource_type, id).await?);
        }
        Ok(out)
    }

    /// Stores several versions in order (as [`StoreTx::write`] each, in one round trip where
    /// the backend can); stops at the first failure.
    async fn write_many(&mut self, writes: Vec<VersionWrite>) -> StoreResult<()> {
        for write in writes {
            self.write(write).await?;
        }
        Ok(())
    }

    /// Replaces the search index entries of the current version of `resource_type/id` with
    /// `index`, without a new version (for `$reindex`). Returns `false`, changing nothing,
    /// when the current version is not `version_id` or is a deletion.
    async fn replace_index(
        &mut self,
        resource_type: &str,
        id: &str,
        version_id: i64,
        index: IndexEntries,
    ) -> StoreResult<bool>;

    /// Replaces the index entries of many resources at once (for `$reindex`), as
    /// [`StoreTx::replace_index`] each but in a few statements: within `scope`, the entries of
    /// each replacement's resource are replaced by its `index` when its current version is
    /// still `version_id` and not a deletion. A resource that changed since it was read is
    /// left alone (its own write indexed it). Returns, in order, whether each was replaced.
    async fn replace_index_many(
        &mut self,
        scope: &IndexScope,
        replacements: Vec<IndexReplacement>,
    ) -> StoreResult<Vec<bool>>;

    /// Stores the checkpoint (and progress) of `attempt` of job `job_id` inside this
    /// transaction, so that the checkpoint commits exactly when the work it describes does.
    /// `false`, changing nothing, when the attempt no longer holds the job; the caller should
    /// then drop the transaction.
    async fn job_checkpoint(
        &mut self,
        job_id: &str,
        attempt: i64,
        checkpoint: &[u8],
        progress: Option<&str>,
    ) -> StoreResult<bool>;

    /// As [`Store::expunge`], inside this transaction (so that a job's checkpoint can commit
    /// with the batch), counting the resources removed as well as the versions.
    async fn expunge(
        &mut self,
        batch: &expunge::ExpungeBatch,
    ) -> StoreResult<expunge::ExpungeCount>;
    /// Waits until no other transaction holds `key`, then holds it until this transaction
    /// ends, so that transactions locking one key run one after another (scheduling locks
    /// each Schedule it books on). Call it before anything else in the transaction: then
    /// everything the transaction reads includes the writes of the key's previous holder.
    /// Called later, it still serializes the holders, but a stale read may end the
    /// transaction with [`StoreError::Retryable`]. Lock several keys in one order (sorted) to
    /// avoid deadlocks. SQLite runs write transactions one at a time anyway, so there it does
    /// nothing.
    async fn lock(&mut self, key: &str) -> StoreResult<()> {
        let _ = key;
        Ok(())
    }

    /// Makes every write of this transaction durable and visible, or none of them.
    async fn commit(self: Box<Self>) -> StoreResult<()>;
}

/// Which index entries of a resource [`StoreTx::replace_index_many`] replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IndexScope {
    /// All of them.
    All,
    /// Only those of the parameters with these codes, which live in these tables (the
    /// replacements hold no others).
    Params {
        codes: Vec<String>,
        tables: Vec<IndexTable>,
    },
}

/// New index entries for the current version of one resource.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexReplacement {
    pub resource_type: String,
    pub id: String,
    /// The version the entries were extracted from.
    pub version_id: i64,
    pub index: IndexEntries,
}
