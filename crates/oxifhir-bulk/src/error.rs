//! The client's errors: each says what was being done and what the server or the system said.

use std::path::PathBuf;

/// Why an export (or one of its steps) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request could not be sent or its response not read (after any retries).
    #[error("{context}: {}", chain(.cause))]
    Http {
        context: String,
        cause: reqwest::Error,
    },
    /// The server answered with an error status (after any retries).
    #[error("{context}: the server answered {status}{}", detail_text(.detail))]
    Status {
        context: String,
        status: u16,
        /// The OperationOutcome's diagnostics or the body's start, when there was one.
        detail: String,
    },
    /// The server answered something the Bulk Data specification does not allow.
    #[error("{0}")]
    Protocol(String),
    /// A local file could not be read or written.
    #[error("{}: {cause}", .path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    /// Authentication could not be set up or was refused.
    #[error("{0}")]
    Auth(String),
    /// Files whose line count differs from the manifest's `count`.
    #[error("{} file(s) do not match the manifest: {}", .0.len(), .0.join("; "))]
    CountMismatch(Vec<String>),
    /// Files that could not be downloaded (the others were).
    #[error("{} file(s) could not be downloaded: {}", .0.len(), .0.join("; "))]
    Downloads(Vec<String>),
    /// The output directory holds an unfinished export of another request.
    #[error("{0}")]
    State(String),
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, cause: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            cause,
        }
    }

    /// An [`Error::Http`] while doing `context`.
    pub fn http(context: impl Into<String>, cause: reqwest::Error) -> Self {
        Error::Http {
            context: context.into(),
            cause,
        }
    }
}

fn detail_text(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

/// An error and its causes, `: `-separated (reqwest's own message rarely says why).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// What an error response says: the diagnostics (or details text) of an OperationOutcome's
/// issues, an OAuth `error_description`, or the start of the body.
pub(crate) fn response_detail(body: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let issues: Vec<&str> = value
        .get("issue")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|issue| {
            issue
                .get("diagnostics")
                .or_else(|| issue.pointer("/details/text"))
                .and_then(serde_json::Value::as_str)
        })
        .collect();
    if !issues.is_empty() {
        return issues.join("; ");
    }
    if let Some(text) = value
        .get("error_description")
        .or_else(|| value.get("error"))
        .and_then(serde_json::Value::as_str)
    {
        return text.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_of_error_bodies() {
        let outcome = br#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","diagnostics":"bad _type"},{"severity":"error","code":"invalid","details":{"text":"bad _since"}}]}"#;
        assert_eq!(response_detail(outcome), "bad _type; bad _since");
        let oauth = br#"{"error":"invalid_client","error_description":"unknown kid"}"#;
        assert_eq!(response_detail(oauth), "unknown kid");
        assert_eq!(response_detail(b"  gateway timeout \n"), "gateway timeout");
        assert_eq!(response_detail(&[b'x'; 300]).chars().count(), 201);
        assert_eq!(response_detail(b""), "");
    }
}
