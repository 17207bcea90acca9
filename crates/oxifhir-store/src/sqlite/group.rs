//! Group commit for single-version writes ([`crate::Store::write_alone`]): writes that arrive
//! while the writer connection is busy queue up, and whoever finds the queue idle starts a
//! flush that commits everything queued in one SQLite transaction — one `SAVEPOINT` per write,
//! so a failing write is rolled back alone. Every caller is answered only after the `COMMIT`
//! that made its write durable.

use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::{Mutex, oneshot};

use super::{map_err, write};
use crate::{StoreError, StoreResult, VersionWrite};

type Pending = (VersionWrite, oneshot::Sender<StoreResult<()>>);

/// The queue of writes waiting for the next group.
#[derive(Default)]
pub(super) struct GroupCommit {
    queue: std::sync::Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    pending: Vec<Pending>,
    /// A flush is running and will pick up whatever is queued.
    flushing: bool,
}

/// Most writes committed by one transaction.
const MAX_GROUP: usize = 256;

/// Queues `write` and waits until a group containing it has committed.
pub(super) async fn write_alone(
    group: &Arc<GroupCommit>,
    writer: &Arc<Mutex<Connection>>,
    write: VersionWrite,
) -> StoreResult<()> {
    let (tx, rx) = oneshot::channel();
    let start_flush = {
        let mut queue = group.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.pending.push((write, tx));
        !std::mem::replace(&mut queue.flushing, true)
    };
    if start_flush {
        // Detached, so that a caller that goes away cannot strand the queue.
        let (group, writer) = (group.clone(), writer.clone());
        tokio::spawn(async move { flush(group, writer).await });
    }
    rx.await
        .map_err(|_| StoreError::Backend("the group commit ended without an answer".into()))?
}

/// Commits groups until the queue is empty.
async fn flush(group: Arc<GroupCommit>, writer: Arc<Mutex<Connection>>) {
    let conn = writer.lock_owned().await;
    let group_for_task = group.clone();
    let finished = tokio::task::spawn_blocking(move || {
        let mut conn = conn;
        loop {
            let batch: Vec<Pending> = {
                let mut queue = group_for_task
                    .queue
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if queue.pending.is_empty() {
                    queue.flushing = false;
                    return;
                }
                let n = queue.pending.len().min(MAX_GROUP);
                queue.pending.drain(..n).collect()
            };
            commit_group(&mut conn, batch);
        }
    })
    .await;
    if finished.is_err() {
        // The blocking task panicked: fail what is queued and let the next writer flush.
        let mut queue = group.queue.lock().unwrap_or_else(|e| e.into_inner());
        for (_, tx) in queue.pending.drain(..) {
            let _ = tx.send(Err(StoreError::Backend("the SQLite writer failed".into())));
        }
        queue.flushing = false;
    }
}

/// Writes one group in one transaction and answers every caller.
fn commit_group(conn: &mut Connection, batch: Vec<Pending>) {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let e = map_err(e);
        for (_, tx) in batch {
            let _ = tx.send(Err(copy(&e)));
        }
        return;
    }
    let mut results = Vec::with_capacity(batch.len());
    for (w, tx) in batch {
        let result = conn
            .execute_batch("SAVEPOINT w")
            .map_err(map_err)
            .and_then(|()| write::write(conn, &w));
        let settle = if result.is_ok() {
            "RELEASE w"
        } else {
            "ROLLBACK TO w; RELEASE w"
        };
        let result = result.and(conn.execute_batch(settle).map_err(map_err));
        results.push((result, tx));
    }
    match conn.execute_batch("COMMIT").map_err(map_err) {
        Ok(()) => {
            for (result, tx) in results {
                let _ = tx.send(result);
            }
        }
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            for (_, tx) in results {
                let _ = tx.send(Err(copy(&e)));
            }
        }
    }
}

/// The same error for another caller (`StoreError` is not `Clone`).
fn copy(e: &StoreError) -> StoreError {
    match e {
        StoreError::Retryable(m) => StoreError::Retryable(m.clone()),
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        other => StoreError::Backend(other.to_string()),
    }
}
