//! `$expunge` at system, type and instance level (DESIGN.md §5): removes for good the
//! versions of deleted resources (`expungeDeletedResources`), versions older than the current
//! one (`expungePreviousVersions`), everything (`expungeEverything`, system level), or a
//! Patient with its compartment (`everything=true` on a Patient instance). `limit` bounds
//! how many deleted resources and how many previous versions are removed. The result is a
//! `Parameters` with the `count` of versions removed.
//!
//! `expungeEverything` and `everything` run only asynchronously; the rest also runs
//! synchronously. Either way the work is done in bounded batches ([`job`]), each its own
//! transaction; as a job, each batch's transaction also stores the checkpoint, so a resumed
//! job neither repeats nor loses a count, and a cancelled one stops between batches.

pub mod job;

use futures::FutureExt;
use futures::future::BoxFuture;
use oxifhir_model::resource_type;

use super::{AsyncUse, Levels, OperationDef, parameters};
use crate::error::{ApiError, ApiResult};
use crate::interactions::Context;
use crate::request::FhirRequest;
use crate::response::FhirResponse;
use crate::route::{OperationTarget, truncate};

/// The job kind of expunges.
pub const KIND: &str = "expunge";

/// `[base]/$expunge`, `[base]/{type}/$expunge`, `[base]/{type}/{id}/$expunge`.
pub static DEF: OperationDef = OperationDef {
    name: "expunge",
    definition_id: "expunge",
    canonical: "http://oxifhir.dev/fhir/OperationDefinition/expunge",
    description: "Removes stored data for good: the versions of deleted resources (expungeDeletedResources), versions older than the current one (expungePreviousVersions), at most 'limit' of each, everything (expungeEverything, system level, asynchronous only) or a Patient and its compartment (everything=true on a Patient, asynchronous only); returns the count of versions removed.",
    resource_types: &["Resource"],
    levels: Levels {
        system: true,
        type_: true,
        instance: true,
    },
    affects_state: true,
    async_use: |target, request| match ExpungeRequest::parse(request, target) {
        Ok(r) if r.everything => AsyncUse::Required,
        _ => AsyncUse::Allowed,
    },
    validate: Some(validate),
    job_kind: Some(KIND),
    handler: run,
};

/// The parameters this operation takes.
const NAMES: &[&str] = &[
    "expungeDeletedResources",
    "expungePreviousVersions",
    "expungeEverything",
    "everything",
    "limit",
];

/// A parsed `$expunge` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpungeRequest {
    pub target: OperationTarget,
    /// `expungeDeletedResources`.
    pub deleted: bool,
    /// `expungePreviousVersions`.
    pub previous: bool,
    /// `expungeEverything` (system) or `everything` (a Patient and its compartment).
    pub everything: bool,
    /// Most deleted resources, and most previous versions, removed.
    pub limit: Option<u64>,
}

impl ExpungeRequest {
    /// The request's parameters at `target`, or the `400` they deserve.
    pub fn parse(request: &FhirRequest, target: &OperationTarget) -> ApiResult<ExpungeRequest> {
        let params = parameters::gather(request, "expunge", NAMES)?;
        let deleted = parameters::boolean(&params, "expungeDeletedResources")?;
        let previous = parameters::boolean(&params, "expungePreviousVersions")?;
        let expunge_everything = parameters::boolean(&params, "expungeEverything")?;
        let everything = parameters::boolean(&params, "everything")?;
        let limits: Vec<&str> = params
            .iter()
            .filter(|(k, _)| k == "limit")
            .map(|(_, v)| v.as_str())
            .collect();
        let limit = match limits.as_slice() {
            [] => None,
            [one] => Some(one.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "The parameter 'limit' must be a positive integer, not '{}'",
                    truncate(one, 64)
                ))
                .at("limit")
            })?),
            _ => {
                return Err(
                    ApiError::bad_request("The parameter 'limit' is given twice").at("limit"),
                );
            }
        };
        if expunge_everything && *target != OperationTarget::System {
            return Err(ApiError::bad_request(
                "expungeEverything is a system-level parameter; to remove a Patient with its compartment use everything=true on the Patient",
            )
            .at("expungeEverything"));
        }
        if everything && !matches!(target, OperationTarget::Instance(t, _) if t == "Patient") {
            return Err(ApiError::bad_request(
                "everything=true removes a Patient and its compartment: use it on a Patient instance (expungeEverything at system level)",
            )
            .at("everything"));
        }
        if let OperationTarget::Type(t) | OperationTarget::Instance(t, _) = target
            && (!resource_type::is_known(t) || t == resource_type::ASYNC_JOB)
        {
            return Err(ApiError::bad_request(format!(
                "Resources of type '{}' cannot be expunged",
                truncate(t, 64)
            )));
        }
        if !(deleted || previous || expunge_everything || everything) {
            return Err(ApiError::bad_request(
                "Nothing to expunge: set expungeDeletedResources, expungePreviousVersions, expungeEverything (system) or everything (a Patient) to true",
            ));
        }
        Ok(ExpungeRequest {
            target: target.clone(),
            deleted,
            previous,
            everything: everything || expunge_everything,
            limit,
        })
    }
}

/// The request, with the resource of an instance-level request checked to have existed.
async fn checked(ctx: &Context<'_>, target: &OperationTarget) -> ApiResult<ExpungeRequest> {
    let request = ExpungeRequest::parse(ctx.request, target)?;
    if let OperationTarget::Instance(t, id) = target
        && ctx.server.store().read(t, id).await?.is_none()
    {
        return Err(ApiError::not_found(format!(
            "{t}/{} is not stored here",
            truncate(id, 64)
        )));
    }
    Ok(request)
}

/// The kick-off checks.
fn validate<'a>(ctx: &'a Context<'a>, target: &'a OperationTarget) -> BoxFuture<'a, ApiResult<()>> {
    async move { checked(ctx, target).await.map(drop) }.boxed()
}

/// A synchronous expunge (asynchronous-only requests never get here).
fn run<'a>(
    ctx: &'a Context<'a>,
    target: &'a OperationTarget,
) -> BoxFuture<'a, ApiResult<FhirResponse>> {
    async move {
        let request = checked(ctx, target).await?;
        let done = job::execute(ctx.server, &request, None, job::Progress::default())
            .await
            .map_err(|e| ApiError::internal(format!("expunge failed: {e}")))?;
        Ok(FhirResponse::json(
            200,
            oxifhir_model::json::to_bytes(&job::result(&done)),
        ))
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Method;

    fn parse(path: &str, target: OperationTarget) -> Result<ExpungeRequest, u16> {
        ExpungeRequest::parse(&FhirRequest::new(Method::Post, path), &target)
            .map_err(|e| e.status())
    }

    #[test]
    fn parameters() {
        let system = || OperationTarget::System;
        let patient = || OperationTarget::Instance("Patient".into(), "p1".into());
        let r = parse("$expunge?expungeDeletedResources=true&limit=10", system()).unwrap();
        assert!(r.deleted && !r.previous && !r.everything);
        assert_eq!(r.limit, Some(10));
        assert!(
            parse("$expunge?expungeEverything=true", system())
                .unwrap()
                .everything
        );
        assert!(
            parse("Patient/p1/$expunge?everything=true", patient())
                .unwrap()
                .everything
        );
        assert_eq!(parse("$expunge", system()), Err(400));
        assert_eq!(
            parse("$expunge?expungeDeletedResources=yes", system()),
            Err(400)
        );
        assert_eq!(
            parse("$expunge?expungePreviousVersions=true&limit=0", system()),
            Err(400)
        );
        assert_eq!(parse("$expunge?everything=true", system()), Err(400));
        assert_eq!(
            parse(
                "Patient/$expunge?expungeEverything=true",
                OperationTarget::Type("Patient".into())
            ),
            Err(400)
        );
        assert_eq!(
            parse(
                "Observation/o/$expunge?everything=true",
                OperationTarget::Instance("Observation".into(), "o".into())
            ),
            Err(400)
        );
    }
}
