//! Which interaction a request is: the FHIR REST URL grammar, in one place.

use oxifhir_model::{id, resource_type};

use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::request::{FhirRequest, Method};

/// Where an operation is invoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationTarget {
    System,
    Type(String),
    Instance(String, String),
}

/// The interaction a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interaction {
    Capabilities,
    /// `POST [base]` with a batch or transaction Bundle.
    BatchOrTransaction,
    SearchSystem,
    HistorySystem,
    Create {
        resource_type: String,
    },
    SearchType {
        resource_type: String,
    },
    HistoryType {
        resource_type: String,
    },
    ConditionalUpdate {
        resource_type: String,
    },
    ConditionalPatch {
        resource_type: String,
    },
    ConditionalDelete {
        resource_type: String,
    },
    Read {
        resource_type: String,
        id: String,
    },
    VRead {
        resource_type: String,
        id: String,
        version_id: i64,
    },
    Update {
        resource_type: String,
        id: String,
    },
    Patch {
        resource_type: String,
        id: String,
    },
    Delete {
        resource_type: String,
        id: String,
    },
    HistoryInstance {
        resource_type: String,
        id: String,
    },
    Operation {
        name: String,
        target: OperationTarget,
    },
    /// `GET`/`DELETE [base]/_async/{id}`: the status of an asynchronous request.
    AsyncStatus {
        id: String,
    },
    /// `GET [base]/_async/{id}/result`: the stored response of a finished one.
    AsyncResult {
        id: String,
    },
    /// `GET`/`DELETE [base]/$export-poll-status?_jobId={id}`: the status URL's alias.
    ExportPollStatus,
}

/// Recognizes the interaction of a request, or explains why there is none.
pub fn route(request: &FhirRequest) -> ApiResult<Interaction> {
    use Method::*;
    let segs: Vec<&str> = request.segments.iter().map(String::as_str).collect();
    let method = match request.method {
        Head => Get,
        m => m,
    };
    let interaction = match (method, segs.as_slice()) {
        (Get, ["metadata"]) => Interaction::Capabilities,
        (Post, []) => Interaction::BatchOrTransaction,
        (Get, []) | (Post, ["_search"]) => Interaction::SearchSystem,
        (Get, ["_history"]) => Interaction::HistorySystem,
        (Get | Delete, ["_async", id]) => Interaction::AsyncStatus { id: id.to_string() },
        (Get, ["_async", id, "result"]) => Interaction::AsyncResult { id: id.to_string() },
        (_, ["_async", ..]) => return Err(method_not_allowed(method)),
        (Get | Delete, ["$export-poll-status"]) => Interaction::ExportPollStatus,
        (Get | Post, [op]) if op.starts_with('$') => operation(op, OperationTarget::System)?,
        (_, [t, ..]) if !t.starts_with('$') && !t.starts_with('_') => {
            let rt = known_type(t)?;
            typed(method, rt, &segs[1..])?
        }
        _ => return Err(unknown_path(request)),
    };
    Ok(interaction)
}

fn typed(method: Method, rt: String, rest: &[&str]) -> ApiResult<Interaction> {
    use Method::*;
    Ok(match (method, rest) {
        (Post, []) => Interaction::Create { resource_type: rt },
        (Get, []) | (Post, ["_search"]) => Interaction::SearchType { resource_type: rt },
        (Put, []) => Interaction::ConditionalUpdate { resource_type: rt },
        (Patch, []) => Interaction::ConditionalPatch { resource_type: rt },
        (Delete, []) => Interaction::ConditionalDelete { resource_type: rt },
        (Get, ["_history"]) => Interaction::HistoryType { resource_type: rt },
        (Get | Post, [op]) if op.starts_with('$') => operation(op, OperationTarget::Type(rt))?,
        (_, [id, ..]) if !id.starts_with('$') && !id.starts_with('_') => {
            let id = valid_id(id)?;
            match (method, &rest[1..]) {
                (Get, []) => Interaction::Read {
                    resource_type: rt,
                    id,
                },
                (Put, []) => Interaction::Update {
                    resource_type: rt,
                    id,
                },
                (Patch, []) => Interaction::Patch {
                    resource_type: rt,
                    id,
                },
                (Delete, []) => Interaction::Delete {
                    resource_type: rt,
                    id,
                },
                (Get, ["_history"]) => Interaction::HistoryInstance {
                    resource_type: rt,
                    id,
                },
                (Get, ["_history", vid]) => {
                    let version_id =
                        vid.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
                            ApiError::bad_request(format!("Invalid version id '{vid}'"))
                        })?;
                    Interaction::VRead {
                        resource_type: rt,
                        id,
                        version_id,
                    }
                }
                (Get | Post, [op]) if op.starts_with('$') => {
                    operation(op, OperationTarget::Instance(rt, id))?
                }
                (_, [] | ["_history", ..]) => return Err(method_not_allowed(method)),
                _ => return Err(ApiError::not_found("Unknown path")),
            }
        }
        (_, [] | ["_history"] | ["_search"]) => return Err(method_not_allowed(method)),
        _ => return Err(ApiError::not_found("Unknown path")),
    })
}

fn operation(segment: &str, target: OperationTarget) -> ApiResult<Interaction> {
    let name = &segment[1..];
    if name.is_empty() {
        return Err(ApiError::bad_request("Missing operation name after '$'"));
    }
    Ok(Interaction::Operation {
        name: name.to_string(),
        target,
    })
}

/// The resource type named in a URL, or `400` if the server does not know it.
pub fn known_type(name: &str) -> ApiResult<String> {
    if resource_type::is_known(name) {
        Ok(name.to_string())
    } else {
        Err(ApiError::not_supported(format!(
            "Unknown resource type '{name}'"
        )))
    }
}

/// A logical id from a URL, or `400` if it breaks the R4 id rule.
pub fn valid_id(text: &str) -> ApiResult<String> {
    if id::is_valid(text) {
        Ok(text.to_string())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid id '{}': ids are 1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
            truncate(text, 80)
        )))
    }
}

fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        ErrorKind::MethodNotAllowed,
        format!("{} is not allowed here", method.as_str()),
    )
}

fn unknown_path(request: &FhirRequest) -> ApiError {
    ApiError::not_found(format!(
        "Unknown path '{}'",
        truncate(&request.segments.join("/"), 120)
    ))
}

/// At most `max` characters of `text`, for messages that quote input.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(max).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(method: Method, path: &str) -> Result<Interaction, u16> {
        route(&FhirRequest::new(method, path)).map_err(|e| e.status())
    }

    #[test]
    fn routes() {
        use Interaction as I;
        let p = || "Patient".to_string();
        assert_eq!(r(Method::Get, "metadata"), Ok(I::Capabilities));
        assert_eq!(r(Method::Post, ""), Ok(I::BatchOrTransaction));
        assert_eq!(
            r(Method::Post, "Patient"),
            Ok(I::Create { resource_type: p() })
        );
        assert_eq!(
            r(Method::Get, "Patient/1"),
            Ok(I::Read {
                resource_type: p(),
                id: "1".into()
            })
        );
        assert_eq!(
            r(Method::Head, "Patient/1"),
            Ok(I::Read {
                resource_type: p(),
                id: "1".into()
            })
        );
        assert_eq!(
            r(Method::Get, "Patient/1/_history/3"),
            Ok(I::VRead {
                resource_type: p(),
                id: "1".into(),
                version_id: 3
            })
        );
        assert_eq!(
            r(Method::Post, "Patient/_search"),
            Ok(I::SearchType { resource_type: p() })
        );
        assert_eq!(
            r(Method::Post, "AsyncJob/9/$cancel"),
            Ok(I::Operation {
                name: "cancel".into(),
                target: OperationTarget::Instance("AsyncJob".into(), "9".into())
            })
        );
        assert_eq!(r(Method::Get, "Patient/1/_history/x"), Err(400));
        assert_eq!(r(Method::Get, "Patient/a_b"), Err(400));
        assert_eq!(r(Method::Get, "Foo/1"), Err(400));
        assert_eq!(r(Method::Post, "Patient/1"), Err(405));
        assert_eq!(r(Method::Get, "Patient/1/x/y"), Err(404));
    }
}
