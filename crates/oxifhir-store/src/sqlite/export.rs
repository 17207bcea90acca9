//! SQLite export scans (see [`crate::export`]).

use rusqlite::{Connection, OptionalExtension, params_from_iter};

use super::map_err;
use super::search::{count, row_data};
use crate::export::{self, ExportBatch, ExportScan, Scanned};
use crate::sql::Dialect;
use crate::{StoreResult, WriteMethod};

/// One batch of an export scan.
pub(super) fn scan(conn: &Connection, scan: &ExportScan) -> StoreResult<ExportBatch> {
    let statement = export::plan_scan(Dialect::Sqlite, scan);
    let mut stmt = conn.prepare_cached(&statement.text).map_err(map_err)?;
    let mut rows = stmt
        .query(params_from_iter(statement.params.iter()))
        .map_err(map_err)?;
    let mut scanned = Scanned::for_scan(scan);
    while let Some(row) = rows.next().map_err(map_err)? {
        let id = row
            .get_ref(1)
            .and_then(|v| Ok(v.as_str()?))
            .map_err(map_err)?;
        let last_updated: i64 = row.get(3).map_err(map_err)?;
        let method = row
            .get_ref(4)
            .and_then(|v| Ok(v.as_str()?))
            .map_err(map_err)?;
        let deleted = WriteMethod::from_code(method) == Some(WriteMethod::Delete);
        let body = row
            .get_ref(5)
            .and_then(|v| Ok(v.as_blob()?))
            .map_err(map_err)?;
        scanned.push(scan, id, last_updated, deleted, body, || {
            row_data(row).map(|r| r.version).map_err(map_err)
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
