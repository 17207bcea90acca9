//! `create`, `update`, `patch` and `delete`, plain and conditional, each in one store
//! transaction so that its checks and its write are atomic.

use oxifhir_model::OperationOutcome;
use oxifhir_model::id::new_id;
use oxifhir_store::{Isolation, ResourceVersion, WriteMethod};
use serde_json::{Map, Value};

use super::search::conditional_matches;
use super::{Context, etag, write_response};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::format::{BodyKind, body_kind};
use crate::prefer::ReturnPreference;
use crate::repository::{self, Deleted, TxFailure, in_transaction, parse_etag};
use crate::response::FhirResponse;
use crate::server::reject_client_writes;

/// `POST [type]`, with `If-None-Exist` for a conditional create.
pub async fn create(ctx: &Context<'_>, resource_type: &str) -> ApiResult<FhirResponse> {
    reject_client_writes(resource_type)?;
    body_kind(ctx.request, &[BodyKind::Json])?;
    let resource = repository::parse_resource(&ctx.request.body, Some(resource_type))?;
    let criteria = ctx.request.headers.if_none_exist.clone();
    let assigned = ctx.request.assigned_id.as_deref();
    let id = assigned.map_or_else(new_id, str::to_owned);
    let params = ctx.server.search_params().await?;
    if criteria.is_none() {
        return match repository::create_alone(
            ctx.server.store(),
            &params,
            resource_type,
            &id,
            resource,
        )
        .await
        {
            Ok(created) => Ok(write_response(ctx, &created, 201)),
            Err(e) => match first_run_creation(ctx, resource_type, assigned).await? {
                Some(first) => Ok(write_response(ctx, &first, 201)),
                None => Err(e),
            },
        };
    }
    let config = ctx.server.config().clone();
    let rt = resource_type.to_string();
    let outcome = in_transaction(ctx.server.store(), Isolation::Serializable, |tx| {
        let (rt, id, resource, criteria, config, params) = (
            rt.clone(),
            id.clone(),
            resource.clone(),
            criteria.clone(),
            config.clone(),
            params.clone(),
        );
        Box::pin(async move {
            if let Some(criteria) = criteria {
                let matches = conditional_matches(tx, &config, &params, &rt, &criteria).await?;
                match matches.len() {
                    0 => {}
                    1 => return Ok((matches.into_iter().next(), None)),
                    _ => return Err(multiple_matches("If-None-Exist").into()),
                }
            }
            let created = repository::write_version(
                tx,
                &params,
                &rt,
                &id,
                resource,
                None,
                WriteMethod::Create,
            )
            .await?;
            Ok::<_, TxFailure>((None, Some(created)))
        })
    })
    .await?;
    match outcome {
        (Some(existing), _) if assigned == Some(existing.id.as_str()) => {
            match first_run_creation(ctx, resource_type, assigned).await? {
                Some(first) => Ok(write_response(ctx, &first, 201)),
                None => Ok(write_response(ctx, &existing, 200)),
            }
        }
        (Some(existing), _) => Ok(write_response(ctx, &existing, 200)),
        (_, Some(created)) => Ok(write_response(ctx, &created, 201)),
        _ => Err(ApiError::internal("conditional create returned nothing")),
    }
}

/// The version a first run of this asynchronous create wrote, when the job is run again after
/// its worker died between the write and storing the response: version 1 of the resource under
/// the id fixed at kick-off.
async fn first_run_creation(
    ctx: &Context<'_>,
    resource_type: &str,
    assigned: Option<&str>,
) -> ApiResult<Option<ResourceVersion>> {
    let Some(id) = assigned else {
        return Ok(None);
    };
    let first = ctx.server.store().vread(resource_type, id, 1).await?;
    Ok(first.filter(|v| v.method == WriteMethod::Create))
}

/// `PUT [type]/[id]` (with `If-Match` / `If-None-Match: *`), or `PUT [type]?criteria` when
/// `id` is `None`.
pub async fn update(
    ctx: &Context<'_>,
    resource_type: &str,
    id: Option<String>,
) -> ApiResult<FhirResponse> {
    reject_client_writes(resource_type)?;
    body_kind(ctx.request, &[BodyKind::Json])?;
    let resource = repository::parse_resource(&ctx.request.body, Some(resource_type))?;
    let body_id = resource
        .get("id")
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(url_id) = &id {
        match &body_id {
            None => {
                return Err(ApiError::bad_request(
                    "The resource has no id; an update needs the id of the URL",
                ));
            }
            Some(b) if b != url_id => {
                return Err(ApiError::bad_request(format!(
                    "The resource's id '{b}' differs from the id '{url_id}' in the URL"
                ))
                .at(format!("{resource_type}.id")));
            }
            _ => {}
        }
    }
    let if_match = ctx
        .request
        .headers
        .if_match
        .as_deref()
        .map(parse_etag)
        .transpose()?;
    let create_only = ctx.request.headers.if_none_match.as_deref().map(str::trim) == Some("*");
    let criteria = match id {
        Some(_) => None,
        None => Some(ctx.request.query_string()),
    };
    let params = ctx.server.search_params().await?;
    if let (Some(id), None, false) = (&id, &criteria, create_only) {
        let updated = repository::update_alone(
            ctx.server.store(),
            &params,
            resource_type,
            id,
            resource,
            if_match,
        )
        .await?;
        return Ok(write_response(
            ctx,
            &updated.version,
            if updated.created { 201 } else { 200 },
        ));
    }
    let config = ctx.server.config().clone();
    let rt = resource_type.to_string();
    let updated = in_transaction(ctx.server.store(), Isolation::Serializable, |tx| {
        let (rt, id, body_id, resource, criteria, config, params) = (
            rt.clone(),
            id.clone(),
            body_id.clone(),
            resource.clone(),
            criteria.clone(),
            config.clone(),
            params.clone(),
        );
        Box::pin(async move {
            let target = match (id, criteria) {
                (Some(id), _) => id,
                (None, criteria) => {
                    let criteria = criteria.unwrap_or_default();
                    let matches =
                        conditional_matches(tx, &config, &params, &rt, &criteria).await?;
                    match (matches.as_slice(), body_id) {
                        ([], Some(body_id)) => body_id,
                        ([], None) => new_id(),
                        ([found], Some(body_id)) if found.id != body_id => {
                            return Err(ApiError::bad_request(format!(
                                "The resource's id '{body_id}' differs from the matching resource {rt}/{}",
                                found.id
                            ))
                            .into());
                        }
                        ([found], _) => found.id.clone(),
                        _ => return Err(multiple_matches("Conditional update").into()),
                    }
                }
            };
            if create_only && tx.read(&rt, &target).await?.is_some_and(|c| !c.is_deleted()) {
                return Err(ApiError::new(
                    ErrorKind::PreconditionFailed,
                    format!("If-None-Match: *: {rt}/{target} already exists"),
                )
                .into());
            }
            repository::update(tx, &params, &rt, &target, resource, if_match).await
        })
    })
    .await?;
    Ok(write_response(
        ctx,
        &updated.version,
        if updated.created { 201 } else { 200 },
    ))
}

/// `PATCH [type]/[id]` with a JSON Patch document, or `PATCH [type]?criteria`.
pub async fn patch(
    ctx: &Context<'_>,
    resource_type: &str,
    id: Option<String>,
) -> ApiResult<FhirResponse> {
    reject_client_writes(resource_type)?;
    body_kind(ctx.request, &[BodyKind::JsonPatch]).map_err(|_| {
        ApiError::new(
            ErrorKind::UnsupportedMediaType,
            "PATCH takes a JSON Patch document (Content-Type: application/json-patch+json)",
        )
    })?;
    let patch: json_patch::Patch = serde_json::from_slice(&ctx.request.body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON Patch document: {e}")))?;
    let if_match = ctx
        .request
        .headers
        .if_match
        .as_deref()
        .map(parse_etag)
        .transpose()?;
    let criteria = ctx.request.query_string();
    let config = ctx.server.config().clone();
    let params = ctx.server.search_params().await?;
    let rt = resource_type.to_string();
    let isolation = if id.is_some() {
        Isolation::VersionChecked
    } else {
        Isolation::Serializable
    };
    let updated = in_transaction(ctx.server.store(), isolation, |tx| {
        let (rt, id, patch, criteria, config, params) = (
            rt.clone(),
            id.clone(),
            patch.clone(),
            criteria.clone(),
            config.clone(),
            params.clone(),
        );
        Box::pin(async move {
            let current = match id {
                Some(id) => tx.read(&rt, &id).await?,
                None => {
                    let matches = conditional_matches(tx, &config, &params, &rt, &criteria).await?;
                    match matches.len() {
                        0 => {
                            return Err(ApiError::not_found(
                                "Conditional patch: no resource matches",
                            )
                            .into());
                        }
                        1 => matches.into_iter().next(),
                        _ => return Err(multiple_matches("Conditional patch").into()),
                    }
                }
            };
            let current = super::read::found(current, &rt, "(target)")?;
            let patched = apply_patch(&current, &patch)?;
            repository::update(tx, &params, &rt, &current.id, patched, if_match).await
        })
    })
    .await?;
    Ok(write_response(ctx, &updated.version, 200))
}

fn apply_patch(
    current: &ResourceVersion,
    patch: &json_patch::Patch,
) -> Result<Map<String, Value>, ApiError> {
    let mut value = oxifhir_model::json::parse(&current.body).map_err(ApiError::internal)?;
    json_patch::patch(&mut value, patch).map_err(|e| {
        ApiError::new(
            ErrorKind::Unprocessable,
            format!("The JSON Patch cannot be applied: {e}"),
        )
    })?;
    if value.get("id").and_then(Value::as_str) != Some(current.id.as_str()) {
        return Err(ApiError::bad_request(
            "A patch must not change or remove the resource's id",
        ));
    }
    repository::resource_from_value(value, Some(&current.resource_type))
}

/// `DELETE [type]/[id]`, or `DELETE [type]?criteria` (one match at most).
pub async fn delete(
    ctx: &Context<'_>,
    resource_type: &str,
    id: Option<String>,
) -> ApiResult<FhirResponse> {
    reject_client_writes(resource_type)?;
    let criteria = ctx.request.query_string();
    let config = ctx.server.config().clone();
    let params = ctx.server.search_params().await?;
    let rt = resource_type.to_string();
    let isolation = if id.is_some() {
        Isolation::VersionChecked
    } else {
        Isolation::Serializable
    };
    let deleted = in_transaction(ctx.server.store(), isolation, |tx| {
        let (rt, id, criteria, config, params) = (
            rt.clone(),
            id.clone(),
            criteria.clone(),
            config.clone(),
            params.clone(),
        );
        Box::pin(async move {
            let id = match id {
                Some(id) => id,
                None => {
                    let matches = conditional_matches(tx, &config, &params, &rt, &criteria).await?;
                    match matches.as_slice() {
                        [] => return Ok(None),
                        [found] => found.id.clone(),
                        _ => return Err(multiple_matches("Conditional delete").into()),
                    }
                }
            };
            Ok(Some((id.clone(), repository::delete(tx, &rt, &id).await?)))
        })
    })
    .await?;
    let tombstone = match deleted {
        None => None,
        Some((id, Deleted::Never)) => {
            return Err(ApiError::not_found(format!(
                "{resource_type}/{id} is not known"
            )));
        }
        Some((_, Deleted::Now(v) | Deleted::Already(v))) => Some(v),
    };
    let mut response = match ctx.prefs.return_ {
        ReturnPreference::OperationOutcome => FhirResponse::json(
            200,
            oxifhir_model::json::to_bytes(&OperationOutcome::information("Deleted").to_json()),
        ),
        _ => FhirResponse::empty(204),
    };
    if let Some(v) = tombstone {
        response = response.with_header("etag", etag(&v));
    }
    Ok(response)
}

fn multiple_matches(what: &str) -> ApiError {
    ApiError::with_code(
        ErrorKind::PreconditionFailed,
        oxifhir_model::IssueCode::MultipleMatches,
        format!("{what}: the criteria match more than one resource"),
    )
}
