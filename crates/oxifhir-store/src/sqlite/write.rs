//! SQLite writes: a new version into `history`, the current row in `resources`, and the
//! resource's search index rows replaced.
//!
//! The version check is race-free because every write runs on the single writer connection
//! inside `BEGIN IMMEDIATE`; the unique keys back it up.

use rusqlite::{Connection, OptionalExtension};

use super::{is_unique_violation, map_err};
use crate::sql::INDEX_TABLES;
use crate::{IndexEntries, StoreError, StoreResult, VersionWrite, WriteMethod};

fn conflict(write: &VersionWrite, found: Option<i64>) -> StoreError {
    StoreError::VersionConflict {
        resource_type: write.resource_type.clone(),
        id: write.id.clone(),
        expected: write.previous_version,
        found,
    }
}

/// Maps an error of an insert into a versioned key: a unique violation is a conflict.
fn keyed(write: &VersionWrite) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| {
        if is_unique_violation(&e) {
            conflict(write, Some(write.version_id))
        } else {
            map_err(e)
        }
    }
}

/// Stores `write` as the new current version (see [`crate::StoreTx::write`]).
pub(super) fn write(conn: &Connection, write: &VersionWrite) -> StoreResult<()> {
    let found: Option<i64> = conn
        .prepare_cached("SELECT version_id FROM resources WHERE resource_type = ?1 AND id = ?2")
        .map_err(map_err)?
        .query_row((&write.resource_type, &write.id), |r| r.get(0))
        .optional()
        .map_err(map_err)?;
    if found != write.previous_version {
        return Err(conflict(write, found));
    }
    let method = write.method.code();
    let last_updated = write.last_updated.millis();
    let seq: i64 = conn
        .prepare_cached(
            "INSERT INTO history (resource_type, id, version_id, last_updated, method, body) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING seq",
        )
        .map_err(map_err)?
        .query_row(
            (
                &write.resource_type,
                &write.id,
                write.version_id,
                last_updated,
                method,
                &write.body,
            ),
            |r| r.get(0),
        )
        .map_err(keyed(write))?;
    let current = if write.previous_version.is_none() {
        "INSERT INTO resources \
         (resource_type, id, version_id, last_updated, method, body, seq) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"
    } else {
        "UPDATE resources SET version_id = ?3, last_updated = ?4, method = ?5, body = ?6, \
         seq = ?7 WHERE resource_type = ?1 AND id = ?2"
    };
    conn.prepare_cached(current)
        .map_err(map_err)?
        .execute((
            &write.resource_type,
            &write.id,
            write.version_id,
            last_updated,
            method,
            &write.body,
            seq,
        ))
        .map_err(keyed(write))?;
    if write.previous_version.is_some() {
        delete_index(conn, &write.resource_type, &write.id)?;
    }
    if write.method != WriteMethod::Delete {
        insert_index(conn, &write.resource_type, &write.id, &write.index)?;
    }
    Ok(())
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
    insert_index(conn, t, id, index)?;
    Ok(true)
}

/// Inserts the index rows of one resource.
fn insert_index(conn: &Connection, t: &str, id: &str, index: &IndexEntries) -> StoreResult<()> {
    if !index.strings.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO idx_string (resource_type, id, param, normalized, exact) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(map_err)?;
        for e in &index.strings {
            stmt.execute((t, id, &e.param, &e.normalized, &e.exact))
                .map_err(map_err)?;
        }
    }
    if !index.tokens.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO idx_token (resource_type, id, param, system, code, text) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(map_err)?;
        for e in &index.tokens {
            stmt.execute((t, id, &e.param, &e.system, &e.code, &e.text))
                .map_err(map_err)?;
        }
    }
    if !index.references.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO idx_reference (resource_type, id, param, target_type, target_id, url) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(map_err)?;
        for e in &index.references {
            stmt.execute((t, id, &e.param, &e.target_type, &e.target_id, &e.url))
                .map_err(map_err)?;
        }
    }
    if !index.dates.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO idx_date (resource_type, id, param, start_ms, end_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(map_err)?;
        for e in &index.dates {
            stmt.execute((t, id, &e.param, e.start, e.end))
                .map_err(map_err)?;
        }
    }
    if !index.numbers.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO idx_number (resource_type, id, param, value, low, high) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(map_err)?;
        for e in &index.numbers {
            stmt.execute((t, id, &e.param, e.value, e.low, e.high))
                .map_err(map_err)?;
        }
    }
    if !index.quantities.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO idx_quantity \
                 (resource_type, id, param, value, low, high, system, code, unit) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(map_err)?;
        for e in &index.quantities {
            stmt.execute((
                t, id, &e.param, e.value, e.low, e.high, &e.system, &e.code, &e.unit,
            ))
            .map_err(map_err)?;
        }
    }
    if !index.uris.is_empty() {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO idx_uri (resource_type, id, param, value) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(map_err)?;
        for e in &index.uris {
            stmt.execute((t, id, &e.param, &e.value)).map_err(map_err)?;
        }
    }
    Ok(())
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
