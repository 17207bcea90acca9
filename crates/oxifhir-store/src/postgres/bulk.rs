//! Many versions per round trip on PostgreSQL ([`crate::StoreTx::read_many`] and
//! [`crate::StoreTx::write_many`]): the current versions of a batch in one query, and a batch
//! of first versions with their index rows in one statement per table (arrays bound as
//! parameters, expanded with `unnest`). Anything else (updates, a key written twice) goes
//! through [`super::write::write`] one version at a time.

use std::collections::{HashMap, HashSet};

use deadpool_postgres::ClientWrapper;
use tokio_postgres::types::ToSql;

use super::{is_version_key_violation, map_err, search};
use crate::sql::VERSION_COLUMNS;
use crate::{
    IndexEntries, IndexReplacement, IndexScope, ResourceVersion, StoreError, StoreResult,
    VersionWrite, WriteMethod,
};

/// The current versions of `keys`, in their order.
pub(super) async fn read_many(
    client: &ClientWrapper,
    keys: &[(String, String)],
) -> StoreResult<Vec<Option<ResourceVersion>>> {
    let types: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
    let ids: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let statement = client
        .prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM resources \
             WHERE (resource_type, id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        ))
        .await
        .map_err(map_err)?;
    let rows = client
        .query(&statement, &[&types, &ids])
        .await
        .map_err(map_err)?;
    let mut found: HashMap<(String, String), ResourceVersion> = HashMap::with_capacity(rows.len());
    for row in &rows {
        let v = search::row_data(row)?.version;
        found.insert((v.resource_type.clone(), v.id.clone()), v);
    }
    Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
}

/// Stores `writes` in order (see [`crate::StoreTx::write_many`]).
pub(super) async fn write_many(client: &ClientWrapper, writes: &[VersionWrite]) -> StoreResult<()> {
    let mut keys = HashSet::with_capacity(writes.len());
    let only_new = writes.len() > 1
        && writes
            .iter()
            .all(|w| w.previous_version.is_none() && keys.insert((&w.resource_type, &w.id)));
    if !only_new {
        for w in writes {
            super::write::write(client, w).await?;
        }
        return Ok(());
    }
    let types: Vec<&str> = writes.iter().map(|w| w.resource_type.as_str()).collect();
    let ids: Vec<&str> = writes.iter().map(|w| w.id.as_str()).collect();
    let taken = client
        .prepare_cached(
            "SELECT resource_type, id, version_id FROM resources \
             WHERE (resource_type, id) IN (SELECT * FROM unnest($1::text[], $2::text[])) LIMIT 1",
        )
        .await
        .map_err(map_err)?;
    if let Some(row) = client
        .query_opt(&taken, &[&types, &ids])
        .await
        .map_err(map_err)?
    {
        let (t, id, version): (String, String, i64) = (
            row.try_get(0).map_err(map_err)?,
            row.try_get(1).map_err(map_err)?,
            row.try_get(2).map_err(map_err)?,
        );
        return Err(StoreError::VersionConflict {
            resource_type: t,
            id,
            expected: None,
            found: Some(version),
        });
    }
    let versions: Vec<i64> = writes.iter().map(|w| w.version_id).collect();
    let updated: Vec<i64> = writes.iter().map(|w| w.last_updated.millis()).collect();
    let methods: Vec<&str> = writes.iter().map(|w| w.method.code()).collect();
    let bodies: Vec<&[u8]> = writes.iter().map(|w| w.body.as_slice()).collect();
    let insert = client
        .prepare_cached(
            "WITH h AS (
                 INSERT INTO history (resource_type, id, version_id, last_updated, method, body)
                 SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[],
                     $5::text[], $6::bytea[])
                 RETURNING resource_type, id, version_id, last_updated, method, body, seq)
             INSERT INTO resources (resource_type, id, version_id, last_updated, method, body, seq)
             SELECT resource_type, id, version_id, last_updated, method, body, seq FROM h",
        )
        .await
        .map_err(map_err)?;
    client
        .execute(
            &insert,
            &[&types, &ids, &versions, &updated, &methods, &bodies],
        )
        .await
        .map_err(|e| {
            if is_version_key_violation(&e) {
                // Another transaction created one of these resources meanwhile.
                StoreError::Retryable(e.to_string())
            } else {
                map_err(e)
            }
        })?;
    let items: Vec<(&str, &str, &IndexEntries)> = writes
        .iter()
        .map(|w| (w.resource_type.as_str(), w.id.as_str(), &w.index))
        .collect();
    insert_index(client, &items).await
}

/// Replaces the index rows of many resources (see [`crate::StoreTx::replace_index_many`]):
/// their current rows locked and checked in one query, old rows deleted with one statement
/// per table, new rows inserted with one per table.
pub(super) async fn replace_index_many(
    client: &ClientWrapper,
    scope: &IndexScope,
    replacements: &[IndexReplacement],
) -> StoreResult<Vec<bool>> {
    let types: Vec<&str> = replacements
        .iter()
        .map(|r| r.resource_type.as_str())
        .collect();
    let ids: Vec<&str> = replacements.iter().map(|r| r.id.as_str()).collect();
    let select = client
        .prepare_cached(
            "SELECT resource_type, id, version_id, method FROM resources \
             WHERE (resource_type, id) IN (SELECT * FROM unnest($1::text[], $2::text[])) \
             ORDER BY resource_type, id FOR UPDATE",
        )
        .await
        .map_err(map_err)?;
    let rows = client
        .query(&select, &[&types, &ids])
        .await
        .map_err(map_err)?;
    let mut found: HashMap<(String, String), (i64, String)> = HashMap::with_capacity(rows.len());
    for row in &rows {
        found.insert(
            (
                row.try_get(0).map_err(map_err)?,
                row.try_get(1).map_err(map_err)?,
            ),
            (
                row.try_get(2).map_err(map_err)?,
                row.try_get(3).map_err(map_err)?,
            ),
        );
    }
    let current: Vec<bool> = replacements
        .iter()
        .map(|r| {
            matches!(
                found.get(&(r.resource_type.clone(), r.id.clone())),
                Some((version, method)) if *version == r.version_id && method != WriteMethod::Delete.code()
            )
        })
        .collect();
    let kept: Vec<&IndexReplacement> = replacements
        .iter()
        .zip(&current)
        .filter(|(_, c)| **c)
        .map(|(r, _)| r)
        .collect();
    if kept.is_empty() {
        return Ok(current);
    }
    let types: Vec<&str> = kept.iter().map(|r| r.resource_type.as_str()).collect();
    let ids: Vec<&str> = kept.iter().map(|r| r.id.as_str()).collect();
    let (codes, tables): (Option<&Vec<String>>, Vec<&str>) = match scope {
        IndexScope::All => (None, crate::sql::INDEX_TABLES.to_vec()),
        IndexScope::Params { codes, tables } => {
            (Some(codes), tables.iter().map(|t| t.table_name()).collect())
        }
    };
    for table in tables {
        let only = if codes.is_some() {
            " AND param = ANY($3::text[])"
        } else {
            ""
        };
        let delete = client
            .prepare_cached(&format!(
                "DELETE FROM {table} WHERE (resource_type, id) IN \
                 (SELECT * FROM unnest($1::text[], $2::text[])){only}"
            ))
            .await
            .map_err(map_err)?;
        match codes {
            Some(codes) => client.execute(&delete, &[&types, &ids, codes]).await,
            None => client.execute(&delete, &[&types, &ids]).await,
        }
        .map_err(map_err)?;
    }
    let items: Vec<(&str, &str, &IndexEntries)> = kept
        .iter()
        .map(|r| (r.resource_type.as_str(), r.id.as_str(), &r.index))
        .collect();
    insert_index(client, &items).await?;
    Ok(current)
}

/// The `resource_type` and `id` columns of a table's rows.
struct Columns<'a> {
    types: Vec<&'a str>,
    ids: Vec<&'a str>,
}

/// A resource's type, id and index entries.
type Item<'a> = (&'a str, &'a str, &'a IndexEntries);

/// The entries of one kind (`entries`) of every item, with their type and id columns.
fn columns<'a, E: 'a>(
    items: &[Item<'a>],
    entries: impl Fn(&'a IndexEntries) -> &'a [E],
) -> (Columns<'a>, Vec<&'a E>) {
    let mut cols = Columns {
        types: Vec::new(),
        ids: Vec::new(),
    };
    let mut all = Vec::new();
    for (t, id, index) in items {
        for e in entries(index) {
            cols.types.push(t);
            cols.ids.push(id);
            all.push(e);
        }
    }
    (cols, all)
}

async fn insert_rows(
    client: &ClientWrapper,
    sql: &str,
    cols: &Columns<'_>,
    arrays: &[&(dyn ToSql + Sync)],
) -> StoreResult<()> {
    if cols.types.is_empty() {
        return Ok(());
    }
    let statement = client.prepare_cached(sql).await.map_err(map_err)?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&cols.types, &cols.ids];
    params.extend_from_slice(arrays);
    client.execute(&statement, &params).await.map_err(map_err)?;
    Ok(())
}

/// Inserts the index rows of every item, one statement per table.
async fn insert_index(client: &ClientWrapper, writes: &[Item<'_>]) -> StoreResult<()> {
    let (c, e) = columns(writes, |i| &i.strings);
    let param: Vec<&str> = e.iter().map(|e| e.param.as_str()).collect();
    let norm: Vec<&str> = e.iter().map(|e| e.normalized.as_str()).collect();
    let exact: Vec<&str> = e.iter().map(|e| e.exact.as_str()).collect();
    insert_rows(
        client,
        "INSERT INTO idx_string (resource_type, id, param, normalized, exact) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])",
        &c,
        &[&param, &norm, &exact],
    )
    .await?;

    let (c, e) = columns(writes, |i| &i.tokens);
    let param: Vec<&str> = e.iter().map(|e| e.param.as_str()).collect();
    let system: Vec<Option<&str>> = e.iter().map(|e| e.system.as_deref()).collect();
    let code: Vec<Option<&str>> = e.iter().map(|e| e.code.as_deref()).collect();
    let text: Vec<Option<&str>> = e.iter().map(|e| e.text.as_deref()).collect();
    insert_rows(
        client,
        "INSERT INTO idx_token (resource_type, id, param, system, code, text) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[])",
        &c,
        &[&param, &system, &code, &text],
    )
    .await?;

    let (c, e) = columns(writes, |i| &i.references);
    let param: Vec<&str> = e.iter().map(|e| e.param.as_str()).collect();
    let target_type: Vec<Option<&str>> = e.iter().map(|e| e.target_type.as_deref()).collect();
    let target_id: Vec<Option<&str>> = e.iter().map(|e| e.target_id.as_deref()).collect();
    let url: Vec<&str> = e.iter().map(|e| e.url.as_str()).collect();
    insert_rows(
        client,
        "INSERT INTO idx_reference (resource_type, id, param, target_type, target_id, url) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
         $6::text[])",
        &c,
        &[&param, &target_type, &target_id, &url],
    )
    .await?;

    let (c, e) = columns(writes, |i| &i.dates);
    let param: Vec<&str> = e.iter().map(|e| e.param.as_str()).collect();
    let start: Vec<i64> = e.iter().map(|e| e.start).collect();
    let end: Vec<i64> = e.iter().map(|e| e.end).collect();
    insert_rows(
        client,
        "INSERT INTO idx_date (resource_type, id, param, start_ms, end_ms) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[])",
        &c,
        &[&param, &start, &end],
    )
    .await?;

    let (c, e) = columns(writes, |i| &i.numbers);
    let param: Vec<&str> = e.iter().map(|e| e.param.as_str()).collect();
    let value: Vec<f64> = e.iter().map(|e| e.value).collect();
    let low: Vec<f64> = e.iter().map(|e| e.low).collect();
    let high: Vec<f64> = e.iter().map(|e| e.high).collect();
    insert_rows(
        client,
        "INSERT INTO idx_number (resource_type, id, param, value, low, high) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[], \
         $6::float8[])",
        &c,
        &[&param, &value, &low, &high],
    )
    .await?;

    let (c, e) = columns(writes, |i| &i.quantities);
    let param: Vec<&str> = e.iter().map(|e| e.param.as_str()).collect();
    let value: Vec<f64> = e.iter().map(|e| e.value).collect();
    let low: Vec<f64> = e.iter().map(|e| e.low).collect();
    let high: Vec<f64> = e.iter().map(|e| e.high).collect();
    let system: Vec<Option<&str>> = e.iter().map(|e| e.system.as_deref()).collect();
    let code: Vec<Option<&str>> = e.iter().map(|e| e.code.as_deref()).collect();
    let unit: Vec<Option<&str>> = e.iter().map(|e| e.unit.as_deref()).collect();
    insert_rows(
        client,
        "INSERT INTO idx_quantity \
         (resource_type, id, param, value, low, high, system, code, unit) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::float8[], \
         $6::float8[], $7::text[], $8::text[], $9::text[])",
        &c,
        &[&param, &value, &low, &high, &system, &code, &unit],
    )
    .await?;

    let (c, e) = columns(writes, |i| &i.uris);
    let param: Vec<&str> = e.iter().map(|e| e.param.as_str()).collect();
    let value: Vec<&str> = e.iter().map(|e| e.value.as_str()).collect();
    insert_rows(
        client,
        "INSERT INTO idx_uri (resource_type, id, param, value) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[])",
        &c,
        &[&param, &value],
    )
    .await
}
