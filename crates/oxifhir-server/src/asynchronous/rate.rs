//! Per-client rate limits of kick-offs and status polls: a token bucket per client and limit,
//! kept in memory on each node. A request that finds its client's bucket empty is answered
//! `429` with `Retry-After` (the time until a token is back) before it reaches the database.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant as Clock};

use oxifhir_model::outcome::IssueCode;

use crate::error::{ApiError, ErrorKind};

/// A rate: `count` requests per `period`, and bursts of up to `count` at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Requests allowed per period (also the bucket's capacity).
    pub count: u32,
    /// The period over which `count` requests are allowed.
    pub period: Duration,
}

impl Rate {
    /// Tokens regained per second.
    fn per_second(&self) -> f64 {
        f64::from(self.count) / self.period.as_secs_f64().max(1e-3)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.count, self.period.as_secs_f64())
    }
}

/// Parses `COUNT/PERIOD` (`60/1m`, `10/s`, `5/2s`; a bare unit means one of it) or `off`.
/// `Ok(None)` means no limit.
pub fn parse_rate(text: &str) -> Result<Option<Rate>, String> {
    let text = text.trim();
    if matches!(text, "off" | "none" | "0") {
        return Ok(None);
    }
    let (count, period) = text
        .split_once('/')
        .ok_or_else(|| format!("'{text}' is not COUNT/PERIOD (e.g. 60/1m) or off"))?;
    let count: u32 = count
        .trim()
        .parse()
        .map_err(|_| format!("'{count}' is not a whole number of requests"))?;
    let period = period.trim();
    let period = match period {
        "s" | "m" | "h" => format!("1{period}"),
        other => other.to_string(),
    };
    let period = parse_duration(&period)?;
    if count == 0 || period.is_zero() {
        return Ok(None);
    }
    Ok(Some(Rate { count, period }))
}

/// `500ms`, `2s`, `1m`, `1h`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("'{text}' is not a period such as 1s, 30s, 1m"))?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" | "" => number,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("unknown unit in '{text}' (ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("'{text}' is out of range"))
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_rate(text)?.ok_or_else(|| "a rate of zero".to_string())
    }
}

/// The limiters of one node: kick-offs and status polls, each per client.
#[derive(Debug, Default)]
pub struct ClientRates {
    /// Asynchronous kick-offs (`Prefer: respond-async`).
    pub kickoffs: RateLimiter,
    /// Polls of status URLs (`_async/{id}`, `$export-poll-status`).
    pub polls: RateLimiter,
}

/// `429` with `Retry-After` for a client over its rate of `what`.
pub fn too_many(what: &str, rate: Rate, wait: Duration) -> ApiError {
    let secs = retry_after_secs(wait);
    ApiError::with_code(
        ErrorKind::TooManyRequests,
        IssueCode::Throttled,
        format!(
            "Too many {what}: this client may make {} per {} s; try again in {secs} s",
            rate.count,
            rate.period.as_secs_f64()
        ),
    )
    .with_retry_after(secs)
}

/// The bucket key of the client a request acts for: its SMART client id, or while
/// authentication is off the address it came from (one shared key when that is unknown).
pub fn client_key(request: &crate::FhirRequest) -> String {
    match (&request.principal, request.client_address) {
        (Some(principal), _) => format!("client:{}", principal.client_id),
        (None, Some(address)) => format!("address:{address}"),
        (None, None) => String::new(),
    }
}

/// One token bucket per client, for one limit.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Clock,
}

/// Most clients remembered per limit; beyond it, buckets that are full again are dropped
/// (they hold no information), and if that is not enough, all of them.
const TRACKED_CLIENTS: usize = 10_000;

impl RateLimiter {
    /// Takes a token from `client`'s bucket under `rate` (`None`: unlimited). `Err(wait)` when
    /// the bucket is empty: the client may try again after `wait`.
    pub fn take(&self, client: &str, rate: Option<Rate>) -> Result<(), Duration> {
        self.take_at(client, rate, Clock::now())
    }

    fn take_at(&self, client: &str, rate: Option<Rate>, now: Clock) -> Result<(), Duration> {
        let Some(rate) = rate else {
            return Ok(());
        };
        let capacity = f64::from(rate.count);
        let per_second = rate.per_second();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= TRACKED_CLIENTS && !buckets.contains_key(client) {
            buckets.retain(|_, b| refilled(b, now, per_second, capacity) < capacity);
            if buckets.len() >= TRACKED_CLIENTS {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let tokens = refilled(bucket, now, per_second, capacity);
        if tokens >= 1.0 {
            *bucket = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *bucket = Bucket { tokens, at: now };
            Err(Duration::from_secs_f64((1.0 - tokens) / per_second))
        }
    }
}

/// The tokens in `bucket` at `now`.
fn refilled(bucket: &Bucket, now: Clock, per_second: f64, capacity: f64) -> f64 {
    let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
    (bucket.tokens + elapsed * per_second).min(capacity)
}

/// `Retry-After` seconds for a wait: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse() {
        let rate = |count, secs| {
            Some(Rate {
                count,
                period: Duration::from_secs(secs),
            })
        };
        assert_eq!(parse_rate("60/1m"), Ok(rate(60, 60)));
        assert_eq!(parse_rate("10/s"), Ok(rate(10, 1)));
        assert_eq!(parse_rate(" 5 / 2s "), Ok(rate(5, 2)));
        assert_eq!(parse_rate("100/h"), Ok(rate(100, 3600)));
        assert_eq!(
            parse_rate("3/500ms"),
            Ok(Some(Rate {
                count: 3,
                period: Duration::from_millis(500)
            }))
        );
        assert_eq!(parse_rate("off"), Ok(None));
        assert_eq!(parse_rate("0/1s"), Ok(None));
        for bad in ["", "10", "x/1s", "10/1y", "-1/1s", "10/", "1/1e999s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn buckets_allow_bursts_then_refill_per_client() {
        let limiter = RateLimiter::default();
        let rate = Some(Rate {
            count: 2,
            period: Duration::from_secs(10),
        });
        let t0 = Clock::now();
        assert!(limiter.take_at("a", rate, t0).is_ok());
        assert!(limiter.take_at("a", rate, t0).is_ok());
        let wait = limiter.take_at("a", rate, t0).unwrap_err();
        assert_eq!(retry_after_secs(wait), 5);
        // Another client has its own bucket.
        assert!(limiter.take_at("b", rate, t0).is_ok());
        // One token is back after 5 s, not two.
        let t5 = t0 + Duration::from_secs(5);
        assert!(limiter.take_at("a", rate, t5).is_ok());
        assert!(limiter.take_at("a", rate, t5).is_err());
        // Unlimited.
        for _ in 0..100 {
            assert!(limiter.take_at("a", None, t0).is_ok());
        }
    }
}
