//! PostgreSQL reads: by id, by version, and searches over current resources.

use deadpool_postgres::ClientWrapper;
use oxifhir_model::Instant;
use tokio_postgres::Row;

use super::{driver_params, map_err, param_refs};
use crate::cursor::CursorValue;
use crate::sql::{self, Dialect, KeyKind, RowData, Sql, VERSION_COLUMNS};
use crate::{ResourceVersion, SearchPage, SearchQuery, StoreResult};

/// Decodes a row selected with [`VERSION_COLUMNS`].
pub(super) fn row_data(row: &Row) -> StoreResult<RowData> {
    row_with_keys(row, &[])
}

/// Decodes a row selected with [`VERSION_COLUMNS`] followed by sort-key columns of `keys`.
fn row_with_keys(row: &Row, keys: &[KeyKind]) -> StoreResult<RowData> {
    let mut values = Vec::with_capacity(keys.len());
    for (i, kind) in keys.iter().enumerate() {
        let column = 7 + i;
        let value = match kind {
            KeyKind::Int => row
                .try_get::<_, Option<i64>>(column)
                .map(|v| v.map(CursorValue::Int)),
            KeyKind::Float => row
                .try_get::<_, Option<f64>>(column)
                .map(|v| v.map(CursorValue::Float)),
            KeyKind::Text => row
                .try_get::<_, Option<String>>(column)
                .map(|v| v.map(CursorValue::Text)),
        }
        .map_err(map_err)?;
        values.push(value.unwrap_or(CursorValue::Null));
    }
    let code: &str = row.try_get(4).map_err(map_err)?;
    Ok(RowData {
        version: ResourceVersion {
            resource_type: row.try_get(0).map_err(map_err)?,
            id: row.try_get(1).map_err(map_err)?,
            version_id: row.try_get(2).map_err(map_err)?,
            last_updated: Instant::from_millis(row.try_get(3).map_err(map_err)?),
            method: sql::method_from_code(code)?,
            body: row.try_get(5).map_err(map_err)?,
        },
        seq: row.try_get(6).map_err(map_err)?,
        keys: values,
    })
}

/// Runs a statement selecting [`VERSION_COLUMNS`] and decodes every row.
pub(super) async fn rows(client: &ClientWrapper, statement: &Sql) -> StoreResult<Vec<RowData>> {
    rows_with_keys(client, statement, &[]).await
}

/// Runs a statement selecting [`VERSION_COLUMNS`] and sort-key columns of `keys`.
async fn rows_with_keys(
    client: &ClientWrapper,
    statement: &Sql,
    keys: &[KeyKind],
) -> StoreResult<Vec<RowData>> {
    let found = query(client, statement).await?;
    found.iter().map(|row| row_with_keys(row, keys)).collect()
}

/// Runs a statement (prepared once per connection) and returns its rows undecoded.
pub(super) async fn query(client: &ClientWrapper, statement: &Sql) -> StoreResult<Vec<Row>> {
    let prepared = client
        .prepare_cached(&statement.text)
        .await
        .map_err(map_err)?;
    let params = driver_params(&statement.params);
    client
        .query(&prepared, &param_refs(&params))
        .await
        .map_err(map_err)
}

/// Runs a `SELECT count(*)` statement.
pub(super) async fn count(client: &ClientWrapper, statement: &Sql) -> StoreResult<i64> {
    let prepared = client
        .prepare_cached(&statement.text)
        .await
        .map_err(map_err)?;
    let params = driver_params(&statement.params);
    let row = client
        .query_one(&prepared, &param_refs(&params))
        .await
        .map_err(map_err)?;
    row.try_get(0).map_err(map_err)
}

/// The current version of a resource (tombstones included).
pub(super) async fn read(
    client: &ClientWrapper,
    resource_type: &str,
    id: &str,
) -> StoreResult<Option<ResourceVersion>> {
    let prepared = client
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM resources WHERE resource_type = $1 AND id = $2"
        ))
        .await
        .map_err(map_err)?;
    let row = client
        .query_opt(&prepared, &[&resource_type, &id])
        .await
        .map_err(map_err)?;
    row.map(|r| row_data(&r).map(|d| d.version)).transpose()
}

/// One version of a resource.
pub(super) async fn vread(
    client: &ClientWrapper,
    resource_type: &str,
    id: &str,
    version_id: i64,
) -> StoreResult<Option<ResourceVersion>> {
    let prepared = client
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM history \
             WHERE resource_type = $1 AND id = $2 AND version_id = $3"
        ))
        .await
        .map_err(map_err)?;
    let row = client
        .query_opt(&prepared, &[&resource_type, &id, &version_id])
        .await
        .map_err(map_err)?;
    row.map(|r| row_data(&r).map(|d| d.version)).transpose()
}

/// A page of current, not deleted resources. When every condition matches at least
/// `probe_from` index entries, they are probed row by row (see `sql::plan_search`).
pub(super) async fn search(
    client: &ClientWrapper,
    query: &SearchQuery,
    probe_from: usize,
) -> StoreResult<SearchPage> {
    let candidates = sql::probe_candidates(Dialect::Postgres, query, probe_from);
    let mut probed = Vec::new();
    for (i, statement) in &candidates {
        if count(client, statement).await? >= probe_from as i64 {
            probed.push(*i);
        }
    }
    // A narrow condition is where PostgreSQL's planner should start; probes would make it walk
    // every row of the type instead. Only when every condition is broad do probes pay.
    if probed.len() < candidates.len() {
        probed.clear();
    }
    let plan = sql::plan_search(Dialect::Postgres, query, &probed)?;
    let found = match &plan.page {
        Some(page) => rows_with_keys(client, page, &plan.keys).await?,
        None => Vec::new(),
    };
    let total = match &plan.total {
        Some(total) => Some(count(client, total).await?),
        None => None,
    };
    Ok(sql::finish_search(query, &plan, found, total))
}
