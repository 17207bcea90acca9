//! Import straight into a database: batches prepared on a pool of threads ([`super::prepare`])
//! are written a batch per transaction, while the next batches are being prepared.

use std::collections::HashMap;
use std::sync::Arc;

use oxifhir_model::{Instant, json};
use oxifhir_server::{FhirRequest, FhirServer, Method, ServerConfig};
use oxifhir_store::{
    BulkLoad, Isolation, Store, StoreConfig, StoreError, VersionWrite, WriteMethod,
};
use serde_json::Value;

use super::prepare::{Prepared, PreparedBatch, prepare_items, restamp};
use super::{BadLine, Summary};

/// A database being imported into.
pub struct DirectImport {
    store: Arc<dyn Store>,
    server: FhirServer,
    /// Whether a batch is written without reading the current versions of its resources
    /// first, as if they were all new. True until a batch meets a resource that exists: a
    /// load into an empty database (the usual bulk load) then never reads, and the write
    /// itself refuses an id that exists, after which that batch and every later one read.
    assume_new: bool,
    /// Seconds spent reading current versions, writing, and committing.
    timings: std::sync::Mutex<[f64; 3]>,
}

/// `(resource type, id)`.
type ResourceKey = (String, String);

/// What a batch knows of a resource's latest version.
#[derive(Clone)]
enum Latest {
    /// Stored before this batch, with its body (`None`: deleted).
    Stored(i64, Instant, Option<Vec<u8>>),
    /// Written by this batch: the version and the index of its write.
    Written(i64, Instant, usize),
}

impl Latest {
    fn version(&self) -> (i64, Instant) {
        match self {
            Latest::Stored(v, at, _) | Latest::Written(v, at, _) => (*v, *at),
        }
    }
}

/// How a batch treats resources whose id exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Replace them (unchanged ones are skipped).
    Upsert,
    /// Report them as bad lines.
    Reject,
    /// Skip identical ones silently, report others: the batch right after a resume, which an
    /// interrupted run may have committed without recording it.
    RejectChanged,
}

impl DirectImport {
    /// Opens (and migrates) the database and starts a bulk load of about `input_bytes`.
    ///
    /// Slots are imported with the end times `Slot?end=` searches, so the store is first
    /// brought to where a server's start would bring it (Slots stored before that parameter
    /// existed indexed, and the mark saying so set): otherwise the next `serve` would
    /// reindex every Slot imported.
    pub async fn open(
        config: &StoreConfig,
        input_bytes: u64,
        defer_indexes: Option<bool>,
    ) -> anyhow::Result<Self> {
        let store = oxifhir_store::open(config).await?;
        let server = FhirServer::new(store.clone(), ServerConfig::default());
        oxifhir_server::operations::scheduling::index_slot_ends(&server)
            .await
            .map_err(|e| anyhow::anyhow!("indexing Slot end times: {}", e.message()))?;
        store
            .begin_bulk_load(BulkLoad {
                input_bytes,
                defer_indexes,
            })
            .await?;
        Ok(DirectImport {
            store,
            server,
            assume_new: true,
            timings: Default::default(),
        })
    }

    /// Ends the bulk load (rebuilding deferred indexes).
    pub async fn finish(&self) -> anyhow::Result<()> {
        let [read, write, commit] = *self.timings.lock().unwrap_or_else(|e| e.into_inner());
        tracing::debug!(
            read_s = read,
            write_s = write,
            commit_s = commit,
            "direct import: time spent reading current versions, writing and committing"
        );
        Ok(self.store.end_bulk_load().await?)
    }

    /// Imports one prepared batch.
    pub async fn import(
        &mut self,
        batch: PreparedBatch,
        existing: Existing,
    ) -> anyhow::Result<(Summary, Vec<BadLine>)> {
        if let Some(bundle) = &batch.batch.bundle {
            let mut request = FhirRequest::new(Method::Post, "");
            request.headers.content_type = Some("application/fhir+json".into());
            request.headers.prefer = Some("return=minimal".into());
            request.body = bundle.clone();
            let response = self.server.dispatch(request).await;
            return Ok(super::remote::bundle_outcome(
                response.status,
                &response.body,
            ));
        }
        let PreparedBatch {
            batch,
            now,
            mut prepared,
            mut bad,
        } = batch;
        let mut failures = 0;
        let mut first = true;
        loop {
            if !first {
                prepared = prepare_items(&batch.items, now, 1).0;
            }
            first = false;
            let assumed_new = self.assume_new;
            match self.write(&mut prepared, now, existing, !assumed_new).await {
                Ok((summary, more_bad)) => {
                    bad.extend(more_bad);
                    bad.sort_by_key(|b| b.line);
                    let summary = Summary {
                        bad: bad.len() as u64,
                        ..summary
                    };
                    return Ok((summary, bad));
                }
                // The batch met a resource that exists: it is written again, reading first,
                // and so is every later batch.
                Err(StoreError::VersionConflict { .. }) if assumed_new => self.assume_new = false,
                Err(e)
                    if failures < 4
                        && (e.is_retryable()
                            || matches!(e, StoreError::VersionConflict { .. })) =>
                {
                    failures += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20 * failures)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Writes the batch in one transaction, reading the current versions of its resources
    /// first when `read_current` (otherwise it fails with a conflict if one exists). Bodies
    /// and indexes are moved out of `prepared`: after a failure it must be prepared again.
    async fn write(
        &self,
        prepared: &mut [Prepared],
        now: Instant,
        existing: Existing,
        read_current: bool,
    ) -> Result<(Summary, Vec<BadLine>), StoreError> {
        let mut tx = self.store.begin(Isolation::VersionChecked).await?;
        let started = std::time::Instant::now();
        let mut latest: HashMap<ResourceKey, Latest> = HashMap::new();
        if read_current {
            let keys: Vec<ResourceKey> = prepared
                .iter()
                .map(|p| (p.resource_type.clone(), p.id.clone()))
                .collect();
            let current = tx.read_many(&keys).await?;
            for (key, version) in keys.into_iter().zip(current) {
                if let Some(v) = version {
                    let body = (!v.is_deleted()).then_some(v.body);
                    latest
                        .entry(key)
                        .or_insert(Latest::Stored(v.version_id, v.last_updated, body));
                }
            }
        }
        let read = started.elapsed().as_secs_f64();
        let mut writes: Vec<VersionWrite> = Vec::with_capacity(prepared.len());
        let mut summary = Summary::default();
        let mut bad = Vec::new();
        for p in prepared.iter_mut() {
            let key = (p.resource_type.clone(), p.id.clone());
            let previous = latest.get(&key).cloned();
            let live_body = match &previous {
                Some(Latest::Stored(_, _, body)) => body.as_deref(),
                Some(Latest::Written(_, _, i)) => Some(writes[*i].body.as_slice()),
                None => None,
            };
            if let Some(body) = live_body {
                let same = same_content(body, &p.body);
                match existing {
                    _ if same && existing != Existing::Reject => {
                        summary.unchanged += 1;
                        continue;
                    }
                    Existing::Upsert => {}
                    Existing::Reject | Existing::RejectChanged => {
                        bad.push(BadLine {
                            line: p.line,
                            message: format!(
                                "{}/{} already exists (use --upsert to replace it)",
                                p.resource_type, p.id
                            ),
                        });
                        continue;
                    }
                }
            }
            let write = match previous.map(|l| l.version()) {
                None => VersionWrite {
                    resource_type: p.resource_type.clone(),
                    id: p.id.clone(),
                    version_id: 1,
                    last_updated: now,
                    method: p.method,
                    body: std::mem::take(&mut p.body),
                    previous_version: None,
                    index: std::mem::take(&mut p.index),
                },
                Some((version, at)) => {
                    // As the API: the next version, never older than the one it replaces.
                    let at = now.max(at);
                    let mut resource = json::parse(&p.body).map_err(|e| {
                        StoreError::Backend(format!("re-reading a prepared resource: {e}"))
                    })?;
                    let (body, index) =
                        restamp(&p.resource_type, &p.id, &mut resource, version + 1, at);
                    VersionWrite {
                        resource_type: p.resource_type.clone(),
                        id: p.id.clone(),
                        version_id: version + 1,
                        last_updated: at,
                        method: WriteMethod::Update,
                        body,
                        previous_version: Some(version),
                        index,
                    }
                }
            };
            latest.insert(
                key,
                Latest::Written(write.version_id, write.last_updated, writes.len()),
            );
            writes.push(write);
        }
        summary.written = writes.len() as u64;
        let started = std::time::Instant::now();
        tx.write_many(writes).await?;
        let write = started.elapsed().as_secs_f64();
        let started = std::time::Instant::now();
        tx.commit().await?;
        let commit = started.elapsed().as_secs_f64();
        let mut timings = self.timings.lock().unwrap_or_else(|e| e.into_inner());
        timings[0] += read;
        timings[1] += write;
        timings[2] += commit;
        Ok((summary, bad))
    }
}

/// True when `stored` (with its `meta.versionId`/`lastUpdated`) holds the same resource as
/// `new` (stamped likewise).
fn same_content(stored: &[u8], new: &[u8]) -> bool {
    let (Ok(Value::Object(mut old)), Ok(Value::Object(mut new))) =
        (json::parse(stored), json::parse(new))
    else {
        return false;
    };
    let strip = |m: &mut serde_json::Map<String, Value>| {
        if let Some(Value::Object(meta)) = m.get_mut("meta") {
            meta.shift_remove("versionId");
            meta.shift_remove("lastUpdated");
            if meta.is_empty() {
                m.shift_remove("meta");
            }
        }
    };
    strip(&mut old);
    strip(&mut new);
    old == new
}
