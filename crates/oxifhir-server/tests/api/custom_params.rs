//! Custom `SearchParameter` resources: validated on write, used to index every later write
//! (single, batch and transaction), listed in the CapabilityStatement, searchable, warned
//! about until older data is reindexed, kept across restarts, dropped when retired.

use crate::support::*;

use oxifhir_server::repository;
use oxifhir_server::{FhirRequest, Method};
use oxifhir_store::{Isolation, SearchQuery};
use serde_json::{Value, json};

const URL: &str = "http://example.org/SearchParameter/patient-eye-colour";

fn eye_colour(status: &str) -> Value {
    json!({
        "resourceType": "SearchParameter", "id": "eye-colour", "url": URL,
        "name": "EyeColour", "status": status, "description": "Eye colour",
        "code": "eye-colour", "base": ["Patient"], "type": "token",
        "expression": "Patient.extension('http://example.org/eye-colour').value"
    })
}

fn patient(id: &str, colour: &str) -> Value {
    json!({"resourceType": "Patient", "id": id,
        "extension": [{"url": "http://example.org/eye-colour", "valueCode": colour}]})
}

async fn put(s: &TestServer, body: &Value) -> Reply {
    let path = format!(
        "{}/{}",
        body["resourceType"].as_str().unwrap(),
        body["id"].as_str().unwrap()
    );
    s.put(&path, body).await
}

/// Match ids and warning texts of a search.
async fn search(s: &TestServer, path: &str) -> (Vec<String>, Vec<String>) {
    let r = s.get(path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    let b = r.json();
    let entries = b["entry"].as_array().cloned().unwrap_or_default();
    let ids = entries
        .iter()
        .filter(|e| e["search"]["mode"] == "match")
        .map(|e| e["resource"]["id"].as_str().unwrap().to_string())
        .collect();
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

fn listed(statement: &Value, code: &str) -> bool {
    statement["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Patient")
        .unwrap()["searchParam"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["name"] == code)
}

fhir_test! {
    async fn custom_parameters_index_later_writes_at_once(s: &TestServer) {
        // On an empty database nothing needs reindexing: no warning at all.
        assert_eq!(put(s, &eye_colour("active")).await.status, 201);
        assert!(listed(&s.get("metadata").await.json(), "eye-colour"));
        assert_eq!(put(s, &patient("p1", "blue")).await.status, 201);
        assert_eq!(put(s, &patient("p2", "brown")).await.status, 201);
        let bundle = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": patient("p3", "blue"), "request": {"method": "PUT", "url": "Patient/p3"}}]});
        assert_eq!(s.post("", &bundle).await.status, 200);
        let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
            {"resource": patient("p4", "blue"), "request": {"method": "PUT", "url": "Patient/p4"}}]});
        assert_eq!(s.post("", &batch).await.status, 200);
        let (ids, warnings) = search(s, "Patient?eye-colour=blue").await;
        assert_eq!(ids, ["p1", "p3", "p4"]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(search(s, "Patient?eye-colour:not=blue").await.0, ["p2"]);
        assert_eq!(search(s, "Patient?_sort=-eye-colour,_id").await.0, ["p2", "p1", "p3", "p4"]);
        // Conditional interactions use the same parser.
        let r = s.with_json("POST", "Patient", &patient("x", "green"), &[("if-none-exist", "eye-colour=brown")]).await;
        assert_eq!(r.status, 200, "p2 already matches");
        assert_eq!(r.json()["id"], "p2");

        // After a restart the parameter is loaded from the database.
        let restarted = s.restarted();
        let reply = restarted.dispatch(FhirRequest::new(Method::Get, "Patient?eye-colour=brown")).await;
        assert_eq!(reply.status, 200);
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["entry"][0]["resource"]["id"], "p2");

        // Retired, it is not used any more.
        assert_eq!(put(s, &eye_colour("retired")).await.status, 200);
        assert!(!listed(&s.get("metadata").await.json(), "eye-colour"));
        let r = s.send("GET", "Patient?eye-colour=blue", &[("prefer", "handling=strict")], None).await;
        assert_eq!(r.status, 400);
        let (ids, warnings) = search(s, "Patient?eye-colour=blue").await;
        assert_eq!(ids.len(), 4, "the parameter is ignored");
        assert!(warnings.iter().any(|w| w.contains("eye-colour")), "{warnings:?}");
    }
}

fhir_test! {
    async fn older_data_warns_until_reindexed(s: &TestServer) {
        assert_eq!(put(s, &patient("old", "blue")).await.status, 201);
        assert_eq!(put(s, &eye_colour("active")).await.status, 201);
        assert_eq!(put(s, &patient("new", "blue")).await.status, 201);
        let (ids, warnings) = search(s, "Patient?eye-colour=blue").await;
        assert_eq!(ids, ["new"], "the older patient is not indexed yet");
        assert!(warnings.iter().any(|w| w.contains("not yet indexed")), "{warnings:?}");
        let statement = s.get("metadata").await.json();
        assert!(listed(&statement, "eye-colour"));

        // What $reindex does: re-extract every resource with the current parameters, then
        // mark the parameter indexed.
        let params = s.server.search_params().await.expect("params");
        let page = s
            .store
            .search(&SearchQuery { resource_types: vec!["Patient".into()], count: 100, ..Default::default() })
            .await
            .expect("patients");
        let mut tx = s.store.begin(Isolation::Serializable).await.expect("begin");
        for version in &page.resources {
            let entries = repository::reindex(tx.as_mut(), &params, version).await.ok().flatten();
            assert!(entries.is_some_and(|n| n > 0), "{}", version.id);
        }
        tx.commit().await.expect("commit");
        assert!(s.server.mark_search_param_indexed(URL).await.expect("mark"));
        assert!(!s.server.mark_search_param_indexed("http://example.org/nope").await.expect("no such"));

        let (ids, warnings) = search(s, "Patient?eye-colour=blue").await;
        assert_eq!(ids, ["new", "old"]);
        assert!(warnings.is_empty(), "{warnings:?}");
        // The mark survives a restart; a changed definition is not indexed any more.
        let restarted = s.restarted();
        let reply = restarted.dispatch(FhirRequest::new(Method::Get, "Patient?eye-colour=blue")).await;
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(body["total"], 2);
        assert!(body["entry"].as_array().unwrap().iter().all(|e| e["search"]["mode"] == "match"));
        let mut changed = eye_colour("active");
        changed["expression"] = json!("Patient.extension('http://example.org/eye-color').value");
        assert_eq!(put(s, &changed).await.status, 200);
        let (_, warnings) = search(s, "Patient?eye-colour=blue").await;
        assert!(warnings.iter().any(|w| w.contains("not yet indexed")), "{warnings:?}");
    }
}

fhir_test! {
    async fn unusable_search_parameters_are_rejected(s: &TestServer) {
        let mut bad = eye_colour("active");
        bad["expression"] = json!("Patient.extension.value + 1");
        let r = put(s, &bad).await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert!(outcome_text(&r).contains("not supported"), "{}", r.text());
        let mut taken = eye_colour("active");
        taken["code"] = json!("name");
        assert_eq!(put(s, &taken).await.status, 400);
        let mut composite = eye_colour("active");
        composite["type"] = json!("composite");
        assert_eq!(put(s, &composite).await.status, 400);
        let mut no_base = eye_colour("active");
        no_base["base"] = json!(["Nope"]);
        assert_eq!(put(s, &no_base).await.status, 400);
        // A draft is stored as it is; R4's own definitions are accepted and change nothing.
        bad["status"] = json!("draft");
        assert_eq!(put(s, &bad).await.status, 201);
        let core = json!({"resourceType": "SearchParameter", "id": "core",
            "url": "http://hl7.org/fhir/SearchParameter/Patient-name", "name": "name",
            "status": "active", "description": "x", "code": "name", "base": ["Patient"],
            "type": "string", "expression": "Patient.name"});
        assert_eq!(put(s, &core).await.status, 201);
        assert_eq!(s.get("Patient?name=x").await.status, 200);
    }
}
