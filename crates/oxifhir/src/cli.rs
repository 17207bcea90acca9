//! Command-line flags (each mirrored by an `OXIFHIR_*` environment variable) and the commands.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use oxifhir_store::StoreConfig;

/// oxifhir: a FHIR R4 server with durable asynchronous jobs.
#[derive(Debug, Parser)]
#[command(name = "oxifhir", version, about)]
pub struct Cli {
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "OXIFHIR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the FHIR server.
    Serve(Box<ServeArgs>),
    /// Create or upgrade the database schema, then exit.
    Migrate(DatabaseArgs),
    /// Load NDJSON files and Bundles into a database or a running server.
    Import(crate::import::ImportArgs),
    /// Measure import, create, update and read rates, latency and memory on SQLite (and
    /// PostgreSQL), each beside a same-run baseline.
    Bench(crate::bench::BenchArgs),
    /// Write deterministic synthetic R4 test data as NDJSON, one file per resource type.
    Synth(crate::synth::SynthArgs),
    /// Bulk Data export from any FHIR server into a directory: kick-off, polling, resumable
    /// parallel downloads checked against the manifest, optional SMART Backend Services auth.
    Export(Box<crate::bulk_export::BulkExportArgs>),
}

/// Where the data lives.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Directory of the embedded SQLite database (used unless --database is given).
    #[arg(long, env = "OXIFHIR_DATA", default_value = "./oxifhir-data")]
    pub data: PathBuf,
    /// A PostgreSQL URL (postgres://user@host:port/db); replaces the embedded SQLite database.
    #[arg(long, env = "OXIFHIR_DATABASE")]
    pub database: Option<String>,
    /// PostgreSQL schema to use (created if missing).
    #[arg(long, env = "OXIFHIR_DATABASE_SCHEMA")]
    pub database_schema: Option<String>,
}

impl DatabaseArgs {
    /// The store these flags describe.
    pub fn store_config(&self) -> StoreConfig {
        match &self.database {
            Some(url) => StoreConfig::Postgres {
                url: url.clone(),
                schema: self.database_schema.clone(),
            },
            None => StoreConfig::Sqlite {
                dir: self.data.clone(),
            },
        }
    }
}

/// Flags of `oxifhir serve`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Address to listen on.
    #[arg(long, env = "OXIFHIR_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Public base URL of the FHIR API; every URL the server hands out starts with it.
    /// Default: http://<listen>/fhir.
    #[arg(long, env = "OXIFHIR_BASE_URL")]
    pub base_url: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "OXIFHIR_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// How long a client may take to send a request: its headers (or the connection is
    /// closed), then its body (or it gets 408). E.g. `60s`, `5m`.
    #[arg(long, env = "OXIFHIR_READ_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub read_timeout: std::time::Duration,
    /// Page size of searches without _count.
    #[arg(long, env = "OXIFHIR_DEFAULT_COUNT", default_value_t = 20)]
    pub default_count: usize,
    /// Largest page size a search may ask for.
    #[arg(long, env = "OXIFHIR_MAX_COUNT", default_value_t = 1000)]
    pub max_count: usize,

    #[command(flatten)]
    pub jobs: JobArgs,
    /// Authentication: none (anyone who can connect may do everything; local use) or smart
    /// (SMART Backend Services bearer tokens; needs --auth-config).
    #[arg(long, env = "OXIFHIR_AUTH", value_enum, default_value = "none")]
    pub auth: AuthKind,
    /// JSON file registering the SMART clients (public keys, scopes, admin flag) and the
    /// token settings; used with --auth smart.
    #[arg(long, env = "OXIFHIR_AUTH_CONFIG")]
    pub auth_config: Option<PathBuf>,

    /// A bearer token that lets a scraper read GET /metrics (`Authorization: Bearer TOKEN`).
    /// Without it /metrics is open under --auth none and needs a SMART access token under
    /// --auth smart.
    #[arg(long, env = "OXIFHIR_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<String>,

    #[command(flatten)]
    pub export: ExportArgs,
}

/// The `--auth` choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthKind {
    /// No authentication.
    None,
    /// SMART Backend Services.
    Smart,
}

/// Where Bulk Data export files go and how they are split.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// Where export files are stored: a directory, or s3://bucket/prefix (S3-compatible, set up
    /// with the usual AWS_* variables; AWS_ENDPOINT for a non-AWS endpoint). Default:
    /// <data dir>/exports.
    #[arg(long, env = "OXIFHIR_EXPORT_STORE")]
    pub export_store: Option<String>,

    /// Most resources in one export file.
    #[arg(long, env = "OXIFHIR_EXPORT_PART_SIZE", default_value_t = 100_000)]
    pub export_part_size: u64,

    /// Slices of an export read side by side (a type larger than one file is cut into
    /// slices of about a file each); 1 exports each type whole, in turn.
    #[arg(long, env = "OXIFHIR_EXPORT_PARALLEL", default_value_t = 2)]
    pub export_parallel: usize,

    /// An export file is closed once it holds this many bytes.
    #[arg(long, env = "OXIFHIR_EXPORT_PART_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub export_part_bytes: u64,

    /// How long after its cut an export starts reading, so that writes stamped before the cut
    /// have committed (shorter only for benchmarks of a database nobody writes to).
    #[arg(long, env = "OXIFHIR_EXPORT_SETTLE", default_value = "500ms", value_parser = humantime::parse_duration, hide = true)]
    pub export_settle: std::time::Duration,

    /// A pause after each batch an export reads (for crash tests).
    #[arg(long, env = "OXIFHIR_EXPORT_THROTTLE", default_value = "0s", value_parser = humantime::parse_duration, hide = true)]
    pub export_throttle: std::time::Duration,

    /// Resources an export reads per statement.
    #[arg(
        long,
        env = "OXIFHIR_EXPORT_BATCH",
        default_value_t = 1000,
        hide = true
    )]
    pub export_batch: usize,
}

/// How this process takes part in running asynchronous jobs.
#[derive(Debug, Clone, clap::Args)]
pub struct JobArgs {
    /// Jobs this process runs at once; 0 makes an API-only node that runs none.
    #[arg(long, env = "OXIFHIR_WORKERS", default_value_t = 2)]
    pub workers: usize,

    /// How long results and export files are kept after a job ends (e.g. `24h`, `30m`).
    #[arg(long, env = "OXIFHIR_JOB_RETENTION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub job_retention: std::time::Duration,

    /// How long a job's claim holds without a heartbeat: a job whose process died is resumed
    /// by another worker this long after its last heartbeat.
    #[arg(long, env = "OXIFHIR_JOB_LEASE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub job_lease: std::time::Duration,

    /// A status poll sooner than this fraction of the advised `Retry-After` gets `429`.
    #[arg(long, env = "OXIFHIR_POLL_TOO_FAST_RATIO", default_value_t = 0.5)]
    pub poll_too_fast_ratio: f64,

    /// Queued and running jobs one client may have at once; more kick-offs get `429`.
    #[arg(long, env = "OXIFHIR_MAX_ACTIVE_JOBS", default_value_t = 16)]
    pub max_active_jobs: i64,

    /// Resources `$reindex` and `$expunge` read and write per transaction.
    #[arg(
        long,
        env = "OXIFHIR_MAINTENANCE_BATCH",
        default_value_t = 2000,
        hide = true
    )]
    pub maintenance_batch: usize,

    /// A pause after each batch of `$reindex` and `$expunge` (for crash tests).
    #[arg(long, env = "OXIFHIR_MAINTENANCE_THROTTLE", default_value = "0s", value_parser = humantime::parse_duration, hide = true)]
    pub maintenance_throttle: std::time::Duration,
    // `std::option::Option` spelled out: clap then takes the parser's `None` (`off`) as a value
    // instead of making the flag optional.
    /// Asynchronous kick-offs one client may make, as COUNT/PERIOD (bursts up to COUNT), e.g.
    /// `60/1m`, `5/s`; `off` for no limit. More get `429` with `Retry-After`.
    #[arg(long, env = "OXIFHIR_KICKOFF_RATE", default_value = "60/1m", value_parser = oxifhir_server::asynchronous::rate::parse_rate)]
    pub kickoff_rate: std::option::Option<oxifhir_server::asynchronous::rate::Rate>,

    /// Status polls one client may make over all its jobs, as COUNT/PERIOD or `off`.
    #[arg(long, env = "OXIFHIR_POLL_RATE", default_value = "600/1m", value_parser = oxifhir_server::asynchronous::rate::parse_rate)]
    pub poll_rate: std::option::Option<oxifhir_server::asynchronous::rate::Rate>,
}

/// Sets up `tracing` output for `command` (`RUST_LOG` filters; default `info`, without the
/// per-request lines for `bench`).
pub fn init_logging(format: &LogFormat, command: &Command) {
    // `bench` drives many requests through an in-process server: one line each would drown
    // its table (and cost time it measures).
    let default = match command {
        Command::Bench(_) => "info,tokio_postgres=warn,oxifhir::request=warn",
        _ => "info,tokio_postgres=warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Runs the chosen command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => crate::serve::serve(*args).await,
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Synth(args) => crate::synth::run(args),
        Command::Import(args) => crate::import::run(args).await,
        Command::Export(args) => crate::bulk_export::run(*args).await,
        Command::Migrate(args) => {
            let store = oxifhir_store::open(&args.store_config()).await?;
            tracing::info!(backend = store.backend_name(), "schema is up to date");
            Ok(())
        }
    }
}
