//! The reindex job: per type a keyset scan by id of the current resources, their index
//! entries re-extracted on all cores, and each batch's entries replaced in one transaction
//! that also stores the job's checkpoint.
//!
//! **Pipeline.** A producer task reads the next batch and extracts its entries while the
//! previous batch is written, so the single SQLite writer is rarely idle.
//!
//! **Resuming.** The checkpoint (position, counts, the types and marks decided at the start)
//! commits in the same transaction as the batch it describes: a resumed attempt continues
//! after the last committed batch, so no resource is skipped and the counts stay exact.
//!
//! **Concurrent writes.** Entries are replaced only where the resource is still at the version
//! they were extracted from ([`oxifhir_store::StoreTx::replace_index_many`]); a resource
//! written meanwhile was indexed by its own write with the same parameters, so every resource
//! ends up indexed exactly once.

use std::sync::Arc;

use async_trait::async_trait;
use oxifhir_jobs::{Job, JobContext, JobError, JobOutput};
use oxifhir_model::Instant;
use oxifhir_store::{
    ExportFilter, ExportScan, IndexReplacement, Isolation, ResourceVersion, Store, StoreError,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

use super::plan::{self, Plan};
use crate::error::{ApiError, ErrorKind};
use crate::request::FhirRequest;
use crate::response::FhirResponse;
use crate::route::{self, Interaction};
use crate::search_params::SearchParams;
use crate::server::FhirServer;

/// Attempts at one batch's transaction when the database asks for a retry.
const TRANSACTION_ATTEMPTS: u32 = 5;

/// Runs `$reindex` jobs.
pub struct ReindexJob {
    server: FhirServer,
}

impl ReindexJob {
    /// Reindexes the store of `server` with its search parameters.
    pub fn new(server: FhirServer) -> Self {
        ReindexJob { server }
    }
}

/// Where a reindex has got to, and what it has done so far (the job's checkpoint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// When the first attempt started (milliseconds).
    started: i64,
    /// Resources expected (for `X-Progress`).
    total: u64,
    /// The types to scan, decided at the start (those holding resources).
    types: Vec<String>,
    /// `(url, fingerprint)` of custom parameters to mark indexed at the end.
    marks: Vec<(String, String)>,
    type_index: usize,
    /// The last id of the committed batches of the current type.
    after_id: Option<String>,
    scanned: u64,
    indexed: u64,
    no_match: u64,
    errors: u64,
    entries: u64,
    /// Resources written by others between their reading and their batch's write.
    changed: u64,
}

impl Progress {
    /// `X-Progress`.
    fn text(&self) -> String {
        format!(
            "Indexed {} of {} resources.",
            self.scanned,
            self.total.max(self.scanned)
        )
    }

    fn finished(&self) -> bool {
        self.type_index >= self.types.len()
    }

    fn bytes(&self) -> Result<Vec<u8>, JobError> {
        serde_json::to_vec(self).map_err(|e| JobError::Fatal(format!("cannot checkpoint: {e}")))
    }
}

/// The scan filter of a plan (one resource at instance level).
fn filter(plan: &Plan) -> ExportFilter {
    match &plan.id {
        Some(id) => ExportFilter::Ids(vec![id.clone()]),
        None => ExportFilter::All,
    }
}

fn scan(plan: &Plan, resource_type: &str, after_id: Option<String>, limit: usize) -> ExportScan {
    ExportScan {
        resource_type: resource_type.to_owned(),
        after_id,
        up_to: None,
        since: None,
        cut: i64::MAX,
        include_deleted: false,
        filter: filter(plan),
        ids: None,
        limit,
        as_ndjson: false,
    }
}

/// The start of a reindex: the types that hold resources and how many there are.
pub async fn start(store: &dyn Store, plan: &Plan) -> Result<Progress, StoreError> {
    let mut types = Vec::new();
    let mut total = 0;
    for t in &plan.types {
        let n = store.export_count(&scan(plan, t, None, 1)).await?;
        if n > 0 {
            types.push(t.clone());
            total += n;
        }
    }
    Ok(Progress {
        started: Instant::now().millis(),
        total,
        types,
        marks: plan.marks.clone(),
        type_index: 0,
        after_id: None,
        scanned: 0,
        indexed: 0,
        no_match: 0,
        errors: 0,
        entries: 0,
        changed: 0,
    })
}

/// One batch read and re-extracted, waiting to be written.
struct Prepared {
    type_index: usize,
    replacements: Vec<IndexReplacement>,
    /// Entries of each replacement.
    sizes: Vec<usize>,
    errors: u64,
    last_id: Option<String>,
    complete: bool,
}

/// The entries of `rows` (resources of `resource_type`), extracted on all cores.
async fn extract(
    params: &Arc<SearchParams>,
    extractor: &Arc<plan::Extractor>,
    resource_type: &str,
    rows: Vec<ResourceVersion>,
) -> Result<(Vec<IndexReplacement>, u64), JobError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = rows.len().div_ceil(threads).max(64);
    let mut tasks = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<ResourceVersion> = rows.by_ref().take(per).collect();
        let (params, extractor, t) = (params.clone(), extractor.clone(), resource_type.to_owned());
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut out = Vec::with_capacity(chunk.len());
            let mut errors = 0;
            for version in chunk {
                match oxifhir_model::json::parse(&version.body) {
                    Ok(value) => out.push(IndexReplacement {
                        index: extractor.extract(&params, &t, &value),
                        resource_type: version.resource_type,
                        id: version.id,
                        version_id: version.version_id,
                    }),
                    Err(e) => {
                        tracing::warn!(resource = %format!("{t}/{}", version.id), error = %e, "stored resource unreadable; not reindexed");
                        errors += 1;
                    }
                }
            }
            (out, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (out, e) = task
            .await
            .map_err(|e| JobError::Fatal(format!("index extraction failed: {e}")))?;
        all.extend(out);
        errors += e;
    }
    Ok((all, errors))
}

/// What the producer task reads and extracts with.
struct Reader {
    store: Arc<dyn Store>,
    params: Arc<SearchParams>,
    plan: Arc<Plan>,
    types: Vec<String>,
    batch: usize,
}

impl Reader {
    /// Reads and extracts batches from `(type_index, after_id)` on, in order, into `out`.
    async fn produce(
        self,
        mut type_index: usize,
        mut after_id: Option<String>,
        out: mpsc::Sender<Result<Prepared, JobError>>,
    ) {
        while type_index < self.types.len() {
            let t = &self.types[type_index];
            let extractor = Arc::new(self.plan.extractor(t));
            loop {
                let scan = scan(&self.plan, t, after_id.clone(), self.batch);
                let batch = match self.store.export_scan(&scan).await {
                    Ok(batch) => batch,
                    Err(e) => {
                        let _ = out.send(Err(e.into())).await;
                        return;
                    }
                };
                let rows: Vec<ResourceVersion> =
                    batch.rows.into_iter().map(|r| r.version).collect();
                let (replacements, errors) = match extract(&self.params, &extractor, t, rows).await
                {
                    Ok(done) => done,
                    Err(e) => {
                        let _ = out.send(Err(e)).await;
                        return;
                    }
                };
                let sizes = replacements.iter().map(|r| r.index.len()).collect();
                if batch.last_id.is_some() {
                    after_id = batch.last_id.clone();
                }
                let prepared = Prepared {
                    type_index,
                    replacements,
                    sizes,
                    errors,
                    last_id: batch.last_id,
                    complete: batch.complete,
                };
                if out.send(Ok(prepared)).await.is_err() {
                    return;
                }
                if batch.complete {
                    break;
                }
            }
            type_index += 1;
            after_id = None;
        }
    }
}

/// Aborts the producer when the reindex stops.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs a reindex from `progress` to its end. With a job context, each batch's transaction
/// stores the checkpoint and the reindex stops when the job must; without one (a
/// synchronous instance reindex) it just runs.
pub async fn execute(
    server: &FhirServer,
    params: Arc<SearchParams>,
    plan: Arc<Plan>,
    ctx: Option<&JobContext>,
    mut progress: Progress,
) -> Result<Progress, JobError> {
    let store = server.shared_store();
    let settings = &server.config().maintenance;
    let (sender, mut batches) = mpsc::channel(2);
    let reader = Reader {
        store: store.clone(),
        params,
        plan: plan.clone(),
        types: progress.types.clone(),
        batch: settings.batch.max(1),
    };
    let _producer = AbortOnDrop(tokio::spawn(reader.produce(
        progress.type_index,
        progress.after_id.clone(),
        sender,
    )));
    while !progress.finished() {
        if let Some(ctx) = ctx {
            ctx.check()?;
        }
        let Some(prepared) = batches.recv().await else {
            return Err(JobError::Transient(
                "the reader of the reindex stopped".into(),
            ));
        };
        let prepared = prepared?;
        let t = &progress.types[prepared.type_index];
        let scope = plan.scope(t);
        let mut attempt = 0;
        let next = loop {
            attempt += 1;
            match write(store.as_ref(), ctx, &scope, &prepared, &progress).await {
                Err(JobError::Transient(message))
                    if attempt < TRANSACTION_ATTEMPTS && message.starts_with(RETRYABLE) =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                other => break other?,
            }
        };
        server
            .metrics()
            .reindexed(next.scanned.saturating_sub(progress.scanned));
        progress = next;
        if !settings.throttle.is_zero() {
            tokio::time::sleep(settings.throttle).await;
        }
    }
    for (url, fingerprint) in &progress.marks {
        let marked = server
            .mark_search_param_indexed_as(url, fingerprint)
            .await
            .map_err(|e| JobError::Transient(e.message().to_owned()))?;
        if !marked {
            tracing::info!(%url, "SearchParameter changed while reindexing; not marked indexed");
        }
    }
    Ok(progress)
}

/// The text a retryable store error starts with, as [`JobError`] carries it.
const RETRYABLE: &str = "retryable";

fn job_error(e: StoreError) -> JobError {
    match e {
        StoreError::Retryable(m) => JobError::Transient(format!("{RETRYABLE}: {m}")),
        other => other.into(),
    }
}

/// Writes one batch and its checkpoint in one transaction; the progress after it.
async fn write(
    store: &dyn Store,
    ctx: Option<&JobContext>,
    scope: &oxifhir_store::IndexScope,
    prepared: &Prepared,
    progress: &Progress,
) -> Result<Progress, JobError> {
    let mut tx = store
        .begin(Isolation::VersionChecked)
        .await
        .map_err(job_error)?;
    let replaced = tx
        .replace_index_many(scope, prepared.replacements.clone())
        .await
        .map_err(job_error)?;
    let mut next = progress.clone();
    let read = prepared.replacements.len() as u64 + prepared.errors;
    next.scanned += read;
    next.errors += prepared.errors;
    for (replaced, size) in replaced.iter().zip(&prepared.sizes) {
        if !replaced {
            next.changed += 1;
            next.indexed += 1;
        } else if *size == 0 {
            next.no_match += 1;
        } else {
            next.indexed += 1;
            next.entries += *size as u64;
        }
    }
    if prepared.complete {
        next.type_index = prepared.type_index + 1;
        next.after_id = None;
    } else {
        next.type_index = prepared.type_index;
        next.after_id = prepared.last_id.clone();
    }
    if let Some(ctx) = ctx {
        ctx.checkpoint_in(tx.as_mut(), &next.bytes()?, &next.text())
            .await?;
    }
    tx.commit().await.map_err(job_error)?;
    if let Some(ctx) = ctx {
        ctx.set_progress(next.text());
    }
    Ok(next)
}

/// The result `Parameters` of a finished reindex (seed 003).
pub fn result(progress: &Progress) -> serde_json::Value {
    let seconds = (Instant::now().millis() - progress.started).max(0) as f64 / 1000.0;
    let mut message = "Re-indexing complete.".to_owned();
    if progress.errors > 0 {
        message.push_str(&format!(
            " {} resources failed validation and were skipped.",
            progress.errors
        ));
    }
    if progress.changed > 0 {
        message.push_str(&format!(
            " {} resources changed while reindexing and were indexed by their own writes.",
            progress.changed
        ));
    }
    json!({
        "resourceType": "Parameters",
        "parameter": [
            {"name": "status", "valueCode": "completed"},
            {"name": "durationInSeconds", "valueDecimal": (seconds * 1000.0).round() / 1000.0},
            {"name": "resourcesScanned", "valueUnsignedInt": progress.scanned},
            {"name": "indexEntriesCreated", "valueUnsignedInt": progress.entries},
            {"name": "processingSummary", "part": [
                {"name": "resourcesIndexedSuccessfully", "valueUnsignedInt": progress.indexed},
                {"name": "resourcesSkippedNoMatchingPath", "valueUnsignedInt": progress.no_match},
                {"name": "resourcesSkippedWithError", "valueUnsignedInt": progress.errors},
            ]},
            {"name": "message", "valueString": message},
        ],
    })
}

/// The stored answer of a reindex that cannot run: `500` with an OperationOutcome saying why.
fn failure(request: &FhirRequest, why: &ApiError) -> Result<JobOutput, JobError> {
    let error = ApiError::new(
        ErrorKind::Internal,
        format!("The reindex could not run: {}", why.message()),
    );
    crate::operations::job_output(request, FhirResponse::from_error(&error), "Failed".into())
}

#[async_trait]
impl Job for ReindexJob {
    async fn run(&self, ctx: &JobContext) -> Result<JobOutput, JobError> {
        let request: FhirRequest = serde_json::from_slice(&ctx.job().input)
            .map_err(|e| JobError::Fatal(format!("the stored request is unreadable: {e}")))?;
        let Ok(Interaction::Operation { target, .. }) = route::route(&request) else {
            return Err(JobError::Fatal(
                "the stored request is not a $reindex".into(),
            ));
        };
        // Loaded now, not from a snapshot that may predate the SearchParameter another node
        // stored just before the kick-off.
        let params = self
            .server
            .load_search_params()
            .await
            .map_err(|e| JobError::Transient(e.message().to_owned()))?;
        let plan = match plan::urls(&request).and_then(|urls| Plan::new(&params, &target, &urls)) {
            Ok(plan) => Arc::new(plan),
            Err(e) => return failure(&request, &e),
        };
        let progress = match ctx.checkpoint_data() {
            Some(bytes) => serde_json::from_slice(bytes)
                .map_err(|e| JobError::Fatal(format!("unreadable checkpoint: {e}")))?,
            None => {
                let progress = start(ctx.store().as_ref(), &plan).await?;
                ctx.set_progress(progress.text());
                ctx.checkpoint(&progress.bytes()?, None).await?;
                progress
            }
        };
        let done = execute(&self.server, params, plan, Some(ctx), progress).await?;
        crate::operations::job_output(
            &request,
            FhirResponse::json(200, oxifhir_model::json::to_bytes(&result(&done))),
            done.text(),
        )
    }
}
