//! `$expunge`: exact counts for deleted resources, previous versions and `limit`; a Patient
//! with its compartment and everything (asynchronous only); expunged data gone from read,
//! vread, history, search and export, and nothing else touched; cancellation mid-run.

use std::time::Duration;

use crate::support::*;

use oxifhir_server::MaintenanceConfig;
use serde_json::{Value, json};

async fn put(s: &TestServer, body: &Value) {
    let path = format!(
        "{}/{}",
        body["resourceType"].as_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    let r = s.put(&path, body).await;
    assert!(matches!(r.status, 200 | 201), "PUT {path}: {}", r.text());
}

fn patient(id: &str, family: &str) -> Value {
    json!({"resourceType": "Patient", "id": id, "name": [{"family": family}]})
}

fn observation(id: &str, patient: &str) -> Value {
    json!({"resourceType": "Observation", "id": id, "status": "final", "code": {"text": "x"},
           "subject": {"reference": format!("Patient/{patient}")}})
}

async fn delete(s: &TestServer, path: &str) {
    assert!(s.delete(path).await.status < 300, "DELETE {path}");
}

/// `count` of a synchronous `$expunge` (asserting `200`).
async fn expunge(s: &TestServer, path: &str) -> u64 {
    let r = s.send("POST", path, &[], None).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    count(&r.json())
}

fn count(v: &Value) -> u64 {
    assert_eq!(v["parameter"][0]["name"], "count", "{v}");
    v["parameter"][0]["valueInteger"].as_u64().expect("count")
}

async fn history_len(s: &TestServer, path: &str) -> usize {
    let r = s.get(&format!("{path}/_history?_count=100")).await;
    if r.status == 404 {
        return 0;
    }
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()["entry"].as_array().map_or(0, Vec::len)
}

/// Kicks off `POST path` asynchronously and waits for its result.
async fn run_async(s: &TestServer, path: &str) -> Reply {
    let r = s
        .send("POST", path, &[("prefer", "respond-async")], None)
        .await;
    assert_eq!(r.status, 202, "{path}: {}", r.text());
    let status_url = r.header("content-location").expect("Content-Location");
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let r = s.get(&status_url).await;
        match r.status {
            202 => continue,
            303 => return s.get(&r.header("location").unwrap()).await,
            other => panic!("{status_url}: {other} {}", r.text()),
        }
    }
    panic!("{path} did not finish");
}

/// Type/id of every resource in a system export of `types`.
async fn exported(s: &TestServer, types: &str) -> Vec<String> {
    let r = s
        .send(
            "GET",
            &format!("$export?_type={types}"),
            &[("prefer", "respond-async")],
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text());
    let status_url = r.header("content-location").unwrap();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let r = s.get(&status_url).await;
        if r.status == 202 {
            continue;
        }
        assert_eq!(r.status, 200, "{}", r.text());
        let mut ids = Vec::new();
        for item in r.json()["output"].as_array().unwrap() {
            let file = s.get(item["url"].as_str().unwrap()).await;
            for line in file.text().lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                ids.push(format!(
                    "{}/{}",
                    v["resourceType"].as_str().unwrap(),
                    v["id"].as_str().unwrap()
                ));
            }
        }
        ids.sort();
        return ids;
    }
    panic!("the export did not finish");
}

fhir_test! {
    async fn deleted_resources_and_previous_versions(s: &TestServer) {
        for family in ["A1", "A2", "A3"] {
            put(s, &patient("a", family)).await;
        }
        put(s, &patient("b", "B")).await;
        delete(s, "Patient/b").await;
        put(s, &patient("c", "C")).await;
        put(s, &observation("o", "c")).await;
        delete(s, "Observation/o").await;
        // Nothing to do, or the wrong thing: 400.
        assert_eq!(s.send("POST", "Patient/$expunge", &[], None).await.status, 400);
        assert_eq!(s.send("POST", "Patient/zz/$expunge?expungePreviousVersions=true", &[], None).await.status, 404);

        // Deleted Patients: b's two versions; the deleted Observation stays.
        assert_eq!(expunge(s, "Patient/$expunge?expungeDeletedResources=true").await, 2);
        assert_eq!(s.get("Patient/b").await.status, 404);
        assert_eq!(s.get("Patient/b/_history/1").await.status, 404);
        assert_eq!(history_len(s, "Patient/b").await, 0);
        assert_eq!(s.get("Observation/o/_history/1").await.status, 200);
        assert_eq!(expunge(s, "Patient/$expunge?expungeDeletedResources=true").await, 0);

        // Previous versions of one resource: a's first two.
        assert_eq!(expunge(s, "Patient/a/$expunge?expungePreviousVersions=true").await, 2);
        assert_eq!(s.get("Patient/a/_history/1").await.status, 404);
        assert_eq!(s.get("Patient/a/_history/3").await.status, 200);
        let a = s.get("Patient/a").await.json();
        assert_eq!(a["meta"]["versionId"], "3");
        assert_eq!(a["name"][0]["family"], "A3");
        assert_eq!(history_len(s, "Patient/a").await, 1);

        // System level, parameters in a body: the deleted Observation.
        let body = json!({"resourceType": "Parameters", "parameter": [
            {"name": "expungeDeletedResources", "valueBoolean": true}]});
        let r = s.post("$expunge", &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(count(&r.json()), 2);
        assert_eq!(s.get("Observation/o/_history/1").await.status, 404);
        // Untouched: c and its search entries.
        assert_eq!(history_len(s, "Patient/c").await, 1);
        let found = s.get("Patient?family=C").await.json();
        assert_eq!(found["entry"][0]["resource"]["id"], "c");
        assert_eq!(history_len(s, "").await, 2, "a's and c's current versions");

        // limit: at most two deleted resources per request.
        for i in 0..3 {
            let id = format!("d{i}");
            put(s, &patient(&id, "D")).await;
            delete(s, &format!("Patient/{id}")).await;
        }
        assert_eq!(expunge(s, "$expunge?expungeDeletedResources=true&limit=2").await, 4);
        assert_eq!(expunge(s, "$expunge?expungeDeletedResources=true&limit=2").await, 2);
        // ...and at most one previous version.
        put(s, &patient("c", "C2")).await;
        put(s, &patient("c", "C3")).await;
        assert_eq!(expunge(s, "Patient/c/$expunge?expungePreviousVersions=true&limit=1").await, 1);
        assert_eq!(history_len(s, "Patient/c").await, 2);
    }
}

fhir_test! {
    async fn everything_on_a_patient_removes_its_compartment(s: &TestServer) {
        put(s, &patient("p1", "One")).await;
        put(s, &patient("p2", "Two")).await;
        put(s, &observation("o1", "p1")).await;
        let mut amended = observation("o1", "p1");
        amended["status"] = json!("amended");
        put(s, &amended).await;
        put(s, &observation("o2", "p2")).await;
        put(s, &json!({"resourceType": "Encounter", "id": "e1", "status": "finished",
                       "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"}})).await;
        // Asynchronous only.
        let r = s.send("POST", "Patient/p1/$expunge?everything=true", &[], None).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let r = run_async(s, "Patient/p1/$expunge?everything=true").await;
        assert_eq!(r.status, 200, "{}", r.text());
        // p1, o1 (two versions), e1.
        assert_eq!(count(&r.json()), 4);
        for path in ["Patient/p1", "Observation/o1", "Encounter/e1", "Observation/o1/_history/1"] {
            assert_eq!(s.get(path).await.status, 404, "{path}");
        }
        assert_eq!(s.get("Observation?subject=Patient/p1").await.json()["total"], 0);
        assert_eq!(history_len(s, "Observation").await, 1);
        // Nothing else touched.
        assert_eq!(s.get("Patient/p2").await.status, 200);
        assert_eq!(s.get("Observation/o2").await.status, 200);
        assert_eq!(
            exported(s, "Patient,Observation,Encounter").await,
            ["Observation/o2", "Patient/p2"]
        );
    }
}

fhir_test! {
    async fn expunge_everything(s: &TestServer) {
        put(s, &patient("p1", "One")).await;
        put(s, &patient("p1", "Uno")).await;
        put(s, &observation("o1", "p1")).await;
        delete(s, "Observation/o1").await;
        assert_eq!(s.send("POST", "$expunge?expungeEverything=true", &[], None).await.status, 400);
        assert_eq!(
            s.send("POST", "Patient/$expunge?expungeEverything=true", &[("prefer", "respond-async")], None).await.status,
            400
        );
        let r = run_async(s, "$expunge?expungeEverything=true").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(count(&r.json()), 4);
        assert_eq!(history_len(s, "").await, 0);
        assert_eq!(s.get("Patient/p1").await.status, 404);
        assert_eq!(s.get("Patient?_count=10").await.json()["total"], 0);
        // The server goes on as new.
        put(s, &patient("p1", "Again")).await;
        assert_eq!(s.get("Patient/p1").await.json()["meta"]["versionId"], "1");
    }
}

fhir_test! {
    options = TestOptions {
        maintenance: MaintenanceConfig { batch: 1, throttle: Duration::from_millis(150) },
        ..TestOptions::default()
    };
    async fn cancelled_in_the_middle(s: &TestServer) {
        for i in 0..30 {
            let id = format!("d{i:02}");
            put(s, &patient(&id, "D")).await;
            delete(s, &format!("Patient/{id}")).await;
        }
        let r = s.send("POST", "Patient/$expunge?expungeDeletedResources=true", &[("prefer", "respond-async")], None).await;
        assert_eq!(r.status, 202);
        let status_url = r.header("content-location").unwrap();
        let id = status_url.rsplit('/').next().unwrap().to_owned();
        let mut progress = String::new();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            progress = s.store.jobs().job(&id).await.unwrap().unwrap().progress.unwrap_or_default();
            if progress.starts_with("Expunged ") && !progress.starts_with("Expunged 0 ") {
                break;
            }
        }
        assert!(progress.starts_with("Expunged "), "{progress}");
        assert_eq!(s.delete(&status_url).await.status, 202);
        assert_eq!(s.get(&status_url).await.status, 404);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stopped = s.store.jobs().job(&id).await.unwrap().unwrap().progress;
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(s.store.jobs().job(&id).await.unwrap().unwrap().progress, stopped);
        let mut remaining = 0;
        for i in 0..30 {
            if s.get(&format!("Patient/d{i:02}/_history/1")).await.status == 200 {
                remaining += 1;
            }
        }
        assert!(remaining > 0 && remaining < 30, "{remaining}");
        // Expunged versions match what the job reported when it stopped.
        let reported: u64 = stopped.unwrap().split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(reported, 2 * (30 - remaining));
    }
}
