//! `OperationOutcome`: the one shape every error, warning and informational message takes.

use serde_json::{Value, json};

/// `OperationOutcome.issue.severity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueSeverity {
    Fatal,
    Error,
    Warning,
    Information,
}

impl IssueSeverity {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            IssueSeverity::Fatal => "fatal",
            IssueSeverity::Error => "error",
            IssueSeverity::Warning => "warning",
            IssueSeverity::Information => "information",
        }
    }
}

/// `OperationOutcome.issue.code` (the IssueType value set), as far as oxifhir uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssueCode {
    Invalid,
    Structure,
    Required,
    Value,
    Invariant,
    Security,
    Login,
    Forbidden,
    Processing,
    NotSupported,
    Duplicate,
    MultipleMatches,
    NotFound,
    Deleted,
    TooLong,
    Conflict,
    Transient,
    Throttled,
    Exception,
    Timeout,
    Informational,
}

impl IssueCode {
    /// The FHIR code.
    pub fn code(self) -> &'static str {
        match self {
            IssueCode::Invalid => "invalid",
            IssueCode::Structure => "structure",
            IssueCode::Required => "required",
            IssueCode::Value => "value",
            IssueCode::Invariant => "invariant",
            IssueCode::Security => "security",
            IssueCode::Login => "login",
            IssueCode::Forbidden => "forbidden",
            IssueCode::Processing => "processing",
            IssueCode::NotSupported => "not-supported",
            IssueCode::Duplicate => "duplicate",
            IssueCode::MultipleMatches => "multiple-matches",
            IssueCode::NotFound => "not-found",
            IssueCode::Deleted => "deleted",
            IssueCode::TooLong => "too-long",
            IssueCode::Conflict => "conflict",
            IssueCode::Transient => "transient",
            IssueCode::Throttled => "throttled",
            IssueCode::Exception => "exception",
            IssueCode::Timeout => "timeout",
            IssueCode::Informational => "informational",
        }
    }
}

/// One `OperationOutcome.issue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: IssueSeverity,
    pub code: IssueCode,
    /// `details.text`: the human-readable message.
    pub text: Option<String>,
    /// `diagnostics`: technical detail (a URL, a JSON blob).
    pub diagnostics: Option<String>,
    /// `expression`: FHIRPath locations of the problem.
    pub expression: Vec<String>,
}

impl Issue {
    /// An issue with a `details.text`.
    pub fn new(severity: IssueSeverity, code: IssueCode, text: impl Into<String>) -> Self {
        Issue {
            severity,
            code,
            text: Some(text.into()),
            diagnostics: None,
            expression: Vec::new(),
        }
    }

    /// Adds a `diagnostics` string.
    pub fn with_diagnostics(mut self, diagnostics: impl Into<String>) -> Self {
        self.diagnostics = Some(diagnostics.into());
        self
    }

    /// Adds `expression` locations.
    pub fn with_expression(mut self, expression: impl IntoIterator<Item = String>) -> Self {
        self.expression.extend(expression);
        self
    }

    fn to_json(&self) -> Value {
        let mut issue = serde_json::Map::new();
        issue.insert("severity".into(), json!(self.severity.code()));
        issue.insert("code".into(), json!(self.code.code()));
        if let Some(text) = &self.text {
            issue.insert("details".into(), json!({ "text": text }));
        }
        if let Some(diagnostics) = &self.diagnostics {
            issue.insert("diagnostics".into(), json!(diagnostics));
        }
        if !self.expression.is_empty() {
            issue.insert("expression".into(), json!(self.expression));
        }
        Value::Object(issue)
    }
}

/// An `OperationOutcome` resource under construction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OperationOutcome {
    /// `OperationOutcome.id`, for the well-known outcomes (`ok`, `accepted`, …).
    pub id: Option<String>,
    pub issues: Vec<Issue>,
}

impl OperationOutcome {
    /// An outcome with a single issue.
    pub fn single(issue: Issue) -> Self {
        OperationOutcome {
            id: None,
            issues: vec![issue],
        }
    }

    /// An error with one message.
    pub fn error(code: IssueCode, text: impl Into<String>) -> Self {
        Self::single(Issue::new(IssueSeverity::Error, code, text))
    }

    /// An informational message.
    pub fn information(text: impl Into<String>) -> Self {
        Self::single(Issue::new(
            IssueSeverity::Information,
            IssueCode::Informational,
            text,
        ))
    }

    /// `All OK`, with id `ok`: the answer of operations that succeed with nothing to say.
    pub fn all_ok() -> Self {
        OperationOutcome {
            id: Some("ok".into()),
            ..Self::information("All OK")
        }
    }

    /// Sets the outcome's id.
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The resource as JSON.
    pub fn to_json(&self) -> Value {
        let mut outcome = serde_json::Map::new();
        outcome.insert("resourceType".into(), json!("OperationOutcome"));
        if let Some(id) = &self.id {
            outcome.insert("id".into(), json!(id));
        }
        let issues: Vec<Value> = if self.issues.is_empty() {
            vec![
                Issue::new(
                    IssueSeverity::Information,
                    IssueCode::Informational,
                    "All OK",
                )
                .to_json(),
            ]
        } else {
            self.issues.iter().map(Issue::to_json).collect()
        };
        outcome.insert("issue".into(), Value::Array(issues));
        Value::Object(outcome)
    }

    /// The first issue's text, for logs and error messages.
    pub fn message(&self) -> &str {
        self.issues
            .first()
            .and_then(|i| i.text.as_deref())
            .unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_ok_matches_the_seed() {
        assert_eq!(
            OperationOutcome::all_ok().to_json(),
            json!({"resourceType":"OperationOutcome","id":"ok","issue":[{"severity":"information","code":"informational","details":{"text":"All OK"}}]})
        );
    }

    #[test]
    fn error_with_diagnostics() {
        let o = OperationOutcome::single(
            Issue::new(IssueSeverity::Error, IssueCode::Invalid, "bad")
                .with_diagnostics("d")
                .with_expression(["Patient.id".to_string()]),
        );
        assert_eq!(
            o.to_json(),
            json!({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid","details":{"text":"bad"},"diagnostics":"d","expression":["Patient.id"]}]})
        );
    }
}
