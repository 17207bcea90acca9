//! Bulk Data `$export` (Bulk Data IG v2.0.0 plus `_until` from v3) at system, Patient and
//! Group level. Only asynchronous: the kick-off is checked at once ([`params`], the Group and
//! `patient` references), then the [`job::ExportJob`] writes NDJSON files ([`files`]) and the
//! status URL answers with the manifest ([`manifest`]).

pub mod files;
pub mod job;
pub mod manifest;
pub mod params;
mod provenance;
mod slices;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::{AsyncUse, Levels, OperationDef};
use crate::error::{ApiError, ApiResult};
use crate::interactions::Context;
use crate::response::FhirResponse;
use crate::route::OperationTarget;
use params::ExportLevel;

/// The kick-off parameters, as the OperationDefinitions and the CapabilityStatement describe
/// them (a macro so that each description is one `concat!`ed literal).
macro_rules! parameters_doc {
    () => {
        " Parameters: _outputFormat (application/fhir+ndjson, application/ndjson, ndjson), _since, _until, _type, _typeFilter, _elements, patient (POST, Patient and Group level) and includeAssociatedData: LatestProvenanceResources (the most recent Provenance of each exported resource) or RelevantProvenanceResources (every Provenance targeting an exported resource); without either, a Patient or Group export returns the Provenance whose target is in the exported Patient compartments. Asynchronous use is required: send 'Prefer: respond-async'."
    };
}

/// The job kind of exports.
pub const KIND: &str = "export";

/// `[base]/$export`.
pub static SYSTEM: OperationDef = OperationDef {
    name: "export",
    definition_id: "export",
    canonical: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
    description: concat!(
        "Exports every resource as NDJSON files (Bulk Data).",
        parameters_doc!()
    ),
    resource_types: &[],
    levels: Levels {
        system: true,
        type_: false,
        instance: false,
    },
    affects_state: false,
    async_use: |_, _| AsyncUse::Required,
    validate: Some(validate),
    job_kind: Some(KIND),
    handler: run,
};

/// `[base]/Patient/$export`.
pub static PATIENT: OperationDef = OperationDef {
    name: "export",
    definition_id: "patient-export",
    canonical: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
    description: concat!(
        "Exports the Patient compartments of all Patients as NDJSON files (Bulk Data).",
        parameters_doc!()
    ),
    resource_types: &["Patient"],
    levels: Levels {
        system: false,
        type_: true,
        instance: false,
    },
    affects_state: false,
    async_use: |_, _| AsyncUse::Required,
    validate: Some(validate),
    job_kind: Some(KIND),
    handler: run,
};

/// `[base]/Group/{id}/$export`.
pub static GROUP: OperationDef = OperationDef {
    name: "export",
    definition_id: "group-export",
    canonical: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
    description: concat!(
        "Exports the Patient compartments of a Group's member Patients as NDJSON files (Bulk Data).",
        parameters_doc!()
    ),
    resource_types: &["Group"],
    levels: Levels {
        system: false,
        type_: false,
        instance: true,
    },
    affects_state: false,
    async_use: |_, _| AsyncUse::Required,
    validate: Some(validate),
    job_kind: Some(KIND),
    handler: run,
};

/// Never reached through `dispatch` (the operation is asynchronous only, which the server
/// checks first); answers as that check does.
fn run<'a>(
    _ctx: &'a Context<'a>,
    _target: &'a OperationTarget,
) -> BoxFuture<'a, ApiResult<FhirResponse>> {
    async move {
        Err(ApiError::bad_request(
            "Operation $export requires \"Prefer: respond-async\"",
        ))
    }
    .boxed()
}

/// The kick-off checks: parameters, the export store, the Group and the `patient` list.
fn validate<'a>(ctx: &'a Context<'a>, target: &'a OperationTarget) -> BoxFuture<'a, ApiResult<()>> {
    async move {
        let config = ctx.server.config();
        let search_params = ctx.server.search_params().await?;
        let export = params::parse(
            config,
            &search_params,
            ctx.request,
            target,
            ctx.prefs.lenient_explicit,
        )?;
        ctx.server.export_files()?;
        let members = match &export.level {
            ExportLevel::Group(id) => {
                let group = ctx.server.store().read("Group", id).await?;
                let group = group
                    .filter(|g| !g.is_deleted())
                    .ok_or_else(|| params::unknown_group(id))?;
                let body = oxifhir_model::json::parse(&group.body).map_err(ApiError::internal)?;
                Some(params::group_patients(config, &body))
            }
            _ => None,
        };
        for patient in export.patients.iter().flatten() {
            let known = match &members {
                Some(members) => members.binary_search(patient).is_ok(),
                None => ctx
                    .server
                    .store()
                    .read("Patient", patient)
                    .await?
                    .is_some_and(|p| !p.is_deleted()),
            };
            if !known {
                let place = if members.is_some() {
                    "a member of the Group"
                } else {
                    "on this server"
                };
                return Err(
                    ApiError::bad_request(format!("Patient/{patient} is not {place}"))
                        .at("patient"),
                );
            }
        }
        Ok(())
    }
    .boxed()
}

/// `GET {base}/_async/{id}/files/{name}`: a file of a completed export that its client may
/// see, from byte `offset` on (a resumed download; the whole file when `offset` is 0 or not
/// before its end). Anything else (unknown, cancelled, released or unfinished job, a name the
/// export did not write, a path) is `404`.
pub async fn file(
    ctx: &Context<'_>,
    id: &str,
    name: &str,
    offset: u64,
) -> ApiResult<files::FileBody> {
    let missing = || ApiError::not_found("No such export file (it may have expired)");
    if !files::is_file_name(name) {
        return Err(missing());
    }
    let job = crate::asynchronous::status::visible_job(ctx, id)
        .await?
        .filter(|job| {
            job.kind == KIND
                && job.state == oxifhir_store::jobs::JobState::Completed
                && job.released_at.is_none()
        })
        .ok_or_else(missing)?;
    let result = manifest::ExportResult::from_bytes(job.result.as_deref().unwrap_or_default())?;
    if result.file(name).is_none() {
        return Err(missing());
    }
    ctx.server
        .export_files()?
        .read(&job.id, name, offset)
        .await
        .map_err(|e| ApiError::internal(format!("reading export file {id}/{name}: {e}")))?
        .ok_or_else(missing)
}
