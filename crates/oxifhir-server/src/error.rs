//! The one error table: every failure the server reports is an [`ApiError`], whose kind fixes
//! the HTTP status and default `issue.code`, rendered as an `OperationOutcome`.

use oxifhir_model::outcome::{Issue, IssueCode, IssueSeverity, OperationOutcome};
use oxifhir_store::StoreError;

/// The kinds of failure, each with one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    NotAcceptable,
    RequestTimeout,
    Conflict,
    Gone,
    PreconditionFailed,
    PayloadTooLarge,
    UnsupportedMediaType,
    Unprocessable,
    TooManyRequests,
    Internal,
    Unavailable,
}

impl ErrorKind {
    /// The HTTP status code.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::NotAcceptable => 406,
            ErrorKind::RequestTimeout => 408,
            ErrorKind::Conflict => 409,
            ErrorKind::Gone => 410,
            ErrorKind::PreconditionFailed => 412,
            ErrorKind::PayloadTooLarge => 413,
            ErrorKind::UnsupportedMediaType => 415,
            ErrorKind::Unprocessable => 422,
            ErrorKind::TooManyRequests => 429,
            ErrorKind::Internal => 500,
            ErrorKind::Unavailable => 503,
        }
    }

    /// The `issue.code` used when the caller does not choose a more precise one.
    pub fn default_issue_code(self) -> IssueCode {
        match self {
            ErrorKind::BadRequest => IssueCode::Invalid,
            ErrorKind::Unauthorized => IssueCode::Login,
            ErrorKind::Forbidden => IssueCode::Forbidden,
            ErrorKind::NotFound => IssueCode::NotFound,
            ErrorKind::MethodNotAllowed => IssueCode::NotSupported,
            ErrorKind::NotAcceptable => IssueCode::NotSupported,
            ErrorKind::RequestTimeout => IssueCode::Timeout,
            ErrorKind::Conflict => IssueCode::Conflict,
            ErrorKind::Gone => IssueCode::Deleted,
            ErrorKind::PreconditionFailed => IssueCode::Conflict,
            ErrorKind::PayloadTooLarge => IssueCode::TooLong,
            ErrorKind::UnsupportedMediaType => IssueCode::NotSupported,
            ErrorKind::Unprocessable => IssueCode::Processing,
            ErrorKind::TooManyRequests => IssueCode::Throttled,
            ErrorKind::Internal => IssueCode::Exception,
            ErrorKind::Unavailable => IssueCode::Transient,
        }
    }
}

/// A failure to answer a request, with the outcome the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub outcome: OperationOutcome,
    /// Seconds the client should wait before trying again (`Retry-After`); `429` and `5xx`
    /// answers carry 1 when not set.
    pub retry_after: Option<u64>,
}

/// Result of request handling.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error of `kind` with one issue carrying `text` and the kind's default code.
    pub fn new(kind: ErrorKind, text: impl Into<String>) -> Self {
        ApiError {
            kind,
            outcome: OperationOutcome::error(kind.default_issue_code(), text),
            retry_after: None,
        }
    }

    /// An error of `kind` with one issue with an explicit code.
    pub fn with_code(kind: ErrorKind, code: IssueCode, text: impl Into<String>) -> Self {
        ApiError {
            kind,
            outcome: OperationOutcome::error(code, text),
            retry_after: None,
        }
    }

    /// An error of `kind` with several issues.
    pub fn with_issues(kind: ErrorKind, issues: Vec<Issue>) -> Self {
        ApiError {
            kind,
            outcome: OperationOutcome { id: None, issues },
            retry_after: None,
        }
    }

    /// 400 with code `invalid`.
    pub fn bad_request(text: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadRequest, text)
    }

    /// 404 with code `not-found`.
    pub fn not_found(text: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, text)
    }

    /// 400 with code `not-supported`.
    pub fn not_supported(text: impl Into<String>) -> Self {
        Self::with_code(ErrorKind::BadRequest, IssueCode::NotSupported, text)
    }

    /// 500 whose details go to the log, not to the client.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "internal error");
        Self::new(
            ErrorKind::Internal,
            "Internal server error; the server log has the details",
        )
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// Adds an `expression` to the first issue.
    pub fn at(mut self, expression: impl Into<String>) -> Self {
        if let Some(issue) = self.outcome.issues.first_mut() {
            issue.expression.push(expression.into());
        }
        self
    }

    /// Adds `diagnostics` to the first issue.
    pub fn with_diagnostics(mut self, diagnostics: impl Into<String>) -> Self {
        if let Some(issue) = self.outcome.issues.first_mut() {
            issue.diagnostics = Some(diagnostics.into());
        }
        self
    }

    /// Tells the client to wait `seconds` before trying again.
    pub fn with_retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The `Retry-After` seconds of the response: as set, or 1 for `429` and `5xx`.
    pub fn retry_after(&self) -> Option<u64> {
        let status = self.status();
        self.retry_after
            .or((status == 429 || status >= 500).then_some(1))
    }

    /// The first issue's text.
    pub fn message(&self) -> &str {
        self.outcome.message()
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::VersionConflict {
                resource_type, id, ..
            } => ApiError::new(
                ErrorKind::Conflict,
                format!("{resource_type}/{id} was changed by a concurrent request; retry"),
            ),
            StoreError::Retryable(detail) => {
                tracing::warn!(%detail, "transaction conflict persisted after retries");
                ApiError::new(ErrorKind::Conflict, "Concurrent requests conflicted; retry")
            }
            StoreError::InvalidCursor => ApiError::bad_request("Invalid or expired paging cursor"),
            StoreError::Unavailable(detail) => {
                tracing::error!(%detail, "database unavailable");
                ApiError::new(
                    ErrorKind::Unavailable,
                    "The database is unavailable; retry later",
                )
            }
            StoreError::Backend(detail) => ApiError::internal(detail),
        }
    }
}

/// A warning issue, for `OperationOutcome` entries in search results.
pub fn warning(code: IssueCode, text: impl Into<String>) -> Issue {
    Issue::new(IssueSeverity::Warning, code, text)
}
