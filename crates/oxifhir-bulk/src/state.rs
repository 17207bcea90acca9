//! The state file in the output directory (`.oxifhir-export.json`): the request, the status
//! URL, and once the manifest arrived, the files and which are done. It is written after each
//! step (atomically: a new file renamed over the old), so a run that stops at any point is
//! continued by the next run of the same request; it is removed when the export is complete.
//! How far a file got is the size of its `.part` file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::manifest::FileTask;
use crate::{Error, ExportRequest};

/// The state file's name.
pub const STATE_FILE: &str = ".oxifhir-export.json";

/// An unfinished export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportState {
    /// The server's base URL.
    pub server: String,
    /// What was asked.
    pub request: ExportRequest,
    /// Where the export is polled (and deleted).
    pub status_url: String,
    /// Present once the manifest arrived.
    #[serde(default)]
    pub files: Option<Downloads>,
}

/// The files of a completed export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downloads {
    /// The manifest's `transactionTime`.
    pub transaction_time: String,
    /// Whether downloads need the access token.
    pub requires_access_token: bool,
    pub files: Vec<FileTask>,
}

/// The state file of output directory `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

impl ExportState {
    /// The state in `dir`, or `None` when there is no unfinished export.
    pub fn load(dir: &Path) -> Result<Option<Self>, Error> {
        let path = path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                Error::State(format!(
                    "{} is not an export state file ({e}); remove it to start over",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Writes the state into `dir` (write, sync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), Error> {
        let path = path(dir);
        let tmp = dir.join(format!("{STATE_FILE}.tmp"));
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::State(format!("cannot write the state: {e}")))?;
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&bytes)?;
            file.sync_all()
        };
        write().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    /// Removes the state file of `dir` (the export is complete).
    pub fn remove(dir: &Path) -> Result<(), Error> {
        let path = path(dir);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
            _ => Ok(()),
        }
    }

    /// Checks that this state continues an export of `request` from `server`.
    pub fn check_same(
        &self,
        server: &str,
        request: &ExportRequest,
        dir: &Path,
    ) -> Result<(), Error> {
        if self.server == server && self.request == *request {
            return Ok(());
        }
        Err(Error::State(format!(
            "{} holds an unfinished export of another request (from {}, status {}); \
             run that request again to finish it, or remove {} to start a new one",
            dir.display(),
            self.server,
            self.status_url,
            path(dir).display()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_remove() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ExportState::load(dir.path()).unwrap(), None);
        let state = ExportState {
            server: "http://h/fhir".into(),
            request: ExportRequest {
                types: vec!["Patient".into()],
                ..Default::default()
            },
            status_url: "http://h/fhir/_async/1".into(),
            files: None,
        };
        state.save(dir.path()).unwrap();
        let loaded = ExportState::load(dir.path()).unwrap().unwrap();
        assert_eq!(loaded, state);
        loaded
            .check_same("http://h/fhir", &state.request, dir.path())
            .unwrap();
        let other = ExportRequest::default();
        let refused = loaded.check_same("http://h/fhir", &other, dir.path());
        assert!(matches!(refused, Err(Error::State(_))));
        ExportState::remove(dir.path()).unwrap();
        ExportState::remove(dir.path()).unwrap();
        assert_eq!(ExportState::load(dir.path()).unwrap(), None);
        std::fs::write(path(dir.path()), "{").unwrap();
        assert!(ExportState::load(dir.path()).is_err());
    }
}
