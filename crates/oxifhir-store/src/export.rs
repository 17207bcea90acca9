//! Export scans: the versions of one resource type as they stood at a cut time, read in
//! batches by ascending id (a keyset over the `resources` primary key), for Bulk Data export.
//!
//! A batch is one statement over `resources` that returns, in id order, every row that may
//! belong to the export:
//!
//! - rows last written at or before the cut: current, so they are the version at the cut;
//!   live ones are filtered by `since` and the [`ExportFilter`] in SQL, deleted ones (when
//!   asked for) by `since`;
//! - rows written after the cut, unfiltered: their version at the cut is looked up in
//!   `history` (the newest version at or before the cut), which is immutable, and returned
//!   with [`ExportRow::rewound`] set. The filter cannot be applied to them in SQL (the search
//!   index describes current versions only), so the caller applies it to the body.
//!
//! A scan [`ExportScan::as_ndjson`] selects only the columns a line needs
//! ([`ScanColumns::Lean`]); when it is plain as well (no filter, `since`, deletions or id list)
//! its statement has no condition besides the keyset, and deleted rows at the cut are dropped
//! in [`Scanned::push`]. Both make the common whole-type scan cheaper per row on SQLite.
//!
//! Because every row is judged by versions at or before the cut, a batch read while writes go
//! on gives the same answer as one read before them: the scan is a consistent cut without a
//! long-lived database snapshot, and a resumed export continues from an id with nothing lost
//! or repeated.

use crate::sql::{Dialect, Param, Sql, VERSION_COLUMNS};
use crate::{ResourceVersion, StoreResult};

/// Which resources of the scanned type an export keeps (evaluated on current index rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportFilter {
    /// Every resource.
    All,
    /// Resources whose own id is one of these.
    Ids(Vec<String>),
    /// Resources with a reference through one of `params` to a resource of `target_type`
    /// (whose id is one of `target_ids`, when given): a compartment.
    References {
        params: Vec<String>,
        target_type: String,
        target_ids: Option<Vec<String>>,
    },
}

/// One batch of an export scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportScan {
    pub resource_type: String,
    /// Continue after this id (exclusive); `None` starts at the first.
    pub after_id: Option<String>,
    /// Stop at this id (inclusive): the end of a slice of the type's ids; `None` reads to the
    /// last.
    pub up_to: Option<String>,
    /// Only versions written after this (exclusive, milliseconds).
    pub since: Option<i64>,
    /// The cut: versions as they stood at this time (inclusive, milliseconds).
    pub cut: i64,
    /// Also return resources whose version at the cut is a deletion (after `since`).
    pub include_deleted: bool,
    pub filter: ExportFilter,
    /// Only resources with one of these ids, whatever the filter (rows changed after the cut
    /// included): a lookup of known resources at the cut. `None` reads every id.
    pub ids: Option<Vec<String>>,
    /// Most rows read by the batch (rows of [`ExportBatch::rows`] and rows skipped after
    /// their history lookup together).
    pub limit: usize,
    /// Return the live versions that need no further check (current at the cut, filtered in
    /// SQL) as NDJSON in [`ExportBatch::ndjson`] instead of as rows: their stored bytes,
    /// copied once.
    pub as_ndjson: bool,
}

/// A version an export scan found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRow {
    /// The version at the cut (a tombstone for a deletion).
    pub version: ResourceVersion,
    /// True when the resource changed after the cut and this version came from history; the
    /// scan's filter was not applied to it.
    pub rewound: bool,
}

/// What one batch of an export scan found, in id order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExportBatch {
    /// With [`ExportScan::as_ndjson`], the stored bodies of the versions that need no further
    /// check, one per line; the other versions are in `rows`.
    pub ndjson: Vec<u8>,
    /// The lines of `ndjson`.
    pub ndjson_lines: u64,
    pub rows: Vec<ExportRow>,
    /// The id to continue after; `None` when the scan read nothing.
    pub last_id: Option<String>,
    /// Rows the batch read, kept or not.
    pub read: usize,
    /// True when there is nothing after this batch.
    pub complete: bool,
}

fn placeholder(dialect: Dialect, params: &mut Vec<Param>, param: Param) -> String {
    params.push(param);
    match dialect {
        Dialect::Sqlite => format!("?{}", params.len()),
        Dialect::Postgres => format!("${}", params.len()),
    }
}

/// `resources.id` is one of `ids`.
fn ids_sql(dialect: Dialect, params: &mut Vec<Param>, ids: &[String]) -> String {
    if ids.is_empty() {
        return "1=0".to_owned();
    }
    let p = placeholder(dialect, params, Param::TextList(ids.to_vec()));
    dialect.in_text_list("resources.id", &p)
}

fn filter_sql(dialect: Dialect, params: &mut Vec<Param>, filter: &ExportFilter) -> String {
    match filter {
        ExportFilter::All => "1=1".to_owned(),
        ExportFilter::Ids(ids) => ids_sql(dialect, params, ids),
        ExportFilter::References {
            params: codes,
            target_type,
            target_ids,
        } => {
            if codes.is_empty() || target_ids.as_ref().is_some_and(Vec::is_empty) {
                return "1=0".to_owned();
            }
            let p = placeholder(dialect, params, Param::TextList(codes.clone()));
            let t = placeholder(dialect, params, Param::Text(target_type.clone()));
            let mut text = format!(
                "EXISTS (SELECT 1 FROM idx_reference x WHERE x.resource_type = resources.resource_type \
                 AND x.id = resources.id AND {} AND x.target_type = {t}",
                dialect.in_text_list("x.param", &p)
            );
            if let Some(ids) = target_ids {
                let i = placeholder(dialect, params, Param::TextList(ids.clone()));
                text.push_str(" AND ");
                text.push_str(&dialect.in_text_list("x.target_id", &i));
            }
            text.push(')');
            text
        }
    }
}

/// The columns a batch's statement returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanColumns {
    /// [`VERSION_COLUMNS`]: every row decodes into a [`ResourceVersion`].
    Version,
    /// [`LEAN_COLUMNS`], for an [`ExportScan::as_ndjson`] scan: enough to copy a current body
    /// as a line; the rare row that needs its whole version is read again by its key
    /// ([`version_by_key`]). Reading fewer columns of a row whose body spills into overflow
    /// pages is measurably cheaper on SQLite.
    Lean,
}

/// The columns of [`ScanColumns::Lean`], in this order.
pub(crate) const LEAN_COLUMNS: &str = "id, last_updated, method, body";

/// The current version of `$1/$2` in `resources`, as [`VERSION_COLUMNS`].
pub(crate) fn version_by_key(dialect: Dialect) -> String {
    let (a, b) = match dialect {
        Dialect::Sqlite => ("?1", "?2"),
        Dialect::Postgres => ("$1", "$2"),
    };
    format!("SELECT {VERSION_COLUMNS} FROM resources WHERE resource_type = {a} AND id = {b}")
}

/// True when a scan keeps every live version at the cut and nothing else: no filter, no
/// `since`, no deletions, no id list. Its rows then need no condition in SQL besides the
/// keyset, since [`Scanned::push`] judges the cut and deletions from columns it reads anyway.
fn plain(scan: &ExportScan) -> bool {
    scan.filter == ExportFilter::All
        && scan.since.is_none()
        && !scan.include_deleted
        && scan.ids.is_none()
}

/// The statement of one batch: up to `limit` rows of `resources` after `after_id`.
pub(crate) fn plan_scan(dialect: Dialect, scan: &ExportScan, columns: ScanColumns) -> Sql {
    let mut params = Vec::new();
    let t = placeholder(
        dialect,
        &mut params,
        Param::Text(scan.resource_type.clone()),
    );
    let mut clauses = vec![format!("resource_type = {t}")];
    if let Some(after) = &scan.after_id {
        let a = placeholder(dialect, &mut params, Param::Text(after.clone()));
        clauses.push(format!("id > {a}"));
    }
    if let Some(up_to) = &scan.up_to {
        let u = placeholder(dialect, &mut params, Param::Text(up_to.clone()));
        clauses.push(format!("id <= {u}"));
    }
    if let Some(ids) = &scan.ids {
        clauses.push(ids_sql(dialect, &mut params, ids));
    }
    let lean = columns == ScanColumns::Lean;
    let limit = i64::try_from(scan.limit.max(1)).unwrap_or(i64::MAX);
    if lean && plain(scan) {
        let l = placeholder(dialect, &mut params, Param::Int(limit));
        return Sql {
            text: format!(
                "SELECT {LEAN_COLUMNS} FROM resources WHERE {} ORDER BY id LIMIT {l}",
                clauses.join(" AND ")
            ),
            params,
        };
    }
    let cut = placeholder(dialect, &mut params, Param::Int(scan.cut));
    let since = match scan.since {
        Some(since) => {
            let s = placeholder(dialect, &mut params, Param::Int(since));
            format!(" AND last_updated > {s}")
        }
        None => String::new(),
    };
    let filter = filter_sql(dialect, &mut params, &scan.filter);
    let wanted = if scan.include_deleted {
        format!("((method <> 'D' AND {filter}) OR method = 'D'){since}")
    } else {
        format!("method <> 'D' AND {filter}{since}")
    };
    clauses.push(format!(
        "(last_updated > {cut} OR (last_updated <= {cut} AND {wanted}))"
    ));
    let l = placeholder(dialect, &mut params, Param::Int(limit));
    let selected = if lean { LEAN_COLUMNS } else { VERSION_COLUMNS };
    Sql {
        text: format!(
            "SELECT {selected} FROM resources WHERE {} ORDER BY id LIMIT {l}",
            clauses.join(" AND ")
        ),
        params,
    }
}

/// A count of the live resources at or before the cut that the scan keeps (rows changed
/// after the cut are not counted): the `M` of "Exported N of M".
pub(crate) fn plan_count(dialect: Dialect, scan: &ExportScan) -> Sql {
    let mut params = Vec::new();
    let t = placeholder(
        dialect,
        &mut params,
        Param::Text(scan.resource_type.clone()),
    );
    let cut = placeholder(dialect, &mut params, Param::Int(scan.cut));
    let mut text = format!(
        "SELECT count(*) FROM resources WHERE resource_type = {t} AND method <> 'D' \
         AND last_updated <= {cut}"
    );
    if let Some(since) = scan.since {
        let s = placeholder(dialect, &mut params, Param::Int(since));
        text.push_str(&format!(" AND last_updated > {s}"));
    }
    if let Some(ids) = &scan.ids {
        text.push_str(&format!(" AND {}", ids_sql(dialect, &mut params, ids)));
    }
    let filter = filter_sql(dialect, &mut params, &scan.filter);
    text.push_str(&format!(" AND {filter}"));
    Sql { text, params }
}

/// About one id in `every` of the current rows of `resource_type` (deleted ones included),
/// unordered: a sample that is the same on every call over the same data, read from the
/// narrow `(resource_type, seq)` index rather than the rows. [`split_points`] turns it into
/// the bounds of slices.
pub(crate) fn plan_sample(dialect: Dialect, resource_type: &str, every: u64) -> Sql {
    let mut params = Vec::new();
    let t = placeholder(dialect, &mut params, Param::Text(resource_type.to_owned()));
    let k = placeholder(
        dialect,
        &mut params,
        Param::Int(i64::try_from(every.max(1)).unwrap_or(i64::MAX)),
    );
    let index = match dialect {
        Dialect::Sqlite => " INDEXED BY resources_seq_idx",
        Dialect::Postgres => "",
    };
    Sql {
        text: format!(
            "SELECT id FROM resources{index} WHERE resource_type = {t} AND seq % {k} = 0"
        ),
        params,
    }
}

/// The ids that cut a (sorted or unsorted) `sample` of a type's ids into at most `slices`
/// runs of equal size, the last one possibly shorter: ascending and distinct, at most
/// `slices - 1` of them. Slice `i` holds the ids after bound `i - 1` up to bound `i`
/// (inclusive); the last slice runs to the type's last id.
pub fn split_points(mut sample: Vec<String>, slices: usize) -> Vec<String> {
    sample.sort_unstable();
    sample.dedup();
    let step = sample.len().div_ceil(slices.max(1)).max(1);
    (1..slices.max(1))
        .map_while(|i| sample.get(i * step - 1).cloned())
        .filter(|point| sample.last() != Some(point))
        .collect()
}

/// The newest version of `$1/$2` written at or before `$3`.
pub(crate) fn version_at(dialect: Dialect) -> String {
    let (a, b, c) = match dialect {
        Dialect::Sqlite => ("?1", "?2", "?3"),
        Dialect::Postgres => ("$1", "$2", "$3"),
    };
    format!(
        "SELECT {} FROM history WHERE resource_type = {a} AND id = {b} \
         AND last_updated <= {c} ORDER BY version_id DESC LIMIT 1",
        crate::sql::history_columns(dialect)
    )
}

/// The rows of one [`plan_scan`] statement as a backend reads them, before the rows written
/// after the cut are looked up in history ([`finish_scan`]).
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    ndjson: Vec<u8>,
    ndjson_lines: u64,
    /// Rows that are not in `ndjson`, in order.
    current: Vec<ResourceVersion>,
    read: usize,
    last_id: String,
}

impl Scanned {
    /// Ready for the rows of `scan`: with [`ExportScan::as_ndjson`], room for its batch at
    /// about 1 KiB a resource, so the buffer is not regrown (and copied) row after row.
    pub(crate) fn for_scan(scan: &ExportScan) -> Self {
        let room = if scan.as_ndjson {
            scan.limit.min(100_000) * 1024
        } else {
            0
        };
        Scanned {
            ndjson: Vec::with_capacity(room),
            ..Scanned::default()
        }
    }

    /// Takes the next row: `id`, `last_updated`, `deleted` and `body` are its columns, and
    /// `version` decodes the whole row (called only when the row is not written as NDJSON).
    pub(crate) fn push(
        &mut self,
        scan: &ExportScan,
        id: &str,
        last_updated: i64,
        deleted: bool,
        body: &[u8],
        version: impl FnOnce() -> StoreResult<ResourceVersion>,
    ) -> StoreResult<()> {
        self.read += 1;
        self.last_id.clear();
        self.last_id.push_str(id);
        let at_cut = last_updated <= scan.cut;
        if deleted && at_cut && !scan.include_deleted {
            // Only a plain scan's statement returns these; nothing to export.
            return Ok(());
        }
        if scan.as_ndjson && !deleted && at_cut {
            self.ndjson.extend_from_slice(body);
            self.ndjson.push(b'\n');
            self.ndjson_lines += 1;
        } else {
            self.current.push(version()?);
        }
        Ok(())
    }

    /// The rows written after the cut, whose versions at the cut [`finish_scan`] asks for.
    pub(crate) fn after_cut<'a>(
        &'a self,
        scan: &'a ExportScan,
    ) -> impl Iterator<Item = &'a ResourceVersion> {
        self.current
            .iter()
            .filter(move |v| v.last_updated.millis() > scan.cut)
    }
}

/// Turns the scanned rows into a batch: `at_cut` is called for each row written after the cut
/// (in order) and returns its version at the cut.
pub(crate) fn finish_scan<F>(
    scan: &ExportScan,
    scanned: Scanned,
    mut at_cut: F,
) -> StoreResult<ExportBatch>
where
    F: FnMut(&ResourceVersion) -> StoreResult<Option<ResourceVersion>>,
{
    let complete = scanned.read < scan.limit.max(1);
    let last_id = (scanned.read > 0).then_some(scanned.last_id);
    let mut rows = Vec::with_capacity(scanned.current.len());
    for version in scanned.current {
        if version.last_updated.millis() <= scan.cut {
            rows.push(ExportRow {
                version,
                rewound: false,
            });
            continue;
        }
        let Some(old) = at_cut(&version)? else {
            continue;
        };
        if keeps(scan, &old) {
            rows.push(ExportRow {
                version: old,
                rewound: true,
            });
        }
    }
    Ok(ExportBatch {
        ndjson: scanned.ndjson,
        ndjson_lines: scanned.ndjson_lines,
        rows,
        last_id,
        read: scanned.read,
        complete,
    })
}

/// The successive batches of one scan that reads at most a given number of rows: each
/// batch continues after the last id of the one before.
#[derive(Debug, Clone)]
pub(crate) struct Batches {
    scan: ExportScan,
    /// Rows still to read.
    remaining: u64,
    complete: bool,
}

impl Batches {
    /// Batches of `scan` (from its `after_id`, of at most its `limit` rows each) reading at
    /// most `rows` rows in all.
    pub(crate) fn new(scan: ExportScan, rows: u64) -> Self {
        Batches {
            scan,
            remaining: rows,
            complete: false,
        }
    }

    /// The statement's scan for the next batch; `None` once the scan is complete or has read
    /// its rows.
    pub(crate) fn next_scan(&self) -> Option<ExportScan> {
        if self.complete || self.remaining == 0 {
            return None;
        }
        let mut scan = self.scan.clone();
        scan.limit = usize::try_from(self.remaining).map_or(scan.limit, |r| scan.limit.min(r));
        Some(scan)
    }

    /// Moves past `batch`, the batch read for [`Batches::next_scan`].
    pub(crate) fn advance(&mut self, batch: &ExportBatch) {
        self.remaining = self.remaining.saturating_sub(batch.read as u64);
        self.complete = batch.complete;
        if batch.last_id.is_some() {
            self.scan.after_id.clone_from(&batch.last_id);
        }
    }
}

/// Whether a version from history passes the scan's time and deletion rules.
fn keeps(scan: &ExportScan, version: &ResourceVersion) -> bool {
    let after_since = scan
        .since
        .is_none_or(|since| version.last_updated.millis() > since);
    after_since && (scan.include_deleted || !version.is_deleted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_sql() {
        let scan = ExportScan {
            resource_type: "Observation".into(),
            after_id: Some("o1".into()),
            up_to: None,
            since: Some(5),
            cut: 10,
            include_deleted: true,
            filter: ExportFilter::References {
                params: vec!["subject".into()],
                target_type: "Patient".into(),
                target_ids: Some(vec!["p1".into()]),
            },
            ids: None,
            limit: 100,
            as_ndjson: false,
        };
        let sql = plan_scan(Dialect::Postgres, &scan, ScanColumns::Version);
        assert_eq!(
            sql.text,
            "SELECT resource_type, id, version_id, last_updated, method, body, seq FROM resources \
             WHERE resource_type = $1 AND id > $2 AND (last_updated > $3 OR (last_updated <= $3 AND \
             ((method <> 'D' AND EXISTS (SELECT 1 FROM idx_reference x WHERE x.resource_type = \
             resources.resource_type AND x.id = resources.id AND x.param = ANY($5) AND \
             x.target_type = $6 AND x.target_id = ANY($7))) OR method = 'D') AND last_updated > $4)) \
             ORDER BY id LIMIT $8"
        );
        assert_eq!(sql.params.len(), 8);
        let count = plan_count(Dialect::Sqlite, &scan);
        assert!(
            count
                .text
                .starts_with("SELECT count(*) FROM resources WHERE resource_type = ?1")
        );
        assert_eq!(count.params.len(), 6);
    }

    #[test]
    fn split_points_cut_a_sample_into_even_slices() {
        let ids = |r: std::ops::Range<u32>| r.map(|i| format!("{i:03}")).collect::<Vec<_>>();
        let mut sample = ids(0..100);
        sample.reverse();
        assert_eq!(split_points(sample.clone(), 4), ["024", "049", "074"]);
        assert_eq!(split_points(sample, 1), Vec::<String>::new());
        // Full slices first; fewer samples than slices: no empty or repeated bounds.
        assert_eq!(split_points(ids(0..5), 3), ["001", "003"]);
        assert_eq!(split_points(ids(0..2), 5), ["000"]);
        assert_eq!(split_points(Vec::new(), 3), Vec::<String>::new());
        let sql = plan_sample(Dialect::Postgres, "Observation", 10);
        assert_eq!(
            sql.text,
            "SELECT id FROM resources WHERE resource_type = $1 AND seq % $2 = 0"
        );
    }

    #[test]
    fn batches_continue_after_each_other_up_to_their_rows() {
        let scan = ExportScan {
            resource_type: "Patient".into(),
            after_id: None,
            up_to: None,
            since: None,
            cut: 10,
            include_deleted: false,
            filter: ExportFilter::All,
            ids: None,
            limit: 4,
            as_ndjson: true,
        };
        let read = |n: usize, last: &str| ExportBatch {
            read: n,
            last_id: Some(last.into()),
            complete: n < 4,
            ..ExportBatch::default()
        };
        let mut batches = Batches::new(scan.clone(), 10);
        assert_eq!(batches.next_scan(), Some(scan.clone()));
        batches.advance(&read(4, "p4"));
        batches.advance(&read(4, "p8"));
        // Two rows left to read: the last statement asks for two.
        let last = batches.next_scan().unwrap();
        assert_eq!((last.after_id.as_deref(), last.limit), (Some("p8"), 2));
        batches.advance(&read(2, "p10"));
        assert_eq!(batches.next_scan(), None);
        // Full batches end the scan once its rows are read.
        let mut batches = Batches::new(scan.clone(), 8);
        batches.advance(&read(4, "p4"));
        batches.advance(&read(4, "p8"));
        assert_eq!(batches.next_scan(), None);
        // A batch short of its limit completes the scan.
        let mut batches = Batches::new(scan, 100);
        batches.advance(&read(3, "p3"));
        assert_eq!(batches.next_scan(), None);
    }

    #[test]
    fn a_plain_lean_scan_has_only_the_keyset() {
        let scan = ExportScan {
            resource_type: "Patient".into(),
            after_id: Some("p1".into()),
            up_to: Some("p9".into()),
            since: None,
            cut: 10,
            include_deleted: false,
            filter: ExportFilter::All,
            ids: None,
            limit: 100,
            as_ndjson: true,
        };
        let sql = plan_scan(Dialect::Sqlite, &scan, ScanColumns::Lean);
        assert_eq!(
            sql.text,
            "SELECT id, last_updated, method, body FROM resources \
             WHERE resource_type = ?1 AND id > ?2 AND id <= ?3 ORDER BY id LIMIT ?4"
        );
        // Anything else keeps its conditions, with the lean columns.
        let since = ExportScan {
            since: Some(5),
            ..scan
        };
        let sql = plan_scan(Dialect::Sqlite, &since, ScanColumns::Lean);
        assert!(
            sql.text
                .starts_with("SELECT id, last_updated, method, body FROM resources")
        );
        assert!(sql.text.contains("last_updated > ?5"), "{}", sql.text);
    }
}
