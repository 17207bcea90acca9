//! A FHIR request as data: what `dispatch` takes, whether it came over HTTP just now, from a
//! batch entry, or from an asynchronous job that stored it earlier.

use serde::{Deserialize, Serialize};

use crate::auth::Principal;

/// The HTTP methods FHIR interactions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    /// Parses an HTTP method name (upper case, as on the wire and in `Bundle.entry.request`).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "GET" => Some(Method::Get),
            "HEAD" => Some(Method::Head),
            "POST" => Some(Method::Post),
            "PUT" => Some(Method::Put),
            "PATCH" => Some(Method::Patch),
            "DELETE" => Some(Method::Delete),
            _ => None,
        }
    }

    /// The method name as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// The request headers FHIR interactions look at; everything else is dropped at the edge.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestHeaders {
    pub accept: Option<String>,
    pub content_type: Option<String>,
    pub prefer: Option<String>,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_none_exist: Option<String>,
    pub if_modified_since: Option<String>,
}

/// One FHIR request: method, path below the base, decoded query, the headers that matter and
/// the body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FhirRequest {
    pub method: Method,
    /// Path below the FHIR base, without leading or trailing `/`, percent-decoded per segment
    /// (`Patient/123/_history/2`, `$export`, or empty for the base itself).
    pub segments: Vec<String>,
    /// Decoded query parameters in order; repeated names stay separate.
    pub query: Vec<(String, String)>,
    pub headers: RequestHeaders,
    #[serde(with = "crate::body_text")]
    pub body: Vec<u8>,
    /// The authenticated client the request acts for (`None` without authentication).
    /// Stored with the request, so an asynchronous job is checked with the same rights.
    #[serde(default)]
    pub principal: Option<Principal>,
    /// The id a create gives its new resource, fixed when an asynchronous request is accepted
    /// (never taken from HTTP), so that a job run again after its worker died finds the
    /// resource its first run wrote instead of creating a second one. For a batch or
    /// transaction, the seed of its creates' ids (`{assigned_id}-{entry index}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_id: Option<String>,
    /// The address the request came from (set at the HTTP edge; never stored with a job). Tells
    /// clients apart for rate limits while authentication is off.
    #[serde(skip)]
    pub client_address: Option<std::net::IpAddr>,
}

impl FhirRequest {
    /// A request with no headers, query or body.
    pub fn new(method: Method, path: &str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        FhirRequest {
            method,
            segments: split_path(path),
            query: parse_query(query),
            headers: RequestHeaders::default(),
            body: Vec::new(),
            principal: None,
            assigned_id: None,
            client_address: None,
        }
    }

    /// All values of a query parameter, in order.
    pub fn query_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.query
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter.
    pub fn query_value(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The query as written in a URL (`a=b&c=d`); empty when there is none.
    pub fn query_string(&self) -> String {
        encode_query(&self.query)
    }

    /// The path as written in a URL (segments re-encoded) plus the query, relative to the base.
    pub fn relative_url(&self) -> String {
        let mut url = self
            .segments
            .iter()
            .map(|s| percent_encoding::utf8_percent_encode(s, SEGMENT).to_string())
            .collect::<Vec<_>>()
            .join("/");
        if !self.query.is_empty() {
            url.push('?');
            url.push_str(&encode_query(&self.query));
        }
        url
    }
}

/// Splits a relative path into decoded segments, dropping empty ones.
pub fn split_path(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// Decodes an `application/x-www-form-urlencoded` query string.
pub fn parse_query(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Encodes query pairs as `a=b&c=d`.
pub fn encode_query(pairs: &[(String, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'/')
    .add(b'%');

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_splits_path_and_query() {
        let r = FhirRequest::new(Method::Get, "Patient/%24x/_history?_count=2&a=b%20c");
        assert_eq!(r.segments, ["Patient", "$x", "_history"]);
        assert_eq!(r.query_value("a"), Some("b c"));
        assert_eq!(r.relative_url(), "Patient/$x/_history?_count=2&a=b+c");
    }

    #[test]
    fn requests_round_trip_through_json() {
        let mut r = FhirRequest::new(Method::Post, "Patient");
        r.body = br#"{"resourceType":"Patient"}"#.to_vec();
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""body":"{\"resourceType\""#));
        assert_eq!(serde_json::from_str::<FhirRequest>(&text).unwrap(), r);
    }
}
