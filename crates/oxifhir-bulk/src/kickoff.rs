//! The kick-off: `GET [base]/…/$export?…`, or a POST with a `Parameters` body when the request
//! needs one, with `Prefer: respond-async`; the answer is `202` and the status URL in
//! `Content-Location`.

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Url};

use crate::session::{Answer, Outgoing, Session, failure};
use crate::{Error, ExportRequest};

/// Starts the export `request` on the server at `base`; returns its status URL.
pub(crate) async fn kick_off(
    session: &Session,
    base: &Url,
    request: &ExportRequest,
) -> Result<Url, Error> {
    let mut headers = HeaderMap::new();
    headers.insert("accept", HeaderValue::from_static("application/fhir+json"));
    headers.insert("prefer", HeaderValue::from_static("respond-async"));
    let (method, url, body) = if request.needs_post(base)? {
        let parameters = serde_json::to_vec(&request.parameters())
            .map_err(|e| Error::Protocol(format!("cannot write the Parameters body: {e}")))?;
        let url = crate::request::endpoint(base, &request.path())?;
        let body = Some(("application/fhir+json", Bytes::from(parameters)));
        (Method::POST, url, body)
    } else {
        (Method::GET, request.get_url(base)?, None)
    };
    let context = format!("kicking off the export ({method} {url})");
    let answer = session
        .send(&Outgoing {
            method,
            url: &url,
            headers,
            body,
            authorize: true,
            context: &context,
        })
        .await?;
    let response = match answer {
        Answer::Success(response) => response,
        Answer::Failure { status, body, .. } => return Err(failure(&context, status, &body)),
    };
    let status = response.status().as_u16();
    if status != 202 {
        return Err(Error::Protocol(format!(
            "{context}: the server answered {status} instead of 202 Accepted"
        )));
    }
    let location = response
        .headers()
        .get("content-location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            Error::Protocol(format!(
                "{context}: the 202 answer has no Content-Location (the status URL)"
            ))
        })?;
    url.join(location)
        .map_err(|e| Error::Protocol(format!("{context}: bad Content-Location '{location}': {e}")))
}
