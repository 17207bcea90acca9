//! Export files under `--auth smart`: the manifest says a token is required, and a file is
//! served only on the bearer token of the client that started the export.

use std::time::Duration;

use crate::auth::{as_client, keys, smart, token};
use crate::support::*;
use serde_json::json;

fhir_test! {
    options = smart();
    async fn files_need_the_token_of_their_client(s: &TestServer) {
        let k = keys();
        let writer = token(s, "writer", &k.ec, "system/*.*").await;
        let r = as_client(s, &writer, "POST", "Patient", Some(&json!({"resourceType": "Patient"}))).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let owner = token(s, "rsa-client", &k.rsa, "system/*.read").await;
        let other = token(s, "ec-client", &k.ec, "system/Patient.read").await;
        let bearer = format!("Bearer {owner}");
        let r = s.send("GET", "$export?_type=Patient", &[("prefer", "respond-async"), ("authorization", &bearer)], None).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let status = r.header("content-location").expect("status url");
        let manifest = loop {
            let r = as_client(s, &owner, "GET", &status, None).await;
            if r.status == 200 {
                break r.json();
            }
            assert_eq!(r.status, 202, "{}", r.text());
            tokio::time::sleep(Duration::from_millis(1100)).await;
        };
        assert_eq!(manifest["requiresAccessToken"], true);
        let url = manifest["output"][0]["url"].as_str().expect("file url").to_string();
        let r = s.get(&url).await;
        assert_eq!(r.status, 401, "no token: {}", r.text());
        assert!(r.header("www-authenticate").is_some());
        let r = as_client(s, &other, "GET", &url, None).await;
        assert_eq!(r.status, 404, "another client's file: {}", r.text());
        let r = as_client(s, &owner, "GET", &url, None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.text().lines().count(), 1);
    }
}
