//! `GET [base]/Appointment/$find?start=…&end=…&service-type-reference=…&schedule=…[&_count=…]`:
//! proposed Appointments (status `proposed`, with contained Slots) at the aligned start
//! times where every Schedule is free for the duration and its buffers. Read-only.
//!
//! The checks and their texts follow the reference (§6.2), in its order.

use futures::FutureExt;
use futures::future::BoxFuture;
use serde_json::{Value, json};

use super::availability::{self, Window};
use super::params::{self, ScheduleInfo, Service};
use super::{
    Db, StoredSlot, array_at, format_time, invalid, overlapping_slots, parse_time, reference_id,
};
use crate::error::ApiResult;
use crate::interactions::Context;
use crate::response::FhirResponse;
use crate::route::{OperationTarget, truncate};
use crate::server::FhirServer;

/// Proposals returned when `_count` is not given.
const DEFAULT_COUNT: usize = 20;
/// The most proposals one request may ask for.
const MAX_COUNT: usize = 1000;
/// The longest search range.
const MAX_RANGE: i64 = 31 * 24 * 3_600_000;

/// The handler.
pub(super) fn run<'a>(
    ctx: &'a Context<'a>,
    _target: &'a OperationTarget,
) -> BoxFuture<'a, ApiResult<FhirResponse>> {
    find(ctx).boxed()
}

/// The validated query.
struct FindRequest {
    start: i64,
    end: i64,
    service_id: Option<String>,
    schedule_ids: Vec<String>,
    count: usize,
}

fn required<'a>(ctx: &'a Context<'_>, name: &str) -> ApiResult<&'a str> {
    ctx.request.query_value(name).ok_or_else(|| {
        invalid(
            format!("Expected at least 1 value(s) for required input parameter '{name}'"),
            Vec::<String>::new(),
        )
    })
}

fn parse_request(ctx: &Context<'_>) -> ApiResult<FindRequest> {
    let start = required(ctx, "start")?;
    let end = required(ctx, "end")?;
    let service = required(ctx, "service-type-reference")?;
    required(ctx, "schedule")?;
    let date_time = |name: &str, value: &str| {
        parse_time(value).ok_or_else(|| {
            invalid(
                format!(
                    "Invalid value '{}' provided for dateTime parameter '{name}'",
                    truncate(value, 64)
                ),
                Vec::<String>::new(),
            )
        })
    };
    let (start, end) = (date_time("start", start)?, date_time("end", end)?);
    let count = match ctx.request.query_value("_count") {
        None => None,
        Some(v) => Some(v.trim().parse::<i64>().map_err(|_| {
            invalid(
                format!(
                    "Invalid value '{}' provided for integer parameter '_count'",
                    truncate(v, 64)
                ),
                Vec::<String>::new(),
            )
        })?),
    };
    let mut schedule_ids = Vec::new();
    for (i, reference) in ctx.request.query_values("schedule").enumerate() {
        let id = reference_id(ctx.server, reference, "Schedule").ok_or_else(|| {
            invalid(
                "Invalid schedule reference",
                [format!("Parameters.schedule[{i}]")],
            )
        })?;
        schedule_ids.push(id.to_string());
    }
    let count = match count {
        None => DEFAULT_COUNT,
        Some(c) if c < 1 => {
            return Err(invalid(
                "Invalid _count, minimum required is 1",
                Vec::<String>::new(),
            ));
        }
        Some(c) if c > MAX_COUNT as i64 => {
            return Err(invalid(
                "Invalid _count, maximum allowed is 1000",
                Vec::<String>::new(),
            ));
        }
        Some(c) => c as usize,
    };
    if start >= end {
        return Err(invalid("Invalid search time range", Vec::<String>::new()));
    }
    if end - start > MAX_RANGE {
        return Err(invalid(
            "Search range cannot exceed 31 days",
            Vec::<String>::new(),
        ));
    }
    Ok(FindRequest {
        start,
        end,
        service_id: reference_id(ctx.server, service, "HealthcareService").map(str::to_string),
        schedule_ids,
        count,
    })
}

async fn find(ctx: &Context<'_>) -> ApiResult<FhirResponse> {
    let request = parse_request(ctx)?;
    let mut db = Db::Store(ctx.server.store());
    let service = match &request.service_id {
        Some(id) => params::load_service(&mut db, id, "Parameters.service-type-reference").await?,
        None => None,
    };
    let mut schedules = Vec::new();
    for (i, id) in request.schedule_ids.iter().enumerate() {
        let expression = format!("Parameters.schedule[{i}]");
        let Some((_, resource)) = db.read_live("Schedule", id).await? else {
            return Err(invalid("Loading schedule failed", [expression]));
        };
        schedules.push((id.clone(), resource, expression));
    }
    let Some(service) = service else {
        return Err(invalid(
            "HealthcareService not found",
            ["Parameters.service-type-reference"],
        ));
    };
    let mut infos = Vec::new();
    for (id, resource, expression) in schedules {
        let info = params::schedule_info(&mut db, ctx.server, &id, resource, &service, &expression)
            .await?;
        if !params::offers(ctx.server, &info.resource, &service) {
            return Err(invalid(
                "Schedule is not schedulable for requested service type",
                [expression],
            ));
        }
        infos.push(info);
    }
    let (mut from, mut to) = (request.start, request.end);
    for info in &infos {
        if let (Some(horizon_start), _) = info.horizon
            && request.end <= horizon_start
        {
            return Err(invalid(
                "Search range ends before schedule planning horizon starts",
                [info.expression.clone()],
            ));
        }
        if let (_, Some(horizon_end)) = info.horizon
            && request.start >= horizon_end
        {
            return Err(invalid(
                "Search range starts after schedule planning horizon ends",
                [info.expression.clone()],
            ));
        }
        from = from.max(info.horizon.0.unwrap_or(from));
        to = to.min(info.horizon.1.unwrap_or(to));
    }
    params::check_same(&infos)?;
    let mut common: Option<Vec<Window>> = None;
    let mut buffers: Vec<(i64, i64)> = Vec::new();
    for info in &infos {
        let p = &info.params;
        // Slots reaching into the buffers around the range matter too.
        let slots = overlapping_slots(
            &mut db,
            &info.id,
            from - p.buffer_before.value,
            to + p.buffer_after.value,
        )
        .await?;
        let free = free_windows(
            ctx.server,
            info,
            &service,
            &slots,
            from - p.buffer_before.value,
            to + p.buffer_after.value,
        );
        let usable = availability::shrink(
            &free,
            p.buffer_before.value,
            p.buffer_after.value,
            p.duration.value,
        );
        buffers.push((p.buffer_before.value, p.buffer_after.value));
        common = Some(match common {
            None => usable,
            Some(c) => availability::intersect(&c, &usable),
        });
    }
    let windows: Vec<Window> = availability::intersect(&common.unwrap_or_default(), &[(from, to)]);
    let Some(first) = infos.first() else {
        return Err(invalid(
            "Expected at least 1 value(s) for required input parameter 'schedule'",
            Vec::<String>::new(),
        ));
    };
    let p = &first.params;
    let starts = availability::aligned_starts(
        &windows,
        p.duration.value,
        p.alignment_interval.value,
        p.alignment_offset.value,
        &p.alignment_tz,
        request.count,
    );
    let proposals: Vec<Value> = starts
        .iter()
        .map(|&start| proposal(&infos, &service, start, start + p.duration.value))
        .collect();
    let mut bundle = json!({"resourceType": "Bundle", "type": "searchset"});
    if !proposals.is_empty() {
        bundle["entry"] = Value::Array(
            proposals
                .into_iter()
                .map(|a| json!({ "resource": a }))
                .collect(),
        );
    }
    Ok(FhirResponse::json(
        200,
        oxifhir_model::json::to_bytes(&bundle),
    ))
}

/// The free windows of one Schedule in `[from, to)`: its availability plus its `free` Slots
/// for the service, minus its busy Slots (busy overrides free).
pub(super) fn free_windows(
    server: &FhirServer,
    info: &ScheduleInfo,
    service: &Service,
    slots: &[StoredSlot],
    from: i64,
    to: i64,
) -> Vec<Window> {
    let p = &info.params;
    let base = availability::expand(&p.availability, &p.timezone, from, to);
    let free: Vec<Window> = slots
        .iter()
        .filter(|s| s.status == "free" && serves(server, &s.resource, service))
        .map(|s| (s.start.max(from), s.end.min(to)))
        .collect();
    let busy: Vec<Window> = slots
        .iter()
        .filter(|s| s.status.starts_with("busy"))
        .map(|s| (s.start, s.end))
        .collect();
    availability::subtract(
        &availability::union(&base, &availability::normalize(free)),
        &availability::normalize(busy),
    )
}

/// True when a `free` Slot is for `service`: it names no service type, or one of its
/// codings (system and code) is one of the service's, or it references the service.
fn serves(server: &FhirServer, slot: &Value, service: &Service) -> bool {
    let types = array_at(slot, "serviceType");
    if types.is_empty() {
        return true;
    }
    let mine = service.codings();
    params::codings(types).iter().any(|c| mine.contains(c))
        || params::service_references(types)
            .iter()
            .any(|r| reference_id(server, r, "HealthcareService") == Some(service.id.as_str()))
}

/// One proposed Appointment at `[start, end)` on every Schedule.
fn proposal(infos: &[ScheduleInfo], service: &Service, start: i64, end: i64) -> Value {
    let mut contained = Vec::new();
    for info in infos {
        let slot = |status: &str, from: i64, to: i64, comment: Option<&str>| {
            let mut s = json!({
                "resourceType": "Slot",
                "start": format_time(from),
                "end": format_time(to),
                "schedule": {"reference": info.reference()},
                "status": status,
            });
            if let Some(c) = comment {
                s["comment"] = json!(c);
            }
            s
        };
        contained.push(slot("busy", start, end, None));
        let (before, after) = (
            info.params.buffer_before.value,
            info.params.buffer_after.value,
        );
        if before > 0 {
            contained.push(slot(
                "busy-unavailable",
                start - before,
                start,
                Some("buffer before appointment"),
            ));
        }
        if after > 0 {
            contained.push(slot(
                "busy-unavailable",
                end,
                end + after,
                Some("buffer after appointment"),
            ));
        }
    }
    json!({
        "resourceType": "Appointment",
        "start": format_time(start),
        "end": format_time(end),
        "status": "proposed",
        "serviceType": service.service_type_concepts(),
        "participant": infos
            .iter()
            .map(|i| json!({"actor": i.actor, "required": "required", "status": "needs-action"}))
            .collect::<Vec<_>>(),
        "contained": contained,
    })
}
