//! `$expunge` batches and compartment lookups on SQLite, on the writer connection.

use rusqlite::Connection;

use super::map_err;
use crate::StoreResult;
use crate::expunge::{self, ExpungeBatch, ExpungeCount};
use crate::sql::{Dialect, Sql};

fn execute(conn: &Connection, sql: &Sql) -> StoreResult<u64> {
    let changed = conn
        .prepare_cached(&sql.text)
        .map_err(map_err)?
        .execute(rusqlite::params_from_iter(&sql.params))
        .map_err(map_err)?;
    Ok(changed as u64)
}

/// One batch in one transaction; the number of versions removed.
pub(super) fn expunge(conn: &Connection, batch: &ExpungeBatch) -> StoreResult<u64> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(map_err)?;
    let result = run(conn, batch).map(|count| count.versions);
    match &result {
        Ok(_) => conn.execute_batch("COMMIT").map_err(map_err)?,
        Err(_) => {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
    result
}

/// One batch inside the caller's transaction; the number of versions removed.
pub(super) fn run(conn: &Connection, batch: &ExpungeBatch) -> StoreResult<ExpungeCount> {
    let keys = match (
        expunge::given_keys(batch),
        expunge::select_keys(Dialect::Sqlite, batch),
    ) {
        (Some(keys), _) => keys.to_vec(),
        (None, Some(select)) => conn
            .prepare_cached(&select.text)
            .map_err(map_err)?
            .query_map(rusqlite::params_from_iter(&select.params), |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(map_err)?
            .collect::<Result<Vec<(String, String)>, _>>()
            .map_err(map_err)?,
        (None, None) => {
            let versions = execute(
                conn,
                &expunge::delete_previous_versions(Dialect::Sqlite, batch),
            )?;
            return Ok(ExpungeCount {
                resources: 0,
                versions,
            });
        }
    };
    let counted = expunge::history_statements(&keys);
    let mut count = ExpungeCount::default();
    for (i, statement) in expunge::delete_keys(Dialect::Sqlite, &keys)
        .iter()
        .enumerate()
    {
        let changed = execute(conn, statement)?;
        if i < counted {
            count.versions += changed;
        } else if statement.text.starts_with("DELETE FROM resources ") {
            count.resources += changed;
        }
    }
    Ok(count)
}

/// `(type, id, param)` of every current resource with a reference to `target_type/target_id`.
pub(super) fn referencing(
    conn: &Connection,
    target_type: &str,
    target_id: &str,
) -> StoreResult<Vec<(String, String, String)>> {
    conn.prepare_cached(
        "SELECT resource_type, id, param FROM idx_reference \
         WHERE target_type = ?1 AND target_id = ?2 ORDER BY resource_type, id",
    )
    .map_err(map_err)?
    .query_map((target_type, target_id), |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
    .map_err(map_err)?
    .collect::<Result<Vec<_>, _>>()
    .map_err(map_err)
}
