//! `POST [base]/Appointment/{id}/$cancel` (seed 002): in one serializable transaction, read
//! the Appointment (`404 Not found`), load every `Appointment.slot` (`400 Loading slots
//! failed`), require `booked` or `pending` (`400 Appointment cannot be canceled in
//! '<status>' status`), set `cancelled`, delete every referenced Slot (buffer Slots too),
//! and answer `200` with the Appointment. The Appointment's store lock makes a racing
//! `$confirm` or `$cancel` wait for this one to finish, then see its result.

use futures::FutureExt;
use futures::future::BoxFuture;
use oxifhir_store::{Isolation, ResourceVersion, StoreTx, WriteMethod};
use serde_json::{Value, json};

use super::{
    Db, array_at, instance_id, invalid, not_found, reference_id, resource_response, str_at,
};
use crate::error::ApiResult;
use crate::interactions::Context;
use crate::repository::{self, TxFailure, in_locked_transaction};
use crate::response::FhirResponse;
use crate::route::OperationTarget;
use crate::server::FhirServer;

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
        let version =
            in_locked_transaction(ctx.server.store(), Isolation::Serializable, &keys, |tx| {
                let (server, params, id) = (server.clone(), params.clone(), id.clone());
                Box::pin(async move {
                    let (current, appointment) = Db::Tx(tx)
                        .read_live("Appointment", &id)
                        .await?
                        .ok_or_else(not_found)?;
                    let slots = load_slots(tx, &server, &appointment).await?;
                    let status = str_at(&appointment, "status").unwrap_or_default();
                    if !matches!(status, "booked" | "pending") {
                        return Err(invalid(
                            format!("Appointment cannot be canceled in '{status}' status"),
                            Vec::<String>::new(),
                        )
                        .into());
                    }
                    let mut map = match appointment {
                        Value::Object(map) => map,
                        _ => return Err(not_found().into()),
                    };
                    map.insert("status".into(), json!("cancelled"));
                    let version = repository::write_version(
                        tx,
                        &params,
                        "Appointment",
                        &id,
                        map,
                        Some(&current),
                        WriteMethod::Update,
                    )
                    .await?;
                    for slot in slots {
                        repository::delete(tx, "Slot", &slot.id).await?;
                    }
                    Ok::<ResourceVersion, TxFailure>(version)
                })
            })
            .await?;
        Ok(resource_response(&version))
    }
    .boxed()
}

/// The current versions of the Slots an Appointment references, in order; any reference
/// that is not a live `Slot` is `400 Loading slots failed` at `Appointment.slot[i]`.
pub(super) async fn load_slots(
    tx: &mut dyn StoreTx,
    server: &FhirServer,
    appointment: &Value,
) -> Result<Vec<ResourceVersion>, TxFailure> {
    let mut out = Vec::new();
    for (i, reference) in array_at(appointment, "slot").iter().enumerate() {
        let failed = || invalid("Loading slots failed", [format!("Appointment.slot[{i}]")]);
        let id = str_at(reference, "reference")
            .and_then(|r| reference_id(server, r, "Slot"))
            .ok_or_else(failed)?;
        let version = tx.read("Slot", id).await?;
        match version {
            Some(v) if !v.is_deleted() => out.push(v),
            _ => return Err(failed().into()),
        }
    }
    Ok(out)
}
