//! The benchmark's rows, the peak memory beside each, and the table they are printed as.

use std::time::Duration;

/// One measured figure beside its same-run baseline.
#[derive(Debug, Clone)]
pub struct Row {
    /// `sqlite`, `postgres`, or `baseline` for rows that only measure a baseline.
    pub backend: String,
    pub scenario: String,
    /// Concurrent clients (1 for single-threaded work such as an import).
    pub clients: usize,
    /// Requests or resources measured.
    pub count: usize,
    /// Requests or resources per second.
    pub per_sec: f64,
    /// Latency percentiles p50, p95, p99, when the scenario has requests.
    pub latency: Option<[Duration; 3]>,
    /// What the baseline is, and its rate in the same run.
    pub baseline: Option<(String, f64)>,
    /// Peak resident memory of the process during the scenario, in bytes.
    pub peak_rss: Option<u64>,
    /// Peak anonymous resident memory (heap and stacks, not mapped files such as SQLite's
    /// memory-mapped pages) during the scenario, in bytes.
    pub peak_heap: Option<u64>,
}

impl Row {
    /// A row without latency, baseline or memory figures yet.
    pub fn new(backend: &str, scenario: &str, clients: usize, count: usize, per_sec: f64) -> Row {
        Row {
            backend: backend.to_owned(),
            scenario: scenario.to_owned(),
            clients,
            count,
            per_sec,
            latency: None,
            baseline: None,
            peak_rss: None,
            peak_heap: None,
        }
    }

    /// The same row with a baseline.
    pub fn beside(mut self, what: &str, per_sec: Option<f64>) -> Row {
        self.baseline = per_sec.map(|b| (what.to_owned(), b));
        self
    }
}

/// Prints `rows` as a Markdown table.
pub fn print(rows: &[Row]) {
    let ms = |d: Duration| format!("{:.2}", d.as_secs_f64() * 1000.0);
    println!(
        "| backend | scenario | clients | count | per s | p50 ms | p95 ms | p99 ms | baseline | baseline per s | ratio | peak RSS MiB | peak heap MiB |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|");
    for r in rows {
        let [p50, p95, p99] = r.latency.map_or_else(
            || ["".to_owned(), "".to_owned(), "".to_owned()],
            |l| l.map(ms),
        );
        let (baseline, baseline_rate, ratio) = match &r.baseline {
            Some((what, rate)) => (
                what.clone(),
                format!("{rate:.0}"),
                format!("{:.2}", r.per_sec / rate.max(1e-9)),
            ),
            None => (String::new(), String::new(), String::new()),
        };
        let mib = |bytes: Option<u64>| {
            bytes.map_or_else(String::new, |b| format!("{:.0}", b as f64 / 1048576.0))
        };
        let (rss, heap) = (mib(r.peak_rss), mib(r.peak_heap));
        println!(
            "| {} | {} | {} | {} | {:.0} | {p50} | {p95} | {p99} | {baseline} | {baseline_rate} | {ratio} | {rss} | {heap} |",
            r.backend, r.scenario, r.clients, r.count, r.per_sec
        );
    }
}

/// The process's peak resident memory (`VmHWM`) since it started or since the last
/// [`reset_peak_memory`], in bytes; `None` where `/proc` does not tell.
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Restarts the peak measured by [`peak_memory`] from the current resident memory (Linux
/// `clear_refs` 5); does nothing where that is not possible.
pub fn reset_peak_memory() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's anonymous resident memory (`RssAnon`) now, in bytes.
fn anonymous_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Samples [`anonymous_memory`] every few milliseconds on a thread of its own until
/// [`HeapSampler::stop`], which returns the highest value seen.
pub struct HeapSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<Option<u64>>,
}

impl HeapSampler {
    /// Starts sampling.
    pub fn start() -> HeapSampler {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak = anonymous_memory();
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(5));
                peak = peak.max(anonymous_memory());
            }
            peak
        });
        HeapSampler { stop, thread }
    }

    /// Stops sampling; the peak, or `None` where `/proc` does not tell.
    pub fn stop(self) -> Option<u64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().ok().flatten()
    }
}
