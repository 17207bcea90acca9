//! PostgreSQL export scans (see [`crate::export`]).

use deadpool_postgres::ClientWrapper;

use super::map_err;
use super::search::{count, row_data, rows};
use crate::export::{self, ExportBatch, ExportScan};
use crate::sql::Dialect;
use crate::{ResourceVersion, StoreResult};

/// One batch of an export scan.
pub(super) async fn scan(client: &ClientWrapper, scan: &ExportScan) -> StoreResult<ExportBatch> {
    let statement = export::plan_scan(Dialect::Postgres, scan);
    let current: Vec<ResourceVersion> = rows(client, &statement)
        .await?
        .into_iter()
        .map(|r| r.version)
        .collect();
    // Rows changed after the cut are rare; each is looked up on its own.
    let mut at_cut = Vec::new();
    let history = client
        .prepare_cached(&export::version_at(Dialect::Postgres))
        .await
        .map_err(map_err)?;
    for version in current
        .iter()
        .filter(|v| v.last_updated.millis() > scan.cut)
    {
        let row = client
            .query_opt(&history, &[&version.resource_type, &version.id, &scan.cut])
            .await
            .map_err(map_err)?;
        at_cut.push(row.map(|r| row_data(&r).map(|d| d.version)).transpose()?);
    }
    let mut at_cut = at_cut.into_iter();
    export::finish_scan(scan, current, |_| Ok(at_cut.next().flatten()))
}

/// The live resources an export scan keeps at or before the cut.
pub(super) async fn scan_count(client: &ClientWrapper, scan: &ExportScan) -> StoreResult<u64> {
    let n = count(client, &export::plan_count(Dialect::Postgres, scan)).await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
