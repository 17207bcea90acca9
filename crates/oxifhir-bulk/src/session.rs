//! What every request of an export shares: the HTTP client, the access token, the retry
//! policy and the observer told about retries. [`Session::send`] sends one request, retrying
//! transient failures and renewing a refused token.

use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, Url};

use crate::Error;
use crate::Observer;
use crate::auth::TokenSource;
use crate::error::response_detail;
use crate::retry::{Backoff, RetryPolicy, is_transient, retry_after};

/// The parts shared by the tasks of one export.
pub(crate) struct Session {
    pub http: reqwest::Client,
    pub auth: Option<TokenSource>,
    pub policy: RetryPolicy,
    pub observer: Arc<dyn Observer>,
}

/// A request to send (possibly several times).
pub(crate) struct Outgoing<'a> {
    pub method: Method,
    pub url: &'a Url,
    /// Extra headers.
    pub headers: HeaderMap,
    /// A body and its content type.
    pub body: Option<(&'static str, Bytes)>,
    /// Send the access token (when there is one).
    pub authorize: bool,
    /// What the request is for, in error messages ("polling …").
    pub context: &'a str,
}

/// A response that was not an error, or an error response the caller reads itself.
pub(crate) enum Answer {
    /// A 1xx–3xx response; its body is unread.
    Success(Response),
    /// A 4xx or 5xx response that is not transient (or whose retries ran out), body read.
    Failure { status: u16, body: Bytes },
}

impl Session {
    /// Sends `request`: connection errors and transient error statuses (see
    /// [`is_transient`]) are retried after `Retry-After` or a backoff, a `401` once with a
    /// new token.
    pub async fn send(&self, request: &Outgoing<'_>) -> Result<Answer, Error> {
        let mut backoff = Backoff::new(self.policy);
        let mut renewed = false;
        loop {
            let mut builder = self
                .http
                .request(request.method.clone(), request.url.clone())
                .headers(request.headers.clone());
            let mut token = None;
            if request.authorize
                && let Some(auth) = &self.auth
            {
                let value = auth.token(&self.http, self.policy).await?;
                builder = builder.bearer_auth(&value);
                token = Some(value);
            }
            if let Some((content_type, body)) = &request.body {
                builder = builder
                    .header("content-type", *content_type)
                    .body(body.clone());
            }
            let response = match builder.send().await {
                Ok(response) => response,
                Err(e) => {
                    let reason = format!("{}: {e}", request.context);
                    match backoff.failed(None) {
                        Some(wait) => {
                            self.wait(&reason, wait).await;
                            continue;
                        }
                        None => return Err(Error::http(request.context, e)),
                    }
                }
            };
            let status = response.status().as_u16();
            if status < 400 {
                return Ok(Answer::Success(response));
            }
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|e| Error::http(request.context, e))?;
            if status == 401
                && !renewed
                && let (Some(auth), Some(token)) = (&self.auth, &token)
            {
                renewed = true;
                auth.refused(token).await;
                continue;
            }
            if is_transient(status, &headers, &body)
                && let Some(wait) = backoff.failed(retry_after(&headers))
            {
                let reason = format!("{}: the server answered {status}", request.context);
                self.wait(&reason, wait).await;
                continue;
            }
            return Ok(Answer::Failure { status, body });
        }
    }

    /// Tells the observer why and how long the client waits, then waits.
    pub async fn wait(&self, reason: &str, wait: std::time::Duration) {
        self.observer.notice(&format!(
            "{reason}; trying again in {:.1} s",
            wait.as_secs_f64()
        ));
        tokio::time::sleep(wait).await;
    }
}

/// The error of a [`Answer::Failure`] while doing `context`.
pub(crate) fn failure(context: &str, status: u16, body: &[u8]) -> Error {
    Error::Status {
        context: context.to_owned(),
        status,
        detail: response_detail(body),
    }
}
