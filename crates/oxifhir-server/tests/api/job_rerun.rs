//! A job run again after its first run committed (its worker died before recording the end)
//! must not write twice: the creates of an asynchronous batch or transaction get their ids at
//! kick-off, and a second run finds what the first created.

use crate::support::*;
use oxifhir_server::FhirRequest;
use serde_json::{Value, json};

/// `resourceType/id` of each entry's `response.location`.
fn locations(body: &[u8]) -> Vec<String> {
    let bundle: Value = serde_json::from_slice(body).expect("bundle");
    bundle["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            let location = e["response"]["location"].as_str().expect("location");
            location
                .split("/_history")
                .next()
                .expect("path")
                .to_string()
        })
        .collect()
}

fhir_test! {
    options = TestOptions { workers: 0, ..TestOptions::default() };
    async fn an_async_bundle_run_twice_creates_once(s: &TestServer) {
        for bundle_type in ["transaction", "batch"] {
            let marker = format!("rerun-{bundle_type}");
            let meta = json!({"tag": [{"system": "urn:test", "code": marker}]});
            let patient = "urn:uuid:3c5d5d59-94a6-4bd5-a1b9-5d1f0c0a6b8e";
            let subject = if bundle_type == "transaction" {
                json!({"reference": patient})
            } else {
                json!({"display": "none"})
            };
            let bundle = json!({"resourceType": "Bundle", "type": bundle_type, "entry": [
                {"fullUrl": patient, "resource": {"resourceType": "Patient", "meta": meta},
                 "request": {"method": "POST", "url": "Patient"}},
                {"resource": {"resourceType": "Observation", "meta": meta, "status": "final",
                    "code": {"text": "x"}, "subject": subject},
                 "request": {"method": "POST", "url": "Observation"}},
            ]});
            let r = s.with_json("POST", "", &bundle, &[("prefer", "respond-async")]).await;
            assert_eq!(r.status, 202, "{}", r.text());
            let id = r.header("content-location").expect("status").rsplit('/').next().expect("id").to_string();
            let job = s.store.jobs().job(&id).await.expect("job").expect("exists");
            let request: FhirRequest = serde_json::from_slice(&job.input).expect("stored request");
            let first = s.server.dispatch(request.clone()).await;
            assert_eq!(first.status, 200, "{}", String::from_utf8_lossy(&first.body));
            let again = s.server.dispatch(request).await;
            assert_eq!(again.status, 200, "{}", String::from_utf8_lossy(&again.body));
            assert_eq!(locations(&first.body), locations(&again.body), "{bundle_type}: the same resources");
            let found = s.get(&format!("?_type=Patient,Observation&_tag=urn:test|{marker}&_summary=count")).await;
            assert_eq!(found.json()["total"], 2, "{bundle_type}: created once");
        }
        // A synchronous bundle is not affected: each POST creates.
        let bundle = json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}]});
        let a = s.with_json("POST", "", &bundle, &[]).await;
        let b = s.with_json("POST", "", &bundle, &[]).await;
        assert_ne!(locations(&a.body), locations(&b.body));
    }
}
