//! Bulk loading on SQLite ([`crate::Store::begin_bulk_load`]): settings for big write
//! transactions on the writer connection, and, optionally, the search-value indexes of the
//! index tables dropped during the load and rebuilt (by sorting, far faster than row by row)
//! when it ends.
//!
//! **Crash safety:** a deferred index is recorded in `bulk_deferred_indexes` (name and its
//! `CREATE INDEX` text) in the same transaction that drops it, and [`restore`] runs whenever
//! the store is opened. A load that is killed leaves a consistent database (searches are
//! merely slow) whose next opening rebuilds what is missing. `synchronous = OFF` during the
//! load keeps the database consistent when the process dies (SQLite's writes are then in the
//! operating system's hands); only an OS crash or power loss could lose the last transactions.
//!
//! Which indexes are deferred: every index of an index table except those keyed by
//! `(resource_type, id)`, which writes need to replace a resource's rows (since migration 5
//! that key is each table's primary key, which is never dropped), and the time-ordered
//! indexes of `history`, whose rows are small (a current version's body is in `resources`,
//! see `schema.rs`) and so quick to sort. `history`'s unique version key stays: it refuses a
//! version written twice. The indexes of `resources` stay too: building them would read
//! every body again.
//!
//! **A rollback journal instead of the WAL:** in WAL mode every page is written twice, to
//! the WAL and then, by a checkpoint, into the database; a load is mostly new pages at the
//! end of the file, which a rollback journal does not copy at all (only pages that existed
//! when the transaction began are journaled). So a load switches the database to
//! `journal_mode = DELETE` when no other connection has it open — the store closes its idle
//! readers first; they reconnect on their next use and follow the file's mode — and back to
//! WAL when it ends. A killed load leaves a rollback journal, which SQLite plays back on the
//! next opening, whose writer connection then switches back to WAL. When another process
//! has the database open, the switch fails and the load keeps the WAL, with:
//!
//! **Checkpoints off the writer:** during the load a [`Checkpointer`] thread copies committed
//! pages from the WAL into the database on a connection of its own (`PASSIVE` checkpoints,
//! which never block the writer), so that this copy — a quarter of the writer's time when
//! it ran the checkpoints itself — overlaps with the next transactions. The writer keeps its
//! automatic checkpoint: it then only copies what the thread has not copied yet, and it is
//! what lets the WAL start over from its beginning instead of growing with the load.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

use super::map_err;
use super::schema;
use crate::StoreResult;
use crate::sql::INDEX_TABLES;

/// Settings of the writer connection while a bulk load runs: no fsync, a big page cache so
/// that a batch's pages are written once per transaction, and rarer checkpoints so that pages
/// changed by several transactions are copied into the database once.
const BULK_SETTINGS: &str = "PRAGMA synchronous = OFF;
     PRAGMA cache_size = -262144;
     PRAGMA wal_autocheckpoint = 16384;";

/// How often the [`Checkpointer`] copies what was committed since its last pass.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(100);

/// How the writer builds deferred indexes: SQLite sorts in runs of at most the page cache's
/// size, each sorted by a worker thread while the table is still being read, and merges the
/// runs from temporary files. With `temp_store = MEMORY` (the store's setting) it would sort
/// every row of the index in memory on one thread: 0.75 GB for the largest index of a
/// million-resource import, growing with the data set. Measured on that index (5.7 M rows):
/// 13-14 s and 0.9 GB before, 6-7 s and 70 MB with these settings. Runs of 8 MB sort
/// faster than runs of 16 MB (the token index of a five-million import: 16.8-17.6 s against
/// 18.5-19.0 s), and runs of 128 MB slower still (20.7-21.0 s).
const SORT_SETTINGS: &str =
    "PRAGMA threads = 2; PRAGMA temp_store = FILE; PRAGMA cache_size = -8192;";

/// A load whose input is at least this share of the database's size (as 1/n) defers indexes.
const DEFER_RATIO: u64 = 4;

/// How the transactions of a bulk load are journaled (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Journal {
    /// `journal_mode = DELETE`: new pages are written once.
    Rollback,
    /// The WAL, kept because another connection has the database open.
    Wal,
}

/// Applies the bulk settings, leaves WAL mode when it can, and, when `defer` says so (or, if
/// `None`, when `input_bytes` of NDJSON is large beside the database), drops the deferrable
/// indexes. The caller has closed its other connections to the database.
fn begin(conn: &Connection, input_bytes: u64, defer: Option<bool>) -> StoreResult<Journal> {
    conn.execute_batch(BULK_SETTINGS).map_err(map_err)?;
    let defer = match defer {
        Some(d) => d,
        None => input_bytes.saturating_mul(DEFER_RATIO) >= database_bytes(conn)?,
    };
    if defer {
        defer_indexes(conn)?;
    }
    // A connection of another process keeps the database in WAL mode ("database is locked",
    // at once): the load then runs as before, with the checkpoint thread.
    let journal = match journal_mode(conn, "DELETE") {
        Ok(mode) if mode == "delete" => Journal::Rollback,
        Ok(mode) => {
            tracing::info!(%mode, "the database stays in its journal mode during the load");
            Journal::Wal
        }
        Err(e) => {
            tracing::info!(error = %e, "the database stays in WAL mode during the load (open elsewhere)");
            Journal::Wal
        }
    };
    Ok(journal)
}

/// Rebuilds deferred indexes (while `checkpointer` still runs, so that it copies each index
/// as the next one is built), stops the checkpointer, restores the normal settings, and
/// returns to WAL mode (or checkpoints the WAL). The caller has closed its other connections
/// to the database.
fn end(conn: &Connection, journal: Journal, checkpointer: Option<Checkpointer>) -> StoreResult<()> {
    let restored = restore(conn);
    drop(checkpointer);
    let settings = conn.execute_batch(schema::WRITER_SETTINGS).map_err(map_err);
    restored?;
    settings?;
    match journal {
        Journal::Rollback => {
            let mode = journal_mode(conn, "WAL")?;
            if mode != "wal" {
                // Readers work in either mode; the next opening of the store sets WAL again.
                tracing::warn!(%mode, "could not return the database to WAL mode after a load");
            }
            Ok(())
        }
        Journal::Wal => conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .map_err(map_err),
    }
}

/// A bulk load in progress: how it journals, and its checkpoint thread when that is the WAL.
pub(super) struct Running {
    journal: Journal,
    checkpointer: Option<Checkpointer>,
}

impl Running {
    /// Begins a bulk load on `conn` (see [`begin`]) of the database at `path`.
    pub(super) fn begin(
        conn: &Connection,
        path: &Path,
        input_bytes: u64,
        defer: Option<bool>,
    ) -> StoreResult<Self> {
        let journal = begin(conn, input_bytes, defer)?;
        let checkpointer = match journal {
            Journal::Wal => Some(Checkpointer::start(path)?),
            Journal::Rollback => None,
        };
        Ok(Running {
            journal,
            checkpointer,
        })
    }

    /// Ends the load on `conn` (see [`end`]).
    pub(super) fn end(self, conn: &Connection) -> StoreResult<()> {
        end(conn, self.journal, self.checkpointer)
    }
}

/// Sets the journal mode; returns the mode in effect afterwards.
fn journal_mode(conn: &Connection, mode: &str) -> StoreResult<String> {
    conn.query_row(&format!("PRAGMA journal_mode = {mode}"), [], |r| {
        r.get::<_, String>(0)
    })
    .map_err(map_err)
}

/// A thread checkpointing the WAL on its own connection every [`CHECKPOINT_INTERVAL`] until
/// it is dropped (see the module's documentation).
struct Checkpointer {
    /// Set to `true` (and notified) to stop the thread.
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens a connection to the database at `path` and starts the thread.
    fn start(path: &Path) -> StoreResult<Self> {
        let conn = schema::connect(path, schema::Role::Writer)?;
        // As durable as the writer during the load: no fsync after a checkpoint.
        conn.execute_batch("PRAGMA synchronous = OFF; PRAGMA cache_size = -2000;")
            .map_err(map_err)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint_until_stopped(&conn, &signal))
            .map_err(|e| crate::StoreError::Backend(format!("cannot start a thread: {e}")))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::warn!("the SQLite checkpoint thread panicked");
        }
    }
}

fn checkpoint_until_stopped(conn: &Connection, stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wake) = stop;
    loop {
        let guard = stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = wake
            .wait_timeout_while(guard, CHECKPOINT_INTERVAL, |stopped| !*stopped)
            .unwrap_or_else(|e| e.into_inner());
        if *guard {
            return;
        }
        drop(guard);
        // A pass that finds the writer's own checkpoint running fails busy: the next one
        // copies what it left.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "background checkpoint failed");
        }
    }
}

fn database_bytes(conn: &Connection) -> StoreResult<u64> {
    let pages: i64 = conn
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .map_err(map_err)?;
    let size: i64 = conn
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .map_err(map_err)?;
    Ok(u64::try_from(pages.saturating_mul(size)).unwrap_or(0))
}

/// Runs `f` inside `BEGIN IMMEDIATE … COMMIT`.
fn in_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> StoreResult<T>,
) -> StoreResult<T> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(map_err)?;
    match f(conn) {
        Ok(v) => {
            conn.execute_batch("COMMIT").map_err(map_err)?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Drops the deferrable indexes, recording each first.
fn defer_indexes(conn: &Connection) -> StoreResult<()> {
    in_transaction(conn, |conn| {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS bulk_deferred_indexes (
                 name TEXT PRIMARY KEY,
                 sql TEXT NOT NULL
             )",
        )
        .map_err(map_err)?;
        for (name, sql) in deferrable(conn)? {
            conn.execute(
                "INSERT OR REPLACE INTO bulk_deferred_indexes (name, sql) VALUES (?1, ?2)",
                (&name, &sql),
            )
            .map_err(map_err)?;
            conn.execute_batch(&format!("DROP INDEX \"{name}\""))
                .map_err(map_err)?;
        }
        Ok(())
    })
}

/// `(name, CREATE INDEX text)` of every index of an index table not keyed by
/// `(resource_type, id)`, and of `history`'s time-ordered indexes.
fn deferrable(conn: &Connection) -> StoreResult<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut stmt = conn
        .prepare(
            "SELECT name, sql FROM sqlite_schema \
             WHERE type = 'index' AND tbl_name = ?1 AND sql IS NOT NULL",
        )
        .map_err(map_err)?;
    for table in INDEX_TABLES.iter().chain(&["history"]) {
        let indexes = stmt
            .query_map([table], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(map_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(map_err)?;
        for (name, sql) in indexes {
            if !keyed_by_resource(conn, &name)? {
                out.push((name, sql));
            }
        }
    }
    Ok(out)
}

/// True when the index's leading columns are `resource_type, id`.
fn keyed_by_resource(conn: &Connection, index: &str) -> StoreResult<bool> {
    let columns = conn
        .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno LIMIT 2")
        .map_err(map_err)?
        .query_map([index], |r| r.get::<_, Option<String>>(0))
        .map_err(map_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(map_err)?;
    Ok(columns == [Some("resource_type".to_owned()), Some("id".to_owned())])
}

/// Rebuilds every index recorded as deferred (after a finished or an interrupted bulk load);
/// returns how many it built.
pub(super) fn restore(conn: &Connection) -> StoreResult<usize> {
    // Most openings find nothing to do: check without taking the write lock, so stores
    // opened at the same time do not queue up behind each other here.
    if !deferred_table_exists(conn)? {
        return Ok(0);
    }
    let cache: i64 = conn
        .query_row("PRAGMA cache_size", [], |r| r.get(0))
        .map_err(map_err)?;
    conn.execute_batch(SORT_SETTINGS).map_err(map_err)?;
    let built = rebuild_deferred(conn);
    let reset = conn
        .execute_batch(&format!(
            "PRAGMA threads = 0; PRAGMA temp_store = MEMORY; PRAGMA cache_size = {cache};"
        ))
        .map_err(map_err);
    let built = built?;
    reset?;
    Ok(built)
}

/// True when a bulk load recorded deferred indexes (and has not rebuilt them yet).
fn deferred_table_exists(conn: &Connection) -> StoreResult<bool> {
    let recorded: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'bulk_deferred_indexes'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(map_err)?;
    Ok(recorded.is_some())
}

/// Builds the recorded indexes, each in a transaction of its own (so that a checkpoint can
/// copy one while the next is built), then forgets the record. Each transaction checks again
/// what is missing: another process opening the store may be rebuilding them too.
fn rebuild_deferred(conn: &Connection) -> StoreResult<usize> {
    let deferred = in_transaction(conn, |conn| {
        if !deferred_table_exists(conn)? {
            return Ok(Vec::new());
        }
        conn.prepare("SELECT name, sql FROM bulk_deferred_indexes ORDER BY name")
            .map_err(map_err)?
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .map_err(map_err)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(map_err)
    })?;
    let mut built = 0;
    for (name, sql) in &deferred {
        built += in_transaction(conn, |conn| {
            if !deferred_table_exists(conn)? {
                return Ok(0);
            }
            let present: Option<i64> = conn
                .query_row(
                    "SELECT 1 FROM sqlite_schema WHERE type = 'index' AND name = ?1",
                    [name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(map_err)?;
            if present.is_some() {
                return Ok(0);
            }
            tracing::info!(index = %name, "building a deferred search index");
            conn.execute_batch(sql).map_err(map_err)?;
            Ok(1)
        })?;
    }
    in_transaction(conn, |conn| {
        if deferred_table_exists(conn)? {
            conn.execute_batch("DROP TABLE bulk_deferred_indexes")
                .map_err(map_err)?;
        }
        Ok(())
    })?;
    Ok(built)
}
