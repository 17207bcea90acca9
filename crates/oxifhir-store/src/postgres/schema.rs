//! The PostgreSQL schema as embedded, versioned migrations.
//!
//! Migrations run under a session advisory lock keyed by the schema name, so several nodes
//! starting at once apply each migration exactly once. Each migration runs in its own
//! transaction together with its `schema_migrations` row.
//!
//! `resource_type` and `id` use the `"C"` collation: ids sort bytewise, as on SQLite, and
//! independently of the database's locale.
//!
//! `seq` comes from an identity column, assigned at insert time: a transaction that commits
//! late may make a row appear behind a cursor that was issued in the meantime. Exports take
//! a consistent cut by `last_updated`, so this only matters for live paging.

use super::{Lease, map_err};
use crate::{StoreError, StoreResult};

/// The migrations, in order; version `n` is `MIGRATIONS[n - 1]`. Never edit a released one:
/// append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: resources, history and the search index.
    r#"
    CREATE TABLE history (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        resource_type TEXT COLLATE "C" NOT NULL,
        id TEXT COLLATE "C" NOT NULL,
        version_id BIGINT NOT NULL,
        last_updated BIGINT NOT NULL,
        method TEXT NOT NULL,
        body BYTEA NOT NULL,
        CONSTRAINT history_version_key UNIQUE (resource_type, id, version_id)
    );
    CREATE INDEX history_system_idx ON history (last_updated DESC, seq DESC);
    CREATE INDEX history_type_idx ON history (resource_type, last_updated DESC, seq DESC);

    CREATE TABLE resources (
        resource_type TEXT COLLATE "C" NOT NULL,
        id TEXT COLLATE "C" NOT NULL,
        version_id BIGINT NOT NULL,
        last_updated BIGINT NOT NULL,
        method TEXT NOT NULL,
        body BYTEA NOT NULL,
        seq BIGINT NOT NULL,
        CONSTRAINT resources_pkey PRIMARY KEY (resource_type, id)
    );
    CREATE INDEX resources_seq_idx ON resources (resource_type, seq);
    CREATE INDEX resources_updated_idx ON resources (resource_type, last_updated, seq);
    CREATE INDEX resources_all_seq_idx ON resources (seq);

    CREATE TABLE idx_string (
        resource_type TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
        param TEXT NOT NULL, normalized TEXT COLLATE "C" NOT NULL, exact TEXT NOT NULL
    );
    CREATE INDEX idx_string_res ON idx_string (resource_type, id);
    CREATE INDEX idx_string_val ON idx_string (resource_type, param, normalized);

    CREATE TABLE idx_token (
        resource_type TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
        param TEXT NOT NULL, system TEXT, code TEXT, text TEXT
    );
    CREATE INDEX idx_token_res ON idx_token (resource_type, id);
    CREATE INDEX idx_token_val ON idx_token (resource_type, param, code, system);

    CREATE TABLE idx_reference (
        resource_type TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
        param TEXT NOT NULL, target_type TEXT, target_id TEXT, url TEXT NOT NULL
    );
    CREATE INDEX idx_reference_res ON idx_reference (resource_type, id);
    CREATE INDEX idx_reference_val ON idx_reference (resource_type, param, target_id, target_type);
    CREATE INDEX idx_reference_target ON idx_reference (target_type, target_id);
    CREATE INDEX idx_reference_url ON idx_reference (resource_type, param, url);

    CREATE TABLE idx_date (
        resource_type TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
        param TEXT NOT NULL, start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL
    );
    CREATE INDEX idx_date_res ON idx_date (resource_type, id);
    CREATE INDEX idx_date_val ON idx_date (resource_type, param, start_ms, end_ms);

    CREATE TABLE idx_number (
        resource_type TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
        param TEXT NOT NULL, value DOUBLE PRECISION NOT NULL,
        low DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX idx_number_res ON idx_number (resource_type, id);
    CREATE INDEX idx_number_val ON idx_number (resource_type, param, value);

    CREATE TABLE idx_quantity (
        resource_type TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
        param TEXT NOT NULL, value DOUBLE PRECISION NOT NULL,
        low DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT NULL,
        system TEXT, code TEXT, unit TEXT
    );
    CREATE INDEX idx_quantity_res ON idx_quantity (resource_type, id);
    CREATE INDEX idx_quantity_val ON idx_quantity (resource_type, param, code, value);

    CREATE TABLE idx_uri (
        resource_type TEXT COLLATE "C" NOT NULL, id TEXT COLLATE "C" NOT NULL,
        param TEXT NOT NULL, value TEXT NOT NULL
    );
    CREATE INDEX idx_uri_res ON idx_uri (resource_type, id);
    CREATE INDEX idx_uri_val ON idx_uri (resource_type, param, value);
    "#,
    // 2: the durable job queue.
    r#"
    CREATE TABLE jobs (
        id TEXT COLLATE "C" PRIMARY KEY,
        kind TEXT NOT NULL,
        owner TEXT,
        state TEXT NOT NULL,
        input BYTEA NOT NULL,
        request_url TEXT NOT NULL,
        request_time BIGINT NOT NULL,
        transaction_time BIGINT,
        attempt BIGINT NOT NULL,
        worker TEXT,
        lease_until BIGINT,
        not_before BIGINT NOT NULL,
        failures BIGINT NOT NULL,
        progress TEXT,
        checkpoint BYTEA,
        result BYTEA,
        error TEXT,
        started_at BIGINT,
        finished_at BIGINT,
        expires_at BIGINT,
        released_at BIGINT,
        updated_at BIGINT NOT NULL
    );
    CREATE INDEX jobs_claim_idx ON jobs (state, not_before);
    CREATE INDEX jobs_listing_idx ON jobs (request_time, id);
    CREATE INDEX jobs_owner_idx ON jobs (owner, state);
    CREATE INDEX jobs_expiry_idx ON jobs (expires_at) WHERE expires_at IS NOT NULL;
    "#,
    // 3: search. Index rows are found by (resource_type, id, param) for sort values and
    // replacement; value indexes end with `id` so that a condition's subquery can be an
    // index-only scan; uris compare bytewise (`:below`); searches order by (type, id) after
    // their sort keys; marks of custom search parameters indexed for all stored resources.
    r#"
    DROP INDEX idx_string_res;
    CREATE INDEX idx_string_res ON idx_string (resource_type, id, param);
    DROP INDEX idx_string_val;
    CREATE INDEX idx_string_val ON idx_string (resource_type, param, normalized, id);

    DROP INDEX idx_token_res;
    CREATE INDEX idx_token_res ON idx_token (resource_type, id, param);
    DROP INDEX idx_token_val;
    CREATE INDEX idx_token_val ON idx_token (resource_type, param, code, system, id);

    DROP INDEX idx_reference_res;
    CREATE INDEX idx_reference_res ON idx_reference (resource_type, id, param);
    DROP INDEX idx_reference_val;
    CREATE INDEX idx_reference_val
        ON idx_reference (resource_type, param, target_id, target_type, id);
    DROP INDEX idx_reference_target;
    CREATE INDEX idx_reference_target ON idx_reference (target_type, target_id, resource_type);
    DROP INDEX idx_reference_url;
    CREATE INDEX idx_reference_url ON idx_reference (resource_type, param, url, id);

    DROP INDEX idx_date_res;
    CREATE INDEX idx_date_res ON idx_date (resource_type, id, param);
    DROP INDEX idx_date_val;
    CREATE INDEX idx_date_val ON idx_date (resource_type, param, start_ms, end_ms, id);
    CREATE INDEX idx_date_end ON idx_date (resource_type, param, end_ms, start_ms, id);

    DROP INDEX idx_number_res;
    CREATE INDEX idx_number_res ON idx_number (resource_type, id, param);
    DROP INDEX idx_number_val;
    CREATE INDEX idx_number_val ON idx_number (resource_type, param, value, id);

    DROP INDEX idx_quantity_res;
    CREATE INDEX idx_quantity_res ON idx_quantity (resource_type, id, param);
    DROP INDEX idx_quantity_val;
    CREATE INDEX idx_quantity_val ON idx_quantity (resource_type, param, value, id);

    DROP INDEX idx_uri_res;
    CREATE INDEX idx_uri_res ON idx_uri (resource_type, id, param);
    DROP INDEX idx_uri_val;
    ALTER TABLE idx_uri ALTER COLUMN value TYPE TEXT COLLATE "C";
    CREATE INDEX idx_uri_val ON idx_uri (resource_type, param, value, id);

    DROP INDEX resources_updated_idx;
    CREATE INDEX resources_updated_idx ON resources (resource_type, last_updated, id);

    CREATE TABLE search_param_indexed (
        url TEXT PRIMARY KEY,
        fingerprint TEXT NOT NULL,
        marked_at BIGINT NOT NULL
    );
    "#,
    // 4: reference targets compare bytewise like the ids they point at (`resources.id` is
    // `COLLATE "C"`), so a chain, `_has` or `_revinclude` joins them through the value index
    // instead of scanning every reference.
    r#"
    ALTER TABLE idx_reference
        ALTER COLUMN target_type TYPE TEXT COLLATE "C",
        ALTER COLUMN target_id TYPE TEXT COLLATE "C";
    "#,
    // 5: an export's count of the live versions of a type at its cut can read this index
    // alone (index-only scan) instead of visiting every row for `method`.
    r#"
    DROP INDEX resources_updated_idx;
    CREATE INDEX resources_updated_idx ON resources (resource_type, last_updated, id)
        INCLUDE (method);
    "#,
    // 6 and 7: the same in both backends.
    crate::sql::migrations::UNION_PARAMETER_ROWS,
    crate::sql::migrations::PARTIAL_REFERENCE_URL_INDEX,
    // 8: composite entries keyed code first, once per value; parameter names compare
    // bytewise.
    crate::sql::migrations::COMPOSITE_KEYS_CODE_FIRST_POSTGRES,
];

/// Checks a schema name from configuration: `[a-z0-9_]+`, at most 63 bytes.
pub(crate) fn validate_schema_name(schema: &str) -> StoreResult<()> {
    let valid = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "invalid PostgreSQL schema name {schema:?}: use [a-z0-9_]+"
        )))
    }
}

/// Creates `schema` (when given) and applies pending migrations, holding an advisory lock.
///
/// On failure the connection is discarded rather than returned to the pool, which also
/// releases the advisory lock.
pub(crate) async fn migrate(lease: Lease, schema: Option<&str>) -> StoreResult<i64> {
    let client = lease.client()?;
    let key = format!("oxifhir-migrate:{}", schema.unwrap_or("public"));
    client
        .execute("SELECT pg_advisory_lock(hashtext($1))", &[&key])
        .await
        .map_err(map_err)?;
    if let Some(schema) = schema {
        // The name was validated by `validate_schema_name`; quoting keeps it literal.
        client
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await
            .map_err(map_err)?;
    }
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version BIGINT PRIMARY KEY,
                 applied_at BIGINT NOT NULL
             )",
        )
        .await
        .map_err(map_err)?;
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0)::BIGINT FROM schema_migrations",
            &[],
        )
        .await
        .map_err(map_err)?;
    let current: i64 = row.try_get(0).map_err(map_err)?;
    let mut version = current;
    for (index, migration) in MIGRATIONS.iter().enumerate() {
        let number = i64::try_from(index).unwrap_or(i64::MAX - 1) + 1;
        if number <= current {
            continue;
        }
        client.batch_execute("BEGIN").await.map_err(map_err)?;
        client.batch_execute(migration).await.map_err(map_err)?;
        client
            .execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
                &[&number, &oxifhir_model::Instant::now().millis()],
            )
            .await
            .map_err(map_err)?;
        client.batch_execute("COMMIT").await.map_err(map_err)?;
        version = number;
    }
    client
        .execute("SELECT pg_advisory_unlock(hashtext($1))", &[&key])
        .await
        .map_err(map_err)?;
    lease.release();
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::validate_schema_name;

    #[test]
    fn schema_names() {
        for good in ["t_0123abc", "oxifhir", "a"] {
            assert!(validate_schema_name(good).is_ok(), "{good}");
        }
        for bad in ["", "T", "a-b", "a\"b", "a b", "a;drop", &"x".repeat(64)] {
            assert!(validate_schema_name(bad).is_err(), "{bad}");
        }
    }
}
