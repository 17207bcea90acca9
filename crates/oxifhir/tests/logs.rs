//! The structured log of a real `oxifhir serve --log-format json`: one `request` event per
//! request with its method, interaction, status, duration and request id (the client's or a
//! generated one, as echoed in `X-Request-Id`), and an asynchronous request's job tied to the
//! request that started it. Also `--metrics-token` on the binary.

mod common;

use std::ffi::OsString;
use std::time::Duration;

use serde_json::Value;

/// The JSON log lines written so far.
fn log_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .expect("log")
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// Waits until some log line satisfies `wanted`, and returns it.
async fn logged(path: &std::path::Path, wanted: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..100 {
        if let Some(line) = log_lines(path).into_iter().find(&wanted) {
            return line;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "no such log line in {}",
        std::fs::read_to_string(path).unwrap_or_default()
    );
}

fn is_request(line: &Value, request_id: &str) -> bool {
    line["fields"]["message"] == "request" && line["fields"]["request_id"] == request_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("serve.log");
    let args: Vec<OsString> = [
        "--log-format",
        "json",
        "--data",
        dir.path().to_str().expect("utf-8 path"),
        "--metrics-token",
        "scrape-secret",
    ]
    .map(OsString::from)
    .to_vec();
    let node = common::serve(&args, &[], &log).await;
    let client = reqwest::Client::new();

    // A client's id: logged with the request's method, interaction, status and duration.
    let r = client
        .get(format!("{}/Patient/nobody", node.base))
        .header("x-request-id", "log-check-42")
        .send()
        .await
        .expect("read");
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["x-request-id"], "log-check-42");
    let line = logged(&log, |l| is_request(l, "log-check-42")).await;
    let fields = &line["fields"];
    assert_eq!(fields["method"], "GET");
    assert_eq!(fields["interaction"], "read");
    assert_eq!(fields["status"], 404);
    assert!(fields["duration_ms"].as_f64().is_some(), "{line}");
    assert_eq!(line["level"], "INFO");

    // No id: the generated one is logged and echoed.
    let r = client
        .get(format!("{}/metadata", node.base))
        .send()
        .await
        .expect("metadata");
    let generated = r.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(uuid::Uuid::parse_str(&generated).is_ok(), "{generated}");
    logged(&log, |l| {
        is_request(l, &generated) && l["fields"]["interaction"] == "capabilities"
    })
    .await;

    // An asynchronous request: the kick-off names the job inside the request's span, and the
    // job's own lines carry the job id.
    let r = client
        .get(format!("{}/Patient", node.base))
        .header("prefer", "respond-async")
        .header("x-request-id", "async-7")
        .send()
        .await
        .expect("kick-off");
    assert_eq!(r.status(), 202);
    let status_url = r.headers()["content-location"]
        .to_str()
        .expect("ascii")
        .to_string();
    let job_id = status_url.rsplit('/').next().expect("job id").to_string();
    let accepted = logged(&log, |l| {
        l["fields"]["message"] == "asynchronous request accepted" && l["fields"]["job"] == job_id
    })
    .await;
    assert_eq!(accepted["span"]["request_id"], "async-7", "{accepted}");
    logged(&log, |l| {
        l["fields"]["message"] == "job started" && l["span"]["job"] == job_id
    })
    .await;

    // The metrics token is required once configured.
    let metrics = node.base.replace("/fhir", "/metrics");
    let refused = client.get(&metrics).send().await.expect("metrics");
    assert_eq!(refused.status(), 401);
    let scraped = client
        .get(&metrics)
        .bearer_auth("scrape-secret")
        .send()
        .await
        .expect("metrics");
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.expect("text");
    assert!(
        text.lines().any(|l| l.starts_with(
            "oxifhir_http_request_duration_seconds_count{interaction=\"read\",status=\"4xx\"} "
        )),
        "{text}"
    );
    drop(node);
}
