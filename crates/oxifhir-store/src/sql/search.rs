//! The statements of a search: a page of `count + 1` rows in the query's order, starting
//! after (or ending before) a keyset cursor, and the total when asked for.
//!
//! The order is total: the sort keys, then the resource type (when several types are
//! searched) and the id. Sorting by a search parameter reads the smallest (ascending) or
//! largest (descending) indexed value of each match in a scalar subquery; resources without a
//! value come last. Such a query selects the matches with their sort values in a subquery,
//! and the keyset condition and `ORDER BY` apply to it.

use super::condition::{self, Scope};
use super::{Binder, Dialect, Param, RowData, Sql, VERSION_COLUMNS, limit_of};
use crate::cursor::{self, CursorValue, Direction, SearchPosition};
use crate::{IndexTable, SearchPage, SearchQuery, SortField, StoreResult};

/// How to read a sort-key column selected after the version columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Int,
    Float,
    Text,
}

/// The statements that answer one search.
#[derive(Debug, Clone)]
pub(crate) struct SearchPlan {
    /// `count + 1` rows (in reverse order for a cursor that pages backwards); `None` when
    /// `count` is 0.
    pub page: Option<Sql>,
    pub total: Option<Sql>,
    /// The kinds of the sort-key columns the page selects after the version columns.
    pub keys: Vec<KeyKind>,
    direction: Option<Direction>,
}

/// One term of the order.
struct OrderTerm {
    expr: String,
    descending: bool,
    nullable: bool,
}

/// The alias-free version columns, qualified with `alias`.
fn version_columns(alias: &str) -> String {
    VERSION_COLUMNS
        .split(", ")
        .map(|c| format!("{alias}.{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `r.resource_type` restricted to the query's types, and the scope conditions run in.
fn type_filter(binder: &mut Binder, query: &SearchQuery) -> (Option<String>, Scope) {
    match query.resource_types.as_slice() {
        [] => (
            None,
            Scope {
                alias: "r".into(),
                bound_type: None,
                id_bound: None,
            },
        ),
        [one] => {
            let t = binder.text(one);
            (
                Some(format!("r.resource_type = {t}")),
                Scope {
                    alias: "r".into(),
                    bound_type: Some(t),
                    id_bound: None,
                },
            )
        }
        many => {
            let p = binder.bind(Param::TextList(many.to_vec()));
            (
                Some(binder.dialect.in_text_list("r.resource_type", &p)),
                Scope {
                    alias: "r".into(),
                    bound_type: None,
                    id_bound: None,
                },
            )
        }
    }
}

/// The `WHERE` clauses (without keyset) of a search's page and total.
///
/// The top-level conditions whose positions are in `probed` are probes of each row's own
/// index entries ([`condition::probe`]) rather than membership tests.
///
/// `id_bound` (see [`Scope::id_bound`]) narrows the membership tests of a page in id order.
fn filter(
    binder: &mut Binder,
    query: &SearchQuery,
    probed: &[usize],
    id_bound: Option<String>,
) -> Vec<String> {
    let mut clauses = vec!["r.method <> 'D'".to_owned()];
    let (types, mut scope) = type_filter(binder, query);
    clauses.extend(types);
    if scope.bound_type.is_some()
        && let Some(bound) = id_bound
    {
        // Also on the row itself, which the keyset implies anyway: the placeholder is then
        // used even when no condition has a subquery to repeat it in.
        clauses.push(format!("r.id {bound}"));
        scope.id_bound = Some(bound);
    }
    for (i, c) in query.conditions.iter().enumerate() {
        let probe = if probed.contains(&i) {
            condition::probe(binder, c, &scope)
        } else {
            None
        };
        clauses.push(probe.unwrap_or_else(|| condition::condition(binder, c, &scope)));
    }
    clauses
}

/// By default, a condition with at least this many matching index entries is probed row by
/// row (see [`plan_search`]) rather than collected whole for each page.
pub(crate) const PROBE_FROM: usize = 2000;

/// For a search of one type in id or `_lastUpdated` order, the conditions that may be
/// probed row by row instead of tested for membership (see [`plan_search`]): each one's
/// position in `query.conditions` and a statement counting its matching index entries up to
/// `cap`. Empty for other searches, which sort their matches and so need them all.
pub(crate) fn probe_candidates(
    dialect: Dialect,
    query: &SearchQuery,
    cap: usize,
) -> Vec<(usize, Sql)> {
    let [resource_type] = query.resource_types.as_slice() else {
        return Vec::new();
    };
    let in_row_order = query
        .sort
        .iter()
        .all(|k| matches!(k.field, SortField::Id | SortField::LastUpdated));
    if !in_row_order || query.count == 0 {
        return Vec::new();
    }
    query
        .conditions
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let mut binder = Binder::new(dialect);
            let text = condition::capped_count(&mut binder, c, resource_type, cap)?;
            Some((i, binder.finish(text)))
        })
        .collect()
}

/// The scalar subquery giving a match's sort value for a parameter.
fn sort_value(
    binder: &mut Binder,
    params: &[String],
    table: IndexTable,
    descending: bool,
) -> String {
    let column = match (table, descending) {
        (IndexTable::String, _) => "normalized",
        (IndexTable::Token, _) => "code",
        (IndexTable::Reference, _) => "url",
        (IndexTable::Date, false) => "start_ms",
        (IndexTable::Date, true) => "end_ms",
        (IndexTable::Number | IndexTable::Quantity | IndexTable::Uri, _) => "value",
    };
    let aggregate = if descending { "max" } else { "min" };
    let e = binder.alias("k");
    let params: Vec<String> = params.iter().map(|p| binder.text(p)).collect();
    let param = match params.as_slice() {
        [one] => format!("= {one}"),
        _ => format!("IN ({})", params.join(", ")),
    };
    // Without statistics SQLite prefers the value index, which covers these columns, and
    // reads every value of the parameter for each row: a sort over 100 000 matches took
    // minutes. The row's own entries are a seek on the table's key.
    let by_resource = match binder.dialect {
        Dialect::Sqlite => format!(" {}", super::sqlite_by_resource(table.table_name())),
        Dialect::Postgres => String::new(),
    };
    format!(
        "(SELECT {aggregate}({e}.{column}) FROM {} {e}{by_resource} WHERE {e}.resource_type = \
         r.resource_type AND {e}.id = r.id AND {e}.param {param})",
        table.table_name()
    )
}

fn key_kind(table: IndexTable) -> KeyKind {
    match table {
        IndexTable::Date => KeyKind::Int,
        IndexTable::Number | IndexTable::Quantity => KeyKind::Float,
        _ => KeyKind::Text,
    }
}

fn bind_value(binder: &mut Binder, value: &CursorValue) -> String {
    binder.bind(match value {
        CursorValue::Int(n) => Param::Int(*n),
        CursorValue::Float(f) => Param::Float(*f),
        CursorValue::Text(t) => Param::Text(t.clone()),
        CursorValue::Null => Param::Text(String::new()),
    })
}

/// The rows strictly after (or before) `values` in the order of `terms`: for some `i`, the
/// first `i` terms equal the values and term `i` lies beyond its value. `NULL` sorts after
/// every value in either direction.
fn keyset(
    binder: &mut Binder,
    terms: &[OrderTerm],
    values: &[CursorValue],
    direction: Direction,
) -> String {
    let mut alternatives = Vec::with_capacity(terms.len());
    for i in 0..terms.len() {
        let (term, value) = (&terms[i], &values[i]);
        let beyond = match (value, direction) {
            (CursorValue::Null, Direction::After) => continue,
            (CursorValue::Null, Direction::Before) => format!("{} IS NOT NULL", term.expr),
            (value, direction) => {
                let forward = term.descending == (direction == Direction::Before);
                let op = if forward { ">" } else { "<" };
                let compare = format!("{} {op} {}", term.expr, bind_value(binder, value));
                if term.nullable && direction == Direction::After {
                    format!("({compare} OR {} IS NULL)", term.expr)
                } else {
                    compare
                }
            }
        };
        let mut parts = Vec::with_capacity(i + 1);
        for (earlier, value) in terms[..i].iter().zip(values) {
            parts.push(match value {
                CursorValue::Null => format!("{} IS NULL", earlier.expr),
                value => format!("{} = {}", earlier.expr, bind_value(binder, value)),
            });
        }
        parts.push(beyond);
        alternatives.push(format!("({})", parts.join(" AND ")));
    }
    if alternatives.is_empty() {
        "1=0".to_owned()
    } else {
        format!("({})", alternatives.join(" OR "))
    }
}

fn order_by(terms: &[OrderTerm], direction: Direction) -> String {
    let reverse = direction == Direction::Before;
    terms
        .iter()
        .map(|t| {
            let descending = t.descending != reverse;
            let dir = if descending { "DESC" } else { "ASC" };
            match (t.nullable, reverse) {
                (false, _) => format!("{} {dir}", t.expr),
                (true, false) => format!("{} {dir} NULLS LAST", t.expr),
                (true, true) => format!("{} {dir} NULLS FIRST", t.expr),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Builds the statements of a search.
///
/// The conditions whose positions are in `probed` (from [`probe_candidates`]) are tested on
/// each row the page walks in order rather than as membership in all their matches: for
/// conditions that hold for many rows, a page then costs what reaching its rows costs, not
/// what collecting every match costs. The total, if asked for, counts by membership.
pub(crate) fn plan_search(
    dialect: Dialect,
    query: &SearchQuery,
    probed: &[usize],
) -> StoreResult<SearchPlan> {
    let position = query
        .cursor
        .as_deref()
        .map(|c| cursor::decode_search(&query.sort, c))
        .transpose()?;
    let total = if query.with_total {
        let mut binder = Binder::new(dialect);
        let filter = filter(&mut binder, query, &[], None).join(" AND ");
        Some(binder.finish(format!("SELECT count(*) FROM resources r WHERE {filter}")))
    } else {
        None
    };
    let keys: Vec<KeyKind> = query
        .sort
        .iter()
        .filter_map(|k| match &k.field {
            SortField::Param { table, .. } => Some(key_kind(*table)),
            _ => None,
        })
        .collect();
    let direction = position.as_ref().map(|p| p.direction);
    if query.count == 0 {
        return Ok(SearchPlan {
            page: None,
            total,
            keys,
            direction,
        });
    }

    let mut binder = Binder::new(dialect);
    // In id order from a cursor, no row on the far side of the cursor can be on the page.
    let id_bound = match &position {
        Some(position)
            if query.resource_types.len() == 1
                && query.sort.iter().all(|k| k.field == SortField::Id) =>
        {
            let descending = query.sort.first().is_some_and(|k| k.descending);
            let forward = descending == (position.direction == Direction::Before);
            let op = if forward { ">" } else { "<" };
            Some(format!("{op} {}", binder.text(&position.id)))
        }
        _ => None,
    };
    let mut clauses = filter(&mut binder, query, probed, id_bound);
    // With parameter sort keys, the matches and their sort values are a subquery `q`.
    let wrapped = !keys.is_empty();
    let row = if wrapped { "q" } else { "r" };
    let mut terms = Vec::with_capacity(query.sort.len() + 2);
    let mut key_columns = Vec::new();
    for key in &query.sort {
        let expr = match &key.field {
            SortField::Id => format!("{row}.id"),
            SortField::LastUpdated => format!("{row}.last_updated"),
            SortField::Param { params, table } => {
                let column = format!("k{}", key_columns.len());
                let value = sort_value(&mut binder, params, *table, key.descending);
                key_columns.push(format!("{value} AS {column}"));
                format!("q.{column}")
            }
        };
        terms.push(OrderTerm {
            nullable: matches!(key.field, SortField::Param { .. }),
            expr,
            descending: key.descending,
        });
    }
    if query.resource_types.len() != 1 {
        terms.push(OrderTerm {
            expr: format!("{row}.resource_type"),
            descending: false,
            nullable: false,
        });
    }
    terms.push(OrderTerm {
        expr: format!("{row}.id"),
        descending: false,
        nullable: false,
    });

    let mut outer = Vec::new();
    if let Some(position) = &position {
        let mut values = position.values.clone();
        if query.resource_types.len() != 1 {
            values.push(CursorValue::Text(position.resource_type.clone()));
        }
        values.push(CursorValue::Text(position.id.clone()));
        let keyset = keyset(&mut binder, &terms, &values, position.direction);
        if wrapped {
            outer.push(keyset);
        } else {
            clauses.push(keyset);
        }
    }
    let order = order_by(&terms, direction.unwrap_or(Direction::After));
    let limit = binder.bind(Param::Int(limit_of(query.count)));
    let text = if wrapped {
        let inner = format!(
            "SELECT {}, {} FROM resources r WHERE {}",
            version_columns("r"),
            key_columns.join(", "),
            clauses.join(" AND ")
        );
        let names: Vec<String> = (0..key_columns.len()).map(|i| format!("q.k{i}")).collect();
        let outer_filter = if outer.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", outer.join(" AND "))
        };
        format!(
            "SELECT {}, {} FROM ({inner}) q{outer_filter} ORDER BY {order} LIMIT {limit}",
            version_columns("q"),
            names.join(", ")
        )
    } else {
        format!(
            "SELECT {} FROM resources r WHERE {} ORDER BY {order} LIMIT {limit}",
            version_columns("r"),
            clauses.join(" AND ")
        )
    };
    Ok(SearchPlan {
        page: Some(binder.finish(text)),
        total,
        keys,
        direction,
    })
}

/// The position of `row` in `query`'s order.
fn position_of(query: &SearchQuery, row: &RowData, direction: Direction) -> SearchPosition {
    let mut param_keys = row.keys.iter();
    let values = query
        .sort
        .iter()
        .map(|k| match k.field {
            SortField::Id => CursorValue::Text(row.version.id.clone()),
            SortField::LastUpdated => CursorValue::Int(row.version.last_updated.millis()),
            SortField::Param { .. } => param_keys.next().cloned().unwrap_or(CursorValue::Null),
        })
        .collect();
    SearchPosition {
        direction,
        values,
        resource_type: row.version.resource_type.clone(),
        id: row.version.id.clone(),
    }
}

/// Turns the rows of [`SearchPlan::page`] (up to `count + 1`) into a page with its cursors.
pub(crate) fn finish_search(
    query: &SearchQuery,
    plan: &SearchPlan,
    mut rows: Vec<RowData>,
    total: Option<i64>,
) -> SearchPage {
    let more = rows.len() > query.count;
    rows.truncate(query.count);
    let backwards = plan.direction == Some(Direction::Before);
    if backwards {
        rows.reverse();
    }
    let cursor_at = |row: Option<&RowData>, direction| {
        row.map(|r| cursor::encode_search(&query.sort, &position_of(query, r, direction)))
    };
    let (next, previous) = match plan.direction {
        None => (
            if more {
                cursor_at(rows.last(), Direction::After)
            } else {
                None
            },
            None,
        ),
        Some(Direction::After) => (
            if more {
                cursor_at(rows.last(), Direction::After)
            } else {
                None
            },
            cursor_at(rows.first(), Direction::Before),
        ),
        Some(Direction::Before) => (
            cursor_at(rows.last(), Direction::After),
            if more {
                cursor_at(rows.first(), Direction::Before)
            } else {
                None
            },
        ),
    };
    SearchPage {
        resources: rows.into_iter().map(|r| r.version).collect(),
        next,
        previous,
        total: total.map(|t| u64::try_from(t).unwrap_or(0)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Condition, EntryTest, SortKey};

    #[test]
    fn search_sql_uses_only_placeholders() {
        let sort = vec![SortKey {
            field: SortField::Id,
            descending: true,
        }];
        let cursor = cursor::encode_search(
            &sort,
            &SearchPosition {
                direction: Direction::After,
                values: vec![CursorValue::Text("abc".into())],
                resource_type: "Patient".into(),
                id: "abc".into(),
            },
        );
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
            sort,
            count: 10,
            cursor: Some(cursor),
            with_total: true,
        };
        let plan = plan_search(Dialect::Postgres, &query, &[]).expect("plan");
        let page = plan.page.expect("page");
        assert!(!page.text.contains("DROP"));
        assert_eq!(
            page.text,
            "SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.method, r.body, r.seq \
             FROM resources r WHERE r.method <> 'D' AND r.resource_type = ANY($1) AND \
             r.id = ANY($2) AND ((r.last_updated >= $3) OR (r.last_updated < $4 OR \
             r.last_updated >= $5)) AND ((r.id < $6) OR (r.id = $8 AND r.resource_type > $7) OR \
             (r.id = $10 AND r.resource_type = $11 AND r.id > $9)) \
             ORDER BY r.id DESC, r.resource_type ASC, r.id ASC LIMIT $12"
        );
        assert_eq!(page.params.len(), 12);
        assert_eq!(page.params[11], Param::Int(11));
        let total = plan.total.expect("total");
        assert_eq!(total.params.len(), 5);
    }

    #[test]
    fn parameter_sort_keys_are_a_subquery_with_nulls_last() {
        let sort = vec![SortKey {
            field: SortField::Param {
                params: vec!["birthdate".into()],
                table: IndexTable::Date,
            },
            descending: true,
        }];
        let before = cursor::encode_search(
            &sort,
            &SearchPosition {
                direction: Direction::Before,
                values: vec![CursorValue::Null],
                resource_type: "Patient".into(),
                id: "p9".into(),
            },
        );
        let query = SearchQuery {
            resource_types: vec!["Patient".into()],
            sort,
            count: 5,
            cursor: Some(before),
            ..Default::default()
        };
        let plan = plan_search(Dialect::Sqlite, &query, &[]).expect("plan");
        assert_eq!(plan.keys, [KeyKind::Int]);
        assert_eq!(
            plan.page.expect("page").text,
            "SELECT q.resource_type, q.id, q.version_id, q.last_updated, q.method, q.body, q.seq, \
             q.k0 FROM (SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.method, \
             r.body, r.seq, (SELECT max(k1.end_ms) FROM idx_date k1 INDEXED BY \
             sqlite_autoindex_idx_date_1 WHERE k1.resource_type = r.resource_type AND k1.id = \
             r.id AND k1.param = ?2) AS k0 FROM resources r WHERE \
             r.method <> 'D' AND r.resource_type = ?1) q WHERE ((q.k0 IS NOT NULL) OR \
             (q.k0 IS NULL AND q.id < ?3)) ORDER BY q.k0 ASC NULLS FIRST, q.id DESC LIMIT ?4"
        );
    }

    #[test]
    fn broad_conditions_are_probed_only_in_row_order() {
        let category = Condition::Match {
            param: "category".into(),
            tests: vec![EntryTest::Exists(IndexTable::Token)],
        };
        let query = SearchQuery {
            resource_types: vec!["Observation".into()],
            conditions: vec![Condition::IdNotIn(vec!["x".into()]), category],
            count: 50,
            ..Default::default()
        };
        let candidates = probe_candidates(Dialect::Sqlite, &query, 2000);
        assert_eq!(candidates.len(), 1, "only the index condition is counted");
        assert_eq!(candidates[0].0, 1);
        assert_eq!(
            candidates[0].1.text,
            "SELECT count(*) FROM (SELECT 1 FROM idx_token e1 WHERE e1.resource_type = ?2 AND \
             e1.param = ?1 LIMIT ?3) c"
        );
        let plan = plan_search(Dialect::Sqlite, &query, &[1]).expect("plan");
        assert!(plan.page.expect("page").text.contains(
            "EXISTS (SELECT 1 FROM idx_token e1 INDEXED BY sqlite_autoindex_idx_token_1 WHERE \
                 e1.resource_type = r.resource_type AND e1.id = r.id AND e1.param = ?"
        ));

        let sorted = SearchQuery {
            sort: vec![SortKey {
                field: SortField::Param {
                    params: vec!["date".into()],
                    table: IndexTable::Date,
                },
                descending: false,
            }],
            ..query.clone()
        };
        assert!(probe_candidates(Dialect::Sqlite, &sorted, 2000).is_empty());
        let two_types = SearchQuery {
            resource_types: vec!["Observation".into(), "Condition".into()],
            ..query
        };
        assert!(probe_candidates(Dialect::Sqlite, &two_types, 2000).is_empty());
    }

    /// A union parameter's condition (any of its parts' matches) is counted and probed as
    /// one: its entries of either part, an `EXISTS` on either part.
    #[test]
    fn alternatives_of_matches_are_probed_together() {
        let part = |param: &str| Condition::Match {
            param: param.into(),
            tests: vec![EntryTest::Exists(IndexTable::Token)],
        };
        let query = SearchQuery {
            resource_types: vec!["Observation".into()],
            conditions: vec![Condition::Any(vec![part("code"), part("component-code")])],
            count: 50,
            ..Default::default()
        };
        let candidates = probe_candidates(Dialect::Sqlite, &query, 2000);
        assert_eq!(
            candidates[0].1.text,
            "SELECT count(*) FROM (SELECT 1 FROM idx_token e1 WHERE e1.resource_type = ?3 AND \
             e1.param = ?1 UNION ALL SELECT 1 FROM idx_token e2 WHERE e2.resource_type = ?3 AND \
             e2.param = ?2 LIMIT ?4) c"
        );
        let page = plan_search(Dialect::Sqlite, &query, &[0])
            .expect("plan")
            .page
            .expect("page")
            .text;
        assert_eq!(
            page.matches("EXISTS (SELECT 1 FROM idx_token").count(),
            2,
            "{page}"
        );
        assert!(!page.contains(" IN (SELECT"), "{page}");
    }
}
