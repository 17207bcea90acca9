//! The jobs page, served by the binary itself at `/_admin/jobs` (outside the FHIR base):
//! every asynchronous job the caller may see, live, with progress, throughput, cancel and an
//! export's files; `/_admin/jobs/{id}` shows one job with its output.
//!
//! The HTML, CSS and JavaScript are embedded ([`assets/`](assets), no framework, nothing
//! fetched from the internet) and public; the data comes from [`jobs`] (`/_admin/api/jobs`),
//! which the page's script fetches every second. With `--auth smart` the data needs the same
//! bearer token as the API and shows only the caller's own jobs: the page keeps a token typed
//! into it in `sessionStorage` and sends it as `Authorization: Bearer` on every fetch
//! (`EventSource` cannot send that header, which is why the page polls instead of using
//! server-sent events). Cancelling calls `DELETE [base]/_async/{id}` like any client.

pub mod jobs;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::server::FhirServer;

/// The page of all jobs.
pub const JOBS_PAGE: &str = "/_admin/jobs";

/// The HTML of the list and of a job's page (the script shows the one the path asks for).
const PAGE: &str = include_str!("assets/page.html");

/// The routes of the jobs page, its assets and its data, to merge into the server's router.
pub fn routes() -> Router<FhirServer> {
    Router::new()
        .route("/_admin", get(|| async { Redirect::to(JOBS_PAGE) }))
        .route(JOBS_PAGE, get(|| async { html(PAGE) }))
        .route("/_admin/jobs/{id}", get(|| async { html(PAGE) }))
        .route(
            "/_admin/assets/admin.js",
            get(|| async {
                asset(
                    "text/javascript; charset=utf-8",
                    include_str!("assets/admin.js"),
                )
            }),
        )
        .route(
            "/_admin/assets/admin.css",
            get(|| async { asset("text/css; charset=utf-8", include_str!("assets/admin.css")) }),
        )
        .route("/_admin/api/jobs", get(jobs::list))
        .route("/_admin/api/jobs/{id}", get(jobs::detail))
}

/// An HTML shell: it holds no job data, so it is public; its script and style come only from
/// this server.
fn html(body: &'static str) -> Response {
    let mut response = asset("text/html; charset=utf-8", body);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    response.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// An embedded file, revalidated on each load so that a new binary's page is never mixed with
/// an old script.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}
