//! `oxifhir import`: loads NDJSON files and Bundles into a database directly or into a running
//! server over HTTP, in batches, with a progress bar, reporting bad lines without stopping, and
//! resuming after an interruption from a state file of committed byte offsets.

mod direct;
mod prepare;
mod remote;
mod source;
mod state;

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::DatabaseArgs;
use direct::Existing;
use prepare::PreparedBatch;
use source::Input;
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
    /// Drop secondary search indexes during the import and rebuild them at its end: `auto`
    /// does so when the input is large beside the database (SQLite only).
    #[arg(long, value_enum, default_value_t = DeferIndexes::Auto)]
    pub defer_indexes: DeferIndexes,
    /// Testing aid: stop with an error after this many committed batches.
    #[arg(long, hide = true)]
    pub fail_after_batches: Option<usize>,
}

/// Whether an import defers secondary indexes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeferIndexes {
    /// When the input is large beside the database.
    Auto,
    /// Always (SQLite).
    Always,
    /// Never: every index is kept up to date row by row.
    Never,
}

impl DeferIndexes {
    fn choice(self) -> Option<bool> {
        match self {
            DeferIndexes::Auto => None,
            DeferIndexes::Always => Some(true),
            DeferIndexes::Never => Some(false),
        }
    }
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
        work: PreparedBatch,
        existing: Existing,
    ) -> anyhow::Result<(Summary, Vec<BadLine>)> {
        match self {
            Target::Direct(d) => d.import(work, existing).await,
            Target::Remote(r) => r.import(&work.batch, existing == Existing::Upsert).await,
        }
    }

    async fn finish(&self) -> anyhow::Result<()> {
        match self {
            Target::Direct(d) => d.finish().await,
            Target::Remote(_) => Ok(()),
        }
    }
}

/// A batch on its way from the reader thread to the writer.
struct Work {
    /// Index of its input file.
    input: usize,
    /// The first batch read after resuming this file from the state.
    resumed: bool,
    batch: PreparedBatch,
}

/// What a whole import did, and how long it took (index rebuilding included).
#[derive(Debug, Clone, Copy)]
pub struct Report {
    /// Resources written, unchanged and bad.
    pub summary: Summary,
    /// Wall-clock seconds from opening the database to the end of index rebuilding.
    pub seconds: f64,
}

impl Report {
    /// Resources written or found unchanged per second.
    pub fn rate(&self) -> f64 {
        (self.summary.written + self.summary.unchanged) as f64 / self.seconds.max(1e-9)
    }
}

/// Runs `oxifhir import` and prints what it did.
pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let report = import(&args).await?;
    println!(
        "imported {} resources ({} unchanged, {} bad lines) in {:.1} s: {:.0} resources/s",
        report.summary.written,
        report.summary.unchanged,
        report.summary.bad,
        report.seconds,
        report.rate()
    );
    Ok(())
}

/// Imports what `args` names.
pub async fn import(args: &ImportArgs) -> anyhow::Result<Report> {
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
    let total_bytes: u64 = inputs.iter().map(|i| i.size).sum();
    let done_bytes: u64 = done_bytes_now(&inputs, &state);
    let started = std::time::Instant::now();
    let mut target = match &args.server {
        Some(url) => Target::Remote(remote::RemoteImport::new(url)?),
        None => Target::Direct(
            direct::DirectImport::open(
                &args.db.store_config(),
                total_bytes - done_bytes,
                args.defer_indexes.choice(),
            )
            .await?,
        ),
    };
    let result = import_all(args, &inputs, &mut state, &state_path, &mut target).await;
    // Rebuilds deferred indexes even when the import failed.
    let finishing = std::time::Instant::now();
    let finished = target.finish().await;
    tracing::debug!(
        seconds = finishing.elapsed().as_secs_f64(),
        "import: finishing (deferred indexes, checkpoint)"
    );
    let total = result?;
    finished?;
    state.clear(&state_path)?;
    Ok(Report {
        summary: total.summary,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What [`import_all`] did.
struct Totals {
    summary: Summary,
}

/// Reads and prepares batches on a thread of their own while writing them here in order.
async fn import_all(
    args: &ImportArgs,
    inputs: &[Input],
    state: &mut ImportState,
    state_path: &std::path::Path,
    target: &mut Target,
) -> anyhow::Result<Totals> {
    let total_bytes: u64 = inputs.iter().map(|i| i.size).sum();
    let bar = progress_bar(total_bytes, args.quiet);
    bar.set_position(done_bytes_now(inputs, state));
    let threads = match target {
        Target::Direct(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Target::Remote(_) => 0,
    };
    let starts: Vec<(u64, u64)> = inputs
        .iter()
        .map(|i| (state.offset(i), state.line(i)))
        .collect();
    let (sender, mut receiver) = tokio::sync::mpsc::channel(PIPELINE_DEPTH);
    let reader = {
        let (inputs, batch_size) = (inputs.to_vec(), args.batch_size);
        std::thread::Builder::new()
            .name("import-reader".into())
            .spawn(move || read_all(&inputs, &starts, batch_size, threads, &sender))?
    };
    let started = std::time::Instant::now();
    let mut total = Summary::default();
    let mut batches = 0usize;
    // Time the writer spent waiting for prepared batches, and writing them.
    let (mut waiting, mut writing) = (0.0f64, 0.0f64);
    loop {
        let wait_started = std::time::Instant::now();
        let Some(work) = receiver.recv().await else {
            break;
        };
        waiting += wait_started.elapsed().as_secs_f64();
        let Work {
            input,
            resumed,
            batch: mut work,
        } = work?;
        let input = &inputs[input];
        let existing = match (args.upsert, resumed) {
            (true, _) => Existing::Upsert,
            (false, true) => Existing::RejectChanged,
            (false, false) => Existing::Reject,
        };
        let (first_line, end_offset, end_line) = (
            work.batch.first_line,
            work.batch.end_offset,
            work.batch.end_line,
        );
        let read_bad = std::mem::take(&mut work.batch.bad);
        let write_started = std::time::Instant::now();
        let (summary, bad) = target.import(work, existing).await.with_context(|| {
            format!("importing {} from line {first_line}", input.path.display())
        })?;
        writing += write_started.elapsed().as_secs_f64();
        for b in read_bad.iter().chain(&bad) {
            bar.suspend(|| eprintln!("{}:{}: {}", input.path.display(), b.line, b.message));
        }
        total.written += summary.written;
        total.unchanged += summary.unchanged;
        total.bad += summary.bad + read_bad.len() as u64;
        state.record(input, end_offset, end_line);
        state.save(state_path)?;
        bar.set_position(done_bytes_now(inputs, state));
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
    drop(receiver);
    tracing::debug!(
        waiting_s = waiting,
        writing_s = writing,
        "import pipeline: time the writer waited for prepared batches and spent writing"
    );
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the import reader thread panicked"))?;
    bar.finish_and_clear();
    Ok(Totals { summary: total })
}

/// Batches read and prepared ahead of the writer.
const PIPELINE_DEPTH: usize = 2;

/// Reads every input from its start offset, prepares each batch on `threads` threads (none:
/// leave it raw) and sends it; stops early when the receiver is gone.
fn read_all(
    inputs: &[Input],
    starts: &[(u64, u64)],
    batch_size: usize,
    threads: usize,
    sender: &tokio::sync::mpsc::Sender<anyhow::Result<Work>>,
) {
    for (index, (input, &(offset, line))) in inputs.iter().zip(starts).enumerate() {
        let mut reader = match input.open(offset, line, batch_size) {
            Ok(r) => r,
            Err(e) => {
                let _ = sender.blocking_send(Err(e));
                return;
            }
        };
        let mut resumed = offset > 0;
        loop {
            let batch = match reader.next_batch() {
                Ok(Some(batch)) => batch,
                Ok(None) => break,
                Err(e) => {
                    let _ = sender.blocking_send(Err(e));
                    return;
                }
            };
            let batch = if threads == 0 {
                PreparedBatch::raw(batch)
            } else {
                prepare::prepare_batch(batch, threads)
            };
            let work = Work {
                input: index,
                resumed,
                batch,
            };
            if sender.blocking_send(Ok(work)).is_err() {
                return;
            }
            resumed = false;
        }
    }
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
