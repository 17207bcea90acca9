//! Each search [`Condition`] as an SQL predicate over one `resources` row.
//!
//! A condition on index entries is a membership test, `r.id IN (SELECT e.id FROM idx_… e
//! WHERE …)`: uncorrelated, so each database can either run the subquery once and look the
//! matches up (selective conditions) or probe it row by row. When the searched types are not
//! one bound value, the test is on the pair, `(r.resource_type, r.id) IN (…)`.
//!
//! Chains and reverse chains nest: the conditions on the other resource are rendered the same
//! way, over that resource's row.

use super::{Binder, Param};
use crate::{
    Condition, DateTest, EntryTest, IndexTable, NumberTest, Prefix, QuantityTest, ReferenceTest,
    StringTest, TokenSystem, TokenTest, UriTest,
};

/// The resource row a condition is about.
pub(super) struct Scope {
    /// Alias of the `resources` row.
    pub alias: String,
    /// The row's type as a bound placeholder when it is one known type, else `None` (read
    /// it from the row).
    pub bound_type: Option<String>,
    /// `> ?n` or `< ?n`: the ids a page can still reach, when the search is in id order from
    /// a cursor. Membership subqueries repeat it, so they read their index from the cursor on.
    pub id_bound: Option<String>,
}

impl Scope {
    fn id(&self) -> String {
        format!("{}.id", self.alias)
    }

    /// `subquery_id` (with `subquery_type`) selected `FROM from WHERE filter` contains this row.
    fn member_of(
        &self,
        from: &str,
        subquery_type: &str,
        subquery_id: &str,
        filter: &str,
    ) -> String {
        match &self.bound_type {
            Some(t) => {
                let bound = match &self.id_bound {
                    Some(bound) => format!(" AND {subquery_id} {bound}"),
                    None => String::new(),
                };
                format!(
                    "{}.id IN (SELECT {subquery_id} FROM {from} WHERE {subquery_type} = {t} AND \
                     {filter}{bound})",
                    self.alias
                )
            }
            None => format!(
                "({a}.resource_type, {a}.id) IN (SELECT {subquery_type}, {subquery_id} FROM {from} \
                 WHERE {filter})",
                a = self.alias
            ),
        }
    }
}

/// All of `conditions` over `scope`, joined with `AND` (`1=1` when there are none).
pub(super) fn all(binder: &mut Binder, conditions: &[Condition], scope: &Scope) -> String {
    if conditions.is_empty() {
        return "1=1".to_owned();
    }
    let parts: Vec<String> = conditions
        .iter()
        .map(|c| condition(binder, c, scope))
        .collect();
    parts.join(" AND ")
}

/// One condition over `scope`.
pub(super) fn condition(binder: &mut Binder, cond: &Condition, scope: &Scope) -> String {
    let a = &scope.alias;
    match cond {
        Condition::IdIn(ids) if ids.is_empty() => "1=0".to_owned(),
        Condition::IdIn(ids) => {
            let p = binder.bind(Param::TextList(ids.clone()));
            binder.dialect.in_text_list(&scope.id(), &p)
        }
        Condition::IdNotIn(ids) if ids.is_empty() => "1=1".to_owned(),
        Condition::IdNotIn(ids) => {
            let p = binder.bind(Param::TextList(ids.clone()));
            format!("NOT ({})", binder.dialect.in_text_list(&scope.id(), &p))
        }
        Condition::LastUpdated { from, to } => {
            let mut parts = Vec::new();
            if let Some(from) = from {
                let p = binder.bind(Param::Int(*from));
                parts.push(format!("{a}.last_updated >= {p}"));
            }
            if let Some(to) = to {
                let p = binder.bind(Param::Int(*to));
                parts.push(format!("{a}.last_updated < {p}"));
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
            format!("({a}.last_updated < {from} OR {a}.last_updated >= {to})")
        }
        Condition::Any(any) if any.is_empty() => "1=0".to_owned(),
        Condition::Any(any) => {
            let parts: Vec<String> = any.iter().map(|c| condition(binder, c, scope)).collect();
            format!("({})", parts.join(" OR "))
        }
        Condition::All(conditions) => format!("({})", all(binder, conditions, scope)),
        Condition::Match { param, tests } => entries(binder, ParamName::Is(param), tests, scope),
        Condition::MatchPrefixed { prefix, tests } => {
            entries(binder, ParamName::StartsWith(prefix), tests, scope)
        }
        Condition::NoMatch { param, tests } => {
            format!(
                "NOT ({})",
                entries(binder, ParamName::Is(param), tests, scope)
            )
        }
        Condition::Chain {
            param,
            target_type,
            conditions,
        } => {
            let x = binder.alias("x");
            let p = binder.text(param);
            let t = binder.text(target_type);
            let target = Scope {
                alias: binder.alias("t"),
                bound_type: Some(t.clone()),
                id_bound: None,
            };
            let inner = all(binder, conditions, &target);
            let ta = &target.alias;
            let filter = format!(
                "{x}.param = {p} AND {x}.target_type = {t} AND {x}.target_id IN \
                 (SELECT {ta}.id FROM resources {ta} WHERE {ta}.resource_type = {t} AND \
                 {ta}.method <> 'D' AND {inner})"
            );
            scope.member_of(
                &format!("idx_reference {x}"),
                &format!("{x}.resource_type"),
                &format!("{x}.id"),
                &filter,
            )
        }
        Condition::ReferencedBy {
            source_type,
            param,
            conditions,
        } => {
            let x = binder.alias("x");
            let s = binder.text(source_type);
            let by_param = match param {
                Some(param) => format!(" AND {x}.param = {}", binder.text(param)),
                None => String::new(),
            };
            let source = Scope {
                alias: binder.alias("s"),
                bound_type: Some(s.clone()),
                id_bound: None,
            };
            let inner = all(binder, conditions, &source);
            let sa = &source.alias;
            let filter = format!(
                "{x}.resource_type = {s}{by_param} AND {x}.id IN (SELECT {sa}.id FROM resources \
                 {sa} WHERE {sa}.resource_type = {s} AND {sa}.method <> 'D' AND {inner})"
            );
            scope.member_of(
                &format!("idx_reference {x}"),
                &format!("{x}.target_type"),
                &format!("{x}.target_id"),
                &filter,
            )
        }
    }
}

/// The parameter (or parameters) whose index entries a match reads.
#[derive(Debug, Clone, Copy)]
enum ParamName<'a> {
    /// This parameter.
    Is(&'a str),
    /// Every parameter whose name starts with this.
    StartsWith(&'a str),
}

impl ParamName<'_> {
    /// The predicate on `column`, a parameter name.
    fn filter(self, binder: &mut Binder, column: &str) -> String {
        match self {
            ParamName::Is(param) => format!("{column} = {}", binder.text(param)),
            ParamName::StartsWith(prefix) => starts_with(binder, column, prefix),
        }
    }
}

/// Some entry of `param` passes one of `tests` (tests on different tables are alternatives).
fn entries(
    binder: &mut Binder,
    param: ParamName<'_>,
    tests: &[EntryTest],
    scope: &Scope,
) -> String {
    let alternatives: Vec<String> = entry_filters(binder, param, tests)
        .into_iter()
        .map(|f| {
            scope.member_of(
                &f.from,
                &format!("{}.resource_type", f.alias),
                &format!("{}.id", f.alias),
                &f.filter,
            )
        })
        .collect();
    either(alternatives)
}

/// The alternatives joined with `OR` (`1=0` when there are none).
fn either(mut alternatives: Vec<String>) -> String {
    match alternatives.len() {
        0 => "1=0".to_owned(),
        1 => alternatives.remove(0),
        _ => format!("({})", alternatives.join(" OR ")),
    }
}

/// The entries of one index table that a condition tests.
struct EntryFilter {
    /// The index table.
    table: &'static str,
    /// `idx_… alias`.
    from: String,
    alias: String,
    /// The parameter and the tests, over `alias`.
    filter: String,
}

/// One [`EntryFilter`] per index table the tests of `param` touch.
fn entry_filters(
    binder: &mut Binder,
    param: ParamName<'_>,
    tests: &[EntryTest],
) -> Vec<EntryFilter> {
    let mut tables: Vec<IndexTable> = Vec::new();
    for test in tests {
        if !tables.contains(&test.table()) {
            tables.push(test.table());
        }
    }
    let mut filters = Vec::with_capacity(tables.len());
    for table in tables {
        let e = binder.alias("e");
        let p = param.filter(binder, &format!("{e}.param"));
        let checks: Vec<String> = tests
            .iter()
            .filter(|t| t.table() == table)
            .map(|t| test(binder, &e, t))
            .collect();
        let filter = if checks.iter().any(|c| c == "1=1") {
            p
        } else {
            format!("{p} AND ({})", checks.join(" OR "))
        };
        filters.push(EntryFilter {
            table: table.table_name(),
            from: format!("{} {e}", table.table_name()),
            alias: e,
            filter,
        });
    }
    filters
}

/// The `(param, tests)` of the matches ([`Condition::Match`], [`Condition::MatchPrefixed`])
/// that `cond` is any one of: itself, or the members of a [`Condition::Any`] made of matches
/// alone (a union parameter's parts); empty for other conditions.
fn alternative_matches(cond: &Condition) -> Vec<(ParamName<'_>, &[EntryTest])> {
    fn as_match(c: &Condition) -> Option<(ParamName<'_>, &[EntryTest])> {
        match c {
            Condition::Match { param, tests } => Some((ParamName::Is(param), tests.as_slice())),
            Condition::MatchPrefixed { prefix, tests } => {
                Some((ParamName::StartsWith(prefix), tests.as_slice()))
            }
            _ => None,
        }
    }
    match cond {
        Condition::Any(list) => list
            .iter()
            .map(as_match)
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default(),
        other => as_match(other).into_iter().collect(),
    }
}

/// The [`EntryFilter`]s of the matches `cond` is any one of ([`alternative_matches`]).
fn alternative_filters(binder: &mut Binder, cond: &Condition) -> Vec<EntryFilter> {
    let mut filters = Vec::new();
    for (param, tests) in alternative_matches(cond) {
        filters.extend(entry_filters(binder, param, tests));
    }
    filters
}

/// A [`Condition::Match`] (or an `Any` of them) as a probe of the row's own index entries
/// (`EXISTS` on the `(resource_type, id, param)` key) instead of a membership test: cheaper
/// when the condition holds for so many rows that a search walking rows in order meets a
/// match soon. `None` for other conditions.
pub(super) fn probe(binder: &mut Binder, cond: &Condition, scope: &Scope) -> Option<String> {
    let a = &scope.alias;
    let dialect = binder.dialect;
    let filters = alternative_filters(binder, cond);
    if filters.is_empty() {
        return None;
    }
    let probes: Vec<String> = filters
        .into_iter()
        .map(|f| {
            // Without statistics SQLite prefers a range on the value index, which scans
            // every match for each row; the probe must seek the row's own entries.
            // PostgreSQL turns a plain `EXISTS` into a semi-join that collects every match
            // before the first row; `OFFSET 0` keeps it a test of each row as it is reached.
            let (from, fence) = match dialect {
                super::Dialect::Sqlite => (
                    format!("{} {}", f.from, super::sqlite_by_resource(f.table)),
                    "",
                ),
                super::Dialect::Postgres => (f.from, " OFFSET 0"),
            };
            format!(
                "EXISTS (SELECT 1 FROM {from} WHERE {e}.resource_type = {a}.resource_type \
                 AND {e}.id = {a}.id AND {filter}{fence})",
                e = f.alias,
                filter = f.filter,
            )
        })
        .collect();
    Some(either(probes))
}

/// `SELECT count(*)` of the index entries of resources of type `resource_type` that pass a
/// [`Condition::Match`] (or an `Any` of them), counting no further than `cap`; `None` for
/// other conditions.
pub(super) fn capped_count(
    binder: &mut Binder,
    cond: &Condition,
    resource_type: &str,
    cap: usize,
) -> Option<String> {
    let filters = alternative_filters(binder, cond);
    if filters.is_empty() {
        return None;
    }
    let t = binder.text(resource_type);
    let cap = binder.bind(Param::Int(cap as i64));
    let entries: Vec<String> = filters
        .iter()
        .map(|f| {
            format!(
                "SELECT 1 FROM {from} WHERE {e}.resource_type = {t} AND {filter}",
                from = f.from,
                e = f.alias,
                filter = f.filter,
            )
        })
        .collect();
    Some(format!(
        "SELECT count(*) FROM ({} LIMIT {cap}) c",
        entries.join(" UNION ALL ")
    ))
}

/// The smallest string greater than every string that starts with `prefix`, if there is one.
pub(super) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// `column` starts with `prefix`, as a range an index can serve.
fn starts_with(binder: &mut Binder, column: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        return "1=1".to_owned();
    }
    let low = binder.text(prefix);
    match prefix_upper_bound(prefix) {
        Some(upper) => {
            let high = binder.text(&upper);
            format!("({column} >= {low} AND {column} < {high})")
        }
        None => {
            let length = binder.bind(Param::Int(prefix.chars().count() as i64));
            let again = binder.text(prefix);
            format!("({column} >= {low} AND substr({column}, 1, {length}) = {again})")
        }
    }
}

/// `text` with the `LIKE` wildcards and the escape character escaped (escape `\`).
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn like(binder: &mut Binder, column: &str, pattern: String) -> String {
    let p = binder.text(&pattern);
    format!("{column} LIKE {p} ESCAPE '\\'")
}

/// `column` equals one of `values`.
fn one_of(binder: &mut Binder, column: &str, values: &[String]) -> String {
    match values {
        [] => "1=0".to_owned(),
        [one] => format!("{column} = {}", binder.text(one)),
        many => {
            let p = binder.bind(Param::TextList(many.to_vec()));
            binder.dialect.in_text_list(column, &p)
        }
    }
}

/// One entry test over the entry row aliased `e`.
fn test(binder: &mut Binder, e: &str, test: &EntryTest) -> String {
    match test {
        EntryTest::Exists(_) => "1=1".to_owned(),
        EntryTest::String(StringTest::StartsWith(prefix)) => {
            starts_with(binder, &format!("{e}.normalized"), prefix)
        }
        EntryTest::String(StringTest::Exact(text)) => format!("{e}.exact = {}", binder.text(text)),
        EntryTest::String(StringTest::Contains(part)) => like(
            binder,
            &format!("{e}.normalized"),
            format!("%{}%", like_escape(part)),
        ),
        EntryTest::Token(token) => token_test(binder, e, token),
        EntryTest::Reference(ReferenceTest::Target { types, ids }) => {
            let mut parts = vec![one_of(binder, &format!("{e}.target_id"), ids)];
            if !types.is_empty() {
                parts.push(one_of(binder, &format!("{e}.target_type"), types));
            }
            format!("({})", parts.join(" AND "))
        }
        EntryTest::Reference(ReferenceTest::Url(url)) => format!(
            "({e}.url = {} AND {})",
            binder.text(url),
            super::reference_url_indexed(e)
        ),
        EntryTest::Date(date) => date_test(binder, e, date),
        EntryTest::Number(number) => number_test(binder, e, number),
        EntryTest::Quantity(quantity) => quantity_test(binder, e, quantity),
        EntryTest::Uri(UriTest::Is(uri)) => format!("{e}.value = {}", binder.text(uri)),
        EntryTest::Uri(UriTest::Below(prefix)) => {
            starts_with(binder, &format!("{e}.value"), prefix)
        }
        EntryTest::Uri(UriTest::OneOf(uris)) => one_of(binder, &format!("{e}.value"), uris),
    }
}

fn token_test(binder: &mut Binder, e: &str, token: &TokenTest) -> String {
    match token {
        TokenTest::Code { system, code } => {
            let c = binder.text(code);
            match system {
                TokenSystem::Any => format!("{e}.code = {c}"),
                TokenSystem::None => format!("({e}.code = {c} AND {e}.system IS NULL)"),
                TokenSystem::Is(system) => {
                    let s = binder.text(system);
                    format!("({e}.code = {c} AND {e}.system = {s})")
                }
            }
        }
        TokenTest::System(system) => format!("{e}.system = {}", binder.text(system)),
        TokenTest::Text(text) => {
            let column = format!("{e}.text");
            let first = like(binder, &column, format!("{}%", like_escape(text)));
            let later = like(binder, &column, format!("% {}%", like_escape(text)));
            format!("({first} OR {later})")
        }
    }
}

/// Date prefixes over an entry covering `[start_ms, end_ms]` and a search value covering
/// `[qs, qe)` (FHIR search, "date"). Each form also bounds the indexed column it can, so an
/// index on `start_ms` or `end_ms` narrows the scan.
fn date_test(binder: &mut Binder, e: &str, date: &DateTest) -> String {
    let (s, en) = (format!("{e}.start_ms"), format!("{e}.end_ms"));
    let mut qs = || binder.bind(Param::Int(date.start));
    match date.prefix {
        Prefix::Lt => return format!("{s} < {}", qs()),
        Prefix::Eb => return format!("{en} < {}", qs()),
        Prefix::Ge => {
            let (qs1, qs2) = (qs(), qs());
            let qe = binder.bind(Param::Int(date.end));
            return format!("({en} >= {qs1} AND ({en} >= {qe} OR {s} >= {qs2}))");
        }
        _ => {}
    }
    let mut qe = || binder.bind(Param::Int(date.end));
    match date.prefix {
        Prefix::Gt => return format!("{en} >= {}", qe()),
        Prefix::Sa => return format!("{s} >= {}", qe()),
        Prefix::Le => {
            let (qe1, qe2) = (qe(), qe());
            let qs = binder.bind(Param::Int(date.start));
            return format!("({s} < {qe1} AND ({s} < {qs} OR {en} < {qe2}))");
        }
        _ => {}
    }
    let qs = binder.bind(Param::Int(date.start));
    let qe = binder.bind(Param::Int(date.end));
    match date.prefix {
        Prefix::Ne => format!("({s} < {qs} OR {en} >= {qe})"),
        Prefix::Ap => format!("({s} < {qe} AND {en} >= {qs})"),
        _ => format!("({s} >= {qs} AND {en} < {qe})"),
    }
}

/// Number prefixes over an entry's `value`: `eq`/`ne` against the precision range of the
/// search value, the others against the value itself (`sa`/`eb` against the range's ends).
fn number_test(binder: &mut Binder, e: &str, n: &NumberTest) -> String {
    let v = format!("{e}.value");
    let mut bind = |x: f64| binder.bind(Param::Float(x));
    match n.prefix {
        Prefix::Eq => format!("({v} >= {} AND {v} < {})", bind(n.low), bind(n.high)),
        Prefix::Ne => format!("({v} < {} OR {v} >= {})", bind(n.low), bind(n.high)),
        Prefix::Gt => format!("{v} > {}", bind(n.value)),
        Prefix::Lt => format!("{v} < {}", bind(n.value)),
        Prefix::Ge => format!("{v} >= {}", bind(n.value)),
        Prefix::Le => format!("{v} <= {}", bind(n.value)),
        Prefix::Sa => format!("{v} >= {}", bind(n.high)),
        Prefix::Eb => format!("{v} < {}", bind(n.low)),
        Prefix::Ap => format!("({v} >= {} AND {v} <= {})", bind(n.low), bind(n.high)),
    }
}

fn quantity_test(binder: &mut Binder, e: &str, q: &QuantityTest) -> String {
    let mut parts = vec![number_test(binder, e, &q.number)];
    match (&q.system, &q.code) {
        (Some(system), Some(code)) => {
            let s = binder.text(system);
            let c = binder.text(code);
            parts.push(format!("{e}.system = {s} AND {e}.code = {c}"));
        }
        (None, Some(code)) => {
            let c1 = binder.text(code);
            let c2 = binder.text(code);
            parts.push(format!("({e}.code = {c1} OR {e}.unit = {c2})"));
        }
        (Some(system), None) => parts.push(format!("{e}.system = {}", binder.text(system))),
        (None, None) => {}
    }
    format!("({})", parts.join(" AND "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::Dialect;

    #[test]
    fn upper_bounds() {
        assert_eq!(prefix_upper_bound("smith").as_deref(), Some("smiti"));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(
            prefix_upper_bound("a\u{10FFFF}").as_deref(),
            Some("b"),
            "the last character cannot grow"
        );
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        assert_eq!(prefix_upper_bound(""), None);
    }

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_escape(r"50%_a\b"), r"50\%\_a\\b");
    }

    #[test]
    fn conditions_render_with_placeholders_only() {
        let mut binder = Binder::new(Dialect::Postgres);
        let scope = Scope {
            alias: "r".into(),
            bound_type: Some(binder.text("Observation")),
            id_bound: None,
        };
        let chain = Condition::Chain {
            param: "subject".into(),
            target_type: "Patient".into(),
            conditions: vec![Condition::Match {
                param: "name".into(),
                tests: vec![EntryTest::String(StringTest::StartsWith("o'brien".into()))],
            }],
        };
        let sql = condition(&mut binder, &chain, &scope);
        assert_eq!(
            sql,
            "r.id IN (SELECT x1.id FROM idx_reference x1 WHERE x1.resource_type = $1 AND \
             x1.param = $2 AND x1.target_type = $3 AND x1.target_id IN (SELECT t2.id FROM \
             resources t2 WHERE t2.resource_type = $3 AND t2.method <> 'D' AND t2.id IN \
             (SELECT e3.id FROM idx_string e3 WHERE e3.resource_type = $3 AND e3.param = $4 AND \
             ((e3.normalized >= $5 AND e3.normalized < $6)))))"
        );
        assert_eq!(binder.params.len(), 6);
        assert_eq!(binder.params[2], Param::Text("Patient".into()));
        let any_type = Scope {
            alias: "r".into(),
            bound_type: None,
            id_bound: None,
        };
        let missing = Condition::NoMatch {
            param: "_tag".into(),
            tests: vec![EntryTest::Exists(IndexTable::Token)],
        };
        assert_eq!(
            condition(&mut binder, &missing, &any_type),
            "NOT ((r.resource_type, r.id) IN (SELECT e4.resource_type, e4.id FROM idx_token e4 \
             WHERE e4.param = $7))"
        );
    }
}
