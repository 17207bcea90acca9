//! `$find`: proposals from availability, busy and free Slots, buffers and the grid; every
//! validation rule and text; DST days; a far time zone; several Schedules.

use serde_json::json;

use super::*;
use crate::support::*;

const MON: &str = "2026-06-01T00:00:00Z";
const TUE: &str = "2026-06-02T00:00:00Z";

fn weekday_mornings() -> Setup {
    Setup {
        schedule_params: vec![availability(&["mon"], "09:00:00", "12:00:00")],
        ..Setup::default()
    }
}

fhir_test! {
    async fn find_proposes_aligned_appointments(s: &TestServer) {
        setup(s, &Setup {
            service_params: vec![minutes("duration", 30), minutes("alignmentInterval", 30)],
            ..weekday_mornings()
        }, &["a"]).await;
        let found = proposals(s, &["a"], MON, TUE).await;
        assert_eq!(
            starts(&found),
            ["2026-06-01T09:00:00.000Z", "2026-06-01T09:30:00.000Z", "2026-06-01T10:00:00.000Z",
             "2026-06-01T10:30:00.000Z", "2026-06-01T11:00:00.000Z", "2026-06-01T11:30:00.000Z"]
        );
        let first = &found[0];
        assert_eq!(first["resourceType"], "Appointment");
        assert_eq!(first["status"], "proposed");
        assert_eq!(first["end"], "2026-06-01T09:30:00.000Z");
        assert_eq!(first["serviceType"][0]["coding"][0]["code"], "consult");
        assert_eq!(first["serviceType"][0]["extension"][0]["url"], SERVICE_REF_URL);
        assert_eq!(first["serviceType"][0]["extension"][0]["valueReference"]["reference"], "HealthcareService/hs");
        assert_eq!(first["participant"], json!([{"actor": {"reference": "Practitioner/dr-a"},
            "required": "required", "status": "needs-action"}]));
        assert_eq!(first["contained"], json!([{"resourceType": "Slot", "start": "2026-06-01T09:00:00.000Z",
            "end": "2026-06-01T09:30:00.000Z", "schedule": {"reference": "Schedule/a"}, "status": "busy"}]));
        // Read-only, and a searchset without paging.
        let r = find(s, &["a"], MON, TUE, "&_count=2").await;
        let b = r.json();
        assert_eq!(b["type"], "searchset");
        assert_eq!(entries(&b).len(), 2);
        assert!(live_slots(s, "a").await.is_empty());
        // Nothing available: a Bundle without entries.
        let r = find(s, &["a"], TUE, "2026-06-03T00:00:00Z", "").await;
        assert_eq!(r.status, 200);
        assert!(r.json().get("entry").is_none(), "{}", r.text());
    }
}

fhir_test! {
    async fn find_subtracts_busy_slots_and_adds_free_ones(s: &TestServer) {
        setup(s, &weekday_mornings(), &["a"]).await;
        slot(s, "a", "busy", "2026-06-01T10:00:00Z", "2026-06-01T11:00:00Z").await;
        slot(s, "a", "busy-tentative", "2026-06-01T09:00:00Z", "2026-06-01T09:30:00Z").await;
        slot(s, "a", "entered-in-error", "2026-06-01T11:00:00Z", "2026-06-01T12:00:00Z").await;
        // Free time outside the availability, for any service.
        slot(s, "a", "free", "2026-06-01T14:00:00Z", "2026-06-01T15:00:00Z").await;
        // Free time for another service does not count.
        s.create(&json!({"resourceType": "Slot", "schedule": {"reference": "Schedule/a"}, "status": "free",
            "serviceType": [{"coding": [{"system": "http://example.org/services", "code": "surgery"}]}],
            "start": "2026-06-01T16:00:00Z", "end": "2026-06-01T17:00:00Z"})).await;
        // A busy Slot inside free time wins.
        slot(s, "a", "busy-unavailable", "2026-06-01T14:15:00Z", "2026-06-01T14:45:00Z").await;
        // Another Schedule's busy Slot does not matter.
        slot(s, "other", "busy", "2026-06-01T11:00:00Z", "2026-06-01T12:00:00Z").await;
        let found = proposals(s, &["a"], MON, TUE).await;
        assert_eq!(starts(&found), ["2026-06-01T11:00:00.000Z"]);
        let r = s.get("Slot?end=gt2026-06-01T14:30:00Z&end=le2026-06-01T15:00:00Z").await;
        assert_eq!(entries(&r.json()).len(), 2, "Slot?end= is searchable: {}", r.text());
    }
}

fhir_test! {
    async fn find_keeps_room_for_buffers(s: &TestServer) {
        setup(s, &Setup {
            service_params: vec![minutes("duration", 30), minutes("alignmentInterval", 15),
                minutes("bufferBefore", 15), minutes("bufferAfter", 10)],
            ..weekday_mornings()
        }, &["a"]).await;
        slot(s, "a", "busy", "2026-06-01T10:00:00Z", "2026-06-01T11:00:00Z").await;
        let found = proposals(s, &["a"], MON, TUE).await;
        assert_eq!(
            starts(&found),
            ["2026-06-01T09:15:00.000Z", "2026-06-01T11:15:00.000Z"]
        );
        assert_eq!(found[0]["contained"], json!([
            {"resourceType": "Slot", "start": "2026-06-01T09:15:00.000Z", "end": "2026-06-01T09:45:00.000Z",
             "schedule": {"reference": "Schedule/a"}, "status": "busy"},
            {"resourceType": "Slot", "start": "2026-06-01T09:00:00.000Z", "end": "2026-06-01T09:15:00.000Z",
             "schedule": {"reference": "Schedule/a"}, "status": "busy-unavailable", "comment": "buffer before appointment"},
            {"resourceType": "Slot", "start": "2026-06-01T09:45:00.000Z", "end": "2026-06-01T09:55:00.000Z",
             "schedule": {"reference": "Schedule/a"}, "status": "busy-unavailable", "comment": "buffer after appointment"}
        ]));
    }
}

fhir_test! {
    async fn find_alignment_offset_and_zone(s: &TestServer) {
        setup(s, &Setup {
            service_params: vec![minutes("duration", 20), minutes("alignmentInterval", 60),
                minutes("alignmentOffset", 10), code("alignmentTimezone", "Asia/Kolkata")],
            ..weekday_mornings()
        }, &["a"]).await;
        // Kolkata is UTC+5:30: an hourly grid at :10 local is :40 UTC.
        assert_eq!(
            starts(&proposals(s, &["a"], MON, TUE).await),
            ["2026-06-01T09:40:00.000Z", "2026-06-01T10:40:00.000Z", "2026-06-01T11:40:00.000Z"]
        );
    }
}

fhir_test! {
    async fn find_spring_forward_day_has_its_real_hours(s: &TestServer) {
        // 2026-03-08 in New York: 02:00 EST jumps to 03:00 EDT.
        setup(s, &Setup {
            service_params: vec![minutes("duration", 60), code("alignmentTimezone", "America/New_York")],
            schedule_params: vec![availability(&EVERY_DAY, "01:00:00", "04:00:00")],
            zone: Some("America/New_York"),
            ..Setup::default()
        }, &["a"]).await;
        assert_eq!(
            starts(&proposals(s, &["a"], "2026-03-08T00:00:00Z", "2026-03-09T00:00:00Z").await),
            ["2026-03-08T06:00:00.000Z", "2026-03-08T07:00:00.000Z"]
        );
        // The day before has three.
        assert_eq!(
            proposals(s, &["a"], "2026-03-07T00:00:00Z", "2026-03-08T00:00:00Z").await.len(),
            3
        );
    }
}

fhir_test! {
    async fn find_fall_back_day_has_its_real_hours(s: &TestServer) {
        // 2026-11-01 in New York: 01:00–02:00 happens twice.
        setup(s, &Setup {
            service_params: vec![minutes("duration", 60), code("alignmentTimezone", "America/New_York")],
            schedule_params: vec![availability(&EVERY_DAY, "00:00:00", "03:00:00")],
            zone: Some("America/New_York"),
            ..Setup::default()
        }, &["a"]).await;
        assert_eq!(
            starts(&proposals(s, &["a"], "2026-11-01T00:00:00Z", "2026-11-02T00:00:00Z").await),
            ["2026-11-01T04:00:00.000Z", "2026-11-01T05:00:00.000Z", "2026-11-01T06:00:00.000Z",
             "2026-11-01T07:00:00.000Z"]
        );
    }
}

fhir_test! {
    async fn find_in_a_time_zone_far_from_the_server(s: &TestServer) {
        // Monday 09:00–12:00 in Kiritimati (UTC+14) is Sunday 19:00–22:00 UTC: a search over
        // the UTC Sunday finds it, one over the UTC Monday does not.
        setup(s, &Setup {
            schedule_params: vec![availability(&["mon"], "09:00:00", "12:00:00"), minutes("duration", 60)],
            zone: Some("Pacific/Kiritimati"),
            ..Setup::default()
        }, &["a"]).await;
        assert_eq!(
            starts(&proposals(s, &["a"], "2026-05-31T00:00:00Z", MON).await),
            ["2026-05-31T19:00:00.000Z", "2026-05-31T20:00:00.000Z", "2026-05-31T21:00:00.000Z"]
        );
        assert!(proposals(s, &["a"], MON, TUE).await.is_empty());
        // A search written in a local offset means the same instants.
        assert_eq!(
            proposals(s, &["a"], "2026-06-08T00:00:00+14:00", "2026-06-09T00:00:00+14:00").await.len(),
            3
        );
    }
}

fhir_test! {
    async fn find_on_several_schedules_intersects_them(s: &TestServer) {
        setup(s, &Setup { service_params: vec![minutes("duration", 60)], ..Setup::default() }, &["a", "b"]).await;
        // Schedule a: 09–12 UTC; b: 10–13 UTC, busy 10–11.
        let mut a = s.get("Schedule/a").await.json();
        a["extension"] = json!([params_for("hs", vec![availability(&["mon"], "09:00:00", "12:00:00")])]);
        put(s, &a).await;
        let mut b = s.get("Schedule/b").await.json();
        b["extension"] = json!([params_for("hs", vec![availability(&["mon"], "10:00:00", "13:00:00")])]);
        put(s, &b).await;
        slot(s, "b", "busy", "2026-06-01T10:00:00Z", "2026-06-01T11:00:00Z").await;
        let found = proposals(s, &["a", "b"], MON, TUE).await;
        assert_eq!(starts(&found), ["2026-06-01T11:00:00.000Z"]);
        assert_eq!(found[0]["participant"].as_array().unwrap().len(), 2);
        assert_eq!(found[0]["participant"][1]["actor"]["reference"], "Practitioner/dr-b");
        let contained = found[0]["contained"].as_array().unwrap();
        assert_eq!(contained.len(), 2);
        assert_eq!(contained[1]["schedule"]["reference"], "Schedule/b");
    }
}

fhir_test! {
    async fn find_request_rules(s: &TestServer) {
        setup(s, &weekday_mornings(), &["a"]).await;
        let q = |query: &str| format!("Appointment/$find?{query}");
        let all = "start=2026-06-01T00:00:00Z&end=2026-06-02T00:00:00Z&service-type-reference=HealthcareService/hs&schedule=Schedule/a";
        let cases: Vec<(String, &str, Option<Vec<&str>>)> = vec![
            (q("end=2026-06-02T00:00:00Z&service-type-reference=HealthcareService/hs&schedule=Schedule/a"),
             "Expected at least 1 value(s) for required input parameter 'start'", None),
            (q("start=2026-06-01T00:00:00Z&service-type-reference=HealthcareService/hs&schedule=Schedule/a"),
             "Expected at least 1 value(s) for required input parameter 'end'", None),
            (q("start=2026-06-01T00:00:00Z&end=2026-06-02T00:00:00Z&schedule=Schedule/a"),
             "Expected at least 1 value(s) for required input parameter 'service-type-reference'", None),
            (q("start=2026-06-01T00:00:00Z&end=2026-06-02T00:00:00Z&service-type-reference=HealthcareService/hs"),
             "Expected at least 1 value(s) for required input parameter 'schedule'", None),
            (q(&format!("{all}&_count=many")), "Invalid value 'many' provided for integer parameter '_count'", None),
            (q(&format!("{all}&schedule=Practitioner/x")), "Invalid schedule reference", Some(vec!["Parameters.schedule[1]"])),
            (q(&format!("{all}&_count=0")), "Invalid _count, minimum required is 1", None),
            (q(&format!("{all}&_count=1001")), "Invalid _count, maximum allowed is 1000", None),
            (q("start=2026-06-02T00:00:00Z&end=2026-06-02T00:00:00Z&service-type-reference=HealthcareService/hs&schedule=Schedule/a"),
             "Invalid search time range", None),
            (q("start=2026-06-01T00:00:00Z&end=2026-07-02T00:00:01Z&service-type-reference=HealthcareService/hs&schedule=Schedule/a"),
             "Search range cannot exceed 31 days", None),
            (q("start=2026-06-01T00:00:00Z&end=2026-06-02T00:00:00Z&service-type-reference=HealthcareService/nope&schedule=Schedule/a"),
             "HealthcareService not found", None),
            (q(&format!("{all}&schedule=Schedule/missing")), "Loading schedule failed", Some(vec!["Parameters.schedule[1]"])),
        ];
        for (path, text, expressions) in cases {
            let r = s.get(&path).await;
            assert_invalid(&r, text, expressions.as_deref());
        }
        // 31 days exactly is allowed.
        let r = s.get(&q("start=2026-06-01T00:00:00Z&end=2026-07-02T00:00:00Z&service-type-reference=HealthcareService/hs&schedule=Schedule/a")).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}

fhir_test! {
    async fn find_schedule_rules(s: &TestServer) {
        setup(s, &weekday_mornings(), &["a"]).await;
        let check = |r: Reply, text: &str, expr: &[&str]| assert_invalid(&r, text, Some(expr));
        let base = s.get("Schedule/a").await.json();

        // Not offered for the service.
        let mut other = base.clone();
        other["id"] = json!("other");
        other["serviceType"] = json!([{"coding": [{"code": "x"}]}]);
        put(s, &other).await;
        check(find(s, &["other"], MON, TUE, "").await,
            "Schedule is not schedulable for requested service type", &["Parameters.schedule[0]"]);

        // Planning horizon.
        let mut h = base.clone();
        h["planningHorizon"] = json!({"start": "2026-07-01T00:00:00Z", "end": "2026-08-01T00:00:00Z"});
        put(s, &h).await;
        check(find(s, &["a"], MON, TUE, "").await,
            "Search range ends before schedule planning horizon starts", &["Parameters.schedule[0]"]);
        h["planningHorizon"] = json!({"start": "2026-01-01T00:00:00Z", "end": "2026-05-01T00:00:00Z"});
        put(s, &h).await;
        check(find(s, &["a"], MON, TUE, "").await,
            "Search range starts after schedule planning horizon ends", &["Parameters.schedule[0]"]);
        // A horizon that cuts the range clips it.
        h["planningHorizon"] = json!({"start": "2026-01-01T00:00:00Z", "end": "2026-06-01T10:00:00Z"});
        put(s, &h).await;
        assert_eq!(proposals(s, &["a"], MON, TUE).await.len(), 1);
        put(s, &base).await;

        // Actors.
        let mut two = base.clone();
        two["actor"] = json!([{"reference": "Practitioner/dr-a"}, {"reference": "Practitioner/dr-a"}]);
        put(s, &two).await;
        check(find(s, &["a"], MON, TUE, "").await,
            "Scheduling only supported on schedules with exactly one actor", &["Parameters.schedule[0]"]);
        let mut ghost = base.clone();
        ghost["actor"] = json!([{"reference": "Practitioner/ghost"}]);
        put(s, &ghost).await;
        check(find(s, &["a"], MON, TUE, "").await, "Loading schedule.actor failed", &["Parameters.schedule[0]"]);
        put(s, &json!({"resourceType": "Practitioner", "id": "dr-a"})).await;
        put(s, &base).await;
        check(find(s, &["a"], MON, TUE, "").await, "No timezone specified", &["Parameters.schedule[0]"]);
        put(s, &json!({"resourceType": "Practitioner", "id": "dr-a",
            "extension": [{"url": TZ_URL, "valueCode": "Etc/UTC"}]})).await;

        // Too many extensions for the service.
        let mut twice = base.clone();
        twice["extension"] = json!([params_for("hs", vec![]), params_for("hs", vec![])]);
        put(s, &twice).await;
        check(find(s, &["a"], MON, TUE, "").await,
            "Schedule has too many scheduling parameters extensions", &["Parameters.schedule[0]"]);
        // One for another service is ignored.
        twice["extension"] = json!([params_for("elsewhere", vec![minutes("duration", 120)])]);
        put(s, &twice).await;
        assert_eq!(proposals(s, &["a"], MON, TUE).await[0]["end"], "2026-06-01T00:30:00.000Z");
    }
}

/// `$find` on Schedule `a` whose SchedulingParameters for `hs` are `subs`: the reply.
async fn find_with(s: &TestServer, subs: Vec<Value>) -> Reply {
    let mut schedule = s.get("Schedule/a").await.json();
    schedule["extension"] = json!([params_for("hs", subs)]);
    put(s, &schedule).await;
    find(s, &["a"], MON, TUE, "").await
}

fhir_test! {
    async fn find_parameter_rules(s: &TestServer) {
        setup(s, &Setup { service_params: vec![], ..Setup::default() }, &["a"]).await;
        let at = "Parameters.schedule[0].extension[0]";
        let cases: Vec<(Vec<Value>, &str, &str)> = vec![
            (vec![], "Scheduling parameter attribute 'duration' is missing", "Parameters.schedule[0]"),
            (vec![minutes("duration", 30), minutes("duration", 60)],
             "Scheduling parameter attribute 'duration' has too many values", at),
            (vec![json!({"url": "duration", "valueDuration": {"value": 1, "unit": "mo", "code": "mo"}})],
             "Got unhandled duration unit \"mo\"", at),
            (vec![json!({"url": "duration", "valueDuration": {"unit": "min", "code": "min"}})],
             "Got duration without value", at),
            (vec![minutes("duration", -5)], "Got duration with negative value", at),
            (vec![minutes("duration", 30), code("timezone", "Mars/Olympus")], "Invalid timezone 'Mars/Olympus'", at),
            (vec![minutes("duration", 30), code("alignmentTimezone", "Nowhere")], "Invalid timezone 'Nowhere'", at),
            (vec![minutes("duration", 30), minutes("alignmentInterval", 1441)],
             "alignmentInterval cannot exceed 1440 minutes (1 day)", at),
            (vec![minutes("duration", 30), json!({"url": "availability", "extension": [{"url": "availableTime",
                "extension": [{"url": "daysOfWeek", "valueCode": "someday"}]}]})],
             "Invalid SchedulingParameters.availability.availableTime.daysOfWeek entry", at),
            (vec![minutes("duration", 30), json!({"url": "availability", "extension": [{"url": "availableTime",
                "extension": [{"url": "availableStartTime", "valueTime": "09:00:00"}]}]})],
             "availableTime has availableStartTime without availableEndTime", at),
            (vec![minutes("duration", 30), json!({"url": "availability", "extension": [{"url": "availableTime",
                "extension": [{"url": "availableEndTime", "valueTime": "09:00:00"}]}]})],
             "availableTime has availableEndTime without availableStartTime", at),
        ];
        for (subs, text, expr) in cases {
            let r = find_with(s, subs).await;
            assert_invalid(&r, text, Some(&[expr]));
        }
        // An extension without `service` on a Schedule.
        let mut schedule = s.get("Schedule/a").await.json();
        schedule["extension"] = json!([{"url": PARAMS_URL, "extension": [minutes("duration", 30)]}]);
        put(s, &schedule).await;
        assert_invalid(&find(s, &["a"], MON, TUE, "").await,
            "Scheduling parameter attribute 'service' is missing", Some(&[at]));
        // A Schedule's own time zone wins over its actor's.
        let r = find_with(s, vec![minutes("duration", 60), code("timezone", "Pacific/Kiritimati"),
            availability(&["tue"], "09:00:00", "10:00:00")]).await;
        assert_eq!(starts(&entries(&r.json())), ["2026-06-01T19:00:00.000Z"]);
    }
}

fhir_test! {
    async fn find_service_parameter_rules(s: &TestServer) {
        setup(s, &Setup::default(), &["a"]).await;
        let at = "Parameters.service-type-reference.extension[0]";
        let service = |subs: Vec<Value>, extra: usize| {
            let mut exts = vec![json!({"url": PARAMS_URL, "extension": subs})];
            for _ in 0..extra {
                exts.push(json!({"url": PARAMS_URL, "extension": [minutes("duration", 30)]}));
            }
            json!({"resourceType": "HealthcareService", "id": "hs", "extension": exts})
        };
        put(s, &service(vec![minutes("duration", 30)], 1)).await;
        assert_invalid(&find(s, &["a"], MON, TUE, "").await,
            "HealthcareService has too many scheduling parameters extensions",
            Some(&["Parameters.service-type-reference"]));
        put(s, &service(vec![minutes("duration", 30), availability(&["mon"], "09:00:00", "10:00:00")], 0)).await;
        assert_invalid(&find(s, &["a"], MON, TUE, "").await,
            "Scheduling parameter attribute 'availability' is not allowed on HealthcareService", Some(&[at]));
        put(s, &service(vec![minutes("duration", 30),
            json!({"url": "service", "valueReference": {"reference": "HealthcareService/hs"}})], 0)).await;
        assert_invalid(&find(s, &["a"], MON, TUE, "").await,
            "Scheduling parameter attribute 'service' is not allowed on HealthcareService", Some(&[at]));
        // The service's own availableTime applies (entries without both times dropped).
        let mut svc = service(vec![minutes("duration", 60)], 0);
        svc["availableTime"] = json!([
            {"daysOfWeek": ["mon"], "availableStartTime": "13:00:00", "availableEndTime": "15:00:00"},
            {"daysOfWeek": ["mon"], "availableStartTime": "20:00:00"}
        ]);
        put(s, &svc).await;
        assert_eq!(
            starts(&proposals(s, &["a"], MON, TUE).await),
            ["2026-06-01T13:00:00.000Z", "2026-06-01T14:00:00.000Z"]
        );
    }
}

fhir_test! {
    async fn find_schedules_must_share_duration_and_grid(s: &TestServer) {
        setup(s, &Setup::default(), &["a", "b"]).await;
        let mut b = s.get("Schedule/b").await.json();
        b["extension"] = json!([{"url": "http://example.org/other"}, params_for("hs", vec![minutes("duration", 60)])]);
        put(s, &b).await;
        assert_invalid(&find(s, &["a", "b"], MON, TUE, "").await,
            "Scheduling parameters attribute 'duration' does not match",
            Some(&["Parameters.service-type-reference.extension[0]", "Parameters.schedule[1].extension[1]"]));
        b["extension"] = json!([params_for("hs", vec![minutes("duration", 30), minutes("alignmentInterval", 15)])]);
        put(s, &b).await;
        let mut a = s.get("Schedule/a").await.json();
        a["extension"] = json!([params_for("hs", vec![minutes("alignmentInterval", 30)])]);
        put(s, &a).await;
        assert_invalid(&find(s, &["a", "b"], MON, TUE, "").await,
            "Scheduling parameters attribute 'alignmentInterval' does not match",
            Some(&["Parameters.schedule[0].extension[0]", "Parameters.schedule[1].extension[0]"]));
        a["extension"] = json!([params_for("hs", vec![minutes("alignmentInterval", 15), minutes("alignmentOffset", 5)])]);
        put(s, &a).await;
        assert_invalid(&find(s, &["a", "b"], MON, TUE, "").await,
            "Scheduling parameters attribute 'alignmentOffset' does not match",
            Some(&["Parameters.schedule[0].extension[0]"]));
        a["extension"] = json!([params_for("hs", vec![minutes("alignmentInterval", 15), code("alignmentTimezone", "Europe/Paris")])]);
        put(s, &a).await;
        assert_invalid(&find(s, &["a", "b"], MON, TUE, "").await,
            "Scheduling parameters attribute 'alignmentTimezone' does not match",
            Some(&["Parameters.schedule[0].extension[0]"]));
    }
}

fhir_test! {
    async fn find_refuses_more_slots_than_it_reads(s: &TestServer) {
        setup(s, &Setup::default(), &["a"]).await;
        // 1001 one-minute busy Slots in one range, stored in one transaction.
        let entries: Vec<Value> = (0..1001)
            .map(|i| {
                let start = 1_780_272_000_000i64 + i * 60_000; // 2026-06-01T00:00:00Z
                let fmt = |ms: i64| oxifhir_model::Instant::from_millis(ms).to_string();
                json!({"resource": {"resourceType": "Slot", "schedule": {"reference": "Schedule/a"},
                    "status": "busy", "start": fmt(start), "end": fmt(start + 60_000)},
                    "request": {"method": "POST", "url": "Slot"}})
            })
            .collect();
        let r = s.post("", &json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_invalid(&find(s, &["a"], MON, TUE, "").await,
            "Too many slots found in range; try searching with smaller bounds", None);
        // A smaller range reads fewer.
        assert_eq!(find(s, &["a"], MON, "2026-06-01T12:00:00Z", "").await.status, 200);
    }
}

fhir_test! {
    async fn slots_stored_before_slot_end_existed_are_indexed_at_start(s: &TestServer) {
        use oxifhir_store::{Isolation, VersionWrite, WriteMethod};
        // 501 Slots written with the index an older server extracted (no `end` entries).
        let mut tx = s.store.begin(Isolation::Serializable).await.unwrap();
        for i in 0..501 {
            let id = format!("old-{i:03}");
            let body = json!({"resourceType": "Slot", "id": id, "schedule": {"reference": "Schedule/a"},
                "status": "busy", "start": "2026-06-01T10:00:00Z", "end": "2026-06-01T11:00:00Z",
                "meta": {"versionId": "1", "lastUpdated": "2026-01-01T00:00:00.000Z"}});
            let mut index = oxifhir_model::index::extract("Slot", &body);
            index.dates.retain(|d| d.param != "end");
            tx.write(VersionWrite {
                resource_type: "Slot".into(), id, version_id: 1,
                last_updated: oxifhir_model::Instant::from_millis(1_767_225_600_000),
                method: WriteMethod::Create, body: serde_json::to_vec(&body).unwrap(),
                previous_version: None, index,
            }).await.unwrap();
        }
        tx.commit().await.unwrap();
        let search = "Slot?end=gt2026-06-01T10:30:00Z&_summary=count";
        assert_eq!(s.get(search).await.json()["total"], 0);
        let n = oxifhir_server::operations::scheduling::index_slot_ends(&s.server).await.unwrap();
        assert_eq!(n, 501);
        assert_eq!(s.get(search).await.json()["total"], 501);
        // Once marked, it is not done again.
        assert_eq!(oxifhir_server::operations::scheduling::index_slot_ends(&s.server).await.unwrap(), 0);
    }
}
