//! The export job: per resource type (or per slice of a large one) a keyset scan by id of the
//! versions at the cut, their stored bytes written straight into NDJSON files split by count
//! and size, a checkpoint after each file part.
//!
//! **The consistent cut.** The first attempt takes `transactionTime` = now (capped by
//! `_until`) and stores it with its first checkpoint; every later attempt reuses it. The scan
//! reads each resource's version *at* that time (see `oxifhir_store::export`): resources last
//! written before it come straight from the current table; a resource written after it is
//! looked up in history and exported as it stood at the cut (or left out if it did not exist
//! yet, or listed as deleted if it was deleted then). So nothing changed after the cut is
//! exported, whatever is written while the export runs. Writes are stamped with their time
//! just before they commit, so the scan starts a short settle interval after the cut: a write
//! stamped at or before the cut has committed by then.
//!
//! **Slices.** A type with more resources than one file holds is cut into slices, runs of its
//! ids of about a file each, bounded by ids from a sample of the type
//! ([`Store::export_sample`](oxifhir_store::Store::export_sample)); up to
//! `ExportConfig::parallel` slices are exported side by side, each its own keyset scan into
//! files of its own (`{type}-{slice}-{part}.ndjson`; an uncut type's are `{type}-{part}`).
//! Types are counted and sliced in order while the slices planned so far are exported, and
//! the plan so far is part of every checkpoint. The manifest lists files in type, slice and
//! part order, so an export's files do not depend on which slice finished first.
//!
//! **Resuming.** A checkpoint records, for every slice, the last id of its finished parts,
//! its next part number and its files, after each part of any slice. A resumed attempt
//! restarts each unfinished slice's current part from that id and rewrites its files under
//! the same names, so no resource is lost or written twice.
//!
//! **Filters.** The Patient compartment filter is applied in SQL to current versions; a
//! resource that changed after the cut is checked against its version at the cut here (its
//! references parsed from the body). `_typeFilter` queries run as searches restricted to each
//! batch's ids, so they judge the current version of a resource.

use std::collections::HashSet;

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use async_trait::async_trait;
use oxifhir_jobs::{Job, JobContext, JobError, JobOutput};
use oxifhir_model::{Instant, compartment};
use oxifhir_store::jobs::JobRecord;
use oxifhir_store::{Condition, ExportFilter, ExportRow, ExportScan, ResourceVersion, SearchQuery};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::files::{ExportFiles, FileWriter, Lines};
use super::manifest::{ExportFile, ExportResult, FileKind};
use super::params::{self, ElementSelector, ExportLevel, ExportRequest, TypeFilter};
use super::slices::{self, Slice};
use crate::error::ApiError;
use crate::interactions::search;
use crate::prefer::Preferences;
use crate::request::FhirRequest;
use crate::response::FhirResponse;
use crate::route::{self, Interaction};
use crate::server::FhirServer;

/// The `meta.tag` of a resource reduced by `_elements`.
const SUBSETTED: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";

/// Runs `$export` jobs.
pub struct ExportJob {
    server: FhirServer,
}

impl ExportJob {
    /// Exports from `server`'s store into its export files.
    pub fn new(server: FhirServer) -> Self {
        ExportJob { server }
    }
}

/// Where an export has got to (the job's checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Progress {
    /// The cut (transaction time), in milliseconds.
    cut: i64,
    /// Resources expected (for `X-Progress`).
    total: u64,
    /// Resources written in finished parts.
    exported: u64,
    /// How many of the request's types are planned: counted, and cut into `slices`.
    planned: usize,
    /// The slices of the planned types, in the order their files are listed.
    slices: Vec<Slice>,
    /// The Patients whose compartments are exported; `None` for all (or a system export).
    patients: Option<Vec<String>>,
}

impl Progress {
    fn text(&self) -> String {
        format!(
            "Exported {} of {} resources",
            self.exported,
            self.total.max(self.exported)
        )
    }
}

fn transient(e: impl std::fmt::Display) -> JobError {
    JobError::Transient(e.to_string())
}

/// A failed export's stored answer: the error's status and OperationOutcome.
fn failure(error: &ApiError) -> Result<JobOutput, JobError> {
    let response = crate::format::apply(
        FhirResponse::from_error(error),
        crate::format::Format::default(),
    );
    let result = serde_json::to_vec(&response)
        .map_err(|e| JobError::Fatal(format!("cannot store the failure: {e}")))?;
    Ok(JobOutput {
        failed: true,
        result,
        progress: Some(format!("Failed with status {}", response.status)),
    })
}

#[async_trait]
impl Job for ExportJob {
    async fn run(&self, ctx: &JobContext) -> Result<JobOutput, JobError> {
        let request: FhirRequest = serde_json::from_slice(&ctx.job().input)
            .map_err(|e| JobError::Fatal(format!("the stored request is unreadable: {e}")))?;
        let Ok(Interaction::Operation { target, .. }) = route::route(&request) else {
            return Err(JobError::Fatal(
                "the stored request is not an $export".into(),
            ));
        };
        let lenient = Preferences::parse(request.headers.prefer.as_deref()).lenient_explicit;
        let search_params = self
            .server
            .search_params()
            .await
            .map_err(|e| JobError::Transient(e.message().to_owned()))?;
        let config = self.server.config();
        let export = match params::parse(config, &search_params, &request, &target, lenient) {
            Ok(export) => export,
            Err(error) => return failure(&error),
        };
        let files = self
            .server
            .export_files()
            .map_err(|e| JobError::Fatal(e.message().to_owned()))?
            .clone();
        let mut progress = match ctx.checkpoint_data() {
            Some(bytes) => serde_json::from_slice(bytes)
                .map_err(|e| JobError::Fatal(format!("unreadable checkpoint: {e}")))?,
            None => match self.start(ctx, &export).await? {
                Ok(progress) => progress,
                Err(error) => return failure(&error),
            },
        };
        let run = Run {
            server: &self.server,
            ctx,
            export: &export,
            files: &files,
            cut: progress.cut,
            patients: progress.patients.clone(),
        };
        let lanes = self.server.config().export.parallel.max(1);
        // The types not planned yet are counted and cut into slices, two at a time, while
        // the slices planned so far are exported.
        let (cut, patients) = (progress.cut, progress.patients.clone());
        let mut planning = futures::stream::iter(progress.planned..export.types.len())
            .map(|i| slices::plan(ctx, &config.export, &export, i, cut, &patients))
            .buffered(2);
        let mut all_planned = false;
        let mut running = FuturesUnordered::new();
        let mut busy = HashSet::new();
        loop {
            // Larger slices first, so that the lanes finish together.
            let mut waiting: Vec<usize> = (0..progress.slices.len())
                .filter(|&i| !progress.slices[i].done && !busy.contains(&i))
                .collect();
            waiting.sort_by_key(|&i| std::cmp::Reverse(progress.slices[i].rows));
            for i in waiting
                .into_iter()
                .take(lanes.saturating_sub(running.len()))
            {
                busy.insert(i);
                let slice = progress.slices[i].clone();
                let run = &run;
                running.push(async move { (i, run.part(slice).await) });
            }
            if running.is_empty() && all_planned {
                break;
            }
            tokio::select! {
                plan = planning.next(), if !all_planned => match plan {
                    Some(plan) => {
                        let (count, slices) = plan?;
                        progress.total += count;
                        progress.slices.extend(slices);
                        progress.planned += 1;
                    }
                    None => all_planned = true,
                },
                Some((i, outcome)) = running.next(), if !running.is_empty() => {
                    let (slice, exported) = outcome?;
                    busy.remove(&i);
                    // A part that wrote no file has nothing a resumed attempt could lose.
                    let wrote = slice.files.len() > progress.slices[i].files.len();
                    progress.slices[i] = slice;
                    progress.exported += exported;
                    ctx.set_progress(progress.text());
                    if wrote {
                        ctx.checkpoint(
                            &checkpoint_bytes(&progress)?,
                            Some(Instant::from_millis(progress.cut)),
                        )
                        .await?;
                    }
                }
            }
        }
        drop(running);
        let mut output: Vec<ExportFile> = progress
            .slices
            .into_iter()
            .flat_map(|slice| slice.files)
            .collect();
        if !export.ignored.is_empty() {
            let mut errors = files.create(&ctx.job().id, "errors.ndjson");
            for text in &export.ignored {
                errors
                    .line(&ignored_outcome(text))
                    .await
                    .map_err(transient)?;
            }
            output.push(ExportFile {
                kind: FileKind::Error,
                resource_type: "OperationOutcome".into(),
                name: "errors.ndjson".into(),
                count: errors.finish().await.map_err(transient)?,
            });
        }
        let result = ExportResult {
            transaction_time: progress.cut,
            request: ctx.job().request_url.clone(),
            files: output,
        };
        Ok(JobOutput {
            failed: false,
            result: serde_json::to_vec(&result)
                .map_err(|e| JobError::Fatal(format!("cannot store the manifest: {e}")))?,
            progress: Some(format!("Exported {} resources", progress.exported)),
        })
    }

    async fn discard(&self, job: &JobRecord) -> Result<(), String> {
        let files = self
            .server
            .export_files()
            .map_err(|e| e.message().to_owned())?;
        files.remove(&job.id).await
    }
}

fn checkpoint_bytes(progress: &Progress) -> Result<Vec<u8>, JobError> {
    serde_json::to_vec(progress).map_err(|e| JobError::Fatal(format!("cannot checkpoint: {e}")))
}

/// One OperationOutcome line of the `error` file for an ignored parameter.
fn ignored_outcome(text: &str) -> Vec<u8> {
    let outcome = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "warning", "code": "not-supported", "diagnostics": text}],
    });
    oxifhir_model::json::to_bytes(&outcome)
}

impl ExportJob {
    /// The first attempt's start: the cut, the Patients of the compartments, the expected
    /// count; stored as the first checkpoint. `Ok(Err(_))` is a failed export.
    async fn start(
        &self,
        ctx: &JobContext,
        export: &ExportRequest,
    ) -> Result<Result<Progress, ApiError>, JobError> {
        let settings = &self.server.config().export;
        let now = Instant::now();
        let cut = export.until.map_or(now, |until| until.min(now)).millis();
        let patients = match &export.level {
            ExportLevel::System => None,
            ExportLevel::Patient => export.patients.clone(),
            ExportLevel::Group(id) => {
                let group = ctx.store().read("Group", id).await?;
                let Some(group) = group.filter(|g| !g.is_deleted()) else {
                    return Ok(Err(params::unknown_group(id)));
                };
                let body = oxifhir_model::json::parse(&group.body)
                    .map_err(|e| JobError::Fatal(format!("Group/{id} is unreadable: {e}")))?;
                let mut members = params::group_patients(self.server.config(), &body);
                if let Some(wanted) = &export.patients {
                    members.retain(|m| wanted.binary_search(m).is_ok());
                }
                Some(members)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(settings.settle) => {}
            _ = ctx.stopped() => return Err(JobError::Stopped),
        }
        let progress = Progress {
            cut,
            total: 0,
            exported: 0,
            planned: 0,
            slices: Vec::new(),
            patients,
        };
        ctx.set_progress(progress.text());
        ctx.checkpoint(
            &checkpoint_bytes(&progress)?,
            Some(Instant::from_millis(cut)),
        )
        .await?;
        Ok(Ok(progress))
    }
}

/// The compartment filter of `resource_type` for a level.
pub(super) fn filter_of(
    export: &ExportRequest,
    resource_type: &str,
    patients: &Option<Vec<String>>,
) -> ExportFilter {
    if export.level == ExportLevel::System {
        return ExportFilter::All;
    }
    if resource_type == "Patient" {
        return match patients {
            None => ExportFilter::All,
            Some(ids) => ExportFilter::Ids(ids.clone()),
        };
    }
    ExportFilter::References {
        params: compartment::patient_compartment_params(resource_type).to_vec(),
        target_type: "Patient".into(),
        target_ids: patients.clone(),
    }
}

pub(super) fn scan_of(
    export: &ExportRequest,
    resource_type: &str,
    cut: i64,
    patients: &Option<Vec<String>>,
    after_id: Option<String>,
    limit: usize,
) -> ExportScan {
    let mut scan = ExportScan {
        resource_type: resource_type.to_owned(),
        after_id,
        up_to: None,
        since: export.since.map(Instant::millis),
        cut,
        include_deleted: export.since.is_some(),
        filter: filter_of(export, resource_type, patients),
        ids: None,
        limit,
        as_ndjson: false,
    };
    super::provenance::adjust(export, &mut scan);
    scan
}

/// What every part of one attempt shares.
pub(super) struct Run<'a> {
    pub(super) server: &'a FhirServer,
    pub(super) ctx: &'a JobContext,
    pub(super) export: &'a ExportRequest,
    files: &'a ExportFiles,
    /// The cut (transaction time), in milliseconds.
    cut: i64,
    /// The Patients whose compartments are exported; `None` for all.
    patients: Option<Vec<String>>,
}

impl Run<'_> {
    /// Writes the next part of a slice; returns the slice moved past it and the resources
    /// the part's output files hold.
    async fn part(&self, mut slice: Slice) -> Result<(Slice, u64), JobError> {
        let settings = &self.server.config().export;
        let resource_type = self.export.types[slice.type_index].clone();
        let filters = self.type_filters(&resource_type).await?;
        let elements: Vec<&ElementSelector> = self
            .export
            .elements
            .iter()
            .filter(|e| {
                e.resource_type
                    .as_deref()
                    .is_none_or(|t| t == resource_type)
            })
            .collect();
        let job_id = &self.ctx.job().id;
        let output_name = slice.file_name(&resource_type, false);
        let deleted_name = slice.file_name(&resource_type, true);
        let mut output: Option<FileWriter> = None;
        let mut deleted: Option<FileWriter> = None;
        let mut after_id = slice.after_id.clone();
        let max_lines = settings.file_resources.max(1);
        let store = self.ctx.store();
        // Without `_typeFilter`, `_elements` or a Provenance rule, current versions come as
        // stored NDJSON.
        let as_ndjson = filters.is_empty()
            && elements.is_empty()
            && !super::provenance::selects(self.export, &resource_type);
        let mut scan = scan_of(
            self.export,
            &resource_type,
            self.cut,
            &self.patients,
            after_id.clone(),
            settings.batch.max(1),
        );
        scan.up_to = slice.up_to.clone();
        scan.as_ndjson = as_ndjson;
        // A file's worth of rows at most; the next batch is read while one is written.
        let mut batches = store.export_batches(scan.clone(), max_lines);
        let mut next = batches
            .next()
            .await
            .ok_or_else(|| transient("the export scan returned no batch"))?;
        let slice_done = loop {
            self.ctx.check()?;
            let batch = next?;
            if !settings.throttle.is_zero() {
                tokio::time::sleep(settings.throttle).await;
            }
            let rows = self.keep(&scan, &filters, batch.rows).await?;
            let rows = super::provenance::select(self, &scan, &self.patients, rows).await?;
            let mut lines = Lines::from_ndjson(batch.ndjson, batch.ndjson_lines);
            let mut tombstones = Lines::default();
            for row in rows {
                let version = row.version;
                if version.is_deleted() {
                    tombstones.push(&delete_bundle(&version));
                } else if elements.is_empty() {
                    lines.push(&version.body);
                } else {
                    lines.push(&subset(&version, &elements)?);
                }
            }
            self.server.metrics().exported(lines.count());
            if batch.last_id.is_some() {
                after_id = batch.last_id;
            }
            let written = output.as_ref().map_or(0, FileWriter::lines) + lines.count();
            let bytes = output.as_ref().map_or(0, FileWriter::bytes) + lines.len();
            let full = written >= max_lines || bytes >= settings.file_bytes;
            let more = !batch.complete && !full;
            let output = writer_for(&mut output, &lines, || {
                self.files.create(job_id, &output_name)
            });
            let deleted = writer_for(&mut deleted, &tombstones, || {
                self.files.create(job_id, &deleted_name)
            });
            // The fetch comes first: `join!` polls in order, and a backend that reads on
            // demand starts the next batch before the write copies this one.
            let (fetched, wrote) = tokio::join!(
                async {
                    if more {
                        Some(batches.next().await)
                    } else {
                        None
                    }
                },
                async {
                    if let Some(writer) = output {
                        writer.write(lines).await?;
                    }
                    if let Some(writer) = deleted {
                        writer.write(tombstones).await?;
                    }
                    Ok::<(), String>(())
                }
            );
            wrote.map_err(transient)?;
            match fetched {
                Some(Some(fetched)) => next = fetched,
                // The part has read its rows; the slice goes on in the next part.
                Some(None) => break false,
                None => break batch.complete,
            }
        };
        let mut exported = 0;
        for (writer, kind, name, file_type) in [
            (
                output,
                FileKind::Output,
                output_name,
                resource_type.as_str(),
            ),
            (deleted, FileKind::Deleted, deleted_name, "Bundle"),
        ] {
            if let Some(writer) = writer {
                let count = writer.finish().await.map_err(transient)?;
                if kind == FileKind::Output {
                    exported += count;
                }
                slice.files.push(ExportFile {
                    kind,
                    resource_type: file_type.to_owned(),
                    name,
                    count,
                });
            }
        }
        drop(batches);
        if slice_done {
            slice.done = true;
        } else {
            slice.after_id = after_id;
            slice.part += 1;
        }
        Ok((slice, exported))
    }

    /// The parsed `_typeFilter` queries of a type (empty: no filter).
    pub(super) async fn type_filters(
        &self,
        resource_type: &str,
    ) -> Result<Vec<SearchQuery>, JobError> {
        let search_params = self
            .server
            .search_params()
            .await
            .map_err(|e| JobError::Transient(e.message().to_owned()))?;
        self.export
            .type_filters
            .iter()
            .filter(|f: &&TypeFilter| f.resource_type == resource_type)
            .map(|f| {
                search::parse(
                    self.server.config(),
                    &search_params,
                    Some(resource_type),
                    &f.query,
                    true,
                )
                .map(|parsed| parsed.query)
                .map_err(|e| JobError::Fatal(format!("_typeFilter: {}", e.message())))
            })
            .collect()
    }

    /// The rows of a batch the export keeps: rows from history checked against the
    /// compartment, deletions against their last live version's compartment, live rows
    /// against the `_typeFilter` queries (OR-ed).
    pub(super) async fn keep(
        &self,
        scan: &ExportScan,
        filters: &[SearchQuery],
        rows: Vec<ExportRow>,
    ) -> Result<Vec<ExportRow>, JobError> {
        let mut kept = Vec::with_capacity(rows.len());
        for row in rows {
            let checked = row.rewound || row.version.is_deleted();
            if !checked || self.in_compartment(&scan.filter, &row.version).await? {
                kept.push(row);
            }
        }
        if filters.is_empty() {
            return Ok(kept);
        }
        let ids: Vec<String> = kept
            .iter()
            .filter(|r| !r.version.is_deleted())
            .map(|r| r.version.id.clone())
            .collect();
        let mut matching = HashSet::new();
        if !ids.is_empty() {
            for filter in filters {
                let mut query = filter.clone();
                query.conditions.push(Condition::IdIn(ids.clone()));
                query.count = ids.len();
                query.cursor = None;
                query.sort.clear();
                query.with_total = false;
                let page = self.ctx.store().search(&query).await?;
                matching.extend(page.resources.into_iter().map(|r| r.id));
            }
        }
        kept.retain(|r| r.version.is_deleted() || matching.contains(&r.version.id));
        Ok(kept)
    }

    /// The version itself, or for a deletion the live version before it (`None` when there
    /// is none).
    pub(super) async fn live_version(
        &self,
        version: &ResourceVersion,
    ) -> Result<Option<ResourceVersion>, JobError> {
        if !version.is_deleted() {
            return Ok(Some(version.clone()));
        }
        let previous = self
            .ctx
            .store()
            .vread(&version.resource_type, &version.id, version.version_id - 1)
            .await?;
        Ok(previous.filter(|p| !p.is_deleted()))
    }

    /// Whether a version is in the compartment `filter` describes, judged from its own body
    /// (for a deletion, from the version before it).
    async fn in_compartment(
        &self,
        filter: &ExportFilter,
        version: &ResourceVersion,
    ) -> Result<bool, JobError> {
        let (params, target_type, target_ids) = match filter {
            ExportFilter::All => return Ok(true),
            ExportFilter::Ids(ids) => return Ok(ids.binary_search(&version.id).is_ok()),
            ExportFilter::References {
                params,
                target_type,
                target_ids,
            } => (params, target_type, target_ids),
        };
        let Some(live) = self.live_version(version).await? else {
            return Ok(false);
        };
        let Ok(value) = oxifhir_model::json::parse(&live.body) else {
            return Ok(false);
        };
        let entries = oxifhir_model::index::extract(&live.resource_type, &value);
        Ok(entries.references.iter().any(|r| {
            params.contains(&r.param)
                && r.target_type.as_deref() == Some(target_type.as_str())
                && target_ids.as_ref().is_none_or(|ids| {
                    r.target_id
                        .as_ref()
                        .is_some_and(|id| ids.binary_search(id).is_ok())
                })
        }))
    }
}

/// The file `slot` holds, created by `create` when `lines` is the first content for it;
/// `None` while there is nothing to write.
fn writer_for<'w>(
    slot: &'w mut Option<FileWriter>,
    lines: &Lines,
    create: impl FnOnce() -> FileWriter,
) -> Option<&'w mut FileWriter> {
    if lines.count() == 0 {
        return slot.as_mut();
    }
    Some(slot.get_or_insert_with(create))
}

/// A transaction Bundle with one `DELETE` entry for a deleted resource.
fn delete_bundle(version: &ResourceVersion) -> Vec<u8> {
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"request": {
            "method": "DELETE",
            "url": format!("{}/{}", version.resource_type, version.id),
        }}],
    });
    oxifhir_model::json::to_bytes(&bundle)
}

/// The resource with only the selected elements (plus `id`, `meta` and the elements the
/// schema requires), tagged `SUBSETTED`.
fn subset(version: &ResourceVersion, elements: &[&ElementSelector]) -> Result<Vec<u8>, JobError> {
    let value = oxifhir_model::json::parse(&version.body).map_err(|e| {
        JobError::Fatal(format!(
            "{}/{} is stored unreadable: {e}",
            version.resource_type, version.id
        ))
    })?;
    let Value::Object(map) = value else {
        return Ok(version.body.clone());
    };
    let required = oxifhir_model::validation::required_elements(&version.resource_type);
    let mut out = Map::new();
    for (key, value) in map {
        let keep = matches!(key.as_str(), "resourceType" | "id" | "meta")
            || required.contains(&key)
            || elements
                .iter()
                .any(|e| params::choice_of(key.trim_start_matches('_'), &e.element));
        if keep {
            out.insert(key, value);
        }
    }
    let meta = out
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        let tags = meta
            .entry("tag")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(tags) = tags {
            tags.push(json!({"system": SUBSETTED, "code": "SUBSETTED", "display": "subsetted"}));
        }
    }
    Ok(oxifhir_model::json::to_bytes(&Value::Object(out)))
}
