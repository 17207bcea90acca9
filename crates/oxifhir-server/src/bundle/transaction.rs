//! Transaction Bundles: every entry in one store transaction, all or nothing, in the order
//! FHIR prescribes (DELETE, POST, PUT/PATCH, then GET), with ids assigned up front so that
//! `urn:uuid` and conditional references can be rewritten before anything is written.

use std::collections::{HashMap, HashSet};

use oxifhir_model::OperationOutcome;
use oxifhir_model::id::new_id;
use oxifhir_store::{Isolation, ResourceVersion, StoreTx, WriteMethod};
use serde_json::{Map, Value};

use super::references::{conditional_references, rewrite};
use super::{EntryRequest, EntryResult, response_bundle};
use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::interactions::read::found;
use crate::interactions::search::{self, conditional_matches};
use crate::interactions::{Context, etag};
use crate::prefer::ReturnPreference;
use crate::repository::{self, Deleted, TxFailure, in_transaction, parse_etag};
use crate::request::FhirRequest;
use crate::response::FhirResponse;
use crate::route::{self, Interaction};
use crate::search_params::SearchParams;

/// What an entry does, decided before the transaction starts.
#[derive(Debug, Clone)]
enum Action {
    Create {
        resource_type: String,
        resource: Map<String, Value>,
    },
    Update {
        resource_type: String,
        id: Option<String>,
        resource: Map<String, Value>,
    },
    Patch {
        resource_type: String,
        id: Option<String>,
        patch: json_patch::Patch,
    },
    Delete {
        resource_type: String,
        id: Option<String>,
    },
    Read {
        resource_type: String,
        id: String,
        version_id: Option<i64>,
    },
    Search {
        resource_type: Option<String>,
        params: Vec<(String, String)>,
    },
}

impl Action {
    /// Processing phase: DELETE, POST, PUT/PATCH, GET.
    fn phase(&self) -> u8 {
        match self {
            Action::Delete { .. } => 0,
            Action::Create { .. } => 1,
            Action::Update { .. } | Action::Patch { .. } => 2,
            Action::Read { .. } | Action::Search { .. } => 3,
        }
    }
}

#[derive(Debug, Clone)]
struct Planned {
    entry: EntryRequest,
    action: Action,
    /// Criteria of conditional entries (`If-None-Exist` or the URL's query).
    criteria: Option<String>,
}

/// Runs a transaction and answers `200` with a `transaction-response` Bundle, or fails as a
/// whole with the first failing entry's error.
pub(super) async fn process(
    ctx: &Context<'_>,
    entries: Vec<EntryRequest>,
) -> ApiResult<FhirResponse> {
    for entry in &entries {
        let mut request = FhirRequest::new(entry.method, &entry.url);
        request.headers.if_none_exist = entry.if_none_exist.clone();
        crate::auth::access::authorize_entry(
            ctx.server.auth(),
            ctx.request.principal.as_ref(),
            &request,
            entry.resource.as_ref(),
        )
        .map_err(|e| e.at(entry.location()))?;
    }
    let plan = entries
        .into_iter()
        .map(plan_entry)
        .collect::<ApiResult<Vec<_>>>()?;
    let config = ctx.server.config().clone();
    let params = ctx.server.search_params().await?;
    let ret = ctx.prefs.return_;
    let seed = ctx.request.assigned_id.clone();
    let results = in_transaction(ctx.server.store(), Isolation::Serializable, |tx| {
        let (plan, config, params, seed) =
            (plan.clone(), config.clone(), params.clone(), seed.clone());
        Box::pin(async move { execute(tx, &config, &params, plan, ret, seed.as_deref()).await })
    })
    .await?;
    Ok(FhirResponse::json(
        200,
        response_bundle("transaction-response", &results),
    ))
}

/// The id of the resource that entry `index` of a Bundle kicked off asynchronously with
/// `seed` (its `assigned_id`) creates.
pub(crate) fn entry_id(seed: &str, index: usize) -> String {
    format!("{seed}-{index}")
}

fn plan_entry(entry: EntryRequest) -> ApiResult<Planned> {
    let at = |e: ApiError| e.at(entry.location());
    let request = FhirRequest::new(entry.method, &entry.url);
    let query = entry.url.split_once('?').map(|(_, q)| q.to_string());
    let interaction = route::route(&request).map_err(at)?;
    let resource = |rt: &str| -> ApiResult<Map<String, Value>> {
        let value = entry.resource.clone().unwrap_or(Value::Null);
        repository::resource_from_value(value, Some(rt)).map_err(at)
    };
    let (action, criteria) = match interaction {
        Interaction::Create { resource_type } => {
            let resource = resource(&resource_type)?;
            (
                Action::Create {
                    resource_type,
                    resource,
                },
                entry.if_none_exist.clone(),
            )
        }
        Interaction::Update { resource_type, id } => {
            let resource = resource(&resource_type)?;
            if resource.get("id").and_then(Value::as_str) != Some(id.as_str()) {
                return Err(at(ApiError::bad_request(format!(
                    "{}: the resource's id must be '{id}', the id in request.url",
                    entry.location()
                ))));
            }
            (
                Action::Update {
                    resource_type,
                    id: Some(id),
                    resource,
                },
                None,
            )
        }
        Interaction::ConditionalUpdate { resource_type } => {
            let resource = resource(&resource_type)?;
            (
                Action::Update {
                    resource_type,
                    id: None,
                    resource,
                },
                query,
            )
        }
        Interaction::Patch { resource_type, id } => (
            Action::Patch {
                resource_type,
                id: Some(id),
                patch: entry_patch(&entry).map_err(at)?,
            },
            None,
        ),
        Interaction::ConditionalPatch { resource_type } => (
            Action::Patch {
                resource_type,
                id: None,
                patch: entry_patch(&entry).map_err(at)?,
            },
            query,
        ),
        Interaction::Delete { resource_type, id } => (
            Action::Delete {
                resource_type,
                id: Some(id),
            },
            None,
        ),
        Interaction::ConditionalDelete { resource_type } => (
            Action::Delete {
                resource_type,
                id: None,
            },
            query,
        ),
        Interaction::Read { resource_type, id } => (
            Action::Read {
                resource_type,
                id,
                version_id: None,
            },
            None,
        ),
        Interaction::VRead {
            resource_type,
            id,
            version_id,
        } => (
            Action::Read {
                resource_type,
                id,
                version_id: Some(version_id),
            },
            None,
        ),
        Interaction::SearchType { resource_type } => (
            Action::Search {
                resource_type: Some(resource_type),
                params: request.query.clone(),
            },
            None,
        ),
        Interaction::SearchSystem => (
            Action::Search {
                resource_type: None,
                params: request.query.clone(),
            },
            None,
        ),
        _ => {
            return Err(at(ApiError::not_supported(format!(
                "{}: {} {} cannot be part of a transaction",
                entry.location(),
                entry.method.as_str(),
                entry.url
            ))));
        }
    };
    Ok(Planned {
        entry,
        action,
        criteria,
    })
}

fn entry_patch(entry: &EntryRequest) -> ApiResult<json_patch::Patch> {
    let request = entry.to_request(None)?;
    if request.headers.content_type.as_deref() != Some("application/json-patch+json") {
        return Err(ApiError::not_supported(
            "PATCH entries take a Binary with contentType application/json-patch+json",
        ));
    }
    serde_json::from_slice(&request.body)
        .map_err(|e| ApiError::bad_request(format!("Invalid JSON Patch: {e}")))
}

/// The resource an entry acts on, once resolved.
#[derive(Debug, Clone)]
enum Target {
    /// A write to `Type/id`.
    Write(String, String),
    /// A conditional create that matched an existing resource: nothing is written.
    Existing(ResourceVersion),
    /// A conditional delete that matched nothing.
    Nothing,
    /// A read or search.
    ReadOnly,
}

async fn execute(
    tx: &mut dyn StoreTx,
    config: &ServerConfig,
    params: &SearchParams,
    mut plan: Vec<Planned>,
    ret: ReturnPreference,
    seed: Option<&str>,
) -> Result<Vec<EntryResult>, TxFailure> {
    // 1. Decide every entry's identity, so references can be rewritten before any write.
    let mut full_urls: HashMap<String, String> = HashMap::new();
    let mut targets = Vec::with_capacity(plan.len());
    for p in &plan {
        let at = |e: ApiError| e.at(p.entry.location());
        let target = match (&p.action, &p.criteria) {
            (Action::Read { .. } | Action::Search { .. }, _) => Target::ReadOnly,
            (Action::Create { resource_type, .. }, criteria) => {
                match resolve(tx, config, params, resource_type, criteria.as_deref())
                    .await
                    .map_err(at)?
                {
                    Some(Resolved::One(existing)) => Target::Existing(existing),
                    _ => match seed {
                        // An asynchronous transaction's creates get ids fixed at kick-off: if
                        // this is a job run again after its first run committed, the resources
                        // are there, and are answered as found instead of created twice.
                        Some(seed) => {
                            let id = entry_id(seed, p.entry.index);
                            match tx.vread(resource_type, &id, 1).await? {
                                Some(first) if first.method == WriteMethod::Create => {
                                    Target::Existing(first)
                                }
                                _ => Target::Write(resource_type.clone(), id),
                            }
                        }
                        None => Target::Write(resource_type.clone(), new_id()),
                    },
                }
            }
            (
                Action::Update {
                    resource_type,
                    id: Some(id),
                    ..
                },
                _,
            )
            | (
                Action::Patch {
                    resource_type,
                    id: Some(id),
                    ..
                },
                _,
            )
            | (
                Action::Delete {
                    resource_type,
                    id: Some(id),
                },
                _,
            ) => Target::Write(resource_type.clone(), id.clone()),
            (
                Action::Update {
                    resource_type,
                    id: None,
                    resource,
                },
                criteria,
            ) => {
                let body_id = resource
                    .get("id")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                match resolve(tx, config, params, resource_type, criteria.as_deref())
                    .await
                    .map_err(at)?
                {
                    Some(Resolved::One(found)) => {
                        if body_id.as_ref().is_some_and(|b| *b != found.id) {
                            return Err(at(ApiError::bad_request(
                                "The resource's id differs from the resource the criteria match",
                            ))
                            .into());
                        }
                        Target::Write(resource_type.clone(), found.id)
                    }
                    _ => Target::Write(resource_type.clone(), body_id.unwrap_or_else(new_id)),
                }
            }
            (
                Action::Patch {
                    resource_type,
                    id: None,
                    ..
                },
                criteria,
            ) => {
                match resolve(tx, config, params, resource_type, criteria.as_deref())
                    .await
                    .map_err(at)?
                {
                    Some(Resolved::One(found)) => Target::Write(resource_type.clone(), found.id),
                    _ => {
                        return Err(at(ApiError::not_found(
                            "Conditional patch: no resource matches",
                        ))
                        .into());
                    }
                }
            }
            (
                Action::Delete {
                    resource_type,
                    id: None,
                },
                criteria,
            ) => {
                match resolve(tx, config, params, resource_type, criteria.as_deref())
                    .await
                    .map_err(at)?
                {
                    Some(Resolved::One(found)) => Target::Write(resource_type.clone(), found.id),
                    _ => Target::Nothing,
                }
            }
        };
        if let Some(full_url) = &p.entry.full_url {
            match &target {
                Target::Write(t, id) => {
                    full_urls.insert(full_url.clone(), format!("{t}/{id}"));
                }
                Target::Existing(v) => {
                    full_urls.insert(full_url.clone(), format!("{}/{}", v.resource_type, v.id));
                }
                _ => {}
            }
        }
        targets.push(target);
    }

    // 2. A resource may appear only once.
    let mut seen = HashSet::new();
    for (p, target) in plan.iter().zip(&targets) {
        if let Target::Write(t, id) = target
            && !seen.insert(format!("{t}/{id}"))
        {
            return Err(ApiError::bad_request(format!(
                "{}: {t}/{id} is the target of more than one entry of this transaction",
                p.entry.location()
            ))
            .at(p.entry.location())
            .into());
        }
    }

    // 3. Conditional references resolve to exactly one resource.
    let mut conditional = Vec::new();
    for p in &plan {
        if let Action::Create { resource, .. } | Action::Update { resource, .. } = &p.action {
            for value in resource.values() {
                conditional_references(value, &mut conditional);
            }
        }
    }
    for reference in conditional {
        if full_urls.contains_key(&reference) {
            continue;
        }
        let (resource_type, criteria) = reference.split_once('?').unwrap_or((&reference, ""));
        let matches = conditional_matches(tx, config, params, resource_type, criteria).await?;
        match matches.as_slice() {
            [one] => {
                full_urls.insert(
                    reference.clone(),
                    format!("{}/{}", one.resource_type, one.id),
                );
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "Conditional reference '{reference}' matches {} resources; it must match exactly one",
                    other.len()
                ))
                .into());
            }
        }
    }
    for p in &mut plan {
        if let Action::Create { resource, .. } | Action::Update { resource, .. } = &mut p.action {
            let mut value = Value::Object(std::mem::take(resource));
            rewrite(&mut value, &full_urls);
            if let Value::Object(map) = value {
                *resource = map;
            }
        }
    }

    // 4. Run the entries phase by phase; results stay in request order.
    let mut results: Vec<Option<EntryResult>> = vec![None; plan.len()];
    for phase in 0..4 {
        for (i, (p, target)) in plan.iter().zip(&targets).enumerate() {
            if p.action.phase() != phase {
                continue;
            }
            let result = run(tx, config, params, p, target, ret)
                .await
                .map_err(|f| match f {
                    TxFailure::Api(e) => TxFailure::Api(e.at(p.entry.location())),
                    other => other,
                })?;
            results[i] = Some(result);
        }
    }
    Ok(results.into_iter().map(Option::unwrap_or_default).collect())
}

enum Resolved {
    One(ResourceVersion),
    None,
}

async fn resolve(
    tx: &mut dyn StoreTx,
    config: &ServerConfig,
    params: &SearchParams,
    resource_type: &str,
    criteria: Option<&str>,
) -> ApiResult<Option<Resolved>> {
    let Some(criteria) = criteria else {
        return Ok(None);
    };
    let matches = conditional_matches(tx, config, params, resource_type, criteria).await?;
    match matches.len() {
        0 => Ok(Some(Resolved::None)),
        1 => Ok(matches.into_iter().next().map(Resolved::One)),
        _ => Err(ApiError::with_code(
            ErrorKind::PreconditionFailed,
            oxifhir_model::IssueCode::MultipleMatches,
            format!("The criteria '{criteria}' match more than one {resource_type}"),
        )),
    }
}

async fn run(
    tx: &mut dyn StoreTx,
    config: &ServerConfig,
    params: &SearchParams,
    p: &Planned,
    target: &Target,
    ret: ReturnPreference,
) -> Result<EntryResult, TxFailure> {
    let written = |v: &ResourceVersion, status: u16| {
        let mut r = EntryResult {
            status,
            location: Some(version_url_for(config, v)),
            etag: Some(etag(v)),
            last_modified: Some(v.last_updated),
            ..Default::default()
        };
        match ret {
            ReturnPreference::Representation => r.body = Some(v.body.clone()),
            ReturnPreference::OperationOutcome => {
                r.outcome = Some(oxifhir_model::json::to_bytes(
                    &OperationOutcome::all_ok().to_json(),
                ));
            }
            ReturnPreference::Minimal => {}
        }
        r
    };
    let if_match = p.entry.if_match.as_deref().map(parse_etag).transpose()?;
    match (&p.action, target) {
        (_, Target::Existing(v)) => Ok(written(v, 200)),
        (_, Target::Nothing) => Ok(EntryResult {
            status: 204,
            ..Default::default()
        }),
        (
            Action::Create {
                resource_type,
                resource,
            },
            Target::Write(_, id),
        ) => {
            let v = repository::write_version(
                tx,
                params,
                resource_type,
                id,
                resource.clone(),
                None,
                WriteMethod::Create,
            )
            .await?;
            Ok(written(&v, 201))
        }
        (
            Action::Update {
                resource_type,
                resource,
                ..
            },
            Target::Write(_, id),
        ) => {
            let updated =
                repository::update(tx, params, resource_type, id, resource.clone(), if_match)
                    .await?;
            Ok(written(
                &updated.version,
                if updated.created { 201 } else { 200 },
            ))
        }
        (
            Action::Patch {
                resource_type,
                patch,
                ..
            },
            Target::Write(_, id),
        ) => {
            let current = found(tx.read(resource_type, id).await?, resource_type, id)?;
            let mut value =
                oxifhir_model::json::parse(&current.body).map_err(ApiError::internal)?;
            json_patch::patch(&mut value, patch).map_err(|e| {
                ApiError::new(
                    ErrorKind::Unprocessable,
                    format!("The JSON Patch cannot be applied: {e}"),
                )
            })?;
            let resource = repository::resource_from_value(value, Some(resource_type))?;
            let updated =
                repository::update(tx, params, resource_type, id, resource, if_match).await?;
            Ok(written(&updated.version, 200))
        }
        (Action::Delete { resource_type, .. }, Target::Write(_, id)) => {
            match repository::delete(tx, resource_type, id).await? {
                Deleted::Never => {
                    Err(ApiError::not_found(format!("{resource_type}/{id} is not known")).into())
                }
                Deleted::Now(v) | Deleted::Already(v) => Ok(EntryResult {
                    status: 204,
                    etag: Some(etag(&v)),
                    ..Default::default()
                }),
            }
        }
        (
            Action::Read {
                resource_type,
                id,
                version_id,
            },
            _,
        ) => {
            let v = match version_id {
                None => found(tx.read(resource_type, id).await?, resource_type, id)?,
                Some(vid) => match tx.vread(resource_type, id, *vid).await? {
                    Some(v) if !v.is_deleted() => v,
                    _ => {
                        return Err(ApiError::not_found(format!(
                            "{resource_type}/{id} has no version {vid}"
                        ))
                        .into());
                    }
                },
            };
            Ok(EntryResult {
                status: 200,
                etag: Some(etag(&v)),
                last_modified: Some(v.last_updated),
                body: Some(v.body),
                ..Default::default()
            })
        }
        (
            Action::Search {
                resource_type,
                params: query,
            },
            _,
        ) => {
            let rt = resource_type.as_deref();
            let parsed = search::parse(config, params, rt, query, false)?;
            let page = tx.search(&parsed.query).await?;
            let included = search::fetch_includes(
                &mut search::Searcher::Tx(tx),
                &parsed.includes,
                &page.resources,
                config.max_count,
            )
            .await?;
            let body = search::searchset(config, rt, query, &parsed, &page, &included);
            Ok(EntryResult {
                status: 200,
                body: Some(body),
                ..Default::default()
            })
        }
        _ => Err(ApiError::internal("transaction entry without a target").into()),
    }
}

fn version_url_for(config: &ServerConfig, v: &ResourceVersion) -> String {
    config.url(&format!(
        "{}/{}/_history/{}",
        v.resource_type, v.id, v.version_id
    ))
}
