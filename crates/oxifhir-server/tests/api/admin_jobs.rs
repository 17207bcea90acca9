//! The jobs page (`/_admin/jobs`): its public HTML shell and assets, and its data
//! (`/_admin/api/jobs[/{id}]`) — every kind of job with status, progress and output, newest
//! first, released jobs gone, unknown ids `404`, and with `--auth smart` a token required and
//! only the caller's own jobs shown.

use std::time::Duration;

use crate::auth::{as_client, keys, smart};
use crate::support::*;
use oxifhir_server::ExportConfig;
use serde_json::{Value, json};

/// `http://host:port` of the server (the jobs page lives outside the FHIR base).
fn root(s: &TestServer) -> String {
    s.base.trim_end_matches("/fhir").to_string()
}

fn admin(s: &TestServer, path: &str) -> String {
    format!("{}/_admin/{path}", root(s))
}

/// Kicks off `GET path` asynchronously with `headers`; returns the job id.
async fn kickoff(s: &TestServer, path: &str, headers: &[(&str, &str)]) -> String {
    let status_url = crate::asynchronous::kickoff(s, "GET", path, headers, None).await;
    status_url.rsplit('/').next().expect("id").to_string()
}

/// The listing's entry for job `id` (panics when it is not listed).
fn entry<'a>(listing: &'a Value, id: &str) -> &'a Value {
    listing["jobs"]
        .as_array()
        .expect("jobs")
        .iter()
        .find(|j| j["id"] == id)
        .unwrap_or_else(|| panic!("job {id} not listed: {listing}"))
}

/// Reads the listing until `done` holds for it (at most about 30 s).
async fn listing_until(s: &TestServer, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..600 {
        let r = s.get(&admin(s, "api/jobs")).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let listing = r.json();
        if done(&listing) {
            return listing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the listing never reached the expected state");
}

fn final_state(listing: &Value, id: &str) -> bool {
    listing["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|j| j["id"] == id && j["status"] != "accepted")
}

fhir_test! {
    async fn the_page_and_its_assets_are_served(s: &TestServer) {
        let r = s.get(&admin(s, "jobs")).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type").as_deref(), Some("text/html; charset=utf-8"));
        let csp = r.header("content-security-policy").expect("csp");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(r.text().contains("/_admin/assets/admin.js"), "{}", r.text());
        let r = s.get(&admin(s, "jobs/some-job")).await;
        assert_eq!(r.status, 200);
        assert!(r.text().contains("id=\"job\""));
        let r = s.get(&admin(s, "assets/admin.js")).await;
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap_or_default().starts_with("text/javascript"));
        assert!(r.text().contains("api/jobs"));
        let r = s.get(&admin(s, "assets/admin.css")).await;
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap_or_default().starts_with("text/css"));
        let r = s.get(&format!("{}/_admin", root(s))).await;
        assert_eq!(r.status, 303);
        assert_eq!(r.header("location").as_deref(), Some("/_admin/jobs"));
        // The FHIR API is unchanged beside it.
        assert_eq!(s.get("metadata").await.status, 200);
    }
}

fhir_test! {
    async fn every_kind_of_job_is_listed_with_status_progress_and_output(s: &TestServer) {
        s.create(&json!({"resourceType": "Patient", "id": "x"})).await;
        s.put("Patient/p1", &json!({"resourceType": "Patient", "id": "p1"})).await;
        let search = kickoff(s, "Patient?_count=5", &[]).await;
        let export = kickoff(s, "$export?_type=Patient", &[]).await;
        let listing = listing_until(s, |l| final_state(l, &search) && final_state(l, &export)).await;
        assert_eq!(listing["auth"], "none");
        assert_eq!(listing["fhirBase"], s.base);
        // Newest request first.
        let ids: Vec<&str> = listing["jobs"].as_array().unwrap().iter().map(|j| j["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [export.as_str(), search.as_str()]);

        let job = entry(&listing, &search);
        assert_eq!(job["kind"], "interaction");
        assert_eq!(job["method"], "GET");
        assert_eq!(job["request"], s.url("Patient?_count=5"));
        assert_eq!(job["status"], "completed");
        assert_eq!(job["state"], "completed");
        assert_eq!(job["percent"], 100.0);
        assert_eq!(job["statusUrl"], s.url(&format!("_async/{search}")));
        assert_eq!(job["page"], format!("/_admin/jobs/{search}"));
        assert!(job["startedTime"].is_string() && job["finishedTime"].is_string(), "{job}");
        assert!(job["elapsedSeconds"].as_f64().is_some(), "{job}");
        assert_eq!(job["files"], json!([]));

        let job = entry(&listing, &export);
        assert_eq!(job["kind"], "export");
        assert_eq!(job["status"], "completed");
        assert_eq!(job["progress"], "Exported 2 resources");
        assert_eq!(job["counts"], json!({"done": 2, "total": null, "unit": "resources"}));
        let files = job["files"].as_array().expect("files");
        assert_eq!(files.len(), 1, "{job}");
        assert_eq!(files[0]["list"], "output");
        assert_eq!(files[0]["type"], "Patient");
        assert_eq!(files[0]["count"], 2);
        // The links are the manifest's, and they download.
        let file_url = files[0]["url"].as_str().expect("url").to_string();
        let r = s.get(&file_url).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text().lines().count(), 2);

        // Details: the output is what the result URL answers.
        let r = s.get(&admin(s, &format!("api/jobs/{export}"))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("cache-control").as_deref(), Some("no-store"));
        let detail = r.json();
        assert_eq!(detail["id"], export.as_str());
        assert_eq!(detail["attempt"], 1);
        assert!(detail["transactionTime"].is_string(), "{detail}");
        assert_eq!(detail["output"]["status"], 200);
        assert_eq!(detail["output"]["url"], s.url(&format!("_async/{export}/result")));
        assert_eq!(detail["output"]["body"]["output"][0]["url"], file_url.as_str());
        let r = s.get(&admin(s, &format!("api/jobs/{search}"))).await;
        let detail = r.json();
        assert_eq!(detail["output"]["status"], 200);
        assert_eq!(detail["output"]["body"]["resourceType"], "Bundle");
        assert_eq!(detail["output"]["body"]["type"], "searchset");

        // The status filter.
        let r = s.get(&admin(s, "api/jobs?status=accepted")).await;
        assert_eq!(r.json()["jobs"], json!([]));
        let r = s.get(&admin(s, "api/jobs?status=completed&_count=1")).await;
        assert_eq!(r.json()["jobs"].as_array().map(Vec::len), Some(1));
        let r = s.get(&admin(s, "api/jobs?status=nonsense")).await;
        assert_eq!(r.status, 400, "{}", r.text());
        let r = s.get(&admin(s, "api/jobs?owner=x")).await;
        assert_eq!(r.status, 400, "{}", r.text());
    }
}

fhir_test! {
    options = TestOptions {
        export: ExportConfig {
            file_resources: 1,
            batch: 1,
            throttle: Duration::from_millis(150),
            settle: Duration::from_millis(10),
            ..ExportConfig::default()
        },
        ..TestOptions::default()
    };
    async fn a_running_export_shows_how_far_it_is(s: &TestServer) {
        for i in 0..12 {
            s.put(&format!("Patient/p{i}"), &json!({"resourceType": "Patient", "id": format!("p{i}")})).await;
        }
        let export = kickoff(s, "$export?_type=Patient", &[]).await;
        let listing = listing_until(s, |l| {
            let job = entry(l, &export);
            job["state"] == "running" && job["counts"]["done"].as_u64().is_some_and(|d| d > 0)
                || job["status"] != "accepted"
        })
        .await;
        let job = entry(&listing, &export);
        assert_eq!(job["state"], "running", "the export ended before it was seen running: {job}");
        assert_eq!(job["status"], "accepted");
        assert_eq!(job["counts"]["total"], 12, "{job}");
        assert_eq!(job["counts"]["unit"], "resources");
        let done = job["counts"]["done"].as_f64().expect("done");
        assert_eq!(job["percent"].as_f64(), Some(done * 100.0 / 12.0));
        assert!(job["progress"].as_str().unwrap().starts_with("Exported "), "{job}");
        assert!(job["perSecond"].as_f64().is_some_and(|r| r > 0.0), "{job}");
        assert_eq!(job["finishedTime"], Value::Null);
        let r = s.get(&admin(s, &format!("api/jobs/{export}"))).await;
        assert_eq!(r.json()["output"], Value::Null, "no output while running");

        // Cancelling from the page is a DELETE on the status URL: the job is gone.
        let r = s.delete(job["statusUrl"].as_str().expect("status url")).await;
        assert_eq!(r.status, 202, "{}", r.text());
        let r = s.get(&admin(s, "api/jobs")).await;
        assert!(r.json()["jobs"].as_array().unwrap().iter().all(|j| j["id"] != export.as_str()));
        let r = s.get(&admin(s, &format!("api/jobs/{export}"))).await;
        assert_eq!(r.status, 404, "{}", r.text());
    }
}

fhir_test! {
    options = TestOptions { workers: 0, ..TestOptions::default() };
    async fn a_queued_job_waits_and_unknown_ids_are_not_found(s: &TestServer) {
        let id = kickoff(s, "Patient", &[]).await;
        let r = s.get(&admin(s, "api/jobs")).await;
        let listing = r.json();
        let job = entry(&listing, &id);
        assert_eq!(job["state"], "queued");
        assert_eq!(job["status"], "accepted");
        assert_eq!(job["progress"], "Waiting for a worker");
        assert_eq!(job["counts"], Value::Null);
        assert_eq!(job["percent"], Value::Null);
        assert_eq!(job["elapsedSeconds"], Value::Null);
        assert_eq!(job["perSecond"], Value::Null);
        for unknown in ["no-such-job", "not%20an%20id"] {
            let r = s.get(&admin(s, &format!("api/jobs/{unknown}"))).await;
            assert_eq!(r.status, 404, "{}", r.text());
            assert!(outcome_text(&r).contains("No asynchronous request"), "{}", r.text());
        }
    }
}

fhir_test! {
    options = smart();
    async fn with_auth_a_client_sees_only_its_own_jobs(s: &TestServer) {
        let k = keys();
        let owner = crate::auth::token(s, "rsa-client", &k.rsa, "system/*.read").await;
        let other = crate::auth::token(s, "ec-client", &k.ec, "system/Patient.read").await;
        let bearer = format!("Bearer {owner}");
        let id = kickoff(s, "Patient", &[("authorization", &bearer)]).await;

        // The shell is public; the data is not.
        assert_eq!(s.get(&admin(s, "jobs")).await.status, 200);
        let r = s.get(&admin(s, "api/jobs")).await;
        assert_eq!(r.status, 401, "{}", r.text());
        assert!(r.header("www-authenticate").is_some());
        let r = s.send("GET", &admin(s, "api/jobs"), &[("authorization", "Bearer forged")], None).await;
        assert_eq!(r.status, 401);

        let r = as_client(s, &owner, "GET", &admin(s, "api/jobs"), None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let listing = r.json();
        assert_eq!(listing["auth"], "smart");
        assert_eq!(entry(&listing, &id)["method"], "GET");
        let r = as_client(s, &owner, "GET", &admin(s, &format!("api/jobs/{id}")), None).await;
        assert_eq!(r.status, 200, "{}", r.text());

        let r = as_client(s, &other, "GET", &admin(s, "api/jobs"), None).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["jobs"], json!([]), "another client's jobs are hidden");
        let r = as_client(s, &other, "GET", &admin(s, &format!("api/jobs/{id}")), None).await;
        assert_eq!(r.status, 404, "{}", r.text());
    }
}
