//! A FHIR response as data: status, headers and body bytes — what `dispatch` returns and what an
//! asynchronous job stores as its result.

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// One response. Header names are lower case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FhirResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    #[serde(with = "crate::body_text")]
    pub body: Vec<u8>,
}

impl FhirResponse {
    /// A response with a JSON body (the content type is set when the response is formatted).
    pub fn json(status: u16, body: Vec<u8>) -> Self {
        FhirResponse {
            status,
            headers: Vec::new(),
            body,
        }
    }

    /// A response without a body.
    pub fn empty(status: u16) -> Self {
        FhirResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The OperationOutcome response for an error.
    pub fn from_error(error: &ApiError) -> Self {
        let response = Self::json(
            error.status(),
            oxifhir_model::json::to_bytes(&error.outcome.to_json()),
        );
        match error.retry_after() {
            Some(seconds) => response.with_header("retry-after", seconds.to_string()),
            None => response,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Sets a header, replacing earlier values.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.retain(|(n, _)| n != name);
        self.headers.push((name.to_string(), value.into()));
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}
