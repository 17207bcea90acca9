//! The store's errors, in domain terms; backends map driver errors into them at the boundary.

/// Result of a store operation.
pub type StoreResult<T> = Result<T, StoreError>;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A write expected another current version (or expected the id to be unused).
    #[error("{resource_type}/{id}: expected version {expected:?}, found {found:?}")]
    VersionConflict {
        resource_type: String,
        id: String,
        expected: Option<i64>,
        found: Option<i64>,
    },
    /// A concurrent transaction got in the way (PostgreSQL `40001`/`40P01`, SQLite busy);
    /// running the whole transaction again may succeed.
    #[error("transaction conflict, retry: {0}")]
    Retryable(String),
    /// A paging cursor that this store did not issue, or that no longer applies.
    #[error("invalid paging cursor")]
    InvalidCursor,
    /// The database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else the database reported.
    #[error("database error: {0}")]
    Backend(String),
}

impl StoreError {
    /// True when re-running the whole transaction may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::Retryable(_))
    }
}
