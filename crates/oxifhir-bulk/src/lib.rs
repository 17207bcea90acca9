//! A Bulk Data export client (FHIR Bulk Data Access IG v2.0.0) for any conformant server.
//!
//! [`BulkClient::export`] runs a whole export into a directory: the kick-off ([`kickoff`], GET
//! or POST with a `Parameters` body), polling that honours `Retry-After` ([`poll`]), the
//! manifest ([`manifest`]), parallel downloads that resume with `Range` requests and check
//! each file's line count against the manifest ([`download`]), and the final `DELETE` of the
//! status URL. Requests carry a SMART Backend Services access token when [`auth`] is set up.
//! A state file in the output directory ([`state`]) makes an interrupted run resumable: the
//! same command run again polls or downloads where the last run stopped instead of starting a
//! new export. Progress is reported to an [`Observer`].
//!
//! **API boundary:** nothing here depends on headers or URLs of one server; `X-Progress` is
//! shown when a server sends it.

pub mod auth;
mod client;
pub mod download;
mod error;
pub mod kickoff;
pub mod manifest;
mod observer;
pub mod poll;
pub mod request;
pub mod retry;
mod session;
pub mod state;

pub use client::{BulkClient, ClientOptions, Summary};
pub use error::Error;
pub use observer::{FileId, Observer, Silent};
pub use request::{ExportLevel, ExportRequest};
