//! The oxifhir HTTP server: the only crate that knows HTTP.
//!
//! A request becomes a [`FhirRequest`] at the edge ([`http`]), goes through
//! [`FhirServer::dispatch`] — routing ([`route`]), the interactions ([`interactions`]), batch
//! and transaction Bundles ([`bundle`]) and operations ([`operations`]) — and comes back as a
//! [`FhirResponse`]. Nothing below `dispatch` sees axum types, so a stored request replayed
//! by an asynchronous job gets exactly the synchronous answer.

pub mod admin;
pub mod asynchronous;
pub mod auth;
mod body_text;
pub mod bundle;
pub mod config;
pub mod error;
pub mod format;
pub mod http;
pub mod interactions;
pub mod observability;
pub mod operations;
pub mod prefer;
pub mod repository;
pub mod request;
pub mod response;
pub mod route;
pub mod search_params;
pub mod server;

pub use auth::{AuthMode, Principal};
pub use config::{ExportConfig, MaintenanceConfig, ServerConfig};
pub use request::{FhirRequest, Method};
pub use response::FhirResponse;
pub use server::FhirServer;
