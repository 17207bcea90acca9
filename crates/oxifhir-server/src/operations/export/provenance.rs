//! Which Provenance resources an export returns (Bulk Data IG v2, `includeAssociatedData` and
//! the note after the kick-off parameters), as a [`ProvenanceRule`]:
//!
//! - `InCompartment` (Patient and Group level, no provenance value): every Provenance with a
//!   `target` in the exported Patient compartments, whatever the target's type, `_since` or
//!   `_typeFilter` (the Provenance's own `_since` and `_typeFilter` apply as to any type).
//! - `Relevant`: every Provenance with a `target` the export returns.
//! - `Latest`: for each resource the export returns, its most recent Provenance (the greatest
//!   `recorded`, then `meta.lastUpdated`, then id).
//!
//! With `Relevant` or `Latest` the value defines the whole set ("SHALL return/omit the
//! pre-defined set"): a `Provenance` in `_type` adds no other Provenance, a Provenance
//! `_typeFilter` narrows the set (for `Latest`, the most recent among those it matches), and a
//! Provenance is returned whenever its target is, whatever its own `meta.lastUpdated` (no
//! `_since` on it, and no deleted Provenance are listed). Targets that are themselves
//! Provenance do not count. "Returns" means what the export writes: of an exported type, at
//! the cut, after `_since`, in the compartments, matching the type's `_typeFilter`s.
//!
//! **How.** Provenance is scanned like any type (keyset by id at the cut, so each is written
//! at most once and a resumed export continues from its checkpoint), without the compartment
//! filter and, for `Relevant` and `Latest`, without `_since`; [`select`] then keeps a batch's
//! Provenance by looking up their targets at the cut: one `export_scan` per target type,
//! restricted to the batch's target ids and carrying that type's compartment filter, `_since`
//! and `_typeFilter`s (the same checks as the type's own export). For `Latest`, the other
//! Provenance of each returned target are found by a search on `target` and judged by their
//! versions at the cut. Memory is bounded by the batch: no set of exported ids is kept.
//!
//! **Known gap.** `Latest` finds competing Provenance through the current search index, so a
//! Provenance that targeted a resource at the cut but was changed to target another, or
//! deleted, after the cut is not compared with the others of that resource.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use oxifhir_jobs::JobError;
use oxifhir_model::{compartment, resource_type};
use oxifhir_store::{
    Condition, EntryTest, ExportFilter, ExportRow, ExportScan, ReferenceTest, ResourceVersion,
    SearchQuery,
};

use super::job::{Run, filter_of};
use super::params::{ExportRequest, ProvenanceRule};

const PROVENANCE: &str = "Provenance";

/// The search parameter (and element) naming what a Provenance is about.
const TARGET: &str = "target";

/// Competing Provenance read per search page (`Latest`).
const PAGE: usize = 500;

/// A resource a Provenance targets: type and id.
type Target = (String, String);

/// What decides which Provenance is the most recent: `recorded`, then `meta.lastUpdated`, then
/// the id (the greatest wins; a missing `recorded` loses).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Recency {
    recorded: Option<i64>,
    last_updated: i64,
    id: String,
}

/// The targets and recency of one Provenance version.
struct Provenance {
    targets: Vec<Target>,
    recency: Recency,
}

impl Provenance {
    /// Reads `version` (a live one); an unreadable body has no targets.
    fn of(version: &ResourceVersion) -> Provenance {
        let mut targets = Vec::new();
        let mut recorded = None;
        if let Ok(value) = oxifhir_model::json::parse(&version.body) {
            let entries = oxifhir_model::index::extract(PROVENANCE, &value);
            targets = entries
                .references
                .into_iter()
                .filter(|r| r.param == TARGET)
                .filter_map(|r| Some((r.target_type?, r.target_id?)))
                .collect();
            targets.sort();
            targets.dedup();
            recorded = entries
                .dates
                .iter()
                .find(|d| d.param == "recorded")
                .map(|d| d.start);
        }
        Provenance {
            targets,
            recency: Recency {
                recorded,
                last_updated: version.last_updated.millis(),
                id: version.id.clone(),
            },
        }
    }
}

/// Makes the scan of `Provenance` read every candidate of the export's rule: no compartment
/// filter (targets are checked by [`select`]) and, for `Relevant` and `Latest`, no `_since`
/// and no deletions. Other scans are left alone.
pub(super) fn adjust(export: &ExportRequest, scan: &mut ExportScan) {
    let Some(rule) = export.provenance else {
        return;
    };
    if scan.resource_type != PROVENANCE {
        return;
    }
    scan.filter = ExportFilter::All;
    if rule != ProvenanceRule::InCompartment {
        scan.since = None;
        scan.include_deleted = false;
    }
}

/// True when the export's rule chooses among the rows of `resource_type` (see [`select`]).
pub(super) fn selects(export: &ExportRequest, resource_type: &str) -> bool {
    export.provenance.is_some() && resource_type == PROVENANCE
}

/// The rows of a `Provenance` batch (already checked against its `_typeFilter`s) that the
/// export's rule returns; rows of other types, or without a rule, pass unchanged.
pub(super) async fn select(
    run: &Run<'_>,
    scan: &ExportScan,
    patients: &Option<Vec<String>>,
    rows: Vec<ExportRow>,
) -> Result<Vec<ExportRow>, JobError> {
    let Some(rule) = run.export.provenance else {
        return Ok(rows);
    };
    if !selects(run.export, &scan.resource_type) || rows.is_empty() {
        return Ok(rows);
    }
    let mut candidates = Vec::with_capacity(rows.len());
    for row in &rows {
        // A deletion (listed with `_since`) is judged by the version it deleted.
        let provenance = match run.live_version(&row.version).await? {
            Some(live) => Provenance::of(&live),
            None => Provenance::of(&row.version),
        };
        candidates.push(provenance);
    }
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (t, id) in candidates.iter().flat_map(|c| &c.targets) {
        if counts(run.export, rule, t) {
            wanted.entry(t.clone()).or_default().insert(id.clone());
        }
    }
    let mut returned: HashSet<Target> = HashSet::new();
    for (t, ids) in wanted {
        for id in present(run, rule, &t, ids.into_iter().collect(), patients, scan.cut).await? {
            returned.insert((t.clone(), id));
        }
    }
    let keep: Vec<bool> = if rule == ProvenanceRule::Latest {
        let latest = latest(run, scan.cut, &candidates, &returned).await?;
        candidates
            .iter()
            .map(|c| {
                c.targets
                    .iter()
                    .any(|x| latest.get(x).is_some_and(|best| best.id == c.recency.id))
            })
            .collect()
    } else {
        candidates
            .iter()
            .map(|c| c.targets.iter().any(|x| returned.contains(x)))
            .collect()
    };
    Ok(rows
        .into_iter()
        .zip(keep)
        .filter_map(|(row, keep)| keep.then_some(row))
        .collect())
}

/// Whether a target of type `t` can make a Provenance count under `rule`.
fn counts(export: &ExportRequest, rule: ProvenanceRule, t: &str) -> bool {
    if !resource_type::is_r4(t) {
        return false;
    }
    match rule {
        ProvenanceRule::InCompartment => compartment::in_patient_compartment(t),
        ProvenanceRule::Latest | ProvenanceRule::Relevant => {
            t != PROVENANCE && export.types.binary_search_by(|x| x.as_str().cmp(t)).is_ok()
        }
    }
}

/// The ids among `ids` of type `t` that `rule` counts at the cut: in the exported
/// compartments (`InCompartment`), or returned by the export (`Relevant`, `Latest`: also after
/// `_since` and matching the type's `_typeFilter`s).
async fn present(
    run: &Run<'_>,
    rule: ProvenanceRule,
    t: &str,
    ids: Vec<String>,
    patients: &Option<Vec<String>>,
    cut: i64,
) -> Result<Vec<String>, JobError> {
    let (since, filters) = match rule {
        ProvenanceRule::InCompartment => (None, Vec::new()),
        ProvenanceRule::Latest | ProvenanceRule::Relevant => (
            run.export.since.map(|s| s.millis()),
            run.type_filters(t).await?,
        ),
    };
    let scan = ExportScan {
        resource_type: t.to_owned(),
        after_id: None,
        up_to: None,
        since,
        cut,
        include_deleted: false,
        filter: filter_of(run.export, t, patients),
        limit: ids.len().max(1),
        as_ndjson: false,
        ids: Some(ids),
    };
    let rows = scan_all(run, scan, &filters).await?;
    Ok(rows.into_iter().map(|r| r.version.id).collect())
}

/// Every row of `scan` (read in batches) that `Run::keep` keeps with `filters`.
async fn scan_all(
    run: &Run<'_>,
    mut scan: ExportScan,
    filters: &[SearchQuery],
) -> Result<Vec<ExportRow>, JobError> {
    let mut out = Vec::new();
    loop {
        run.ctx.check()?;
        let batch = run.ctx.store().export_scan(&scan).await?;
        out.extend(run.keep(&scan, filters, batch.rows).await?);
        if batch.complete || batch.last_id.is_none() {
            return Ok(out);
        }
        scan.after_id = batch.last_id;
    }
}

/// The most recent Provenance at the cut of each target in `returned` that a candidate names:
/// among the candidates and every other Provenance targeting it (found by a search on
/// `target`, judged by its version at the cut and the Provenance `_typeFilter`s).
async fn latest(
    run: &Run<'_>,
    cut: i64,
    candidates: &[Provenance],
    returned: &HashSet<Target>,
) -> Result<HashMap<Target, Recency>, JobError> {
    let mut best: HashMap<Target, Recency> = HashMap::new();
    let offer = |provenance: &Provenance, best: &mut HashMap<Target, Recency>| {
        for target in provenance.targets.iter().filter(|x| returned.contains(*x)) {
            let current = best.get(target);
            if current.is_none_or(|c| *c < provenance.recency) {
                best.insert(target.clone(), provenance.recency.clone());
            }
        }
    };
    for candidate in candidates {
        offer(candidate, &mut best);
    }
    let mut by_type: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (t, id) in best.keys() {
        by_type.entry(t.clone()).or_default().push(id.clone());
    }
    let filters = run.type_filters(PROVENANCE).await?;
    for (t, mut ids) in by_type {
        ids.sort();
        let mut query = SearchQuery {
            resource_types: vec![PROVENANCE.to_owned()],
            conditions: vec![Condition::Match {
                param: TARGET.to_owned(),
                tests: vec![EntryTest::Reference(ReferenceTest::Target {
                    types: vec![t.clone()],
                    ids: ids.clone(),
                })],
            }],
            count: PAGE,
            ..SearchQuery::default()
        };
        loop {
            run.ctx.check()?;
            let page = run.ctx.store().search(&query).await?;
            let found: Vec<String> = page.resources.into_iter().map(|r| r.id).collect();
            if !found.is_empty() {
                let scan = ExportScan {
                    resource_type: PROVENANCE.to_owned(),
                    after_id: None,
                    up_to: None,
                    since: None,
                    cut,
                    include_deleted: false,
                    filter: ExportFilter::References {
                        params: vec![TARGET.to_owned()],
                        target_type: t.clone(),
                        target_ids: Some(ids.clone()),
                    },
                    limit: found.len(),
                    as_ndjson: false,
                    ids: Some(found),
                };
                for row in scan_all(run, scan, &filters).await? {
                    offer(&Provenance::of(&row.version), &mut best);
                }
            }
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => break,
            }
        }
    }
    Ok(best)
}
