//! The Prometheus metrics of one server process ([`Metrics`]) and their text exposition.
//!
//! Counters and histograms live in memory and describe this process; job counts by state are
//! read from the store at each scrape ([`Metrics::encode`]), so every node reports the whole
//! queue. Labels take bounded values only: an interaction's name, a status class, a job kind
//! and state, never a path, an id or a client.

use std::time::Duration;

use oxifhir_jobs::{JobObserver, JobOutcome};
use oxifhir_store::jobs::{JobCount, JobRecord, JobState};
use prometheus_client::encoding::{EncodeLabelSet, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s text (OpenMetrics, which Prometheus scrapes).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric name starts with this (`oxifhir_…`).
const PREFIX: &str = "oxifhir";

/// Every job state, for gauges that report 0 rather than vanish.
const STATES: [JobState; 5] = [
    JobState::Queued,
    JobState::Running,
    JobState::Completed,
    JobState::Failed,
    JobState::Cancelled,
];

/// Labels of an HTTP request's latency.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    /// The FHIR interaction ([`super::interaction`]).
    interaction: String,
    /// `2xx`, `4xx`, …
    status: &'static str,
}

/// Labels of a job's run time.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    outcome: &'static str,
}

/// Labels of the job counts read from the store.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobStateLabels {
    kind: String,
    status: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// The metrics of this process. Cheap to share; recording never blocks on I/O.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http: HistogramFamily<HttpLabels>,
    jobs: HistogramFamily<JobLabels>,
    exported: Counter,
    reindexed: Counter,
}

fn http_histogram() -> Histogram {
    // 1 ms to about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

fn job_histogram() -> Histogram {
    Histogram::new([
        0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0,
    ])
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let http: HistogramFamily<HttpLabels> = Family::new_with_constructor(http_histogram);
        let jobs: HistogramFamily<JobLabels> = Family::new_with_constructor(job_histogram);
        let exported = Counter::default();
        let reindexed = Counter::default();
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response's headers, by FHIR interaction and status class",
            http.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Run time of asynchronous jobs that ended on this process (from their first start), by kind and outcome",
            jobs.clone(),
        );
        registry.register(
            "export_resources",
            "Resources written to Bulk Data export files by this process (rate() gives resources per second)",
            exported.clone(),
        );
        registry.register(
            "reindex_resources",
            "Resources $reindex read and re-indexed on this process",
            reindexed.clone(),
        );
        Metrics {
            registry,
            http,
            jobs,
            exported,
            reindexed,
        }
    }

    /// Records one answered HTTP request.
    pub fn observe_request(&self, interaction: &str, status: u16, elapsed: Duration) {
        let labels = HttpLabels {
            interaction: interaction.to_owned(),
            status: status_class(status),
        };
        self.http
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts resources written to export files.
    pub fn exported(&self, resources: u64) {
        self.exported.inc_by(resources);
    }

    /// Counts resources `$reindex` has processed.
    pub fn reindexed(&self, resources: u64) {
        self.reindexed.inc_by(resources);
    }

    /// The text exposition: this process's metrics, then the job counts `counts` (read from
    /// the store) as gauges, with 0 for every state of `kinds` and of the kinds counted.
    pub fn encode(&self, counts: &[JobCount], kinds: &[&str]) -> String {
        let mut scrape = Registry::with_prefix(PREFIX);
        let by_state = Family::<JobStateLabels, Gauge>::default();
        let queued = Gauge::<i64>::default();
        let mut all_kinds: Vec<&str> = kinds.to_vec();
        all_kinds.extend(counts.iter().map(|c| c.kind.as_str()));
        all_kinds.sort_unstable();
        all_kinds.dedup();
        for kind in all_kinds {
            for state in STATES {
                let count = counts
                    .iter()
                    .find(|c| c.kind == kind && c.state == state)
                    .map_or(0, |c| c.count);
                let labels = JobStateLabels {
                    kind: kind.to_owned(),
                    status: state.code(),
                };
                by_state.get_or_create(&labels).set(count);
                if state == JobState::Queued {
                    queued.inc_by(count);
                }
            }
        }
        scrape.register(
            "jobs",
            "Asynchronous jobs in the store that their clients have not released, by kind and status",
            by_state,
        );
        scrape.register(
            "job_queue_depth",
            "Queued jobs waiting for a worker (all kinds)",
            queued,
        );
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = text::encode_registry(&mut out, &self.registry);
        let _ = text::encode_registry(&mut out, &scrape);
        let _ = text::encode_eof(&mut out);
        out
    }
}

impl JobObserver for Metrics {
    fn job_ended(&self, job: &JobRecord, outcome: JobOutcome, ran_for: Duration) {
        let labels = JobLabels {
            kind: job.kind.clone(),
            outcome: outcome.code(),
        };
        self.jobs
            .get_or_create(&labels)
            .observe(ran_for.as_secs_f64());
    }
}

/// `2xx` for 200–299 and so on; `other` outside 100–599.
fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        500..=599 => "5xx",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_counters_histograms_and_zero_filled_job_gauges() {
        let metrics = Metrics::new();
        metrics.observe_request("read", 200, Duration::from_millis(3));
        metrics.observe_request("read", 404, Duration::from_millis(1));
        metrics.exported(7);
        let counts = [JobCount {
            kind: "export".into(),
            state: JobState::Queued,
            count: 2,
        }];
        let text = metrics.encode(&counts, &["interaction"]);
        let has = |line: &str| text.lines().any(|l| l == line);
        assert!(has(
            r#"oxifhir_http_request_duration_seconds_count{interaction="read",status="2xx"} 1"#
        ));
        assert!(has(
            r#"oxifhir_http_request_duration_seconds_count{interaction="read",status="4xx"} 1"#
        ));
        assert!(has("oxifhir_export_resources_total 7"));
        assert!(has(r#"oxifhir_jobs{kind="export",status="queued"} 2"#));
        assert!(has(r#"oxifhir_jobs{kind="interaction",status="error"} 0"#));
        assert!(has("oxifhir_job_queue_depth 2"));
        assert_eq!(text.lines().last(), Some("# EOF"));
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(201), "2xx");
        assert_eq!(status_class(303), "3xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(503), "5xx");
        assert_eq!(status_class(42), "other");
    }
}
