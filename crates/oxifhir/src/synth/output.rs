//! Where `oxifhir synth` writes: resources are serialized into an in-memory [`Batch`], then
//! appended to one buffered NDJSON file per resource type (one minified resource per line),
//! with a count per type.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde_json::Value;

use super::json;

/// The resource types `oxifhir synth` writes, in the order the summary lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Organization,
    Practitioner,
    Patient,
    Encounter,
    Observation,
    Condition,
    MedicationRequest,
    Group,
    Schedule,
    Slot,
    Appointment,
}

impl Kind {
    /// Every kind, in summary order.
    pub const ALL: [Kind; 11] = [
        Kind::Organization,
        Kind::Practitioner,
        Kind::Patient,
        Kind::Encounter,
        Kind::Observation,
        Kind::Condition,
        Kind::MedicationRequest,
        Kind::Group,
        Kind::Schedule,
        Kind::Slot,
        Kind::Appointment,
    ];

    /// The FHIR resource type name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Organization => "Organization",
            Kind::Practitioner => "Practitioner",
            Kind::Patient => "Patient",
            Kind::Encounter => "Encounter",
            Kind::Observation => "Observation",
            Kind::Condition => "Condition",
            Kind::MedicationRequest => "MedicationRequest",
            Kind::Group => "Group",
            Kind::Schedule => "Schedule",
            Kind::Slot => "Slot",
            Kind::Appointment => "Appointment",
        }
    }

    /// The position of this kind in [`Kind::ALL`].
    fn index(self) -> usize {
        self as usize
    }
}

/// Resources serialized in memory, one NDJSON buffer per kind: what generators write into,
/// so that patients can be generated on several threads and still be written in order.
#[derive(Debug, Default)]
pub struct Batch {
    buffers: [Vec<u8>; Kind::ALL.len()],
    counts: [u64; Kind::ALL.len()],
}

impl Batch {
    /// Appends `resource` (of type `kind`) as one line.
    pub fn emit(&mut self, kind: Kind, resource: &Value) -> anyhow::Result<()> {
        let buffer = &mut self.buffers[kind.index()];
        serde_json::to_writer(&mut *buffer, resource)
            .with_context(|| format!("cannot serialize a {}", kind.name()))?;
        buffer.push(b'\n');
        self.counts[kind.index()] += 1;
        Ok(())
    }

    /// Appends a resource of type `kind` as one line, written by `build` after its
    /// `resourceType`.
    pub fn write(&mut self, kind: Kind, build: impl FnOnce(&mut json::Object)) {
        let buffer = &mut self.buffers[kind.index()];
        json::object(buffer, |o| {
            o.string("resourceType", kind.name());
            build(o);
        });
        buffer.push(b'\n');
        self.counts[kind.index()] += 1;
    }

    /// The number of bytes held.
    pub fn bytes(&self) -> usize {
        self.buffers.iter().map(Vec::len).sum()
    }
}

/// One open NDJSON file per kind.
pub struct Output {
    files: Vec<(PathBuf, BufWriter<File>)>,
    counts: [u64; Kind::ALL.len()],
}

/// Each file's write buffer: large enough that writes reach the kernel in big blocks.
const BUFFER_BYTES: usize = 1 << 20;

impl Output {
    /// Creates `dir` if needed and `<Type>.ndjson` in it for every kind (truncating old ones).
    pub fn create(dir: &Path) -> anyhow::Result<Output> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
        let mut files = Vec::with_capacity(Kind::ALL.len());
        for kind in Kind::ALL {
            let path = dir.join(format!("{}.ndjson", kind.name()));
            let file =
                File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            files.push((path, BufWriter::with_capacity(BUFFER_BYTES, file)));
        }
        Ok(Output {
            files,
            counts: [0; Kind::ALL.len()],
        })
    }

    /// Writes out what `batch` holds and empties it.
    pub fn append(&mut self, batch: &mut Batch) -> anyhow::Result<()> {
        for kind in Kind::ALL {
            let (path, writer) = &mut self.files[kind.index()];
            let buffer = &mut batch.buffers[kind.index()];
            writer
                .write_all(buffer)
                .with_context(|| format!("cannot write to {}", path.display()))?;
            buffer.clear();
            self.counts[kind.index()] += std::mem::take(&mut batch.counts[kind.index()]);
        }
        Ok(())
    }

    /// Flushes every file and returns the count of resources written per kind.
    pub fn finish(mut self) -> anyhow::Result<Vec<(Kind, u64)>> {
        for (path, writer) in &mut self.files {
            writer
                .flush()
                .with_context(|| format!("cannot write to {}", path.display()))?;
        }
        Ok(Kind::ALL
            .iter()
            .map(|&kind| (kind, self.counts[kind.index()]))
            .collect())
    }
}
