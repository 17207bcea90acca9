//! Concurrency: of 50 simultaneous `$book`/`$hold` calls for overlapping times on one
//! Schedule exactly one wins and the others get `400 Requested time slot is not available`
//! (never a second booking, never a 5xx); a `$cancel` racing a `$confirm` ends in one clean
//! state. Each round is repeated on a fresh time.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::support::*;

const CLIENTS: usize = 50;
const ROUNDS: usize = 3;

/// A proposal on Schedule `a` at `start` (UTC, 60 minutes, no buffers).
fn proposal(start: &str, end: &str) -> Value {
    json!({"resourceType": "Appointment", "status": "proposed",
        "serviceType": [{"extension": [{"url": SERVICE_REF_URL, "valueReference": {"reference": "HealthcareService/hs"}}]}],
        "participant": [{"actor": {"reference": "Practitioner/dr-a"}, "required": "required", "status": "needs-action"}],
        "contained": [{"resourceType": "Slot", "schedule": {"reference": "Schedule/a"}, "status": "busy",
            "start": start, "end": end}]})
}

fn grid_of_half_hours() -> Setup {
    Setup {
        service_params: vec![minutes("duration", 60), minutes("alignmentInterval", 30)],
        ..Setup::default()
    }
}

/// Sends all requests at once; returns the statuses and texts.
async fn all_at_once(s: &TestServer, requests: Vec<(String, Value)>) -> Vec<(u16, String)> {
    let client = s.client.clone();
    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let mut tasks = Vec::new();
    for (op, appointment) in requests {
        let (client, barrier, url) = (
            client.clone(),
            barrier.clone(),
            s.url(&format!("Appointment/${op}")),
        );
        tasks.push(tokio::spawn(async move {
            let body = json!({"resourceType": "Parameters", "parameter": [{"name": "appointment", "resource": appointment}]});
            barrier.wait().await;
            let r = client.post(url).header("content-type", "application/fhir+json")
                .body(serde_json::to_vec(&body).unwrap()).send().await.expect("request");
            let status = r.status().as_u16();
            let body: Value = r.json().await.expect("JSON");
            let text = body["issue"][0]["details"]["text"].as_str().unwrap_or("").to_string();
            (status, text)
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.expect("task"));
    }
    out
}

fn assert_one_winner(results: &[(u16, String)], round: usize) {
    let won = results.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(won, 1, "round {round}: {results:?}");
    for (status, text) in results.iter().filter(|(status, _)| *status != 201) {
        assert!(
            (*status == 400 && text == "Requested time slot is not available") || *status == 409,
            "round {round}: {status} {text}"
        );
    }
    assert!(
        results.iter().all(|(status, _)| *status < 500),
        "round {round}: {results:?}"
    );
}

fhir_test! {
    async fn fifty_bookings_of_one_time_one_wins(s: &TestServer) {
        setup(s, &grid_of_half_hours(), &["a"]).await;
        for round in 0..ROUNDS {
            let start = format!("2026-06-0{}T09:00:00.000Z", round + 1);
            let end = format!("2026-06-0{}T10:00:00.000Z", round + 1);
            let requests = (0..CLIENTS)
                .map(|i| (if i % 2 == 0 { "book" } else { "hold" }.to_string(), proposal(&start, &end)))
                .collect();
            let results = all_at_once(s, requests).await;
            assert_one_winner(&results, round);
        }
        let slots = live_slots(s, "a").await;
        assert_eq!(slots.len(), ROUNDS, "{slots:?}");
        let r = s.get("Appointment?_count=1000").await;
        assert_eq!(entries(&r.json()).len(), ROUNDS);
    }
}

fhir_test! {
    async fn fifty_bookings_of_overlapping_times_one_wins(s: &TestServer) {
        setup(s, &grid_of_half_hours(), &["a"]).await;
        for round in 0..ROUNDS {
            let day = round + 1;
            // 09:00–10:00 and 09:30–10:30 overlap each other.
            let requests = (0..CLIENTS)
                .map(|i| {
                    let (a, b) = if i % 2 == 0 { ("09:00", "10:00") } else { ("09:30", "10:30") };
                    ("book".to_string(), proposal(
                        &format!("2026-06-0{day}T{a}:00.000Z"),
                        &format!("2026-06-0{day}T{b}:00.000Z"),
                    ))
                })
                .collect();
            let results = all_at_once(s, requests).await;
            assert_one_winner(&results, round);
        }
        assert_eq!(live_slots(s, "a").await.len(), ROUNDS);
    }
}

fhir_test! {
    async fn fifty_bookings_across_midnight_one_wins(s: &TestServer) {
        // 23:30–00:30 touches two days, 00:00–01:00 the second: they overlap, so they must
        // share a lock however the locks are cut.
        setup(s, &grid_of_half_hours(), &["a"]).await;
        for round in 0..ROUNDS {
            let (d1, d2) = (round + 1, round + 2);
            let requests = (0..CLIENTS)
                .map(|i| {
                    let (a, b) = if i % 2 == 0 {
                        (format!("2026-06-0{d1}T23:30:00.000Z"), format!("2026-06-0{d2}T00:30:00.000Z"))
                    } else {
                        (format!("2026-06-0{d2}T00:00:00.000Z"), format!("2026-06-0{d2}T01:00:00.000Z"))
                    };
                    ("hold".to_string(), proposal(&a, &b))
                })
                .collect();
            let results = all_at_once(s, requests).await;
            assert_one_winner(&results, round);
        }
    }
}

fhir_test! {
    async fn bookings_on_different_schedules_do_not_block_each_other(s: &TestServer) {
        let names: Vec<String> = (0..10).map(|i| format!("s{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        setup(s, &grid_of_half_hours(), &refs).await;
        let requests = (0..CLIENTS)
            .map(|i| {
                let mut p = proposal("2026-06-01T09:00:00.000Z", "2026-06-01T10:00:00.000Z");
                p["contained"][0]["schedule"]["reference"] = json!(format!("Schedule/s{}", i % 10));
                ("book".to_string(), p)
            })
            .collect();
        let results = all_at_once(s, requests).await;
        assert_eq!(results.iter().filter(|(st, _)| *st == 201).count(), 10, "{results:?}");
        assert!(results.iter().all(|(st, t)| *st == 201 || (*st == 400 && t == "Requested time slot is not available")), "{results:?}");
    }
}

fhir_test! {
    async fn cancel_racing_confirm_ends_cleanly(s: &TestServer) {
        setup(s, &grid_of_half_hours(), &["a"]).await;
        let mut ids = Vec::new();
        for hour in 0..10 {
            let r = book(s, "hold", &proposal(
                &format!("2026-06-01T{:02}:00:00.000Z", hour * 2),
                &format!("2026-06-01T{:02}:00:00.000Z", hour * 2 + 1),
            )).await;
            assert_eq!(r.status, 201, "{}", r.text());
            ids.push(entries(&r.json())[0]["id"].as_str().unwrap().to_string());
        }
        let barrier = Arc::new(tokio::sync::Barrier::new(ids.len() * 4));
        let mut tasks = Vec::new();
        for id in &ids {
            for op in ["confirm", "cancel", "confirm", "cancel"] {
                let (client, barrier) = (s.client.clone(), barrier.clone());
                let url = s.url(&format!("Appointment/{id}/${op}"));
                tasks.push(tokio::spawn(async move {
                    barrier.wait().await;
                    let r = client.post(url).send().await.expect("request");
                    let status = r.status().as_u16();
                    let body: Value = r.json().await.expect("JSON");
                    (op, status, body["issue"][0]["details"]["text"].as_str().unwrap_or("").to_string())
                }));
            }
        }
        for t in tasks {
            let (op, status, text) = t.await.expect("task");
            assert!(status < 500 && status != 409, "{op}: {status} {text}");
            if status == 400 {
                assert!(
                    text == "Loading slots failed"
                        || text == "Appointment cannot be confirmed in 'booked' status"
                        || text == "Appointment cannot be confirmed in 'cancelled' status",
                    "{op}: {text}"
                );
            }
        }
        // Every Appointment is in one clean state: cancelled without Slots, or booked with a busy one.
        let slots = live_slots(s, "a").await;
        for id in &ids {
            let appointment = s.get(&format!("Appointment/{id}")).await.json();
            let slot = appointment["slot"][0]["reference"].as_str().unwrap().to_string();
            let read = s.get(&slot).await;
            match appointment["status"].as_str().unwrap() {
                "cancelled" => assert_eq!(read.status, 410, "{id}"),
                "booked" => assert_eq!(read.json()["status"], "busy", "{id}"),
                other => panic!("{id} ended {other}"),
            }
        }
        assert!(slots.iter().all(|(status, _)| status == "busy"), "{slots:?}");
    }
}
