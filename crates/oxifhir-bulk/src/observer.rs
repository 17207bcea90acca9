//! What an export reports as it goes, for a progress display (the CLI draws bars with it).

use std::time::Duration;

/// A file of the manifest: its index in the export's file list.
pub type FileId = usize;

/// Receives an export's progress. Every method has an empty default; calls come from several
/// tasks at once.
pub trait Observer: Send + Sync {
    /// The export was started; `status_url` is polled from now on.
    fn kicked_off(&self, _status_url: &str) {}
    /// An export started by an earlier run is continued from the output directory's state.
    fn resumed(&self, _status_url: &str) {}
    /// The server is still working: its `X-Progress` text when it sent one, and the wait
    /// before the next poll.
    fn waiting(&self, _progress: Option<&str>, _next_poll: Duration) {}
    /// The manifest arrived: `files` files (output, error and deleted) to download, of which
    /// `done` were downloaded by an earlier run.
    fn manifest(&self, _files: usize, _done: usize) {}
    /// A download (re)starts at byte `offset`; `size` is the file's size when known.
    fn file_started(&self, _file: FileId, _name: &str, _offset: u64, _size: Option<u64>) {}
    /// A download has `bytes` bytes of its file on disk.
    fn file_progress(&self, _file: FileId, _bytes: u64) {}
    /// A download ended: `Ok(lines)` when the file is complete, or why it failed.
    fn file_finished(&self, _file: FileId, _result: Result<u64, &str>) {}
    /// Something worth telling that is not an error (a retry, a restarted file).
    fn notice(&self, _message: &str) {}
}

/// An [`Observer`] that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Observer for Silent {}
