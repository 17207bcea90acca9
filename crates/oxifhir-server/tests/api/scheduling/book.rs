//! `$book`, `$hold` and `$confirm`: what is stored and answered, every validation rule and
//! text, availability re-checked at booking, several Schedules at once.

use serde_json::json;

use super::*;
use crate::support::*;

const MON: &str = "2026-06-01T00:00:00Z";
const TUE: &str = "2026-06-02T00:00:00Z";

fn buffered() -> Setup {
    Setup {
        service_params: vec![
            minutes("duration", 30),
            minutes("bufferBefore", 10),
            minutes("bufferAfter", 5),
        ],
        schedule_params: vec![availability(&["mon"], "09:00:00", "12:00:00")],
        ..Setup::default()
    }
}

fhir_test! {
    async fn book_stores_slots_and_the_appointment(s: &TestServer) {
        setup(s, &buffered(), &["a"]).await;
        let found = proposals(s, &["a"], MON, TUE).await;
        assert_eq!(starts(&found)[0], "2026-06-01T10:00:00.000Z");
        let r = book(s, "book", &found[0]).await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert!(r.header("location").is_none());
        let bundle = r.json();
        assert_eq!(bundle["type"], "transaction-response");
        let stored = entries(&bundle);
        assert_eq!(stored.len(), 4);
        let appointment = &stored[0];
        assert_eq!(appointment["resourceType"], "Appointment");
        assert_eq!(appointment["status"], "booked");
        assert!(appointment.get("contained").is_none());
        assert_eq!(bundle["entry"][0]["response"]["status"], "201 Created");
        let slot_refs: Vec<String> = appointment["slot"].as_array().unwrap().iter()
            .map(|r| r["reference"].as_str().unwrap().to_string()).collect();
        let slot_ids: Vec<String> = stored[1..].iter()
            .map(|x| format!("Slot/{}", x["id"].as_str().unwrap())).collect();
        assert_eq!(slot_refs, slot_ids);
        let statuses: Vec<&str> = stored[1..].iter().map(|x| x["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["busy", "busy-unavailable", "busy-unavailable"]);
        // Readable, and the booked time (with its buffers) is gone from $find.
        let id = appointment["id"].as_str().unwrap();
        assert_eq!(s.get(&format!("Appointment/{id}")).await.json()["status"], "booked");
        assert_eq!(live_slots(s, "a").await.len(), 3);
        assert_eq!(starts(&proposals(s, &["a"], MON, TUE).await), ["2026-06-01T11:00:00.000Z"]);
        // The same proposal again: taken, with the blocking Slots named.
        let again = book(s, "book", &found[0]).await;
        assert_invalid(&again, "Requested time slot is not available", None);
        let diagnostics: Value = serde_json::from_str(
            again.json()["issue"][0]["diagnostics"].as_str().unwrap()).unwrap();
        assert_eq!(diagnostics["schedule"], "Schedule/a");
        let blocking = diagnostics["blockingSlots"].as_array().unwrap();
        assert_eq!(blocking.len(), 3);
        assert!(blocking.iter().any(|b| b["reference"] == slot_ids[0].as_str() && b["status"] == "busy"));
        // A bare Appointment body works too.
        let r = s.post("Appointment/$book", &proposals(s, &["a"], MON, TUE).await[0]).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
}

fhir_test! {
    async fn hold_then_confirm(s: &TestServer) {
        setup(s, &buffered(), &["a"]).await;
        let found = proposals(s, &["a"], MON, TUE).await;
        let r = book(s, "hold", &found[0]).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let stored = entries(&r.json());
        assert_eq!(stored[0]["status"], "pending");
        let statuses: Vec<&str> = stored[1..].iter().map(|x| x["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["busy-tentative", "busy-unavailable", "busy-unavailable"]);
        // A hold blocks the time.
        assert_invalid(&book(s, "book", &found[0]).await, "Requested time slot is not available", None);
        let id = stored[0]["id"].as_str().unwrap();
        let r = s.post(&format!("Appointment/{id}/$confirm"), &json!({"resourceType": "Parameters"})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let confirmed = entries(&r.json());
        assert_eq!(r.json()["type"], "transaction-response");
        assert_eq!(confirmed[0]["status"], "booked");
        assert_eq!(confirmed[0]["meta"]["versionId"], "2");
        let statuses: Vec<&str> = confirmed[1..].iter().map(|x| x["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["busy", "busy-unavailable", "busy-unavailable"]);
        // Confirming twice, or something else.
        let again = s.send("POST", &format!("Appointment/{id}/$confirm"), &[], None).await;
        assert_invalid(&again, "Appointment cannot be confirmed in 'booked' status", None);
        let missing = s.send("POST", "Appointment/nope/$confirm", &[], None).await;
        assert_eq!(missing.status, 404);
        assert_eq!(outcome_text(&missing), "Not found");
        // A proposed Appointment stored as such can be confirmed; a missing Slot stops it.
        put(s, &json!({"resourceType": "Appointment", "id": "p", "status": "proposed",
            "participant": [{"status": "needs-action"}], "slot": [{"reference": "Slot/gone"}]})).await;
        let r = s.send("POST", "Appointment/p/$confirm", &[], None).await;
        assert_invalid(&r, "Loading slots failed", Some(&["Appointment.slot[0]"]));
    }
}

fhir_test! {
    async fn book_rejects_unavailable_times(s: &TestServer) {
        setup(s, &buffered(), &["a"]).await;
        let mut p = proposals(s, &["a"], MON, TUE).await[0].clone();
        // Outside the availability (Tuesday), on the grid.
        let shift = |p: &mut Value, day: &str| {
            for (k, v) in [("start", "09:00"), ("end", "09:30")] {
                p[k] = json!(format!("2026-06-{day}T{v}:00.000Z"));
            }
            let c = p["contained"].as_array_mut().unwrap();
            c[0]["start"] = json!(format!("2026-06-{day}T10:00:00.000Z"));
            c[0]["end"] = json!(format!("2026-06-{day}T10:30:00.000Z"));
            c[1]["start"] = json!(format!("2026-06-{day}T09:50:00.000Z"));
            c[1]["end"] = json!(format!("2026-06-{day}T10:00:00.000Z"));
            c[2]["start"] = json!(format!("2026-06-{day}T10:30:00.000Z"));
            c[2]["end"] = json!(format!("2026-06-{day}T10:35:00.000Z"));
        };
        shift(&mut p, "02");
        let r = book(s, "book", &p).await;
        assert_invalid(&r, "Requested time slot is not available", None);
        // Outside the planning horizon.
        let mut schedule = s.get("Schedule/a").await.json();
        schedule["planningHorizon"] = json!({"start": "2026-06-01T00:00:00Z", "end": "2026-06-01T10:40:00Z"});
        put(s, &schedule).await;
        shift(&mut p, "01");
        assert_eq!(book(s, "book", &p).await.status, 201);
        let mut late = p.clone();
        let c = late["contained"].as_array_mut().unwrap();
        for (i, (a, b)) in [("11:00", "11:30"), ("10:50", "11:00"), ("11:30", "11:35")].iter().enumerate() {
            c[i]["start"] = json!(format!("2026-06-01T{a}:00.000Z"));
            c[i]["end"] = json!(format!("2026-06-01T{b}:00.000Z"));
        }
        assert_invalid(&book(s, "book", &late).await,
            "Appointment falls outside schedule planning horizon", Some(&["Parameters.appointment.contained[0].schedule"]));
    }
}

fhir_test! {
    async fn book_input_rules(s: &TestServer) {
        setup(s, &buffered(), &["a"]).await;
        let good = proposals(s, &["a"], MON, TUE).await[0].clone();
        let c = |p: &Value, i: usize| p["contained"][i].clone();
        let with = |f: &dyn Fn(&mut Value)| {
            let mut p = good.clone();
            f(&mut p);
            p
        };
        let set_slot = |p: &mut Value, i: usize, start: &str, end: &str| {
            p["contained"][i]["start"] = json!(start);
            p["contained"][i]["end"] = json!(end);
        };
        let hs = json!([{"extension": [{"url": SERVICE_REF_URL, "valueReference": {"reference": "HealthcareService/hs"}}]}]);
        let cases: Vec<(Value, &str, Option<Vec<&str>>)> = vec![
            (with(&|p| { p.as_object_mut().unwrap().remove("serviceType"); }),
             "Appointment has no service reference", Some(vec!["Parameters.appointment.serviceType"])),
            (with(&|p| { p["serviceType"] = json!([hs[0].clone(), {"extension": [{"url": SERVICE_REF_URL,
                "valueReference": {"reference": "HealthcareService/other"}}]}]); }),
             "Appointment has too many service references", Some(vec!["Parameters.appointment.serviceType"])),
            (with(&|p| { p.as_object_mut().unwrap().remove("contained"); }),
             "Appointment has no contained Slot resources", Some(vec!["Parameters.appointment"])),
            (with(&|p| { let x = c(p, 0); p["contained"].as_array_mut().unwrap().push(json!({
                "resourceType": "Slot", "status": "busy", "schedule": x["schedule"].clone(),
                "start": "2026-06-01T10:15:00.000Z", "end": x["end"].clone()})); }),
             "Mismatched slot start times", Some(vec!["Parameters.appointment.contained[0].start", "Parameters.appointment.contained[3].start"])),
            (with(&|p| { let x = c(p, 0); p["contained"].as_array_mut().unwrap().push(json!({
                "resourceType": "Slot", "status": "busy", "schedule": x["schedule"].clone(),
                "start": x["start"].clone(), "end": "2026-06-01T11:00:00.000Z"})); }),
             "Mismatched slot end times", Some(vec!["Parameters.appointment.contained[0].end", "Parameters.appointment.contained[3].end"])),
            (with(&|p| { p["contained"][1].as_object_mut().unwrap().remove("schedule"); }),
             "Slot missing schedule reference", Some(vec!["Parameters.appointment.contained[1].schedule"])),
            (with(&|p| { p["contained"][0]["schedule"] = json!({"reference": "Schedule/missing"}); }),
             "Schedule load failed", Some(vec!["Parameters.appointment.contained[0].schedule"])),
            (with(&|p| { p["contained"][0]["status"] = json!("busy-unavailable"); }),
             "Expected exactly one 'busy' slot per schedule",
             Some(vec!["Parameters.appointment.contained[0]", "Parameters.appointment.contained[1]", "Parameters.appointment.contained[2]"])),
            (with(&|p| set_slot(p, 0, "2026-06-01T10:00:00.000Z", "2026-06-01T10:45:00.000Z")),
             "Slot duration does not match scheduling parameters duration", Some(vec!["Parameters.appointment.contained[0]"])),
            (with(&|p| set_slot(p, 0, "2026-06-01T10:15:00.000Z", "2026-06-01T10:45:00.000Z")),
             "Slot start time is not aligned to the scheduling grid", Some(vec!["Parameters.appointment.contained[0]"])),
            (with(&|p| { p["contained"].as_array_mut().unwrap().remove(1); }),
             "Expected exactly one 'busy-unavailable' slot ending at the start of the busy slot (bufferBefore)", None),
            (with(&|p| set_slot(p, 1, "2026-06-01T09:45:00.000Z", "2026-06-01T10:00:00.000Z")),
             "Buffer-before slot duration (15 min) does not match scheduling parameters bufferBefore (10 min)",
             Some(vec!["Parameters.appointment.contained[1]"])),
            (with(&|p| { p["contained"].as_array_mut().unwrap().remove(2); }),
             "Expected exactly one 'busy-unavailable' slot starting at the end of the busy slot (bufferAfter)", None),
            (with(&|p| set_slot(p, 2, "2026-06-01T10:30:00.000Z", "2026-06-01T10:31:00.000Z")),
             "Buffer-after slot duration (1 min) does not match scheduling parameters bufferAfter (5 min)",
             Some(vec!["Parameters.appointment.contained[2]"])),
            (with(&|p| { p["slot"] = json!([{"reference": "Slot/x"}]); }),
             "Proposed appointment must not have Slot references", Some(vec!["Parameters.appointment.slot"])),
        ];
        for (appointment, text, expressions) in cases {
            let r = book(s, "book", &appointment).await;
            assert_invalid(&r, text, expressions.as_deref());
            let r = book(s, "hold", &appointment).await;
            assert_invalid(&r, text, expressions.as_deref());
        }
        // The same service named on two codings is one service.
        let twice = with(&|p| { let t = p["serviceType"][0].clone(); p["serviceType"] = json!([t.clone(), t]); });
        // A missing HealthcareService is a 404.
        let r = book(s, "book", &with(&|p| { p["serviceType"] = json!([{"extension": [{"url": SERVICE_REF_URL,
            "valueReference": {"reference": "HealthcareService/nope"}}]}]); })).await;
        assert_eq!(r.status, 404, "{}", r.text());
        // Nothing was stored by any of the refusals.
        assert!(live_slots(s, "a").await.is_empty());
        assert_eq!(book(s, "book", &twice).await.status, 201);
        // Not an Appointment at all.
        let r = s.post("Appointment/$book", &json!({"resourceType": "Parameters"})).await;
        assert_invalid(&r, "Expected at least 1 value(s) for required input parameter 'appointment'", None);
    }
}

fhir_test! {
    async fn book_on_several_schedules_at_once(s: &TestServer) {
        setup(s, &Setup {
            service_params: vec![minutes("duration", 60)],
            schedule_params: vec![availability(&["mon"], "09:00:00", "12:00:00")],
            ..Setup::default()
        }, &["a", "b"]).await;
        let found = proposals(s, &["a", "b"], MON, TUE).await;
        assert_eq!(found.len(), 3);
        let r = book(s, "book", &found[0]).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let stored = entries(&r.json());
        assert_eq!(stored.len(), 3);
        assert_eq!(stored[0]["participant"].as_array().unwrap().len(), 2);
        assert_eq!(live_slots(s, "a").await, [("busy".to_string(), "2026-06-01T09:00:00.000Z".to_string())]);
        assert_eq!(live_slots(s, "b").await, [("busy".to_string(), "2026-06-01T09:00:00.000Z".to_string())]);
        // When one Schedule is taken meanwhile, nothing is booked on the other either.
        slot(s, "b", "busy", "2026-06-01T10:00:00Z", "2026-06-01T11:00:00Z").await;
        let r = book(s, "book", &found[1]).await;
        assert_invalid(&r, "Requested time slot is not available", None);
        let d: Value = serde_json::from_str(r.json()["issue"][0]["diagnostics"].as_str().unwrap()).unwrap();
        assert_eq!(d["schedule"], "Schedule/b");
        assert_eq!(live_slots(s, "a").await.len(), 1);
        assert_eq!(book(s, "hold", &found[2]).await.status, 201);
        assert_eq!(proposals(s, &["a", "b"], MON, TUE).await.len(), 0);
        assert_eq!(proposals(s, &["a"], MON, TUE).await.len(), 1);
    }
}
