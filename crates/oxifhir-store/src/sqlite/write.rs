//! SQLite writes: a new version into `history`, the current row in `resources`, and the
//! resource's search index rows replaced.
//!
//! The version check is race-free because every write runs on the single writer connection
//! inside `BEGIN IMMEDIATE`; the unique keys back it up.
//!
//! Index rows of consecutive writes are collected and inserted with multi-row `INSERT`s
//! ([`PendingIndex`]): a batch of thousands of resources has ten times as many index rows, and
//! one statement per row would cost more than the rows themselves. Each row gets `n`, its
//! number among the resource's rows of its table in this write, which makes the tables'
//! primary key `(resource_type, id, param, n)` unique (see `schema.rs`).

use rusqlite::types::ToSql;
use rusqlite::{Connection, OptionalExtension};

use super::borrowed::BorrowedInsert;
use super::{is_unique_violation, map_err};
use crate::sql::INDEX_TABLES;
use crate::{
    IndexEntries, IndexReplacement, IndexScope, StoreError, StoreResult, VersionWrite, WriteMethod,
};

fn conflict(write: &VersionWrite, found: Option<i64>) -> StoreError {
    StoreError::VersionConflict {
        resource_type: write.resource_type.clone(),
        id: write.id.clone(),
        expected: write.previous_version,
        found,
    }
}

/// Stores `write` as the new current version (see [`crate::StoreTx::write`]).
pub(super) fn write(conn: &Connection, write: &VersionWrite) -> StoreResult<()> {
    write_many(conn, std::slice::from_ref(write))
}

/// Stores `writes` in order, as [`write`] each (see [`crate::StoreTx::write_many`]); stops at
/// the first failure, leaving the transaction to be rolled back.
pub(super) fn write_many(conn: &Connection, writes: &[VersionWrite]) -> StoreResult<()> {
    let binding = Binding::for_call(writes.len());
    let mut versions = VersionStatements::prepare(conn, binding)?;
    let mut pending = PendingIndex::new(binding);
    let mut rest = writes;
    while !rest.is_empty() {
        let creates = rest
            .iter()
            .take(CREATES_PER_INSERT)
            .take_while(|w| w.previous_version.is_none())
            .count();
        let done = if creates == CREATES_PER_INSERT {
            store_creates(conn, &mut versions, &rest[..creates])?;
            creates
        } else {
            if rest[0].previous_version.is_some() {
                // Its old index rows are deleted below: rows still pending may be among them.
                pending.flush(conn)?;
            }
            versions.write(conn, &rest[0])?;
            1
        };
        for w in &rest[..done] {
            if w.method != WriteMethod::Delete {
                pending.add(&w.resource_type, &w.id, &w.index);
            }
        }
        rest = &rest[done..];
        if pending.len() >= FLUSH_ROWS {
            pending.flush(conn)?;
        }
    }
    pending.flush(conn)
}

/// The `VALUES` list of a multi-row `INSERT`: `rows` rows of `width` placeholders each.
fn placeholders(width: usize, rows: usize) -> String {
    let one = format!("({})", vec!["?"; width].join(", "));
    vec![one; rows].join(", ")
}

/// Creates stored together by [`store_creates`]; fewer in a row are stored one by one.
const CREATES_PER_INSERT: usize = 64;

/// Resources written (or reindexed) by one call from which its multi-row inserts bind their
/// values in place. Such statements are prepared anew by each call, about a million
/// instructions for one of [`ROWS_PER_INSERT`] index rows, which binding in place wins back
/// only over several hundred resources.
const IN_PLACE_FROM: usize = 512;

/// How the multi-row inserts of one call bind their values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binding {
    /// Through the connection's cached statements, which copy every text and blob.
    Copied,
    /// In place ([`BorrowedInsert`]), through statements prepared for the call.
    InPlace,
}

impl Binding {
    /// The binding for a call about `resources` resources (see [`IN_PLACE_FROM`]).
    fn for_call(resources: usize) -> Binding {
        if resources >= IN_PLACE_FROM {
            Binding::InPlace
        } else {
            Binding::Copied
        }
    }
}

/// A multi-row insert of one call, run as the call's [`Binding`] says.
struct RunInsert<'c> {
    binding: Binding,
    /// The statement when it binds in place, prepared by its first run.
    in_place: Option<BorrowedInsert<'c>>,
}

impl<'c> RunInsert<'c> {
    fn new(binding: Binding) -> Self {
        RunInsert {
            binding,
            in_place: None,
        }
    }

    /// Runs the insert `sql` with `values`.
    fn execute<T: ToSql>(
        &mut self,
        conn: &'c Connection,
        sql: &str,
        values: &[T],
    ) -> rusqlite::Result<()> {
        match self.binding {
            Binding::Copied => conn
                .prepare_cached(sql)?
                .execute(rusqlite::params_from_iter(values))
                .map(drop),
            Binding::InPlace => {
                let insert = match &mut self.in_place {
                    Some(insert) => insert,
                    none => none.insert(BorrowedInsert::prepare(conn, sql)?),
                };
                insert.execute(values)
            }
        }
    }
}

/// The two tables a run of creates is inserted into, in this order.
#[derive(Debug, Clone, Copy)]
enum CreatesInto {
    History,
    Resources,
}

impl CreatesInto {
    /// The [`CREATES_PER_INSERT`]-row insert (see [`store_creates`] for its values).
    fn sql(self) -> String {
        let (table, columns) = match self {
            CreatesInto::History => (
                "history",
                "seq, resource_type, id, version_id, last_updated, method, body",
            ),
            CreatesInto::Resources => (
                "resources",
                "resource_type, id, version_id, last_updated, method, body, seq",
            ),
        };
        format!(
            "INSERT INTO {table} ({columns}) VALUES {}",
            placeholders(7, CREATES_PER_INSERT)
        )
    }
}

/// Stores [`CREATES_PER_INSERT`] creates with one multi-row `INSERT` into `history` and one
/// into `resources`. They take the next `seq`s themselves (`history`'s `AUTOINCREMENT` then
/// records the last), so that each `resources` row can name its history row. An id that
/// exists fails the statements; the conflict names the first such write.
fn store_creates<'c>(
    conn: &'c Connection,
    versions: &mut VersionStatements<'c>,
    creates: &[VersionWrite],
) -> StoreResult<()> {
    let next_seq: i64 = conn
        .prepare_cached(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'history'), 0), \
             coalesce((SELECT max(seq) FROM history), 0)) + 1",
        )
        .map_err(map_err)?
        .query_row([], |r| r.get(0))
        .map_err(map_err)?;
    let stored = (|| {
        let seqs: Vec<i64> = (next_seq..).take(creates.len()).collect();
        let millis: Vec<i64> = creates.iter().map(|w| w.last_updated.millis()).collect();
        let methods: Vec<&str> = creates.iter().map(|w| w.method.code()).collect();
        let empty: &[u8] = &[];
        let mut bound: Vec<&dyn ToSql> = Vec::with_capacity(creates.len() * 7);
        for (i, w) in creates.iter().enumerate() {
            bound.extend([
                &seqs[i] as &dyn ToSql,
                &w.resource_type,
                &w.id,
                &w.version_id,
                &millis[i],
                &methods[i],
                &empty,
            ]);
        }
        let table = CreatesInto::History;
        versions.creates[table as usize].execute(conn, &table.sql(), &bound)?;
        bound.clear();
        for (i, w) in creates.iter().enumerate() {
            bound.extend([
                &w.resource_type as &dyn ToSql,
                &w.id,
                &w.version_id,
                &millis[i],
                &methods[i],
                &w.body,
                &seqs[i],
            ]);
        }
        let table = CreatesInto::Resources;
        versions.creates[table as usize].execute(conn, &table.sql(), &bound)?;
        Ok(())
    })();
    match stored {
        Ok(()) => Ok(()),
        Err(e) if is_unique_violation(&e) => {
            for w in creates {
                if let Some(found) = versions.current(w)? {
                    return Err(conflict(w, Some(found)));
                }
            }
            Err(conflict(&creates[0], None))
        }
        Err(e) => Err(map_err(e)),
    }
}

/// The statements that store versions, prepared once for a run of writes.
struct VersionStatements<'c> {
    current: rusqlite::CachedStatement<'c>,
    /// Moves the replaced version's body into its history row.
    keep_replaced: rusqlite::CachedStatement<'c>,
    history: rusqlite::CachedStatement<'c>,
    create: rusqlite::CachedStatement<'c>,
    update: rusqlite::CachedStatement<'c>,
    /// The [`CREATES_PER_INSERT`]-row inserts into `history` and `resources` ([`CreatesInto`]).
    creates: [RunInsert<'c>; 2],
}

impl<'c> VersionStatements<'c> {
    fn prepare(conn: &'c Connection, binding: Binding) -> StoreResult<Self> {
        let prepare = |sql: &str| conn.prepare_cached(sql).map_err(map_err);
        Ok(VersionStatements {
            current: prepare(
                "SELECT version_id FROM resources WHERE resource_type = ?1 AND id = ?2",
            )?,
            keep_replaced: prepare(
                "UPDATE history SET body = r.body FROM resources r \
                 WHERE r.resource_type = ?1 AND r.id = ?2 AND history.seq = r.seq \
                 AND length(history.body) = 0",
            )?,
            history: prepare(
                "INSERT INTO history (resource_type, id, version_id, last_updated, method, body) \
                 VALUES (?1, ?2, ?3, ?4, ?5, x'')",
            )?,
            create: prepare(
                "INSERT INTO resources \
                 (resource_type, id, version_id, last_updated, method, body, seq) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?,
            update: prepare(
                "UPDATE resources SET version_id = ?3, last_updated = ?4, method = ?5, \
                 body = ?6, seq = ?7 WHERE resource_type = ?1 AND id = ?2",
            )?,
            creates: [RunInsert::new(binding), RunInsert::new(binding)],
        })
    }

    /// The current version of the resource `write` replaces.
    fn current(&mut self, write: &VersionWrite) -> StoreResult<Option<i64>> {
        self.current
            .query_row((&write.resource_type, &write.id), |r| r.get(0))
            .optional()
            .map_err(map_err)
    }

    /// A failed insert into a versioned key: a unique violation is a conflict with the
    /// version stored now.
    fn refused(&mut self, write: &VersionWrite, e: rusqlite::Error) -> StoreError {
        if !is_unique_violation(&e) {
            return map_err(e);
        }
        match self.current(write) {
            Ok(found) => conflict(write, found),
            Err(e) => e,
        }
    }

    /// The history row, the current row (holding the body, see `schema.rs`), and the
    /// removal of the old index rows of one write. A create is not checked by a read first:
    /// the keys of `history` and `resources` refuse an id that exists.
    fn write(&mut self, conn: &Connection, write: &VersionWrite) -> StoreResult<()> {
        if write.previous_version.is_some() {
            let found = self.current(write)?;
            if found != write.previous_version {
                return Err(conflict(write, found));
            }
            self.keep_replaced
                .execute((&write.resource_type, &write.id))
                .map_err(map_err)?;
        }
        let method = write.method.code();
        let last_updated = write.last_updated.millis();
        if let Err(e) = self.history.execute((
            &write.resource_type,
            &write.id,
            write.version_id,
            last_updated,
            method,
        )) {
            return Err(self.refused(write, e));
        }
        let seq = conn.last_insert_rowid();
        let current = if write.previous_version.is_none() {
            &mut self.create
        } else {
            &mut self.update
        };
        if let Err(e) = current.execute((
            &write.resource_type,
            &write.id,
            write.version_id,
            last_updated,
            method,
            &write.body,
            seq,
        )) {
            return Err(self.refused(write, e));
        }
        if write.previous_version.is_some() {
            delete_index(conn, &write.resource_type, &write.id)?;
        }
        Ok(())
    }
}

/// Deletes the index rows of one resource.
fn delete_index(conn: &Connection, t: &str, id: &str) -> StoreResult<()> {
    for table in INDEX_TABLES {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE resource_type = ?1 AND id = ?2"
        ))
        .map_err(map_err)?
        .execute((t, id))
        .map_err(map_err)?;
    }
    Ok(())
}

/// Replaces the index rows of the current version of a resource (see
/// [`crate::StoreTx::replace_index`]).
pub(super) fn replace_index(
    conn: &Connection,
    t: &str,
    id: &str,
    version_id: i64,
    index: &IndexEntries,
) -> StoreResult<bool> {
    let current: Option<(i64, String)> = conn
        .prepare_cached(
            "SELECT version_id, method FROM resources WHERE resource_type = ?1 AND id = ?2",
        )
        .map_err(map_err)?
        .query_row((t, id), |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .map_err(map_err)?;
    match current {
        Some((current, method))
            if current == version_id && method != WriteMethod::Delete.code() => {}
        _ => return Ok(false),
    }
    delete_index(conn, t, id)?;
    let (t, id) = (t.to_owned(), id.to_owned());
    let mut pending = PendingIndex::default();
    pending.add(&t, &id, index);
    pending.flush(conn)?;
    Ok(true)
}

/// Replaces the index rows of many resources (see [`crate::StoreTx::replace_index_many`]).
pub(super) fn replace_index_many(
    conn: &Connection,
    scope: &IndexScope,
    replacements: &[IndexReplacement],
) -> StoreResult<Vec<bool>> {
    let mut select = conn
        .prepare_cached(
            "SELECT version_id, method FROM resources WHERE resource_type = ?1 AND id = ?2",
        )
        .map_err(map_err)?;
    let mut current = Vec::with_capacity(replacements.len());
    for r in replacements {
        let found: Option<(i64, String)> = select
            .query_row((&r.resource_type, &r.id), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .map_err(map_err)?;
        current.push(matches!(
            found,
            Some((version, method)) if version == r.version_id && method != WriteMethod::Delete.code()
        ));
    }
    let mut pending = PendingIndex::new(Binding::for_call(replacements.len()));
    match scope {
        IndexScope::All => {
            for (r, _) in replacements.iter().zip(&current).filter(|(_, c)| **c) {
                replace_changed(conn, r, &mut pending)?;
                if pending.len() >= FLUSH_ROWS {
                    pending.flush(conn)?;
                }
            }
            pending.flush(conn)?;
            return Ok(current);
        }
        IndexScope::Params { codes, tables } => {
            // One code (the usual case) is compared directly; several through a JSON list.
            let (condition, codes) = match codes.as_slice() {
                [one] => ("param = ?3", one.clone()),
                _ => (
                    "param IN (SELECT value FROM json_each(?3))",
                    serde_json::to_string(codes)
                        .map_err(|e| crate::StoreError::Backend(e.to_string()))?,
                ),
            };
            for table in tables.iter().map(|t| t.table_name()) {
                let mut delete = conn
                    .prepare_cached(&format!(
                        "DELETE FROM {table} WHERE resource_type = ?1 AND id = ?2 AND {condition}"
                    ))
                    .map_err(map_err)?;
                for (r, _) in replacements.iter().zip(&current).filter(|(_, c)| **c) {
                    delete
                        .execute((&r.resource_type, &r.id, &codes))
                        .map_err(map_err)?;
                }
            }
        }
    }
    for (r, _) in replacements.iter().zip(&current).filter(|(_, c)| **c) {
        pending.add(&r.resource_type, &r.id, &r.index);
        if pending.len() >= FLUSH_ROWS {
            pending.flush(conn)?;
        }
    }
    pending.flush(conn)?;
    Ok(current)
}

/// Replaces the index rows of `r` table by table, leaving alone the tables whose stored rows
/// already are the new ones (a reindex of the whole index mostly finds them unchanged, and
/// reading rows costs far less than deleting and inserting them with their indexes).
fn replace_changed<'a>(
    conn: &Connection,
    r: &'a IndexReplacement,
    pending: &mut PendingIndex<'a>,
) -> StoreResult<()> {
    let mut fresh = PendingIndex::default();
    fresh.add(&r.resource_type, &r.id, &r.index);
    for (new, queue) in fresh.tables.iter_mut().zip(pending.tables.iter_mut()) {
        let width = new.width();
        let mut wanted = Vec::with_capacity(new.rows());
        for row in new.values.chunks_exact(width) {
            // The stored rows' `n` is not compared: rows equal but for it are the same rows.
            wanted.push(row_key(&row[2..width - 1])?);
        }
        let columns = new.columns[2..].join(", ");
        // Without INDEXED BY, SQLite may prefer a value index that covers these columns and
        // scan every row of the type in it.
        let mut select = conn
            .prepare_cached(&format!(
                "SELECT {columns} FROM {table} {by_resource} \
                 WHERE resource_type = ?1 AND id = ?2",
                table = new.table,
                by_resource = crate::sql::sqlite_by_resource(new.table),
            ))
            .map_err(map_err)?;
        let mut stored = select
            .query_map((&r.resource_type, &r.id), |row| {
                (0..width - 3)
                    .map(|i| row.get::<_, rusqlite::types::Value>(i))
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .map(|values| format!("{values:?}"))
            })
            .map_err(map_err)?
            .collect::<rusqlite::Result<Vec<String>>>()
            .map_err(map_err)?;
        wanted.sort_unstable();
        stored.sort_unstable();
        if wanted == stored {
            continue;
        }
        conn.prepare_cached(&format!(
            "DELETE FROM {} WHERE resource_type = ?1 AND id = ?2",
            new.table
        ))
        .map_err(map_err)?
        .execute((&r.resource_type, &r.id))
        .map_err(map_err)?;
        queue.values.append(&mut new.values);
    }
    Ok(())
}

/// A row's values as SQLite hands them back, printed: equal keys are equal rows.
fn row_key(values: &[Bound<'_>]) -> StoreResult<String> {
    use rusqlite::types::{ToSqlOutput, Value, ValueRef};
    let mut row = Vec::with_capacity(values.len());
    for v in values {
        row.push(match v.to_sql().map_err(map_err)? {
            ToSqlOutput::Borrowed(value) => match value {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Integer(i),
                ValueRef::Real(f) => Value::Real(f),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            },
            ToSqlOutput::Owned(value) => value,
            // Never produced for index rows; a key no stored row has makes the table rewritten.
            _ => Value::Text("\u{0}unsupported".into()),
        });
    }
    Ok(format!("{row:?}"))
}

/// Pending index rows are inserted once there are this many.
const FLUSH_ROWS: usize = 4096;

/// Rows per multi-row `INSERT`; fewer left over go in one by one.
const ROWS_PER_INSERT: usize = 128;

/// A value bound to an index row: borrowed from the entry, or the row's number `n`.
#[derive(Clone, Copy)]
enum Bound<'a> {
    Value(&'a dyn ToSql),
    Number(i64),
}

impl ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Bound::Value(v) => v.to_sql(),
            Bound::Number(n) => n.to_sql(),
        }
    }
}

/// Index rows of one table waiting to be inserted, their values flattened row by row: the
/// [`TableRows::columns`], then `n`.
struct TableRows<'a> {
    table: &'static str,
    columns: &'static [&'static str],
    values: Vec<Bound<'a>>,
    /// The [`ROWS_PER_INSERT`]-row insert.
    insert: RunInsert<'a>,
}

impl<'a> TableRows<'a> {
    fn new(table: &'static str, columns: &'static [&'static str]) -> Self {
        TableRows {
            table,
            columns,
            values: Vec::new(),
            insert: RunInsert::new(Binding::Copied),
        }
    }

    /// Values per row.
    fn width(&self) -> usize {
        self.columns.len() + 1
    }

    fn rows(&self) -> usize {
        self.values.len() / self.width()
    }

    /// Queues one row: `values` of [`TableRows::columns`], numbered `n`.
    fn push<const N: usize>(&mut self, values: [&'a dyn ToSql; N], n: i64) {
        self.values.extend(values.map(Bound::Value));
        self.values.push(Bound::Number(n));
    }

    /// `INSERT INTO table (columns, n) VALUES (?, …), …` for `rows` rows.
    fn insert_sql(&self, rows: usize) -> String {
        format!(
            "INSERT INTO {} ({}, n) VALUES {}",
            self.table,
            self.columns.join(", "),
            placeholders(self.width(), rows)
        )
    }

    /// Inserts the queued rows: full runs of [`ROWS_PER_INSERT`] as the [`Binding`] says,
    /// the rest one by one.
    fn flush(&mut self, conn: &'a Connection) -> StoreResult<()> {
        let width = self.width();
        let mut chunks = self.values.chunks_exact(width * ROWS_PER_INSERT);
        if chunks.len() > 0 {
            let sql = self.insert_sql(ROWS_PER_INSERT);
            for chunk in chunks.by_ref() {
                self.insert.execute(conn, &sql, chunk).map_err(map_err)?;
            }
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut stmt = conn.prepare_cached(&self.insert_sql(1)).map_err(map_err)?;
            for row in rest.chunks_exact(width) {
                stmt.execute(rusqlite::params_from_iter(row))
                    .map_err(map_err)?;
            }
        }
        self.values.clear();
        Ok(())
    }
}

/// Index rows of several writes waiting for [`PendingIndex::flush`], one list per table.
struct PendingIndex<'a> {
    tables: [TableRows<'a>; 7],
}

impl Default for PendingIndex<'_> {
    fn default() -> Self {
        PendingIndex {
            tables: [
                TableRows::new(
                    "idx_string",
                    &["resource_type", "id", "param", "normalized", "exact"],
                ),
                TableRows::new(
                    "idx_token",
                    &["resource_type", "id", "param", "system", "code", "text"],
                ),
                TableRows::new(
                    "idx_reference",
                    &[
                        "resource_type",
                        "id",
                        "param",
                        "target_type",
                        "target_id",
                        "url",
                    ],
                ),
                TableRows::new(
                    "idx_date",
                    &["resource_type", "id", "param", "start_ms", "end_ms"],
                ),
                TableRows::new(
                    "idx_number",
                    &["resource_type", "id", "param", "value", "low", "high"],
                ),
                TableRows::new(
                    "idx_quantity",
                    &[
                        "resource_type",
                        "id",
                        "param",
                        "value",
                        "low",
                        "high",
                        "system",
                        "code",
                        "unit",
                    ],
                ),
                TableRows::new("idx_uri", &["resource_type", "id", "param", "value"]),
            ],
        }
    }
}

impl<'a> PendingIndex<'a> {
    /// No rows yet, to be inserted as `binding` says.
    fn new(binding: Binding) -> Self {
        let mut pending = PendingIndex::default();
        for table in &mut pending.tables {
            table.insert = RunInsert::new(binding);
        }
        pending
    }

    fn len(&self) -> usize {
        self.tables.iter().map(TableRows::rows).sum()
    }

    /// Queues the index rows of resource `t/id` (its type and id as bound values), numbered
    /// from 1 in each table.
    fn add(&mut self, t: &'a dyn ToSql, id: &'a dyn ToSql, index: &'a IndexEntries) {
        let [
            strings,
            tokens,
            references,
            dates,
            numbers,
            quantities,
            uris,
        ] = &mut self.tables;
        for (n, e) in (1..).zip(&index.strings) {
            strings.push([t, id, &e.param, &e.normalized, &e.exact], n);
        }
        for (n, e) in (1..).zip(&index.tokens) {
            tokens.push([t, id, &e.param, &e.system, &e.code, &e.text], n);
        }
        for (n, e) in (1..).zip(&index.references) {
            references.push([t, id, &e.param, &e.target_type, &e.target_id, &e.url], n);
        }
        for (n, e) in (1..).zip(&index.dates) {
            dates.push([t, id, &e.param, &e.start, &e.end], n);
        }
        for (n, e) in (1..).zip(&index.numbers) {
            numbers.push([t, id, &e.param, &e.value, &e.low, &e.high], n);
        }
        for (n, e) in (1..).zip(&index.quantities) {
            quantities.push(
                [
                    t, id, &e.param, &e.value, &e.low, &e.high, &e.system, &e.code, &e.unit,
                ],
                n,
            );
        }
        for (n, e) in (1..).zip(&index.uris) {
            uris.push([t, id, &e.param, &e.value], n);
        }
    }

    fn flush(&mut self, conn: &'a Connection) -> StoreResult<()> {
        self.tables.iter_mut().try_for_each(|t| t.flush(conn))
    }
}

/// Index rows per table (in [`INDEX_TABLES`] order) of one resource.
pub(super) fn index_counts(conn: &Connection, t: &str, id: &str) -> StoreResult<[i64; 7]> {
    let mut counts = [0; 7];
    for (count, table) in counts.iter_mut().zip(INDEX_TABLES) {
        *count = conn
            .prepare_cached(&format!(
                "SELECT count(*) FROM {table} WHERE resource_type = ?1 AND id = ?2"
            ))
            .map_err(map_err)?
            .query_row((t, id), |r| r.get(0))
            .map_err(map_err)?;
    }
    Ok(counts)
}
