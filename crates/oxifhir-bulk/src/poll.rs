//! Polling the status URL until the manifest arrives: `202` means wait (`Retry-After` when the
//! server advises it, else 1 s doubling up to a minute) and `X-Progress` is passed on; `200`
//! carries the manifest; `429` and transient errors are retried by the session; any other
//! error means the export failed.

use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Url};

use crate::Error;
use crate::manifest::Manifest;
use crate::retry::retry_after;
use crate::session::{Answer, Outgoing, Session, failure};

/// The longest wait between polls when the server advises none.
const MAX_POLL_WAIT: Duration = Duration::from_secs(60);

/// The wait before poll `n + 1` (0-based) when the server advised none.
fn default_wait(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.min(6)).min(MAX_POLL_WAIT)
}

/// Polls `status_url` until the export completes; returns its manifest and the manifest's
/// bytes as received.
pub(crate) async fn until_complete(
    session: &Session,
    status_url: &Url,
) -> Result<(Manifest, Bytes), Error> {
    let context = format!("polling {status_url}");
    let mut headers = HeaderMap::new();
    headers.insert("accept", HeaderValue::from_static("application/json"));
    let request = Outgoing {
        method: Method::GET,
        url: status_url,
        headers,
        body: None,
        authorize: true,
        context: &context,
    };
    let mut polls = 0;
    loop {
        let response = match session.send(&request).await? {
            Answer::Success(response) => response,
            Answer::Failure {
                status: status @ (404 | 410),
                body,
                ..
            } => {
                let error = failure(&context, status, &body);
                return Err(Error::Protocol(format!(
                    "{error} (the export is gone: it expired, was deleted or never existed)"
                )));
            }
            Answer::Failure { status, body, .. } => {
                let error = failure(&context, status, &body);
                return Err(Error::Protocol(format!("the export failed: {error}")));
            }
        };
        match response.status().as_u16() {
            202 => {
                let progress = response
                    .headers()
                    .get("x-progress")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let wait = retry_after(response.headers()).unwrap_or_else(|| default_wait(polls));
                polls += 1;
                session.observer.waiting(progress.as_deref(), wait);
                tokio::time::sleep(wait).await;
            }
            200 => {
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|e| Error::http(context.as_str(), e))?;
                return Ok((Manifest::parse(&bytes)?, bytes));
            }
            status => {
                return Err(Error::Protocol(format!(
                    "{context}: the server answered {status} (expected 202 or 200)"
                )));
            }
        }
    }
}

/// How far along an `X-Progress` text says the export is, from 0 to 1, when it says so in a
/// form a person would write: `42%`, `42.5 %` or `420 of 1000`.
pub fn progress_fraction(text: &str) -> Option<f64> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .filter(|w| !w.is_empty())
        .collect();
    for (i, word) in words.iter().enumerate() {
        let percent = match word.strip_suffix('%') {
            Some(number) if !number.is_empty() => number.parse::<f64>().ok(),
            Some(_) => None,
            None if words.get(i + 1) == Some(&"%") => word.parse::<f64>().ok(),
            None => None,
        };
        if let Some(p) = percent.filter(|p| (0.0..=100.0).contains(p)) {
            return Some(p / 100.0);
        }
    }
    words.windows(3).find_map(|w| {
        let (done, total) = (w[0].parse::<u64>().ok()?, w[2].parse::<u64>().ok()?);
        (w[1] == "of" && total > 0 && done <= total).then(|| done as f64 / total as f64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_texts() {
        for (text, fraction) in [
            ("Exported 250 of 1000 resources", Some(0.25)),
            ("42% done", Some(0.42)),
            ("in progress (50 %)", Some(0.5)),
            ("Exported 12 resources", None),
            ("1200 of 1000", None),
            ("0 of 0", None),
            ("", None),
        ] {
            assert_eq!(progress_fraction(text), fraction, "{text}");
        }
    }

    #[test]
    fn unadvised_waits_double_up_to_a_minute() {
        let waits: Vec<u64> = (0..9).map(|n| default_wait(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
