//! Hard deletion (`$expunge`): what can be removed for good, and the SQL both backends run for
//! one bounded batch of it. Each batch is its own transaction and idempotent, so a job can stop
//! between batches and a resumed job simply continues.

use crate::sql::{Dialect, Param, Sql};

/// Which resources an expunge looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExpungeScope {
    /// Only this type (`None`: every type).
    pub resource_type: Option<String>,
    /// Only this resource (with `resource_type`).
    pub id: Option<String>,
}

/// What one batch removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpungeWhat {
    /// Versions older than the current one, of resources in the scope.
    PreviousVersions,
    /// Every version of resources in the scope whose current version is a deletion.
    DeletedResources,
    /// Every version and index entry of every resource in the scope.
    Everything,
    /// Every version and index entry of exactly these `(type, id)` resources.
    Resources(Vec<(String, String)>),
}

/// One batch of an expunge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpungeBatch {
    pub scope: ExpungeScope,
    pub what: ExpungeWhat,
    /// Most resources (or, for previous versions, versions) this batch removes.
    pub limit: usize,
}

/// What one batch removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpungeCount {
    /// Resources removed with every version (0 for previous versions).
    pub resources: u64,
    /// Versions removed.
    pub versions: u64,
}

fn scope_conditions(
    dialect: Dialect,
    scope: &ExpungeScope,
    table: &str,
    params: &mut Vec<Param>,
) -> String {
    let mut text = String::new();
    if let Some(t) = &scope.resource_type {
        params.push(Param::Text(t.clone()));
        text.push_str(&format!(
            " AND {table}.resource_type = {}",
            dialect.placeholder(params.len())
        ));
    }
    if let Some(id) = &scope.id {
        params.push(Param::Text(id.clone()));
        text.push_str(&format!(
            " AND {table}.id = {}",
            dialect.placeholder(params.len())
        ));
    }
    text
}

fn limit(batch: &ExpungeBatch) -> Param {
    Param::Int(i64::try_from(batch.limit.max(1)).unwrap_or(i64::MAX))
}

/// The `(resource_type, id)` keys a key-based batch removes; `None` for previous versions,
/// which are removed by [`delete_previous_versions`] directly.
pub(crate) fn select_keys(dialect: Dialect, batch: &ExpungeBatch) -> Option<Sql> {
    let deleted_only = match &batch.what {
        ExpungeWhat::PreviousVersions | ExpungeWhat::Resources(_) => return None,
        ExpungeWhat::DeletedResources => " AND r.method = 'D'",
        ExpungeWhat::Everything => "",
    };
    let mut params = vec![limit(batch)];
    let conditions = scope_conditions(dialect, &batch.scope, "r", &mut params);
    Some(Sql {
        text: format!(
            "SELECT r.resource_type, r.id FROM resources r WHERE 1 = 1{deleted_only}{conditions} \
             ORDER BY r.resource_type, r.id LIMIT {}",
            dialect.placeholder(1)
        ),
        params,
    })
}

/// Deletes every stored row of `keys`: history first (its row count is the number of versions
/// removed, the batch's result), then index rows, then current rows.
pub(crate) fn delete_keys(dialect: Dialect, keys: &[(String, String)]) -> Vec<Sql> {
    let mut by_type: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (t, id) in keys {
        by_type.entry(t.as_str()).or_default().push(id.clone());
    }
    let mut history = Vec::new();
    let mut rest = Vec::new();
    for (resource_type, ids) in by_type {
        let condition = format!(
            "resource_type = {} AND {}",
            dialect.placeholder(1),
            dialect.in_text_list("id", &dialect.placeholder(2))
        );
        let params = vec![Param::Text(resource_type.to_owned()), Param::TextList(ids)];
        history.push(Sql {
            text: format!("DELETE FROM history WHERE {condition}"),
            params: params.clone(),
        });
        for table in crate::sql::INDEX_TABLES.iter().chain(["resources"].iter()) {
            rest.push(Sql {
                text: format!("DELETE FROM {table} WHERE {condition}"),
                params: params.clone(),
            });
        }
    }
    history.into_iter().chain(rest).collect()
}

/// How many of the statements of [`delete_keys`] count removed versions (the history ones).
pub(crate) fn history_statements(keys: &[(String, String)]) -> usize {
    keys.iter()
        .map(|(t, _)| t.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

/// Deletes up to `limit` versions older than their resource's current version.
pub(crate) fn delete_previous_versions(dialect: Dialect, batch: &ExpungeBatch) -> Sql {
    let mut params = vec![limit(batch)];
    let conditions = scope_conditions(dialect, &batch.scope, "h", &mut params);
    Sql {
        text: format!(
            "DELETE FROM history WHERE seq IN (SELECT h.seq FROM history h JOIN resources r \
             ON r.resource_type = h.resource_type AND r.id = h.id \
             WHERE h.version_id < r.version_id{conditions} ORDER BY h.seq LIMIT {})",
            dialect.placeholder(1)
        ),
        params,
    }
}

/// The keys of a batch: selected by [`select_keys`], or given.
pub(crate) fn given_keys(batch: &ExpungeBatch) -> Option<&[(String, String)]> {
    match &batch.what {
        ExpungeWhat::Resources(keys) => Some(keys),
        _ => None,
    }
}
