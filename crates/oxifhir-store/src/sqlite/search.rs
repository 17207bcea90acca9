//! SQLite reads: by id, by version, and searches over current resources.

use oxifhir_model::Instant;
use rusqlite::types::{Type, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};

use super::map_err;
use crate::cursor::CursorValue;
use crate::sql::{self, Dialect, KeyKind, RowData, Sql, VERSION_COLUMNS};
use crate::{ResourceVersion, SearchPage, SearchQuery, StoreResult, WriteMethod};

/// Decodes a row selected with [`VERSION_COLUMNS`].
pub(super) fn row_data(row: &Row<'_>) -> rusqlite::Result<RowData> {
    row_with_keys(row, &[])
}

/// Decodes a row selected with [`VERSION_COLUMNS`] followed by sort-key columns of `keys`.
fn row_with_keys(row: &Row<'_>, keys: &[KeyKind]) -> rusqlite::Result<RowData> {
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
        keys: keys
            .iter()
            .enumerate()
            .map(|(i, kind)| key_value(row.get_ref(7 + i)?, *kind, 7 + i))
            .collect::<rusqlite::Result<Vec<_>>>()?,
    })
}

fn key_value(value: ValueRef<'_>, kind: KeyKind, column: usize) -> rusqlite::Result<CursorValue> {
    let wrong = |found: Type| {
        rusqlite::Error::FromSqlConversionFailure(
            column,
            found,
            format!("sort key of kind {kind:?}").into(),
        )
    };
    Ok(match (value, kind) {
        (ValueRef::Null, _) => CursorValue::Null,
        (ValueRef::Integer(n), KeyKind::Int) => CursorValue::Int(n),
        (ValueRef::Integer(n), KeyKind::Float) => CursorValue::Float(n as f64),
        (ValueRef::Real(f), KeyKind::Float) => CursorValue::Float(f),
        (ValueRef::Text(t), KeyKind::Text) => {
            CursorValue::Text(String::from_utf8_lossy(t).into_owned())
        }
        (other, _) => return Err(wrong(other.data_type())),
    })
}

/// Runs a statement selecting [`VERSION_COLUMNS`] and decodes every row.
pub(super) fn rows(conn: &Connection, statement: &Sql) -> StoreResult<Vec<RowData>> {
    rows_with_keys(conn, statement, &[])
}

/// Runs a statement selecting [`VERSION_COLUMNS`] and sort-key columns of `keys`.
fn rows_with_keys(
    conn: &Connection,
    statement: &Sql,
    keys: &[KeyKind],
) -> StoreResult<Vec<RowData>> {
    let mut stmt = conn.prepare_cached(&statement.text).map_err(map_err)?;
    stmt.query_map(params_from_iter(statement.params.iter()), |row| {
        row_with_keys(row, keys)
    })
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
            "SELECT {} FROM history WHERE resource_type = ?1 AND id = ?2 AND version_id = ?3",
            sql::history_columns(Dialect::Sqlite)
        ))
        .map_err(map_err)?;
    let row = stmt
        .query_row((resource_type, id, version_id), row_data)
        .optional()
        .map_err(map_err)?;
    Ok(row.map(|r| r.version))
}

/// A page of current, not deleted resources.
pub(super) fn search(
    conn: &Connection,
    query: &SearchQuery,
    probe_from: usize,
) -> StoreResult<SearchPage> {
    let mut probed = Vec::new();
    for (i, statement) in sql::probe_candidates(Dialect::Sqlite, query, probe_from) {
        if count(conn, &statement)? >= probe_from as i64 {
            probed.push(i);
        }
    }
    let plan = sql::plan_search(Dialect::Sqlite, query, &probed)?;
    let found = match &plan.page {
        Some(page) => rows_with_keys(conn, page, &plan.keys)?,
        None => Vec::new(),
    };
    let total = plan.total.as_ref().map(|t| count(conn, t)).transpose()?;
    Ok(sql::finish_search(query, &plan, found, total))
}
