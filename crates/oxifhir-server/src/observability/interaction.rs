//! The name of a request's interaction in metrics and logs: FHIR's interaction codes
//! (`read`, `search-type`, `transaction` …), an operation's `$name`, or the endpoint's name.
//! The set of names is fixed by the router's grammar, never by a path or an id, so metrics
//! labelled with it stay few.

use std::borrow::Cow;

use crate::operations;
use crate::request::{FhirRequest, Method};
use crate::route::{self, Interaction};

/// The interaction name of a response, set by a handler that knows more than the URL says
/// (batch or transaction, from the Bundle); read by the request layer ([`super::observe`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InteractionName(pub Cow<'static, str>);

/// The interaction name of a request to `path` (below the FHIR base when `relative` is
/// `Some`) with `method`, from its URL alone.
pub fn of_url(method: &str, relative: Option<&str>) -> Cow<'static, str> {
    let Some(relative) = relative else {
        return Cow::Borrowed("unknown");
    };
    let Some(method) = Method::parse(method) else {
        return Cow::Borrowed("unknown");
    };
    let request = FhirRequest::new(method, relative);
    let segments: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["_async", _, "files", _] => return Cow::Borrowed("export-file"),
        [".well-known", "smart-configuration"] => return Cow::Borrowed("smart-configuration"),
        ["auth", "token"] => return Cow::Borrowed("token"),
        _ => {}
    }
    match route::route(&request) {
        Ok(interaction) => of_interaction(&interaction, None),
        Err(_) => Cow::Borrowed("unknown"),
    }
}

/// The name of `interaction`; `body` tells a batch from a transaction.
pub fn of_interaction(interaction: &Interaction, body: Option<&[u8]>) -> Cow<'static, str> {
    use Interaction as I;
    Cow::Borrowed(match interaction {
        I::Capabilities => "capabilities",
        I::BatchOrTransaction => match body.and_then(bundle_type) {
            Some(BundleType::Batch) => "batch",
            Some(BundleType::Transaction) => "transaction",
            None => "batch-or-transaction",
        },
        I::SearchSystem => "search-system",
        I::HistorySystem => "history-system",
        I::Create { .. } => "create",
        I::SearchType { .. } => "search-type",
        I::HistoryType { .. } => "history-type",
        I::Update { .. } | I::ConditionalUpdate { .. } => "update",
        I::Patch { .. } | I::ConditionalPatch { .. } => "patch",
        I::Delete { .. } | I::ConditionalDelete { .. } => "delete",
        I::Read { .. } => "read",
        I::VRead { .. } => "vread",
        I::HistoryInstance { .. } => "history-instance",
        I::AsyncStatus { .. } | I::ExportPollStatus => "async-status",
        I::AsyncResult { .. } => "async-result",
        I::Operation { name, target } => {
            return match operations::find(name, target) {
                Ok(def) => Cow::Owned(format!("${}", def.name)),
                Err(_) => Cow::Borrowed("unknown-operation"),
            };
        }
    })
}

/// The name of a request that `POST`s a Bundle to the base, once its body is read; `None`
/// for every other request (its URL says everything).
pub fn of_bundle_post(request: &FhirRequest) -> Option<InteractionName> {
    if request.method != Method::Post || !request.segments.is_empty() {
        return None;
    }
    Some(InteractionName(of_interaction(
        &Interaction::BatchOrTransaction,
        Some(&request.body),
    )))
}

enum BundleType {
    Batch,
    Transaction,
}

/// `Bundle.type`, read without building the Bundle (its entries are skipped).
fn bundle_type(body: &[u8]) -> Option<BundleType> {
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(rename = "type", borrow)]
        kind: Option<Cow<'a, str>>,
    }
    let head: Head = serde_json::from_slice(body).ok()?;
    match head.kind.as_deref() {
        Some("batch") => Some(BundleType::Batch),
        Some("transaction") => Some(BundleType::Transaction),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_url_grammar() {
        let cases = [
            ("GET", Some("/metadata"), "capabilities"),
            ("GET", Some("/Patient/1"), "read"),
            ("HEAD", Some("/Patient/1"), "read"),
            ("GET", Some("/Patient/1/_history/2"), "vread"),
            ("GET", Some("/Patient"), "search-type"),
            ("POST", Some("/Patient/_search"), "search-type"),
            ("GET", Some(""), "search-system"),
            ("POST", Some("/Patient"), "create"),
            ("PUT", Some("/Patient/1"), "update"),
            ("PUT", Some("/Patient?identifier=x"), "update"),
            ("PATCH", Some("/Patient/1"), "patch"),
            ("DELETE", Some("/Patient/1"), "delete"),
            ("GET", Some("/Patient/1/_history"), "history-instance"),
            ("GET", Some("/_history"), "history-system"),
            ("GET", Some("/$export"), "$export"),
            ("POST", Some("/Appointment/$find"), "$find"),
            ("GET", Some("/$no-such-operation"), "unknown-operation"),
            ("GET", Some("/_async/abc"), "async-status"),
            ("DELETE", Some("/$export-poll-status"), "async-status"),
            ("GET", Some("/_async/abc/result"), "async-result"),
            (
                "GET",
                Some("/_async/abc/files/Patient-1.ndjson"),
                "export-file",
            ),
            ("POST", Some("/auth/token"), "token"),
            ("GET", Some("/NoSuchType/1"), "unknown"),
            ("GET", Some("/Patient/bad_id"), "unknown"),
            ("BREW", Some("/Patient"), "unknown"),
            ("GET", None, "unknown"),
            ("POST", Some(""), "batch-or-transaction"),
        ];
        for (method, path, expected) in cases {
            assert_eq!(of_url(method, path), expected, "{method} {path:?}");
        }
    }

    #[test]
    fn a_bundle_post_is_named_by_its_type() {
        let post = |body: &str| {
            let mut request = FhirRequest::new(Method::Post, "");
            request.body = body.as_bytes().to_vec();
            of_bundle_post(&request).map(|n| n.0)
        };
        assert_eq!(
            post(r#"{"resourceType":"Bundle","entry":[{"resource":{"type":"batch"}}],"type":"transaction"}"#).as_deref(),
            Some("transaction")
        );
        assert_eq!(post(r#"{"type":"batch"}"#).as_deref(), Some("batch"));
        assert_eq!(post("not json").as_deref(), Some("batch-or-transaction"));
        let mut read = FhirRequest::new(Method::Get, "Patient/1");
        read.body = b"{}".to_vec();
        assert_eq!(of_bundle_post(&read), None);
    }
}
