//! The token endpoint: discovery, RS384 and ES384 assertions, and each way an assertion is
//! refused, with the OAuth error and status SMART Backend Services gives.

use serde_json::json;

use super::*;
use crate::support::*;

fhir_test! {
    options = smart();
    async fn discovery_and_metadata_are_public(s: &TestServer) {
        let r = s.get(".well-known/smart-configuration").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(r.header("content-type").unwrap().starts_with("application/json"));
        let c = r.json();
        assert_eq!(c["token_endpoint"], s.url("auth/token"));
        assert_eq!(c["grant_types_supported"], json!(["client_credentials"]));
        assert_eq!(c["token_endpoint_auth_methods_supported"], json!(["private_key_jwt"]));
        assert_eq!(c["token_endpoint_auth_signing_alg_values_supported"], json!(["RS384", "ES384"]));
        assert!(c["capabilities"].as_array().unwrap().contains(&json!("client-confidential-asymmetric")));
        assert!(c["scopes_supported"].as_array().unwrap().contains(&json!("system/*.read")));
        let m = s.get("metadata").await;
        assert_eq!(m.status, 200, "{}", m.text());
        let security = &m.json()["rest"][0]["security"];
        assert_eq!(security["service"][0]["coding"][0]["code"], "SMART-on-FHIR");
        assert_eq!(security["extension"][0]["extension"][0]["valueUri"], s.url("auth/token"));
    }
}

fhir_test! {
    options = smart();
    async fn rs384_and_es384_assertions_get_tokens(s: &TestServer) {
        let k = keys();
        for (client, key, scope) in [
            ("rsa-client", &k.rsa, "system/*.read"),
            ("ec-client", &k.ec, "system/Patient.read"),
        ] {
            let r = request_token(s, &sign(&claims(s, client), key), scope).await;
            assert_eq!(r.status, 200, "{client}: {}", r.text());
            assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
            let body = r.json();
            assert_eq!(body["token_type"], "bearer");
            assert_eq!(body["expires_in"], 300);
            assert_eq!(body["scope"], scope);
            let token = body["access_token"].as_str().unwrap();
            let read = as_client(s, token, "GET", "Patient?_count=1", None).await;
            assert_eq!(read.status, 200, "{client} searches with its token: {}", read.text());
        }
    }
}

fhir_test! {
    options = smart();
    async fn a_replayed_assertion_is_refused(s: &TestServer) {
        let assertion = sign(&claims(s, "ec-client"), &keys().ec);
        assert_eq!(request_token(s, &assertion, "system/Patient.read").await.status, 200);
        let again = request_token(s, &assertion, "system/Patient.read").await;
        assert_eq!(again.status, 401, "{}", again.text());
        assert_eq!(oauth_error(&again), "invalid_client");
        assert!(again.json()["error_description"].as_str().unwrap().contains("jti"));
    }
}

fhir_test! {
    options = smart();
    async fn expired_and_far_future_assertions_are_refused(s: &TestServer) {
        let mut expired = claims(s, "ec-client");
        expired["exp"] = json!(now() - 600);
        let r = request_token(s, &sign(&expired, &keys().ec), "system/Patient.read").await;
        assert_eq!((r.status, oauth_error(&r)), (401, "invalid_client".to_string()), "{}", r.text());
        assert!(r.text().contains("expired"), "{}", r.text());
        let mut far = claims(s, "ec-client");
        far["exp"] = json!(now() + 3600);
        let r = request_token(s, &sign(&far, &keys().ec), "system/Patient.read").await;
        assert_eq!((r.status, oauth_error(&r)), (401, "invalid_client".to_string()), "{}", r.text());
        let mut no_jti = claims(s, "ec-client");
        no_jti.as_object_mut().unwrap().remove("jti");
        let r = request_token(s, &sign(&no_jti, &keys().ec), "system/Patient.read").await;
        assert_eq!((r.status, oauth_error(&r)), (401, "invalid_client".to_string()), "{}", r.text());
    }
}

fhir_test! {
    options = smart();
    async fn a_wrong_audience_or_subject_is_refused(s: &TestServer) {
        let mut wrong_aud = claims(s, "ec-client");
        wrong_aud["aud"] = json!(s.url(""));
        let r = request_token(s, &sign(&wrong_aud, &keys().ec), "system/Patient.read").await;
        assert_eq!((r.status, oauth_error(&r)), (401, "invalid_client".to_string()), "{}", r.text());
        assert!(r.text().contains("aud"), "{}", r.text());
        let mut wrong_sub = claims(s, "ec-client");
        wrong_sub["sub"] = json!("writer");
        let r = request_token(s, &sign(&wrong_sub, &keys().ec), "system/Patient.read").await;
        assert_eq!((r.status, oauth_error(&r)), (401, "invalid_client".to_string()), "{}", r.text());
    }
}

fhir_test! {
    options = smart();
    async fn a_wrong_key_or_unknown_client_is_refused(s: &TestServer) {
        let k = keys();
        // Same kid, different key: the signature does not verify.
        let r = request_token(s, &sign(&claims(s, "ec-client"), &k.stranger), "system/Patient.read").await;
        assert_eq!((r.status, oauth_error(&r)), (401, "invalid_client".to_string()), "{}", r.text());
        assert!(r.text().contains("signature"), "{}", r.text());
        // The RSA key is registered, but for another client.
        let r = request_token(s, &sign(&claims(s, "ec-client"), &k.rsa), "system/Patient.read").await;
        assert_eq!((r.status, oauth_error(&r)), (401, "invalid_client".to_string()), "{}", r.text());
        let r = request_token(s, &sign(&claims(s, "nobody"), &k.ec), "system/Patient.read").await;
        assert_eq!((r.status, oauth_error(&r)), (401, "invalid_client".to_string()), "{}", r.text());
        assert!(r.text().contains("unknown client"), "{}", r.text());
        let r = request_token(s, "not-a-jwt", "system/Patient.read").await;
        assert_eq!((r.status, oauth_error(&r)), (401, "invalid_client".to_string()), "{}", r.text());
    }
}

fhir_test! {
    options = smart();
    async fn malformed_token_requests(s: &TestServer) {
        let assertion = sign(&claims(s, "ec-client"), &keys().ec);
        let jwt_bearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
        let r = token_request(s, &[("grant_type", "password"), ("client_assertion_type", jwt_bearer),
            ("client_assertion", &assertion), ("scope", "system/Patient.read")]).await;
        assert_eq!((r.status, oauth_error(&r)), (400, "unsupported_grant_type".to_string()), "{}", r.text());
        let r = token_request(s, &[("grant_type", "client_credentials"), ("client_assertion_type", jwt_bearer),
            ("scope", "system/Patient.read")]).await;
        assert_eq!((r.status, oauth_error(&r)), (400, "invalid_request".to_string()), "{}", r.text());
        let r = token_request(s, &[("grant_type", "client_credentials"), ("client_assertion_type", "other"),
            ("client_assertion", &assertion), ("scope", "system/Patient.read")]).await;
        assert_eq!((r.status, oauth_error(&r)), (400, "invalid_request".to_string()), "{}", r.text());
        let r = s.send("POST", "auth/token", &[("content-type", "application/json")], Some(b"{}".to_vec())).await;
        assert_eq!((r.status, oauth_error(&r)), (400, "invalid_request".to_string()), "{}", r.text());
        let r = s.get("auth/token").await;
        assert_eq!((r.status, oauth_error(&r)), (400, "invalid_request".to_string()), "{}", r.text());
    }
}

fhir_test! {
    options = smart();
    async fn the_granted_scopes_are_the_intersection(s: &TestServer) {
        let ec = &keys().ec;
        let r = request_token(s, &sign(&claims(s, "ec-client"), ec),
            "system/Patient.read system/Encounter.read openid").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["scope"], "system/Patient.read");
        let r = request_token(s, &sign(&claims(s, "ec-client"), ec), "system/*.read").await;
        assert_eq!(r.json()["scope"], "system/Patient.read system/Observation.rs");
        let r = request_token(s, &sign(&claims(s, "ec-client"), ec), "system/*.*").await;
        assert_eq!(r.json()["scope"], "system/Patient.read system/Observation.rs");
        let r = request_token(s, &sign(&claims(s, "ec-client"), ec), "system/Encounter.read system/*.write").await;
        assert_eq!((r.status, oauth_error(&r)), (400, "invalid_scope".to_string()), "{}", r.text());
    }
}
