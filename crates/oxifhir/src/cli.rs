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
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(DatabaseArgs),
    /// Load NDJSON files and Bundles into a database or a running server.
    Import(crate::import::ImportArgs),
    /// Measure import, create, update and read rates, latency and memory on SQLite (and
    /// PostgreSQL), each beside a same-run baseline.
    Bench(crate::bench::BenchArgs),
    /// Write deterministic synthetic R4 test data as NDJSON, one file per resource type.
    Synth(crate::synth::SynthArgs),
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
    /// Page size of searches without _count.
    #[arg(long, env = "OXIFHIR_DEFAULT_COUNT", default_value_t = 20)]
    pub default_count: usize,
    /// Largest page size a search may ask for.
    #[arg(long, env = "OXIFHIR_MAX_COUNT", default_value_t = 1000)]
    pub max_count: usize,
}

/// Sets up `tracing` output (`RUST_LOG` filters, default `info`).
pub fn init_logging(format: &LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tokio_postgres=warn"));
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
        Command::Serve(args) => crate::serve::serve(args).await,
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Synth(args) => crate::synth::run(args),
        Command::Import(args) => crate::import::run(args).await,
        Command::Migrate(args) => {
            let store = oxifhir_store::open(&args.store_config()).await?;
            tracing::info!(backend = store.backend_name(), "schema is up to date");
            Ok(())
        }
    }
}
