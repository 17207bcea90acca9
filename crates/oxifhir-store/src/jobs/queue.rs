//! [`JobQueue`] once for both backends: the statements of [`super::sql`] run through a
//! backend's [`JobSql`].

use async_trait::async_trait;
use oxifhir_model::Instant;

use super::sql;
use super::{
    CancelResult, Claim, JobCount, JobFilter, JobFinish, JobQueue, JobRecord, JobState, NewJob,
};
use crate::StoreResult;
use crate::sql::{Dialect, Param};

/// What a backend provides to run job statements. Statements use `$n` placeholders.
#[async_trait]
pub(crate) trait JobSql: Send + Sync {
    fn dialect(&self) -> Dialect;

    /// Runs a statement that returns job rows ([`sql::COLUMNS`]).
    async fn query_jobs(&self, sql: String, params: Vec<Param>) -> StoreResult<Vec<JobRecord>>;

    /// Runs a statement; the number of rows it changed.
    async fn execute(&self, sql: String, params: Vec<Param>) -> StoreResult<u64>;

    /// Runs a statement that returns one integer.
    async fn query_count(&self, sql: String, params: Vec<Param>) -> StoreResult<i64>;

    /// Runs a statement without parameters whose rows are two texts and a count.
    async fn query_grouped_counts(&self, sql: String) -> StoreResult<Vec<(String, String, i64)>>;

    /// Tells idle workers (on every node) that work may be claimable.
    async fn notify(&self);

    fn wakeups(&self) -> tokio::sync::watch::Receiver<u64>;
}

/// A [`JobQueue`] over a backend's [`JobSql`].
pub(crate) struct SqlJobQueue<B>(pub B);

fn opt_ms(instant: Option<Instant>) -> Param {
    Param::OptInt(instant.map(Instant::millis))
}

fn ms(instant: Instant) -> Param {
    Param::Int(instant.millis())
}

fn lease_end(now: Instant, lease: std::time::Duration) -> Instant {
    Instant::from_millis(now.millis() + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2))
}

impl<B: JobSql> SqlJobQueue<B> {
    async fn one(&self, sql: String, params: Vec<Param>) -> StoreResult<Option<JobRecord>> {
        Ok(self.0.query_jobs(sql, params).await?.into_iter().next())
    }

    async fn held(&self, sql: String, params: Vec<Param>) -> StoreResult<bool> {
        Ok(self.0.execute(sql, params).await? > 0)
    }
}

#[async_trait]
impl<B: JobSql> JobQueue for SqlJobQueue<B> {
    async fn enqueue(&self, job: NewJob) -> StoreResult<JobRecord> {
        let params = vec![
            Param::Text(job.id.clone()),
            Param::Text(job.kind),
            Param::OptText(job.owner),
            Param::OptBytes(Some(job.input)),
            Param::Text(job.request_url),
            ms(job.request_time),
        ];
        let record = self
            .one(sql::insert(), params)
            .await?
            .ok_or_else(|| crate::StoreError::Backend(format!("job {} not stored", job.id)))?;
        self.0.notify().await;
        Ok(record)
    }

    async fn job(&self, id: &str) -> StoreResult<Option<JobRecord>> {
        self.one(sql::select_one(), vec![Param::Text(id.to_owned())])
            .await
    }

    async fn list(&self, filter: &JobFilter) -> StoreResult<Vec<JobRecord>> {
        let mut params = vec![Param::Int(i64::try_from(filter.limit).unwrap_or(i64::MAX))];
        let mut conditions = String::new();
        if !filter.states.is_empty() {
            params.push(Param::TextList(
                filter.states.iter().map(|s| s.code().to_owned()).collect(),
            ));
            let placeholder = format!("${}", params.len());
            conditions.push_str(" AND ");
            conditions.push_str(&self.0.dialect().in_text_list("state", &placeholder));
        }
        if let Some(owner) = &filter.owner {
            params.push(Param::Text(owner.clone()));
            conditions.push_str(&format!(" AND owner = ${}", params.len()));
        }
        if let Some((time, id)) = &filter.after {
            params.push(ms(*time));
            params.push(Param::Text(id.clone()));
            let (t, i) = (params.len() - 1, params.len());
            let beyond = if filter.newest_first { '<' } else { '>' };
            conditions.push_str(&format!(
                " AND (request_time {beyond} ${t} OR (request_time = ${t} AND id {beyond} ${i}))"
            ));
        }
        if !filter.include_released {
            conditions.push_str(" AND released_at IS NULL");
        }
        self.0
            .query_jobs(sql::list(&conditions, filter.newest_first), params)
            .await
    }

    async fn active_count(&self, owner: Option<&str>) -> StoreResult<i64> {
        match owner {
            Some(owner) => {
                self.0
                    .query_count(
                        sql::active_count("owner = $1"),
                        vec![Param::Text(owner.to_owned())],
                    )
                    .await
            }
            None => {
                self.0
                    .query_count(sql::active_count("owner IS NULL"), Vec::new())
                    .await
            }
        }
    }

    async fn counts(&self) -> StoreResult<Vec<JobCount>> {
        let rows = self.0.query_grouped_counts(sql::COUNTS.to_owned()).await?;
        rows.into_iter()
            .map(|(kind, state, count)| {
                let state = JobState::from_code(&state).ok_or_else(|| {
                    crate::StoreError::Backend(format!("jobs: unknown state {state}"))
                })?;
                Ok(JobCount { kind, state, count })
            })
            .collect()
    }

    async fn claim(&self, claim: &Claim) -> StoreResult<Option<JobRecord>> {
        let dialect = self.0.dialect();
        let lock = match dialect {
            Dialect::Postgres => "FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let statement = sql::claim(&dialect.in_text_list("kind", "$4"), lock);
        let params = vec![
            Param::Text(claim.worker.clone()),
            ms(lease_end(claim.now, claim.lease)),
            ms(claim.now),
            Param::TextList(claim.kinds.clone()),
        ];
        self.one(statement, params).await
    }

    async fn heartbeat(
        &self,
        id: &str,
        attempt: i64,
        lease_until: Instant,
        progress: Option<&str>,
    ) -> StoreResult<bool> {
        let params = vec![
            Param::Text(id.to_owned()),
            Param::Int(attempt),
            ms(lease_until),
            Param::OptText(progress.map(str::to_owned)),
            ms(Instant::now()),
        ];
        self.held(sql::heartbeat(), params).await
    }

    async fn checkpoint(
        &self,
        id: &str,
        attempt: i64,
        checkpoint: &[u8],
        progress: Option<&str>,
        transaction_time: Option<Instant>,
    ) -> StoreResult<bool> {
        let (text, params) = checkpoint_statement(
            id,
            attempt,
            checkpoint,
            progress,
            transaction_time,
            Instant::now(),
        );
        self.held(text, params).await
    }

    async fn finish(&self, id: &str, attempt: i64, finish: &JobFinish) -> StoreResult<bool> {
        let params = vec![
            Param::Text(id.to_owned()),
            Param::Int(attempt),
            Param::Text(finish.state.code().to_owned()),
            Param::OptBytes(finish.result.clone()),
            Param::OptText(finish.error.clone()),
            Param::OptText(finish.progress.clone()),
            ms(finish.now),
            ms(finish.expires_at),
        ];
        self.held(sql::finish(), params).await
    }

    async fn requeue(
        &self,
        id: &str,
        attempt: i64,
        not_before: Instant,
        failed: Option<&str>,
    ) -> StoreResult<bool> {
        let params = vec![
            Param::Text(id.to_owned()),
            Param::Int(attempt),
            ms(not_before),
            Param::Int(i64::from(failed.is_some())),
            Param::OptText(failed.map(str::to_owned)),
            ms(Instant::now()),
        ];
        let requeued = self.held(sql::requeue(), params).await?;
        if requeued {
            self.0.notify().await;
        }
        Ok(requeued)
    }

    async fn cancel(
        &self,
        id: &str,
        now: Instant,
        expires_at: Instant,
    ) -> StoreResult<CancelResult> {
        let params = vec![Param::Text(id.to_owned()), ms(now), ms(expires_at)];
        if let Some(record) = self.one(sql::cancel(), params).await? {
            return Ok(CancelResult::Cancelled(record));
        }
        Ok(match self.job(id).await? {
            Some(record) => CancelResult::Unchanged(record),
            None => CancelResult::NotFound,
        })
    }

    async fn release(
        &self,
        id: &str,
        now: Instant,
        expires_at: Instant,
    ) -> StoreResult<Option<JobRecord>> {
        let params = vec![Param::Text(id.to_owned()), ms(now), ms(expires_at)];
        self.one(sql::release(), params).await
    }

    async fn expired(&self, now: Instant, limit: usize) -> StoreResult<Vec<JobRecord>> {
        let params = vec![
            ms(now),
            Param::Int(i64::try_from(limit).unwrap_or(i64::MAX)),
        ];
        self.0.query_jobs(sql::expired(), params).await
    }

    async fn purge(&self, id: &str) -> StoreResult<()> {
        self.0
            .execute(sql::PURGE.to_owned(), vec![Param::Text(id.to_owned())])
            .await
            .map(drop)
    }

    fn wakeups(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.wakeups()
    }
}

/// The statement (with `$n` placeholders) and parameters of [`JobQueue::checkpoint`], for
/// backends that also run it inside a transaction ([`crate::StoreTx::job_checkpoint`]).
pub(crate) fn checkpoint_statement(
    id: &str,
    attempt: i64,
    checkpoint: &[u8],
    progress: Option<&str>,
    transaction_time: Option<Instant>,
    now: Instant,
) -> (String, Vec<Param>) {
    let params = vec![
        Param::Text(id.to_owned()),
        Param::Int(attempt),
        Param::OptBytes(Some(checkpoint.to_vec())),
        Param::OptText(progress.map(str::to_owned)),
        opt_ms(transaction_time),
        ms(now),
    ];
    (sql::checkpoint(), params)
}

/// Builds a [`JobRecord`] from its columns in [`sql::COLUMNS`] order, as each backend reads
/// them.
pub(crate) struct JobRow {
    pub id: String,
    pub kind: String,
    pub owner: Option<String>,
    pub state: String,
    pub input: Vec<u8>,
    pub request_url: String,
    pub request_time: i64,
    pub transaction_time: Option<i64>,
    pub attempt: i64,
    pub worker: Option<String>,
    pub lease_until: Option<i64>,
    pub not_before: i64,
    pub failures: i64,
    pub progress: Option<String>,
    pub checkpoint: Option<Vec<u8>>,
    pub result: Option<Vec<u8>>,
    pub error: Option<String>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub released_at: Option<i64>,
    pub updated_at: i64,
}

impl JobRow {
    /// The record, or an error for a state code this version does not know.
    pub fn into_record(self) -> StoreResult<JobRecord> {
        let at = |ms: Option<i64>| ms.map(Instant::from_millis);
        let state = JobState::from_code(&self.state).ok_or_else(|| {
            crate::StoreError::Backend(format!("job {}: unknown state {}", self.id, self.state))
        })?;
        Ok(JobRecord {
            state,
            kind: self.kind,
            owner: self.owner,
            input: self.input,
            request_url: self.request_url,
            request_time: Instant::from_millis(self.request_time),
            transaction_time: at(self.transaction_time),
            attempt: self.attempt,
            worker: self.worker,
            lease_until: at(self.lease_until),
            not_before: Instant::from_millis(self.not_before),
            failures: self.failures,
            progress: self.progress,
            checkpoint: self.checkpoint,
            result: self.result,
            error: self.error,
            started_at: at(self.started_at),
            finished_at: at(self.finished_at),
            expires_at: at(self.expires_at),
            released_at: at(self.released_at),
            updated_at: Instant::from_millis(self.updated_at),
            id: self.id,
        })
    }
}
