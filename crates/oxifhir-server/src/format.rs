//! Content negotiation: which JSON flavour a response is written in (`_format`, `Accept`,
//! `_pretty`), and which body formats a request may carry (`Content-Type`).

use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::request::FhirRequest;
use crate::response::FhirResponse;

/// The media type of JSON responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonMime {
    /// `application/fhir+json`, the default.
    FhirJson,
    /// `application/json`, when the client asked for exactly that.
    Json,
}

/// How a response body is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Format {
    pub mime: JsonMime,
    pub pretty: bool,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            mime: JsonMime::FhirJson,
            pretty: false,
        }
    }
}

impl Format {
    /// The `Content-Type` header value.
    pub fn content_type(self) -> &'static str {
        match self.mime {
            JsonMime::FhirJson => "application/fhir+json; charset=utf-8",
            JsonMime::Json => "application/json; charset=utf-8",
        }
    }
}

/// Chooses the response format from `_format` (which wins), `Accept` and `_pretty`.
/// Anything that cannot be served as JSON is `406 Not Acceptable`.
pub fn negotiate(request: &FhirRequest) -> ApiResult<Format> {
    let pretty = request.query_value("_pretty") == Some("true");
    if let Some(format) = request.query_value("_format") {
        let mime = match media_type(format).as_str() {
            "json" | "application/fhir+json" | "application/json+fhir" => JsonMime::FhirJson,
            "application/json" | "text/json" => JsonMime::Json,
            _ => {
                return Err(ApiError::new(
                    ErrorKind::NotAcceptable,
                    format!("_format '{format}' is not supported; this server speaks JSON only"),
                ));
            }
        };
        return Ok(Format { mime, pretty });
    }
    let Some(accept) = request.headers.accept.as_deref() else {
        return Ok(Format {
            mime: JsonMime::FhirJson,
            pretty,
        });
    };
    let mut json = false;
    for item in accept.split(',') {
        match media_type(item).as_str() {
            "application/fhir+json" | "application/json+fhir" | "*/*" | "application/*" | "" => {
                return Ok(Format {
                    mime: JsonMime::FhirJson,
                    pretty,
                });
            }
            "application/json" | "text/json" => json = true,
            _ => {}
        }
    }
    if json {
        return Ok(Format {
            mime: JsonMime::Json,
            pretty,
        });
    }
    Err(ApiError::new(
        ErrorKind::NotAcceptable,
        format!("Accept '{accept}' cannot be served; this server speaks application/fhir+json"),
    ))
}

/// What a request body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// FHIR JSON.
    Json,
    /// A JSON Patch document.
    JsonPatch,
    /// Form parameters (`POST [type]/_search`).
    Form,
}

/// Checks the `Content-Type` of a request that carries a body: `415` unless it is FHIR JSON
/// (or a JSON Patch / form where `allowed` includes them).
pub fn body_kind(request: &FhirRequest, allowed: &[BodyKind]) -> ApiResult<BodyKind> {
    let given = request
        .headers
        .content_type
        .as_deref()
        .map(media_type)
        .unwrap_or_default();
    let kind = match given.as_str() {
        "application/fhir+json" | "application/json" | "application/json+fhir" | "text/json" => {
            Some(BodyKind::Json)
        }
        "application/json-patch+json" => Some(BodyKind::JsonPatch),
        "application/x-www-form-urlencoded" => Some(BodyKind::Form),
        _ => None,
    };
    match kind {
        Some(kind) if allowed.contains(&kind) => Ok(kind),
        _ => {
            let shown = if given.is_empty() {
                "(none)".to_string()
            } else {
                given
            };
            Err(ApiError::new(
                ErrorKind::UnsupportedMediaType,
                format!("Content-Type {shown} is not supported here; send application/fhir+json"),
            ))
        }
    }
}

/// Writes a response in `format`: sets `Content-Type` for bodies that have none yet and
/// pretty-prints JSON when asked.
pub fn apply(mut response: FhirResponse, format: Format) -> FhirResponse {
    if response.body.is_empty() || response.header("content-type").is_some() {
        return response;
    }
    if format.pretty
        && let Ok(value) = oxifhir_model::json::parse(&response.body)
        && let Ok(pretty) = serde_json::to_vec_pretty(&value)
    {
        response.body = pretty;
    }
    response.set_header("content-type", format.content_type());
    response
}

/// The lower-cased media type without parameters: `application/fhir+json; charset=utf-8` →
/// `application/fhir+json`.
fn media_type(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Method;

    fn with_accept(accept: Option<&str>, query: &str) -> ApiResult<Format> {
        let mut r = FhirRequest::new(Method::Get, &format!("Patient?{query}"));
        r.headers.accept = accept.map(str::to_string);
        negotiate(&r)
    }

    #[test]
    fn negotiation() {
        let fhir = Format {
            mime: JsonMime::FhirJson,
            pretty: false,
        };
        assert_eq!(with_accept(None, ""), Ok(fhir));
        assert_eq!(
            with_accept(Some("text/html,application/xhtml+xml,*/*;q=0.8"), ""),
            Ok(fhir)
        );
        assert_eq!(
            with_accept(Some("application/json"), "").map(|f| f.mime),
            Ok(JsonMime::Json)
        );
        assert_eq!(
            with_accept(Some("application/fhir+xml"), "").map_err(|e| e.status()),
            Err(406)
        );
        assert_eq!(
            with_accept(Some("application/fhir+xml"), "_format=json"),
            Ok(fhir)
        );
        assert_eq!(
            with_accept(None, "_format=xml").map_err(|e| e.status()),
            Err(406)
        );
        assert!(with_accept(None, "_pretty=true").unwrap().pretty);
    }

    #[test]
    fn body_kinds() {
        let mut r = FhirRequest::new(Method::Post, "Patient");
        assert_eq!(
            body_kind(&r, &[BodyKind::Json]).map_err(|e| e.status()),
            Err(415)
        );
        r.headers.content_type = Some("application/fhir+json; charset=utf-8".into());
        assert_eq!(body_kind(&r, &[BodyKind::Json]), Ok(BodyKind::Json));
        r.headers.content_type = Some("application/xml".into());
        assert_eq!(
            body_kind(&r, &[BodyKind::Json]).map_err(|e| e.status()),
            Err(415)
        );
    }
}
