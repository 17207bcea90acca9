//! `GET /metrics` (parsed as the text exposition, counters and histograms moving with the
//! requests and jobs that happened, job gauges equal to the store's counts, who may read it)
//! and `X-Request-Id` (echoed, generated, replaced when hostile, on every response).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::auth::{keys, smart, token};
use crate::export::{kickoff, wait};
use crate::support::{TestOptions, TestServer};

/// One sample: its labels and value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A scrape, parsed.
#[derive(Debug)]
struct Scrape(Vec<Sample>);

impl Scrape {
    /// The value of the one sample `name` with exactly `labels`, or 0 when there is none.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let found: Vec<&Sample> = self
            .0
            .iter()
            .filter(|s| s.name == name && s.labels == wanted)
            .collect();
        assert!(found.len() <= 1, "{name} {labels:?} twice");
        found.first().map_or(0.0, |s| s.value)
    }

    fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.0.iter().filter(move |s| s.name == name)
    }
}

/// Parses the text exposition strictly: `# TYPE`/`# HELP`/`# UNIT` comments, samples
/// `name{label="value",…} number`, and `# EOF` last. Panics on anything else.
fn parse(text: &str) -> Scrape {
    let mut samples = Vec::new();
    let mut lines = text.lines().peekable();
    let mut saw_eof = false;
    while let Some(line) = lines.next() {
        if line == "# EOF" {
            assert!(lines.peek().is_none(), "# EOF is the last line");
            saw_eof = true;
            break;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let mut words = comment.splitn(3, ' ');
            let keyword = words.next().unwrap_or("");
            assert!(
                matches!(keyword, "TYPE" | "HELP" | "UNIT"),
                "comment: {line}"
            );
            let name = words.next().expect("metric name");
            assert!(valid_name(name), "name in {line}");
            if keyword == "TYPE" {
                assert!(
                    matches!(
                        words.next(),
                        Some("counter" | "gauge" | "histogram" | "summary" | "unknown" | "info")
                    ),
                    "type in {line}"
                );
            }
            continue;
        }
        samples.push(parse_sample(line));
    }
    assert!(saw_eof, "ends with # EOF");
    Scrape(samples)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}

fn parse_sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
    let value = match value {
        "+Inf" => f64::INFINITY,
        other => other.parse().unwrap_or_else(|_| panic!("value in {line}")),
    };
    let (name, labels) = match series.split_once('{') {
        None => (series, BTreeMap::new()),
        Some((name, rest)) => {
            let body = rest.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
            (name, parse_labels(body, line))
        }
    };
    assert!(valid_name(name), "name in {line}");
    Sample {
        name: name.to_string(),
        labels,
        value,
    }
}

fn parse_labels(mut body: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    while !body.is_empty() {
        let (key, rest) = body.split_once("=\"").unwrap_or_else(|| panic!("{line}"));
        assert!(valid_name(key), "label name in {line}");
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("{line}"),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => panic!("unterminated label value in {line}"),
            }
        };
        labels.insert(key.to_string(), value);
        body = &rest[end + 1..];
        body = body.strip_prefix(',').unwrap_or(body);
    }
    labels
}

/// The server's root (`/metrics` is outside the FHIR base).
fn metrics_url(s: &TestServer) -> String {
    let base = s.base.trim_end_matches('/');
    let root = base.strip_suffix("/fhir").expect("base ends in /fhir");
    format!("{root}/metrics")
}

async fn scrape_with(s: &TestServer, headers: &[(&str, &str)]) -> Scrape {
    let r = s.send("GET", &metrics_url(s), headers, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{:?}",
        r.header("content-type")
    );
    parse(&r.text())
}

async fn scrape(s: &TestServer) -> Scrape {
    scrape_with(s, &[]).await
}

/// Scrapes until `done` holds (a job's end is recorded just after the store says it ended).
async fn scrape_until(s: &TestServer, done: impl Fn(&Scrape) -> bool) -> Scrape {
    for _ in 0..100 {
        let scraped = scrape(s).await;
        if done(&scraped) {
            return scraped;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the metrics never got there: {:?}", scrape(s).await);
}

const HTTP: &str = "oxifhir_http_request_duration_seconds";

/// Every histogram series: buckets never decrease and `+Inf` equals `_count`.
fn check_histograms(scraped: &Scrape, name: &str) {
    let count = format!("{name}_count");
    for total in scraped.named(&count) {
        let mut buckets: Vec<(f64, f64)> = scraped
            .named(&format!("{name}_bucket"))
            .filter(|b| {
                let mut labels = b.labels.clone();
                labels.remove("le");
                labels == total.labels
            })
            .map(|b| (b.labels["le"].parse::<f64>().expect("le"), b.value))
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
        assert_eq!(
            buckets.last().map(|b| (b.0, b.1)),
            Some((f64::INFINITY, total.value))
        );
    }
}

/// The job gauges equal what the store counts, state by state.
async fn assert_jobs_match_store(s: &TestServer, scraped: &Scrape) {
    let counts = s.store.jobs().counts().await.expect("counts");
    for sample in scraped.named("oxifhir_jobs") {
        let stored = counts
            .iter()
            .find(|c| c.kind == sample.labels["kind"] && c.state.code() == sample.labels["status"])
            .map_or(0, |c| c.count);
        assert_eq!(sample.value, stored as f64, "{sample:?}");
    }
    for count in &counts {
        assert_eq!(
            scraped.value(
                "oxifhir_jobs",
                &[("kind", &count.kind), ("status", count.state.code())]
            ),
            count.count as f64
        );
    }
    let queued: i64 = counts
        .iter()
        .filter(|c| c.state.code() == "queued")
        .map(|c| c.count)
        .sum();
    assert_eq!(scraped.value("oxifhir_job_queue_depth", &[]), queued as f64);
}

fhir_test! {
    async fn requests_move_their_interaction_histograms(s: &TestServer) {
        let before = scrape(s).await;
        assert_eq!(before.value(&format!("{HTTP}_count"), &[("interaction", "read"), ("status", "2xx")]), 0.0);
        let patient = s.create(&json!({"resourceType": "Patient", "id": "ignored"})).await;
        let id = patient["id"].as_str().expect("id");
        for _ in 0..2 {
            assert_eq!(s.get(&format!("Patient/{id}")).await.status, 200);
        }
        assert_eq!(s.get("Patient/missing").await.status, 404);
        assert_eq!(s.get("Patient?name=x").await.status, 200);
        let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": []});
        assert_eq!(s.post("", &batch).await.status, 200);
        let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": []});
        assert_eq!(s.post("", &transaction).await.status, 200);
        let outside = metrics_url(s).replace("/metrics", "/elsewhere");
        assert_eq!(s.send("GET", &outside, &[], None).await.status, 404);

        let after = scrape(s).await;
        let count = |interaction: &str, status: &str| {
            after.value(&format!("{HTTP}_count"), &[("interaction", interaction), ("status", status)])
        };
        assert_eq!(count("read", "2xx"), 2.0);
        assert_eq!(count("read", "4xx"), 1.0);
        assert_eq!(count("create", "2xx"), 1.0);
        assert_eq!(count("search-type", "2xx"), 1.0);
        assert_eq!(count("batch", "2xx"), 1.0);
        assert_eq!(count("transaction", "2xx"), 1.0);
        assert_eq!(count("metrics", "2xx"), 1.0, "the first scrape");
        assert_eq!(count("unknown", "4xx"), 1.0, "outside the base");
        check_histograms(&after, HTTP);
        // Labels are interaction names and status classes, never ids or paths.
        for sample in &after.0 {
            for value in sample.labels.values() {
                assert!(!value.contains(id) && !value.contains('/'), "{sample:?}");
            }
        }
    }
}

fhir_test! {
    async fn an_export_moves_job_counts_durations_and_exported_resources(s: &TestServer) {
        for n in 0..3 {
            s.create(&json!({"resourceType": "Patient", "name": [{"family": format!("P{n}")}]})).await;
        }
        let before = scrape(s).await;
        assert_eq!(before.value("oxifhir_export_resources_total", &[]), 0.0);
        assert_eq!(before.value("oxifhir_jobs", &[("kind", "export"), ("status", "completed")]), 0.0);
        assert_jobs_match_store(s, &before).await;

        let status_url = kickoff(s, "$export?_type=Patient").await;
        let done = wait(s, &status_url).await;
        assert_eq!(done.status, 200, "{}", done.text());
        let file = done.json()["output"][0]["url"].as_str().expect("file url").to_string();
        let download = s.get(&file).await;
        assert_eq!(download.status, 200);
        assert!(download.header("x-request-id").is_some(), "export files carry the id");

        let duration = "oxifhir_job_duration_seconds_count";
        let after = scrape_until(s, |m| {
            m.value(duration, &[("kind", "export"), ("outcome", "completed")]) == 1.0
        })
        .await;
        assert_eq!(after.value("oxifhir_export_resources_total", &[]), 3.0);
        assert_eq!(after.value("oxifhir_jobs", &[("kind", "export"), ("status", "completed")]), 1.0);
        assert_eq!(after.value("oxifhir_jobs", &[("kind", "export"), ("status", "running")]), 0.0);
        assert_jobs_match_store(s, &after).await;
        check_histograms(&after, "oxifhir_job_duration_seconds");
        let count = |interaction: &str, status: &str| {
            after.value(&format!("{HTTP}_count"), &[("interaction", interaction), ("status", status)])
        };
        assert_eq!(count("$export", "2xx"), 1.0, "the kick-off");
        assert!(count("async-status", "2xx") >= 1.0, "the polls");
        assert_eq!(count("export-file", "2xx"), 1.0);
    }
}

fhir_test! {
    options = TestOptions { workers: 0, ..TestOptions::default() };
    async fn queued_jobs_are_the_queue_depth(s: &TestServer) {
        for _ in 0..2 {
            let r = s.send("GET", "Patient", &[("prefer", "respond-async")], None).await;
            assert_eq!(r.status, 202, "{}", r.text());
        }
        let scraped = scrape(s).await;
        assert_eq!(scraped.value("oxifhir_jobs", &[("kind", "interaction"), ("status", "queued")]), 2.0);
        assert_eq!(scraped.value("oxifhir_job_queue_depth", &[]), 2.0);
        assert_jobs_match_store(s, &scraped).await;
    }
}

fhir_test! {
    options = TestOptions { metrics_token: Some("scrape-secret".into()), ..TestOptions::default() };
    async fn a_metrics_token_guards_the_metrics(s: &TestServer) {
        let url = metrics_url(s);
        let r = s.send("GET", &url, &[], None).await;
        assert_eq!(r.status, 401);
        assert!(r.header("www-authenticate").is_some());
        let r = s.send("GET", &url, &[("authorization", "Bearer wrong")], None).await;
        assert_eq!(r.status, 401);
        scrape_with(s, &[("authorization", "Bearer scrape-secret")]).await;
        let r = s.send("POST", &url, &[("authorization", "Bearer scrape-secret")], None).await;
        assert_eq!(r.status, 405);
        // The FHIR API itself stays as open as --auth none makes it.
        assert_eq!(s.get("metadata").await.status, 200);
    }
}

fhir_test! {
    options = TestOptions { metrics_token: Some("scrape-secret".into()), ..smart() };
    async fn with_smart_auth_metrics_need_an_access_token_or_the_metrics_token(s: &TestServer) {
        let url = metrics_url(s);
        let r = s.send("GET", &url, &[], None).await;
        assert_eq!(r.status, 401);
        assert!(r.header("x-request-id").is_some());
        let access = token(s, "rsa-client", &keys().rsa, "system/*.read").await;
        scrape_with(s, &[("authorization", &format!("Bearer {access}"))]).await;
        scrape_with(s, &[("authorization", "Bearer scrape-secret")]).await;
        let r = s.send("GET", &url, &[("authorization", "Bearer not-a-token")], None).await;
        assert_eq!(r.status, 401);
    }
}

fn is_uuid(text: &str) -> bool {
    uuid::Uuid::parse_str(text).is_ok()
}

fhir_test! {
    async fn request_ids_are_echoed_generated_or_replaced(s: &TestServer) {
        let given = s.send("GET", "metadata", &[("x-request-id", "client-id-42")], None).await;
        assert_eq!(given.header("x-request-id").as_deref(), Some("client-id-42"));

        let generated = s.get("metadata").await;
        let first = generated.header("x-request-id").expect("generated id");
        assert!(is_uuid(&first), "{first}");
        let second = s.get("metadata").await.header("x-request-id").expect("id");
        assert_ne!(first, second, "a new id per request");

        let too_long = "a".repeat(129);
        for hostile in [too_long.as_str(), "a b", "tab\there"] {
            let r = s.send("GET", "metadata", &[("x-request-id", hostile)], None).await;
            let echoed = r.header("x-request-id").expect("id");
            assert!(is_uuid(&echoed), "{hostile:?} replaced by {echoed}");
        }
        let longest = "b".repeat(128);
        let r = s.send("GET", "metadata", &[("x-request-id", &longest)], None).await;
        assert_eq!(r.header("x-request-id"), Some(longest));

        // Errors raised before dispatch, paths outside the base, 404s, the metrics.
        let root = metrics_url(s).trim_end_matches("/metrics").to_string();
        for (method, url, status) in [
            ("GET", s.url("Patient/%FF"), 400),
            ("GET", s.url("Patient/missing"), 404),
            ("GET", format!("{root}/elsewhere"), 404),
            ("BREW", s.url("Patient"), 405),
            ("GET", metrics_url(s), 200),
        ] {
            let r = s.send(method, &url, &[("x-request-id", "err-1")], None).await;
            assert_eq!(r.status, status, "{method} {url}: {}", r.text());
            assert_eq!(r.header("x-request-id").as_deref(), Some("err-1"), "{method} {url}");
        }
        let r = s
            .send("POST", "Patient", &[("x-request-id", "big-1"), ("content-type", "application/fhir+json")], Some(vec![b' '; 2 * 1024 * 1024]))
            .await;
        assert_eq!(r.status, 413);
        assert_eq!(r.header("x-request-id").as_deref(), Some("big-1"));
    }
}
