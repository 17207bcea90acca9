//! Import straight into a database: resources are parsed, validated and indexed on every core,
//! then written a batch per transaction.

use std::collections::HashMap;
use std::sync::Arc;

use oxifhir_model::{Instant, json};
use oxifhir_server::repository::{index_entries, resource_from_value};
use oxifhir_server::{FhirRequest, FhirServer, Method, ServerConfig};
use oxifhir_store::{
    IndexEntries, Isolation, Store, StoreConfig, StoreError, VersionWrite, WriteMethod,
};
use serde_json::{Map, Value};

use super::source::{Batch, Item};
use super::{BadLine, Summary};

/// A database being imported into.
pub struct DirectImport {
    store: Arc<dyn Store>,
    server: FhirServer,
}

/// `(resource type, id)`.
type ResourceKey = (String, String);

/// A resource ready to be written.
#[derive(Clone)]
struct Prepared {
    line: u64,
    resource_type: String,
    id: String,
    resource: Map<String, Value>,
    index: IndexEntries,
}

impl DirectImport {
    /// Opens (and migrates) the database.
    pub async fn open(config: &StoreConfig) -> anyhow::Result<Self> {
        let store = oxifhir_store::open(config).await?;
        let server = FhirServer::new(store.clone(), ServerConfig::default());
        Ok(DirectImport { store, server })
    }

    /// Imports one batch.
    pub async fn import(
        &mut self,
        batch: &Batch,
        upsert: bool,
    ) -> anyhow::Result<(Summary, Vec<BadLine>)> {
        if let Some(bundle) = &batch.bundle {
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
        let (prepared, mut bad) = prepare_all(&batch.items);
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.write(&prepared, upsert).await {
                Ok((summary, more_bad)) => {
                    bad.extend(more_bad);
                    let summary = Summary {
                        bad: bad.len() as u64,
                        ..summary
                    };
                    return Ok((summary, bad));
                }
                Err(e)
                    if attempt < 5
                        && (e.is_retryable()
                            || matches!(e, StoreError::VersionConflict { .. })) =>
                {
                    tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn write(
        &self,
        prepared: &[Prepared],
        upsert: bool,
    ) -> Result<(Summary, Vec<BadLine>), StoreError> {
        let mut tx = self.store.begin(Isolation::VersionChecked).await?;
        let keys: Vec<(String, String)> = prepared
            .iter()
            .map(|p| (p.resource_type.clone(), p.id.clone()))
            .collect();
        let current = tx.read_many(&keys).await?;
        // Per resource: its latest version in this batch or the store, and its body if live.
        let mut latest: HashMap<ResourceKey, (i64, Option<Vec<u8>>)> = HashMap::new();
        for (key, version) in keys.iter().zip(current) {
            if let Some(v) = version {
                let body = (!v.is_deleted()).then_some(v.body);
                latest.entry(key.clone()).or_insert((v.version_id, body));
            }
        }
        let now = Instant::now();
        let mut writes = Vec::with_capacity(prepared.len());
        let mut summary = Summary::default();
        let mut bad = Vec::new();
        for p in prepared {
            let key = (p.resource_type.clone(), p.id.clone());
            let previous = latest.get(&key).cloned();
            if let Some((_, Some(body))) = &previous {
                if !upsert {
                    bad.push(BadLine {
                        line: p.line,
                        message: format!(
                            "{}/{} already exists (use --upsert to replace it)",
                            p.resource_type, p.id
                        ),
                    });
                    continue;
                }
                if same_content(body, &p.resource) {
                    summary.unchanged += 1;
                    continue;
                }
            }
            let version_id = previous.as_ref().map_or(1, |(v, _)| v + 1);
            let mut resource = p.resource.clone();
            json::stamp(&mut resource, &p.id, version_id, now);
            let body = json::to_bytes(&Value::Object(resource));
            latest.insert(key, (version_id, Some(body.clone())));
            writes.push(VersionWrite {
                resource_type: p.resource_type.clone(),
                id: p.id.clone(),
                version_id,
                last_updated: now,
                method: if previous.is_some() {
                    WriteMethod::Update
                } else {
                    WriteMethod::Create
                },
                body,
                previous_version: previous.map(|(v, _)| v),
                index: p.index.clone(),
            });
        }
        summary.written = writes.len() as u64;
        tx.write_many(writes).await?;
        tx.commit().await?;
        Ok((summary, bad))
    }
}

/// True when `stored` (with its `meta.versionId`/`lastUpdated`) holds the same resource.
fn same_content(stored: &[u8], new: &Map<String, Value>) -> bool {
    let Ok(Value::Object(mut old)) = json::parse(stored) else {
        return false;
    };
    let strip = |m: &mut Map<String, Value>| {
        if let Some(Value::Object(meta)) = m.get_mut("meta") {
            meta.shift_remove("versionId");
            meta.shift_remove("lastUpdated");
            if meta.is_empty() {
                m.shift_remove("meta");
            }
        }
    };
    let mut new = new.clone();
    strip(&mut old);
    strip(&mut new);
    old == new
}

/// Parses, validates and indexes `items` on all cores, keeping their order.
fn prepare_all(items: &[Item]) -> (Vec<Prepared>, Vec<BadLine>) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = items.len().div_ceil(threads).max(1);
    let results: Vec<Vec<Result<Prepared, BadLine>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(prepare).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    vec![Err(BadLine {
                        line: 0,
                        message: "a worker thread panicked".into(),
                    })]
                })
            })
            .collect()
    });
    let mut prepared = Vec::with_capacity(items.len());
    let mut bad = Vec::new();
    for r in results.into_iter().flatten() {
        match r {
            Ok(p) => prepared.push(p),
            Err(b) => bad.push(b),
        }
    }
    (prepared, bad)
}

fn prepare(item: &Item) -> Result<Prepared, BadLine> {
    let bad = |message: String| BadLine {
        line: item.line,
        message,
    };
    let value = json::parse(&item.raw).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    let resource = resource_from_value(value, None).map_err(|e| {
        let details: Vec<String> = e
            .outcome
            .issues
            .iter()
            .map(|i| match i.expression.first() {
                Some(at) => format!("{at}: {}", i.text.as_deref().unwrap_or("")),
                None => i.text.clone().unwrap_or_default(),
            })
            .collect();
        bad(details.join("; "))
    })?;
    let resource_type = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let id = match resource.get("id").and_then(Value::as_str) {
        Some(id) => id.to_string(),
        None => oxifhir_model::id::new_id(),
    };
    let value = Value::Object(resource);
    let index = index_entries(&resource_type, &value);
    let Value::Object(resource) = value else {
        return Err(bad("not an object".into()));
    };
    Ok(Prepared {
        line: item.line,
        resource_type,
        id,
        resource,
        index,
    })
}
