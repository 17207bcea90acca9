//! SQLite reads: by id, by version, and searches over current resources.

use oxifhir_model::Instant;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};

use super::map_err;
use crate::sql::{self, Dialect, RowData, Sql, VERSION_COLUMNS};
use crate::{ResourceVersion, SearchPage, SearchQuery, StoreResult, WriteMethod};

/// Decodes a row selected with [`VERSION_COLUMNS`].
pub(super) fn row_data(row: &Row<'_>) -> rusqlite::Result<RowData> {
    let code: String = row.get(4)?;
    let method = WriteMethod::from_code(&code).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            Type::Text,
            format!("unknown write method code {code:?}").into(),
        )
    })?;
    Ok(RowData {
        version: ResourceVersion {
            resource_type: row.get(0)?,
            id: row.get(1)?,
            version_id: row.get(2)?,
            last_updated: Instant::from_millis(row.get(3)?),
            method,
            body: row.get(5)?,
        },
        seq: row.get(6)?,
    })
}

/// Runs a statement selecting [`VERSION_COLUMNS`] and decodes every row.
pub(super) fn rows(conn: &Connection, statement: &Sql) -> StoreResult<Vec<RowData>> {
    let mut stmt = conn.prepare_cached(&statement.text).map_err(map_err)?;
    stmt.query_map(params_from_iter(statement.params.iter()), row_data)
        .map_err(map_err)?
        .collect::<rusqlite::Result<Vec<_>>>()
        .map_err(map_err)
}

/// Runs a `SELECT count(*)` statement.
pub(super) fn count(conn: &Connection, statement: &Sql) -> StoreResult<i64> {
    let mut stmt = conn.prepare_cached(&statement.text).map_err(map_err)?;
    stmt.query_row(params_from_iter(statement.params.iter()), |r| r.get(0))
        .map_err(map_err)
}

/// The current version of a resource (tombstones included).
pub(super) fn read(
    conn: &Connection,
    resource_type: &str,
    id: &str,
) -> StoreResult<Option<ResourceVersion>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM resources WHERE resource_type = ?1 AND id = ?2"
        ))
        .map_err(map_err)?;
    let row = stmt
        .query_row((resource_type, id), row_data)
        .optional()
        .map_err(map_err)?;
    Ok(row.map(|r| r.version))
}

/// One version of a resource.
pub(super) fn vread(
    conn: &Connection,
    resource_type: &str,
    id: &str,
    version_id: i64,
) -> StoreResult<Option<ResourceVersion>> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM history \
             WHERE resource_type = ?1 AND id = ?2 AND version_id = ?3"
        ))
        .map_err(map_err)?;
    let row = stmt
        .query_row((resource_type, id, version_id), row_data)
        .optional()
        .map_err(map_err)?;
    Ok(row.map(|r| r.version))
}

/// A page of current, not deleted resources.
pub(super) fn search(conn: &Connection, query: &SearchQuery) -> StoreResult<SearchPage> {
    let plan = sql::plan_search(Dialect::Sqlite, query)?;
    let found = match &plan.page {
        Some(page) => rows(conn, page)?,
        None => Vec::new(),
    };
    let total = plan.total.as_ref().map(|t| count(conn, t)).transpose()?;
    Ok(sql::finish_search(query, found, total))
}
