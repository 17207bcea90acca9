//! `oxifhir synth`: deterministic, valid FHIR R4 test data as NDJSON, one file per resource
//! type, shaped like a small health system.
//!
//! Shared pools come first (Organizations, Practitioners, and per Practitioner a Schedule with
//! its Slots and the Appointments booked in the busy ones), then the patients one by one (a
//! Patient and its Encounters, Observations, Conditions and MedicationRequests), then a few
//! Groups. Patients are generated in chunks on several threads and written in order. Memory
//! stays bounded whatever the number of patients: a few chunks are in flight at a time, and
//! only the Group member lists (at most [`admin::GROUP_CAP`] patients each) are kept.
//!
//! **Determinism:** the output is a pure function of `--patients`, `--seed` and
//! `--per-patient` (not of `--threads`). Every random draw comes from a stream derived from the seed
//! ([`rng::Rng`]), and "now" is a fixed day derived from the seed, not the wall clock, so the
//! same flags give byte-identical files on any machine.

mod admin;
mod chart;
mod clinical;
mod codes;
mod json;
mod output;
mod patient;
mod rng;
mod scheduling;
mod vocab;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use admin::Cohorts;
pub use output::Kind;
use output::{Batch, Output};
use patient::PatientFacts;
use rng::{DAY, Rng, Stream};

/// Flags of `oxifhir synth`.
#[derive(Debug, Clone, Args)]
pub struct SynthArgs {
    /// Number of patients (at most 10 million).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
    pub patients: u32,
    /// Seed of every random choice: the same flags give byte-identical files.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory to write `<Type>.ndjson` files into (created if missing; files replaced).
    #[arg(long)]
    pub out: PathBuf,
    /// About how many resources to write per patient, shared ones included.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(10..=2000))]
    pub per_patient: u32,
    /// Threads generating patients (default: one per core); the output does not depend on it.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: Option<u16>,
}

/// What to generate, and the facts derived from the flags that every generator shares.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The seed of every random stream.
    pub seed: u64,
    /// Number of patients (`pat-000001` ... ).
    pub patients: u32,
    /// Target number of resources per patient.
    pub per_patient: u32,
    /// "Today" for the data, in days since 1970-01-01: every clinical timestamp is before it.
    pub epoch_day: i64,
    /// Number of Practitioners and of Organizations: about one per 20 patients, at least 3.
    pub practitioners: u32,
    pub organizations: u32,
}

/// 2025-01-01, in days since 1970-01-01: the latest possible epoch.
const LATEST_EPOCH_DAY: i64 = 20_089;

impl Plan {
    /// The plan for `patients` patients from `seed`, with `per_patient` resources each.
    pub fn new(patients: u32, seed: u64, per_patient: u32) -> Plan {
        let epoch_offset = Rng::new(seed, Stream::Epoch, 0).below(365) as i64;
        let pool = patients.div_ceil(20).max(3);
        Plan {
            seed,
            patients,
            per_patient,
            epoch_day: LATEST_EPOCH_DAY - epoch_offset,
            practitioners: pool,
            organizations: pool,
        }
    }

    /// The epoch in seconds since 1970 (midnight UTC).
    pub fn epoch(&self) -> i64 {
        self.epoch_day * DAY
    }

    /// The Practitioner (1-based) who looks after `patient`: panels are round-robin.
    pub fn home_practitioner(&self, patient: u32) -> u32 {
        (patient - 1) % self.practitioners + 1
    }

    /// The Organization (1-based) a Practitioner works for.
    pub fn organization_of(&self, practitioner: u32) -> u32 {
        (practitioner - 1) % self.organizations + 1
    }
}

/// `Patient/pat-000042`.
pub fn patient_ref(patient: u32) -> String {
    format!("Patient/pat-{patient:06}")
}

/// `Practitioner/prac-000042`.
pub fn practitioner_ref(practitioner: u32) -> String {
    format!("Practitioner/prac-{practitioner:06}")
}

/// `Organization/org-000042`.
pub fn organization_ref(organization: u32) -> String {
    format!("Organization/org-{organization:06}")
}

/// Patients per unit of work: a thread generates a whole chunk into one [`Batch`].
const CHUNK_PATIENTS: u32 = 100;

/// Pool resources are written out whenever their batch holds this many bytes.
const FLUSH_BYTES: usize = 8 << 20;

/// Writes everything `plan` describes into `dir`, generating patients on `threads` threads
/// (the output does not depend on it); returns the count per resource type.
pub fn generate(plan: &Plan, dir: &Path, threads: usize) -> anyhow::Result<Vec<(Kind, u64)>> {
    let mut out = Output::create(dir)?;
    let mut batch = Batch::default();
    admin::organizations(plan, &mut batch)?;
    admin::practitioners(plan, &mut batch)?;
    for index in 1..=plan.practitioners {
        scheduling::schedule(plan, index, &mut batch);
        if batch.bytes() >= FLUSH_BYTES {
            out.append(&mut batch)?;
        }
    }
    out.append(&mut batch)?;
    let cohorts = patients(plan, threads, &mut out)?;
    admin::groups(plan, &cohorts, &mut batch)?;
    out.append(&mut batch)?;
    out.finish()
}

/// Generates the patients, chunk `c` on thread `c % threads`, and writes the chunks in order,
/// so the files are the same whatever the number of threads. Each thread runs at most one
/// chunk ahead of the writer, which keeps memory bounded.
fn patients(plan: &Plan, threads: usize, out: &mut Output) -> anyhow::Result<Cohorts> {
    let chunks = plan.patients.div_ceil(CHUNK_PATIENTS);
    let threads = threads.min(chunks as usize).max(1);
    let mut cohorts = Cohorts::default();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let mut receivers = Vec::with_capacity(threads);
        for worker in 0..threads {
            let (sender, receiver) = mpsc::sync_channel(1);
            receivers.push(receiver);
            scope.spawn(move || {
                for chunk in (worker as u32..chunks).step_by(threads) {
                    let result = chunk_of_patients(plan, chunk);
                    let failed = result.is_err();
                    // The writer hangs up when it fails; then there is nothing left to do.
                    if sender.send(result).is_err() || failed {
                        break;
                    }
                }
            });
        }
        for chunk in 0..chunks {
            let (mut batch, facts) = receivers[chunk as usize % threads]
                .recv()
                .context("a generator thread stopped")??;
            out.append(&mut batch)?;
            for (index, facts) in (chunk * CHUNK_PATIENTS + 1..).zip(&facts) {
                cohorts.add(index, facts);
            }
        }
        Ok(())
    })?;
    Ok(cohorts)
}

/// The patients of chunk `chunk` (0-based), serialized, and their facts in order.
fn chunk_of_patients(plan: &Plan, chunk: u32) -> anyhow::Result<(Batch, Vec<PatientFacts>)> {
    let first = chunk * CHUNK_PATIENTS + 1;
    let last = (first + CHUNK_PATIENTS - 1).min(plan.patients);
    let mut batch = Batch::default();
    let mut facts = Vec::with_capacity(CHUNK_PATIENTS as usize);
    for index in first..=last {
        facts.push(patient::generate(plan, index, &mut batch)?);
    }
    Ok((batch, facts))
}

/// Runs `oxifhir synth`: generates, then prints the count per type and the throughput.
pub fn run(args: SynthArgs) -> anyhow::Result<()> {
    let plan = Plan::new(args.patients, args.seed, args.per_patient);
    let started = Instant::now();
    let threads = args
        .threads
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get));
    let counts = generate(&plan, &args.out, threads)?;
    let seconds = started.elapsed().as_secs_f64();
    let total: u64 = counts.iter().map(|(_, count)| count).sum();
    for (kind, count) in &counts {
        println!("{:<18} {count:>10}", kind.name());
    }
    println!("{:<18} {total:>10}", "total");
    println!(
        "{total} resources for {} patients in {seconds:.2} s ({:.0} resources/s), written to {}",
        plan.patients,
        total as f64 / seconds.max(1e-9),
        args.out.display()
    );
    Ok(())
}
