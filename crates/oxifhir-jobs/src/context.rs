//! What a running job sees of the runtime: its record, the store, cancellation, progress
//! and checkpoints.

use std::sync::{Arc, Mutex};

use oxifhir_model::Instant;
use oxifhir_store::jobs::JobRecord;
use oxifhir_store::{Store, StoreTx};
use tokio_util::sync::CancellationToken;

use crate::JobError;

/// The running attempt of one job.
pub struct JobContext {
    pub(crate) record: JobRecord,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) stop: CancellationToken,
    /// The latest progress text, written by the heartbeat.
    pub(crate) progress: Arc<Mutex<Option<String>>>,
}

impl JobContext {
    /// The job as claimed by this attempt (`attempt` is its fencing counter).
    pub fn job(&self) -> &JobRecord {
        &self.record
    }

    /// The store the job lives in.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Where a previous attempt got to; `None` on the first attempt.
    pub fn checkpoint_data(&self) -> Option<&[u8]> {
        self.record.checkpoint.as_deref()
    }

    /// True once the job must stop (cancelled, lease lost, shutting down).
    pub fn is_stopped(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Completes when the job must stop.
    pub async fn stopped(&self) {
        self.stop.cancelled().await;
    }

    /// `Err(Stopped)` once the job must stop: for `?` in loops.
    pub fn check(&self) -> Result<(), JobError> {
        if self.is_stopped() {
            Err(JobError::Stopped)
        } else {
            Ok(())
        }
    }

    /// Sets the progress text (`X-Progress`, under 100 characters); the heartbeat stores it.
    pub fn set_progress(&self, text: impl Into<String>) {
        let mut text = text.into();
        if text.len() > 99 {
            let mut end = 99;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
    }

    /// The current progress text.
    pub fn progress(&self) -> Option<String> {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stores where the job has got to, and the progress text that goes with it, inside
    /// `tx`: both commit exactly when the work done in `tx` does, so a resumed attempt
    /// neither repeats nor skips it. Set the same text with [`JobContext::set_progress`] once
    /// `tx` has committed. `Err(Stopped)` when this attempt no longer holds the job (the
    /// caller then drops `tx`, rolling its work back).
    pub async fn checkpoint_in(
        &self,
        tx: &mut dyn StoreTx,
        data: &[u8],
        progress: &str,
    ) -> Result<(), JobError> {
        self.check()?;
        let held = tx
            .job_checkpoint(&self.record.id, self.record.attempt, data, Some(progress))
            .await?;
        if held {
            Ok(())
        } else {
            self.stop.cancel();
            Err(JobError::Stopped)
        }
    }

    /// Stores where the job has got to, with the current progress, and (the first time one
    /// is given) the job's transaction time. `Err(Stopped)` when this attempt no longer holds
    /// the job: whatever it did after its last checkpoint is another attempt's to redo.
    pub async fn checkpoint(
        &self,
        data: &[u8],
        transaction_time: Option<Instant>,
    ) -> Result<(), JobError> {
        self.check()?;
        let progress = self.progress();
        let held = self
            .store
            .jobs()
            .checkpoint(
                &self.record.id,
                self.record.attempt,
                data,
                progress.as_deref(),
                transaction_time,
            )
            .await?;
        if held {
            Ok(())
        } else {
            self.stop.cancel();
            Err(JobError::Stopped)
        }
    }
}
