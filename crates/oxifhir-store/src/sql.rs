//! SQL text shared by both backends, with the dialect differences in a few named functions.
//!
//! Search and history queries are built here from [`SearchQuery`]/[`HistoryQuery`] with bind
//! parameters only (values never end up in the SQL text); each backend binds the
//! [`Param`]s with its own driver and turns the rows back into pages with
//! [`finish_search`]/[`finish_history`].

use crate::cursor::{self, CursorValue};
use crate::{
    Condition, HistoryPage, HistoryQuery, HistoryScope, ResourceVersion, SearchPage, SearchQuery,
    SortField, StoreError, StoreResult,
};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Int(i64),
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Sql {
    pub text: String,
    pub params: Vec<Param>,
}

/// Collects bind parameters and hands out their placeholders.
struct Binder {
    dialect: Dialect,
    params: Vec<Param>,
}

impl Binder {
    fn new(dialect: Dialect) -> Self {
        Binder {
            dialect,
            params: Vec::new(),
        }
    }

    fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        self.dialect.placeholder(self.params.len())
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

/// A version row together with its `seq`.
#[derive(Debug, Clone)]
pub(crate) struct RowData {
    pub version: ResourceVersion,
    pub seq: i64,
}

/// The statements that answer one search: a page (`count + 1` rows) and maybe the total.
#[derive(Debug, Clone)]
pub(crate) struct SearchPlan {
    pub page: Option<Sql>,
    pub total: Option<Sql>,
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

fn condition_sql(binder: &mut Binder, condition: &Condition) -> String {
    match condition {
        Condition::IdIn(ids) if ids.is_empty() => "1=0".to_owned(),
        Condition::IdIn(ids) => {
            let p = binder.bind(Param::TextList(ids.clone()));
            binder.dialect.in_text_list("id", &p)
        }
        Condition::IdNotIn(ids) if ids.is_empty() => "1=1".to_owned(),
        Condition::IdNotIn(ids) => {
            let p = binder.bind(Param::TextList(ids.clone()));
            format!("NOT ({})", binder.dialect.in_text_list("id", &p))
        }
        Condition::LastUpdated { from, to } => {
            let mut parts = Vec::new();
            if let Some(from) = from {
                parts.push(format!(
                    "last_updated >= {}",
                    binder.bind(Param::Int(*from))
                ));
            }
            if let Some(to) = to {
                parts.push(format!("last_updated < {}", binder.bind(Param::Int(*to))));
            }
            if parts.is_empty() {
                "1=1".to_owned()
            } else {
                format!("({})", parts.join(" AND "))
            }
        }
        Condition::LastUpdatedNot { from, to } => {
            let from = binder.bind(Param::Int(*from));
            let to = binder.bind(Param::Int(*to));
            format!("(last_updated < {from} OR last_updated >= {to})")
        }
        Condition::Any(any) if any.is_empty() => "1=0".to_owned(),
        Condition::Any(any) => {
            let parts: Vec<String> = any.iter().map(|c| condition_sql(binder, c)).collect();
            format!("({})", parts.join(" OR "))
        }
    }
}

/// The `WHERE` clause (without keyset) shared by a search's page and total.
fn search_filter(binder: &mut Binder, query: &SearchQuery) -> Vec<String> {
    let mut clauses = vec!["method <> 'D'".to_owned()];
    match query.resource_types.as_slice() {
        [] => {}
        [one] => clauses.push(format!(
            "resource_type = {}",
            binder.bind(Param::Text(one.clone()))
        )),
        many => {
            let p = binder.bind(Param::TextList(many.to_vec()));
            clauses.push(binder.dialect.in_text_list("resource_type", &p));
        }
    }
    clauses.extend(query.conditions.iter().map(|c| condition_sql(binder, c)));
    clauses
}

fn sort_column(field: SortField) -> &'static str {
    match field {
        SortField::Id => "id",
        SortField::LastUpdated => "last_updated",
    }
}

/// `(k1 > v1) OR (k1 = v1 AND k2 > v2) OR … OR (k1 = v1 AND … AND seq > s)`, with `<` for
/// descending keys: the rows strictly after the cursor position in the query's order.
fn keyset_sql(binder: &mut Binder, query: &SearchQuery, cursor: &str) -> StoreResult<String> {
    let position = cursor::decode_search(&query.sort, cursor)?;
    let mut keys: Vec<(&str, bool, Param)> = Vec::with_capacity(query.sort.len() + 1);
    for (key, value) in query.sort.iter().zip(position.values) {
        let param = match value {
            CursorValue::Int(n) => Param::Int(n),
            CursorValue::Text(t) => Param::Text(t),
        };
        keys.push((sort_column(key.field), key.descending, param));
    }
    keys.push(("seq", false, Param::Int(position.seq)));
    let mut alternatives = Vec::with_capacity(keys.len());
    for i in 0..keys.len() {
        let mut terms = Vec::with_capacity(i + 1);
        for (column, _, param) in &keys[..i] {
            terms.push(format!("{column} = {}", binder.bind(param.clone())));
        }
        let (column, descending, param) = &keys[i];
        let op = if *descending { "<" } else { ">" };
        terms.push(format!("{column} {op} {}", binder.bind(param.clone())));
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    Ok(format!("({})", alternatives.join(" OR ")))
}

/// Builds the statements of a search. The page query is `None` when `count` is 0.
pub(crate) fn plan_search(dialect: Dialect, query: &SearchQuery) -> StoreResult<SearchPlan> {
    let total = if query.with_total {
        let mut binder = Binder::new(dialect);
        let filter = search_filter(&mut binder, query).join(" AND ");
        Some(binder.finish(format!("SELECT count(*) FROM resources WHERE {filter}")))
    } else {
        None
    };
    let mut binder = Binder::new(dialect);
    let mut filter = search_filter(&mut binder, query);
    if let Some(cursor) = &query.cursor {
        filter.push(keyset_sql(&mut binder, query, cursor)?);
    }
    if query.count == 0 {
        return Ok(SearchPlan { page: None, total });
    }
    let mut order: Vec<String> = query
        .sort
        .iter()
        .map(|k| {
            format!(
                "{} {}",
                sort_column(k.field),
                if k.descending { "DESC" } else { "ASC" }
            )
        })
        .collect();
    order.push("seq ASC".to_owned());
    let limit = binder.bind(Param::Int(limit_of(query.count)));
    let text = format!(
        "SELECT {VERSION_COLUMNS} FROM resources WHERE {} ORDER BY {} LIMIT {limit}",
        filter.join(" AND "),
        order.join(", ")
    );
    Ok(SearchPlan {
        page: Some(binder.finish(text)),
        total,
    })
}

/// Turns the rows of [`SearchPlan::page`] (up to `count + 1`) into a page.
pub(crate) fn finish_search(
    query: &SearchQuery,
    mut rows: Vec<RowData>,
    total: Option<i64>,
) -> SearchPage {
    let mut next = None;
    if rows.len() > query.count {
        rows.truncate(query.count);
        if let Some(last) = rows.last() {
            let values: Vec<CursorValue> = query
                .sort
                .iter()
                .map(|k| match k.field {
                    SortField::Id => CursorValue::Text(last.version.id.clone()),
                    SortField::LastUpdated => CursorValue::Int(last.version.last_updated.millis()),
                })
                .collect();
            next = Some(cursor::encode_search(&query.sort, &values, last.seq));
        }
    }
    SearchPage {
        resources: rows.into_iter().map(|r| r.version).collect(),
        next,
        total: total.map(|t| u64::try_from(t).unwrap_or(0)),
    }
}

fn history_filter(binder: &mut Binder, query: &HistoryQuery) -> Vec<String> {
    let mut clauses = Vec::new();
    match &query.scope {
        HistoryScope::System => {}
        HistoryScope::Type(resource_type) => {
            clauses.push(format!(
                "resource_type = {}",
                binder.bind(Param::Text(resource_type.clone()))
            ));
        }
        HistoryScope::Instance { resource_type, id } => {
            let t = binder.bind(Param::Text(resource_type.clone()));
            let i = binder.bind(Param::Text(id.clone()));
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
        "SELECT {VERSION_COLUMNS} FROM history{} ORDER BY last_updated DESC, seq DESC LIMIT {limit}",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SortKey;

    #[test]
    fn search_sql_uses_only_placeholders() {
        let query = SearchQuery {
            resource_types: vec!["Patient".into(), "Observation".into()],
            conditions: vec![
                Condition::IdIn(vec!["x'; DROP TABLE resources; --".into()]),
                Condition::Any(vec![
                    Condition::LastUpdated {
                        from: Some(1),
                        to: None,
                    },
                    Condition::LastUpdatedNot { from: 2, to: 3 },
                ]),
            ],
            sort: vec![SortKey {
                field: SortField::Id,
                descending: true,
            }],
            count: 10,
            cursor: Some(cursor::encode_search(
                &[SortKey {
                    field: SortField::Id,
                    descending: true,
                }],
                &[CursorValue::Text("abc".into())],
                5,
            )),
            with_total: true,
        };
        let plan = plan_search(Dialect::Postgres, &query).expect("plan");
        let page = plan.page.expect("page");
        assert!(!page.text.contains("DROP"));
        assert_eq!(
            page.text,
            "SELECT resource_type, id, version_id, last_updated, method, body, seq FROM resources \
             WHERE method <> 'D' AND resource_type = ANY($1) AND id = ANY($2) AND \
             ((last_updated >= $3) OR (last_updated < $4 OR last_updated >= $5)) AND \
             ((id < $6) OR (id = $7 AND seq > $8)) ORDER BY id DESC, seq ASC LIMIT $9"
        );
        assert_eq!(page.params.len(), 9);
        assert_eq!(page.params[8], Param::Int(11));
        let total = plan.total.expect("total");
        assert_eq!(total.params.len(), 5);
    }

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
            "SELECT resource_type, id, version_id, last_updated, method, body, seq FROM history \
             WHERE resource_type = ?1 AND last_updated >= ?2 AND (last_updated < ?3 OR \
             (last_updated = ?4 AND seq < ?5)) ORDER BY last_updated DESC, seq DESC LIMIT ?6"
        );
        assert_eq!(
            plan.total.text,
            "SELECT count(*) FROM history WHERE resource_type = ?1 AND last_updated >= ?2"
        );
    }
}
