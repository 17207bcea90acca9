//! Which scopes each interaction needs, checked in `dispatch` for every request and every
//! batch or transaction entry, so a stored asynchronous request is checked again on the
//! worker with the principal it carries.
//!
//! Reads of a known id and instance history need `r`; searches and type/system history need
//! `s`; create `c`, update and patch `u`, delete `d` (v1 `read` = `rs`, `write` = `cud`).
//! Conditional interactions also need `s` on their type, because they search. A system
//! search needs `s` on every type it names in `_type`, or on all types (`system/*.s…`) without
//! `_type`; `_include`, `_revinclude` and `_has` need the types they reach. Operations are in
//! [`operation_needs`]; an operation missing from it is open to administrators only.

use oxifhir_model::resource_type;
use serde_json::Value;

use super::scope::Permission;
use super::{AuthMode, Principal};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::request::{FhirRequest, Method, parse_query};
use crate::route::{self, Interaction, OperationTarget, truncate};

/// One condition a request must meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// The permission on this type.
    On(Permission, String),
    /// The permission on every type (a `system/*.…` scope).
    EveryType(Permission),
    /// The permission on at least one type (operations that filter their output by scope,
    /// such as `$export`).
    SomeType(Permission),
    /// The client is registered as an administrator.
    Admin,
}

/// `Ok` when `principal` may run `interaction` of `request` (always, when auth is off).
/// Without a principal under `--auth smart` the answer is `401`; beyond the scopes, `403`.
pub fn authorize(
    mode: &AuthMode,
    principal: Option<&Principal>,
    request: &FhirRequest,
    interaction: &Interaction,
) -> ApiResult<()> {
    if matches!(mode, AuthMode::None) || *interaction == Interaction::Capabilities {
        return Ok(());
    }
    let Some(principal) = principal else {
        return Err(ApiError::new(
            ErrorKind::Unauthorized,
            "Authentication required: this request carries no authenticated client",
        ));
    };
    for need in needs(request, interaction) {
        check(principal, &need)?;
    }
    Ok(())
}

/// Checks a transaction entry (its request line and `If-None-Exist`, with its resource)
/// before anything of the transaction runs: the entry's interaction, and `s` on the types of
/// the conditional references (`Patient?identifier=…`) it asks to resolve. Entries that do
/// not route are left for the transaction to report.
pub fn authorize_entry(
    mode: &AuthMode,
    principal: Option<&Principal>,
    request: &FhirRequest,
    resource: Option<&Value>,
) -> ApiResult<()> {
    if matches!(mode, AuthMode::None) {
        return Ok(());
    }
    if let Ok(interaction) = route::route(request) {
        authorize(mode, principal, request, &interaction)?;
    }
    let mut references = Vec::new();
    if let Some(resource) = resource {
        crate::bundle::conditional_references(resource, &mut references);
    }
    for reference in references {
        if let Some((t, _)) = reference.split_once('?') {
            authorize_need(principal, &Need::On(Permission::Search, t.to_string()))?;
        }
    }
    Ok(())
}

fn authorize_need(principal: Option<&Principal>, need: &Need) -> ApiResult<()> {
    match principal {
        Some(p) => check(p, need),
        None => Err(ApiError::new(
            ErrorKind::Unauthorized,
            "Authentication required: this request carries no authenticated client",
        )),
    }
}

/// `Ok` when `principal` meets `need`, else `403` saying which scope is missing.
pub fn check(principal: &Principal, need: &Need) -> ApiResult<()> {
    let (met, missing) = match need {
        Need::On(p, t) => (
            principal.allows(*p, t),
            format!("'{}' on {t} (e.g. system/{t}.{})", verb(*p), p.letter()),
        ),
        Need::EveryType(p) => (
            principal.allows_every_type(*p),
            format!(
                "'{}' on every resource type (system/*.{})",
                verb(*p),
                p.letter()
            ),
        ),
        Need::SomeType(p) => (
            resource_type::all().iter().any(|t| principal.allows(*p, t)),
            format!("'{}' on at least one resource type", verb(*p)),
        ),
        Need::Admin => (
            principal.is_admin(),
            "the administrator role (\"admin\": true in the client's registration)".to_string(),
        ),
    };
    if met {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorKind::Forbidden,
        format!(
            "Client '{}' is not allowed to do this: it needs {missing}; its scopes are '{}'",
            principal.client_id,
            principal.scope_text()
        ),
    ))
}

fn verb(p: Permission) -> &'static str {
    match p {
        Permission::Create => "create",
        Permission::Read => "read",
        Permission::Update => "update",
        Permission::Delete => "delete",
        Permission::Search => "search",
    }
}

/// Everything `interaction` of `request` needs.
pub fn needs(request: &FhirRequest, interaction: &Interaction) -> Vec<Need> {
    use Interaction as I;
    use Permission as P;
    let on = |p: Permission, t: &str| Need::On(p, t.to_string());
    let conditional = request.headers.if_none_exist.is_some();
    match interaction {
        I::Capabilities | I::BatchOrTransaction => Vec::new(),
        // A job's status, result and AsyncJob view: the job module answers 404 to anyone
        // but the job's owner.
        I::AsyncStatus { .. } | I::AsyncResult { .. } | I::ExportPollStatus => Vec::new(),
        I::Read { resource_type, .. } | I::SearchType { resource_type }
            if resource_type == resource_type::ASYNC_JOB =>
        {
            Vec::new()
        }
        I::SearchSystem => {
            let params = search_params(request);
            let types: Vec<String> = params
                .iter()
                .filter(|(k, _)| k == "_type")
                .flat_map(|(_, v)| v.split(',').map(|t| t.trim().to_string()))
                .filter(|t| !t.is_empty())
                .collect();
            let mut needs: Vec<Need> = if types.is_empty() {
                vec![Need::EveryType(P::Search)]
            } else {
                types.iter().map(|t| on(P::Search, t)).collect()
            };
            needs.extend(reached_types(&params));
            needs
        }
        I::HistorySystem => vec![Need::EveryType(P::Search)],
        I::SearchType { resource_type } => {
            let mut needs = vec![on(P::Search, resource_type)];
            needs.extend(reached_types(&search_params(request)));
            needs
        }
        I::HistoryType { resource_type } => vec![on(P::Search, resource_type)],
        I::Read { resource_type, .. }
        | I::VRead { resource_type, .. }
        | I::HistoryInstance { resource_type, .. } => vec![on(P::Read, resource_type)],
        I::Create { resource_type } if conditional => {
            vec![on(P::Create, resource_type), on(P::Search, resource_type)]
        }
        I::Create { resource_type } => vec![on(P::Create, resource_type)],
        I::Update { resource_type, .. } | I::Patch { resource_type, .. } => {
            vec![on(P::Update, resource_type)]
        }
        I::ConditionalUpdate { resource_type } | I::ConditionalPatch { resource_type } => {
            vec![on(P::Update, resource_type), on(P::Search, resource_type)]
        }
        I::Delete { resource_type, .. } => vec![on(P::Delete, resource_type)],
        I::ConditionalDelete { resource_type } => {
            vec![on(P::Delete, resource_type), on(P::Search, resource_type)]
        }
        I::Operation { name, target } => operation_needs(name, target),
    }
}

/// What each operation needs. Operation modules add their row here when they are built; an
/// operation without a row is open to administrators only, so a forgotten row fails closed.
pub fn operation_needs(name: &str, target: &OperationTarget) -> Vec<Need> {
    use OperationTarget as T;
    use Permission as P;
    let on = |p: Permission, t: &str| Need::On(p, t.to_string());
    match (name, target) {
        ("reindex" | "expunge", _) => vec![Need::Admin],
        // The export filters its output by the principal's scopes (Bulk Data: only what the
        // client may read); a Group export needs to read the Group (Bulk Data v3).
        ("export", T::System) => vec![Need::SomeType(P::Read)],
        ("export", T::Type(t)) => vec![on(P::Read, t)],
        ("export", T::Instance(t, _)) => vec![on(P::Read, t)],
        // Job status and cancel: the job module answers 404 to anyone but the job's owner.
        ("export-poll-status", T::System) => Vec::new(),
        ("cancel", T::Instance(t, _)) if t == resource_type::ASYNC_JOB => Vec::new(),
        // Scheduling (as the reference's access policies need): `$find` reads the Schedules,
        // the HealthcareService and searches Slots; `$book`/`$hold` also create the Slots
        // and the Appointment; `$confirm` updates both; `$cancel` updates the Appointment
        // and deletes its Slots. Reading a Schedule's actor for its time zone is part of
        // reading the Schedule.
        ("find", T::Type(t)) if t == "Appointment" => vec![
            on(P::Read, "Schedule"),
            on(P::Read, "HealthcareService"),
            on(P::Search, "Slot"),
        ],
        ("book" | "hold", T::Type(t)) if t == "Appointment" => vec![
            on(P::Read, "Schedule"),
            on(P::Read, "HealthcareService"),
            on(P::Search, "Slot"),
            on(P::Create, "Slot"),
            on(P::Create, "Appointment"),
        ],
        ("confirm", T::Instance(t, _)) if t == "Appointment" => vec![
            on(P::Read, "Appointment"),
            on(P::Update, "Appointment"),
            on(P::Read, "Slot"),
            on(P::Update, "Slot"),
        ],
        ("cancel", T::Instance(t, _)) if t == "Appointment" => vec![
            on(P::Read, "Appointment"),
            on(P::Update, "Appointment"),
            on(P::Read, "Slot"),
            on(P::Delete, "Slot"),
        ],
        _ => vec![Need::Admin],
    }
}

/// The search parameters of a request: the query, plus a form body of `POST …/_search`.
fn search_params(request: &FhirRequest) -> Vec<(String, String)> {
    let mut params = request.query.clone();
    if request.method == Method::Post
        && let Ok(form) = std::str::from_utf8(&request.body)
    {
        params.extend(parse_query(form));
    }
    params
}

/// What `_include`, `_revinclude` and `_has` reach beyond the searched type: `r` on an
/// included target type (every type when the include names none), `s` on a reverse-included
/// or `_has` source type.
fn reached_types(params: &[(String, String)]) -> Vec<Need> {
    let mut needs = Vec::new();
    for (name, value) in params {
        let base_name = name.split(':').next().unwrap_or("");
        match base_name {
            "_include" => {
                for v in value.split(',') {
                    let parts: Vec<&str> = v.split(':').collect();
                    needs.push(match parts.as_slice() {
                        [_, _, target] if *target != "*" => {
                            Need::On(Permission::Read, (*target).to_string())
                        }
                        _ => Need::EveryType(Permission::Read),
                    });
                }
            }
            "_revinclude" => {
                for v in value.split(',') {
                    let source = v.split(':').next().unwrap_or("");
                    needs.push(if source == "*" || source.is_empty() {
                        Need::EveryType(Permission::Search)
                    } else {
                        Need::On(Permission::Search, truncate(source, 64))
                    });
                }
            }
            "_has" => {
                if let Some(source) = name.split(':').nth(1) {
                    needs.push(Need::On(Permission::Search, truncate(source, 64)));
                }
            }
            _ => {}
        }
    }
    needs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::scope::Scope;

    fn principal(scopes: &[&str], admin: bool) -> Principal {
        Principal {
            client_id: "c".into(),
            scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
            admin,
        }
    }

    fn smart_mode() -> AuthMode {
        AuthMode::Smart(std::sync::Arc::new(crate::auth::SmartAuth::new(
            crate::auth::AuthConfig {
                token_lifetime_seconds: 300,
                issuer: None,
                audience: None,
                signing_secret: None,
                clients: Vec::new(),
            },
            "http://x/fhir",
        )))
    }

    fn allowed(p: &Principal, method: Method, url: &str) -> Result<(), u16> {
        let request = FhirRequest::new(method, url);
        let interaction = route::route(&request).map_err(|e| e.status())?;
        let mode = smart_mode();
        authorize(&mode, Some(p), &request, &interaction).map_err(|e| e.status())
    }

    #[test]
    fn table() {
        use Method::*;
        let patient_read = principal(&["system/Patient.read"], false);
        let all_read = principal(&["system/*.rs"], false);
        let writer = principal(&["system/*.cud"], false);
        let admin = principal(&["system/Patient.r"], true);
        let cases: &[(&Principal, Method, &str, Result<(), u16>)] = &[
            (&patient_read, Get, "Patient/1", Ok(())),
            (&patient_read, Get, "Patient/1/_history/2", Ok(())),
            (&patient_read, Get, "Patient?name=x", Ok(())),
            (&patient_read, Get, "Observation/1", Err(403)),
            (&patient_read, Post, "Patient", Err(403)),
            (&patient_read, Get, "?_type=Patient", Ok(())),
            (&patient_read, Get, "?_type=Patient,Observation", Err(403)),
            (&patient_read, Get, "", Err(403)),
            (&patient_read, Get, "_history", Err(403)),
            (
                &patient_read,
                Get,
                "Patient?_revinclude=Observation:subject",
                Err(403),
            ),
            (
                &patient_read,
                Get,
                "Patient?_has:Observation:subject:code=1",
                Err(403),
            ),
            (
                &patient_read,
                Get,
                "Patient?_include=Patient:link:Patient",
                Ok(()),
            ),
            (
                &patient_read,
                Get,
                "Patient?_include=Patient:organization",
                Err(403),
            ),
            (&patient_read, Get, "metadata", Ok(())),
            (&all_read, Get, "", Ok(())),
            (&all_read, Get, "_history", Ok(())),
            (&all_read, Put, "Patient/1", Err(403)),
            (&writer, Put, "Patient/1", Ok(())),
            (&writer, Delete, "Patient/1", Ok(())),
            (&writer, Delete, "Patient?name=x", Err(403)),
            (&writer, Get, "Patient/1", Err(403)),
            (&all_read, Post, "$reindex", Err(403)),
            (&admin, Post, "$reindex", Ok(())),
            (&admin, Post, "Patient/1/$expunge", Ok(())),
            (&all_read, Get, "$export", Ok(())),
            (&patient_read, Get, "$export", Ok(())),
            (&writer, Get, "$export", Err(403)),
            (&patient_read, Get, "Group/1/$export", Err(403)),
            (&all_read, Post, "Patient/$unknown", Err(403)),
            (&all_read, Post, "AsyncJob/1/$cancel", Ok(())),
        ];
        for (p, method, url, expected) in cases {
            assert_eq!(
                allowed(p, *method, url),
                *expected,
                "{} {url} as {}",
                method.as_str(),
                p.scope_text()
            );
        }
    }

    #[test]
    fn conditional_interactions_also_need_search() {
        let writer = principal(&["system/Patient.cud"], false);
        let mut request = FhirRequest::new(Method::Post, "Patient");
        request.headers.if_none_exist = Some("identifier=a|b".into());
        let interaction = route::route(&request).unwrap();
        assert_eq!(
            needs(&request, &interaction),
            [
                Need::On(Permission::Create, "Patient".into()),
                Need::On(Permission::Search, "Patient".into())
            ]
        );
        assert_eq!(
            check(&writer, &needs(&request, &interaction)[1]).map_err(|e| e.status()),
            Err(403)
        );
    }

    #[test]
    fn transaction_entries_need_search_for_their_conditions() {
        let creator = principal(&["system/Patient.c"], false);
        let mode = smart_mode();
        let check = |request: &FhirRequest, resource: Option<&Value>| {
            authorize_entry(&mode, Some(&creator), request, resource).map_err(|e| e.status())
        };
        let mut create = FhirRequest::new(Method::Post, "Patient");
        assert_eq!(check(&create, None), Ok(()));
        let reference = serde_json::json!({"resourceType": "Patient",
            "generalPractitioner": [{"reference": "Practitioner?identifier=a|b"}]});
        assert_eq!(check(&create, Some(&reference)), Err(403));
        create.headers.if_none_exist = Some("identifier=a|b".into());
        assert_eq!(check(&create, None), Err(403));
        assert_eq!(
            authorize_entry(&AuthMode::None, None, &create, Some(&reference)),
            Ok(())
        );
    }

    #[test]
    fn no_principal_is_401_and_auth_none_allows_everything() {
        let request = FhirRequest::new(Method::Get, "Patient/1");
        let interaction = route::route(&request).unwrap();
        assert!(authorize(&AuthMode::None, None, &request, &interaction).is_ok());
        let mode = smart_mode();
        let error = authorize(&mode, None, &request, &interaction).unwrap_err();
        assert_eq!(error.status(), 401);
    }
}

#[cfg(test)]
mod scheduling_tests {
    use super::*;
    use crate::auth::scope::Scope;

    fn allows(scopes: &[&str], method: Method, url: &str) -> bool {
        let principal = Principal {
            client_id: "c".into(),
            scopes: scopes.iter().map(|s| Scope::parse(s).unwrap()).collect(),
            admin: false,
        };
        let request = FhirRequest::new(method, url);
        let interaction = route::route(&request).unwrap();
        needs(&request, &interaction)
            .iter()
            .all(|need| check(&principal, need).is_ok())
    }

    #[test]
    fn scheduling_needs_what_the_reference_policies_grant() {
        let find = "Appointment/$find?start=2026-06-01";
        let reader = [
            "system/Schedule.r",
            "system/HealthcareService.r",
            "system/Slot.s",
        ];
        assert!(allows(&reader, Method::Get, find));
        assert!(!allows(&reader[..2], Method::Get, find));
        let booker = [
            "system/Schedule.r",
            "system/HealthcareService.r",
            "system/Slot.cs",
            "system/Appointment.c",
        ];
        for op in ["$book", "$hold"] {
            assert!(allows(&booker, Method::Post, &format!("Appointment/{op}")));
            assert!(!allows(&reader, Method::Post, &format!("Appointment/{op}")));
        }
        assert!(allows(
            &["system/Appointment.ru", "system/Slot.ru"],
            Method::Post,
            "Appointment/a/$confirm"
        ));
        assert!(allows(
            &["system/Appointment.ru", "system/Slot.rd"],
            Method::Post,
            "Appointment/a/$cancel"
        ));
        assert!(!allows(
            &["system/Appointment.ru", "system/Slot.ru"],
            Method::Post,
            "Appointment/a/$cancel"
        ));
        // AsyncJob/$cancel keeps its own row.
        assert!(allows(&[], Method::Post, "AsyncJob/j/$cancel"));
    }
}
