//! create, read, vread, update, patch, delete, conditional interactions, HEAD, Prefer, and
//! the CapabilityStatement.

use crate::support::*;
use serde_json::json;

fn patient() -> serde_json::Value {
    json!({"resourceType": "Patient", "active": true, "name": [{"family": "Chalmers", "given": ["Peter"]}], "birthDate": "1974-12-25"})
}

fhir_test! {
    async fn create_then_read(s: &TestServer) {
        let r = s.post("Patient", &patient()).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let created = r.json();
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(created["meta"]["versionId"], "1");
        assert_eq!(r.header("etag").as_deref(), Some("W/\"1\""));
        assert_eq!(r.header("location"), Some(s.url(&format!("Patient/{id}/_history/1"))));
        assert!(r.header("last-modified").unwrap().ends_with("GMT"));
        assert!(r.header("content-type").unwrap().starts_with("application/fhir+json"));
        let read = s.get(&format!("Patient/{id}")).await;
        assert_eq!(read.status, 200);
        assert_eq!(read.body, r.body, "read returns the stored bytes");
        assert_eq!(read.header("etag").as_deref(), Some("W/\"1\""));
        let head = s.send("HEAD", &format!("Patient/{id}"), &[], None).await;
        assert_eq!(head.status, 200);
        assert!(head.body.is_empty());
        assert_eq!(head.header("etag").as_deref(), Some("W/\"1\""));
        assert_eq!(s.get("Patient/does-not-exist").await.status, 404);
    }
}

fhir_test! {
    async fn create_ignores_a_client_id(s: &TestServer) {
        let mut p = patient();
        p["id"] = json!("client-chosen");
        let created = s.create(&p).await;
        assert_ne!(created["id"], "client-chosen");
    }
}

fhir_test! {
    async fn update_versions_and_vread(s: &TestServer) {
        let created = s.create(&patient()).await;
        let id = created["id"].as_str().unwrap();
        let mut p = created.clone();
        p["active"] = json!(false);
        let r = s.put(&format!("Patient/{id}"), &p).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["meta"]["versionId"], "2");
        assert_eq!(r.header("etag").as_deref(), Some("W/\"2\""));
        let v1 = s.get(&format!("Patient/{id}/_history/1")).await;
        assert_eq!(v1.status, 200);
        assert_eq!(v1.json()["active"], true);
        let v2 = s.get(&format!("Patient/{id}/_history/2")).await;
        assert_eq!(v2.json()["active"], false);
        assert_eq!(s.get(&format!("Patient/{id}/_history/3")).await.status, 404);
    }
}

fhir_test! {
    async fn update_creates_with_the_client_id(s: &TestServer) {
        let mut p = patient();
        p["id"] = json!("pat-1");
        let r = s.put("Patient/pat-1", &p).await;
        assert_eq!(r.status, 201, "{}", r.text());
        assert_eq!(r.json()["id"], "pat-1");
        assert_eq!(s.get("Patient/pat-1").await.status, 200);
    }
}

fhir_test! {
    async fn update_rejects_mismatched_or_missing_ids(s: &TestServer) {
        let mut p = patient();
        p["id"] = json!("other");
        let r = s.put("Patient/pat-1", &p).await;
        assert_eq!(r.status, 400);
        assert!(outcome_text(&r).contains("differs"));
        let r = s.put("Patient/pat-1", &patient()).await;
        assert_eq!(r.status, 400);
        assert_eq!(s.get("Patient/pat-1").await.status, 404, "nothing stored");
    }
}

fhir_test! {
    async fn if_match_guards_updates(s: &TestServer) {
        let created = s.create(&patient()).await;
        let id = created["id"].as_str().unwrap();
        let path = format!("Patient/{id}");
        let r = s.with_json("PUT", &path, &created, &[("if-match", "W/\"2\"")]).await;
        assert_eq!(r.status, 412, "{}", r.text());
        let r = s.with_json("PUT", &path, &created, &[("if-match", "W/\"1\"")]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let r = s.with_json("PUT", &path, &created, &[("if-match", "W/\"1\"")]).await;
        assert_eq!(r.status, 412);
    }
}

fhir_test! {
    async fn concurrent_if_match_updates_exactly_one_wins(s: &TestServer) {
        let created = s.create(&patient()).await;
        let id = created["id"].as_str().unwrap().to_string();
        let mut tasks = Vec::new();
        for i in 0..10 {
            let client = s.client.clone();
            let url = s.url(&format!("Patient/{id}"));
            let mut body = created.clone();
            body["name"][0]["family"] = json!(format!("Writer{i}"));
            tasks.push(tokio::spawn(async move {
                client
                    .put(url)
                    .header("content-type", "application/fhir+json")
                    .header("if-match", "W/\"1\"")
                    .body(serde_json::to_vec(&body).unwrap())
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }));
        }
        let mut statuses = Vec::new();
        for t in tasks {
            statuses.push(t.await.unwrap());
        }
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
        assert!(statuses.iter().all(|s| *s == 200 || *s == 412), "{statuses:?}");
        let current = s.get(&format!("Patient/{id}")).await.json();
        assert_eq!(current["meta"]["versionId"], "2");
    }
}

fhir_test! {
    async fn delete_then_gone(s: &TestServer) {
        let created = s.create(&patient()).await;
        let id = created["id"].as_str().unwrap();
        let r = s.delete(&format!("Patient/{id}")).await;
        assert_eq!(r.status, 204);
        assert_eq!(r.header("etag").as_deref(), Some("W/\"2\""));
        let r = s.get(&format!("Patient/{id}")).await;
        assert_eq!(r.status, 410);
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
        assert_eq!(s.delete(&format!("Patient/{id}")).await.status, 204, "deleting again is idempotent");
        assert_eq!(s.get(&format!("Patient/{id}/_history/2")).await.status, 410);
        assert_eq!(s.get(&format!("Patient/{id}/_history/1")).await.status, 200);
        assert_eq!(s.delete("Patient/never-existed").await.status, 404);
        let mut again = created.clone();
        again["active"] = json!(false);
        let r = s.put(&format!("Patient/{id}"), &again).await;
        assert_eq!(r.status, 201, "an update after a delete re-creates: {}", r.text());
        assert_eq!(r.json()["meta"]["versionId"], "3");
    }
}

fhir_test! {
    async fn conditional_create(s: &TestServer) {
        let first = s.create(&patient()).await;
        let id = first["id"].as_str().unwrap();
        let r = s.with_json("POST", "Patient", &patient(), &[("if-none-exist", &format!("_id={id}"))]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["id"], id);
        let r = s.with_json("POST", "Patient", &patient(), &[("if-none-exist", "_id=nobody")]).await;
        assert_eq!(r.status, 201);
        let r = s.with_json("POST", "Patient", &patient(), &[("if-none-exist", "unsupported-param=1")]).await;
        assert_eq!(r.status, 400, "criteria that cannot be honoured are rejected: {}", r.text());
    }
}

fhir_test! {
    async fn conditional_update_and_delete(s: &TestServer) {
        let first = s.create(&patient()).await;
        let id = first["id"].as_str().unwrap();
        let mut p = patient();
        p["active"] = json!(false);
        let r = s.put(&format!("Patient?_id={id}"), &p).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["id"], id);
        assert_eq!(r.json()["meta"]["versionId"], "2");
        let r = s.put("Patient?_id=fresh-one", &p).await;
        assert_eq!(r.status, 201, "no match creates: {}", r.text());
        let second = s.create(&patient()).await;
        let both = format!("Patient?_id={id},{}", second["id"].as_str().unwrap());
        assert_eq!(s.put(&both, &p).await.status, 412);
        assert_eq!(s.delete(&both).await.status, 412);
        assert_eq!(s.delete(&format!("Patient?_id={id}")).await.status, 204);
        assert_eq!(s.get(&format!("Patient/{id}")).await.status, 410);
    }
}

fhir_test! {
    async fn json_patch(s: &TestServer) {
        let created = s.create(&patient()).await;
        let id = created["id"].as_str().unwrap();
        let patch = json!([{"op": "replace", "path": "/active", "value": false}]);
        let r = s
            .send("PATCH", &format!("Patient/{id}"), &[("content-type", "application/json-patch+json")], Some(serde_json::to_vec(&patch).unwrap()))
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["active"], false);
        assert_eq!(r.json()["meta"]["versionId"], "2");
        let bad = json!([{"op": "replace", "path": "/active", "value": "maybe"}]);
        let r = s
            .send("PATCH", &format!("Patient/{id}"), &[("content-type", "application/json-patch+json")], Some(serde_json::to_vec(&bad).unwrap()))
            .await;
        assert_eq!(r.status, 400, "a patch producing invalid R4 is rejected: {}", r.text());
    }
}

fhir_test! {
    async fn prefer_return(s: &TestServer) {
        let r = s.with_json("POST", "Patient", &patient(), &[("prefer", "return=minimal")]).await;
        assert_eq!(r.status, 201);
        assert!(r.body.is_empty());
        assert!(r.header("location").is_some());
        let r = s.with_json("POST", "Patient", &patient(), &[("prefer", "return=OperationOutcome")]).await;
        assert_eq!(r.status, 201);
        assert_eq!(r.json()["resourceType"], "OperationOutcome");
        let r = s.with_json("POST", "Patient", &patient(), &[("prefer", "return=representation")]).await;
        assert_eq!(r.json()["resourceType"], "Patient");
    }
}

fhir_test! {
    async fn decimals_keep_their_precision(s: &TestServer) {
        let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": 1.50, "unit": "mg"}});
        let body = serde_json::to_vec(&obs).unwrap();
        let text = String::from_utf8(body.clone()).unwrap().replace("1.5", "1.50");
        let r = s.send("POST", "Observation", &[("content-type", "application/fhir+json")], Some(text.into_bytes())).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let id = r.json()["id"].as_str().unwrap().to_string();
        let read = s.get(&format!("Observation/{id}")).await;
        assert!(read.text().contains("\"value\":1.50"), "{}", read.text());
    }
}

fhir_test! {
    async fn capability_statement(s: &TestServer) {
        let r = s.get("metadata").await;
        assert_eq!(r.status, 200);
        let cs = r.json();
        assert_eq!(cs["resourceType"], "CapabilityStatement");
        assert_eq!(cs["fhirVersion"], "4.0.1");
        let resources = cs["rest"][0]["resource"].as_array().unwrap();
        assert!(resources.len() > 140, "every R4 type is listed");
        let patient = resources.iter().find(|r| r["type"] == "Patient").unwrap();
        let codes: Vec<&str> = patient["interaction"].as_array().unwrap().iter().map(|i| i["code"].as_str().unwrap()).collect();
        assert!(codes.contains(&"read") && codes.contains(&"search-type") && codes.contains(&"history-instance"));
        let params: Vec<&str> = patient["searchParam"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert!(params.contains(&"_id") && params.contains(&"_lastUpdated"));
        assert_eq!(cs["implementation"]["url"], s.base);
    }
}
