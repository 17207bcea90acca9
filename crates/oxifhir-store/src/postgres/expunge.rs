//! `$expunge` batches and compartment lookups on PostgreSQL.

use deadpool_postgres::Object;

use super::{driver_params, map_err, param_refs};
use crate::StoreResult;
use crate::expunge::{self, ExpungeBatch, ExpungeCount};
use crate::sql::{Dialect, Sql};

async fn execute(client: &Object, sql: &Sql) -> StoreResult<u64> {
    let statement = client.prepare_cached(&sql.text).await.map_err(map_err)?;
    let values = driver_params(&sql.params);
    client
        .execute(&statement, &param_refs(&values))
        .await
        .map_err(map_err)
}

/// One batch in one transaction (the caller's); the number of versions removed.
pub(super) async fn run(client: &Object, batch: &ExpungeBatch) -> StoreResult<ExpungeCount> {
    let keys = match (
        expunge::given_keys(batch),
        expunge::select_keys(Dialect::Postgres, batch),
    ) {
        (Some(keys), _) => keys.to_vec(),
        (None, Some(select)) => {
            let statement = client.prepare_cached(&select.text).await.map_err(map_err)?;
            let values = driver_params(&select.params);
            client
                .query(&statement, &param_refs(&values))
                .await
                .map_err(map_err)?
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get(0).map_err(map_err)?,
                        row.try_get(1).map_err(map_err)?,
                    ))
                })
                .collect::<StoreResult<Vec<(String, String)>>>()?
        }
        (None, None) => {
            let versions = execute(
                client,
                &expunge::delete_previous_versions(Dialect::Postgres, batch),
            )
            .await?;
            return Ok(ExpungeCount {
                resources: 0,
                versions,
            });
        }
    };
    let counted = expunge::history_statements(&keys);
    let mut count = ExpungeCount::default();
    for (i, statement) in expunge::delete_keys(Dialect::Postgres, &keys)
        .iter()
        .enumerate()
    {
        let changed = execute(client, statement).await?;
        if i < counted {
            count.versions += changed;
        } else if statement.text.starts_with("DELETE FROM resources ") {
            count.resources += changed;
        }
    }
    Ok(count)
}

/// `(type, id, param)` of every current resource with a reference to `target_type/target_id`.
pub(super) async fn referencing(
    client: &Object,
    target_type: &str,
    target_id: &str,
) -> StoreResult<Vec<(String, String, String)>> {
    let statement = client
        .prepare_cached(
            "SELECT resource_type, id, param FROM idx_reference \
             WHERE target_type = $1 AND target_id = $2 ORDER BY resource_type, id",
        )
        .await
        .map_err(map_err)?;
    client
        .query(&statement, &[&target_type, &target_id])
        .await
        .map_err(map_err)?
        .iter()
        .map(|row| {
            Ok((
                row.try_get(0).map_err(map_err)?,
                row.try_get(1).map_err(map_err)?,
                row.try_get(2).map_err(map_err)?,
            ))
        })
        .collect()
}
