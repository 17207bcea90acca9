//! Store tests: every test runs once on SQLite (a fresh temporary directory) and once on
//! PostgreSQL (a fresh schema per test) when `OXIFHIR_TEST_POSTGRES` holds a database URL.

mod harness;

/// Defines, for each named `async fn(Harness)` of the calling module, a module of the same
/// name with a `sqlite` and a `postgres` test running it.
macro_rules! store_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let harness = crate::harness::Harness::sqlite().await;
                super::$name(harness.clone()).await;
                harness.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some(harness) = crate::harness::Harness::postgres().await else { return };
                super::$name(harness.clone()).await;
                harness.finish().await;
            }
        }
    )+};
}

mod bench;
mod bulk;
mod crud;
mod export;
mod history;
mod jobs;
mod locks;
mod maintenance;
mod search;
mod search_index;
