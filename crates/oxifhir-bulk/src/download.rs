//! Downloading one file of the manifest into `{name}.part`, renamed to `{name}` once complete:
//! a partial file resumes with `Range: bytes={size}-` (a `200` answer means the server
//! ignored the range and the file starts over), a connection lost mid-file resumes the same
//! way, and the finished file's lines are counted against the manifest's `count`.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, Response, Url};
use tokio::io::AsyncWriteExt;

use crate::manifest::FileTask;
use crate::retry::Backoff;
use crate::session::{Answer, Outgoing, Session, failure};
use crate::{Error, FileId};

/// How the body of an answer continues the partial file.
enum Continuation {
    /// Append from `offset`.
    Append { offset: u64 },
    /// Write the file from its start.
    Restart,
}

/// The suffix of a file being downloaded.
pub const PART_SUFFIX: &str = ".part";

/// Downloads `task` (file `id`) into `dir`; returns its line count. A count that differs from
/// the manifest's is [`Error::CountMismatch`] (the file is kept, for a look).
pub(crate) async fn download(
    session: Arc<Session>,
    id: FileId,
    task: FileTask,
    dir: PathBuf,
    authorize: bool,
) -> Result<u64, Error> {
    let path = dir.join(&task.name);
    let part = dir.join(format!("{}{PART_SUFFIX}", task.name));
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| Error::io(parent, e))?;
    }
    let url = Url::parse(&task.url)
        .map_err(|e| Error::Protocol(format!("bad file URL {}: {e}", task.url)))?;
    let context = format!("downloading {} ({url})", task.name);
    let mut backoff = Backoff::new(session.policy);
    loop {
        let offset = match tokio::fs::metadata(&part).await {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(Error::io(&part, e)),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            "accept",
            HeaderValue::from_static("application/fhir+ndjson"),
        );
        if offset > 0
            && let Ok(range) = HeaderValue::try_from(format!("bytes={offset}-"))
        {
            headers.insert("range", range);
        }
        let answer = session
            .send(&Outgoing {
                method: Method::GET,
                url: &url,
                headers,
                body: None,
                authorize,
                context: &context,
            })
            .await?;
        let mut response = match answer {
            Answer::Success(response) => response,
            Answer::Failure { status, body, .. } => {
                return Err(failure(&context, status, &body));
            }
        };
        let continuation = match continuation(&response, offset) {
            Ok(continuation) => continuation,
            Err(message) => return Err(Error::Protocol(format!("{context}: {message}"))),
        };
        let start = match continuation {
            Continuation::Append { offset } => offset,
            Continuation::Restart => {
                if offset > 0 {
                    session.observer.notice(&format!(
                        "{}: the server did not resume at byte {offset}; downloading it again",
                        task.name
                    ));
                }
                0
            }
        };
        let size = response.content_length().map(|length| start + length);
        session.observer.file_started(id, &task.name, start, size);
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(start > 0)
            .truncate(start == 0)
            .open(&part)
            .await
            .map_err(|e| Error::io(&part, e))?;
        let mut written = start;
        let outcome = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    file.write_all(&chunk)
                        .await
                        .map_err(|e| Error::io(&part, e))?;
                    written += chunk.len() as u64;
                    session.observer.file_progress(id, written);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        file.flush().await.map_err(|e| Error::io(&part, e))?;
        file.sync_all().await.map_err(|e| Error::io(&part, e))?;
        drop(file);
        if let Err(e) = outcome {
            if written > start {
                backoff.reset();
            }
            let reason = format!("{context}: the connection broke at byte {written}");
            match backoff.failed(None) {
                Some(wait) => {
                    session.wait(&reason, wait).await;
                    continue;
                }
                None => return Err(Error::http(context, e)),
            }
        }
        tokio::fs::rename(&part, &path)
            .await
            .map_err(|e| Error::io(&path, e))?;
        let lines = count_lines(path.clone()).await?;
        return match task.count {
            Some(count) if count != lines => Err(Error::CountMismatch(vec![format!(
                "{} has {lines} lines, the manifest says {count} ({url})",
                task.name
            )])),
            _ => Ok(lines),
        };
    }
}

/// How `response` continues a partial file of `offset` bytes: `206` must start at `offset`,
/// `200` is the whole file.
fn continuation(response: &Response, offset: u64) -> Result<Continuation, String> {
    match response.status().as_u16() {
        200 => Ok(Continuation::Restart),
        206 if offset > 0 => {
            let range = response
                .headers()
                .get("content-range")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            match range_start(range) {
                Some(start) if start == offset => Ok(Continuation::Append { offset }),
                _ => Err(format!(
                    "the server answered Range bytes={offset}- with Content-Range '{range}'"
                )),
            }
        }
        status => Err(format!("the server answered {status}, expected 200")),
    }
}

/// The first byte of a `Content-Range: bytes {start}-{end}/{total}`.
fn range_start(header: &str) -> Option<u64> {
    let spec = header.trim().strip_prefix("bytes ")?;
    let (start, _) = spec.split_once('-')?;
    start.trim().parse().ok()
}

/// The lines of a file that hold something (NDJSON has one resource per line).
async fn count_lines(path: PathBuf) -> Result<u64, Error> {
    let counted = tokio::task::spawn_blocking(move || -> Result<u64, Error> {
        let file = std::fs::File::open(&path).map_err(|e| Error::io(&path, e))?;
        count_in(std::io::BufReader::with_capacity(1 << 20, file), &path)
    })
    .await;
    counted.map_err(|e| Error::Protocol(format!("counting lines: {e}")))?
}

fn count_in(mut reader: impl BufRead, path: &Path) -> Result<u64, Error> {
    let mut lines = 0;
    let mut blank = true;
    loop {
        let buffer = reader.fill_buf().map_err(|e| Error::io(path, e))?;
        if buffer.is_empty() {
            break;
        }
        for &byte in buffer {
            match byte {
                b'\n' => {
                    if !blank {
                        lines += 1;
                    }
                    blank = true;
                }
                b' ' | b'\t' | b'\r' => {}
                _ => blank = false,
            }
        }
        let n = buffer.len();
        reader.consume(n);
    }
    Ok(lines + u64::from(!blank))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_counted_like_ndjson() {
        for (text, lines) in [
            ("", 0),
            ("{}", 1),
            ("{}\n", 1),
            ("{}\n{}\n", 2),
            ("{}\r\n{}", 2),
            ("{}\n\n  \n{}\n", 2),
        ] {
            let counted = count_in(std::io::Cursor::new(text), Path::new("x")).unwrap();
            assert_eq!(counted, lines, "{text:?}");
        }
    }

    #[test]
    fn content_range_starts() {
        assert_eq!(range_start("bytes 10-19/20"), Some(10));
        assert_eq!(range_start("bytes */20"), None);
        assert_eq!(range_start("items 1-2/3"), None);
    }
}
