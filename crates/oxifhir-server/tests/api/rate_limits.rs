//! Per-client rate limits of kick-offs and status polls: `429` with `Retry-After` past the
//! limit, one budget per client (SMART client, or address without authentication), nothing
//! enqueued for a refused kick-off.

use std::time::Duration;

use crate::auth::{as_client, keys, smart, token};
use crate::support::*;
use oxifhir_server::asynchronous::AsyncConfig;
use oxifhir_server::asynchronous::rate::Rate;

fn limits(kickoffs: u32, polls: u32) -> AsyncConfig {
    let per_minute = |count| {
        Some(Rate {
            count,
            period: Duration::from_secs(60),
        })
    };
    AsyncConfig {
        // Only the per-client limits under test refuse anything.
        poll_too_fast_ratio: 0.0,
        max_active_per_client: 1000,
        kickoff_rate: per_minute(kickoffs),
        poll_rate: per_minute(polls),
        ..AsyncConfig::default()
    }
}

#[track_caller]
fn assert_throttled(r: &Reply) {
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.json()["issue"][0]["code"], "throttled");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
}

async fn queued_jobs(s: &TestServer) -> i64 {
    s.store.jobs().active_count(None).await.expect("count")
}

fhir_test! {
    options = TestOptions { workers: 0, asynchronous: limits(3, 4), ..TestOptions::default() };
    async fn kickoffs_and_polls_are_limited(s: &TestServer) {
        let async_get = |path: &'static str| s.send("GET", path, &[("prefer", "respond-async")], None);
        let mut status = Vec::new();
        for _ in 0..3 {
            let r = async_get("Patient?_count=1").await;
            assert_eq!(r.status, 202, "{}", r.text());
            status.push(r.header("content-location").expect("status url"));
        }
        let r = async_get("Patient?_count=1").await;
        assert_throttled(&r);
        assert_eq!(queued_jobs(s).await, 3, "the refused kick-off enqueued nothing");
        // Polls have a budget of their own, over all of the client's jobs.
        for url in status.iter().chain(status.iter().take(1)) {
            assert_eq!(s.get(url).await.status, 202);
        }
        assert_throttled(&s.get(&status[1]).await);
        // Synchronous requests are not limited.
        assert_eq!(s.get("Patient?_count=1").await.status, 200);
    }
}

fhir_test! {
    options = TestOptions { workers: 0, asynchronous: limits(2, 2), ..smart() };
    async fn every_client_has_its_own_budget(s: &TestServer) {
        let k = keys();
        let a = token(s, "rsa-client", &k.rsa, "system/*.read").await;
        let b = token(s, "ec-client", &k.ec, "system/Patient.read").await;
        let kickoff = |token: String| async move {
            let bearer = format!("Bearer {token}");
            s.send("GET", "Patient", &[("prefer", "respond-async"), ("authorization", &bearer)], None).await
        };
        let first = kickoff(a.clone()).await;
        assert_eq!(first.status, 202, "{}", first.text());
        assert_eq!(kickoff(a.clone()).await.status, 202);
        assert_throttled(&kickoff(a.clone()).await);
        let other = kickoff(b.clone()).await;
        assert_eq!(other.status, 202, "another client is not held back: {}", other.text());
        let url = first.header("content-location").expect("status url");
        assert_eq!(as_client(s, &a, "GET", &url, None).await.status, 202);
        assert_eq!(as_client(s, &a, "GET", &url, None).await.status, 202);
        assert_throttled(&as_client(s, &a, "GET", &url, None).await);
        let url = other.header("content-location").expect("status url");
        assert_eq!(as_client(s, &b, "GET", &url, None).await.status, 202);
    }
}

fhir_test! {
    options = TestOptions { workers: 0, asynchronous: limits(1, 100), ..TestOptions::default() };
    async fn without_authentication_each_address_has_its_own_budget(s: &TestServer) {
        let r = s.send("GET", "Patient", &[("prefer", "respond-async")], None).await;
        assert_eq!(r.status, 202, "{}", r.text());
        assert_throttled(&s.send("GET", "Patient", &[("prefer", "respond-async")], None).await);
        // Another loopback address is another client.
        let other = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .build()
            .expect("client");
        let r = other
            .get(s.url("Patient"))
            .header("prefer", "respond-async")
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 202);
    }
}
