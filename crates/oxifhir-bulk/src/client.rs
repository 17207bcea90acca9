//! [`BulkClient::export`]: one export from kick-off to `DELETE`, continued from the output
//! directory's state when an earlier run stopped.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, Url};

use crate::auth::{SmartCredentials, TokenSource};
use crate::manifest::{FileTask, Section};
use crate::retry::RetryPolicy;
use crate::session::{Answer, Outgoing, Session};
use crate::state::{Downloads, ExportState};
use crate::{Error, ExportRequest, Observer, download, kickoff, poll};

/// The name of the manifest's copy in the output directory.
pub const MANIFEST_FILE: &str = "manifest.json";

/// How the client behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Retries of failed requests.
    pub retry: RetryPolicy,
    /// Files downloaded at once.
    pub parallel: usize,
    /// Leave the export on the server (no `DELETE` of the status URL at the end).
    pub keep: bool,
    /// How long a connection may take to open.
    pub connect_timeout: Duration,
    /// How long a response may stay silent before the request counts as failed.
    pub read_timeout: Duration,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            retry: RetryPolicy::default(),
            parallel: 4,
            keep: false,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
        }
    }
}

/// What a finished export produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The server's `transactionTime`.
    pub transaction_time: String,
    /// Every file (local name, type, section and line count).
    pub files: Vec<FileTask>,
    /// Whether this run continued an export an earlier run started.
    pub resumed: bool,
    /// Whether the status URL was deleted on the server.
    pub deleted_on_server: bool,
}

impl Summary {
    /// Lines of the files of `section`.
    pub fn lines(&self, section: Section) -> u64 {
        self.files
            .iter()
            .filter(|f| f.section == section)
            .filter_map(|f| f.lines)
            .sum()
    }
}

/// A Bulk Data client of one FHIR server.
pub struct BulkClient {
    base: Url,
    session: Arc<Session>,
    options: ClientOptions,
}

impl BulkClient {
    /// A client of the FHIR server at `base`, authenticating with `credentials` when given,
    /// reporting to `observer`.
    pub fn new(
        base: &str,
        credentials: Option<SmartCredentials>,
        options: ClientOptions,
        observer: Arc<dyn Observer>,
    ) -> Result<Self, Error> {
        let base = Url::parse(base.trim_end_matches('/'))
            .map_err(|e| Error::Protocol(format!("'{base}' is not a server URL: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(Error::Protocol(format!("'{base}' is not an http(s) URL")));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("oxifhir-export/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .build()
            .map_err(|e| Error::http("setting up the HTTP client", e))?;
        let auth = credentials.map(|c| TokenSource::new(c, base.clone()));
        Ok(BulkClient {
            session: Arc::new(Session {
                http,
                auth,
                policy: options.retry,
                observer,
            }),
            base,
            options,
        })
    }

    /// Runs `request` into directory `dir` (created when missing): kick-off, polling,
    /// downloads (`manifest.json` and the files), then `DELETE` of the status URL unless
    /// [`ClientOptions::keep`]. When `dir` holds the state of an unfinished export of the
    /// same request, that export is continued instead of starting a new one; another
    /// request's state is an [`Error::State`].
    pub async fn export(&self, request: &ExportRequest, dir: &Path) -> Result<Summary, Error> {
        request.validate()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let server = self.base.to_string();
        let observer = &self.session.observer;
        let (mut state, resumed) = match ExportState::load(dir)? {
            Some(state) => {
                state.check_same(&server, request, dir)?;
                observer.resumed(&state.status_url);
                (state, true)
            }
            None => {
                let status_url = kickoff::kick_off(&self.session, &self.base, request).await?;
                observer.kicked_off(status_url.as_str());
                let state = ExportState {
                    server,
                    request: request.clone(),
                    status_url: status_url.into(),
                    files: None,
                };
                state.save(dir)?;
                (state, false)
            }
        };
        let status_url = Url::parse(&state.status_url)
            .map_err(|e| Error::State(format!("bad status URL in the state file: {e}")))?;
        if state.files.is_none() {
            let (manifest, bytes) = poll::until_complete(&self.session, &status_url).await?;
            let copy = dir.join(MANIFEST_FILE);
            std::fs::write(&copy, &bytes).map_err(|e| Error::io(copy, e))?;
            state.files = Some(Downloads {
                transaction_time: manifest.transaction_time.clone(),
                requires_access_token: manifest.requires_access_token,
                files: manifest.tasks(&status_url)?,
            });
            state.save(dir)?;
        }
        self.download_all(&mut state, dir).await?;
        let deleted_on_server = !self.options.keep && self.delete(&status_url).await;
        ExportState::remove(dir)?;
        let downloads = state.files.unwrap_or_else(|| Downloads {
            transaction_time: String::new(),
            requires_access_token: false,
            files: Vec::new(),
        });
        Ok(Summary {
            transaction_time: downloads.transaction_time,
            files: downloads.files,
            resumed,
            deleted_on_server,
        })
    }

    /// Downloads the files not yet done, [`ClientOptions::parallel`] at a time, recording each
    /// finished one in the state. Fails when any file failed, after the others finished.
    async fn download_all(&self, state: &mut ExportState, dir: &Path) -> Result<(), Error> {
        let Some(downloads) = state.files.as_ref() else {
            return Ok(());
        };
        let authorize = downloads.requires_access_token;
        let mut pending: VecDeque<(usize, FileTask)> = downloads
            .files
            .iter()
            .enumerate()
            .filter(|(_, file)| file.lines.is_none())
            .map(|(i, file)| (i, file.clone()))
            .collect();
        let observer = &self.session.observer;
        observer.manifest(downloads.files.len(), downloads.files.len() - pending.len());
        let mut running = tokio::task::JoinSet::new();
        let mut mismatches = Vec::new();
        let mut failures = Vec::new();
        loop {
            while running.len() < self.options.parallel.max(1)
                && let Some((i, file)) = pending.pop_front()
            {
                let session = Arc::clone(&self.session);
                let dir = dir.to_path_buf();
                running.spawn(async move {
                    (
                        i,
                        download::download(session, i, file, dir, authorize).await,
                    )
                });
            }
            let Some(joined) = running.join_next().await else {
                break;
            };
            let (i, result) =
                joined.map_err(|e| Error::Protocol(format!("a download task failed: {e}")))?;
            match result {
                Ok(lines) => {
                    if let Some(files) = state.files.as_mut() {
                        files.files[i].lines = Some(lines);
                    }
                    state.save(dir)?;
                    observer.file_finished(i, Ok(lines));
                }
                Err(Error::CountMismatch(found)) => {
                    observer.file_finished(i, Err(&found.join("; ")));
                    mismatches.extend(found);
                }
                Err(error) => {
                    let message = error.to_string();
                    observer.file_finished(i, Err(&message));
                    failures.push(message);
                }
            }
        }
        if !mismatches.is_empty() {
            return Err(Error::CountMismatch(mismatches));
        }
        if !failures.is_empty() {
            return Err(Error::Downloads(failures));
        }
        Ok(())
    }

    /// `DELETE`s the status URL: the server may remove the files. A failure is reported to
    /// the observer only (the files are safe); returns whether the server accepted it.
    async fn delete(&self, status_url: &Url) -> bool {
        let context = format!("deleting {status_url}");
        let answer = self
            .session
            .send(&Outgoing {
                method: Method::DELETE,
                url: status_url,
                headers: HeaderMap::new(),
                body: None,
                authorize: true,
                context: &context,
            })
            .await;
        let problem = match answer {
            Ok(Answer::Success(_)) => return true,
            Ok(Answer::Failure { status, body, .. }) => {
                crate::session::failure(&context, status, &body).to_string()
            }
            Err(e) => e.to_string(),
        };
        self.session
            .observer
            .notice(&format!("{problem} (the files are complete)"));
        false
    }
}
