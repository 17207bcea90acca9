//! The resume state of an import: per input file, the byte offset and line number after the
//! last committed batch. A file that changed (size or modification time) starts over.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::source::Input;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct FileProgress {
    size: u64,
    modified: u64,
    offset: u64,
    line: u64,
}

/// Progress of all files of an import.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ImportState {
    files: BTreeMap<String, FileProgress>,
}

fn key(input: &Input) -> String {
    std::fs::canonicalize(&input.path)
        .unwrap_or_else(|_| input.path.clone())
        .display()
        .to_string()
}

fn modified(input: &Input) -> u64 {
    std::fs::metadata(&input.path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

impl ImportState {
    /// Reads the state file; a missing file is an empty state.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    fn progress(&self, input: &Input) -> Option<&FileProgress> {
        self.files
            .get(&key(input))
            .filter(|p| p.size == input.size && p.modified == modified(input))
    }

    /// Byte offset to resume `input` from.
    pub fn offset(&self, input: &Input) -> u64 {
        self.progress(input).map_or(0, |p| p.offset)
    }

    /// Lines of `input` already done.
    pub fn line(&self, input: &Input) -> u64 {
        self.progress(input).map_or(0, |p| p.line)
    }

    /// Records that `input` is done up to `offset` / `line`.
    pub fn record(&mut self, input: &Input, offset: u64, line: u64) {
        self.files.insert(
            key(input),
            FileProgress {
                size: input.size,
                modified: modified(input),
                offset,
                line,
            },
        );
    }

    /// Writes the state atomically (write then rename).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
    }

    /// Removes the state file after a complete import.
    pub fn clear(&self, path: &Path) -> anyhow::Result<()> {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}
