//! A store per test, on either backend, plus helpers to write versions.

use oxifhir_store::Isolation;
use std::sync::Arc;

use oxifhir_model::Instant;
use oxifhir_store::postgres::PostgresStore;
use oxifhir_store::sqlite::SqliteStore;
use oxifhir_store::{IndexEntries, ResourceVersion, Store, StoreResult, VersionWrite, WriteMethod};

/// The environment variable with the PostgreSQL URL for the `postgres` variants.
const PG_ENV: &str = "OXIFHIR_TEST_POSTGRES";

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<SqliteStore>, Arc<tempfile::TempDir>),
    Postgres(Arc<PostgresStore>, String, String),
}

/// A fresh, empty store.
#[derive(Clone)]
pub struct Harness {
    pub store: Arc<dyn Store>,
    backend: Backend,
}

impl Harness {
    pub async fn sqlite() -> Harness {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            SqliteStore::open(dir.path())
                .await
                .expect("open SQLite store"),
        );
        Harness {
            store: store.clone(),
            backend: Backend::Sqlite(store, Arc::new(dir)),
        }
    }

    /// `None` (with a note) when `OXIFHIR_TEST_POSTGRES` is unset; panics when it is set and
    /// the database cannot be used.
    pub async fn postgres() -> Option<Harness> {
        let Ok(url) = std::env::var(PG_ENV) else {
            eprintln!("note: {PG_ENV} is not set; skipping the PostgreSQL variant");
            return None;
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let store = Arc::new(
            PostgresStore::open(&url, Some(&schema))
                .await
                .expect("open PostgreSQL store"),
        );
        Some(Harness {
            store: store.clone(),
            backend: Backend::Postgres(store, url, schema),
        })
    }

    /// A second store on the same database (another node, or a restart).
    pub async fn reopen(&self) -> Arc<dyn Store> {
        match &self.backend {
            Backend::Sqlite(_, dir) => {
                Arc::new(SqliteStore::open(dir.path()).await.expect("reopen"))
            }
            Backend::Postgres(_, url, schema) => Arc::new(
                PostgresStore::open(url, Some(schema))
                    .await
                    .expect("reopen"),
            ),
        }
    }

    /// `n` stores opened at the same time on a new, empty database (a subdirectory, or a
    /// second schema), so that their migrations race.
    pub async fn open_concurrently(&self, n: usize) -> Vec<Arc<dyn Store>> {
        let mut tasks = Vec::new();
        for _ in 0..n {
            let backend = self.backend.clone();
            tasks.push(tokio::spawn(async move {
                let store: Arc<dyn Store> = match &backend {
                    Backend::Sqlite(_, dir) => Arc::new(
                        SqliteStore::open(&dir.path().join("second"))
                            .await
                            .expect("open"),
                    ),
                    Backend::Postgres(_, url, schema) => Arc::new(
                        PostgresStore::open(url, Some(&format!("{schema}_b")))
                            .await
                            .expect("open"),
                    ),
                };
                store
            }));
        }
        let mut stores = Vec::new();
        for task in tasks {
            stores.push(task.await.expect("task"));
        }
        stores
    }

    /// The SQLite database file, for the `sqlite` variant.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        match &self.backend {
            Backend::Sqlite(_, dir) => Some(dir.path().join("oxifhir.db")),
            Backend::Postgres(..) => None,
        }
    }

    /// Makes the database forget that migrations `version` and later ran, so that the next
    /// opening runs them again on the data as it is (a database of an older release).
    pub async fn forget_migrations_from(&self, version: i64) {
        match &self.backend {
            Backend::Sqlite(_, dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("oxifhir.db")).expect("open");
                conn.execute(
                    "DELETE FROM schema_migrations WHERE version >= ?1",
                    [version],
                )
                .expect("forget migrations");
            }
            Backend::Postgres(_, url, schema) => {
                let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(connection);
                client
                    .execute(
                        &format!("DELETE FROM {schema}.schema_migrations WHERE version >= $1"),
                        &[&version],
                    )
                    .await
                    .expect("forget migrations");
            }
        }
    }

    /// Index rows per kind (strings, tokens, references, dates, numbers, quantities, uris).
    pub async fn index_counts(&self, resource_type: &str, id: &str) -> [i64; 7] {
        match &self.backend {
            Backend::Sqlite(s, _) => s.debug_index_counts(resource_type, id).await,
            Backend::Postgres(s, ..) => s.debug_index_counts(resource_type, id).await,
        }
        .expect("index counts")
    }

    /// Drops the test's PostgreSQL schema.
    pub async fn finish(self) {
        if let Backend::Postgres(_, url, schema) = &self.backend {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            client
                .batch_execute(&format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE; \
                     DROP SCHEMA IF EXISTS {schema}_b CASCADE"
                ))
                .await
                .expect("drop schema");
        }
    }
}

/// The JSON a test stores for a version.
pub fn body(resource_type: &str, id: &str, version: i64) -> Vec<u8> {
    format!(
        r#"{{"resourceType":"{resource_type}","id":"{id}","meta":{{"versionId":"{version}"}}}}"#
    )
    .into_bytes()
}

/// A create (`previous` None) or update of `resource_type/id` to `version` at `millis`.
pub fn put(resource_type: &str, id: &str, version: i64, millis: i64) -> VersionWrite {
    VersionWrite {
        resource_type: resource_type.to_owned(),
        id: id.to_owned(),
        version_id: version,
        last_updated: Instant::from_millis(millis),
        method: if version == 1 {
            WriteMethod::Create
        } else {
            WriteMethod::Update
        },
        body: body(resource_type, id, version),
        previous_version: if version == 1 {
            None
        } else {
            Some(version - 1)
        },
        index: IndexEntries::default(),
    }
}

/// A deletion of `resource_type/id` as `version` at `millis`.
pub fn delete(resource_type: &str, id: &str, version: i64, millis: i64) -> VersionWrite {
    VersionWrite {
        method: WriteMethod::Delete,
        body: Vec::new(),
        ..put(resource_type, id, version, millis)
    }
}

/// Writes one version in its own transaction.
pub async fn write(store: &dyn Store, write: VersionWrite) -> StoreResult<()> {
    let mut tx = store.begin(Isolation::Serializable).await?;
    tx.write(write).await?;
    tx.commit().await
}

/// Writes versions one after another, each in its own transaction.
pub async fn write_all(store: &dyn Store, writes: impl IntoIterator<Item = VersionWrite>) {
    for w in writes {
        write(store, w).await.expect("write");
    }
}

/// `Type/id/version` of each version, for compact assertions.
pub fn keys(versions: &[ResourceVersion]) -> Vec<String> {
    versions
        .iter()
        .map(|v| format!("{}/{}/{}", v.resource_type, v.id, v.version_id))
        .collect()
}

/// Builder-style additions to [`VersionWrite`].
pub trait WriteExt {
    /// The same write with these index entries.
    fn with_index(self, index: IndexEntries) -> Self;
}

impl WriteExt for VersionWrite {
    fn with_index(self, index: IndexEntries) -> Self {
        VersionWrite { index, ..self }
    }
}
