//! `oxifhir export`: a Bulk Data export from any FHIR server into a directory, with progress
//! bars (the protocol is `oxifhir-bulk`; this module is its flags and its display).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oxifhir_bulk::auth::SmartCredentials;
use oxifhir_bulk::manifest::Section;
use oxifhir_bulk::poll::progress_fraction;
use oxifhir_bulk::retry::RetryPolicy;
use oxifhir_bulk::{BulkClient, ClientOptions, ExportLevel, ExportRequest, FileId, Observer};

/// Flags of `oxifhir export`.
#[derive(Debug, Clone, Args)]
pub struct BulkExportArgs {
    /// Base URL of the FHIR server (e.g. http://localhost:8080/fhir).
    #[arg(long, env = "OXIFHIR_EXPORT_SERVER")]
    pub server: String,
    /// Directory the files go to (created when missing). It also keeps the state that lets
    /// the same command, run again, continue an interrupted export.
    #[arg(long)]
    pub out: PathBuf,
    /// Export the data of this Group's members (`Group/{id}/$export`).
    #[arg(long, conflicts_with = "patient_level")]
    pub group: Option<String>,
    /// Export every patient's data (`Patient/$export`).
    #[arg(long)]
    pub patient_level: bool,
    /// Resource types to export (`_type`); repeat or separate with commas.
    #[arg(long = "type", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Only resources changed after this instant (`_since`, e.g. 2024-01-01T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Only resources changed before this instant (`_until`, Bulk Data v3).
    #[arg(long)]
    pub until: Option<String>,
    /// A search that selects resources of one type (`_typeFilter`, e.g.
    /// `Observation?status=final`); repeatable.
    #[arg(long = "type-filter")]
    pub type_filters: Vec<String>,
    /// Elements to keep (`_elements`); repeat or separate with commas.
    #[arg(long, value_delimiter = ',')]
    pub elements: Vec<String>,
    /// Only this patient's data (`patient`, sent by POST); repeatable.
    #[arg(long = "patient")]
    pub patients: Vec<String>,
    /// Kick off with POST and a Parameters body even when a GET would do.
    #[arg(long)]
    pub post: bool,
    /// Files downloaded at once.
    #[arg(long, default_value_t = 4)]
    pub parallel: usize,
    /// Retries of a failed request (connection errors, 429, 5xx) before giving up.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Leave the export on the server (no DELETE of its status URL at the end).
    #[arg(long)]
    pub keep: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// SMART Backend Services client id (needs --key).
    #[arg(long, env = "OXIFHIR_CLIENT_ID", requires = "key")]
    pub client_id: Option<String>,
    /// The client's private key, PEM: RSA (signs RS384) or EC P-384 (signs ES384).
    #[arg(long, env = "OXIFHIR_CLIENT_KEY", requires = "client_id")]
    pub key: Option<PathBuf>,
    /// The key's `kid` as registered with the server (default: its RFC 7638 thumbprint).
    #[arg(long)]
    pub kid: Option<String>,
    /// Scopes to ask for.
    #[arg(long, default_value = "system/*.read")]
    pub scope: String,
    /// The token endpoint (default: the one in [server]/.well-known/smart-configuration).
    #[arg(long)]
    pub token_url: Option<String>,
}

impl BulkExportArgs {
    fn request(&self) -> ExportRequest {
        let level = match (&self.group, self.patient_level) {
            (Some(id), _) => ExportLevel::Group(id.clone()),
            (None, true) => ExportLevel::Patient,
            (None, false) => ExportLevel::System,
        };
        ExportRequest {
            level: Some(level),
            types: self.types.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            type_filters: self.type_filters.clone(),
            elements: self.elements.clone(),
            patients: self.patients.clone(),
            post: self.post,
        }
    }

    fn credentials(&self) -> anyhow::Result<Option<SmartCredentials>> {
        let (Some(client_id), Some(key)) = (&self.client_id, &self.key) else {
            return Ok(None);
        };
        let pem = std::fs::read_to_string(key)
            .with_context(|| format!("reading the key {}", key.display()))?;
        let mut credentials =
            SmartCredentials::from_pem(client_id, &pem, self.kid.clone(), &self.scope)
                .with_context(|| format!("using the key {}", key.display()))?;
        if let Some(url) = &self.token_url {
            let url = url
                .parse()
                .with_context(|| format!("--token-url {url} is not a URL"))?;
            credentials = credentials.with_token_url(url);
        }
        Ok(Some(credentials))
    }
}

/// Runs `oxifhir export`.
pub async fn run(args: BulkExportArgs) -> anyhow::Result<()> {
    let bars = Arc::new(Bars::new(args.quiet));
    let options = ClientOptions {
        retry: RetryPolicy {
            retries: args.retries,
            ..RetryPolicy::default()
        },
        parallel: args.parallel,
        keep: args.keep,
        ..ClientOptions::default()
    };
    let client = BulkClient::new(&args.server, args.credentials()?, options, bars.clone())?;
    let result = client.export(&args.request(), &args.out).await;
    bars.clear();
    let resumable = oxifhir_bulk::state::path(&args.out).exists();
    let summary = result.map_err(|error| {
        let hint = match error {
            oxifhir_bulk::Error::State(_) => "",
            _ if resumable => " (run the same command again to continue it)",
            _ => "",
        };
        anyhow::Error::new(error).context(format!(
            "the export into {} did not finish{hint}",
            args.out.display()
        ))
    })?;
    let files = |section| {
        summary
            .files
            .iter()
            .filter(|f| f.section == section)
            .count()
    };
    println!(
        "exported {} resources in {} files to {} (transactionTime {}); {} error files ({} issues), {} deleted files ({} entries){}",
        summary.lines(Section::Output),
        files(Section::Output),
        args.out.display(),
        summary.transaction_time,
        files(Section::Error),
        summary.lines(Section::Error),
        files(Section::Deleted),
        summary.lines(Section::Deleted),
        if summary.deleted_on_server {
            "; the export was deleted on the server"
        } else {
            ""
        }
    );
    Ok(())
}

/// Progress bars: one for the server's progress while polling, then one for the files and
/// one per running download.
struct Bars {
    multi: MultiProgress,
    server: Mutex<Option<ProgressBar>>,
    overall: Mutex<Option<ProgressBar>>,
    files: Mutex<HashMap<FileId, ProgressBar>>,
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl Bars {
    fn new(quiet: bool) -> Self {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Bars {
            multi: MultiProgress::with_draw_target(target),
            server: Mutex::new(None),
            overall: Mutex::new(None),
            files: Mutex::new(HashMap::new()),
        }
    }

    fn start_polling(&self, message: String) {
        let bar = self.multi.add(ProgressBar::new_spinner());
        bar.set_style(style("{spinner} {msg} [{elapsed}]"));
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut server) = self.server.lock() {
            *server = Some(bar);
        }
    }

    fn clear(&self) {
        if let Ok(mut server) = self.server.lock()
            && let Some(bar) = server.take()
        {
            bar.finish_and_clear();
        }
        if let Ok(mut files) = self.files.lock() {
            for (_, bar) in files.drain() {
                bar.finish_and_clear();
            }
        }
        if let Ok(mut overall) = self.overall.lock()
            && let Some(bar) = overall.take()
        {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Bars {
    fn kicked_off(&self, status_url: &str) {
        self.notice(&format!("export started; status at {status_url}"));
        self.start_polling("waiting for the server".to_owned());
    }

    fn resumed(&self, status_url: &str) {
        self.notice(&format!("continuing the export at {status_url}"));
        self.start_polling("waiting for the server".to_owned());
    }

    fn waiting(&self, progress: Option<&str>, next_poll: Duration) {
        let Ok(server) = self.server.lock() else {
            return;
        };
        let Some(bar) = server.as_ref() else {
            return;
        };
        if let Some(fraction) = progress.and_then(progress_fraction) {
            if bar.length().is_none() {
                bar.set_length(1000);
                bar.set_style(style("{bar:40} {percent:>3}% {msg} [{elapsed}]"));
            }
            bar.set_position((fraction * 1000.0) as u64);
        }
        let text = progress.unwrap_or("the server is working");
        bar.set_message(format!("{text} (next poll in {} s)", next_poll.as_secs()));
    }

    fn manifest(&self, files: usize, done: usize) {
        if let Ok(mut server) = self.server.lock()
            && let Some(bar) = server.take()
        {
            bar.finish_and_clear();
        }
        let bar = self.multi.add(ProgressBar::new(files as u64));
        bar.set_style(style("{bar:40} {pos}/{len} files [{elapsed}]"));
        bar.set_position(done as u64);
        if let Ok(mut overall) = self.overall.lock() {
            *overall = Some(bar);
        }
    }

    fn file_started(&self, file: FileId, name: &str, offset: u64, size: Option<u64>) {
        let bar = match size {
            Some(size) => {
                let bar = ProgressBar::new(size);
                bar.set_style(style(
                    "{msg:32} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
                ));
                bar
            }
            None => {
                let bar = ProgressBar::new_spinner();
                bar.set_style(style("{msg:32} {spinner} {bytes} {bytes_per_sec}"));
                bar
            }
        };
        bar.set_message(name.to_owned());
        bar.set_position(offset);
        let bar = self.multi.add(bar);
        if let Ok(mut files) = self.files.lock()
            && let Some(old) = files.insert(file, bar)
        {
            old.finish_and_clear();
        }
    }

    fn file_progress(&self, file: FileId, bytes: u64) {
        if let Ok(files) = self.files.lock()
            && let Some(bar) = files.get(&file)
        {
            bar.set_position(bytes);
        }
    }

    fn file_finished(&self, file: FileId, result: Result<u64, &str>) {
        if let Ok(mut files) = self.files.lock()
            && let Some(bar) = files.remove(&file)
        {
            bar.finish_and_clear();
        }
        match result {
            Ok(_) => {
                if let Ok(overall) = self.overall.lock()
                    && let Some(bar) = overall.as_ref()
                {
                    bar.inc(1);
                }
            }
            Err(message) => self.notice(message),
        }
    }

    fn notice(&self, message: &str) {
        self.multi
            .suspend(|| eprintln!("oxifhir export: {message}"));
    }
}
