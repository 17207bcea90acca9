//! SQL text shared by both backends, with the dialect differences in a few named functions.
//!
//! Search and history queries are built here from [`SearchQuery`](crate::SearchQuery) and
//! [`HistoryQuery`] with bind parameters only (values never end up in the SQL text); each
//! backend binds the [`Param`]s with its own driver and turns the rows back into pages with
//! [`finish_search`]/[`finish_history`]. Searches: `search.rs` (page, total, sort, keyset)
//! and `condition.rs` (each condition as a predicate).

mod condition;
pub(crate) mod migrations;
mod search;

pub(crate) use search::{KeyKind, PROBE_FROM, finish_search, plan_search, probe_candidates};

use crate::cursor::{self, CursorValue};
use crate::{HistoryPage, HistoryQuery, HistoryScope, ResourceVersion, StoreError, StoreResult};

/// The SQL dialect a statement is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The placeholder of the `n`th (1-based) bind parameter.
    pub(crate) fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}"),
        }
    }

    /// `column` is one of the strings of a [`Param::TextList`] bound at `placeholder`. One
    /// statement shape serves lists of any length, so it can be prepared once and cached.
    pub(crate) fn in_text_list(self, column: &str, placeholder: &str) -> String {
        match self {
            Dialect::Sqlite => format!("{column} IN (SELECT value FROM json_each({placeholder}))"),
            Dialect::Postgres => format!("{column} = ANY({placeholder})"),
        }
    }
}

/// A bind parameter value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Int(i64),
    Float(f64),
    Text(String),
    /// A list of strings (SQLite binds it as a JSON array, PostgreSQL as `text[]`).
    TextList(Vec<String>),
    /// An integer or `NULL`.
    OptInt(Option<i64>),
    /// A string or `NULL`.
    OptText(Option<String>),
    /// Bytes (`BLOB`/`BYTEA`) or `NULL`.
    OptBytes(Option<Vec<u8>>),
}

/// A statement and its bind parameters.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Param>,
}

/// Collects bind parameters, hands out their placeholders and unique table aliases.
struct Binder {
    dialect: Dialect,
    params: Vec<Param>,
    aliases: usize,
}

impl Binder {
    fn new(dialect: Dialect) -> Self {
        Binder {
            dialect,
            params: Vec::new(),
            aliases: 0,
        }
    }

    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        self.dialect.placeholder(self.params.len())
    }

    fn text(&mut self, text: &str) -> String {
        self.bind(Param::Text(text.to_owned()))
    }

    /// A table alias not used before in this statement (`prefix` plus a number).
    fn alias(&mut self, prefix: &str) -> String {
        self.aliases += 1;
        format!("{prefix}{}", self.aliases)
    }

    fn finish(self, text: String) -> Sql {
        Sql {
            text,
            params: self.params,
        }
    }
}

/// The columns every version query selects, in the order [`RowData`] expects them.
pub(crate) const VERSION_COLUMNS: &str =
    "resource_type, id, version_id, last_updated, method, body, seq";

/// [`VERSION_COLUMNS`] of a query `FROM history`. On SQLite the history row of a current
/// version leaves its body to `resources` (an empty `body`, see `sqlite/schema.rs`): a body
/// is stored once until the version is replaced. (A deletion's body is empty everywhere.)
pub(crate) fn history_columns(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "resource_type, id, version_id, last_updated, method, \
             CASE WHEN length(body) > 0 THEN body ELSE coalesce((SELECT r.body FROM resources r \
             WHERE r.resource_type = history.resource_type AND r.id = history.id \
             AND r.seq = history.seq), body) END, seq"
        }
        Dialect::Postgres => VERSION_COLUMNS,
    }
}

/// A version row together with its `seq` and the values of its sort-key columns.
#[derive(Debug, Clone)]
pub(crate) struct RowData {
    pub version: ResourceVersion,
    pub seq: i64,
    /// One value per [`SearchPlan::keys`] column, after the version columns.
    pub keys: Vec<CursorValue>,
}

/// The statements that answer one history request.
#[derive(Debug, Clone)]
pub(crate) struct HistoryPlan {
    pub page: Option<Sql>,
    pub total: Sql,
}

fn limit_of(count: usize) -> i64 {
    i64::try_from(count.saturating_add(1)).unwrap_or(i64::MAX)
}

fn history_filter(binder: &mut Binder, query: &HistoryQuery) -> Vec<String> {
    let mut clauses = Vec::new();
    match &query.scope {
        HistoryScope::System => {}
        HistoryScope::Type(resource_type) => {
            clauses.push(format!("resource_type = {}", binder.text(resource_type)));
        }
        HistoryScope::Instance { resource_type, id } => {
            let t = binder.text(resource_type);
            let i = binder.text(id);
            clauses.push(format!("resource_type = {t} AND id = {i}"));
        }
    }
    if let Some(since) = query.since {
        clauses.push(format!(
            "last_updated >= {}",
            binder.bind(Param::Int(since))
        ));
    }
    if let Some(before) = query.before {
        clauses.push(format!(
            "last_updated < {}",
            binder.bind(Param::Int(before))
        ));
    }
    clauses
}

fn where_clause(clauses: &[String]) -> String {
    if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    }
}

/// Builds the statements of a history request (newest first: `last_updated DESC, seq DESC`).
pub(crate) fn plan_history(dialect: Dialect, query: &HistoryQuery) -> StoreResult<HistoryPlan> {
    let mut binder = Binder::new(dialect);
    let filter = history_filter(&mut binder, query);
    let total = binder.finish(format!(
        "SELECT count(*) FROM history{}",
        where_clause(&filter)
    ));

    let mut binder = Binder::new(dialect);
    let mut filter = history_filter(&mut binder, query);
    if let Some(cursor) = &query.cursor {
        let (last_updated, seq) = cursor::decode_history(cursor)?;
        let a = binder.bind(Param::Int(last_updated));
        let b = binder.bind(Param::Int(last_updated));
        let c = binder.bind(Param::Int(seq));
        filter.push(format!(
            "(last_updated < {a} OR (last_updated = {b} AND seq < {c}))"
        ));
    }
    if query.count == 0 {
        return Ok(HistoryPlan { page: None, total });
    }
    let limit = binder.bind(Param::Int(limit_of(query.count)));
    let text = format!(
        "SELECT {} FROM history{} ORDER BY last_updated DESC, seq DESC LIMIT {limit}",
        history_columns(dialect),
        where_clause(&filter)
    );
    Ok(HistoryPlan {
        page: Some(binder.finish(text)),
        total,
    })
}

/// Turns the rows of [`HistoryPlan::page`] (up to `count + 1`) into a page.
pub(crate) fn finish_history(
    query: &HistoryQuery,
    mut rows: Vec<RowData>,
    total: i64,
) -> HistoryPage {
    let mut next = None;
    if rows.len() > query.count {
        rows.truncate(query.count);
        if let Some(last) = rows.last() {
            next = Some(cursor::encode_history(
                last.version.last_updated.millis(),
                last.seq,
            ));
        }
    }
    HistoryPage {
        versions: rows.into_iter().map(|r| r.version).collect(),
        next,
        total: u64::try_from(total).unwrap_or(0),
    }
}

/// Parses a stored method code, which only this crate writes.
pub(crate) fn method_from_code(code: &str) -> StoreResult<crate::WriteMethod> {
    crate::WriteMethod::from_code(code).ok_or_else(|| {
        StoreError::Backend(format!("unknown write method code {code:?} in database"))
    })
}

/// The index tables, one per [`crate::IndexEntries`] kind, in a fixed order.
pub(crate) const INDEX_TABLES: [&str; 7] = [
    "idx_string",
    "idx_token",
    "idx_reference",
    "idx_date",
    "idx_number",
    "idx_quantity",
    "idx_uri",
];

/// The condition of the partial index `idx_reference_url`, over reference entries of alias
/// `e`: the reference as written is not the `Type/id` of its target. Only such an entry can
/// pass a URL test (a search value that is a relative `Type/id` is a target test), and most
/// references are relative `Type/id`s, which the index leaves out. A URL test names this
/// condition word for word, which is how a database sees that the index covers it. (The
/// index holds the target's columns too: SQLite, without statistics, only picks a partial
/// index of a `WITHOUT ROWID` table when it covers the query.)
pub(crate) fn reference_url_indexed(e: &str) -> String {
    format!("{e}.url IS DISTINCT FROM ({e}.target_type || '/' || {e}.target_id)")
}

/// SQLite's `INDEXED BY` clause naming the primary key `(resource_type, id, param, n)` of index
/// table `table` (SQLite names the key of a `WITHOUT ROWID` table `sqlite_autoindex_<table>_1`),
/// for queries that must seek a resource's own rows: without statistics SQLite may prefer a
/// value index that covers the columns and scan it.
pub(crate) fn sqlite_by_resource(table: &str) -> String {
    format!("INDEXED BY sqlite_autoindex_{table}_1")
}

/// The custom search parameters marked as indexed.
pub(crate) const SELECT_INDEXED_PARAMS: &str =
    "SELECT url, fingerprint FROM search_param_indexed ORDER BY url";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_sql() {
        let query = HistoryQuery {
            scope: HistoryScope::Type("Patient".into()),
            since: Some(1),
            before: None,
            count: 2,
            cursor: Some(cursor::encode_history(10, 3)),
        };
        let plan = plan_history(Dialect::Sqlite, &query).expect("plan");
        assert_eq!(
            plan.page.expect("page").text,
            format!(
                "SELECT {} FROM history \
             WHERE resource_type = ?1 AND last_updated >= ?2 AND (last_updated < ?3 OR \
             (last_updated = ?4 AND seq < ?5)) ORDER BY last_updated DESC, seq DESC LIMIT ?6",
                history_columns(Dialect::Sqlite)
            )
        );
        assert_eq!(
            plan.total.text,
            "SELECT count(*) FROM history WHERE resource_type = ?1 AND last_updated >= ?2"
        );
    }
}
