//! What operators see of a running server: Prometheus metrics ([`metrics`], served by
//! [`endpoint`] at `GET /metrics`), a request id on every request and response
//! ([`request_id`]), and one log event per request naming its interaction ([`interaction`]).
//!
//! [`observe`] is the one layer around the whole router that does the per-request part:
//! every response, errors raised before `dispatch` and export files included, passes it.

pub mod endpoint;
pub mod interaction;
pub mod metrics;
pub mod request_id;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::server::FhirServer;
use interaction::InteractionName;
use request_id::RequestId;

/// The request layer: gives the request its id (replacing a hostile `X-Request-Id` before any
/// handler sees it), runs it inside a `request` span that carries the id, then records its
/// latency under its interaction, logs one `request` event (method, interaction, status,
/// duration, id) and echoes the id in the response's `X-Request-Id`.
///
/// The latency is the time to the response's headers (an export file's body streams after).
pub async fn observe(
    State(server): State<FhirServer>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    let id = RequestId::of(request.headers());
    request
        .headers_mut()
        .insert(request_id::HEADER, id.header_value());
    let method = request.method().as_str().to_owned();
    let path = request.uri().path();
    let name = if path == endpoint::PATH {
        "metrics".into()
    } else {
        interaction::of_url(
            &method,
            crate::http::relative_path(path, &server.config().base_path()),
        )
    };
    let span = tracing::info_span!("request", request_id = %id);
    let mut response = next.run(request).instrument(span.clone()).await;
    let elapsed = started.elapsed();
    let name = match response.extensions_mut().remove::<InteractionName>() {
        Some(InteractionName(refined)) => refined,
        None => name,
    };
    let status = response.status().as_u16();
    server.metrics().observe_request(&name, status, elapsed);
    response
        .headers_mut()
        .insert(request_id::HEADER, id.header_value());
    span.in_scope(|| {
        tracing::info!(
            target: "oxifhir::request",
            request_id = %id,
            method = %method,
            interaction = %name,
            status,
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
    });
    response
}
