//! Resource writes inside a store transaction — versioning, `meta`, validation, index
//! extraction — shared by single interactions, batch and transaction entries.

use futures::future::BoxFuture;
use oxifhir_model::json;
use oxifhir_model::outcome::{Issue, IssueCode, IssueSeverity};
use oxifhir_model::{Instant, validation};
use oxifhir_store::{
    IndexEntries, Isolation, ResourceVersion, Store, StoreError, StoreTx, VersionWrite, WriteMethod,
};
use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorKind};
use crate::route::truncate;
use crate::search_params::SearchParams;

/// Why a transaction body stopped: a client-facing error, or a store error that may be
/// retryable.
#[derive(Debug)]
pub enum TxFailure {
    Api(ApiError),
    Store(StoreError),
}

impl From<ApiError> for TxFailure {
    fn from(e: ApiError) -> Self {
        TxFailure::Api(e)
    }
}

impl From<StoreError> for TxFailure {
    fn from(e: StoreError) -> Self {
        TxFailure::Store(e)
    }
}

impl From<TxFailure> for ApiError {
    fn from(f: TxFailure) -> Self {
        match f {
            TxFailure::Api(e) => e,
            TxFailure::Store(e) => e.into(),
        }
    }
}

/// How often a transaction that hit a concurrency conflict is run again.
const TRANSACTION_ATTEMPTS: u32 = 8;

/// Runs `body` in a store transaction and commits it; runs it again from the start when a
/// concurrent transaction got in the way (the body must therefore own what it needs).
pub async fn in_transaction<T, F>(
    store: &dyn Store,
    isolation: Isolation,
    body: F,
) -> Result<T, ApiError>
where
    F: for<'a> FnMut(&'a mut dyn StoreTx) -> BoxFuture<'a, Result<T, TxFailure>>,
{
    in_locked_transaction(store, isolation, &[], body).await
}

/// As [`in_transaction`], holding the store locks `keys` ([`StoreTx::lock`], taken in sorted
/// order before anything else) for the whole transaction: transactions that share a key run
/// one after another, so a decision resting on what the body reads cannot be raced by
/// another holder of the key. When every attempt still conflicts, the answer is `409`.
pub async fn in_locked_transaction<T, F>(
    store: &dyn Store,
    isolation: Isolation,
    keys: &[String],
    mut body: F,
) -> Result<T, ApiError>
where
    F: for<'a> FnMut(&'a mut dyn StoreTx) -> BoxFuture<'a, Result<T, TxFailure>>,
{
    let mut keys = keys.to_vec();
    keys.sort();
    keys.dedup();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let result = async {
            let mut tx = store.begin(isolation).await?;
            for key in &keys {
                tx.lock(key).await?;
            }
            let value = body(tx.as_mut()).await?;
            tx.commit().await?;
            Ok::<T, TxFailure>(value)
        }
        .await;
        match result {
            Ok(value) => return Ok(value),
            // A version conflict means a concurrent write got in first: running the body again
            // sees it (and then honours `If-Match`, or writes the next version).
            Err(TxFailure::Store(e))
                if (e.is_retryable() || matches!(e, StoreError::VersionConflict { .. }))
                    && attempt < TRANSACTION_ATTEMPTS =>
            {
                let backoff = 5u64 * (1 << attempt.min(6)) + (attempt as u64 * 7) % 11;
                tokio::time::sleep(std::time::Duration::from_millis(backoff)).await;
            }
            Err(failure) => return Err(failure.into()),
        }
    }
}

/// Parses and validates a resource body: JSON, an object, a known `resourceType` (equal to
/// `expected_type` when given), valid R4. Every problem is a `400` naming where it is.
pub fn parse_resource(
    body: &[u8],
    expected_type: Option<&str>,
) -> Result<Map<String, Value>, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "The request body is empty; a resource is required",
        ));
    }
    let value = json::parse(body).map_err(|e| {
        ApiError::with_code(
            ErrorKind::BadRequest,
            IssueCode::Structure,
            format!("Malformed JSON: {e}"),
        )
    })?;
    resource_from_value(value, expected_type)
}

/// As [`parse_resource`], for a value already parsed (a bundle entry's resource).
pub fn resource_from_value(
    value: Value,
    expected_type: Option<&str>,
) -> Result<Map<String, Value>, ApiError> {
    let Value::Object(map) = value else {
        return Err(ApiError::with_code(
            ErrorKind::BadRequest,
            IssueCode::Structure,
            "A resource must be a JSON object",
        ));
    };
    let Some(resource_type) = map.get("resourceType").and_then(Value::as_str) else {
        return Err(ApiError::with_code(
            ErrorKind::BadRequest,
            IssueCode::Required,
            "The resource has no resourceType",
        ));
    };
    if let Some(expected) = expected_type
        && resource_type != expected
    {
        return Err(ApiError::bad_request(format!(
            "resourceType '{}' does not match the URL's type '{expected}'",
            truncate(resource_type, 64)
        )));
    }
    crate::route::known_type(resource_type)?;
    crate::server::reject_client_writes(resource_type)?;
    let is_search_parameter = resource_type == "SearchParameter";
    if let Some(id) = map.get("id")
        && !id.as_str().is_some_and(oxifhir_model::id::is_valid)
    {
        return Err(ApiError::bad_request("Resource.id breaks the R4 id rule")
            .at(format!("{resource_type}.id")));
    }
    let value = Value::Object(map);
    if let Err(issues) = validation::validate(&value) {
        let issues = issues
            .into_iter()
            .map(|i| {
                Issue::new(IssueSeverity::Error, IssueCode::Structure, i.message)
                    .with_expression([i.path])
            })
            .collect();
        return Err(ApiError::with_issues(ErrorKind::BadRequest, issues));
    }
    if is_search_parameter {
        crate::search_params::validate(&value)?;
    }
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(ApiError::internal(
            "a validated resource stopped being an object",
        )),
    }
}

/// Search index entries of a resource for the R4 search parameters of its type
/// ([`oxifhir_model::index::extract`]); [`SearchParams::index`] adds the custom ones.
pub fn index_entries(resource_type: &str, resource: &Value) -> IndexEntries {
    oxifhir_model::index::extract(resource_type, resource)
}

/// Re-extracts the index entries of a stored version with the parameters in force and
/// replaces its index rows, without a new version (what `$reindex` does to each resource).
/// Returns the number of entries, or `None` when the version is no longer current (or is a
/// deletion) and nothing changed.
pub async fn reindex(
    tx: &mut dyn StoreTx,
    params: &SearchParams,
    version: &ResourceVersion,
) -> Result<Option<usize>, TxFailure> {
    if version.is_deleted() {
        return Ok(None);
    }
    let value = json::parse(&version.body).map_err(ApiError::internal)?;
    let entries = params.index(&version.resource_type, &value);
    let count = entries.len();
    let replaced = tx
        .replace_index(
            &version.resource_type,
            &version.id,
            version.version_id,
            entries,
        )
        .await?;
    Ok(replaced.then_some(count))
}

/// The write that stores `resource` as the version of `resource_type/id` after `previous`
/// (`None`: the first version), with `id` and `meta` set and index entries for `params`,
/// and the version it creates.
pub fn next_version(
    params: &SearchParams,
    resource_type: &str,
    id: &str,
    mut resource: Map<String, Value>,
    previous: Option<&ResourceVersion>,
    method: WriteMethod,
) -> (VersionWrite, ResourceVersion) {
    let version_id = previous.map_or(1, |p| p.version_id + 1);
    let last_updated =
        Instant::now().max(previous.map_or(Instant::from_millis(0), |p| p.last_updated));
    json::stamp(&mut resource, id, version_id, last_updated);
    let value = Value::Object(resource);
    let index = params.index(resource_type, &value);
    let body = json::to_bytes(&value);
    let version = ResourceVersion {
        resource_type: resource_type.to_string(),
        id: id.to_string(),
        version_id,
        last_updated,
        method,
        body: body.clone(),
    };
    let write = VersionWrite {
        resource_type: resource_type.to_string(),
        id: id.to_string(),
        version_id,
        last_updated,
        method,
        body,
        previous_version: previous.map(|p| p.version_id),
        index,
    };
    (write, version)
}

/// Stores `resource` as a new version of `resource_type/id` after `previous` (`None`: the
/// first version), setting `id` and `meta`.
pub async fn write_version(
    tx: &mut dyn StoreTx,
    params: &SearchParams,
    resource_type: &str,
    id: &str,
    resource: Map<String, Value>,
    previous: Option<&ResourceVersion>,
    method: WriteMethod,
) -> Result<ResourceVersion, TxFailure> {
    let (write, version) = next_version(params, resource_type, id, resource, previous, method);
    tx.write(write).await?;
    Ok(version)
}

/// Creates `resource_type/id` as a write of its own (group-committed where the store can).
pub async fn create_alone(
    store: &dyn Store,
    params: &SearchParams,
    resource_type: &str,
    id: &str,
    resource: Map<String, Value>,
) -> Result<ResourceVersion, ApiError> {
    let (write, version) = next_version(
        params,
        resource_type,
        id,
        resource,
        None,
        WriteMethod::Create,
    );
    store.write_alone(write).await?;
    Ok(version)
}

/// Updates `resource_type/id` (honouring `If-Match`) as a write of its own, reading the
/// current version outside any transaction and retrying when another write got in first.
pub async fn update_alone(
    store: &dyn Store,
    params: &SearchParams,
    resource_type: &str,
    id: &str,
    resource: Map<String, Value>,
    if_match: Option<i64>,
) -> Result<Updated, ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let current = store.read(resource_type, id).await?;
        check_if_match(resource_type, id, current.as_ref(), if_match)?;
        let created = current.as_ref().is_none_or(ResourceVersion::is_deleted);
        let (write, version) = next_version(
            params,
            resource_type,
            id,
            resource.clone(),
            current.as_ref(),
            WriteMethod::Update,
        );
        match store.write_alone(write).await {
            Ok(()) => return Ok(Updated { version, created }),
            Err(e @ (StoreError::VersionConflict { .. } | StoreError::Retryable(_)))
                if attempt < TRANSACTION_ATTEMPTS =>
            {
                tracing::debug!(error = %e, "update raced with another write; retrying");
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn check_if_match(
    resource_type: &str,
    id: &str,
    current: Option<&ResourceVersion>,
    if_match: Option<i64>,
) -> Result<(), ApiError> {
    let Some(expected) = if_match else {
        return Ok(());
    };
    match current {
        Some(c) if c.version_id == expected && !c.is_deleted() => Ok(()),
        Some(c) => Err(ApiError::new(
            ErrorKind::PreconditionFailed,
            format!(
                "If-Match: version {expected} expected, current version is {}",
                c.version_id
            ),
        )),
        None => Err(ApiError::new(
            ErrorKind::PreconditionFailed,
            format!("If-Match: {resource_type}/{id} does not exist"),
        )),
    }
}

/// The result of an update.
pub struct Updated {
    pub version: ResourceVersion,
    /// True when the update created the resource (first version or after a deletion).
    pub created: bool,
}

/// Update (or create-on-update) `resource_type/id`, honouring `If-Match` (`412` on mismatch).
pub async fn update(
    tx: &mut dyn StoreTx,
    params: &SearchParams,
    resource_type: &str,
    id: &str,
    resource: Map<String, Value>,
    if_match: Option<i64>,
) -> Result<Updated, TxFailure> {
    let current = tx.read(resource_type, id).await?;
    check_if_match(resource_type, id, current.as_ref(), if_match)?;
    let created = current.as_ref().is_none_or(ResourceVersion::is_deleted);
    let version = write_version(
        tx,
        params,
        resource_type,
        id,
        resource,
        current.as_ref(),
        WriteMethod::Update,
    )
    .await?;
    Ok(Updated { version, created })
}

/// What a delete did.
pub enum Deleted {
    /// A tombstone was written.
    Now(ResourceVersion),
    /// The resource was deleted before; nothing changed.
    Already(ResourceVersion),
    /// There never was such a resource.
    Never,
}

/// Deletes `resource_type/id` by writing a tombstone version.
pub async fn delete(
    tx: &mut dyn StoreTx,
    resource_type: &str,
    id: &str,
) -> Result<Deleted, TxFailure> {
    let Some(current) = tx.read(resource_type, id).await? else {
        return Ok(Deleted::Never);
    };
    if current.is_deleted() {
        return Ok(Deleted::Already(current));
    }
    let version_id = current.version_id + 1;
    let last_updated = Instant::now().max(current.last_updated);
    tx.write(VersionWrite {
        resource_type: resource_type.to_string(),
        id: id.to_string(),
        version_id,
        last_updated,
        method: WriteMethod::Delete,
        body: Vec::new(),
        previous_version: Some(current.version_id),
        index: IndexEntries::default(),
    })
    .await?;
    Ok(Deleted::Now(ResourceVersion {
        resource_type: resource_type.to_string(),
        id: id.to_string(),
        version_id,
        last_updated,
        method: WriteMethod::Delete,
        body: Vec::new(),
    }))
}

/// Parses an `If-Match` / `ifMatch` value (`W/"3"`, `"3"` or `3`) into a version id.
pub fn parse_etag(value: &str) -> Result<i64, ApiError> {
    let v = value.trim();
    let v = v.strip_prefix("W/").unwrap_or(v).trim_matches('"');
    v.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid ETag '{}'", truncate(value, 40))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags() {
        assert_eq!(parse_etag("W/\"3\"").ok(), Some(3));
        assert_eq!(parse_etag("\"12\"").ok(), Some(12));
        assert_eq!(parse_etag("7").ok(), Some(7));
        assert!(parse_etag("W/\"x\"").is_err());
        assert!(parse_etag("0").is_err());
    }
}
