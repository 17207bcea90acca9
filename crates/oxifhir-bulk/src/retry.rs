//! When and how long to wait before trying again: `Retry-After` (seconds or an HTTP date),
//! exponential backoff when the server advises nothing, and which failures are transient.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;

/// The longest wait the client accepts from `Retry-After`.
pub const MAX_ADVISED_WAIT: Duration = Duration::from_secs(3600);

/// How often a failing request is tried again and how long the client waits in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (0: fail at the first transient error).
    pub retries: u32,
    /// The wait after the first failure when the server advises none; it doubles each time.
    pub first_delay: Duration,
    /// The longest wait of the backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 5,
            first_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait after the `n`th consecutive failure (1-based) when no wait is advised.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Consecutive failures of one step, against a [`RetryPolicy`].
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    failures: u32,
}

impl Backoff {
    /// No failures yet.
    pub fn new(policy: RetryPolicy) -> Self {
        Backoff {
            policy,
            failures: 0,
        }
    }

    /// Records a failure: the wait before the next attempt (`advised` when the server gave
    /// one), or `None` when the retries are used up.
    pub fn failed(&mut self, advised: Option<Duration>) -> Option<Duration> {
        self.failures += 1;
        (self.failures <= self.policy.retries)
            .then(|| advised.unwrap_or_else(|| self.policy.backoff(self.failures)))
    }

    /// Records progress: the next failure starts the count again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// The wait a `Retry-After` header advises (delay-seconds or an HTTP date, RFC 9110 §10.2.3),
/// at most [`MAX_ADVISED_WAIT`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, SystemTime::now())
}

fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(now).unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_ADVISED_WAIT))
}

/// True when an error response is worth another try: `408`, `429`, the gateway errors `502`,
/// `503` and `504`, and any other `5xx` that advises `Retry-After` or whose OperationOutcome
/// says `transient` (the Bulk Data IG's sign that the export itself has not failed).
pub fn is_transient(status: u16, headers: &HeaderMap, body: &[u8]) -> bool {
    match status {
        408 | 429 | 502 | 503 | 504 => true,
        500..=599 => headers.contains_key(reqwest::header::RETRY_AFTER) || says_transient(body),
        _ => false,
    }
}

fn says_transient(body: &[u8]) -> bool {
    let Ok(outcome) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    let codes: Vec<&str> = outcome
        .get("issue")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|issue| issue.get("code").and_then(serde_json::Value::as_str))
        .collect();
    !codes.is_empty()
        && codes
            .iter()
            .all(|code| matches!(*code, "transient" | "lock-error" | "timeout" | "throttled"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_values() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let later = httpdate::fmt_http_date(now + Duration::from_secs(90));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(90));
        for (value, wait) in [
            ("3", Some(Duration::from_secs(3))),
            (" 0 ", Some(Duration::ZERO)),
            ("999999", Some(MAX_ADVISED_WAIT)),
            (later.as_str(), Some(Duration::from_secs(90))),
            (earlier.as_str(), Some(Duration::ZERO)),
            ("-1", None),
            ("soon", None),
        ] {
            assert_eq!(parse_retry_after(value, now), wait, "{value}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_runs_out() {
        let policy = RetryPolicy {
            retries: 3,
            first_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(3),
        };
        let mut backoff = Backoff::new(policy);
        assert_eq!(backoff.failed(None), Some(Duration::from_secs(1)));
        assert_eq!(backoff.failed(None), Some(Duration::from_secs(2)));
        assert_eq!(
            backoff.failed(Some(Duration::from_secs(7))),
            Some(Duration::from_secs(7))
        );
        assert_eq!(backoff.failed(None), None);
        backoff.reset();
        assert_eq!(backoff.failed(None), Some(Duration::from_secs(1)));
        assert_eq!(policy.backoff(40), Duration::from_secs(3));
    }

    #[test]
    fn transient_failures() {
        let none = HeaderMap::new();
        let mut advised = HeaderMap::new();
        advised.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        let transient =
            br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"transient"}]}"#;
        let failed =
            br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"exception"}]}"#;
        assert!(is_transient(429, &none, b""));
        assert!(is_transient(503, &none, b""));
        assert!(is_transient(500, &advised, failed));
        assert!(is_transient(500, &none, transient));
        assert!(!is_transient(500, &none, failed));
        assert!(!is_transient(500, &none, b"oops"));
        assert!(!is_transient(404, &advised, transient));
        assert!(!is_transient(400, &none, b""));
    }
}
