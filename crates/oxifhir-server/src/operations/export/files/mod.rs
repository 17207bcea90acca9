//! Export files, stored through the `object_store` crate: a local directory by default, or an
//! S3-compatible bucket (`s3://bucket/prefix`, configured by the usual `AWS_*` environment
//! variables, `AWS_ENDPOINT` for a non-AWS endpoint) so that every node of a PostgreSQL
//! deployment serves every file. A job's files live under `{prefix}/{job id}/{name}`. Files
//! in a local directory are written by [`direct`], past the page cache.

mod direct;

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::ObjectStore;
use object_store::buffered::BufWriter;
use object_store::path::Path;
use tokio::io::AsyncWriteExt;

/// Bytes of a file buffered before they are written (a multipart part, for S3).
const PART: usize = 5 * 1024 * 1024;

/// Where export files are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportLocation {
    /// A directory on this machine (created when missing).
    Local(PathBuf),
    /// An S3-compatible bucket and a key prefix (possibly empty).
    S3 { bucket: String, prefix: String },
}

impl ExportLocation {
    /// Parses `s3://bucket/prefix` or a directory path.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(format!("{text}: the bucket name is missing"));
                }
                Ok(ExportLocation::S3 {
                    bucket: bucket.to_owned(),
                    prefix: prefix.trim_matches('/').to_owned(),
                })
            }
            None if text.is_empty() => Err("the export store location is empty".to_owned()),
            None => Ok(ExportLocation::Local(PathBuf::from(text))),
        }
    }
}

impl std::fmt::Display for ExportLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExportLocation::Local(dir) => write!(f, "{}", dir.display()),
            ExportLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// The store of export files. Cheap to clone.
#[derive(Clone)]
pub struct ExportFiles {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The directory of a local store, which files are written into directly.
    local: Option<PathBuf>,
    /// Buffers local files share.
    parts: direct::Parts,
}

impl std::fmt::Debug for ExportFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportFiles")
            .field("store", &self.store.to_string())
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// A file body to stream to a client: the whole file, or its end from a byte offset.
pub struct FileBody {
    /// Bytes in `stream`.
    pub size: u64,
    /// The part of the file `stream` holds; `None` for the whole file.
    pub range: Option<ContentRange>,
    pub stream: BoxStream<'static, Result<Bytes, std::io::Error>>,
}

/// The bytes of a file a partial body holds (`Content-Range: bytes {start}-{end}/{total}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    /// The first byte's offset.
    pub start: u64,
    /// The last byte's offset (inclusive, as in `Content-Range`).
    pub end: u64,
    /// The file's size.
    pub total: u64,
}

impl std::fmt::Display for ContentRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bytes {}-{}/{}", self.start, self.end, self.total)
    }
}

/// The offset of a `Range: bytes={offset}-` request header, the only form a resuming download
/// sends. Anything else (several ranges, a suffix, a bounded range, another unit) is `None`:
/// the whole file is served, which HTTP allows for any `Range` (RFC 9110 §14.2).
pub fn range_offset(header: &str) -> Option<u64> {
    let spec = header.trim().strip_prefix("bytes=")?.trim();
    let offset = spec.strip_suffix('-')?;
    if offset.is_empty() || !offset.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    offset.parse().ok()
}

impl ExportFiles {
    /// Opens the store at `location` (creating a local directory when missing).
    pub fn open(location: &ExportLocation) -> Result<Self, String> {
        match location {
            ExportLocation::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| format!("cannot use {}: {e}", dir.display()))?
                    .with_automatic_cleanup(true);
                Ok(ExportFiles {
                    store: Arc::new(store),
                    prefix: Path::default(),
                    local: Some(dir.clone()),
                    parts: direct::Parts::default(),
                })
            }
            ExportLocation::S3 { bucket, prefix } => {
                let mut builder =
                    object_store::aws::AmazonS3Builder::from_env().with_bucket_name(bucket);
                let endpoint = std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .ok();
                if let Some(endpoint) = endpoint {
                    builder = builder
                        .with_allow_http(endpoint.starts_with("http://"))
                        .with_endpoint(endpoint);
                }
                let store = builder
                    .build()
                    .map_err(|e| format!("cannot use s3://{bucket}: {e}"))?;
                Ok(ExportFiles {
                    store: Arc::new(store),
                    prefix: Path::from(prefix.as_str()),
                    local: None,
                    parts: direct::Parts::default(),
                })
            }
        }
    }

    fn job_dir(&self, job_id: &str) -> Path {
        self.prefix.child(job_id)
    }

    fn path(&self, job_id: &str, name: &str) -> Path {
        self.job_dir(job_id).child(name)
    }

    /// A new file `name` of job `job_id`, replacing any earlier one of that name once it is
    /// finished.
    pub fn create(&self, job_id: &str, name: &str) -> FileWriter {
        let sink = match &self.local {
            Some(dir) => Sink::Local(direct::DirectFile::create(
                dir.join(job_id).join(name),
                self.parts.clone(),
            )),
            // One part in memory and at most two in flight (5 MiB is S3's smallest part), so
            // an export's memory does not grow with the defaults' eight 10 MiB parts.
            None => Sink::Store(
                BufWriter::with_capacity(self.store.clone(), self.path(job_id, name), PART)
                    .with_max_concurrency(2),
            ),
        };
        FileWriter {
            sink,
            lines: 0,
            bytes: 0,
        }
    }

    /// The content of a file from byte `offset` on (the whole file when `offset` is 0 or not
    /// before its end), or `None` if there is no such file.
    pub async fn read(
        &self,
        job_id: &str,
        name: &str,
        offset: u64,
    ) -> Result<Option<FileBody>, String> {
        let path = self.path(job_id, name);
        let mut options = object_store::GetOptions::default();
        if offset > 0 {
            match self.store.head(&path).await {
                Ok(meta) if offset < meta.size => {
                    options.range = Some(object_store::GetRange::Offset(offset));
                }
                Ok(_) => {}
                Err(object_store::Error::NotFound { .. }) => return Ok(None),
                Err(e) => return Err(e.to_string()),
            }
        }
        let partial = options.range.is_some();
        match self.store.get_opts(&path, options).await {
            Ok(result) => {
                let total = result.meta.size;
                let bytes = result.range.clone();
                let range = (partial && bytes.end > bytes.start).then(|| ContentRange {
                    start: bytes.start,
                    end: bytes.end - 1,
                    total,
                });
                let stream = result
                    .into_stream()
                    .map(|chunk| chunk.map_err(std::io::Error::other))
                    .boxed();
                Ok(Some(FileBody {
                    size: bytes.end - bytes.start,
                    range,
                    stream,
                }))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The names of the files a job has stored.
    pub async fn list(&self, job_id: &str) -> Result<Vec<String>, String> {
        let dir = self.job_dir(job_id);
        let mut names = Vec::new();
        let mut listing = self.store.list(Some(&dir));
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| e.to_string())?;
            if let Some(name) = meta.location.filename() {
                names.push(name.to_owned());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Removes every file of a job (nothing to do when there is none).
    pub async fn remove(&self, job_id: &str) -> Result<(), String> {
        let dir = self.job_dir(job_id);
        let mut listing = self.store.list(Some(&dir));
        let mut paths = Vec::new();
        while let Some(meta) = listing.next().await {
            paths.push(meta.map_err(|e| e.to_string())?.location);
        }
        drop(listing);
        for path in paths {
            match self.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }
}

/// True for a file name the export writes: letters, digits, `-` and `.`, ending in `.ndjson`,
/// never a path (this keeps `..` and `/` out of store paths).
pub fn is_file_name(name: &str) -> bool {
    name.len() <= 128
        && name.ends_with(".ndjson")
        && !name.starts_with('.')
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// NDJSON lines assembled in memory, to be written to a file in one piece.
#[derive(Debug, Default)]
pub struct Lines {
    bytes: Vec<u8>,
    count: u64,
}

impl Lines {
    /// Lines already assembled: `count` newline-terminated lines in `bytes`.
    pub fn from_ndjson(bytes: Vec<u8>, count: u64) -> Self {
        Lines { bytes, count }
    }

    /// Appends one line (`line` must not contain a newline).
    pub fn push(&mut self, line: &[u8]) {
        self.bytes.extend_from_slice(line);
        self.bytes.push(b'\n');
        self.count += 1;
    }

    /// The number of lines.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Their size in bytes, newlines included.
    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    /// True when there are no lines.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// An NDJSON file being written: lines are buffered and uploaded in parts, so memory stays
/// bounded whatever the file's size. The file appears only when [`FileWriter::finish`]
/// succeeds.
pub struct FileWriter {
    sink: Sink,
    lines: u64,
    bytes: u64,
}

/// Where a [`FileWriter`]'s bytes go.
enum Sink {
    /// An object store's buffered upload.
    Store(BufWriter),
    /// A file in a local directory.
    Local(direct::DirectFile),
}

impl FileWriter {
    /// Appends one line (`line` must not contain a newline).
    pub async fn line(&mut self, line: &[u8]) -> Result<(), String> {
        let mut lines = Lines::default();
        lines.push(line);
        self.write(lines).await
    }

    /// Appends `lines` in one piece.
    pub async fn write(&mut self, lines: Lines) -> Result<(), String> {
        if lines.count == 0 {
            return Ok(());
        }
        self.lines += lines.count;
        self.bytes += lines.bytes.len() as u64;
        match &mut self.sink {
            Sink::Store(writer) => writer
                .put(Bytes::from(lines.bytes))
                .await
                .map_err(|e| e.to_string()),
            Sink::Local(file) => file.write(&lines.bytes).await.map_err(|e| e.to_string()),
        }
    }

    /// Lines written so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Completes the upload; returns the number of lines.
    pub async fn finish(self) -> Result<u64, String> {
        match self.sink {
            Sink::Store(mut writer) => writer.shutdown().await,
            Sink::Local(file) => file.finish().await,
        }
        .map_err(|e| e.to_string())?;
        Ok(self.lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        assert_eq!(
            ExportLocation::parse("s3://b/a/b/"),
            Ok(ExportLocation::S3 {
                bucket: "b".into(),
                prefix: "a/b".into()
            })
        );
        assert!(ExportLocation::parse("s3://").is_err());
        assert_eq!(
            ExportLocation::parse("/tmp/x"),
            Ok(ExportLocation::Local("/tmp/x".into()))
        );
    }

    #[test]
    fn file_names() {
        assert!(is_file_name("Patient-1.ndjson"));
        assert!(is_file_name("Observation-deleted-12.ndjson"));
        for bad in [
            "../x.ndjson",
            "a/b.ndjson",
            "x.json",
            ".ndjson",
            "a..b.ndjson",
            "%2e.ndjson",
        ] {
            assert!(!is_file_name(bad), "{bad}");
        }
    }

    async fn text(body: FileBody) -> Vec<u8> {
        let chunks: Vec<_> = body.stream.collect().await;
        chunks
            .into_iter()
            .flat_map(|c| c.unwrap().to_vec())
            .collect()
    }

    #[test]
    fn range_offsets() {
        for (header, offset) in [
            ("bytes=0-", Some(0)),
            ("bytes=1234-", Some(1234)),
            (" bytes=7- ", Some(7)),
            ("bytes=0-10", None),
            ("bytes=-10", None),
            ("bytes=1-,5-", None),
            ("bytes=+1-", None),
            ("items=1-", None),
            ("bytes=99999999999999999999999-", None),
        ] {
            assert_eq!(range_offset(header), offset, "{header}");
        }
    }

    #[tokio::test]
    async fn write_read_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let files = ExportFiles::open(&ExportLocation::Local(dir.path().join("x"))).unwrap();
        let mut w = files.create("job1", "Patient-1.ndjson");
        w.line(b"{\"a\":1}").await.unwrap();
        w.line(b"{\"a\":2}").await.unwrap();
        assert_eq!(w.finish().await.unwrap(), 2);
        assert_eq!(files.list("job1").await.unwrap(), ["Patient-1.ndjson"]);
        let body = files
            .read("job1", "Patient-1.ndjson", 0)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((body.size, body.range), (16, None));
        assert_eq!(text(body).await, b"{\"a\":1}\n{\"a\":2}\n");
        let tail = files
            .read("job1", "Patient-1.ndjson", 8)
            .await
            .unwrap()
            .unwrap();
        let range = ContentRange {
            start: 8,
            end: 15,
            total: 16,
        };
        assert_eq!((tail.size, tail.range), (8, Some(range)));
        assert_eq!(text(tail).await, b"{\"a\":2}\n");
        for past_the_end in [16, 17] {
            let whole = files
                .read("job1", "Patient-1.ndjson", past_the_end)
                .await
                .unwrap()
                .unwrap();
            assert_eq!((whole.size, whole.range), (16, None));
        }
        for offset in [0, 3] {
            assert!(
                files
                    .read("job1", "nope.ndjson", offset)
                    .await
                    .unwrap()
                    .is_none()
            );
        }
        files.remove("job1").await.unwrap();
        assert!(files.list("job1").await.unwrap().is_empty());
        files.remove("job1").await.unwrap();
    }
}
