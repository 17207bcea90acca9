//! `oxifhir import`: loads NDJSON files and Bundles into a database directly or into a running
//! server over HTTP, in batches, with a progress bar, reporting bad lines without stopping, and
//! resuming after an interruption from a state file of committed byte offsets.

mod direct;
mod remote;
mod source;
mod state;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::DatabaseArgs;
use source::{Batch, Input};
use state::ImportState;

/// Flags of `oxifhir import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// NDJSON files (`*.ndjson`), Bundle files (`*.json`) or directories of them.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub db: DatabaseArgs,
    /// Import into a running server at this FHIR base URL instead of a database.
    #[arg(long)]
    pub server: Option<String>,
    /// Replace resources that already exist (unchanged ones are skipped); without it, an
    /// existing id is reported as a bad line.
    #[arg(long)]
    pub upsert: bool,
    /// Resources per batch (one database transaction or one batch Bundle).
    #[arg(long, default_value_t = 2000)]
    pub batch_size: usize,
    /// Where progress is recorded for resuming (default: `.oxifhir-import-state.json` in the
    /// current directory).
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Ignore earlier progress and import everything again.
    #[arg(long)]
    pub restart: bool,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Testing aid: stop with an error after this many committed batches.
    #[arg(long, hide = true)]
    pub fail_after_batches: Option<usize>,
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub written: u64,
    pub unchanged: u64,
    pub bad: u64,
}

/// A line that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: u64,
    pub message: String,
}

/// Where batches go.
enum Target {
    Direct(direct::DirectImport),
    Remote(remote::RemoteImport),
}

impl Target {
    async fn import(
        &mut self,
        batch: &Batch,
        upsert: bool,
    ) -> anyhow::Result<(Summary, Vec<BadLine>)> {
        match self {
            Target::Direct(d) => d.import(batch, upsert).await,
            Target::Remote(r) => r.import(batch, upsert).await,
        }
    }
}

/// Runs the import.
pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let inputs = source::collect(&args.paths)?;
    let state_path = args
        .state
        .clone()
        .unwrap_or_else(|| PathBuf::from(".oxifhir-import-state.json"));
    let mut state = if args.restart {
        ImportState::default()
    } else {
        ImportState::load(&state_path)?
    };
    let mut target = match &args.server {
        Some(url) => Target::Remote(remote::RemoteImport::new(url)?),
        None => Target::Direct(direct::DirectImport::open(&args.db.store_config()).await?),
    };
    let total_bytes: u64 = inputs.iter().map(|i| i.size).sum();
    let done_bytes: u64 = inputs.iter().map(|i| state.offset(i).min(i.size)).sum();
    let bar = progress_bar(total_bytes, args.quiet);
    bar.set_position(done_bytes);
    let started = std::time::Instant::now();
    let mut total = Summary::default();
    let mut batches = 0usize;
    for input in &inputs {
        let mut reader = input.open(state.offset(input), state.line(input), args.batch_size)?;
        while let Some(batch) = reader.next_batch()? {
            let (summary, bad) = target.import(&batch, args.upsert).await.with_context(|| {
                format!(
                    "importing {} from line {}",
                    input.path.display(),
                    batch.first_line
                )
            })?;
            for b in &bad {
                bar.suspend(|| eprintln!("{}:{}: {}", input.path.display(), b.line, b.message));
            }
            let bad_parse = batch.bad.len() as u64;
            for b in &batch.bad {
                bar.suspend(|| eprintln!("{}:{}: {}", input.path.display(), b.line, b.message));
            }
            total.written += summary.written;
            total.unchanged += summary.unchanged;
            total.bad += summary.bad + bad_parse;
            state.record(input, batch.end_offset, batch.end_line);
            state.save(&state_path)?;
            bar.set_position(done_bytes_now(&inputs, &state));
            let elapsed = started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!(
                "{} written, {} unchanged, {} bad, {:.0} resources/s",
                total.written,
                total.unchanged,
                total.bad,
                (total.written + total.unchanged) as f64 / elapsed
            ));
            batches += 1;
            if args.fail_after_batches.is_some_and(|n| batches >= n) {
                anyhow::bail!("stopped after {batches} batches (--fail-after-batches)");
            }
        }
    }
    bar.finish_and_clear();
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "imported {} resources ({} unchanged, {} bad lines) in {:.1} s: {:.0} resources/s",
        total.written,
        total.unchanged,
        total.bad,
        elapsed,
        (total.written + total.unchanged) as f64 / elapsed
    );
    state.clear(&state_path)?;
    Ok(())
}

fn done_bytes_now(inputs: &[Input], state: &ImportState) -> u64 {
    inputs.iter().map(|i| state.offset(i).min(i.size)).sum()
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}
