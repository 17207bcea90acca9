//! PostgreSQL history: versions of the system, a type or an instance, newest first.

use deadpool_postgres::ClientWrapper;

use super::search::{count, rows};
use crate::sql::{self, Dialect};
use crate::{HistoryPage, HistoryQuery, StoreResult};

/// A page of history.
pub(super) async fn history(
    client: &ClientWrapper,
    query: &HistoryQuery,
) -> StoreResult<HistoryPage> {
    let plan = sql::plan_history(Dialect::Postgres, query)?;
    let found = match &plan.page {
        Some(page) => rows(client, page).await?,
        None => Vec::new(),
    };
    let total = count(client, &plan.total).await?;
    Ok(sql::finish_history(query, found, total))
}
