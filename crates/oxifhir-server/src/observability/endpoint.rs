//! `GET /metrics`, at the server's root (outside the FHIR base), and who may read it.
//!
//! Who may scrape: with `--auth none` and no `--metrics-token`, anyone (like the API). With a
//! metrics token, a request bearing it (`Authorization: Bearer <token>`; Prometheus's
//! `authorization` setting sends it). With `--auth smart`, also any valid SMART access token,
//! whatever its scopes: metrics are counts and latencies, never resource contents.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

use crate::auth::AuthMode;
use crate::error::{ApiError, ErrorKind};
use crate::server::FhirServer;

/// Where the metrics are served.
pub const PATH: &str = "/metrics";

/// A shared secret that lets a scraper read `/metrics` (`--metrics-token`). Its `Debug` does
/// not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct MetricsToken(String);

impl MetricsToken {
    /// The token `text`, or `None` when it is empty.
    pub fn new(text: &str) -> Option<Self> {
        let text = text.trim();
        (!text.is_empty()).then(|| MetricsToken(text.to_owned()))
    }

    /// True when `presented` is the token (compared in time independent of where they
    /// differ).
    fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken(…)")
    }
}

/// `GET /metrics`: the Prometheus text exposition of [`super::metrics::Metrics`], job
/// counts read from the store now. `401` without the right credentials (see the module
/// documentation), `405` for other methods, `503` when the store cannot count jobs.
pub async fn metrics(
    State(server): State<FhirServer>,
    method: Method,
    headers: HeaderMap,
) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return crate::http::error_response(&ApiError::new(
            ErrorKind::MethodNotAllowed,
            "The metrics are read with GET",
        ));
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(refused) = admit(&server, authorization) {
        return refused;
    }
    let counts = match server.store().jobs().counts().await {
        Ok(counts) => counts,
        Err(e) => {
            tracing::warn!(error = %e, "counting jobs for /metrics failed");
            return crate::http::error_response(&ApiError::new(
                ErrorKind::Unavailable,
                "The job store cannot be read now",
            ));
        }
    };
    let text = server.metrics().encode(&counts, &crate::server::JOB_KINDS);
    let mut response = text.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(super::metrics::CONTENT_TYPE),
    );
    if method == Method::HEAD {
        *response.body_mut() = axum::body::Body::empty();
    }
    response
}

/// `None` when the request may read the metrics, else the `401` to send.
fn admit(server: &FhirServer, authorization: Option<&str>) -> Option<Response> {
    let token = server.config().metrics_token.as_ref();
    let bearer = authorization
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    if let (Some(token), Some(bearer)) = (token, bearer)
        && token.matches(bearer)
    {
        return None;
    }
    match server.auth() {
        AuthMode::Smart(auth) => match auth.authenticate(authorization) {
            Ok(_) => None,
            Err(rejection) => Some(crate::http::to_http(auth.challenge(&rejection))),
        },
        AuthMode::None if token.is_some() => {
            let mut refused = crate::http::error_response(&ApiError::new(
                ErrorKind::Unauthorized,
                "The metrics need 'Authorization: Bearer <metrics token>'",
            ));
            refused
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            Some(refused)
        }
        AuthMode::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_match_exactly() {
        let token = MetricsToken::new(" s3cret ").expect("token");
        assert!(token.matches("s3cret"));
        assert!(!token.matches("s3cre"));
        assert!(!token.matches("s3cret "));
        assert!(!token.matches("S3cret"));
        assert!(MetricsToken::new("  ").is_none());
        assert_eq!(format!("{token:?}"), "MetricsToken(…)");
    }
}
