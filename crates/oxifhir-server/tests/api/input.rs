//! Input handling: every bad request is a clear 4xx OperationOutcome and changes nothing.

use crate::support::*;
use serde_json::json;

async fn patient_count(s: &TestServer) -> u64 {
    let r = s.get("Patient?_summary=count").await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["total"].as_u64().unwrap()
}

async fn assert_rejected(s: &TestServer, reply: Reply, status: u16) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.json()["resourceType"], "OperationOutcome");
    assert_eq!(patient_count(s).await, 0, "nothing was stored");
}

fhir_test! {
    async fn malformed_json(s: &TestServer) {
        let r = s.send("POST", "Patient", &[("content-type", "application/fhir+json")], Some(b"{\"resourceType\": \"Patient\",".to_vec())).await;
        assert!(outcome_text(&r).contains("Malformed JSON"));
        assert_rejected(s, r, 400).await;
    }
}

fhir_test! {
    async fn resource_type_mismatch_and_unknown_types(s: &TestServer) {
        let r = s.post("Patient", &json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})).await;
        assert!(outcome_text(&r).contains("does not match"));
        assert_rejected(s, r, 400).await;
        let r = s.post("Foo", &json!({"resourceType": "Foo"})).await;
        assert!(outcome_text(&r).contains("Unknown resource type"));
        assert_rejected(s, r, 400).await;
        let r = s.get("Foo/1").await;
        assert_rejected(s, r, 400).await;
    }
}

fhir_test! {
    async fn invalid_ids(s: &TestServer) {
        let r = s.put("Patient/bad_id", &json!({"resourceType": "Patient", "id": "bad_id"})).await;
        assert_rejected(s, r, 400).await;
        let long = "a".repeat(65);
        let r = s.put(&format!("Patient/{long}"), &json!({"resourceType": "Patient", "id": long})).await;
        assert_rejected(s, r, 400).await;
    }
}

fhir_test! {
    async fn schema_violations_name_their_paths(s: &TestServer) {
        let r = s.post("Patient", &json!({"resourceType": "Patient", "active": "yes", "foo": 1})).await;
        let body = r.json();
        let expressions: Vec<String> = body["issue"].as_array().unwrap().iter()
            .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
            .map(|e| e.as_str().unwrap().to_string())
            .collect();
        assert!(expressions.iter().any(|e| e.contains("active")), "{body}");
        assert_rejected(s, r, 400).await;
        let r = s.post("Patient", &json!({"resourceType": "Patient", "birthDate": "1990-13-45"})).await;
        assert_rejected(s, r, 400).await;
    }
}

fhir_test! {
    async fn oversized_bodies_are_413(s: &TestServer) {
        let big = "x".repeat(2 * 1024 * 1024);
        let body = json!({"resourceType": "Patient", "name": [{"text": big}]});
        let r = s.post("Patient", &body).await;
        assert_rejected(s, r, 413).await;
    }
}

fhir_test! {
    async fn media_types(s: &TestServer) {
        let body = serde_json::to_vec(&json!({"resourceType": "Patient"})).unwrap();
        let r = s.send("POST", "Patient", &[("content-type", "application/fhir+xml")], Some(body.clone())).await;
        assert_rejected(s, r, 415).await;
        let r = s.send("GET", "metadata", &[("accept", "application/fhir+xml")], None).await;
        assert_eq!(r.status, 406);
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
        let r = s.send("GET", "metadata?_format=xml", &[], None).await;
        assert_eq!(r.status, 406);
        let r = s.send("GET", "metadata", &[("accept", "application/json")], None).await;
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap().starts_with("application/json"));
        let r = s.send("GET", "metadata?_format=json&_pretty=true", &[], None).await;
        assert!(r.text().contains("\n  \"resourceType\""), "pretty-printed");
        let r = s.send("POST", "Patient", &[("content-type", "application/json")], Some(body)).await;
        assert_eq!(r.status, 201, "application/json bodies are accepted");
    }
}

fhir_test! {
    async fn deep_nesting_is_rejected(s: &TestServer) {
        let mut text = String::from("{\"resourceType\":\"Patient\",\"extension\":");
        for _ in 0..5000 {
            text.push('[');
        }
        let r = s.send("POST", "Patient", &[("content-type", "application/fhir+json")], Some(text.into_bytes())).await;
        assert_rejected(s, r, 400).await;
    }
}

fhir_test! {
    async fn server_managed_types_refuse_client_writes(s: &TestServer) {
        let r = s.post("AsyncJob", &json!({"resourceType": "AsyncJob", "status": "accepted"})).await;
        assert_eq!(r.status, 405, "{}", r.text());
    }
}
