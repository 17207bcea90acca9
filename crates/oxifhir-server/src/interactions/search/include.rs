//! `_include` and `_revinclude`: the resources a page's matches refer to, and those that
//! refer to them, fetched with ordinary store searches (so they work inside transactions
//! too). `:iterate` applies the include once more to what was included.

use std::collections::HashSet;

use oxifhir_store::{
    Condition, EntryTest, ReferenceTest, ResourceVersion, SearchPage, SearchQuery, Store,
    StoreResult, StoreTx,
};

use super::parse::Include;
use crate::error::ApiResult;

/// Where searches run: the store, or an open transaction.
pub enum Searcher<'a> {
    Store(&'a dyn Store),
    Tx(&'a mut dyn StoreTx),
}

impl Searcher<'_> {
    /// Runs one search.
    pub async fn search(&mut self, query: &SearchQuery) -> StoreResult<SearchPage> {
        match self {
            Searcher::Store(store) => store.search(query).await,
            Searcher::Tx(tx) => tx.search(query).await,
        }
    }
}

/// Included resources and whether some were left out.
#[derive(Debug, Default)]
pub struct Included {
    pub resources: Vec<ResourceVersion>,
    /// True when an include found more than `limit` resources and the rest were left out.
    pub truncated: bool,
}

fn key(v: &ResourceVersion) -> (String, String) {
    (v.resource_type.clone(), v.id.clone())
}

/// The resources `includes` add to `matches`, each at most once and none of the matches,
/// at most `limit` per include and round.
pub async fn fetch(
    searcher: &mut Searcher<'_>,
    includes: &[Include],
    matches: &[ResourceVersion],
    limit: usize,
) -> ApiResult<Included> {
    let mut out = Included::default();
    if includes.is_empty() || matches.is_empty() {
        return Ok(out);
    }
    let mut seen: HashSet<(String, String)> = matches.iter().map(key).collect();
    let mut round: Vec<ResourceVersion> = Vec::new();
    for include in includes {
        for found in run(searcher, include, matches, limit, &mut out.truncated).await? {
            if seen.insert(key(&found)) {
                round.push(found);
            }
        }
    }
    let mut second = Vec::new();
    for include in includes.iter().filter(|i| i.iterate) {
        for found in run(searcher, include, &round, limit, &mut out.truncated).await? {
            if seen.insert(key(&found)) {
                second.push(found);
            }
        }
    }
    out.resources = round;
    out.resources.extend(second);
    Ok(out)
}

/// One include over `from`.
async fn run(
    searcher: &mut Searcher<'_>,
    include: &Include,
    from: &[ResourceVersion],
    limit: usize,
    truncated: &mut bool,
) -> ApiResult<Vec<ResourceVersion>> {
    let query = if include.reverse {
        let Some(param) = &include.param else {
            return Ok(Vec::new());
        };
        let mut types: Vec<&str> = from.iter().map(|v| v.resource_type.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        if let Some(t) = &include.target_type {
            types.retain(|x| x == t);
        }
        let tests: Vec<EntryTest> = types
            .iter()
            .map(|t| {
                EntryTest::Reference(ReferenceTest::Target {
                    types: vec![t.to_string()],
                    ids: from
                        .iter()
                        .filter(|v| v.resource_type == *t)
                        .map(|v| v.id.clone())
                        .collect(),
                })
            })
            .collect();
        if tests.is_empty() {
            return Ok(Vec::new());
        }
        SearchQuery {
            resource_types: vec![include.source_type.clone()],
            conditions: vec![Condition::Match {
                param: param.clone(),
                tests,
            }],
            count: limit,
            ..Default::default()
        }
    } else {
        let ids: Vec<String> = from
            .iter()
            .filter(|v| v.resource_type == include.source_type)
            .map(|v| v.id.clone())
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        SearchQuery {
            resource_types: include.target_type.iter().cloned().collect(),
            conditions: vec![Condition::ReferencedBy {
                source_type: include.source_type.clone(),
                param: include.param.clone(),
                conditions: vec![Condition::IdIn(ids)],
            }],
            count: limit,
            ..Default::default()
        }
    };
    let page = searcher.search(&query).await?;
    *truncated |= page.next.is_some();
    Ok(page.resources)
}
