//! SQLite export scans (see [`crate::export`]).

use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::map_err;
use super::search::{count, row_data};
use crate::export::{self, ExportBatch, ExportScan, ScanColumns, Scanned};
use crate::sql::Dialect;
use crate::{ResourceVersion, StoreError, StoreResult, WriteMethod};

/// One batch of an export scan. A scan [`ExportScan::as_ndjson`] reads lean rows
/// ([`ScanColumns::Lean`]) and reads a row's whole version again by its key only when it is
/// not copied as a line.
pub(super) fn scan(conn: &Connection, scan: &ExportScan) -> StoreResult<ExportBatch> {
    let columns = if scan.as_ndjson {
        ScanColumns::Lean
    } else {
        ScanColumns::Version
    };
    // Column positions of id, last_updated, method and body.
    let [id_at, updated_at, method_at, body_at] = match columns {
        ScanColumns::Lean => [0, 1, 2, 3],
        ScanColumns::Version => [1, 3, 4, 5],
    };
    let statement = export::plan_scan(Dialect::Sqlite, scan, columns);
    let mut stmt = conn.prepare_cached(&statement.text).map_err(map_err)?;
    let mut rows = stmt
        .query(params_from_iter(statement.params.iter()))
        .map_err(map_err)?;
    let mut scanned = Scanned::for_scan(scan);
    while let Some(row) = rows.next().map_err(map_err)? {
        let id = row
            .get_ref(id_at)
            .and_then(|v| Ok(v.as_str()?))
            .map_err(map_err)?;
        let last_updated: i64 = row.get(updated_at).map_err(map_err)?;
        let method = row
            .get_ref(method_at)
            .and_then(|v| Ok(v.as_str()?))
            .map_err(map_err)?;
        let deleted = WriteMethod::from_code(method) == Some(WriteMethod::Delete);
        let body = row
            .get_ref(body_at)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(map_err)?;
        scanned.push(scan, id, last_updated, deleted, body, || match columns {
            ScanColumns::Version => row_data(row).map(|r| r.version).map_err(map_err),
            ScanColumns::Lean => current_version(conn, &scan.resource_type, id),
        })?;
    }
    drop(rows);
    let history = export::version_at(Dialect::Sqlite);
    export::finish_scan(scan, scanned, |version| {
        let mut stmt = conn.prepare_cached(&history).map_err(map_err)?;
        let found = stmt
            .query_row((&version.resource_type, &version.id, scan.cut), row_data)
            .optional()
            .map_err(map_err)?;
        Ok(found.map(|r| r.version))
    })
}

/// The live resources an export scan keeps at or before the cut.
pub(super) fn scan_count(conn: &Connection, scan: &ExportScan) -> StoreResult<u64> {
    let n = count(conn, &export::plan_count(Dialect::Sqlite, scan))?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A sample of a type's ids (see [`export::plan_sample`]).
pub(super) fn sample(
    conn: &Connection,
    resource_type: &str,
    every: u64,
) -> StoreResult<Vec<String>> {
    let statement = export::plan_sample(Dialect::Sqlite, resource_type, every);
    let mut stmt = conn.prepare_cached(&statement.text).map_err(map_err)?;
    let ids = stmt
        .query_map(params_from_iter(statement.params.iter()), |row| row.get(0))
        .map_err(map_err)?;
    ids.collect::<Result<_, _>>().map_err(map_err)
}

/// The current version of `resource_type/id`, read in the scan's own transaction.
fn current_version(
    conn: &Connection,
    resource_type: &str,
    id: &str,
) -> StoreResult<ResourceVersion> {
    let mut stmt = conn
        .prepare_cached(&export::version_by_key(Dialect::Sqlite))
        .map_err(map_err)?;
    stmt.query_row((resource_type, id), row_data)
        .optional()
        .map_err(map_err)?
        .map(|r| r.version)
        .ok_or_else(|| {
            StoreError::Backend(format!(
                "{resource_type}/{id} vanished during an export scan"
            ))
        })
}
