//! SQLite export scans (see [`crate::export`]).

use rusqlite::{Connection, OptionalExtension};

use super::map_err;
use super::search::{count, row_data, rows};
use crate::export::{self, ExportBatch, ExportScan};
use crate::sql::Dialect;
use crate::{ResourceVersion, StoreResult};

/// One batch of an export scan.
pub(super) fn scan(conn: &Connection, scan: &ExportScan) -> StoreResult<ExportBatch> {
    let statement = export::plan_scan(Dialect::Sqlite, scan);
    let current: Vec<ResourceVersion> = rows(conn, &statement)?
        .into_iter()
        .map(|r| r.version)
        .collect();
    let history = export::version_at(Dialect::Sqlite);
    export::finish_scan(scan, current, |version| {
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
