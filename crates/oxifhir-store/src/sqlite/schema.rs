//! The SQLite schema as embedded, versioned migrations, and the connection settings.
//!
//! Migrations run inside `BEGIN IMMEDIATE` on the writer connection, so several processes
//! opening the same database at once apply each migration exactly once: the first takes the
//! write lock, the others wait (`busy_timeout`) and then find it recorded in
//! `schema_migrations`.
//!
//! Index tables are keyed by `(resource_type, id)` of the current version: a write replaces
//! all rows of its resource, a deletion removes them. Since migration 5 each is a
//! `WITHOUT ROWID` table whose primary key `(resource_type, id, param, n)` is that lookup;
//! queries that must seek it name it with [`crate::sql::sqlite_by_resource`].
//!
//! `resources` is a rowid table whose rowid is `seq` (since migration 8), with
//! `(resource_type, id)` a unique index: its rows carry bodies, which a table keyed by
//! `(resource_type, id)` would keep in its interior pages and spill into overflow pages.
//!
//! A body is stored once while its version is current: in `resources`, its `history` row
//! holding an empty `body`. A write that replaces the version first moves the body into that
//! history row. Queries of history read the body through [`crate::sql::history_columns`].
//! (Rows written before this rule hold their body twice, which reads the same.)

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::map_err;
use crate::StoreResult;

/// How long a connection waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Prepared statements kept per connection (search shapes vary with their conditions).
const STATEMENT_CACHE: usize = 128;

/// The migrations, in order; version `n` is `MIGRATIONS[n - 1]`. Never edit a released one:
/// append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: resources, history and the search index.
    "
    CREATE TABLE history (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        resource_type TEXT NOT NULL,
        id TEXT NOT NULL,
        version_id INTEGER NOT NULL,
        last_updated INTEGER NOT NULL,
        method TEXT NOT NULL,
        body BLOB NOT NULL,
        CONSTRAINT history_version_key UNIQUE (resource_type, id, version_id)
    );
    CREATE INDEX history_system_idx ON history (last_updated DESC, seq DESC);
    CREATE INDEX history_type_idx ON history (resource_type, last_updated DESC, seq DESC);

    CREATE TABLE resources (
        resource_type TEXT NOT NULL,
        id TEXT NOT NULL,
        version_id INTEGER NOT NULL,
        last_updated INTEGER NOT NULL,
        method TEXT NOT NULL,
        body BLOB NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (resource_type, id)
    ) WITHOUT ROWID;
    CREATE INDEX resources_seq_idx ON resources (resource_type, seq);
    CREATE INDEX resources_updated_idx ON resources (resource_type, last_updated, seq);
    CREATE INDEX resources_all_seq_idx ON resources (seq);

    CREATE TABLE idx_string (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        normalized TEXT NOT NULL, exact TEXT NOT NULL
    );
    CREATE INDEX idx_string_res ON idx_string (resource_type, id);
    CREATE INDEX idx_string_val ON idx_string (resource_type, param, normalized);

    CREATE TABLE idx_token (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        system TEXT, code TEXT, text TEXT
    );
    CREATE INDEX idx_token_res ON idx_token (resource_type, id);
    CREATE INDEX idx_token_val ON idx_token (resource_type, param, code, system);

    CREATE TABLE idx_reference (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        target_type TEXT, target_id TEXT, url TEXT NOT NULL
    );
    CREATE INDEX idx_reference_res ON idx_reference (resource_type, id);
    CREATE INDEX idx_reference_val ON idx_reference (resource_type, param, target_id, target_type);
    CREATE INDEX idx_reference_target ON idx_reference (target_type, target_id);
    CREATE INDEX idx_reference_url ON idx_reference (resource_type, param, url);

    CREATE TABLE idx_date (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL
    );
    CREATE INDEX idx_date_res ON idx_date (resource_type, id);
    CREATE INDEX idx_date_val ON idx_date (resource_type, param, start_ms, end_ms);

    CREATE TABLE idx_number (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        value REAL NOT NULL, low REAL NOT NULL, high REAL NOT NULL
    );
    CREATE INDEX idx_number_res ON idx_number (resource_type, id);
    CREATE INDEX idx_number_val ON idx_number (resource_type, param, value);

    CREATE TABLE idx_quantity (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        value REAL NOT NULL, low REAL NOT NULL, high REAL NOT NULL,
        system TEXT, code TEXT, unit TEXT
    );
    CREATE INDEX idx_quantity_res ON idx_quantity (resource_type, id);
    CREATE INDEX idx_quantity_val ON idx_quantity (resource_type, param, code, value);

    CREATE TABLE idx_uri (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, value TEXT NOT NULL
    );
    CREATE INDEX idx_uri_res ON idx_uri (resource_type, id);
    CREATE INDEX idx_uri_val ON idx_uri (resource_type, param, value);
    ",
    // 2: the durable job queue.
    "
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        owner TEXT,
        state TEXT NOT NULL,
        input BLOB NOT NULL,
        request_url TEXT NOT NULL,
        request_time INTEGER NOT NULL,
        transaction_time INTEGER,
        attempt INTEGER NOT NULL,
        worker TEXT,
        lease_until INTEGER,
        not_before INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        progress TEXT,
        checkpoint BLOB,
        result BLOB,
        error TEXT,
        started_at INTEGER,
        finished_at INTEGER,
        expires_at INTEGER,
        released_at INTEGER,
        updated_at INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX jobs_claim_idx ON jobs (state, not_before);
    CREATE INDEX jobs_listing_idx ON jobs (request_time, id);
    CREATE INDEX jobs_owner_idx ON jobs (owner, state);
    CREATE INDEX jobs_expiry_idx ON jobs (expires_at) WHERE expires_at IS NOT NULL;
    ",
    // 3: search. Index rows are found by (resource_type, id, param) for sort values and
    // replacement; value indexes end with `id` so that a condition's subquery reads the index
    // alone; searches order by (type, id) after their sort keys; marks of custom search
    // parameters indexed for all stored resources.
    "
    DROP INDEX idx_string_res;
    CREATE INDEX idx_string_res ON idx_string (resource_type, id, param);
    DROP INDEX idx_string_val;
    CREATE INDEX idx_string_val ON idx_string (resource_type, param, normalized, id);

    DROP INDEX idx_token_res;
    CREATE INDEX idx_token_res ON idx_token (resource_type, id, param);
    DROP INDEX idx_token_val;
    CREATE INDEX idx_token_val ON idx_token (resource_type, param, code, system, id);

    DROP INDEX idx_reference_res;
    CREATE INDEX idx_reference_res ON idx_reference (resource_type, id, param);
    DROP INDEX idx_reference_val;
    CREATE INDEX idx_reference_val
        ON idx_reference (resource_type, param, target_id, target_type, id);
    DROP INDEX idx_reference_target;
    CREATE INDEX idx_reference_target ON idx_reference (target_type, target_id, resource_type);
    DROP INDEX idx_reference_url;
    CREATE INDEX idx_reference_url ON idx_reference (resource_type, param, url, id);

    DROP INDEX idx_date_res;
    CREATE INDEX idx_date_res ON idx_date (resource_type, id, param);
    DROP INDEX idx_date_val;
    CREATE INDEX idx_date_val ON idx_date (resource_type, param, start_ms, end_ms, id);
    CREATE INDEX idx_date_end ON idx_date (resource_type, param, end_ms, start_ms, id);

    DROP INDEX idx_number_res;
    CREATE INDEX idx_number_res ON idx_number (resource_type, id, param);
    DROP INDEX idx_number_val;
    CREATE INDEX idx_number_val ON idx_number (resource_type, param, value, id);

    DROP INDEX idx_quantity_res;
    CREATE INDEX idx_quantity_res ON idx_quantity (resource_type, id, param);
    DROP INDEX idx_quantity_val;
    CREATE INDEX idx_quantity_val ON idx_quantity (resource_type, param, value, id);

    DROP INDEX idx_uri_res;
    CREATE INDEX idx_uri_res ON idx_uri (resource_type, id, param);
    DROP INDEX idx_uri_val;
    CREATE INDEX idx_uri_val ON idx_uri (resource_type, param, value, id);

    DROP INDEX resources_updated_idx;
    CREATE INDEX resources_updated_idx ON resources (resource_type, last_updated, id);

    CREATE TABLE search_param_indexed (
        url TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        marked_at INTEGER NOT NULL
    );
    ",
    // 4: an export's count of the live versions of a type at its cut reads this index alone
    // (it went to the table for `method`, one lookup per row).
    "
    DROP INDEX resources_updated_idx;
    CREATE INDEX resources_updated_idx ON resources (resource_type, last_updated, id, method);
    ",
    // 5: index tables clustered by resource (`WITHOUT ROWID`, keyed by `(resource_type, id,
    // param, n)`, `n` numbering a resource's rows of the table): a row is one B-tree entry
    // instead of two (the row and the `(resource_type, id, param)` index), which an import
    // writes about 15 times per resource of the synthetic data set. Existing rows are numbered
    // in their insertion order.
    "
    ALTER TABLE idx_string RENAME TO idx_string_old;
    CREATE TABLE idx_string (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        normalized TEXT NOT NULL, exact TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (resource_type, id, param, n)
    ) WITHOUT ROWID;
    INSERT INTO idx_string (resource_type, id, param, normalized, exact, n)
        SELECT resource_type, id, param, normalized, exact,
            row_number() OVER (PARTITION BY resource_type, id ORDER BY rowid)
        FROM idx_string_old;
    DROP TABLE idx_string_old;
    CREATE INDEX idx_string_val ON idx_string (resource_type, param, normalized, id);

    ALTER TABLE idx_token RENAME TO idx_token_old;
    CREATE TABLE idx_token (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        system TEXT, code TEXT, text TEXT,
        n INTEGER NOT NULL,
        PRIMARY KEY (resource_type, id, param, n)
    ) WITHOUT ROWID;
    INSERT INTO idx_token (resource_type, id, param, system, code, text, n)
        SELECT resource_type, id, param, system, code, text,
            row_number() OVER (PARTITION BY resource_type, id ORDER BY rowid)
        FROM idx_token_old;
    DROP TABLE idx_token_old;
    CREATE INDEX idx_token_val ON idx_token (resource_type, param, code, system, id);

    ALTER TABLE idx_reference RENAME TO idx_reference_old;
    CREATE TABLE idx_reference (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        target_type TEXT, target_id TEXT, url TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (resource_type, id, param, n)
    ) WITHOUT ROWID;
    INSERT INTO idx_reference (resource_type, id, param, target_type, target_id, url, n)
        SELECT resource_type, id, param, target_type, target_id, url,
            row_number() OVER (PARTITION BY resource_type, id ORDER BY rowid)
        FROM idx_reference_old;
    DROP TABLE idx_reference_old;
    CREATE INDEX idx_reference_val
        ON idx_reference (resource_type, param, target_id, target_type, id);
    CREATE INDEX idx_reference_target ON idx_reference (target_type, target_id, resource_type);
    CREATE INDEX idx_reference_url ON idx_reference (resource_type, param, url, id);

    ALTER TABLE idx_date RENAME TO idx_date_old;
    CREATE TABLE idx_date (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (resource_type, id, param, n)
    ) WITHOUT ROWID;
    INSERT INTO idx_date (resource_type, id, param, start_ms, end_ms, n)
        SELECT resource_type, id, param, start_ms, end_ms,
            row_number() OVER (PARTITION BY resource_type, id ORDER BY rowid)
        FROM idx_date_old;
    DROP TABLE idx_date_old;
    CREATE INDEX idx_date_val ON idx_date (resource_type, param, start_ms, end_ms, id);
    CREATE INDEX idx_date_end ON idx_date (resource_type, param, end_ms, start_ms, id);

    ALTER TABLE idx_number RENAME TO idx_number_old;
    CREATE TABLE idx_number (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        value REAL NOT NULL, low REAL NOT NULL, high REAL NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (resource_type, id, param, n)
    ) WITHOUT ROWID;
    INSERT INTO idx_number (resource_type, id, param, value, low, high, n)
        SELECT resource_type, id, param, value, low, high,
            row_number() OVER (PARTITION BY resource_type, id ORDER BY rowid)
        FROM idx_number_old;
    DROP TABLE idx_number_old;
    CREATE INDEX idx_number_val ON idx_number (resource_type, param, value, id);

    ALTER TABLE idx_quantity RENAME TO idx_quantity_old;
    CREATE TABLE idx_quantity (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        value REAL NOT NULL, low REAL NOT NULL, high REAL NOT NULL,
        system TEXT, code TEXT, unit TEXT,
        n INTEGER NOT NULL,
        PRIMARY KEY (resource_type, id, param, n)
    ) WITHOUT ROWID;
    INSERT INTO idx_quantity (resource_type, id, param, value, low, high, system, code, unit, n)
        SELECT resource_type, id, param, value, low, high, system, code, unit,
            row_number() OVER (PARTITION BY resource_type, id ORDER BY rowid)
        FROM idx_quantity_old;
    DROP TABLE idx_quantity_old;
    CREATE INDEX idx_quantity_val ON idx_quantity (resource_type, param, value, id);

    ALTER TABLE idx_uri RENAME TO idx_uri_old;
    CREATE TABLE idx_uri (
        resource_type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL,
        value TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (resource_type, id, param, n)
    ) WITHOUT ROWID;
    INSERT INTO idx_uri (resource_type, id, param, value, n)
        SELECT resource_type, id, param, value,
            row_number() OVER (PARTITION BY resource_type, id ORDER BY rowid)
        FROM idx_uri_old;
    DROP TABLE idx_uri_old;
    CREATE INDEX idx_uri_val ON idx_uri (resource_type, param, value, id);
    ",
    // 6 and 7: the same in both backends.
    crate::sql::migrations::UNION_PARAMETER_ROWS,
    crate::sql::migrations::PARTIAL_REFERENCE_URL_INDEX,
    // 8: `resources` keyed by `seq` (its rowid), `(resource_type, id)` a unique index. As a
    // `WITHOUT ROWID` table keyed by `(resource_type, id)` it kept whole rows, bodies
    // included, in its interior pages and spilled every row over about a thousand bytes
    // into an overflow page of its own: 1.4 GB for 0.8 GB of rows in the synthetic data set.
    // A rowid table keeps bodies in its leaves, and a load appends to it.
    "
    CREATE TABLE resources_by_seq (
        resource_type TEXT NOT NULL,
        id TEXT NOT NULL,
        version_id INTEGER NOT NULL,
        last_updated INTEGER NOT NULL,
        method TEXT NOT NULL,
        body BLOB NOT NULL,
        seq INTEGER PRIMARY KEY,
        CONSTRAINT resources_key UNIQUE (resource_type, id)
    );
    INSERT INTO resources_by_seq
        SELECT resource_type, id, version_id, last_updated, method, body, seq
        FROM resources ORDER BY seq;
    DROP TABLE resources;
    ALTER TABLE resources_by_seq RENAME TO resources;
    CREATE INDEX resources_seq_idx ON resources (resource_type, seq);
    CREATE INDEX resources_updated_idx ON resources (resource_type, last_updated, id, method);
    ",
    // 9: composite entries keyed code first, once per value.
    crate::sql::migrations::COMPOSITE_KEYS_CODE_FIRST_SQLITE,
];

/// The settings a bulk load changes on the writer connection, as they normally are.
pub(crate) const WRITER_SETTINGS: &str = "PRAGMA synchronous = NORMAL;
     PRAGMA cache_size = -32000;
     PRAGMA wal_autocheckpoint = 1000;";

/// What a connection is for; each has its own settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The one connection that writes.
    Writer,
    /// Reads and searches: a 32 MB page cache and the first 256 MB of the file memory-mapped.
    Reader,
    /// Long sequential scans (export, reindex): no memory map and a 2 MB page cache, since a
    /// scan reads each page once, so its memory stays flat whatever the database's size.
    Scanner,
}

/// Opens a connection with the store's settings for `role`.
///
/// WAL with `synchronous=NORMAL`: a committed transaction survives a crash of the process,
/// but a power loss or OS crash may lose the last transactions before the next checkpoint
/// (the database itself stays consistent).
pub(crate) fn connect(path: &Path, role: Role) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(map_err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(map_err)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.execute_batch(
        "PRAGMA foreign_keys = ON;
         PRAGMA temp_store = MEMORY;",
    )
    .map_err(map_err)?;
    conn.execute_batch(WRITER_SETTINGS).map_err(map_err)?;
    let role_settings = match role {
        // WAL is a property of the database file: the writer sets it, the others follow
        // (and so do not undo a bulk load's rollback journal, see `bulk.rs`).
        Role::Writer => "PRAGMA journal_mode = WAL; PRAGMA mmap_size = 268435456;",
        Role::Reader => "PRAGMA mmap_size = 268435456; PRAGMA query_only = ON;",
        Role::Scanner => "PRAGMA mmap_size = 0; PRAGMA cache_size = -2000; PRAGMA query_only = ON;",
    };
    conn.execute_batch(role_settings).map_err(map_err)?;
    Ok(conn)
}

/// Applies the migrations this database has not seen yet; returns the schema version.
pub(crate) fn migrate(conn: &mut Connection) -> StoreResult<i64> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(map_err)?;
    let result = apply_pending(conn);
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = conn.execute_batch(end).map_err(map_err);
    let version = result?;
    ended?;
    Ok(version)
}

fn apply_pending(conn: &Connection) -> StoreResult<i64> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )
    .map_err(map_err)?;
    let current: i64 = conn
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(map_err)?;
    let mut version = current;
    for (index, migration) in MIGRATIONS.iter().enumerate() {
        let number = i64::try_from(index).unwrap_or(i64::MAX - 1) + 1;
        if number <= current {
            continue;
        }
        conn.execute_batch(migration).map_err(map_err)?;
        conn.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            (number, oxifhir_model::Instant::now().millis()),
        )
        .map_err(map_err)?;
        version = number;
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::{MIGRATIONS, migrate};
    use crate::sql::{Dialect, plan_search};
    use crate::{Condition, EntryTest, ReferenceTest, SearchQuery};

    /// A search by a reference's URL reads the partial index, without statistics and without
    /// being told to.
    #[test]
    fn a_url_search_reads_the_url_index() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("migrate");
        let query = SearchQuery {
            resource_types: vec!["Observation".into()],
            conditions: vec![Condition::Match {
                param: "subject".into(),
                tests: vec![EntryTest::Reference(ReferenceTest::Url(
                    "http://other.org/fhir/Patient/1".into(),
                ))],
            }],
            count: 10,
            ..Default::default()
        };
        let plan = plan_search(Dialect::Sqlite, &query, &[]).expect("plan");
        let page = plan.page.expect("page");
        let mut explain = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", page.text))
            .expect("explain");
        let nulls = vec![rusqlite::types::Null; explain.parameter_count()];
        let steps: Vec<String> = explain
            .query_map(rusqlite::params_from_iter(nulls), |r| r.get(3))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert!(
            steps.iter().any(|s| s.contains("idx_reference_url")),
            "{steps:?}"
        );
    }

    /// A row of `resources`, column by column.
    type ResourceRow = (String, String, i64, i64, String, Vec<u8>, i64);

    /// The rows of `resources`, in key order.
    fn resource_rows(conn: &Connection) -> Vec<ResourceRow> {
        conn.prepare(
            "SELECT resource_type, id, version_id, last_updated, method, body, seq \
             FROM resources ORDER BY resource_type, id",
        )
        .expect("prepare")
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
    }

    /// Migration 8 turns `resources` into a table keyed by `seq`: every row comes through
    /// unchanged, its rowid is its `seq`, and `(resource_type, id)` is still unique.
    #[test]
    fn migration_8_keys_resources_by_seq() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .expect("migrations table");
        for (i, migration) in MIGRATIONS[..7].iter().enumerate() {
            conn.execute_batch(migration).expect("migration");
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?1, 0)",
                [i as i64 + 1],
            )
            .expect("record");
        }
        conn.execute_batch(
            "INSERT INTO history (seq, resource_type, id, version_id, last_updated, method, body)
             VALUES (1, 'Patient', 'b', 1, 10, 'POST', x'7b7d'),
                    (2, 'Patient', 'a', 1, 20, 'POST', x''),
                    (3, 'Patient', 'b', 2, 30, 'DELETE', x''),
                    (4, 'Observation', 'o', 1, 40, 'PUT', x'');
             INSERT INTO resources (resource_type, id, version_id, last_updated, method, body, seq)
             VALUES ('Patient', 'a', 1, 20, 'POST', x'7b2261227d', 2),
                    ('Patient', 'b', 2, 30, 'DELETE', x'', 3),
                    ('Observation', 'o', 1, 40, 'PUT', x'7b226f227d', 4);",
        )
        .expect("rows in the old layout");
        let before = resource_rows(&conn);

        assert_eq!(
            migrate(&mut conn).expect("migrate"),
            MIGRATIONS.len() as i64
        );

        assert_eq!(resource_rows(&conn), before);
        let keyed: i64 = conn
            .query_row(
                "SELECT count(*) FROM resources WHERE rowid = seq",
                [],
                |r| r.get(0),
            )
            .expect("rowids");
        assert_eq!(keyed, 3);
        let twice = conn.execute(
            "INSERT INTO resources (resource_type, id, version_id, last_updated, method, body, seq)
             VALUES ('Patient', 'a', 2, 50, 'PUT', x'', 5)",
            [],
        );
        assert!(twice.is_err_and(|e| super::super::is_unique_violation(&e)));
        let indexes: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'resources' ORDER BY name")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("names");
        assert_eq!(
            indexes,
            [
                "resources_seq_idx",
                "resources_updated_idx",
                "sqlite_autoindex_resources_1"
            ]
        );
    }
}
