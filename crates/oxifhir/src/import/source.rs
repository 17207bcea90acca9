//! Input files and the batches read from them: NDJSON line by line from a byte offset, Bundle
//! files whole.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use super::BadLine;

/// How a file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One resource per line.
    Ndjson,
    /// One Bundle.
    Bundle,
}

/// One input file.
#[derive(Debug, Clone)]
pub struct Input {
    pub path: PathBuf,
    pub size: u64,
    pub kind: Kind,
}

/// One resource to import, with the line (or entry number) it came from.
#[derive(Debug, Clone)]
pub struct Item {
    pub line: u64,
    pub raw: Vec<u8>,
}

/// A batch of work from one file.
#[derive(Debug, Default)]
pub struct Batch {
    pub first_line: u64,
    pub items: Vec<Item>,
    /// A batch or transaction Bundle to process as such.
    pub bundle: Option<Vec<u8>>,
    /// Lines that could not even be read as a resource.
    pub bad: Vec<BadLine>,
    /// Byte offset and line number just after this batch.
    pub end_offset: u64,
    pub end_line: u64,
}

/// The files named by `paths`: files as given, directories' `*.ndjson` and `*.json` files,
/// sorted by name.
pub fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<Input>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("reading directory {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| kind_of(p).is_some())
                .collect();
            entries.sort();
            files.extend(entries);
        } else {
            files.push(path.clone());
        }
    }
    files
        .into_iter()
        .map(|path| {
            let size = std::fs::metadata(&path)
                .with_context(|| format!("reading {}", path.display()))?
                .len();
            let kind = kind_of(&path).unwrap_or(Kind::Ndjson);
            Ok(Input { path, size, kind })
        })
        .collect()
}

fn kind_of(path: &Path) -> Option<Kind> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("ndjson") => Some(Kind::Ndjson),
        Some("json") => Some(Kind::Bundle),
        _ => None,
    }
}

impl Input {
    /// A reader starting at `offset` (line `line`), yielding batches of `batch_size`.
    pub fn open(&self, offset: u64, line: u64, batch_size: usize) -> anyhow::Result<Reader> {
        let mut file =
            File::open(&self.path).with_context(|| format!("opening {}", self.path.display()))?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(Reader {
            input: self.clone(),
            reader: BufReader::with_capacity(1 << 20, file),
            offset,
            line,
            batch_size: batch_size.max(1),
        })
    }
}

/// Reads batches from one input.
pub struct Reader {
    input: Input,
    reader: BufReader<File>,
    offset: u64,
    line: u64,
    batch_size: usize,
}

impl Reader {
    /// The next batch, or `None` at the end of the file.
    pub fn next_batch(&mut self) -> anyhow::Result<Option<Batch>> {
        if self.offset >= self.input.size {
            return Ok(None);
        }
        match self.input.kind {
            Kind::Ndjson => self.ndjson_batch().map(Some),
            Kind::Bundle => self.bundle_batch().map(Some),
        }
    }

    fn ndjson_batch(&mut self) -> anyhow::Result<Batch> {
        let mut batch = Batch {
            first_line: self.line + 1,
            ..Default::default()
        };
        let mut buf = Vec::new();
        while batch.items.len() < self.batch_size {
            buf.clear();
            let n = self.reader.read_until(b'\n', &mut buf)?;
            if n == 0 {
                break;
            }
            self.offset += n as u64;
            self.line += 1;
            let text = trim(&buf);
            if text.is_empty() {
                continue;
            }
            batch.items.push(Item {
                line: self.line,
                raw: text.to_vec(),
            });
        }
        batch.end_offset = self.offset;
        batch.end_line = self.line;
        Ok(batch)
    }

    fn bundle_batch(&mut self) -> anyhow::Result<Batch> {
        let bytes = std::fs::read(&self.input.path)?;
        self.offset = self.input.size;
        let mut batch = Batch {
            first_line: 1,
            end_offset: self.input.size,
            end_line: 1,
            ..Default::default()
        };
        let value: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => {
                batch.bad.push(BadLine {
                    line: e.line() as u64,
                    message: format!("malformed JSON: {e}"),
                });
                return Ok(batch);
            }
        };
        if value.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            batch.items.push(Item {
                line: 1,
                raw: bytes,
            });
            return Ok(batch);
        }
        match value.get("type").and_then(Value::as_str) {
            Some("batch" | "transaction") => batch.bundle = Some(bytes),
            _ => {
                for (i, entry) in value
                    .get("entry")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let line = i as u64 + 1;
                    match entry.get("resource") {
                        Some(resource) => batch.items.push(Item {
                            line,
                            raw: serde_json::to_vec(resource)?,
                        }),
                        None => batch.bad.push(BadLine {
                            line,
                            message: "Bundle entry without a resource".into(),
                        }),
                    }
                }
            }
        }
        Ok(batch)
    }
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}
