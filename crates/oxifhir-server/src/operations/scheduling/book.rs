//! `POST [base]/Appointment/$book` and `POST [base]/Appointment/$hold`: store a proposed
//! Appointment (from `$find`, with contained Slots) as `booked` (or `pending` with
//! `busy-tentative` Slots), answering `201` with a `transaction-response` Bundle, the
//! Appointment first and then its Slots.
//!
//! The input is checked as the reference does (§6.3), in its order, before anything is
//! stored. Then one serializable transaction takes the store lock of every Schedule involved
//! (so concurrent bookers of a Schedule run one after another), re-computes each Schedule's
//! availability from the Slots stored now, and creates the Slots and the Appointment with
//! `Appointment.slot` filled. A booking that lost a race gets `400 Requested time slot is
//! not available`, whose diagnostics name the blocking Slots.

use std::collections::HashMap;

use futures::FutureExt;
use futures::future::BoxFuture;
use oxifhir_model::id::new_id;
use oxifhir_store::{Isolation, ResourceVersion, WriteMethod};
use serde_json::{Map, Value, json};

use super::availability;
use super::find::free_windows;
use super::params::{self, MINUTE, ScheduleInfo, Service};
use super::{
    Db, array_at, bundle_response, entry_result, invalid, overlapping_slots, parse_time,
    reference_id, str_at,
};
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::interactions::Context;
use crate::repository::{self, TxFailure, in_locked_transaction};
use crate::response::FhirResponse;
use crate::route::OperationTarget;
use crate::server::FhirServer;

/// What the stored Appointment becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// `booked`, with `busy` Slots.
    Book,
    /// `pending`, with `busy-tentative` Slots until `$confirm`.
    Hold,
}

/// The `$book` handler.
pub(super) fn run_book<'a>(
    ctx: &'a Context<'a>,
    _target: &'a OperationTarget,
) -> BoxFuture<'a, ApiResult<FhirResponse>> {
    book(ctx, Mode::Book).boxed()
}

/// The `$hold` handler.
pub(super) fn run_hold<'a>(
    ctx: &'a Context<'a>,
    _target: &'a OperationTarget,
) -> BoxFuture<'a, ApiResult<FhirResponse>> {
    book(ctx, Mode::Hold).boxed()
}

/// One contained Slot of the input.
#[derive(Debug, Clone)]
struct InputSlot {
    /// Its index in `Appointment.contained`.
    index: usize,
    status: String,
    start: i64,
    end: i64,
    resource: Value,
}

impl InputSlot {
    fn path(&self) -> String {
        format!("Parameters.appointment.contained[{}]", self.index)
    }
}

/// The proposed Appointment: a `Parameters` with an `appointment` resource, or the bare
/// Appointment.
fn input(body: &[u8]) -> ApiResult<Value> {
    if body.is_empty() {
        return Err(invalid(
            "Expected at least 1 value(s) for required input parameter 'appointment'",
            Vec::<String>::new(),
        ));
    }
    let value = oxifhir_model::json::parse(body).map_err(|e| {
        ApiError::with_code(
            ErrorKind::BadRequest,
            oxifhir_model::outcome::IssueCode::Structure,
            format!("Malformed JSON: {e}"),
        )
    })?;
    match str_at(&value, "resourceType") {
        Some("Appointment") => Ok(value),
        Some("Parameters") => array_at(&value, "parameter")
            .iter()
            .find(|p| str_at(p, "name") == Some("appointment"))
            .and_then(|p| p.get("resource"))
            .filter(|r| str_at(r, "resourceType") == Some("Appointment"))
            .cloned()
            .ok_or_else(|| {
                invalid(
                    "Expected at least 1 value(s) for required input parameter 'appointment'",
                    Vec::<String>::new(),
                )
            }),
        _ => Err(invalid(
            "Expected a Parameters resource with an 'appointment' parameter, or an Appointment",
            Vec::<String>::new(),
        )),
    }
}

/// Minutes as the reference prints them (`15`, or `7.5`).
fn minutes(millis: i64) -> String {
    if millis % MINUTE == 0 {
        (millis / MINUTE).to_string()
    } else {
        (millis as f64 / MINUTE as f64).to_string()
    }
}

async fn book(ctx: &Context<'_>, mode: Mode) -> ApiResult<FhirResponse> {
    let appointment = input(&ctx.request.body)?;
    let server = ctx.server;

    // 1. Exactly one HealthcareService (named once, however many type codings carry it).
    let services = params::service_references(array_at(&appointment, "serviceType"));
    let services: Vec<String> = services.iter().fold(Vec::new(), |mut acc, s| {
        if !acc.contains(s) {
            acc.push(s.clone());
        }
        acc
    });
    let service_expr = ["Parameters.appointment.serviceType"];
    let service_ref = match services.as_slice() {
        [] => {
            return Err(invalid(
                "Appointment has no service reference",
                service_expr,
            ));
        }
        [one] => one.clone(),
        _ => {
            return Err(invalid(
                "Appointment has too many service references",
                service_expr,
            ));
        }
    };

    // 2. Contained Slots.
    let mut slots = Vec::new();
    for (index, c) in array_at(&appointment, "contained").iter().enumerate() {
        if str_at(c, "resourceType") != Some("Slot") {
            continue;
        }
        let path = format!("Parameters.appointment.contained[{index}]");
        let (Some(start), Some(end)) = (
            str_at(c, "start").and_then(parse_time),
            str_at(c, "end").and_then(parse_time),
        ) else {
            return Err(invalid("Slot start and end must be instants", [path]));
        };
        if end <= start {
            return Err(invalid("Slot end must be after its start", [path]));
        }
        slots.push(InputSlot {
            index,
            status: str_at(c, "status").unwrap_or_default().to_string(),
            start,
            end,
            resource: c.clone(),
        });
    }
    if slots.is_empty() {
        return Err(invalid(
            "Appointment has no contained Slot resources",
            ["Parameters.appointment"],
        ));
    }

    // 3. Busy Slots share their times.
    let busy: Vec<&InputSlot> = slots.iter().filter(|s| s.status == "busy").collect();
    if let Some(first) = busy.first() {
        for other in &busy[1..] {
            if other.start != first.start {
                return Err(invalid(
                    "Mismatched slot start times",
                    [
                        format!("{}.start", first.path()),
                        format!("{}.start", other.path()),
                    ],
                ));
            }
            if other.end != first.end {
                return Err(invalid(
                    "Mismatched slot end times",
                    [
                        format!("{}.end", first.path()),
                        format!("{}.end", other.path()),
                    ],
                ));
            }
        }
    }

    // 4. Every Slot names its Schedule.
    let mut schedule_of = Vec::with_capacity(slots.len());
    for slot in &slots {
        let Some(reference) = slot
            .resource
            .get("schedule")
            .and_then(|s| str_at(s, "reference"))
        else {
            return Err(invalid(
                "Slot missing schedule reference",
                [format!("{}.schedule", slot.path())],
            ));
        };
        schedule_of.push(reference.to_string());
    }

    // 5. The Schedules and the service, and each Schedule's parameters.
    let mut db = Db::Store(server.store());
    let mut order: Vec<String> = Vec::new();
    let mut loaded: HashMap<String, (Value, String)> = HashMap::new();
    for (slot, reference) in slots.iter().zip(&schedule_of) {
        let expression = format!("{}.schedule", slot.path());
        let Some(id) = reference_id(server, reference, "Schedule") else {
            return Err(invalid("Schedule load failed", [expression]));
        };
        if loaded.contains_key(id) {
            continue;
        }
        let Some((_, resource)) = db.read_live("Schedule", id).await? else {
            return Err(invalid("Schedule load failed", [expression]));
        };
        order.push(id.to_string());
        loaded.insert(id.to_string(), (resource, expression));
    }
    let service = match reference_id(server, &service_ref, "HealthcareService") {
        Some(id) => params::load_service(&mut db, id, "Parameters.appointment.serviceType").await?,
        None => None,
    }
    .ok_or_else(|| {
        ApiError::with_code(
            ErrorKind::NotFound,
            oxifhir_model::outcome::IssueCode::NotFound,
            "Not found",
        )
    })?;
    let mut infos: Vec<ScheduleInfo> = Vec::new();
    for id in &order {
        let (resource, expression) = loaded.remove(id).unwrap_or_default();
        infos.push(
            params::schedule_info(&mut db, server, id, resource, &service, &expression).await?,
        );
    }

    // 6. Each Schedule's Slots fit its parameters.
    let ids_of_slots: Vec<Option<&str>> = schedule_of
        .iter()
        .map(|r| reference_id(server, r, "Schedule"))
        .collect();
    for info in &infos {
        let mine: Vec<&InputSlot> = slots
            .iter()
            .zip(&ids_of_slots)
            .filter(|(_, id)| **id == Some(info.id.as_str()))
            .map(|(s, _)| s)
            .collect();
        validate_slots(info, &mine)?;
    }

    // 7. The input carries no Slot references of its own.
    if appointment.get("slot").is_some() {
        return Err(invalid(
            "Proposed appointment must not have Slot references",
            ["Parameters.appointment.slot"],
        ));
    }

    // 8. What is stored.
    let mut stored_slots: Vec<(String, Map<String, Value>)> = Vec::new();
    for slot in &slots {
        let mut resource = slot.resource.clone();
        if let Some(map) = resource.as_object_mut() {
            map.remove("id");
            map.remove("meta");
            if mode == Mode::Hold && slot.status == "busy" {
                map.insert("status".into(), json!("busy-tentative"));
            }
        }
        let id = new_id();
        if let Some(map) = resource.as_object_mut() {
            map.insert("id".into(), json!(id));
        }
        let map = repository::resource_from_value(resource, Some("Slot"))
            .map_err(|e| e.at(slot.path()))?;
        stored_slots.push((id, map));
    }
    let appointment_id = new_id();
    let mut stored = appointment.clone();
    if let Some(map) = stored.as_object_mut() {
        map.remove("contained");
        map.remove("meta");
        map.insert("id".into(), json!(appointment_id));
        map.insert(
            "status".into(),
            json!(match mode {
                Mode::Book => "booked",
                Mode::Hold => "pending",
            }),
        );
        map.insert(
            "slot".into(),
            Value::Array(
                stored_slots
                    .iter()
                    .map(|(id, _)| json!({ "reference": format!("Slot/{id}") }))
                    .collect(),
            ),
        );
    }
    let stored = repository::resource_from_value(stored, Some("Appointment"))
        .map_err(|e| e.at("Parameters.appointment"))?;

    // 9. One transaction, holding every Schedule's lock.
    let intervals: Vec<(i64, i64)> = infos
        .iter()
        .map(|info| {
            let mine = slots
                .iter()
                .zip(&ids_of_slots)
                .filter(|(_, id)| **id == Some(info.id.as_str()))
                .map(|(s, _)| (s.start, s.end));
            mine.fold((i64::MAX, i64::MIN), |(a, b), (s, e)| (a.min(s), b.max(e)))
        })
        .collect();
    // A time already taken is refused without waiting for the Schedules' locks; the check
    // that counts is the one inside the transaction.
    for (info, &(from, to)) in infos.iter().zip(&intervals) {
        check_available(&mut db, server, info, &service, from, to).await?;
    }
    let keys = lock_keys(&infos, &intervals);
    let params = server.search_params().await?;
    let versions = in_locked_transaction(server.store(), Isolation::Serializable, &keys, |tx| {
        let (server, params, infos, service, intervals) = (
            server.clone(),
            params.clone(),
            infos.clone(),
            service.clone(),
            intervals.clone(),
        );
        let (stored_slots, stored) = (stored_slots.clone(), stored.clone());
        let appointment_id = appointment_id.clone();
        Box::pin(async move {
            let mut db = Db::Tx(tx);
            for (info, &(from, to)) in infos.iter().zip(&intervals) {
                check_available(&mut db, &server, info, &service, from, to).await?;
            }
            // All new: one round trip where the store can.
            let mut writes = Vec::with_capacity(stored_slots.len() + 1);
            let mut versions = Vec::with_capacity(stored_slots.len() + 1);
            let (write, version) = repository::next_version(
                &params,
                "Appointment",
                &appointment_id,
                stored,
                None,
                WriteMethod::Create,
            );
            writes.push(write);
            versions.push(version);
            for (id, slot) in stored_slots {
                let (write, version) =
                    repository::next_version(&params, "Slot", &id, slot, None, WriteMethod::Create);
                writes.push(write);
                versions.push(version);
            }
            tx.write_many(writes).await?;
            Ok::<Vec<ResourceVersion>, TxFailure>(versions)
        })
    })
    .await?;
    let results: Vec<_> = versions
        .iter()
        .map(|v| entry_result(server, v, 201))
        .collect();
    Ok(bundle_response(201, &results))
}

/// Milliseconds in a day.
const DAY: i64 = 86_400_000;

/// The store locks a booking takes: `Schedule/{id}/{day}` for each UTC day its interval on
/// that Schedule touches. Two bookings that overlap on a Schedule share an instant, hence a
/// day, hence a key, so they run one after another; bookings of other days (or Schedules)
/// do not wait for each other.
fn lock_keys(infos: &[ScheduleInfo], intervals: &[(i64, i64)]) -> Vec<String> {
    let mut keys = Vec::new();
    for (info, &(from, to)) in infos.iter().zip(intervals) {
        let (first, last) = (from.div_euclid(DAY), (to - 1).div_euclid(DAY));
        for day in first..=last.max(first) {
            keys.push(format!("{}/{day}", info.reference()));
        }
    }
    keys
}

/// Step 6: one `busy` Slot of the right duration on the grid, and the buffer Slots the
/// parameters ask for.
fn validate_slots(info: &ScheduleInfo, mine: &[&InputSlot]) -> ApiResult<()> {
    let p = &info.params;
    let busy: Vec<&&InputSlot> = mine.iter().filter(|s| s.status == "busy").collect();
    let [busy] = busy.as_slice() else {
        return Err(invalid(
            "Expected exactly one 'busy' slot per schedule",
            mine.iter().map(|s| s.path()),
        ));
    };
    if busy.end - busy.start != p.duration.value {
        return Err(invalid(
            "Slot duration does not match scheduling parameters duration",
            [busy.path()],
        ));
    }
    if !availability::on_grid(
        busy.start,
        p.alignment_interval.value,
        p.alignment_offset.value,
        &p.alignment_tz,
    ) {
        return Err(invalid(
            "Slot start time is not aligned to the scheduling grid",
            [busy.path()],
        ));
    }
    let buffer = |at_start: bool, expected: i64| -> ApiResult<()> {
        if expected <= 0 {
            return Ok(());
        }
        let found: Vec<&&InputSlot> = mine
            .iter()
            .filter(|s| {
                s.status == "busy-unavailable"
                    && if at_start {
                        s.end == busy.start
                    } else {
                        s.start == busy.end
                    }
            })
            .collect();
        let [slot] = found.as_slice() else {
            return Err(invalid(
                if at_start {
                    "Expected exactly one 'busy-unavailable' slot ending at the start of the busy slot (bufferBefore)"
                } else {
                    "Expected exactly one 'busy-unavailable' slot starting at the end of the busy slot (bufferAfter)"
                },
                mine.iter().map(|s| s.path()),
            ));
        };
        let length = slot.end - slot.start;
        if length != expected {
            let (name, attr) = if at_start {
                ("Buffer-before", "bufferBefore")
            } else {
                ("Buffer-after", "bufferAfter")
            };
            return Err(invalid(
                format!(
                    "{name} slot duration ({} min) does not match scheduling parameters {attr} ({} min)",
                    minutes(length),
                    minutes(expected)
                ),
                [slot.path()],
            ));
        }
        Ok(())
    };
    buffer(true, p.buffer_before.value)?;
    buffer(false, p.buffer_after.value)
}

/// `[from, to)` lies in the Schedule's planning horizon and in one of
/// its free windows as the stored Slots say now.
async fn check_available(
    db: &mut Db<'_>,
    server: &FhirServer,
    info: &ScheduleInfo,
    service: &Service,
    from: i64,
    to: i64,
) -> Result<(), TxFailure> {
    let (horizon_start, horizon_end) = info.horizon;
    if horizon_start.is_some_and(|h| from < h) || horizon_end.is_some_and(|h| to > h) {
        return Err(invalid(
            "Appointment falls outside schedule planning horizon",
            [info.expression.clone()],
        )
        .into());
    }
    let slots = overlapping_slots(db, &info.id, from, to).await?;
    let free = free_windows(server, info, service, &slots, from, to);
    if availability::covers(&free, from, to) {
        return Ok(());
    }
    let blocking: Vec<Value> = slots
        .iter()
        .filter(|s| s.status.starts_with("busy"))
        .map(|s| {
            json!({
                "reference": format!("Slot/{}", s.id),
                "start": str_at(&s.resource, "start"),
                "end": str_at(&s.resource, "end"),
                "status": s.status,
            })
        })
        .collect();
    let diagnostics = json!({"schedule": info.reference(), "blockingSlots": blocking});
    Err(
        invalid("Requested time slot is not available", Vec::<String>::new())
            .with_diagnostics(diagnostics.to_string())
            .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs() {
        let bare = br#"{"resourceType":"Appointment","status":"proposed"}"#;
        assert_eq!(input(bare).unwrap()["status"], "proposed");
        let wrapped = br#"{"resourceType":"Parameters","parameter":[{"name":"appointment","resource":{"resourceType":"Appointment","status":"proposed"}}]}"#;
        assert_eq!(input(wrapped).unwrap()["resourceType"], "Appointment");
        let empty = br#"{"resourceType":"Parameters"}"#;
        assert_eq!(
            input(empty).unwrap_err().message(),
            "Expected at least 1 value(s) for required input parameter 'appointment'"
        );
        assert_eq!(input(b"{").unwrap_err().status(), 400);
        assert_eq!(minutes(15 * MINUTE), "15");
        assert_eq!(minutes(90_000), "1.5");
    }
}
