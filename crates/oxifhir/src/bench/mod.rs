//! `oxifhir bench`: the server's figures on SQLite and PostgreSQL in one process run, each
//! beside a baseline measured in the same run, printed as one table.
//!
//! Per backend, the scenarios of [`SCENARIOS`] run in order on one fresh database: the import
//! of a synthetic data set (beside a raw insert of the same lines through the same driver),
//! then HTTP scenarios against a server on that database (create and update beside a trivial
//! handler on the same HTTP stack; read by id beside a raw `SELECT body` through the same
//! driver) at 1, 8 and 32 clients. Every row also reports the peak resident memory of the
//! process during its scenario, and its peak anonymous memory (heap, without the pages of
//! memory-mapped files), sampled every 5 ms (server and load driver share the process).
//!
//! **Adding a scenario**: write a module
//! with an `async fn run(env: &mut Env) -> anyhow::Result<Vec<Row>>`, add a [`Scenario`]
//! variant that calls it, and list it in [`SCENARIOS`]. Timings are never asserted anywhere.

mod asynchronous;
mod create;
mod driver;
mod export;
mod import;
mod read;
mod reindex;
mod scheduling;
mod search;
mod table;
mod update;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use oxifhir_store::{Store, StoreConfig};

pub use table::Row;

/// Flags of `oxifhir bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// HTTP requests per measured row.
    #[arg(long, default_value_t = 10_000)]
    pub requests: usize,
    /// Concurrent clients, comma-separated.
    #[arg(long, default_value = "1,8,32", value_delimiter = ',')]
    pub clients: Vec<usize>,
    /// Patients of the synthetic data set imported first (about 50 resources each).
    #[arg(long, default_value_t = 2_000)]
    pub patients: u32,
    /// Import this directory of NDJSON files (e.g. from `oxifhir synth`) instead of generating
    /// a data set.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Directory for the databases and generated data (default: a temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// PostgreSQL URL to benchmark too (default: $OXIFHIR_TEST_POSTGRES, if set).
    #[arg(long, env = "OXIFHIR_BENCH_POSTGRES")]
    pub postgres: Option<String>,
    /// About a minute: 1 000 requests per row, 1 and 32 clients, 100 patients.
    #[arg(long)]
    pub quick: bool,
    /// Run only these scenarios (comma-separated: create, update, read, search, async, export,
    /// reindex, scheduling); the import that fills the database always runs first.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

/// What every scenario of one backend shares.
pub struct Env {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The database under test.
    pub config: StoreConfig,
    pub client: reqwest::Client,
    /// HTTP requests per row.
    pub requests: usize,
    pub clients: Vec<usize>,
    /// The NDJSON data set to import.
    pub data: PathBuf,
    /// Scratch space of this backend.
    pub scratch: PathBuf,
    /// Trivial-handler `GET` rate per client count, measured at the start of the run.
    pub http_baseline: HashMap<usize, f64>,
    /// Ids of Patients known to exist.
    pub patients: Vec<String>,
    server: Option<(Arc<dyn Store>, String)>,
}

impl Env {
    /// The FHIR base URL of a server on this backend's database, started on first use.
    pub async fn base(&mut self) -> anyhow::Result<String> {
        if let Some((_, base)) = &self.server {
            return Ok(base.clone());
        }
        let store = oxifhir_store::open(&self.config).await?;
        let base = driver::start_server(store.clone()).await?;
        self.server = Some((store, base.clone()));
        Ok(base)
    }

    /// The store behind [`Env::base`], once that has started.
    pub fn store(&self) -> Option<Arc<dyn Store>> {
        self.server.as_ref().map(|(store, _)| store.clone())
    }
}

/// A measured scenario. Scenarios run in the order of [`SCENARIOS`].
#[derive(Debug, Clone, Copy)]
pub enum Scenario {
    /// Direct import of the data set, beside a raw insert of its lines.
    Import,
    /// `POST` of new Patients, beside the trivial handler.
    Create,
    /// `PUT` of existing Patients, beside the trivial handler.
    Update,
    /// `GET` by id, beside a raw `SELECT body`.
    Read,
    /// Search latency (token, date range, chain, deep pages), beside `GET` by id.
    Search,
    /// Async kick-off, status polls, kick-off to start, `DELETE` to stop.
    Async,
    /// A system-level `$export` of everything, beside a raw scan of the rows.
    Export,
    /// `$reindex` of one new parameter and of every parameter, beside a raw scan.
    Reindex,
    /// `$find` over a busy month, bookings per second under contention.
    Scheduling,
}

/// The scenarios, in order (the import fills the database the others use). New scenarios
/// go here.
pub const SCENARIOS: &[Scenario] = &[
    Scenario::Import,
    Scenario::Create,
    Scenario::Update,
    Scenario::Read,
    Scenario::Search,
    Scenario::Async,
    Scenario::Export,
    Scenario::Reindex,
    Scenario::Scheduling,
];

impl Scenario {
    async fn run(self, env: &mut Env) -> anyhow::Result<Vec<Row>> {
        match self {
            Scenario::Import => import::run(env).await,
            Scenario::Create => create::run(env).await,
            Scenario::Update => update::run(env).await,
            Scenario::Read => read::run(env).await,
            Scenario::Search => search::run(env).await,
            Scenario::Async => asynchronous::run(env).await,
            Scenario::Export => export::run(env).await,
            Scenario::Reindex => reindex::run(env).await,
            Scenario::Scheduling => scheduling::run(env).await,
        }
    }

    /// The name `--only` selects it by.
    fn name(self) -> &'static str {
        match self {
            Scenario::Import => "import",
            Scenario::Create => "create",
            Scenario::Update => "update",
            Scenario::Read => "read",
            Scenario::Search => "search",
            Scenario::Async => "async",
            Scenario::Export => "export",
            Scenario::Reindex => "reindex",
            Scenario::Scheduling => "scheduling",
        }
    }
}

/// Runs the benchmark and prints the table.
pub async fn run(mut args: BenchArgs) -> anyhow::Result<()> {
    if let Some(unknown) = args
        .only
        .iter()
        .find(|o| !SCENARIOS.iter().any(|s| s.name() == o.as_str()))
    {
        anyhow::bail!("--only: no scenario is called {unknown:?}");
    }
    if args.quick {
        args.requests = 1000;
        args.clients = vec![1, 32];
        args.patients = 100;
    }
    let postgres = args
        .postgres
        .clone()
        .or_else(|| std::env::var("OXIFHIR_TEST_POSTGRES").ok());
    let temp = tempfile::tempdir()?;
    let work = args
        .work_dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&work)?;
    let data = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            let dir = work.join("synth");
            let plan = crate::synth::Plan::new(args.patients, 1, 50);
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            crate::synth::generate(&plan, &dir, threads).context("generating the data set")?;
            dir
        }
    };
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()?;

    let mut rows = Vec::new();
    let baseline_url = driver::start_baseline().await?;
    let mut http_baseline = HashMap::new();
    for &c in &args.clients {
        let url = baseline_url.clone();
        let stats = driver::drive(&client, args.requests, c, move |_| {
            driver::Req::Get(url.clone())
        })
        .await?;
        http_baseline.insert(c, stats.per_sec);
        let mut row = Row::new(
            "baseline",
            "trivial handler GET",
            c,
            stats.requests,
            stats.per_sec,
        );
        row.latency = Some(stats.percentiles());
        rows.push(row);
    }

    let mut backends = vec![(
        "sqlite",
        StoreConfig::Sqlite {
            dir: work.join("sqlite"),
        },
    )];
    if let Some(url) = postgres {
        let schema = format!("bench_{}", uuid::Uuid::new_v4().simple());
        backends.push((
            "postgres",
            StoreConfig::Postgres {
                url,
                schema: Some(schema),
            },
        ));
    }
    for (backend, config) in backends {
        let mut env = Env {
            backend,
            config,
            client: client.clone(),
            requests: args.requests,
            clients: args.clients.clone(),
            data: data.clone(),
            scratch: work.join(format!("{backend}-scratch")),
            http_baseline: http_baseline.clone(),
            patients: Vec::new(),
            server: None,
        };
        std::fs::create_dir_all(&env.scratch)?;
        let selected = SCENARIOS.iter().filter(|s| {
            matches!(s, Scenario::Import)
                || args.only.is_empty()
                || args.only.iter().any(|o| o == s.name())
        });
        for scenario in selected {
            table::reset_peak_memory();
            let heap = table::HeapSampler::start();
            let mut measured = scenario
                .run(&mut env)
                .await
                .with_context(|| format!("{backend}: {scenario:?}"))?;
            let (peak, peak_heap) = (table::peak_memory(), heap.stop());
            // A scenario that measured a process of its own keeps its figures.
            for row in &mut measured {
                row.peak_rss = row.peak_rss.or(peak);
                row.peak_heap = row.peak_heap.or(peak_heap);
            }
            rows.extend(measured);
        }
        if let StoreConfig::Postgres {
            url,
            schema: Some(schema),
        } = &env.config
        {
            read::drop_schema(url, schema).await?;
        }
    }
    table::print(&rows);
    Ok(())
}
