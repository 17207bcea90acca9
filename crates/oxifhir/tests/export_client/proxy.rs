//! The loopback proxy in front of the test server: it forwards every request, records it,
//! and injects the faults it is told to.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A request the proxy saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query.
    pub target: String,
    pub range: Option<String>,
    pub authorized: bool,
    pub status: u16,
}

/// Faults the proxy injects, each a number of times.
#[derive(Debug, Default)]
pub struct Faults {
    /// Polls answered `429` with `Retry-After: 1`.
    pub throttle_polls: u32,
    /// File downloads cut after `cut_at` bytes.
    pub cut_files: u32,
    pub cut_at: usize,
    /// Drop `Range` from file requests (a server without range support).
    pub ignore_range: bool,
    /// Authorized polls answered `401`, as for an expired token.
    pub refuse_tokens: u32,
    /// Add one to the count of the manifest's first output file.
    pub miscount: bool,
}

/// The proxy: where it forwards to, what it saw, what it breaks.
pub struct Proxy {
    upstream: String,
    client: reqwest::Client,
    seen: Mutex<Vec<Seen>>,
    faults: Mutex<Faults>,
}

impl Proxy {
    /// A proxy of the server at `upstream` (`http://host:port`), injecting no faults yet.
    pub fn new(upstream: String) -> Self {
        Proxy {
            upstream,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            seen: Mutex::new(Vec::new()),
            faults: Mutex::new(Faults::default()),
        }
    }

    /// The requests seen so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The faults to inject (set them before the client runs).
    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap()
    }
}

fn take(counter: &mut u32) -> bool {
    let some = *counter > 0;
    *counter = counter.saturating_sub(1);
    some
}

/// The proxy's only handler: forwards a request to the upstream server, or answers with a
/// fault in its place, and records it.
pub async fn forward(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map_or("/".to_owned(), |p| p.to_string());
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let is_file = target.contains("/_async/") && target.contains("/files/");
    let is_poll = target.contains("/_async/") && !is_file && parts.method == "GET";
    let authorized = parts.headers.contains_key("authorization");
    let mut seen = Seen {
        method: parts.method.to_string(),
        target: target.clone(),
        range: parts
            .headers
            .get("range")
            .map(|v| v.to_str().unwrap().to_owned()),
        authorized,
        status: 0,
    };
    let injected = {
        let mut faults = proxy.faults();
        if is_poll && take(&mut faults.throttle_polls) {
            Some((429, "1"))
        } else if is_poll && authorized && take(&mut faults.refuse_tokens) {
            Some((401, ""))
        } else {
            None
        }
    };
    if let Some((status, retry_after)) = injected {
        seen.status = status;
        proxy.seen.lock().unwrap().push(seen);
        let outcome = json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "throttled"}]});
        let mut response = (
            axum::http::StatusCode::from_u16(status).unwrap(),
            outcome.to_string(),
        )
            .into_response();
        if !retry_after.is_empty() {
            response
                .headers_mut()
                .insert("retry-after", retry_after.parse().unwrap());
        }
        return response;
    }
    let ignore_range = proxy.faults().ignore_range;
    let mut upstream = proxy
        .client
        .request(parts.method.clone(), format!("{}{target}", proxy.upstream));
    for (name, value) in &parts.headers {
        let skip = name == "host" || name == "content-length" || (name == "range" && ignore_range);
        if !skip {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.body(body).send().await.unwrap();
    let status = answer.status();
    let headers = answer.headers().clone();
    let mut bytes = answer.bytes().await.unwrap().to_vec();
    seen.status = status.as_u16();
    proxy.seen.lock().unwrap().push(seen);
    if is_poll && status == 200 && proxy.faults().miscount {
        let mut manifest: Value = serde_json::from_slice(&bytes).unwrap();
        let count = manifest["output"][0]["count"].as_u64().unwrap();
        manifest["output"][0]["count"] = json!(count + 1);
        bytes = manifest.to_string().into_bytes();
    }
    let cut = {
        let mut faults = proxy.faults();
        let cut_at = faults.cut_at;
        (is_file && status.is_success() && bytes.len() > cut_at && take(&mut faults.cut_files))
            .then_some(cut_at)
    };
    let length = bytes.len();
    let body = match cut {
        Some(cut_at) => {
            use futures::StreamExt;
            let head = bytes::Bytes::copy_from_slice(&bytes[..cut_at]);
            // The error comes after a pause, so that the head and the first bytes are sent
            // (the body is pending) before the connection is cut.
            let cut = futures::stream::once(async {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Err(std::io::Error::other("the proxy cuts the connection"))
            });
            let stream = futures::stream::iter([Ok::<_, std::io::Error>(head)]).chain(cut);
            Body::from_stream(stream)
        }
        None => Body::from(bytes),
    };
    let mut response = Response::builder().status(status);
    for (name, value) in &headers {
        if name != "content-length" && name != "transfer-encoding" {
            response = response.header(name, value);
        }
    }
    response
        .header("content-length", length)
        .body(body)
        .unwrap()
}
