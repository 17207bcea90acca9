//! Batch and transaction Bundles (conformance.md §3, BT-1 … BT-19).

use crate::support::*;
use serde_json::{Value, json};

fn entry(method: &str, url: &str, resource: Option<Value>, full_url: Option<&str>) -> Value {
    let mut e = json!({"request": {"method": method, "url": url}});
    if let Some(r) = resource {
        e["resource"] = r;
    }
    if let Some(f) = full_url {
        e["fullUrl"] = json!(f);
    }
    e
}

fn bundle(kind: &str, entries: Vec<Value>) -> Value {
    json!({"resourceType": "Bundle", "type": kind, "entry": entries})
}

fn obs(subject: &str) -> Value {
    json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": subject}})
}

async fn total(s: &TestServer, t: &str) -> u64 {
    s.get(&format!("{t}?_summary=count")).await.json()["total"]
        .as_u64()
        .unwrap()
}

fn statuses(b: &Value) -> Vec<String> {
    b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["status"].as_str().unwrap()[..3].to_string())
        .collect()
}

fhir_test! {
    async fn transaction_rewrites_urn_uuid_references(s: &TestServer) {
        let b = bundle("transaction", vec![
            entry("POST", "Observation", Some(obs("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a")), Some("urn:uuid:0c3151bd-1cbf-4d64-b04d-cd9187a4c6e0")),
            entry("POST", "Patient", Some(json!({"resourceType": "Patient", "active": true, "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><a href=\"urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a\">me</a></div>"}})), Some("urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a")),
        ]);
        let r = s.post("", &b).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let resp = r.json();
        assert_eq!(resp["type"], "transaction-response");
        assert_eq!(statuses(&resp), ["201", "201"]);
        let patient_loc = resp["entry"][1]["response"]["location"].as_str().unwrap();
        let patient_id = patient_loc.split('/').rev().nth(2).unwrap();
        let obs_loc = resp["entry"][0]["response"]["location"].as_str().unwrap();
        assert!(resp["entry"][0]["response"]["etag"].as_str().unwrap().starts_with("W/"));
        let obs_path = obs_loc.strip_prefix(&format!("{}/", s.base)).unwrap();
        let stored = s.get(obs_path.split("/_history").next().unwrap()).await.json();
        assert_eq!(stored["subject"]["reference"], format!("Patient/{patient_id}"));
        let patient = s.get(&format!("Patient/{patient_id}")).await.json();
        assert!(patient["text"]["div"].as_str().unwrap().contains(&format!("href=\"Patient/{patient_id}\"")));
    }
}

fhir_test! {
    async fn transaction_failing_in_its_last_entry_leaves_nothing(s: &TestServer) {
        let b = bundle("transaction", vec![
            entry("POST", "Patient", Some(json!({"resourceType": "Patient"})), None),
            entry("PUT", "Patient/fixed", Some(json!({"resourceType": "Patient", "id": "fixed"})), None),
            entry("DELETE", "Patient/never-was", None, None),
        ]);
        let r = s.post("", &b).await;
        assert_eq!(r.status, 404, "{}", r.text());
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
        assert_eq!(r.json()["issue"][0]["expression"][0], "Bundle.entry[2]");
        assert_eq!(total(s, "Patient").await, 0);
        assert_eq!(s.get("Patient/fixed").await.status, 404);
        assert_eq!(s.get("_history").await.json()["total"], 0);
    }
}

fhir_test! {
    async fn transaction_with_an_invalid_resource_fails_whole(s: &TestServer) {
        let b = bundle("transaction", vec![
            entry("POST", "Patient", Some(json!({"resourceType": "Patient"})), None),
            entry("POST", "Patient", Some(json!({"resourceType": "Patient", "active": "maybe"})), None),
        ]);
        let r = s.post("", &b).await;
        assert_eq!(r.status, 400);
        assert_eq!(total(s, "Patient").await, 0);
        let b = bundle("transaction", vec![entry("GET", "Foo/1", None, None)]);
        assert_eq!(s.post("", &b).await.status, 400, "unknown type");
    }
}

fhir_test! {
    async fn transaction_processing_order(s: &TestServer) {
        s.put("Patient/old", &json!({"resourceType": "Patient", "id": "old"})).await;
        let b = bundle("transaction", vec![
            entry("GET", "Patient?_id=new", None, None),
            entry("PUT", "Patient/new", Some(json!({"resourceType": "Patient", "id": "new"})), None),
            entry("POST", "Observation", Some(obs("Patient/new")), None),
            entry("DELETE", "Patient/old", None, None),
        ]);
        let r = s.post("", &b).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let resp = r.json();
        assert_eq!(statuses(&resp), ["200", "201", "201", "204"], "responses in request order");
        assert_eq!(resp["entry"][0]["resource"]["total"], 1, "GET runs after the writes");
        assert_eq!(s.get("Patient/old").await.status, 410);
    }
}

fhir_test! {
    async fn transaction_identity_overlap_is_rejected(s: &TestServer) {
        let b = bundle("transaction", vec![
            entry("PUT", "Patient/a", Some(json!({"resourceType": "Patient", "id": "a"})), None),
            entry("DELETE", "Patient/a", None, None),
        ]);
        let r = s.post("", &b).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(outcome_text(&r).contains("more than one entry"));
        assert_eq!(total(s, "Patient").await, 0);
    }
}

fhir_test! {
    async fn transaction_conditional_create_and_references(s: &TestServer) {
        let existing = s.create(&json!({"resourceType": "Patient"})).await;
        let id = existing["id"].as_str().unwrap();
        let mut cond = entry("POST", "Patient", Some(json!({"resourceType": "Patient"})), Some("urn:uuid:aaaaaaaa-0000-0000-0000-000000000001"));
        cond["request"]["ifNoneExist"] = json!(format!("_id={id}"));
        let b = bundle("transaction", vec![
            cond,
            entry("POST", "Observation", Some(obs("urn:uuid:aaaaaaaa-0000-0000-0000-000000000001")), None),
            entry("POST", "Observation", Some(obs(&format!("Patient?_id={id}"))), None),
        ]);
        let r = s.post("", &b).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let resp = r.json();
        assert_eq!(statuses(&resp), ["200", "201", "201"]);
        assert_eq!(total(s, "Patient").await, 1, "the conditional create matched");
        for i in 1..3 {
            let loc = resp["entry"][i]["response"]["location"].as_str().unwrap();
            let path = loc.strip_prefix(&format!("{}/", s.base)).unwrap().split("/_history").next().unwrap().to_string();
            assert_eq!(s.get(&path).await.json()["subject"]["reference"], format!("Patient/{id}"));
        }
        let b = bundle("transaction", vec![entry("POST", "Observation", Some(obs("Patient?_id=nobody")), None)]);
        assert_eq!(s.post("", &b).await.status, 400, "an unresolvable conditional reference fails");
    }
}

fhir_test! {
    async fn empty_transaction_is_fine(s: &TestServer) {
        let r = s.post("", &json!({"resourceType": "Bundle", "type": "transaction"})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["type"], "transaction-response");
    }
}

fhir_test! {
    async fn batch_entries_fail_independently(s: &TestServer) {
        let b = bundle("batch", vec![
            entry("POST", "Patient", Some(json!({"resourceType": "Patient"})), Some("urn:uuid:aaaaaaaa-0000-0000-0000-000000000002")),
            entry("POST", "Observation", Some(obs("urn:uuid:aaaaaaaa-0000-0000-0000-000000000002")), None),
            entry("GET", "Patient/missing", None, None),
            entry("POST", "Patient", Some(json!({"resourceType": "Patient", "active": "no"})), None),
            entry("GET", "Patient?_summary=count", None, None),
            json!({"request": {"method": "UNSUPPORTED", "url": "Patient"}}),
        ]);
        let r = s.post("", &b).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let resp = r.json();
        assert_eq!(resp["type"], "batch-response");
        assert_eq!(statuses(&resp), ["201", "400", "404", "400", "200", "400"]);
        assert_eq!(resp["entry"][2]["response"]["outcome"]["resourceType"], "OperationOutcome");
        assert!(resp["entry"][0]["response"]["location"].is_string());
        assert_eq!(resp["entry"][4]["resource"]["total"], 1);
        assert_eq!(total(s, "Patient").await, 1);
    }
}

fhir_test! {
    async fn prefer_minimal_in_bundles(s: &TestServer) {
        let b = bundle("transaction", vec![entry("POST", "Patient", Some(json!({"resourceType": "Patient"})), None)]);
        let r = s.with_json("POST", "", &b, &[("prefer", "return=minimal")]).await;
        let resp = r.json();
        assert!(resp["entry"][0].get("resource").is_none());
        assert!(resp["entry"][0]["response"]["location"].is_string());
        let r = s.with_json("POST", "", &b, &[("prefer", "return=representation")]).await;
        assert_eq!(r.json()["entry"][0]["resource"]["resourceType"], "Patient");
    }
}

fhir_test! {
    async fn other_bundle_types_are_refused(s: &TestServer) {
        let r = s.post("", &json!({"resourceType": "Bundle", "type": "collection"})).await;
        assert_eq!(r.status, 400);
        let r = s.post("", &json!({"resourceType": "Patient"})).await;
        assert_eq!(r.status, 400);
    }
}

fhir_test! {
    async fn duplicate_full_urls_are_rejected(s: &TestServer) {
        let b = bundle("transaction", vec![
            entry("POST", "Patient", Some(json!({"resourceType": "Patient"})), Some("urn:uuid:aaaaaaaa-0000-0000-0000-000000000003")),
            entry("POST", "Patient", Some(json!({"resourceType": "Patient"})), Some("urn:uuid:aaaaaaaa-0000-0000-0000-000000000003")),
        ]);
        let r = s.post("", &b).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(total(s, "Patient").await, 0);
    }
}
