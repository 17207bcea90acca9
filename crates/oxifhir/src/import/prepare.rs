//! Turning NDJSON lines into versions ready to store, on a pool of threads: parse, validate,
//! set `id` and `meta` as for a first version, serialize, and extract the search index — the
//! same steps, in the same order, as a `PUT` (or a `POST` without id) through the API, so an
//! imported resource is stored byte for byte as the API would have stored it.

use oxifhir_model::{Instant, json};
use oxifhir_server::repository::{index_entries, resource_from_value};
use oxifhir_store::{IndexEntries, WriteMethod};
use serde_json::Value;

use super::BadLine;
use super::source::{Batch, Item};

/// A resource ready to be written as version 1 (the writer re-stamps it when the id turns
/// out to exist already).
pub struct Prepared {
    pub line: u64,
    pub resource_type: String,
    pub id: String,
    /// `Update` for a resource with its own id (as a `PUT`), `Create` for one given an id here
    /// (as a `POST`).
    pub method: WriteMethod,
    /// The resource with `id` and `meta` set for version 1 at the batch's time, serialized.
    /// (The parsed resource is dropped here, on a preparing thread: freeing it took the
    /// writer a tenth of its time.)
    pub body: Vec<u8>,
    /// The search index of the resource.
    pub index: IndexEntries,
}

/// A batch read from a file, with its resources prepared.
pub struct PreparedBatch {
    pub batch: Batch,
    /// The time every version of this batch is stamped with (unless a stored version is
    /// newer).
    pub now: Instant,
    pub prepared: Vec<Prepared>,
    /// Lines that failed to parse or validate.
    pub bad: Vec<BadLine>,
}

impl PreparedBatch {
    /// A batch left unprepared (for import through a server).
    pub fn raw(batch: Batch) -> Self {
        PreparedBatch {
            batch,
            now: Instant::now(),
            prepared: Vec::new(),
            bad: Vec::new(),
        }
    }
}

/// Prepares the items of `batch` on `threads` threads.
pub fn prepare_batch(batch: Batch, threads: usize) -> PreparedBatch {
    let now = Instant::now();
    let (prepared, bad) = prepare_items(&batch.items, now, threads);
    PreparedBatch {
        batch,
        now,
        prepared,
        bad,
    }
}

/// Prepares `items` as versions at `now` on `threads` threads, keeping their order.
pub fn prepare_items(
    items: &[Item],
    now: Instant,
    threads: usize,
) -> (Vec<Prepared>, Vec<BadLine>) {
    let chunk = items.len().div_ceil(threads.max(1)).max(1);
    let results: Vec<Vec<Result<Prepared, BadLine>>> = if threads <= 1 {
        vec![items.iter().map(|i| prepare(i, now)).collect()]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = items
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(|i| prepare(i, now)).collect()))
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
        })
    };
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

/// Parses and validates one line and prepares it as version 1 at `now`.
fn prepare(item: &Item, now: Instant) -> Result<Prepared, BadLine> {
    let bad = |message: String| BadLine {
        line: item.line,
        message,
    };
    let value = json::parse(&item.raw).map_err(|e| bad(format!("malformed JSON: {e}")))?;
    let mut resource = resource_from_value(value, None).map_err(|e| {
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
    let (id, method) = match resource.get("id").and_then(Value::as_str) {
        Some(id) => (id.to_string(), WriteMethod::Update),
        None => (oxifhir_model::id::new_id(), WriteMethod::Create),
    };
    json::stamp(&mut resource, &id, 1, now);
    let resource = Value::Object(resource);
    let body = json::to_bytes(&resource);
    let index = index_entries(&resource_type, &resource);
    Ok(Prepared {
        line: item.line,
        resource_type,
        id,
        method,
        body,
        index,
    })
}

/// Stamps `resource` (an object) as `version_id` at `at` and returns its new bytes and index.
pub fn restamp(
    resource_type: &str,
    id: &str,
    resource: &mut Value,
    version_id: i64,
    at: Instant,
) -> (Vec<u8>, IndexEntries) {
    if let Value::Object(map) = resource {
        json::stamp(map, id, version_id, at);
    }
    (
        json::to_bytes(resource),
        index_entries(resource_type, resource),
    )
}
