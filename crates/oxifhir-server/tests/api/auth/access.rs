//! Scope enforcement on FHIR requests under `--auth smart`: 401 without a valid token, 403
//! beyond the scopes (single interactions, system search, batch and transaction entries,
//! admin operations), and `--auth none` unchanged.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use super::*;
use crate::support::*;

fn patient() -> Value {
    json!({"resourceType": "Patient", "name": [{"family": "Chalmers"}]})
}

fn observation() -> Value {
    json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}})
}

/// A token signed with `secret` for `client_id`, expiring at `exp`.
fn forged(s: &TestServer, secret: &str, client_id: &str, exp: u64) -> String {
    let claims = json!({
        "iss": s.url(""), "sub": client_id, "aud": s.url(""), "exp": exp, "iat": now() - 1000,
        "jti": "x", "client_id": client_id, "scope": "system/*.*"
    });
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fhir_test! {
    options = smart();
    async fn no_or_bad_token_is_401_with_a_challenge(s: &TestServer) {
        let r = s.get("Patient").await;
        assert_eq!(r.status, 401, "{}", r.text());
        let challenge = r.header("www-authenticate").unwrap();
        assert!(challenge.starts_with("Bearer realm="), "{challenge}");
        assert!(!challenge.contains("error="), "no error code without a token: {challenge}");
        assert_eq!(r.json()["issue"][0]["code"], "login");
        assert!(outcome_text(&r).contains(&s.url("auth/token")));
        let r = s.post("Patient", &patient()).await;
        assert_eq!(r.status, 401);
        let r = as_client(s, "garbage", "GET", "Patient", None).await;
        assert_eq!(r.status, 401);
        assert!(r.header("www-authenticate").unwrap().contains("error=\"invalid_token\""));
        let r = as_client(s, &forged(s, "another-secret-another-secret-another", "writer", now() + 60), "GET", "Patient", None).await;
        assert_eq!(r.status, 401, "a token signed with another secret");
        let r = as_client(s, &forged(s, SECRET, "nobody", now() + 60), "GET", "Patient", None).await;
        assert_eq!(r.status, 401, "a token of an unregistered client");
        let r = as_client(s, &forged(s, SECRET, "writer", now() + 60), "GET", "Patient", None).await;
        assert_eq!(r.status, 200, "the forging helper makes tokens the server accepts: {}", r.text());
    }
}

fhir_test! {
    options = smart();
    async fn an_expired_token_is_401(s: &TestServer) {
        let r = as_client(s, &forged(s, SECRET, "writer", now() - 10), "GET", "Patient", None).await;
        assert_eq!(r.status, 401, "{}", r.text());
        let challenge = r.header("www-authenticate").unwrap();
        assert!(challenge.contains("error=\"invalid_token\"") && challenge.contains("expired"), "{challenge}");
        assert!(outcome_text(&r).contains("expired"));
    }
}

fhir_test! {
    options = smart();
    async fn reads_beyond_the_scopes_are_403(s: &TestServer) {
        let writer = token(s, "writer", &keys().ec, "system/*.*").await;
        let p = as_client(s, &writer, "POST", "Patient", Some(&patient())).await;
        assert_eq!(p.status, 201, "{}", p.text());
        let id = p.json()["id"].as_str().unwrap().to_string();
        let e = as_client(s, &writer, "POST", "Encounter", Some(&json!({"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"}}))).await;
        assert_eq!(e.status, 201, "{}", e.text());
        let eid = e.json()["id"].as_str().unwrap().to_string();

        let reader = token(s, "ec-client", &keys().ec, "system/Patient.read").await;
        assert_eq!(as_client(s, &reader, "GET", &format!("Patient/{id}"), None).await.status, 200);
        assert_eq!(as_client(s, &reader, "GET", &format!("Patient/{id}/_history"), None).await.status, 200);
        let r = as_client(s, &reader, "GET", &format!("Encounter/{eid}"), None).await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(r.json()["issue"][0]["code"], "forbidden");
        assert!(outcome_text(&r).contains("Encounter"), "{}", outcome_text(&r));
        assert_eq!(as_client(s, &reader, "GET", "Encounter", None).await.status, 403);
        // System-level search and history: all types, or only the types named in _type.
        assert_eq!(as_client(s, &reader, "GET", "", None).await.status, 403);
        assert_eq!(as_client(s, &reader, "GET", "_history", None).await.status, 403);
        assert_eq!(as_client(s, &reader, "GET", "?_type=Patient,Encounter", None).await.status, 403);
        let r = as_client(s, &reader, "GET", "?_type=Patient", None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let everything = token(s, "rsa-client", &keys().rsa, "system/*.read").await;
        let r = as_client(s, &everything, "GET", "", None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(as_client(s, &everything, "GET", "_history", None).await.status, 200);
    }
}

fhir_test! {
    options = smart();
    async fn writes_with_a_read_only_scope_are_403_and_change_nothing(s: &TestServer) {
        let reader = token(s, "rsa-client", &keys().rsa, "system/*.read").await;
        let r = as_client(s, &reader, "POST", "Patient", Some(&patient())).await;
        assert_eq!(r.status, 403, "{}", r.text());
        let writer = token(s, "writer", &keys().ec, "system/*.*").await;
        let created = as_client(s, &writer, "POST", "Patient", Some(&patient())).await.json();
        let id = created["id"].as_str().unwrap();
        let mut changed = created.clone();
        changed["active"] = json!(false);
        let put = as_client(s, &reader, "PUT", &format!("Patient/{id}"), Some(&changed)).await;
        assert_eq!(put.status, 403);
        assert_eq!(as_client(s, &reader, "DELETE", &format!("Patient/{id}"), None).await.status, 403);
        let all = as_client(s, &reader, "GET", "Patient?_summary=count", None).await.json();
        assert_eq!(all["total"], 1, "only the writer's Patient exists");
        let now = as_client(s, &reader, "GET", &format!("Patient/{id}"), None).await.json();
        assert_eq!(now["meta"]["versionId"], "1", "nothing changed");
    }
}

fhir_test! {
    options = smart();
    async fn v2_scopes_grant_letter_by_letter(s: &TestServer) {
        let v2 = token(s, "v2-client", &keys().ec, "system/Patient.cruds system/Observation.rs").await;
        let p = as_client(s, &v2, "POST", "Patient", Some(&patient())).await;
        assert_eq!(p.status, 201, "{}", p.text());
        let id = p.json()["id"].as_str().unwrap().to_string();
        assert_eq!(as_client(s, &v2, "POST", "Observation", Some(&observation())).await.status, 403);
        assert_eq!(as_client(s, &v2, "GET", "Observation?_count=5", None).await.status, 200);
        assert_eq!(as_client(s, &v2, "DELETE", &format!("Patient/{id}"), None).await.status, 204);
        // Asked for less than allowed: only search on Patient.
        let narrow = token(s, "v2-client", &keys().ec, "system/Patient.s").await;
        assert_eq!(as_client(s, &narrow, "GET", "Patient", None).await.status, 200);
        assert_eq!(as_client(s, &narrow, "GET", &format!("Patient/{id}"), None).await.status, 403);
    }
}

fhir_test! {
    options = smart();
    async fn batch_entries_are_checked_one_by_one_and_transactions_as_a_whole(s: &TestServer) {
        let v2 = token(s, "v2-client", &keys().ec, "system/Patient.cruds system/Observation.rs").await;
        let entries = json!([
            {"resource": patient(), "request": {"method": "POST", "url": "Patient"}},
            {"resource": observation(), "request": {"method": "POST", "url": "Observation"}}
        ]);
        let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": entries});
        let r = as_client(s, &v2, "POST", "", Some(&batch)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let b = r.json();
        assert_eq!(b["entry"][0]["response"]["status"], "201 Created");
        assert_eq!(b["entry"][1]["response"]["status"], "403 Forbidden");
        let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        let r = as_client(s, &v2, "POST", "", Some(&transaction)).await;
        assert_eq!(r.status, 403, "{}", r.text());
        let count = as_client(s, &v2, "GET", "Patient?_summary=count", None).await.json();
        assert_eq!(count["total"], 1, "only the batch's Patient was written");
        // A conditional reference needs search on the type it searches.
        let conditional = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": {"resourceType": "Patient", "generalPractitioner": [{"reference": "Practitioner?identifier=a|b"}]},
             "request": {"method": "POST", "url": "Patient"}}]});
        assert_eq!(as_client(s, &v2, "POST", "", Some(&conditional)).await.status, 403);
    }
}

fhir_test! {
    options = smart();
    async fn admin_operations_need_the_admin_flag(s: &TestServer) {
        let reader = token(s, "rsa-client", &keys().rsa, "system/*.read").await;
        let r = as_client(s, &reader, "POST", "$reindex", None).await;
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(outcome_text(&r).contains("administrator"));
        let r = as_client(s, &reader, "POST", "$expunge?expungeDeletedResources=true", None).await;
        assert_eq!(r.status, 403, "{}", r.text());
        let admin = token(s, "admin", &keys().ec, "system/*.rs").await;
        let r = as_client(s, &admin, "POST", "$reindex", None).await;
        assert_ne!(r.status, 403, "the admin passes the access check: {}", r.text());
        assert_ne!(r.status, 401);
        let r = as_client(s, &admin, "POST", "$expunge?expungeDeletedResources=true", None).await;
        assert_eq!(r.status, 200, "the admin may expunge: {}", r.text());
        assert_eq!(r.json()["parameter"][0]["name"], "count");
    }
}

fhir_test! {
    async fn auth_none_serves_everyone_and_has_no_smart_endpoints(s: &TestServer) {
        let created = s.create(&patient()).await;
        let id = created["id"].as_str().unwrap();
        assert_eq!(s.get(&format!("Patient/{id}")).await.status, 200);
        let r = s.get(".well-known/smart-configuration").await;
        assert_eq!(r.status, 404, "{}", r.text());
        assert!(outcome_text(&r).contains("--auth none"));
        assert_eq!(token_request(s, &[("grant_type", "client_credentials")]).await.status, 404);
        let m = s.get("metadata").await.json();
        assert!(m["rest"][0].get("security").is_none());
    }
}

fhir_test! {
    options = TestOptions { workers: 0, ..smart() };
    async fn jobs_belong_to_the_client_that_started_them(s: &TestServer) {
        let k = keys();
        let owner = token(s, "writer", &k.ec, "system/*.*").await;
        let other = token(s, "rsa-client", &k.rsa, "system/*.read").await;
        let bearer = format!("Bearer {owner}");
        let r = s.send("GET", "Patient", &[("authorization", bearer.as_str()), ("prefer", "respond-async")], None).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let status_url = r.header("content-location").unwrap();
        let id = status_url.rsplit('/').next().unwrap().to_string();
        // The owner sees its job.
        assert_eq!(as_client(s, &owner, "GET", &status_url, None).await.status, 202);
        assert_eq!(as_client(s, &owner, "GET", &format!("AsyncJob/{id}"), None).await.status, 200);
        // Another client does not: 404, it cannot cancel it, and its listing is empty.
        assert_eq!(as_client(s, &other, "GET", &status_url, None).await.status, 404);
        assert_eq!(as_client(s, &other, "GET", &format!("{status_url}/result"), None).await.status, 404);
        assert_eq!(as_client(s, &other, "GET", &format!("AsyncJob/{id}"), None).await.status, 404);
        assert_eq!(as_client(s, &other, "POST", &format!("AsyncJob/{id}/$cancel"), None).await.status, 404);
        assert_eq!(as_client(s, &other, "DELETE", &status_url, None).await.status, 400);
        assert_eq!(as_client(s, &other, "GET", "AsyncJob", None).await.json()["total"], 0);
        assert_eq!(as_client(s, &owner, "GET", "AsyncJob", None).await.json()["total"], 1);
        // The owner can.
        let r = as_client(s, &owner, "POST", &format!("AsyncJob/{id}/$cancel"), None).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
}
