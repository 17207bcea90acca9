//! The data the store takes and gives: resource versions, index entries (defined with their
//! extraction in `oxifhir_model::index`, re-exported here), queries and pages.

use oxifhir_model::Instant;
pub use oxifhir_model::index::{
    DateEntry, IndexEntries, NumberEntry, QuantityEntry, ReferenceEntry, StringEntry, TokenEntry,
    UriEntry,
};

/// How a version came to be; history entries report it as `request.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WriteMethod {
    /// `POST`: the first version, id chosen by the server.
    Create,
    /// `PUT`: a new version, or a first version with the client's id.
    Update,
    /// `DELETE`: a tombstone; the resource reads as gone.
    Delete,
}

impl WriteMethod {
    /// The stable one-letter code stored in the database.
    pub fn code(self) -> &'static str {
        match self {
            WriteMethod::Create => "C",
            WriteMethod::Update => "U",
            WriteMethod::Delete => "D",
        }
    }

    /// Parses [`WriteMethod::code`].
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "C" => Some(WriteMethod::Create),
            "U" => Some(WriteMethod::Update),
            "D" => Some(WriteMethod::Delete),
            _ => None,
        }
    }
}

/// One stored version of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceVersion {
    pub resource_type: String,
    pub id: String,
    /// 1 for the first version, then +1 for each write (deletions included).
    pub version_id: i64,
    /// `meta.lastUpdated` of this version.
    pub last_updated: Instant,
    pub method: WriteMethod,
    /// The exact minified JSON accepted for this version; empty for a deletion.
    pub body: Vec<u8>,
}

impl ResourceVersion {
    /// True for a deletion tombstone.
    pub fn is_deleted(&self) -> bool {
        self.method == WriteMethod::Delete
    }
}

/// A new version to store.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionWrite {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    pub last_updated: Instant,
    pub method: WriteMethod,
    /// Exact minified JSON with `id` and `meta` set; empty for a deletion.
    pub body: Vec<u8>,
    /// The version that must be current before this write; `None` if the id must be unused.
    pub previous_version: Option<i64>,
    /// Search index entries of this version (empty for a deletion).
    pub index: IndexEntries,
}

/// Which resources a history covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryScope {
    System,
    Type(String),
    Instance { resource_type: String, id: String },
}

/// A history request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    pub scope: HistoryScope,
    /// Only versions with `lastUpdated >= since` (milliseconds).
    pub since: Option<i64>,
    /// Only versions with `lastUpdated < before` (milliseconds).
    pub before: Option<i64>,
    /// Page size.
    pub count: usize,
    /// Continue after this cursor (from [`HistoryPage::next`]).
    pub cursor: Option<String>,
}

/// A page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryPage {
    pub versions: Vec<ResourceVersion>,
    pub next: Option<String>,
    /// Number of versions in all pages.
    pub total: u64,
}
