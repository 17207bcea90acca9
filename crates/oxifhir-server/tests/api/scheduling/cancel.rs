//! `$cancel` (seed 002): cancels a booked or pending Appointment and deletes its Slots in
//! one transaction; its three error texts; asynchronously with `Prefer: respond-async`.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::support::*;

const MON: &str = "2026-06-01T00:00:00Z";
const TUE: &str = "2026-06-02T00:00:00Z";

fn buffered() -> Setup {
    Setup {
        service_params: vec![minutes("duration", 30), minutes("bufferAfter", 15)],
        schedule_params: vec![availability(&["mon"], "09:00:00", "12:00:00")],
        ..Setup::default()
    }
}

/// Books the first proposal with `op`; the Appointment id and its Slot ids.
async fn booked(s: &TestServer, op: &str) -> (String, Vec<String>) {
    let found = proposals(s, &["a"], MON, TUE).await;
    let r = book(s, op, &found[0]).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let stored = entries(&r.json());
    (
        stored[0]["id"].as_str().unwrap().to_string(),
        stored[1..]
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_string())
            .collect(),
    )
}

async fn cancel(s: &TestServer, id: &str) -> Reply {
    s.send("POST", &format!("Appointment/{id}/$cancel"), &[], None)
        .await
}

fhir_test! {
    async fn cancel_frees_the_time(s: &TestServer) {
        setup(s, &buffered(), &["a"]).await;
        let before = proposals(s, &["a"], MON, TUE).await.len();
        let (id, slots) = booked(s, "book").await;
        assert_eq!(slots.len(), 2);
        assert_eq!(proposals(s, &["a"], MON, TUE).await.len(), before - 1);
        let r = cancel(s, &id).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let appointment = r.json();
        assert_eq!(appointment["resourceType"], "Appointment");
        assert_eq!(appointment["status"], "cancelled");
        assert_eq!(appointment["id"], id.as_str());
        assert_eq!(appointment["meta"]["versionId"], "2");
        assert_eq!(appointment["slot"].as_array().unwrap().len(), 2, "references are kept");
        assert!(r.header("etag").is_some());
        // Every Slot, buffer included, is deleted (history kept).
        for slot in &slots {
            assert_eq!(s.get(&format!("Slot/{slot}")).await.status, 410);
            assert_eq!(s.get(&format!("Slot/{slot}/_history/1")).await.status, 200);
        }
        assert!(live_slots(s, "a").await.is_empty());
        assert_eq!(proposals(s, &["a"], MON, TUE).await.len(), before);
        assert_eq!(s.get(&format!("Appointment/{id}")).await.json()["status"], "cancelled");
    }
}

fhir_test! {
    async fn cancel_a_hold(s: &TestServer) {
        setup(s, &buffered(), &["a"]).await;
        let (id, _) = booked(s, "hold").await;
        let r = cancel(s, &id).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["status"], "cancelled");
        assert!(live_slots(s, "a").await.is_empty());
    }
}

fhir_test! {
    async fn cancel_error_texts(s: &TestServer) {
        setup(s, &buffered(), &["a"]).await;
        // Not found: unknown, and deleted.
        let r = cancel(s, "nope").await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["issue"][0], json!({"severity": "error", "code": "not-found", "details": {"text": "Not found"}}));
        put(s, &json!({"resourceType": "Appointment", "id": "gone", "status": "booked",
            "participant": [{"status": "accepted"}]})).await;
        assert!(s.delete("Appointment/gone").await.status < 300);
        assert_eq!(cancel(s, "gone").await.status, 404);
        // Statuses other than booked and pending; the text names the status.
        for status in ["arrived", "cancelled", "proposed", "fulfilled", "noshow"] {
            put(s, &json!({"resourceType": "Appointment", "id": "x", "status": status,
                "participant": [{"status": "accepted"}]})).await;
            let r = cancel(s, "x").await;
            assert_eq!(r.status, 400, "{status}");
            assert_eq!(r.json()["issue"][0], json!({"severity": "error", "code": "invalid",
                "details": {"text": format!("Appointment cannot be canceled in '{status}' status")}}));
        }
        // A Slot that cannot be loaded, checked before the status.
        let (id, slots) = booked(s, "book").await;
        assert!(s.delete(&format!("Slot/{}", slots[1])).await.status < 300);
        let r = cancel(s, &id).await;
        assert_invalid(&r, "Loading slots failed", Some(&["Appointment.slot[1]"]));
        put(s, &json!({"resourceType": "Appointment", "id": "y", "status": "arrived",
            "participant": [{"status": "accepted"}], "slot": [{"reference": "Slot/none"}]})).await;
        assert_invalid(&cancel(s, "y").await, "Loading slots failed", Some(&["Appointment.slot[0]"]));
        // Nothing changed by the refusals.
        assert_eq!(s.get(&format!("Appointment/{id}")).await.json()["status"], "booked");
        assert_eq!(s.get(&format!("Slot/{}", slots[0])).await.status, 200);
        // Cancelling twice: the Slots are loaded before the status is checked (seed 002's
        // order), and they are gone.
        let (id, _) = booked(s, "book").await;
        assert_eq!(cancel(s, &id).await.status, 200);
        assert_invalid(&cancel(s, &id).await, "Loading slots failed", Some(&["Appointment.slot[0]"]));
    }
}

fhir_test! {
    async fn cancel_asynchronously(s: &TestServer) {
        setup(s, &buffered(), &["a"]).await;
        let (id, slots) = booked(s, "book").await;
        let path = format!("Appointment/{id}/$cancel");
        let r = s.send("POST", &path, &[("prefer", "respond-async")], None).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let status_url = r.header("content-location").expect("Content-Location");
        let mut done = None;
        for _ in 0..100 {
            let poll = s.get(&status_url).await;
            // 202 while it runs; 429 when this poll came sooner than `Retry-After` advised.
            if !matches!(poll.status, 202 | 429) {
                done = Some(poll);
                break;
            }
            let wait = poll.header("retry-after").and_then(|w| w.parse().ok()).unwrap_or(0);
            tokio::time::sleep(Duration::from_millis(100).max(Duration::from_secs(wait))).await;
        }
        let done = done.expect("the job finished");
        assert_eq!(done.status, 303, "{}", done.text());
        let result = s.get(&done.header("location").unwrap()).await;
        assert_eq!(result.status, 200, "{}", result.text());
        assert_eq!(result.json()["status"], "cancelled");
        assert_eq!(s.get(&format!("Slot/{}", slots[0])).await.status, 410);
        // An asynchronous refusal carries the same text.
        let r = s.send("POST", &path, &[("prefer", "respond-async")], None).await;
        let status_url = r.header("content-location").expect("Content-Location");
        let mut location = None;
        for _ in 0..100 {
            let poll = s.get(&status_url).await;
            if poll.status == 303 {
                location = poll.header("location");
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let result = s.get(&location.expect("finished")).await;
        assert_invalid(&result, "Loading slots failed", Some(&["Appointment.slot[0]"]));
    }
}
