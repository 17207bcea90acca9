//! PostgreSQL export scans (see [`crate::export`]).

use deadpool_postgres::ClientWrapper;

use super::map_err;
use super::search::{count, query, row_data};
use crate::export::{self, ExportBatch, ExportScan, ScanColumns, Scanned};
use crate::sql::Dialect;
use crate::{StoreResult, WriteMethod};

/// One batch of an export scan.
pub(super) async fn scan(client: &ClientWrapper, scan: &ExportScan) -> StoreResult<ExportBatch> {
    let statement = export::plan_scan(Dialect::Postgres, scan, ScanColumns::Version);
    let found = query(client, &statement).await?;
    let mut scanned = Scanned::for_scan(scan);
    for row in &found {
        let id: &str = row.try_get(1).map_err(map_err)?;
        let last_updated: i64 = row.try_get(3).map_err(map_err)?;
        let method: &str = row.try_get(4).map_err(map_err)?;
        let deleted = WriteMethod::from_code(method) == Some(WriteMethod::Delete);
        let body: &[u8] = row.try_get(5).map_err(map_err)?;
        scanned.push(scan, id, last_updated, deleted, body, || {
            row_data(row).map(|d| d.version)
        })?;
    }
    drop(found);
    // Rows changed after the cut are rare; each is looked up on its own.
    let mut at_cut = Vec::new();
    let history = client
        .prepare_cached(&export::version_at(Dialect::Postgres))
        .await
        .map_err(map_err)?;
    for version in scanned.after_cut(scan) {
        let row = client
            .query_opt(&history, &[&version.resource_type, &version.id, &scan.cut])
            .await
            .map_err(map_err)?;
        at_cut.push(row.map(|r| row_data(&r).map(|d| d.version)).transpose()?);
    }
    let mut at_cut = at_cut.into_iter();
    export::finish_scan(scan, scanned, |_| Ok(at_cut.next().flatten()))
}

/// The live resources an export scan keeps at or before the cut.
pub(super) async fn scan_count(client: &ClientWrapper, scan: &ExportScan) -> StoreResult<u64> {
    let n = count(client, &export::plan_count(Dialect::Postgres, scan)).await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A sample of a type's ids (see [`export::plan_sample`]).
pub(super) async fn sample(
    client: &ClientWrapper,
    resource_type: &str,
    every: u64,
) -> StoreResult<Vec<String>> {
    let rows = query(
        client,
        &export::plan_sample(Dialect::Postgres, resource_type, every),
    )
    .await?;
    rows.iter()
        .map(|row| row.try_get(0).map_err(map_err))
        .collect()
}
