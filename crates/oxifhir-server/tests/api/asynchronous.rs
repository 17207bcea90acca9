//! The asynchronous interaction pattern (DESIGN.md §3): kick-off, polling, results equal to
//! the synchronous responses, cancellation, `AsyncJob` and `$cancel` (seed 000), the
//! `$export-poll-status` alias (seed 001), and both kinds of `429`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Reply, TestServer};

/// Sends a request with `Prefer: respond-async` and returns the status URL (asserting the
/// `202` kick-off response).
pub async fn kickoff(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> String {
    let mut all = vec![("prefer", "respond-async")];
    all.extend_from_slice(headers);
    let r = s.send(method, path, &all, body).await;
    assert_eq!(r.status, 202, "kick-off of {method} {path}: {}", r.text());
    let location = r.header("content-location").expect("Content-Location");
    assert!(
        location.starts_with(&s.base) && location.contains("/_async/"),
        "{location}"
    );
    let outcome = r.json();
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["diagnostics"], location.as_str());
    location
}

/// Polls a status URL as a well-behaved client (honouring `Retry-After`) until it redirects;
/// returns the final poll reply.
async fn poll_until_done(s: &TestServer, status_url: &str) -> Reply {
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..60 {
        let r = s.get(status_url).await;
        match r.status {
            202 => {
                let wait: u64 = r
                    .header("retry-after")
                    .expect("Retry-After on 202")
                    .parse()
                    .expect("integer Retry-After");
                assert!(r.header("x-progress").is_some(), "X-Progress on 202");
                assert_eq!(r.json()["resourceType"], "AsyncJob");
                tokio::time::sleep(Duration::from_secs(wait)).await;
            }
            _ => return r,
        }
    }
    panic!("{status_url} did not finish");
}

/// Runs `method path` asynchronously and returns the result reply.
async fn run_async(
    s: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> Reply {
    let status_url = kickoff(s, method, path, headers, body).await;
    let done = poll_until_done(s, &status_url).await;
    assert_eq!(done.status, 303, "final poll: {}", done.text());
    assert!(done.body.is_empty());
    let location = done.header("location").expect("Location");
    assert_eq!(location, format!("{status_url}/result"));
    let result = s.get(&location).await;
    assert!(result.header("expires").is_some(), "Expires on the result");
    // Repeatable, byte for byte.
    let again = s.get(&location).await;
    assert_eq!((again.status, &again.body), (result.status, &result.body));
    result
}

/// The headers a stored result must reproduce.
const COMPARED_HEADERS: [&str; 4] = ["content-type", "location", "etag", "last-modified"];

fn assert_same_response(sync: &Reply, result: &Reply, what: &str) {
    assert_eq!(sync.status, result.status, "{what}: status");
    for header in COMPARED_HEADERS {
        assert_eq!(
            sync.header(header),
            result.header(header),
            "{what}: {header}"
        );
    }
    assert_eq!(sync.text(), result.text(), "{what}: body");
}

/// A Bundle without what differs between two searches of the same data (its id and time).
fn bundle_without_identity(reply: &Reply) -> Value {
    let mut v = reply.json();
    if let Some(map) = v.as_object_mut() {
        map.remove("id");
        map.remove("meta");
    }
    v
}

fn patient(family: &str) -> Value {
    json!({"resourceType": "Patient", "name": [{"family": family}]})
}

fhir_test! {
    async fn reads_equal_the_synchronous_responses(s: &TestServer) {
        let p = s.create(&patient("Async")).await;
        let id = p["id"].as_str().unwrap().to_string();
        for path in [
            format!("Patient/{id}"),
            format!("Patient/{id}/_history/1"),
            "Patient/unknown-id".to_string(),
            "metadata".to_string(),
        ] {
            let sync = s.get(&path).await;
            let result = run_async(s, "GET", &path, &[], None).await;
            if path == "metadata" {
                assert_eq!(sync.status, result.status);
                assert_eq!(sync.json()["fhirVersion"], result.json()["fhirVersion"]);
            } else {
                assert_same_response(&sync, &result, &path);
            }
        }
    }
}

fhir_test! {
    async fn searches_and_histories_equal_the_synchronous_responses(s: &TestServer) {
        for family in ["Alpha", "Beta", "Gamma"] {
            s.create(&patient(family)).await;
        }
        for path in ["Patient?_count=2", "?_type=Patient", "Patient/_history", "_history"] {
            let sync = s.get(path).await;
            let result = run_async(s, "GET", path, &[], None).await;
            assert_eq!(sync.status, result.status, "{path}");
            assert_eq!(sync.header("content-type"), result.header("content-type"));
            assert_eq!(bundle_without_identity(&sync), bundle_without_identity(&result), "{path}");
        }
    }
}

fhir_test! {
    async fn writes_run_asynchronously(s: &TestServer) {
        let body = serde_json::to_vec(&patient("Writer")).unwrap();
        let json_type = [("content-type", "application/fhir+json")];
        // create
        let created = run_async(s, "POST", "Patient", &json_type, Some(body)).await;
        assert_eq!(created.status, 201, "{}", created.text());
        let location = created.header("location").unwrap();
        let id = created.json()["id"].as_str().unwrap().to_string();
        let read = s.send("GET", &location, &[], None).await;
        assert_eq!(read.status, 200);
        assert_eq!(read.body, created.body, "the created resource as stored");
        assert_eq!(read.header("etag"), created.header("etag"));
        // update
        let mut changed = created.json();
        changed["name"][0]["family"] = json!("Rewritten");
        let updated = run_async(s, "PUT", &format!("Patient/{id}"), &json_type,
            Some(serde_json::to_vec(&changed).unwrap())).await;
        assert_eq!(updated.status, 200, "{}", updated.text());
        assert_eq!(updated.header("etag").as_deref(), Some("W/\"2\""));
        assert_eq!(s.get(&format!("Patient/{id}")).await.body, updated.body);
        // patch
        let patch = json!([{"op": "replace", "path": "/name/0/family", "value": "Patched"}]);
        let patched = run_async(s, "PATCH", &format!("Patient/{id}"),
            &[("content-type", "application/json-patch+json")],
            Some(serde_json::to_vec(&patch).unwrap())).await;
        assert_eq!(patched.status, 200, "{}", patched.text());
        assert_eq!(patched.json()["name"][0]["family"], "Patched");
        // delete
        let deleted = run_async(s, "DELETE", &format!("Patient/{id}"), &[], None).await;
        assert!(matches!(deleted.status, 200 | 204), "{}", deleted.status);
        assert_eq!(s.get(&format!("Patient/{id}")).await.status, 410);
        // A failing interaction: its result is the error the synchronous request gets.
        let sync = s.get("Patient/never-was").await;
        let failed = run_async(s, "PUT", &format!("Patient/{id}"),
            &[("content-type", "application/fhir+json"), ("if-match", "W/\"1\"")],
            Some(serde_json::to_vec(&changed).unwrap())).await;
        assert_eq!(failed.status, 412, "{}", failed.text());
        assert_eq!(sync.status, 404);
    }
}

fhir_test! {
    async fn batches_and_transactions_run_asynchronously(s: &TestServer) {
        let transaction = json!({
            "resourceType": "Bundle", "type": "transaction",
            "entry": [
                {"fullUrl": "urn:uuid:7f3c1a4e-0000-4000-8000-000000000001",
                 "resource": patient("InTransaction"),
                 "request": {"method": "POST", "url": "Patient"}},
                {"resource": {"resourceType": "Observation", "status": "final",
                    "code": {"text": "x"},
                    "subject": {"reference": "urn:uuid:7f3c1a4e-0000-4000-8000-000000000001"}},
                 "request": {"method": "POST", "url": "Observation"}}
            ]
        });
        let result = run_async(s, "POST", "", &[("content-type", "application/fhir+json")],
            Some(serde_json::to_vec(&transaction).unwrap())).await;
        assert_eq!(result.status, 200, "{}", result.text());
        let bundle = result.json();
        assert_eq!(bundle["type"], "transaction-response");
        assert_eq!(bundle["entry"][1]["response"]["status"].as_str().unwrap()[..3], *"201");
        let batch = json!({
            "resourceType": "Bundle", "type": "batch",
            "entry": [{"request": {"method": "GET", "url": "Patient?_count=5"}}]
        });
        let result = run_async(s, "POST", "", &[("content-type", "application/fhir+json")],
            Some(serde_json::to_vec(&batch).unwrap())).await;
        assert_eq!(result.json()["type"], "batch-response");
    }
}

fhir_test! {
    async fn bad_requests_are_rejected_at_kickoff(s: &TestServer) {
        let prefer = ("prefer", "respond-async");
        let json_type = ("content-type", "application/fhir+json");
        for (method, path, body) in [
            ("POST", "Patient", b"{not json".to_vec()),
            ("POST", "Patient", br#"{"resourceType":"Observation","status":"final","code":{}}"#.to_vec()),
            ("PUT", "Patient/a", br#"{"resourceType":"Patient","gender":"sometimes"}"#.to_vec()),
            ("POST", "", br#"{"resourceType":"Bundle","type":"collection"}"#.to_vec()),
            ("POST", "AsyncJob", br#"{"resourceType":"AsyncJob"}"#.to_vec()),
        ] {
            let r = s.send(method, path, &[prefer, json_type], Some(body)).await;
            assert!((400..500).contains(&r.status), "{method} {path}: {} {}", r.status, r.text());
            assert_eq!(r.json()["resourceType"], "OperationOutcome");
        }
        let r = s.send("GET", "Patient?nonsense=1", &[("prefer", "respond-async, handling=strict")], None).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let r = s.send("GET", "NotAType/1", &[prefer], None).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let r = s.send("GET", "Patient/1/$no-such-operation", &[prefer], None).await;
        assert_eq!(r.status, 400, "{}", r.text());
        // Nothing was queued.
        let jobs = s.get("AsyncJob").await.json();
        assert_eq!(jobs["total"], 0, "{jobs}");
    }
}

fhir_test! {
    async fn delete_releases_results_and_unknown_ids_are_rejected(s: &TestServer) {
        let status_url = kickoff(s, "GET", "metadata", &[], None).await;
        assert_eq!(poll_until_done(s, &status_url).await.status, 303);
        let r = s.send("DELETE", &status_url, &[], None).await;
        assert_eq!(r.status, 202, "{}", r.text());
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
        assert_eq!(s.get(&status_url).await.status, 404);
        let result = s.get(&format!("{status_url}/result")).await;
        assert_eq!(result.status, 404);
        assert_eq!(result.json()["resourceType"], "OperationOutcome");

        for unknown in ["_async/no-such-job", "$export-poll-status?_jobId=no-such-job"] {
            let r = s.delete(unknown).await;
            assert_eq!(r.status, 400, "{unknown}");
            let v = r.json();
            assert_eq!(v["issue"][0]["code"], "invalid");
            assert_eq!(v["issue"][0]["diagnostics"], "Endpoint artefact not found for the provided job ID.");
        }
    }
}

fhir_test! {
    async fn export_poll_status_is_an_alias(s: &TestServer) {
        let status_url = kickoff(s, "GET", "metadata", &[], None).await;
        let id = status_url.rsplit('/').next().unwrap().to_string();
        let alias = format!("$export-poll-status?_jobId={id}");
        assert_eq!(poll_until_done(s, &s.url(&alias)).await.status, 303);
        let r = s.delete(&alias).await;
        assert_eq!(r.status, 202);
        assert!(r.body.is_empty(), "seed 001: no body");
        assert_eq!(s.get(&alias).await.status, 404);
        assert_eq!(s.get(&status_url).await.status, 404);
    }
}

fhir_test! {
    options = TestOptions { workers: 0, ..TestOptions::default() };
    async fn queued_jobs_are_accepted_and_cancel_follows_seed_000(s: &TestServer) {
        // No workers: jobs stay accepted until cancelled.
        let status_url = kickoff(s, "GET", "metadata", &[], None).await;
        let id = status_url.rsplit('/').next().unwrap().to_string();
        let job = s.get(&format!("AsyncJob/{id}")).await;
        assert_eq!(job.status, 200);
        let job = job.json();
        assert_eq!(job["resourceType"], "AsyncJob");
        assert_eq!(job["status"], "accepted");
        assert!(job["requestTime"].is_string());
        assert_eq!(job["request"], s.url("metadata"));
        let listed = s.get("AsyncJob?status=accepted").await.json();
        assert_eq!(listed["entry"][0]["resource"]["id"], id.as_str());
        assert_eq!(s.get("AsyncJob?status=completed").await.json()["total"], 0);

        let poll = s.get(&status_url).await;
        assert_eq!(poll.status, 202);
        assert_eq!(poll.header("retry-after").as_deref(), Some("1"));
        assert_eq!(poll.header("x-progress").as_deref(), Some("Waiting for a worker"));

        let cancel = format!("AsyncJob/{id}/$cancel");
        let r = s.send("POST", &cancel, &[], None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(outcome_text(&r), "All OK");
        assert_eq!(s.get(&format!("AsyncJob/{id}")).await.json()["status"], "cancelled");
        // Already cancelled: 200, nothing changes.
        let r = s.send("POST", &cancel, &[], None).await;
        assert_eq!(r.status, 200);
        assert_eq!(outcome_text(&r), "All OK");
        // A cancelled job's status URL answers 404.
        let r = s.get(&status_url).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
        // Unknown job.
        let r = s.send("POST", "AsyncJob/not-a-job/$cancel", &[], None).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["issue"][0]["code"], "not-found");
        assert_eq!(outcome_text(&r), "Not found");
    }
}

fhir_test! {
    async fn finished_jobs_cannot_be_cancelled(s: &TestServer) {
        let status_url = kickoff(s, "GET", "metadata", &[], None).await;
        assert_eq!(poll_until_done(s, &status_url).await.status, 303);
        let id = status_url.rsplit('/').next().unwrap();
        let r = s.send("POST", &format!("AsyncJob/{id}/$cancel"), &[], None).await;
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["issue"][0]["code"], "invalid");
        assert_eq!(
            outcome_text(&r),
            "AsyncJob cannot be cancelled if status is not 'accepted', job had status 'completed'"
        );
        let job = s.get(&format!("AsyncJob/{id}")).await.json();
        assert_eq!(job["status"], "completed");
        assert!(job["transactionTime"].is_string());

        // A job whose request failed ends in `error`; it cannot be cancelled either.
        let status_url = kickoff(s, "GET", "Patient/nobody", &[], None).await;
        assert_eq!(poll_until_done(s, &status_url).await.status, 303);
        let id = status_url.rsplit('/').next().unwrap();
        assert_eq!(s.get(&format!("AsyncJob/{id}")).await.json()["status"], "error");
        let r = s.send("POST", &format!("AsyncJob/{id}/$cancel"), &[], None).await;
        assert_eq!(
            outcome_text(&r),
            "AsyncJob cannot be cancelled if status is not 'accepted', job had status 'error'"
        );
        assert_eq!(s.get(&format!("{status_url}/result")).await.status, 404);
    }
}

fhir_test! {
    options = TestOptions { workers: 0, ..TestOptions::default() };
    async fn delete_cancels_a_queued_job(s: &TestServer) {
        let status_url = kickoff(s, "GET", "metadata", &[], None).await;
        let id = status_url.rsplit('/').next().unwrap().to_string();
        let r = s.send("DELETE", &status_url, &[], None).await;
        assert_eq!(r.status, 202);
        assert_eq!(s.get(&status_url).await.status, 404);
        let r = s.send("POST", &format!("AsyncJob/{id}/$cancel"), &[], None).await;
        assert_eq!(r.status, 404, "a released job is gone: {}", r.text());
    }
}

fhir_test! {
    options = TestOptions { workers: 0, ..TestOptions::default() };
    async fn polling_too_fast_is_throttled(s: &TestServer) {
        let status_url = kickoff(s, "GET", "metadata", &[], None).await;
        assert_eq!(s.get(&status_url).await.status, 202);
        let r = s.get(&status_url).await;
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(r.header("retry-after").as_deref(), Some("1"));
        assert_eq!(r.json()["issue"][0]["code"], "throttled");
        // A client that honours Retry-After is never throttled.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert_eq!(s.get(&status_url).await.status, 202);
        }
    }
}

fhir_test! {
    options = TestOptions {
        workers: 0,
        asynchronous: oxifhir_server::asynchronous::AsyncConfig {
            max_active_per_client: 2,
            ..Default::default()
        },
        ..TestOptions::default()
    };
    async fn too_many_active_jobs_are_refused_at_kickoff(s: &TestServer) {
        let first = kickoff(s, "GET", "metadata", &[], None).await;
        kickoff(s, "GET", "metadata", &[], None).await;
        let r = s.send("GET", "metadata", &[("prefer", "respond-async")], None).await;
        assert_eq!(r.status, 429, "{}", r.text());
        assert!(r.header("retry-after").is_some());
        // Cancelling one makes room.
        assert_eq!(s.send("DELETE", &first, &[], None).await.status, 202);
        kickoff(s, "GET", "metadata", &[], None).await;
    }
}

fhir_test! {
    async fn async_job_and_operations_are_published(s: &TestServer) {
        let statement = s.get("metadata").await.json();
        let resources = statement["rest"][0]["resource"].as_array().unwrap();
        let async_job = resources.iter().find(|r| r["type"] == "AsyncJob").expect("AsyncJob listed");
        assert_eq!(async_job["searchParam"][0]["name"], "status");
        let cancel = &async_job["operation"][0];
        assert_eq!(cancel["name"], "cancel");
        let definition_id = cancel["definition"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
        let definition = s.get(&format!("OperationDefinition/{definition_id}")).await;
        assert_eq!(definition.status, 200, "{}", definition.text());
        let definition = definition.json();
        assert_eq!(definition["url"], cancel["definition"]);
        assert_eq!(definition["code"], "cancel");
        assert_eq!(definition["extension"][0]["valueCode"], "allowed");
    }
}

/// The stored request of the job behind `status_url`, as a worker replays it.
async fn stored_request(s: &TestServer, status_url: &str) -> oxifhir_server::FhirRequest {
    let id = status_url.rsplit('/').next().unwrap();
    let job = s.store.jobs().job(id).await.unwrap().expect("the job");
    serde_json::from_slice(&job.input).unwrap()
}

fhir_test! {
    options = TestOptions { workers: 0, ..TestOptions::default() };
    async fn a_create_run_again_after_a_dead_worker_creates_nothing_new(s: &TestServer) {
        let json_type = [("content-type", "application/fhir+json")];
        let plain = serde_json::to_vec(&patient("Once")).unwrap();
        let conditional = serde_json::to_vec(&json!({"resourceType": "Patient",
            "identifier": [{"system": "urn:once", "value": "c1"}],
            "name": [{"family": "Once"}]})).unwrap();
        let jobs = [
            kickoff(s, "POST", "Patient", &json_type, Some(plain)).await,
            kickoff(s, "POST", "Patient",
                &[json_type[0], ("if-none-exist", "identifier=urn:once|c1")],
                Some(conditional)).await,
        ];
        for status_url in &jobs {
            let request = stored_request(s, status_url).await;
            let id = request.assigned_id.clone().expect("an id fixed at kick-off");
            // The first run wrote the resource and its worker died before storing the
            // response; the run that follows answers exactly what the first would have.
            let first = s.server.dispatch(request.clone()).await;
            assert_eq!(first.status, 201, "{}", String::from_utf8_lossy(&first.body));
            let again = s.server.dispatch(request).await;
            assert_eq!((again.status, &again.headers, &again.body),
                (first.status, &first.headers, &first.body));
            let created: Value = serde_json::from_slice(&first.body).unwrap();
            assert_eq!(created["id"], id.as_str());
        }
        let found = s.get("Patient?family=Once&_summary=count").await.json();
        assert_eq!(found["total"], 2, "two creates, two Patients");
        // An ordinary create still gets an id of the server's choosing.
        let fresh = s.post("Patient", &patient("Once")).await;
        assert_eq!(fresh.status, 201);
        assert!(!jobs.iter().any(|j| j.contains(fresh.json()["id"].as_str().unwrap())));
    }
}
