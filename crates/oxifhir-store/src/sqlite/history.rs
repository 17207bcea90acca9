//! SQLite history: versions of the system, a type or an instance, newest first.

use rusqlite::Connection;

use super::search::{count, rows};
use crate::sql::{self, Dialect};
use crate::{HistoryPage, HistoryQuery, StoreResult};

/// A page of history.
pub(super) fn history(conn: &Connection, query: &HistoryQuery) -> StoreResult<HistoryPage> {
    let plan = sql::plan_history(Dialect::Sqlite, query)?;
    let found = match &plan.page {
        Some(page) => rows(conn, page)?,
        None => Vec::new(),
    };
    let total = count(conn, &plan.total)?;
    Ok(sql::finish_history(query, found, total))
}
