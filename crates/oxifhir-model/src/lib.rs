//! FHIR R4 (4.0.1) knowledge as data, shared by every other oxifhir crate.
//!
//! This crate owns what FHIR *is*: the resource types, the search-parameter table and the
//! Patient compartment (generated from the official definitions into `data/`), validation of
//! resource JSON against the R4 JSON schema, the id rule, instants and date ranges, the
//! FHIRPath subset that extracts search index entries, and the builders of `OperationOutcome`,
//! `Bundle` and `Parameters`. It knows nothing of HTTP or SQL.

pub mod bundle;
pub mod compartment;
pub mod datetime;
pub mod fhirpath;
pub mod id;
pub mod index;
pub mod json;
pub mod outcome;
pub mod resource_type;
pub mod search_param;
pub mod ucum;
pub mod validation;

pub use datetime::{DateRange, Instant};
pub use outcome::{IssueCode, IssueSeverity, OperationOutcome};
