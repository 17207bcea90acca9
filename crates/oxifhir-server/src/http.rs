//! The HTTP edge (axum): requests in, [`FhirRequest`]s to `dispatch`, [`FhirResponse`]s out.
//! Body limits, read timeouts, the URL checks made before decoding (percent-encoded bytes must
//! be UTF-8) and the shape of errors raised before `dispatch` live here too.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::auth::{self, Admission};
use crate::error::{ApiError, ErrorKind};
use crate::observability;
use crate::request::{FhirRequest, Method, RequestHeaders, parse_query, split_path};
use crate::response::FhirResponse;
use crate::server::FhirServer;

/// The router serving the FHIR API under the base path of the server's base URL,
/// `GET /metrics` and the jobs page at `/_admin/jobs` ([`crate::admin`]); every request
/// passes [`observability::observe`].
pub fn router(server: FhirServer) -> Router {
    let files = format!(
        "{}/_async/{{id}}/files/{{name}}",
        server.config().base_path()
    );
    Router::new()
        .route(
            &files,
            axum::routing::get(export_file)
                .fallback(handle)
                .layer(tower_http::compression::CompressionLayer::new().gzip(true)),
        )
        .route(
            observability::endpoint::PATH,
            axum::routing::any(observability::endpoint::metrics),
        )
        .merge(crate::admin::routes())
        .fallback(handle)
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            observability::observe,
        ))
        .with_state(server)
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes open requests;
/// clients get 60 s to send a request's headers ([`serve_with`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, Duration::from_secs(60), shutdown).await
}

/// [`serve`], closing a connection whose client has not sent a request's headers within
/// `header_timeout` (a slow or stalled client cannot hold connections open; the body has its
/// own deadline, [`ServerConfig::read_timeout`](crate::ServerConfig::read_timeout)).
///
/// HTTP/1.1 only, with keep-alive; one task per connection. At shutdown, idle connections
/// close at once and busy ones after their response.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    header_timeout: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (closing_tx, closing_rx) = tokio::sync::watch::channel(());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // The peer address, as `axum::serve` with connect info would give it.
        let service =
            hyper_util::service::TowerToHyperService::new(tower::ServiceExt::map_request(
                router.clone(),
                move |mut request: axum::http::Request<hyper::body::Incoming>| {
                    request
                        .extensions_mut()
                        .insert(axum::extract::ConnectInfo(remote));
                    request
                },
            ));
        let mut closing = closing_rx.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection =
                builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                _ = closing.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = closing_tx.send(());
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn handle(State(server): State<FhirServer>, request: Request) -> Response {
    let limit = BodyLimits {
        bytes: server.config().max_body_bytes,
        time: server.config().read_timeout,
    };
    let base = server.config().base_path();
    let admission = auth::admit(
        server.auth(),
        relative_path(request.uri().path(), &base),
        request.method().as_str(),
        request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    if let Admission::Rejected(response) = admission {
        return to_http(response);
    }
    match to_fhir_request(request, &base, limit).await {
        Ok(mut fhir) => {
            let name = observability::interaction::of_bundle_post(&fhir);
            let mut response = match admission {
                Admission::Endpoint(endpoint) => {
                    to_http(auth::serve_endpoint(server.auth(), endpoint, &fhir))
                }
                Admission::Authenticated(principal) => {
                    fhir.principal = Some(principal);
                    to_http(server.dispatch(fhir).await)
                }
                Admission::Open | Admission::Rejected(_) => to_http(server.dispatch(fhir).await),
            };
            if let Some(name) = name {
                response.extensions_mut().insert(name);
            }
            response
        }
        Err(error) => to_http(crate::format::apply(
            FhirResponse::from_error(&error),
            Default::default(),
        )),
    }
}

async fn to_fhir_request(
    request: Request,
    base: &str,
    limit: BodyLimits,
) -> Result<FhirRequest, ApiError> {
    let (parts, body) = request.into_parts();
    let method = Method::parse(parts.method.as_str()).ok_or_else(|| {
        ApiError::new(
            ErrorKind::MethodNotAllowed,
            format!("Method {} is not supported", parts.method),
        )
    })?;
    let path = parts.uri.path();
    let relative = match relative_path(path, base) {
        Some(rest) => rest,
        None => {
            return Err(ApiError::not_found(format!(
                "{path} is outside the FHIR base {base}"
            )));
        }
    };
    check_utf8(relative, parts.uri.query().unwrap_or(""))?;
    let query = parts.uri.query().map(parse_query).unwrap_or_default();
    let body = read_body(body, limit).await?;
    Ok(FhirRequest {
        method,
        segments: split_path(relative),
        query,
        headers: headers(&parts.headers),
        body,
        principal: None,
        assigned_id: None,
        client_address: parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip()),
    })
}

/// The part of `path` below the base path, or `None` when `path` is outside it.
pub(crate) fn relative_path<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    path.strip_prefix(base)
        .filter(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `400` unless every percent-encoded byte sequence of the path and of the query decodes to
/// UTF-8 without U+0000: a URL is text, and decoding it lossily would search for (or write
/// under) something other than what the client sent; NUL is text no database column holds.
fn check_utf8(path: &str, query: &str) -> Result<(), ApiError> {
    let decodes = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .is_ok_and(|text| !text.contains('\0'))
    };
    if !path.split('/').all(decodes) {
        return Err(ApiError::bad_request(
            "The URL path is not UTF-8 once percent-decoded, or contains NUL (%00)",
        ));
    }
    if !query.split('&').all(decodes) {
        return Err(ApiError::bad_request(
            "The URL query is not UTF-8 once percent-decoded, or contains NUL (%00)",
        ));
    }
    Ok(())
}

/// What a request body may cost: its size and the time it takes to arrive.
#[derive(Debug, Clone, Copy)]
struct BodyLimits {
    bytes: usize,
    time: std::time::Duration,
}

/// Reads a body of at most `limit.bytes` bytes, all of it within `limit.time` (else `408`: a
/// client that stalls does not hold the request open). A larger body is read on (and dropped)
/// up to a bound, so that the client, still sending, receives the `413` instead of a broken
/// connection.
async fn read_body(body: Body, limit: BodyLimits) -> Result<Vec<u8>, ApiError> {
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + limit.time;
    let (time, limit) = (limit.time, limit.bytes);
    let mut stream = body.into_data_stream();
    let mut buf = Vec::new();
    let mut seen = 0usize;
    let drain_bound = limit.saturating_mul(8).max(64 * 1024 * 1024);
    loop {
        let next = tokio::time::timeout_at(deadline, stream.next()).await;
        let Ok(next) = next else {
            return Err(ApiError::new(
                ErrorKind::RequestTimeout,
                format!(
                    "The request body did not arrive within {} s",
                    time.as_secs_f64()
                ),
            ));
        };
        let Some(chunk) = next else {
            break;
        };
        let chunk = chunk
            .map_err(|e| ApiError::bad_request(format!("Could not read the request body: {e}")))?;
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            buf.extend_from_slice(&chunk);
        } else if seen > drain_bound {
            break;
        }
    }
    if seen > limit {
        return Err(too_large(limit));
    }
    Ok(buf)
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorKind::PayloadTooLarge,
        format!("The request body is larger than the limit of {limit} bytes"),
    )
}

fn headers(map: &HeaderMap) -> RequestHeaders {
    let get = |name: &str| {
        let values: Vec<&str> = map
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    RequestHeaders {
        accept: get("accept"),
        content_type: get("content-type"),
        prefer: get("prefer"),
        if_match: get("if-match"),
        if_none_match: get("if-none-match"),
        if_none_exist: get("if-none-exist"),
        if_modified_since: get("if-modified-since"),
    }
}

/// `GET {base}/_async/{id}/files/{name}`: an export file streamed from the export store as
/// `application/fhir+ndjson` (gzip-compressed by the route's layer when the client accepts
/// it). `Range: bytes={offset}-` (a resumed download) gets `206` with the file's end and
/// `Content-Range`, which the compression layer leaves alone; other ranges get the whole file.
/// With `--auth smart` it needs the bearer token of the client that started the export
/// (anyone else, like an unknown job, gets `404`).
async fn export_file(
    State(server): State<FhirServer>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    path: Result<axum::extract::Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> Response {
    let admission = auth::admit(
        server.auth(),
        relative_path(uri.path(), &server.config().base_path()),
        "GET",
        headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    );
    let principal = match admission {
        Admission::Rejected(response) => return to_http(response),
        Admission::Authenticated(principal) => Some(principal),
        Admission::Open | Admission::Endpoint(_) => None,
    };
    let Ok(axum::extract::Path((id, name))) = path else {
        return error_response(&ApiError::not_found("No such export file"));
    };
    let mut request = FhirRequest::new(Method::Get, &format!("_async/{id}/files"));
    request.principal = principal;
    let ctx = crate::interactions::Context {
        server: &server,
        request: &request,
        prefs: Default::default(),
    };
    let offset = headers
        .get(axum::http::header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::operations::export::files::range_offset)
        .unwrap_or(0);
    match crate::operations::export::file(&ctx, &id, &name, offset).await {
        Ok(file) => {
            let mut http = Body::from_stream(file.stream).into_response();
            let headers = http.headers_mut();
            headers.insert(
                axum::http::header::ACCEPT_RANGES,
                HeaderValue::from_static("bytes"),
            );
            if let Some(range) = file.range
                && let Ok(value) = HeaderValue::try_from(range.to_string())
            {
                headers.insert(axum::http::header::CONTENT_RANGE, value);
                *http.status_mut() = StatusCode::PARTIAL_CONTENT;
            }
            let headers = http.headers_mut();
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/fhir+ndjson"),
            );
            headers.insert(
                axum::http::header::CONTENT_LENGTH,
                HeaderValue::from(file.size),
            );
            http
        }
        Err(error) => error_response(&error),
    }
}

/// The OperationOutcome response of `error`.
pub(crate) fn error_response(error: &ApiError) -> Response {
    to_http(crate::format::apply(
        FhirResponse::from_error(error),
        Default::default(),
    ))
}

/// `response` as an HTTP response (headers that are not valid HTTP are left out).
pub(crate) fn to_http(response: FhirResponse) -> Response {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut http = (status, Body::from(response.body)).into_response();
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            http.headers_mut().append(name, value);
        }
    }
    http
}
