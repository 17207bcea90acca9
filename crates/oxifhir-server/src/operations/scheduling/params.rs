//! Scheduling parameters: the `SchedulingParameters` extension on a HealthcareService and on
//! a Schedule, layered as the reference does (§6.1): defaults, then the HealthcareService
//! (its `availableTime` and extension), then the Schedule's extension whose `service` is the
//! requested one; the time zone falls back to the Schedule actor's `timezone` extension.
//!
//! Each attribute remembers where it came from (an `expression` such as
//! `Parameters.schedule[1].extension[0]`), so that a mismatch between Schedules can name both
//! sources.

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use serde_json::Value;

use super::{
    Db, SCHEDULING_PARAMETERS_URL, SERVICE_TYPE_REFERENCE_URL, TIMEZONE_URL, array_at, invalid,
    parse_time, reference_id, str_at,
};
use crate::error::ApiResult;
use crate::server::FhirServer;

/// Milliseconds in a minute.
pub const MINUTE: i64 = 60_000;

/// A value and the expression of the extension it was read from (`None`: a default).
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Option<String>,
}

impl<T> Sourced<T> {
    fn default(value: T) -> Self {
        Sourced {
            value,
            source: None,
        }
    }
}

/// One `availableTime`: on these weekdays, from `start` to `end` local time (`end` at or
/// before `start` ends the next day; both `None`: the whole day).
#[derive(Debug, Clone, PartialEq)]
pub struct AvailableTime {
    pub days: Vec<Weekday>,
    pub start: Option<Time>,
    pub end: Option<Time>,
}

impl AvailableTime {
    /// Every day, all day: the default availability.
    pub fn always() -> Self {
        AvailableTime {
            days: vec![
                Weekday::Monday,
                Weekday::Tuesday,
                Weekday::Wednesday,
                Weekday::Thursday,
                Weekday::Friday,
                Weekday::Saturday,
                Weekday::Sunday,
            ],
            start: None,
            end: None,
        }
    }
}

/// The parameters in force for one Schedule and service. Durations are in milliseconds.
#[derive(Debug, Clone)]
pub struct SchedulingParams {
    pub duration: Sourced<i64>,
    pub buffer_before: Sourced<i64>,
    pub buffer_after: Sourced<i64>,
    pub alignment_interval: Sourced<i64>,
    pub alignment_offset: Sourced<i64>,
    /// The zone availability is expanded in.
    pub timezone: TimeZone,
    /// The zone whose local midnights anchor the alignment grid, by name.
    pub alignment_timezone: Sourced<String>,
    pub alignment_tz: TimeZone,
    pub availability: Vec<AvailableTime>,
}

/// What one extension (or the HealthcareService's own fields) says; unset attributes are
/// inherited.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layer {
    duration: Option<Sourced<i64>>,
    buffer_before: Option<Sourced<i64>>,
    buffer_after: Option<Sourced<i64>>,
    alignment_interval: Option<Sourced<i64>>,
    alignment_offset: Option<Sourced<i64>>,
    timezone: Option<Sourced<String>>,
    alignment_timezone: Option<Sourced<String>>,
    service: Option<String>,
    availability: Option<Vec<AvailableTime>>,
}

/// Which resource an extension is on (some attributes are allowed on one only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    HealthcareService,
    Schedule,
}

/// The sub-extensions of `ext` named `name`; more than one is a `400`.
fn single<'a>(ext: &'a Value, name: &str, source: &str) -> ApiResult<Option<&'a Value>> {
    let mut found = array_at(ext, "extension")
        .iter()
        .filter(|e| str_at(e, "url") == Some(name));
    let first = found.next();
    if found.next().is_some() {
        return Err(invalid(
            format!("Scheduling parameter attribute '{name}' has too many values"),
            [source],
        ));
    }
    Ok(first)
}

/// A `valueDuration` in milliseconds (units `min`, `h`, `d`, `wk`).
fn duration(ext: &Value, source: &str) -> ApiResult<i64> {
    let d = ext.get("valueDuration").unwrap_or(&Value::Null);
    let Some(value) = d.get("value").and_then(Value::as_f64) else {
        return Err(invalid("Got duration without value", [source]));
    };
    if value < 0.0 {
        return Err(invalid("Got duration with negative value", [source]));
    }
    let unit = str_at(d, "code")
        .or_else(|| str_at(d, "unit"))
        .unwrap_or("");
    let per = match unit {
        "min" => MINUTE,
        "h" => 60 * MINUTE,
        "d" => 24 * 60 * MINUTE,
        "wk" => 7 * 24 * 60 * MINUTE,
        other => {
            return Err(invalid(
                format!("Got unhandled duration unit \"{other}\""),
                [source],
            ));
        }
    };
    let millis = (value * per as f64).round();
    if millis > 1e15 {
        return Err(invalid("Got duration with too large a value", [source]));
    }
    Ok(millis as i64)
}

/// A time zone by IANA name (`400 Invalid timezone '…'` otherwise).
pub fn time_zone(name: &str, source: &str) -> ApiResult<TimeZone> {
    TimeZone::get(name).map_err(|_| {
        invalid(
            format!("Invalid timezone '{}'", crate::route::truncate(name, 64)),
            [source],
        )
    })
}

fn weekday(code: &str) -> Option<Weekday> {
    Some(match code {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

fn time_of_day(text: &str) -> Option<Time> {
    text.parse::<Time>().ok()
}

/// The `availability` attribute: `availableTime` sub-extensions with `daysOfWeek`,
/// `allDay`, `availableStartTime`, `availableEndTime`.
fn availability(ext: &Value, source: &str) -> ApiResult<Vec<AvailableTime>> {
    let mut out = Vec::new();
    for time in array_at(ext, "extension")
        .iter()
        .filter(|e| str_at(e, "url") == Some("availableTime"))
    {
        let subs = array_at(time, "extension");
        let mut days = Vec::new();
        for d in subs
            .iter()
            .filter(|e| str_at(e, "url") == Some("daysOfWeek"))
        {
            let day = str_at(d, "valueCode").and_then(weekday).ok_or_else(|| {
                invalid(
                    "Invalid SchedulingParameters.availability.availableTime.daysOfWeek entry",
                    [source],
                )
            })?;
            days.push(day);
        }
        let value = |name: &str, key: &str| {
            subs.iter()
                .find(|e| str_at(e, "url") == Some(name))
                .and_then(|e| e.get(key))
        };
        let all_day = value("allDay", "valueBoolean").and_then(Value::as_bool) == Some(true);
        let start = value("availableStartTime", "valueTime").and_then(Value::as_str);
        let end = value("availableEndTime", "valueTime").and_then(Value::as_str);
        let (start, end) = match (all_day, start, end) {
            (true, _, _) | (false, None, None) => (None, None),
            (false, Some(_), None) => {
                return Err(invalid(
                    "availableTime has availableStartTime without availableEndTime",
                    [source],
                ));
            }
            (false, None, Some(_)) => {
                return Err(invalid(
                    "availableTime has availableEndTime without availableStartTime",
                    [source],
                ));
            }
            (false, Some(s), Some(e)) => {
                let bad = || invalid(format!("Invalid availableTime time '{s}'–'{e}'"), [source]);
                (
                    Some(time_of_day(s).ok_or_else(bad)?),
                    Some(time_of_day(e).ok_or_else(bad)?),
                )
            }
        };
        out.push(AvailableTime { days, start, end });
    }
    Ok(out)
}

/// Parses one `SchedulingParameters` extension found at `source`.
fn parse_layer(ext: &Value, owner: Owner, source: &str) -> ApiResult<Layer> {
    let mut layer = Layer::default();
    fn sourced<T>(value: T, source: &str) -> Sourced<T> {
        Sourced {
            value,
            source: Some(source.to_string()),
        }
    }
    for (name, slot) in [
        ("duration", &mut layer.duration),
        ("bufferBefore", &mut layer.buffer_before),
        ("bufferAfter", &mut layer.buffer_after),
        ("alignmentInterval", &mut layer.alignment_interval),
        ("alignmentOffset", &mut layer.alignment_offset),
    ] {
        if let Some(sub) = single(ext, name, source)? {
            *slot = Some(sourced(duration(sub, source)?, source));
        }
    }
    for (name, slot) in [
        ("timezone", &mut layer.timezone),
        ("alignmentTimezone", &mut layer.alignment_timezone),
    ] {
        if let Some(sub) = single(ext, name, source)? {
            let zone = str_at(sub, "valueCode").unwrap_or("");
            time_zone(zone, source)?;
            *slot = Some(sourced(zone.to_string(), source));
        }
    }
    for name in ["service", "availability"] {
        if owner == Owner::HealthcareService && single(ext, name, source)?.is_some() {
            return Err(invalid(
                format!(
                    "Scheduling parameter attribute '{name}' is not allowed on HealthcareService"
                ),
                [source],
            ));
        }
    }
    if let Some(service) = single(ext, "service", source)? {
        layer.service = service
            .get("valueReference")
            .and_then(|r| str_at(r, "reference"))
            .map(str::to_string);
    }
    if let Some(avail) = single(ext, "availability", source)? {
        layer.availability = Some(availability(avail, source)?);
    }
    Ok(layer)
}

/// A HealthcareService with what it says about scheduling.
#[derive(Debug, Clone)]
pub struct Service {
    pub id: String,
    pub resource: Value,
    layer: Layer,
}

impl Service {
    /// `HealthcareService/{id}`.
    pub fn reference(&self) -> String {
        format!("HealthcareService/{}", self.id)
    }

    /// `Appointment.serviceType`: each of the service's `type` concepts with the
    /// service-type-reference extension (a bare extension when it has none).
    pub fn service_type_concepts(&self) -> Vec<Value> {
        let ext = serde_json::json!({
            "url": SERVICE_TYPE_REFERENCE_URL,
            "valueReference": {"reference": self.reference()},
        });
        let types = array_at(&self.resource, "type");
        if types.is_empty() {
            return vec![serde_json::json!({ "extension": [ext] })];
        }
        types
            .iter()
            .map(|t| {
                let mut t = t.clone();
                if let Some(map) = t.as_object_mut() {
                    let mut extensions = map
                        .get("extension")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    extensions.retain(|e| str_at(e, "url") != Some(SERVICE_TYPE_REFERENCE_URL));
                    extensions.push(ext.clone());
                    map.insert("extension".into(), Value::Array(extensions));
                }
                t
            })
            .collect()
    }

    /// `(system, code)` of each coding of the service's `type`.
    pub fn codings(&self) -> Vec<(Option<String>, String)> {
        codings(array_at(&self.resource, "type"))
    }
}

/// `(system, code)` of each coding of a list of CodeableConcepts.
pub fn codings(concepts: &[Value]) -> Vec<(Option<String>, String)> {
    concepts
        .iter()
        .flat_map(|c| array_at(c, "coding"))
        .filter_map(|c| {
            Some((
                str_at(c, "system").map(str::to_string),
                str_at(c, "code")?.to_string(),
            ))
        })
        .collect()
}

/// The HealthcareService references in the service-type-reference extensions of a list of
/// CodeableConcepts (`serviceType`), in order.
pub fn service_references(concepts: &[Value]) -> Vec<String> {
    concepts
        .iter()
        .flat_map(|c| array_at(c, "extension"))
        .filter(|e| str_at(e, "url") == Some(SERVICE_TYPE_REFERENCE_URL))
        .filter_map(|e| e.get("valueReference").and_then(|r| str_at(r, "reference")))
        .map(str::to_string)
        .collect()
}

/// Reads `HealthcareService/{id}` and its scheduling parameters (`source` is the expression
/// its extensions are reported under); `None` when it does not exist.
pub(crate) async fn load_service(
    db: &mut Db<'_>,
    id: &str,
    source: &str,
) -> ApiResult<Option<Service>> {
    let Some((_, resource)) = db.read_live("HealthcareService", id).await? else {
        return Ok(None);
    };
    let exts: Vec<(usize, &Value)> = array_at(&resource, "extension")
        .iter()
        .enumerate()
        .filter(|(_, e)| str_at(e, "url") == Some(SCHEDULING_PARAMETERS_URL))
        .collect();
    if exts.len() > 1 {
        return Err(invalid(
            "HealthcareService has too many scheduling parameters extensions",
            [source],
        ));
    }
    let mut layer = match exts.first() {
        Some((i, ext)) => parse_layer(
            ext,
            Owner::HealthcareService,
            &format!("{source}.extension[{i}]"),
        )?,
        None => Layer::default(),
    };
    // The native field; entries without both times (and not all day) are dropped.
    let native: Vec<AvailableTime> = array_at(&resource, "availableTime")
        .iter()
        .filter_map(|t| {
            let days = array_at(t, "daysOfWeek")
                .iter()
                .filter_map(|d| d.as_str().and_then(weekday))
                .collect();
            if t.get("allDay").and_then(Value::as_bool) == Some(true) {
                return Some(AvailableTime {
                    days,
                    start: None,
                    end: None,
                });
            }
            Some(AvailableTime {
                days,
                start: Some(time_of_day(str_at(t, "availableStartTime")?)?),
                end: Some(time_of_day(str_at(t, "availableEndTime")?)?),
            })
        })
        .collect();
    if !native.is_empty() {
        layer.availability = Some(native);
    }
    Ok(Some(Service {
        id: id.to_string(),
        resource,
        layer,
    }))
}

/// A Schedule ready for scheduling: its resource, single actor and parameters.
#[derive(Debug, Clone)]
pub struct ScheduleInfo {
    pub id: String,
    pub resource: Value,
    /// `Schedule.actor[0]` as written (a Reference).
    pub actor: Value,
    pub params: SchedulingParams,
    /// `Schedule.planningHorizon` bounds in milliseconds.
    pub horizon: (Option<i64>, Option<i64>),
    /// Where errors about it point (`Parameters.schedule[0]`).
    pub expression: String,
}

impl ScheduleInfo {
    /// `Schedule/{id}`.
    pub fn reference(&self) -> String {
        format!("Schedule/{}", self.id)
    }
}

/// True when `schedule.serviceType` names `service` through the service-type-reference
/// extension.
pub fn offers(server: &FhirServer, schedule: &Value, service: &Service) -> bool {
    service_references(array_at(schedule, "serviceType"))
        .iter()
        .any(|r| reference_id(server, r, "HealthcareService") == Some(service.id.as_str()))
}

/// Builds the parameters of `schedule` for `service`: its one actor (read for its time
/// zone), its extension for the service, layered over the service's. Errors point at
/// `expression`.
pub(crate) async fn schedule_info(
    db: &mut Db<'_>,
    server: &FhirServer,
    id: &str,
    schedule: Value,
    service: &Service,
    expression: &str,
) -> ApiResult<ScheduleInfo> {
    let actors = array_at(&schedule, "actor");
    let [actor] = actors else {
        return Err(invalid(
            "Scheduling only supported on schedules with exactly one actor",
            [expression],
        ));
    };
    let actor = actor.clone();
    let actor_resource = match str_at(&actor, "reference").and_then(|r| {
        let base = server.config().base_url.trim_end_matches('/');
        let r = r
            .strip_prefix(base)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(r);
        r.split_once('/')
    }) {
        Some((t, i)) if oxifhir_model::resource_type::is_known(t) => db.read_live(t, i).await?,
        _ => None,
    };
    let Some((_, actor_resource)) = actor_resource else {
        return Err(invalid("Loading schedule.actor failed", [expression]));
    };
    let actor_zone = array_at(&actor_resource, "extension")
        .iter()
        .find(|e| str_at(e, "url") == Some(TIMEZONE_URL))
        .and_then(|e| str_at(e, "valueCode"))
        .map(str::to_string);

    let mut matching = Vec::new();
    for (i, ext) in array_at(&schedule, "extension").iter().enumerate() {
        if str_at(ext, "url") != Some(SCHEDULING_PARAMETERS_URL) {
            continue;
        }
        let source = format!("{expression}.extension[{i}]");
        let layer = parse_layer(ext, Owner::Schedule, &source)?;
        let Some(reference) = &layer.service else {
            return Err(invalid(
                "Scheduling parameter attribute 'service' is missing",
                [source],
            ));
        };
        if reference_id(server, reference, "HealthcareService") == Some(service.id.as_str()) {
            matching.push(layer);
        }
    }
    if matching.len() > 1 {
        return Err(invalid(
            "Schedule has too many scheduling parameters extensions",
            [expression],
        ));
    }
    let own = matching.pop().unwrap_or_default();
    let params = resolve(&service.layer, &own, actor_zone, expression)?;
    let horizon = schedule
        .get("planningHorizon")
        .map(|p| {
            (
                str_at(p, "start").and_then(parse_time),
                str_at(p, "end").and_then(parse_time),
            )
        })
        .unwrap_or((None, None));
    Ok(ScheduleInfo {
        id: id.to_string(),
        resource: schedule,
        actor,
        params,
        horizon,
        expression: expression.to_string(),
    })
}

/// The Schedule's layer over the service's over the defaults.
fn resolve(
    service: &Layer,
    schedule: &Layer,
    actor_zone: Option<String>,
    expression: &str,
) -> ApiResult<SchedulingParams> {
    let pick = |f: fn(&Layer) -> &Option<Sourced<i64>>| f(schedule).clone().or(f(service).clone());
    let duration = pick(|l| &l.duration).ok_or_else(|| {
        invalid(
            "Scheduling parameter attribute 'duration' is missing",
            [expression],
        )
    })?;
    let mut alignment_interval =
        pick(|l| &l.alignment_interval).unwrap_or(Sourced::default(60 * MINUTE));
    if alignment_interval.value == 0 {
        alignment_interval.value = 60 * MINUTE;
    }
    if alignment_interval.value > 1440 * MINUTE {
        return Err(invalid(
            "alignmentInterval cannot exceed 1440 minutes (1 day)",
            alignment_interval.source.clone(),
        ));
    }
    let zone_name = schedule
        .timezone
        .clone()
        .or(service.timezone.clone())
        .map(|z| z.value)
        .or(actor_zone)
        .ok_or_else(|| invalid("No timezone specified", [expression]))?;
    let timezone = time_zone(&zone_name, expression)?;
    let alignment_timezone = schedule
        .alignment_timezone
        .clone()
        .or(service.alignment_timezone.clone())
        .unwrap_or(Sourced::default("Etc/UTC".to_string()));
    let alignment_tz = time_zone(&alignment_timezone.value, expression)?;
    let availability = schedule
        .availability
        .clone()
        .or(service.availability.clone())
        .unwrap_or_else(|| vec![AvailableTime::always()]);
    Ok(SchedulingParams {
        duration,
        buffer_before: pick(|l| &l.buffer_before).unwrap_or(Sourced::default(0)),
        buffer_after: pick(|l| &l.buffer_after).unwrap_or(Sourced::default(0)),
        alignment_interval,
        alignment_offset: pick(|l| &l.alignment_offset).unwrap_or(Sourced::default(0)),
        timezone,
        alignment_timezone,
        alignment_tz,
        availability,
    })
}

/// `400 Scheduling parameters attribute '<attr>' does not match` when the Schedules differ
/// in duration or alignment grid; the expressions name both sources.
pub fn check_same(schedules: &[ScheduleInfo]) -> ApiResult<()> {
    let Some(first) = schedules.first() else {
        return Ok(());
    };
    for other in &schedules[1..] {
        let (a, b) = (&first.params, &other.params);
        let pairs: [(&str, &Sourced<i64>, &Sourced<i64>); 3] = [
            ("duration", &a.duration, &b.duration),
            (
                "alignmentInterval",
                &a.alignment_interval,
                &b.alignment_interval,
            ),
            ("alignmentOffset", &a.alignment_offset, &b.alignment_offset),
        ];
        for (name, x, y) in pairs {
            if x.value != y.value {
                return Err(mismatch(name, &x.source, &y.source));
            }
        }
        if a.alignment_timezone.value != b.alignment_timezone.value {
            return Err(mismatch(
                "alignmentTimezone",
                &a.alignment_timezone.source,
                &b.alignment_timezone.source,
            ));
        }
    }
    Ok(())
}

fn mismatch(name: &str, a: &Option<String>, b: &Option<String>) -> crate::error::ApiError {
    invalid(
        format!("Scheduling parameters attribute '{name}' does not match"),
        a.iter().chain(b.iter()).cloned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dur(name: &str, value: f64, unit: &str) -> Value {
        json!({"url": name, "valueDuration": {"value": value, "unit": unit, "code": unit}})
    }

    #[test]
    fn durations_and_their_errors() {
        let ok = |v, u| duration(&dur("duration", v, u), "x");
        assert_eq!(ok(30.0, "min").unwrap(), 30 * MINUTE);
        assert_eq!(ok(1.5, "h").unwrap(), 90 * MINUTE);
        assert_eq!(ok(1.0, "d").unwrap(), 1440 * MINUTE);
        assert_eq!(ok(1.0, "wk").unwrap(), 7 * 1440 * MINUTE);
        assert_eq!(
            ok(1.0, "mo").unwrap_err().message(),
            "Got unhandled duration unit \"mo\""
        );
        assert_eq!(
            ok(-1.0, "min").unwrap_err().message(),
            "Got duration with negative value"
        );
        let none = json!({"url": "duration", "valueDuration": {"unit": "min"}});
        assert_eq!(
            duration(&none, "x").unwrap_err().message(),
            "Got duration without value"
        );
    }

    #[test]
    fn layers_parse_and_check_owners() {
        let ext = json!({"url": SCHEDULING_PARAMETERS_URL, "extension": [
            dur("duration", 30.0, "min"), dur("bufferBefore", 10.0, "min"),
            {"url": "timezone", "valueCode": "Pacific/Kiritimati"},
            {"url": "service", "valueReference": {"reference": "HealthcareService/s"}},
            {"url": "availability", "extension": [{"url": "availableTime", "extension": [
                {"url": "daysOfWeek", "valueCode": "mon"}, {"url": "daysOfWeek", "valueCode": "tue"},
                {"url": "availableStartTime", "valueTime": "09:00:00"},
                {"url": "availableEndTime", "valueTime": "17:00:00"}]}]}
        ]});
        let layer = parse_layer(&ext, Owner::Schedule, "S").unwrap();
        assert_eq!(layer.duration.unwrap().value, 30 * MINUTE);
        assert_eq!(layer.buffer_before.unwrap().source.as_deref(), Some("S"));
        assert_eq!(layer.service.as_deref(), Some("HealthcareService/s"));
        let avail = layer.availability.unwrap();
        assert_eq!(avail[0].days, [Weekday::Monday, Weekday::Tuesday]);
        assert_eq!(avail[0].start, Some(Time::constant(9, 0, 0, 0)));
        let err = parse_layer(&ext, Owner::HealthcareService, "H").unwrap_err();
        assert_eq!(
            err.message(),
            "Scheduling parameter attribute 'service' is not allowed on HealthcareService"
        );

        let cases = [
            (
                json!([dur("duration", 1.0, "h"), dur("duration", 2.0, "h")]),
                "Scheduling parameter attribute 'duration' has too many values",
            ),
            (
                json!([{"url": "timezone", "valueCode": "Mars/Olympus"}]),
                "Invalid timezone 'Mars/Olympus'",
            ),
            (
                json!([{"url": "availability", "extension": [{"url": "availableTime", "extension": [
                    {"url": "daysOfWeek", "valueCode": "funday"}]}]}]),
                "Invalid SchedulingParameters.availability.availableTime.daysOfWeek entry",
            ),
            (
                json!([{"url": "availability", "extension": [{"url": "availableTime", "extension": [
                    {"url": "availableStartTime", "valueTime": "09:00:00"}]}]}]),
                "availableTime has availableStartTime without availableEndTime",
            ),
            (
                json!([{"url": "availability", "extension": [{"url": "availableTime", "extension": [
                    {"url": "availableEndTime", "valueTime": "09:00:00"}]}]}]),
                "availableTime has availableEndTime without availableStartTime",
            ),
        ];
        for (subs, text) in cases {
            let ext = json!({"url": SCHEDULING_PARAMETERS_URL, "extension": subs});
            assert_eq!(
                parse_layer(&ext, Owner::Schedule, "S")
                    .unwrap_err()
                    .message(),
                text
            );
        }
        let ext = json!({"url": SCHEDULING_PARAMETERS_URL, "extension": [
            {"url": "availability", "extension": []}]});
        assert_eq!(
            parse_layer(&ext, Owner::HealthcareService, "H")
                .unwrap_err()
                .message(),
            "Scheduling parameter attribute 'availability' is not allowed on HealthcareService"
        );
    }

    #[test]
    fn resolution_layers_defaults_service_and_schedule() {
        let service = Layer {
            duration: Some(Sourced {
                value: 30 * MINUTE,
                source: Some("svc".into()),
            }),
            buffer_after: Some(Sourced::default(5 * MINUTE)),
            ..Layer::default()
        };
        let schedule = Layer {
            duration: Some(Sourced {
                value: 45 * MINUTE,
                source: Some("sch".into()),
            }),
            alignment_interval: Some(Sourced::default(0)),
            ..Layer::default()
        };
        let p = resolve(&service, &schedule, Some("America/New_York".into()), "e").unwrap();
        assert_eq!(p.duration.value, 45 * MINUTE);
        assert_eq!(p.buffer_after.value, 5 * MINUTE);
        assert_eq!(p.alignment_interval.value, 60 * MINUTE);
        assert_eq!(p.alignment_timezone.value, "Etc/UTC");
        assert_eq!(p.availability, vec![AvailableTime::always()]);
        assert_eq!(
            resolve(&service, &schedule, None, "e")
                .unwrap_err()
                .message(),
            "No timezone specified"
        );
        assert_eq!(
            resolve(
                &Layer::default(),
                &Layer::default(),
                Some("UTC".into()),
                "e"
            )
            .unwrap_err()
            .message(),
            "Scheduling parameter attribute 'duration' is missing"
        );
        let too_coarse = Layer {
            alignment_interval: Some(Sourced::default(1441 * MINUTE)),
            ..service.clone()
        };
        assert_eq!(
            resolve(&too_coarse, &Layer::default(), Some("UTC".into()), "e")
                .unwrap_err()
                .message(),
            "alignmentInterval cannot exceed 1440 minutes (1 day)"
        );
    }
}
