//! `$reindex` (seed 003): kick-off checks, the result `Parameters` with exact counts, old
//! data found by a new SearchParameter afterwards (and its warning gone), cancellation in the
//! middle of a run, and writes racing the reindex.

use std::time::Duration;

use crate::support::*;

use oxifhir_server::MaintenanceConfig;
use serde_json::{Value, json};

const URL: &str = "http://example.org/SearchParameter/patient-eye-colour";

fn eye_colour() -> Value {
    json!({
        "resourceType": "SearchParameter", "id": "eye-colour", "url": URL,
        "name": "EyeColour", "status": "active", "description": "Eye colour",
        "code": "eye-colour", "base": ["Patient"], "type": "token",
        "expression": "Patient.extension('http://example.org/eye-colour').value"
    })
}

fn patient(id: &str, colour: Option<&str>) -> Value {
    let mut p = json!({"resourceType": "Patient", "id": id, "gender": "female"});
    if let Some(colour) = colour {
        p["extension"] = json!([{"url": "http://example.org/eye-colour", "valueCode": colour}]);
    }
    p
}

async fn put(s: &TestServer, body: &Value) {
    let path = format!(
        "{}/{}",
        body["resourceType"].as_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    let r = s.put(&path, body).await;
    assert!(matches!(r.status, 200 | 201), "PUT {path}: {}", r.text());
}

fn url_parameters(urls: &[&str]) -> Vec<u8> {
    let parameter: Vec<Value> = urls
        .iter()
        .map(|u| json!({"name": "url", "valueUrl": u}))
        .collect();
    serde_json::to_vec(&json!({"resourceType": "Parameters", "parameter": parameter})).unwrap()
}

/// Kicks off `POST path` asynchronously; the status URL.
async fn kickoff(s: &TestServer, path: &str, body: Option<Vec<u8>>) -> String {
    let r = s
        .send(
            "POST",
            path,
            &[
                ("prefer", "respond-async"),
                ("content-type", "application/fhir+json"),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, 202, "kick-off {path}: {}", r.text());
    r.header("content-location").expect("Content-Location")
}

/// Polls until the job is done; the result reply.
async fn result(s: &TestServer, status_url: &str) -> Reply {
    for _ in 0..200 {
        let r = s.get(status_url).await;
        match r.status {
            202 => {
                let progress = r.header("x-progress").expect("X-Progress");
                assert!(progress.len() < 100, "{progress}");
                tokio::time::sleep(Duration::from_millis(600)).await;
            }
            303 => return s.get(&r.header("location").expect("Location")).await,
            other => panic!("poll of {status_url}: {other} {}", r.text()),
        }
    }
    panic!("{status_url} did not finish");
}

/// A value of the result `Parameters`: a top-level parameter, or a part of `processingSummary`.
fn count(result: &Value, name: &str) -> u64 {
    let params = result["parameter"].as_array().expect("parameter");
    let top = params.iter().find(|p| p["name"] == name);
    let part = || {
        params
            .iter()
            .find(|p| p["name"] == "processingSummary")
            .and_then(|p| p["part"].as_array())
            .and_then(|parts| parts.iter().find(|p| p["name"] == name))
    };
    top.or_else(part)
        .and_then(|p| p["valueUnsignedInt"].as_u64())
        .unwrap_or_else(|| panic!("no {name} in {result}"))
}

fn text(result: &Value, name: &str) -> String {
    result["parameter"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .map(|p| p.to_string())
        .unwrap_or_default()
}

/// Ids and warning texts of a search.
async fn search(s: &TestServer, path: &str) -> (Vec<String>, Vec<String>) {
    let r = s.get(path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    let entries = r.json()["entry"].as_array().cloned().unwrap_or_default();
    let mut ids: Vec<String> = entries
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let warnings = entries
        .iter()
        .filter(|e| e["search"]["mode"] == "outcome")
        .flat_map(|e| {
            e["resource"]["issue"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|i| i["details"]["text"].as_str().unwrap_or("").to_string())
        .collect();
    (ids, warnings)
}

fhir_test! {
    async fn old_data_is_found_after_reindex(s: &TestServer) {
        for (id, colour) in [("a", Some("blue")), ("b", Some("blue")), ("c", Some("brown")),
                             ("d", None), ("e", Some("blue"))] {
            put(s, &patient(id, colour)).await;
        }
        put(s, &json!({"resourceType": "Observation", "id": "o1", "status": "final",
                       "code": {"text": "x"}})).await;
        assert!(s.delete("Patient/e").await.status < 300);
        put(s, &eye_colour()).await;
        let (ids, warnings) = search(s, "Patient?eye-colour=blue").await;
        assert!(ids.is_empty(), "{ids:?}");
        assert!(warnings.iter().any(|w| w.contains("not yet indexed")), "{warnings:?}");

        let status_url = kickoff(s, "Patient/$reindex", Some(url_parameters(&[URL]))).await;
        let r = result(s, &status_url).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(v["resourceType"], "Parameters");
        assert_eq!(v["parameter"][0], json!({"name": "status", "valueCode": "completed"}));
        assert_eq!(v["parameter"][1]["name"], "durationInSeconds");
        assert!(v["parameter"][1]["valueDecimal"].is_number(), "{v}");
        // Four live Patients (the deleted one is not scanned), three with a colour.
        assert_eq!(count(&v, "resourcesScanned"), 4);
        assert_eq!(count(&v, "indexEntriesCreated"), 3);
        assert_eq!(count(&v, "resourcesIndexedSuccessfully"), 3);
        assert_eq!(count(&v, "resourcesSkippedNoMatchingPath"), 1);
        assert_eq!(count(&v, "resourcesSkippedWithError"), 0);
        assert!(text(&v, "message").contains("Re-indexing complete."), "{v}");
        let names: Vec<&str> = v["parameter"].as_array().unwrap().iter()
            .map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["status", "durationInSeconds", "resourcesScanned",
                           "indexEntriesCreated", "processingSummary", "message"]);

        let (ids, warnings) = search(s, "Patient?eye-colour=blue").await;
        assert_eq!(ids, ["a", "b"]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(search(s, "Patient?eye-colour=brown").await.0, ["c"]);
        // The R4 index is untouched by a reindex of one parameter.
        assert_eq!(search(s, "Patient?gender=female").await.0, ["a", "b", "c", "d"]);

        // Again, with the url in the query: the same counts (nothing duplicated).
        let status_url = kickoff(s, &format!("$reindex?url={URL}"), None).await;
        let v = result(s, &status_url).await.json();
        assert_eq!(count(&v, "resourcesScanned"), 4);
        assert_eq!(count(&v, "indexEntriesCreated"), 3);
        assert_eq!(search(s, "Patient?eye-colour=blue").await.0, ["a", "b"]);
    }
}

fhir_test! {
    async fn kickoff_checks_and_instance_level(s: &TestServer) {
        put(s, &patient("a", Some("blue"))).await;
        put(s, &eye_colour()).await;
        let async_only = [("prefer", "respond-async"), ("content-type", "application/fhir+json")];
        // Unknown url: 400 at once, at every level, before any job exists.
        for path in ["$reindex", "Patient/$reindex", "Patient/a/$reindex"] {
            let r = s.send("POST", path, &async_only, Some(url_parameters(&["http://example.org/nope"]))).await;
            assert_eq!(r.status, 400, "{path}: {}", r.text());
            assert!(outcome_text(&r).contains("http://example.org/nope"), "{}", r.text());
        }
        let r = s.send("POST", "$reindex?url=http://example.org/nope", &async_only, None).await;
        assert_eq!(r.status, 400);
        let r = s.send("POST", "$reindex?colour=blue", &async_only, None).await;
        assert_eq!(r.status, 400, "unknown parameter");
        // A parameter that does not apply to the type.
        let r = s.send("POST", &format!("Observation/$reindex?url={URL}"), &async_only, None).await;
        assert_eq!(r.status, 400, "{}", r.text());
        // System and type level are asynchronous only.
        for path in ["$reindex", "Patient/$reindex"] {
            let r = s.send("POST", path, &[], None).await;
            assert_eq!(r.status, 400, "{path}");
            assert!(outcome_text(&r).contains("respond-async"), "{}", r.text());
        }
        // An unknown instance is 404.
        let r = s.send("POST", "Patient/zz/$reindex", &async_only, None).await;
        assert_eq!(r.status, 404, "{}", r.text());
        // An instance is reindexed synchronously.
        let r = s.post("Patient/a/$reindex", &json!({"resourceType": "Parameters",
            "parameter": [{"name": "url", "valueUri": URL}]})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert_eq!(count(&v, "resourcesScanned"), 1);
        assert_eq!(count(&v, "indexEntriesCreated"), 1);
        assert_eq!(search(s, "Patient?eye-colour=blue").await.0, ["a"]);
        // ...which does not make the parameter indexed for all data.
        let (_, warnings) = search(s, "Patient?eye-colour=blue").await;
        assert!(warnings.iter().any(|w| w.contains("not yet indexed")), "{warnings:?}");
        // The OperationDefinition says asynchronous use is required.
        let def = s.get("OperationDefinition/reindex").await.json();
        assert_eq!(def["extension"][0]["valueCode"], "required");
        assert_eq!(def["instance"], true);
    }
}

fhir_test! {
    async fn reindex_of_every_parameter_is_exact(s: &TestServer) {
        for i in 0..30 {
            put(s, &patient(&format!("p{i:02}"), (i % 3 == 0).then_some("green"))).await;
        }
        for i in 0..10 {
            put(s, &json!({"resourceType": "Observation", "id": format!("o{i}"), "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "1234-5"}]},
                "subject": {"reference": format!("Patient/p{i:02}")}})).await;
        }
        put(s, &eye_colour()).await;
        // What a write would index for each live resource, with the parameters in force.
        let params = s.server.search_params().await.expect("params");
        let mut expected_entries = 0;
        let mut live = 0;
        for t in ["Patient", "Observation", "SearchParameter"] {
            let bundle = s.get(&format!("{t}?_count=100")).await.json();
            for e in bundle["entry"].as_array().unwrap() {
                expected_entries += params.index(t, &e["resource"]).len() as u64;
                live += 1;
            }
        }
        let status_url = kickoff(s, "$reindex", None).await;
        let v = result(s, &status_url).await.json();
        assert_eq!(count(&v, "resourcesScanned"), live);
        assert_eq!(count(&v, "indexEntriesCreated"), expected_entries);
        assert_eq!(count(&v, "resourcesIndexedSuccessfully") + count(&v, "resourcesSkippedNoMatchingPath"), live);
        // The whole index is as a write leaves it: searches answer as before, the new
        // parameter included and its warning gone.
        let (ids, warnings) = search(s, "Patient?eye-colour=green&_count=100").await;
        assert_eq!(ids.len(), 10);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(search(s, "Observation?code=http://loinc.org|1234-5&_count=100").await.0.len(), 10);
        assert_eq!(search(s, "Observation?subject=Patient/p03").await.0, ["o3"]);
        assert_eq!(search(s, "Patient?gender=female&_count=100").await.0.len(), 30);
        // Running it again creates the same entries, no more.
        let v = result(s, &kickoff(s, "$reindex", None).await).await.json();
        assert_eq!(count(&v, "indexEntriesCreated"), expected_entries);
    }
}

fhir_test! {
    options = TestOptions {
        maintenance: MaintenanceConfig { batch: 4, throttle: Duration::from_millis(150) },
        ..TestOptions::default()
    };
    async fn cancelled_in_the_middle(s: &TestServer) {
        for i in 0..60 {
            put(s, &patient(&format!("p{i:02}"), Some("blue"))).await;
        }
        put(s, &eye_colour()).await;
        let status_url = kickoff(s, &format!("Patient/$reindex?url={URL}"), None).await;
        let id = status_url.rsplit('/').next().unwrap().to_owned();
        let mut progress = String::new();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let job = s.store.jobs().job(&id).await.unwrap().unwrap();
            progress = job.progress.unwrap_or_default();
            if progress.starts_with("Indexed ") && !progress.starts_with("Indexed 0 ") {
                break;
            }
        }
        assert!(progress.ends_with(" of 60 resources."), "{progress}");
        let r = s.get(&status_url).await;
        assert_eq!(r.status, 202);
        assert!(r.header("x-progress").unwrap().starts_with("Indexed "), "{r:?}");
        assert_eq!(s.delete(&status_url).await.status, 202);
        assert_eq!(s.get(&status_url).await.status, 404);
        // Stopped within a second: its progress no longer moves.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stopped = s.store.jobs().job(&id).await.unwrap().unwrap();
        tokio::time::sleep(Duration::from_millis(800)).await;
        let later = s.store.jobs().job(&id).await.unwrap().unwrap();
        assert_eq!(stopped.progress, later.progress);
        assert_ne!(later.progress.as_deref(), Some("Indexed 60 of 60 resources."));
        let (ids, warnings) = search(s, "Patient?eye-colour=blue&_count=100").await;
        assert!(ids.len() < 60, "{}", ids.len());
        assert!(warnings.iter().any(|w| w.contains("not yet indexed")), "{warnings:?}");

        // Through AsyncJob/$cancel as well.
        let status_url = kickoff(s, &format!("Patient/$reindex?url={URL}"), None).await;
        let id = status_url.rsplit('/').next().unwrap().to_owned();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let r = s.post(&format!("AsyncJob/{id}/$cancel"), &json!({"resourceType": "Parameters"})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(s.get(&status_url).await.status, 404);
    }
}

fhir_test! {
    options = TestOptions {
        maintenance: MaintenanceConfig { batch: 5, throttle: Duration::from_millis(60) },
        ..TestOptions::default()
    };
    async fn writes_during_a_reindex_are_indexed_once(s: &TestServer) {
        for i in 0..80 {
            put(s, &patient(&format!("p{i:02}"), Some("blue"))).await;
        }
        put(s, &eye_colour()).await;
        let status_url = kickoff(s, &format!("Patient/$reindex?url={URL}"), None).await;
        // While it runs: recolour some (ahead of the scan and behind it), add, delete.
        let mut green = Vec::new();
        for i in (0..80).step_by(7) {
            let id = format!("p{i:02}");
            put(s, &patient(&id, Some("green"))).await;
            green.push(id);
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        for i in 0..5 {
            let id = format!("q{i}");
            put(s, &patient(&id, Some("green"))).await;
            green.push(id);
        }
        assert!(s.delete("Patient/p01").await.status < 300);
        let r = result(s, &status_url).await;
        assert_eq!(r.status, 200, "{}", r.text());
        green.sort();
        let blue: Vec<String> = (0..80)
            .map(|i| format!("p{i:02}"))
            .filter(|id| !green.contains(id) && id != "p01")
            .collect();
        assert_eq!(search(s, "Patient?eye-colour=green&_count=200").await.0, green);
        assert_eq!(search(s, "Patient?eye-colour=blue&_count=200").await.0, blue);
        let v = r.json();
        let scanned = count(&v, "resourcesScanned");
        assert_eq!(
            count(&v, "resourcesIndexedSuccessfully") + count(&v, "resourcesSkippedNoMatchingPath"),
            scanned
        );
        assert!((79..=85).contains(&scanned), "{v}");
    }
}

fhir_test! {
    options = TestOptions { workers: 0, ..TestOptions::default() };
    async fn a_reindex_that_cannot_run_answers_500(s: &TestServer) {
        put(s, &patient("a", Some("blue"))).await;
        put(s, &eye_colour()).await;
        // Accepted while the parameter is active, run after it was retired.
        let status_url = kickoff(s, &format!("Patient/$reindex?url={URL}"), None).await;
        let mut retired = eye_colour();
        retired["status"] = json!("retired");
        put(s, &retired).await;
        let runtime = s.server.job_runtime(oxifhir_jobs::RuntimeConfig::default()).start();
        let r = result(s, &status_url).await;
        runtime.shutdown().await;
        assert_eq!(r.status, 500, "{}", r.text());
        let text = outcome_text(&r);
        assert!(text.contains("could not run") && text.contains(URL), "{text}");
    }
}
