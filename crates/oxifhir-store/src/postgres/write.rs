//! PostgreSQL writes: a new version into `history`, the current row in `resources`, and the
//! resource's search index rows replaced.
//!
//! Race-freedom comes from the transaction being `SERIALIZABLE` plus the unique keys: two
//! transactions writing the same version collide on `history_version_key` (or the
//! `resources` primary key), which is reported as a version conflict, or one of them fails
//! with a serialization failure (retryable).
//!
//! Index rows go in with one `INSERT … SELECT FROM unnest(arrays)` per non-empty table, and
//! out with one statement that deletes from all tables, to keep round trips few.

use deadpool_postgres::ClientWrapper;
use tokio_postgres::types::ToSql;

use super::{is_version_key_violation, map_err};
use crate::sql::INDEX_TABLES;
use crate::{IndexEntries, StoreError, StoreResult, VersionWrite, WriteMethod};

fn conflict(write: &VersionWrite, found: Option<i64>) -> StoreError {
    StoreError::VersionConflict {
        resource_type: write.resource_type.clone(),
        id: write.id.clone(),
        expected: write.previous_version,
        found,
    }
}

/// Inserts the history row and makes it current in one statement.
const INSERT_FIRST: &str = "WITH h AS (
        INSERT INTO history (resource_type, id, version_id, last_updated, method, body)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq)
    INSERT INTO resources (resource_type, id, version_id, last_updated, method, body, seq)
    SELECT $1, $2, $3, $4, $5, $6, h.seq FROM h";

/// Inserts the history row and updates the current row in one statement.
const INSERT_NEXT: &str = "WITH h AS (
        INSERT INTO history (resource_type, id, version_id, last_updated, method, body)
        VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq)
    UPDATE resources r SET version_id = $3, last_updated = $4, method = $5, body = $6,
        seq = h.seq
    FROM h WHERE r.resource_type = $1 AND r.id = $2";

/// Deletes the index rows of one resource from every index table.
fn delete_index_sql() -> String {
    let ctes: Vec<String> = INDEX_TABLES
        .iter()
        .enumerate()
        .map(|(i, table)| {
            format!("d{i} AS (DELETE FROM {table} WHERE resource_type = $1 AND id = $2)")
        })
        .collect();
    format!("WITH {} SELECT 1", ctes.join(", "))
}

/// Stores `write` as the new current version (see [`crate::StoreTx::write`]).
pub(super) async fn write(client: &ClientWrapper, write: &VersionWrite) -> StoreResult<()> {
    let select = client
        .prepare_cached("SELECT version_id FROM resources WHERE resource_type = $1 AND id = $2")
        .await
        .map_err(map_err)?;
    let row = client
        .query_opt(&select, &[&write.resource_type, &write.id])
        .await
        .map_err(map_err)?;
    let found: Option<i64> = row.map(|r| r.try_get(0)).transpose().map_err(map_err)?;
    if found != write.previous_version {
        return Err(conflict(write, found));
    }
    let sql = if write.previous_version.is_none() {
        INSERT_FIRST
    } else {
        INSERT_NEXT
    };
    let statement = client.prepare_cached(sql).await.map_err(map_err)?;
    let method = write.method.code();
    let last_updated = write.last_updated.millis();
    client
        .execute(
            &statement,
            &[
                &write.resource_type,
                &write.id,
                &write.version_id,
                &last_updated,
                &method,
                &write.body,
            ],
        )
        .await
        .map_err(|e| {
            if is_version_key_violation(&e) {
                // The conflicting transaction stored at least this version.
                conflict(write, Some(write.version_id))
            } else {
                map_err(e)
            }
        })?;
    if write.previous_version.is_some() {
        delete_index(client, &write.resource_type, &write.id).await?;
    }
    if write.method != WriteMethod::Delete {
        insert_index(client, &write.resource_type, &write.id, &write.index).await?;
    }
    Ok(())
}

/// Deletes the index rows of one resource.
async fn delete_index(client: &ClientWrapper, t: &str, id: &str) -> StoreResult<()> {
    let delete = client
        .prepare_cached(&delete_index_sql())
        .await
        .map_err(map_err)?;
    client.execute(&delete, &[&t, &id]).await.map_err(map_err)?;
    Ok(())
}

/// Replaces the index rows of the current version of a resource (see
/// [`crate::StoreTx::replace_index`]).
pub(super) async fn replace_index(
    client: &ClientWrapper,
    t: &str,
    id: &str,
    version_id: i64,
    index: &IndexEntries,
) -> StoreResult<bool> {
    let select = client
        .prepare_cached(
            "SELECT version_id, method FROM resources WHERE resource_type = $1 AND id = $2 \
             FOR UPDATE",
        )
        .await
        .map_err(map_err)?;
    let row = client
        .query_opt(&select, &[&t, &id])
        .await
        .map_err(map_err)?;
    let current: Option<(i64, String)> = row
        .map(|r| Ok::<_, tokio_postgres::Error>((r.try_get(0)?, r.try_get(1)?)))
        .transpose()
        .map_err(map_err)?;
    match current {
        Some((current, method))
            if current == version_id && method != WriteMethod::Delete.code() => {}
        _ => return Ok(false),
    }
    delete_index(client, t, id).await?;
    insert_index(client, t, id, index).await?;
    Ok(true)
}

/// Runs one `INSERT … SELECT $1, $2, * FROM unnest(…)` with the given array parameters.
async fn insert_rows(
    client: &ClientWrapper,
    sql: &str,
    t: &str,
    id: &str,
    arrays: &[&(dyn ToSql + Sync)],
) -> StoreResult<()> {
    let statement = client.prepare_cached(sql).await.map_err(map_err)?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&t, &id];
    params.extend_from_slice(arrays);
    client.execute(&statement, &params).await.map_err(map_err)?;
    Ok(())
}

fn column<'a, E, T>(entries: &'a [E], f: impl Fn(&'a E) -> T) -> Vec<T> {
    entries.iter().map(f).collect()
}

/// Inserts the index rows of one resource.
async fn insert_index(
    client: &ClientWrapper,
    t: &str,
    id: &str,
    index: &IndexEntries,
) -> StoreResult<()> {
    if !index.strings.is_empty() {
        let e = &index.strings;
        let (param, norm, exact) = (
            column(e, |e| e.param.as_str()),
            column(e, |e| e.normalized.as_str()),
            column(e, |e| e.exact.as_str()),
        );
        let sql = "INSERT INTO idx_string (resource_type, id, param, normalized, exact) \
                   SELECT $1::text, $2::text, * FROM unnest($3::text[], $4::text[], $5::text[])";
        insert_rows(client, sql, t, id, &[&param, &norm, &exact]).await?;
    }
    if !index.tokens.is_empty() {
        let e = &index.tokens;
        let (param, system, code, text) = (
            column(e, |e| e.param.as_str()),
            column(e, |e| e.system.as_deref()),
            column(e, |e| e.code.as_deref()),
            column(e, |e| e.text.as_deref()),
        );
        let sql = "INSERT INTO idx_token (resource_type, id, param, system, code, text) \
                   SELECT $1::text, $2::text, * \
                   FROM unnest($3::text[], $4::text[], $5::text[], $6::text[])";
        insert_rows(client, sql, t, id, &[&param, &system, &code, &text]).await?;
    }
    if !index.references.is_empty() {
        let e = &index.references;
        let (param, target_type, target_id, url) = (
            column(e, |e| e.param.as_str()),
            column(e, |e| e.target_type.as_deref()),
            column(e, |e| e.target_id.as_deref()),
            column(e, |e| e.url.as_str()),
        );
        let sql = "INSERT INTO idx_reference (resource_type, id, param, target_type, target_id, url) \
                   SELECT $1::text, $2::text, * \
                   FROM unnest($3::text[], $4::text[], $5::text[], $6::text[])";
        insert_rows(
            client,
            sql,
            t,
            id,
            &[&param, &target_type, &target_id, &url],
        )
        .await?;
    }
    if !index.dates.is_empty() {
        let e = &index.dates;
        let (param, start, end) = (
            column(e, |e| e.param.as_str()),
            column(e, |e| e.start),
            column(e, |e| e.end),
        );
        let sql = "INSERT INTO idx_date (resource_type, id, param, start_ms, end_ms) \
                   SELECT $1::text, $2::text, * FROM unnest($3::text[], $4::int8[], $5::int8[])";
        insert_rows(client, sql, t, id, &[&param, &start, &end]).await?;
    }
    if !index.numbers.is_empty() {
        let e = &index.numbers;
        let (param, value, low, high) = (
            column(e, |e| e.param.as_str()),
            column(e, |e| e.value),
            column(e, |e| e.low),
            column(e, |e| e.high),
        );
        let sql = "INSERT INTO idx_number (resource_type, id, param, value, low, high) \
                   SELECT $1::text, $2::text, * \
                   FROM unnest($3::text[], $4::float8[], $5::float8[], $6::float8[])";
        insert_rows(client, sql, t, id, &[&param, &value, &low, &high]).await?;
    }
    if !index.quantities.is_empty() {
        let e = &index.quantities;
        let (param, value, low, high) = (
            column(e, |e| e.param.as_str()),
            column(e, |e| e.value),
            column(e, |e| e.low),
            column(e, |e| e.high),
        );
        let (system, code, unit) = (
            column(e, |e| e.system.as_deref()),
            column(e, |e| e.code.as_deref()),
            column(e, |e| e.unit.as_deref()),
        );
        let sql = "INSERT INTO idx_quantity \
                   (resource_type, id, param, value, low, high, system, code, unit) \
                   SELECT $1::text, $2::text, * FROM unnest($3::text[], $4::float8[], \
                   $5::float8[], $6::float8[], $7::text[], $8::text[], $9::text[])";
        let arrays: [&(dyn ToSql + Sync); 7] = [&param, &value, &low, &high, &system, &code, &unit];
        insert_rows(client, sql, t, id, &arrays).await?;
    }
    if !index.uris.is_empty() {
        let e = &index.uris;
        let (param, value) = (
            column(e, |e| e.param.as_str()),
            column(e, |e| e.value.as_str()),
        );
        let sql = "INSERT INTO idx_uri (resource_type, id, param, value) \
                   SELECT $1::text, $2::text, * FROM unnest($3::text[], $4::text[])";
        insert_rows(client, sql, t, id, &[&param, &value]).await?;
    }
    Ok(())
}

/// Index rows per table (in [`INDEX_TABLES`] order) of one resource.
pub(super) async fn index_counts(
    client: &ClientWrapper,
    t: &str,
    id: &str,
) -> StoreResult<[i64; 7]> {
    let mut counts = [0; 7];
    for (count, table) in counts.iter_mut().zip(INDEX_TABLES) {
        let sql = format!("SELECT count(*) FROM {table} WHERE resource_type = $1 AND id = $2");
        let row = client.query_one(&sql, &[&t, &id]).await.map_err(map_err)?;
        *count = row.try_get(0).map_err(map_err)?;
    }
    Ok(counts)
}
