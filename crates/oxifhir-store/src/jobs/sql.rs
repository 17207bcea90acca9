//! SQL shared by both backends, written with PostgreSQL placeholders (`$n`); the SQLite
//! backend rewrites them to `?n`.

/// The columns of a [`super::JobRecord`], in the order the row mappers read them.
pub(crate) const COLUMNS: &str = "id, kind, owner, state, input, request_url, request_time, \
    transaction_time, attempt, worker, lease_until, not_before, failures, progress, \
    checkpoint, result, error, started_at, finished_at, expires_at, released_at, updated_at";

pub(crate) fn insert() -> String {
    format!(
        "INSERT INTO jobs (id, kind, owner, state, input, request_url, request_time, \
         attempt, not_before, failures, updated_at) \
         VALUES ($1, $2, $3, 'queued', $4, $5, $6, 0, $6, 0, $6) RETURNING {COLUMNS}"
    )
}

pub(crate) fn select_one() -> String {
    format!("SELECT {COLUMNS} FROM jobs WHERE id = $1")
}

/// `$1` worker, `$2` lease end, `$3` now, `$4` kinds; `lock` is the row-locking clause
/// of the inner select (`FOR UPDATE SKIP LOCKED` on PostgreSQL).
pub(crate) fn claim(kinds_condition: &str, lock: &str) -> String {
    format!(
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, worker = $1, \
         lease_until = $2, started_at = COALESCE(started_at, $3), updated_at = $3 \
         WHERE id = (SELECT id FROM jobs WHERE {kinds_condition} AND released_at IS NULL \
         AND ((state = 'queued' AND not_before <= $3) \
         OR (state = 'running' AND lease_until < $3)) \
         ORDER BY not_before, request_time, id LIMIT 1 {lock}) \
         RETURNING {COLUMNS}"
    )
}

/// The condition that `attempt` `$2` of job `$1` still holds it.
const HELD: &str = "id = $1 AND attempt = $2 AND state = 'running' AND released_at IS NULL";

pub(crate) fn heartbeat() -> String {
    format!(
        "UPDATE jobs SET lease_until = $3, progress = COALESCE($4, progress), \
         updated_at = $5 WHERE {HELD}"
    )
}

pub(crate) fn checkpoint() -> String {
    format!(
        "UPDATE jobs SET checkpoint = $3, progress = COALESCE($4, progress), \
         transaction_time = COALESCE(transaction_time, $5), updated_at = $6 WHERE {HELD}"
    )
}

pub(crate) fn finish() -> String {
    format!(
        "UPDATE jobs SET state = $3, result = $4, error = $5, \
         progress = COALESCE($6, progress), finished_at = $7, updated_at = $7, \
         expires_at = $8, lease_until = NULL WHERE {HELD}"
    )
}

pub(crate) fn requeue() -> String {
    format!(
        "UPDATE jobs SET state = 'queued', not_before = $3, \
         failures = failures + $4, error = COALESCE($5, error), lease_until = NULL, \
         updated_at = $6 WHERE {HELD}"
    )
}

pub(crate) fn cancel() -> String {
    format!(
        "UPDATE jobs SET state = 'cancelled', finished_at = $2, updated_at = $2, \
         expires_at = $3, lease_until = NULL \
         WHERE id = $1 AND state IN ('queued', 'running') AND released_at IS NULL \
         RETURNING {COLUMNS}"
    )
}

pub(crate) fn release() -> String {
    format!(
        "UPDATE jobs SET released_at = $2, updated_at = $2, expires_at = $3, \
         result = NULL, lease_until = NULL, finished_at = COALESCE(finished_at, $2), \
         state = CASE WHEN state IN ('queued', 'running') THEN 'cancelled' ELSE state END \
         WHERE id = $1 AND released_at IS NULL RETURNING {COLUMNS}"
    )
}

pub(crate) fn expired() -> String {
    format!(
        "SELECT {COLUMNS} FROM jobs WHERE expires_at IS NOT NULL AND expires_at < $1 \
         ORDER BY expires_at LIMIT $2"
    )
}

pub(crate) const PURGE: &str = "DELETE FROM jobs WHERE id = $1";

pub(crate) fn active_count(owner_condition: &str) -> String {
    format!(
        "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'running') \
         AND released_at IS NULL AND {owner_condition}"
    )
}

/// Jobs not released, counted by kind and state.
pub(crate) const COUNTS: &str = "SELECT kind, state, COUNT(*) FROM jobs \
    WHERE released_at IS NULL GROUP BY kind, state ORDER BY kind, state";

/// A listing, oldest request first unless `newest_first`; the caller appends its conditions
/// (`AND …`) in `conditions`.
pub(crate) fn list(conditions: &str, newest_first: bool) -> String {
    let order = if newest_first {
        "request_time DESC, id DESC"
    } else {
        "request_time, id"
    };
    format!("SELECT {COLUMNS} FROM jobs WHERE 1 = 1 {conditions} ORDER BY {order} LIMIT $1")
}
