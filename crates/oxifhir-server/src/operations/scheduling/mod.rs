//! Appointment scheduling (`../shared/specs/medplum-reference.md` §6, seed 002):
//! `GET [base]/Appointment/$find` proposes Appointments from each Schedule's availability
//! ([`find`]); `POST [base]/Appointment/$book` and `$hold` store one atomically ([`book`]);
//! `POST [base]/Appointment/{id}/$confirm` turns a hold into a booking ([`confirm`]) and
//! `POST [base]/Appointment/{id}/$cancel` cancels one and frees its Slots ([`cancel`]).
//!
//! Scheduling parameters (duration, buffers, the alignment grid, time zones, availability)
//! come from extensions on the HealthcareService, the Schedule and its actor ([`params`]);
//! the time arithmetic is pure and DST-aware ([`availability`]).
//!
//! **Concurrency:** `$book` and `$hold` run in one serializable transaction that first takes
//! the store locks ([`StoreTx::lock`](oxifhir_store::StoreTx::lock)) of each Schedule and UTC
//! day the booking touches, so overlapping bookers of one Schedule run one after another and
//! each re-checks availability against everything the previous ones stored: of concurrent bookings of one time exactly one wins, the others
//! get `400 Requested time slot is not available` (`409` only if serialization conflicts
//! outlast the retries). `$confirm` and `$cancel` lock their Appointment the same way.
//! Existing Slots are found with `Slot?schedule=…&start=lt…&end=gt…`; `end` is a search
//! parameter the server defines ([`oxifhir_model::search_param::SLOT_END_URL`]), indexed
//! for Slots stored before it existed by [`index_slot_ends`] at start.

pub mod availability;
mod book;
mod cancel;
mod confirm;
mod find;
pub mod params;

use oxifhir_model::Instant;
use oxifhir_model::outcome::{Issue, IssueCode, IssueSeverity};
use oxifhir_model::search_param::{self, SLOT_END_URL};
use oxifhir_store::{
    Condition, DateTest, EntryTest, ExportFilter, ExportScan, IndexedParam, Isolation, Prefix,
    ReferenceTest, ResourceVersion, SearchPage, SearchQuery, SortField, SortKey, Store,
    StoreResult, StoreTx, TokenSystem, TokenTest,
};
use serde_json::Value;

use super::{AsyncUse, Handler, Levels, OperationDef};
use crate::bundle::EntryResult;
use crate::error::{ApiError, ApiResult, ErrorKind};
use crate::interactions::{etag, version_url};
use crate::response::FhirResponse;
use crate::route::OperationTarget;
use crate::server::FhirServer;

/// `Appointment.serviceType` / `Schedule.serviceType` extension naming the HealthcareService.
pub const SERVICE_TYPE_REFERENCE_URL: &str = "https://medplum.com/fhir/service-type-reference";
/// The time zone extension on a Schedule's actor.
pub const TIMEZONE_URL: &str = "http://hl7.org/fhir/StructureDefinition/timezone";
/// The scheduling parameters extension on HealthcareService and Schedule.
pub const SCHEDULING_PARAMETERS_URL: &str =
    "https://medplum.com/fhir/StructureDefinition/SchedulingParameters";

/// At most this many Slots of one Schedule are considered in one range.
pub const MAX_SLOTS: usize = 1000;

const fn def(
    name: &'static str,
    definition_id: &'static str,
    canonical: &'static str,
    description: &'static str,
    instance: bool,
    affects_state: bool,
    handler: Handler,
) -> OperationDef {
    OperationDef {
        name,
        definition_id,
        canonical,
        description,
        resource_types: &["Appointment"],
        levels: Levels {
            system: false,
            type_: !instance,
            instance,
        },
        affects_state,
        async_use: |_, _| AsyncUse::Allowed,
        validate: None,
        job_kind: None,
        handler,
    }
}

/// `GET [base]/Appointment/$find`.
pub static FIND: OperationDef = def(
    "find",
    "Appointment-find",
    "http://oxifhir.dev/fhir/OperationDefinition/Appointment-find",
    "Proposes Appointments for a HealthcareService on one or more Schedules in a time range, from their availability, buffers and alignment grid, minus busy Slots.",
    false,
    false,
    find::run,
);

/// `POST [base]/Appointment/$book`.
pub static BOOK: OperationDef = def(
    "book",
    "Appointment-book",
    "http://oxifhir.dev/fhir/OperationDefinition/Appointment-book",
    "Books a proposed Appointment (from $find): re-checks availability and stores its Slots and the booked Appointment in one transaction.",
    false,
    true,
    book::run_book,
);

/// `POST [base]/Appointment/$hold`.
pub static HOLD: OperationDef = def(
    "hold",
    "Appointment-hold",
    "http://oxifhir.dev/fhir/OperationDefinition/Appointment-hold",
    "Holds a proposed Appointment (from $find) as pending with busy-tentative Slots, re-checking availability in one transaction; $confirm books it.",
    false,
    true,
    book::run_hold,
);

/// `POST [base]/Appointment/{id}/$confirm`.
pub static CONFIRM: OperationDef = def(
    "confirm",
    "Appointment-confirm",
    "http://oxifhir.dev/fhir/OperationDefinition/Appointment-confirm",
    "Confirms a held (pending or proposed) Appointment: its busy-tentative Slots become busy and it becomes booked, in one transaction.",
    true,
    true,
    confirm::run,
);

/// `POST [base]/Appointment/{id}/$cancel` (seed 002).
pub static CANCEL: OperationDef = def(
    "cancel",
    "Appointment-cancel",
    "http://oxifhir.dev/fhir/OperationDefinition/Appointment-cancel",
    "Cancels a booked or pending Appointment and deletes every Slot it references, in one serializable transaction; returns the Appointment.",
    true,
    true,
    cancel::run,
);

/// The id of an instance-level target (`400` at other levels).
fn instance_id(target: &OperationTarget) -> ApiResult<&str> {
    match target {
        OperationTarget::Instance(_, id) => Ok(id),
        _ => Err(ApiError::bad_request(
            "This operation can only be executed on an instance",
        )),
    }
}

/// `400`, code `invalid`, with `text` and the given expressions.
pub(crate) fn invalid<I, S>(text: impl Into<String>, expressions: I) -> ApiError
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    ApiError::with_issues(
        ErrorKind::BadRequest,
        vec![
            Issue::new(IssueSeverity::Error, IssueCode::Invalid, text)
                .with_expression(expressions.into_iter().map(Into::into)),
        ],
    )
}

/// `404 Not found`, the reference's answer for a missing Appointment.
fn not_found() -> ApiError {
    ApiError::with_code(ErrorKind::NotFound, IssueCode::NotFound, "Not found")
}

/// Milliseconds of a FHIR `instant`/`dateTime` with a time (a `dateTime` without a zone is
/// taken as UTC).
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    let range = oxifhir_model::datetime::DateRange::parse(text)?;
    (range.precision >= oxifhir_model::datetime::Precision::Minute).then_some(range.start)
}

/// `YYYY-MM-DDThh:mm:ss.sssZ`.
pub(crate) fn format_time(millis: i64) -> String {
    Instant::from_millis(millis).to_string()
}

/// The id in a relative reference `Type/id` (also under this server's base URL).
pub(crate) fn reference_id<'a>(
    server: &FhirServer,
    reference: &'a str,
    resource_type: &str,
) -> Option<&'a str> {
    let base = server.config().base_url.trim_end_matches('/');
    let relative = reference
        .strip_prefix(base)
        .and_then(|r| r.strip_prefix('/'))
        .unwrap_or(reference);
    let id = relative.strip_prefix(resource_type)?.strip_prefix('/')?;
    oxifhir_model::id::is_valid(id).then_some(id)
}

/// `Value`'s string at `key`.
pub(crate) fn str_at<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

/// The array at `key`, or an empty slice.
pub(crate) fn array_at<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The current, not deleted version of a resource, parsed.
pub(crate) fn live(version: Option<ResourceVersion>) -> Option<(ResourceVersion, Value)> {
    let version = version.filter(|v| !v.is_deleted())?;
    let value = oxifhir_model::json::parse(&version.body).ok()?;
    Some((version, value))
}

/// Where reads and searches go: the store (read-only `$find`) or a transaction.
pub(crate) enum Db<'a> {
    Store(&'a dyn Store),
    Tx(&'a mut dyn StoreTx),
}

impl Db<'_> {
    /// As [`Store::read`], parsed, `None` when missing or deleted.
    pub async fn read_live(
        &mut self,
        resource_type: &str,
        id: &str,
    ) -> StoreResult<Option<(ResourceVersion, Value)>> {
        let version = match self {
            Db::Store(store) => store.read(resource_type, id).await?,
            Db::Tx(tx) => tx.read(resource_type, id).await?,
        };
        Ok(live(version))
    }

    async fn search(&mut self, query: &SearchQuery) -> StoreResult<SearchPage> {
        match self {
            Db::Store(store) => store.search(query).await,
            Db::Tx(tx) => tx.search(query).await,
        }
    }
}

/// The statuses of the Slots that decide availability.
pub const SLOT_STATUSES: [&str; 4] = ["busy", "busy-tentative", "busy-unavailable", "free"];

/// A stored Slot that overlaps a range.
#[derive(Debug, Clone)]
pub struct StoredSlot {
    pub id: String,
    pub status: String,
    pub start: i64,
    pub end: i64,
    pub resource: Value,
}

/// The Slots of `schedule_id` with a status in [`SLOT_STATUSES`] that overlap `[from, to)`:
/// one search on the Schedule's reference, status and the `start`/`end` bounds. More than
/// [`MAX_SLOTS`] is a `400`.
pub(crate) async fn overlapping_slots(
    db: &mut Db<'_>,
    schedule_id: &str,
    from: i64,
    to: i64,
) -> ApiResult<Vec<StoredSlot>> {
    let query = SearchQuery {
        resource_types: vec!["Slot".into()],
        conditions: vec![
            Condition::Match {
                param: "schedule".into(),
                tests: vec![EntryTest::Reference(ReferenceTest::Target {
                    types: vec!["Schedule".into()],
                    ids: vec![schedule_id.to_string()],
                })],
            },
            Condition::Match {
                param: "start".into(),
                tests: vec![EntryTest::Date(DateTest {
                    prefix: Prefix::Lt,
                    start: to,
                    end: to + 1,
                })],
            },
            Condition::Match {
                param: "end".into(),
                tests: vec![EntryTest::Date(DateTest {
                    prefix: Prefix::Gt,
                    start: from,
                    end: from + 1,
                })],
            },
            Condition::Match {
                param: "status".into(),
                tests: SLOT_STATUSES
                    .iter()
                    .map(|s| {
                        EntryTest::Token(TokenTest::Code {
                            system: TokenSystem::Any,
                            code: (*s).to_string(),
                        })
                    })
                    .collect(),
            },
        ],
        sort: vec![SortKey {
            field: SortField::Id,
            descending: false,
        }],
        count: MAX_SLOTS,
        cursor: None,
        with_total: false,
    };
    let page = db.search(&query).await?;
    if page.next.is_some() {
        return Err(invalid(
            "Too many slots found in range; try searching with smaller bounds",
            Vec::<String>::new(),
        ));
    }
    let mut slots = Vec::with_capacity(page.resources.len());
    for version in page.resources {
        let Ok(resource) = oxifhir_model::json::parse(&version.body) else {
            continue;
        };
        let (Some(start), Some(end)) = (
            str_at(&resource, "start").and_then(parse_time),
            str_at(&resource, "end").and_then(parse_time),
        ) else {
            continue;
        };
        // The index is precise to the second at worst; the exact bounds decide.
        if start >= to || end <= from {
            continue;
        }
        slots.push(StoredSlot {
            id: version.id,
            status: str_at(&resource, "status").unwrap_or_default().to_string(),
            start,
            end,
            resource,
        });
    }
    Ok(slots)
}

/// A `transaction-response` Bundle entry for a stored version.
pub(crate) fn entry_result(
    server: &FhirServer,
    version: &ResourceVersion,
    status: u16,
) -> EntryResult {
    EntryResult {
        status,
        location: Some(version_url(server, version)),
        etag: Some(etag(version)),
        last_modified: Some(version.last_updated),
        body: Some(version.body.clone()),
        outcome: None,
    }
}

/// A `transaction-response` Bundle answer with `status`.
pub(crate) fn bundle_response(status: u16, results: &[EntryResult]) -> FhirResponse {
    FhirResponse::json(
        status,
        crate::bundle::response_bundle("transaction-response", results),
    )
}

/// The response of an operation that returns one stored resource.
pub(crate) fn resource_response(version: &ResourceVersion) -> FhirResponse {
    crate::interactions::resource_response(version)
}

/// Gives Slots stored before `Slot?end=` existed their `end` index entries, once per store:
/// when the store has no mark for [`SLOT_END_URL`], every Slot is reindexed a page at a time
/// and the mark is set. Cheap when there are no Slots or the mark is there.
pub async fn index_slot_ends(server: &FhirServer) -> ApiResult<u64> {
    let store = server.store();
    let fingerprint = slot_end_fingerprint();
    if store
        .indexed_params()
        .await?
        .iter()
        .any(|m| m.url == SLOT_END_URL && m.fingerprint == fingerprint)
    {
        return Ok(0);
    }
    let params = server.search_params().await?;
    let cut = Instant::now().millis();
    let mut after_id = None;
    let mut count = 0u64;
    loop {
        let batch = store
            .export_scan(&ExportScan {
                resource_type: "Slot".into(),
                after_id: after_id.take(),
                up_to: None,
                since: None,
                cut,
                include_deleted: false,
                filter: ExportFilter::All,
                ids: None,
                limit: 500,
                as_ndjson: false,
            })
            .await?;
        // Versions written after the cut were indexed by this server already.
        let versions: Vec<ResourceVersion> = batch
            .rows
            .into_iter()
            .filter(|r| !r.rewound && !r.version.is_deleted())
            .map(|r| r.version)
            .collect();
        count += versions.len() as u64;
        let params = params.clone();
        crate::repository::in_transaction(store, Isolation::VersionChecked, move |tx| {
            let (versions, params) = (versions.clone(), params.clone());
            Box::pin(async move {
                for version in &versions {
                    crate::repository::reindex(tx, &params, version).await?;
                }
                Ok(())
            })
        })
        .await?;
        if batch.complete || batch.last_id.is_none() {
            break;
        }
        after_id = batch.last_id;
    }
    store
        .mark_param_indexed(&IndexedParam {
            url: SLOT_END_URL.into(),
            fingerprint,
        })
        .await?;
    Ok(count)
}

fn slot_end_fingerprint() -> String {
    search_param::by_url(SLOT_END_URL)
        .map(crate::search_params::fingerprint)
        .unwrap_or_default()
}
