//! What a search asks of the store: conditions over current resources and their search index
//! entries, sort keys, paging; and the page it gets back.
//!
//! The conditions are FHIR search semantics already resolved into index terms: the server
//! parses parameters, prefixes and modifiers into them, and both backends turn them into the
//! same SQL (`sql/condition.rs`). Values compared against index entries must be prepared as
//! extraction prepared the entries (`oxifhir_model::index::normalize` for strings).

/// What a search selects: all given conditions hold (AND).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchQuery {
    /// Types to search; empty means every type.
    pub resource_types: Vec<String>,
    pub conditions: Vec<Condition>,
    /// Sort keys in order; ties are broken by resource type and id, so the order is total and
    /// does not change when a resource is updated (unless a sort key's value changes).
    pub sort: Vec<SortKey>,
    /// Page size.
    pub count: usize,
    /// Continue after (or before) this cursor, from [`SearchPage::next`] or
    /// [`SearchPage::previous`] of the same query.
    pub cursor: Option<String>,
    /// Also compute the total number of matches.
    pub with_total: bool,
}

/// One search condition over current, not deleted resources.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The logical id is one of these.
    IdIn(Vec<String>),
    /// The logical id is none of these.
    IdNotIn(Vec<String>),
    /// `meta.lastUpdated` lies in `[from, to)` (milliseconds; open ends when `None`).
    LastUpdated { from: Option<i64>, to: Option<i64> },
    /// `meta.lastUpdated` lies outside `[from, to)`.
    LastUpdatedNot { from: i64, to: i64 },
    /// Any of the conditions holds (empty: none does).
    Any(Vec<Condition>),
    /// All of the conditions hold (empty: true).
    All(Vec<Condition>),
    /// Some index entry of search parameter `param` passes one of `tests`.
    Match {
        param: String,
        tests: Vec<EntryTest>,
    },
    /// Some index entry of a parameter whose name starts with `prefix` passes one of
    /// `tests`: a composite's entries for one code in any system.
    MatchPrefixed {
        prefix: String,
        tests: Vec<EntryTest>,
    },
    /// No index entry of `param` passes any of `tests` (`:not`; `:missing=true` with
    /// [`EntryTest::Exists`]).
    NoMatch {
        param: String,
        tests: Vec<EntryTest>,
    },
    /// A reference of `param` points to a current resource of `target_type` for which all of
    /// `conditions` hold (a chained parameter).
    Chain {
        param: String,
        target_type: String,
        conditions: Vec<Condition>,
    },
    /// Some current resource of `source_type` for which all of `conditions` hold refers to
    /// this resource through its reference parameter `param` (any reference parameter when
    /// `None`): `_has`, and the targets of `_include`.
    ReferencedBy {
        source_type: String,
        param: Option<String>,
        conditions: Vec<Condition>,
    },
}

/// The search index tables, one per parameter type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IndexTable {
    String,
    Token,
    Reference,
    Date,
    Number,
    Quantity,
    Uri,
}

impl IndexTable {
    /// The SQL table name.
    pub fn table_name(self) -> &'static str {
        match self {
            IndexTable::String => "idx_string",
            IndexTable::Token => "idx_token",
            IndexTable::Reference => "idx_reference",
            IndexTable::Date => "idx_date",
            IndexTable::Number => "idx_number",
            IndexTable::Quantity => "idx_quantity",
            IndexTable::Uri => "idx_uri",
        }
    }
}

/// A test of one index entry.
#[derive(Debug, Clone, PartialEq)]
pub enum EntryTest {
    /// Any entry of the table (`:missing=false`).
    Exists(IndexTable),
    String(StringTest),
    Token(TokenTest),
    Reference(ReferenceTest),
    Date(DateTest),
    Number(NumberTest),
    Quantity(QuantityTest),
    Uri(UriTest),
}

impl EntryTest {
    /// The table the test reads.
    pub fn table(&self) -> IndexTable {
        match self {
            EntryTest::Exists(table) => *table,
            EntryTest::String(_) => IndexTable::String,
            EntryTest::Token(_) => IndexTable::Token,
            EntryTest::Reference(_) => IndexTable::Reference,
            EntryTest::Date(_) => IndexTable::Date,
            EntryTest::Number(_) => IndexTable::Number,
            EntryTest::Quantity(_) => IndexTable::Quantity,
            EntryTest::Uri(_) => IndexTable::Uri,
        }
    }
}

/// A `string` test. Values of `StartsWith` and `Contains` are normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringTest {
    /// The normalized value starts with this (the default).
    StartsWith(String),
    /// The value as written equals this (`:exact`).
    Exact(String),
    /// The normalized value contains this (`:contains`).
    Contains(String),
}

/// The system part of a token test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSystem {
    /// `code`: any system or none.
    Any,
    /// `|code`: no system.
    None,
    /// `system|code`.
    Is(String),
}

/// A `token` test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenTest {
    /// The code, in the given system.
    Code { system: TokenSystem, code: String },
    /// Any code of this system (`system|`).
    System(String),
    /// A word of the display text starts with this normalized text (`:text`).
    Text(String),
}

/// A `reference` test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceTest {
    /// A literal reference to one of `ids`, of one of `types` (any type when empty).
    Target {
        types: Vec<String>,
        ids: Vec<String>,
    },
    /// The reference exactly as written (absolute URLs, canonicals).
    Url(String),
}

/// A search prefix (FHIR search, "prefixes").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    /// Approximately: the caller widens the range; the store tests for overlap.
    Ap,
}

/// A `date` test against the half-open range `[start, end)` of milliseconds that the search
/// value covers (widened by the caller for [`Prefix::Ap`]). Entries cover `[start, end]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTest {
    pub prefix: Prefix,
    pub start: i64,
    pub end: i64,
}

/// A `number` test: the search value and the range `[low, high)` its precision implies
/// (for [`Prefix::Ap`], the widened range, both ends included).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberTest {
    pub prefix: Prefix,
    pub value: f64,
    pub low: f64,
    pub high: f64,
}

/// A `quantity` test: a number test plus units. With a `system`, `code` must equal the
/// entry's code in that system; without one, `code` may equal the entry's code or its unit.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantityTest {
    pub number: NumberTest,
    pub system: Option<String>,
    pub code: Option<String>,
}

/// A `uri` test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UriTest {
    /// The value equals this.
    Is(String),
    /// The value starts with this (`:below`).
    Below(String),
    /// The value is one of these (`:above`: the caller lists the candidate parents).
    OneOf(Vec<String>),
}

/// A sort key; `descending` reverses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub field: SortField,
    pub descending: bool,
}

/// What a search can be sorted by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SortField {
    Id,
    LastUpdated,
    /// A search parameter's indexed values: ascending by the smallest, descending by the
    /// largest (dates by their start and end); resources without a value come last.
    Param {
        /// The parameter's code; for a union of parameters, the codes of its parts, whose
        /// values together are its values.
        params: Vec<String>,
        table: IndexTable,
    },
}

/// A page of search matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SearchPage {
    pub resources: Vec<crate::ResourceVersion>,
    /// Cursor for the following page, if there are more matches.
    pub next: Option<String>,
    /// Cursor for the page before this one, when this page was reached by a cursor.
    pub previous: Option<String>,
    /// Number of matches in all pages, when asked for.
    pub total: Option<u64>,
}

/// A custom search parameter marked as indexed for every stored resource (by `$reindex`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedParam {
    /// The `SearchParameter.url`.
    pub url: String,
    /// What the caller says identifies the definition that was indexed (a hash of its
    /// code, type, bases and expression), so that a changed definition is not taken as
    /// indexed.
    pub fingerprint: String,
}
