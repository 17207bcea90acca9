//! `POST [base]/Appointment/{id}/$confirm`: turns a hold into a booking (§6.4). In one
//! serializable transaction holding the Appointment's store lock: read it (`404`), require
//! `pending` or `proposed` (`400 Appointment cannot be confirmed in '<status>' status`),
//! load its Slots (`400 Loading slots failed`), make every `busy-tentative` Slot `busy` and
//! the Appointment `booked`. Answers `200` with a `transaction-response` Bundle, the
//! Appointment first, then its Slots.

use futures::FutureExt;
use futures::future::BoxFuture;
use oxifhir_store::{Isolation, ResourceVersion, WriteMethod};
use serde_json::{Value, json};

use super::cancel::load_slots;
use super::{Db, bundle_response, entry_result, instance_id, invalid, not_found, str_at};
use crate::error::ApiResult;
use crate::interactions::Context;
use crate::repository::{self, TxFailure, in_locked_transaction};
use crate::response::FhirResponse;
use crate::route::OperationTarget;

/// The handler.
pub(super) fn run<'a>(
    ctx: &'a Context<'a>,
    target: &'a OperationTarget,
) -> BoxFuture<'a, ApiResult<FhirResponse>> {
    async move {
        let id = instance_id(target)?.to_string();
        let server = ctx.server.clone();
        let params = server.search_params().await?;
        let keys = [format!("Appointment/{id}")];
        let versions =
            in_locked_transaction(ctx.server.store(), Isolation::Serializable, &keys, |tx| {
                let (server, params, id) = (server.clone(), params.clone(), id.clone());
                Box::pin(async move {
                    let (current, appointment) = Db::Tx(tx)
                        .read_live("Appointment", &id)
                        .await?
                        .ok_or_else(not_found)?;
                    let status = str_at(&appointment, "status").unwrap_or_default();
                    if !matches!(status, "pending" | "proposed") {
                        return Err(invalid(
                            format!("Appointment cannot be confirmed in '{status}' status"),
                            Vec::<String>::new(),
                        )
                        .into());
                    }
                    let slots = load_slots(tx, &server, &appointment).await?;
                    let mut versions = Vec::with_capacity(slots.len() + 1);
                    for slot in slots {
                        let value = oxifhir_model::json::parse(&slot.body)
                            .map_err(crate::error::ApiError::internal)?;
                        let Value::Object(mut map) = value else {
                            versions.push(slot);
                            continue;
                        };
                        if map.get("status").and_then(Value::as_str) != Some("busy-tentative") {
                            versions.push(slot);
                            continue;
                        }
                        map.insert("status".into(), json!("busy"));
                        let id = slot.id.clone();
                        versions.push(
                            repository::write_version(
                                tx,
                                &params,
                                "Slot",
                                &id,
                                map,
                                Some(&slot),
                                WriteMethod::Update,
                            )
                            .await?,
                        );
                    }
                    let Value::Object(mut map) = appointment else {
                        return Err(not_found().into());
                    };
                    map.insert("status".into(), json!("booked"));
                    let appointment = repository::write_version(
                        tx,
                        &params,
                        "Appointment",
                        &id,
                        map,
                        Some(&current),
                        WriteMethod::Update,
                    )
                    .await?;
                    versions.insert(0, appointment);
                    Ok::<Vec<ResourceVersion>, TxFailure>(versions)
                })
            })
            .await?;
        let results: Vec<_> = versions
            .iter()
            .map(|v| entry_result(ctx.server, v, 200))
            .collect();
        Ok(bundle_response(200, &results))
    }
    .boxed()
}
