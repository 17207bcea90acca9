//! HTTP-level tests of the FHIR API. Every test runs against a real server on an ephemeral
//! port, once on SQLite and once on PostgreSQL (when `OXIFHIR_TEST_POSTGRES` is set).

#[macro_use]
mod support;

mod admin_jobs;
mod asynchronous;
mod auth;
mod bundle;
mod crud;
mod custom_params;
mod export;
mod export_auth;
mod expunge;
mod hostile;
mod input;
mod job_rerun;
mod observability;
mod rate_limits;
mod reindex;
mod scheduling;
mod search_composite;
mod search_history;
mod search_paging;
mod search_params;
