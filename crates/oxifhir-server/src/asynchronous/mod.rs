//! The asynchronous interaction pattern (DESIGN.md §3): any request sent with
//! `Prefer: respond-async` is checked at once, stored as a job and answered `202`; the job
//! runs the *same* [`FhirServer::dispatch`](crate::FhirServer::dispatch) on a worker and stores
//! the response, which the status and result endpoints hand back.
//!
//! - [`kickoff`]: the checks made before accepting, the job row, the `202`.
//! - [`status`]: `{base}/_async/{id}` (poll, `DELETE`), its `/result`, and the
//!   `$export-poll-status` alias.
//! - [`async_job`]: the `AsyncJob` resource view of a job (read, search by status).
//! - [`interaction_job`]: the job kind that replays a stored request through `dispatch`.
//! - [`progress`]: a job's progress text (`X-Progress`) and the counts read from it.
//! - [`rate`]: per-client rate limits of kick-offs and polls (token buckets, `429`).

pub mod async_job;
pub mod interaction_job;
pub mod kickoff;
pub mod progress;
pub mod rate;
pub mod status;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant as Clock};

/// Settings of the asynchronous pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct AsyncConfig {
    /// How long a result stays available after the job ends (sent as `Expires`).
    pub retention: Duration,
    /// A poll sooner than this fraction of the advised `Retry-After` after the previous poll
    /// of the same job is answered `429`.
    pub poll_too_fast_ratio: f64,
    /// Queued and running jobs one client may have at once; more kick-offs get `429`.
    pub max_active_per_client: i64,
    /// Kick-offs one client may make (`None`: no limit); more get `429` with `Retry-After`.
    pub kickoff_rate: Option<rate::Rate>,
    /// Status polls one client may make, over all its jobs (`None`: no limit).
    pub poll_rate: Option<rate::Rate>,
}

impl Default for AsyncConfig {
    fn default() -> Self {
        AsyncConfig {
            retention: Duration::from_secs(24 * 3600),
            poll_too_fast_ratio: 0.5,
            max_active_per_client: 16,
            kickoff_rate: Some(rate::Rate {
                count: 60,
                period: Duration::from_secs(60),
            }),
            poll_rate: Some(rate::Rate {
                count: 600,
                period: Duration::from_secs(60),
            }),
        }
    }
}

/// The job kind of generic interactions ([`interaction_job::InteractionJob`]).
pub const INTERACTION_KIND: &str = "interaction";

/// When each job was last polled on this node and what `Retry-After` it was told, to answer
/// polls that come far too fast with `429`.
#[derive(Debug, Default)]
pub struct PollTracker {
    polls: Mutex<HashMap<String, (Clock, Duration)>>,
}

/// Most jobs the tracker remembers; beyond it the oldest marks are dropped.
const TRACKED_POLLS: usize = 10_000;

impl PollTracker {
    /// Records a poll of `job_id` answered with `retry_after`. `Err(wait)` when the previous
    /// poll advised waiting and this one came sooner than `ratio` of that wait; the client is
    /// told to wait `wait`.
    pub fn poll(&self, job_id: &str, retry_after: Duration, ratio: f64) -> Result<(), Duration> {
        let now = Clock::now();
        let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((last, advised)) = polls.get(job_id) {
            let elapsed = now.duration_since(*last);
            if elapsed < advised.mul_f64(ratio) {
                return Err(advised.saturating_sub(elapsed));
            }
        }
        if polls.len() >= TRACKED_POLLS {
            let cutoff = now.checked_sub(Duration::from_secs(600)).unwrap_or(now);
            polls.retain(|_, (last, _)| *last > cutoff);
            if polls.len() >= TRACKED_POLLS {
                polls.clear();
            }
        }
        polls.insert(job_id.to_owned(), (now, retry_after));
        Ok(())
    }

    /// Forgets a job (it finished or was deleted).
    pub fn forget(&self, job_id: &str) {
        self.polls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(job_id);
    }
}

/// The `Retry-After` advised for a job that has been waiting or running for `age`: one second
/// while it is young, longer for long jobs.
pub fn retry_after(age: Duration) -> Duration {
    let secs = match age.as_secs() {
        0..10 => 1,
        10..60 => 2,
        60..300 => 5,
        _ => 10,
    };
    Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_too_soon_are_refused() {
        let tracker = PollTracker::default();
        assert!(tracker.poll("a", Duration::from_secs(1), 0.5).is_ok());
        let wait = tracker.poll("a", Duration::from_secs(1), 0.5).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::from_millis(500));
        assert!(tracker.poll("b", Duration::from_secs(1), 0.5).is_ok());
        tracker.forget("a");
        assert!(tracker.poll("a", Duration::from_secs(1), 0.5).is_ok());
        // A client that waits as told is never refused.
        let tracker = PollTracker::default();
        assert!(tracker.poll("c", Duration::from_millis(20), 0.5).is_ok());
        std::thread::sleep(Duration::from_millis(20));
        assert!(tracker.poll("c", Duration::from_millis(20), 0.5).is_ok());
    }

    #[test]
    fn retry_after_grows() {
        assert_eq!(retry_after(Duration::ZERO), Duration::from_secs(1));
        assert_eq!(retry_after(Duration::from_secs(30)), Duration::from_secs(2));
        assert_eq!(
            retry_after(Duration::from_secs(3600)),
            Duration::from_secs(10)
        );
    }
}
