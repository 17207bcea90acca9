//! The store side of `$reindex` and `$expunge`: batched, version-checked index replacement,
//! job checkpoints that commit with the work they describe, and expunge batches (exact version
//! counts, nothing outside the scope touched).

use std::time::Duration;

use oxifhir_model::Instant;
use oxifhir_store::expunge::{ExpungeBatch, ExpungeScope, ExpungeWhat};
use oxifhir_store::jobs::{Claim, NewJob};
use oxifhir_store::{
    HistoryQuery, HistoryScope, IndexEntries, IndexReplacement, IndexScope, IndexTable, Isolation,
    ReferenceEntry, Store, StringEntry, TokenEntry,
};

use crate::harness::{Harness, WriteExt, delete, put, write, write_all};

fn string(param: &str, text: &str) -> StringEntry {
    StringEntry {
        param: param.into(),
        normalized: text.to_lowercase(),
        exact: text.into(),
    }
}

fn token(param: &str, code: &str) -> TokenEntry {
    TokenEntry {
        param: param.into(),
        system: None,
        code: Some(code.into()),
        text: None,
    }
}

fn replacement(t: &str, id: &str, version: i64, index: IndexEntries) -> IndexReplacement {
    IndexReplacement {
        resource_type: t.into(),
        id: id.into(),
        version_id: version,
        index,
    }
}

fn named(name: &str) -> IndexEntries {
    IndexEntries {
        strings: vec![string("name", name)],
        tokens: vec![token("gender", "male")],
        ..Default::default()
    }
}

async fn index_replacement_in_batches(h: Harness) {
    let store = h.store.as_ref();
    for id in ["a", "b", "c", "d"] {
        write(store, put("Patient", id, 1, 1000).with_index(named(id)))
            .await
            .expect("create");
    }
    write(store, put("Patient", "b", 2, 2000).with_index(named("b2")))
        .await
        .expect("update");
    write(store, delete("Patient", "d", 2, 2000))
        .await
        .expect("delete");
    let eye = |code: &str| IndexEntries {
        tokens: vec![token("eye", code)],
        ..Default::default()
    };
    let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
    let replaced = tx
        .replace_index_many(
            &IndexScope::Params {
                codes: vec!["eye".into()],
                tables: vec![IndexTable::Token],
            },
            vec![
                replacement("Patient", "a", 1, eye("blue")),
                replacement("Patient", "b", 1, eye("blue")),
                replacement("Patient", "c", 1, IndexEntries::default()),
                replacement("Patient", "d", 1, eye("blue")),
                replacement("Patient", "zz", 1, eye("blue")),
            ],
        )
        .await
        .expect("replace");
    tx.commit().await.expect("commit");
    assert_eq!(replaced, [true, false, true, false, false]);
    // The scoped replacement leaves the other parameters' rows alone.
    assert_eq!(h.index_counts("Patient", "a").await, [1, 2, 0, 0, 0, 0, 0]);
    assert_eq!(h.index_counts("Patient", "b").await, [1, 1, 0, 0, 0, 0, 0]);
    assert_eq!(h.index_counts("Patient", "c").await, [1, 1, 0, 0, 0, 0, 0]);
    assert_eq!(h.index_counts("Patient", "d").await, [0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(h.index_counts("Patient", "zz").await, [0, 0, 0, 0, 0, 0, 0]);

    // Replacing the same parameter again does not duplicate it.
    let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
    tx.replace_index_many(
        &IndexScope::Params {
            codes: vec!["eye".into()],
            tables: vec![IndexTable::Token],
        },
        vec![replacement("Patient", "a", 1, eye("green"))],
    )
    .await
    .expect("again");
    tx.commit().await.expect("commit");
    assert_eq!(h.index_counts("Patient", "a").await, [1, 2, 0, 0, 0, 0, 0]);

    // The whole index of a resource.
    let all = IndexEntries {
        references: vec![ReferenceEntry {
            param: "organization".into(),
            target_type: Some("Organization".into()),
            target_id: Some("o1".into()),
            url: "Organization/o1".into(),
        }],
        ..Default::default()
    };
    let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
    let replaced = tx
        .replace_index_many(
            &IndexScope::All,
            vec![
                replacement("Patient", "a", 1, all.clone()),
                replacement("Patient", "b", 2, all),
            ],
        )
        .await
        .expect("replace all");
    // Dropped without commit: nothing changes.
    drop(tx);
    assert_eq!(replaced, [true, true]);
    assert_eq!(h.index_counts("Patient", "a").await, [1, 2, 0, 0, 0, 0, 0]);
    let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
    tx.replace_index_many(
        &IndexScope::All,
        vec![replacement(
            "Patient",
            "a",
            1,
            IndexEntries {
                uris: Vec::new(),
                ..named("x")
            },
        )],
    )
    .await
    .expect("replace all");
    tx.commit().await.expect("commit");
    assert_eq!(h.index_counts("Patient", "a").await, [1, 1, 0, 0, 0, 0, 0]);
    assert_eq!(
        store
            .read("Patient", "a")
            .await
            .expect("read")
            .expect("a")
            .version_id,
        1,
        "no new version"
    );
    // The whole index again: unchanged tables stay, a changed one is replaced.
    let female = IndexEntries {
        tokens: vec![token("gender", "female")],
        ..named("x")
    };
    for index in [named("x"), female.clone(), female] {
        let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
        let replaced = tx
            .replace_index_many(
                &IndexScope::All,
                vec![replacement("Patient", "a", 1, index)],
            )
            .await
            .expect("replace all");
        tx.commit().await.expect("commit");
        assert_eq!(replaced, [true]);
        assert_eq!(h.index_counts("Patient", "a").await, [1, 1, 0, 0, 0, 0, 0]);
    }
    let gender = |code: &str| oxifhir_store::SearchQuery {
        resource_types: vec!["Patient".into()],
        conditions: vec![oxifhir_store::Condition::Match {
            param: "gender".into(),
            tests: vec![oxifhir_store::EntryTest::Token(
                oxifhir_store::TokenTest::Code {
                    system: oxifhir_store::TokenSystem::Any,
                    code: code.into(),
                },
            )],
        }],
        count: 10,
        ..Default::default()
    };
    let found = store.search(&gender("female")).await.expect("female");
    assert_eq!(found.resources.len(), 1);
    assert_eq!(found.resources[0].id, "a");
    let male = store.search(&gender("male")).await.expect("male");
    assert!(male.resources.iter().all(|r| r.id != "a"));
}

fn new_job(id: &str) -> NewJob {
    NewJob {
        id: id.into(),
        kind: "maintenance".into(),
        owner: None,
        input: b"{}".to_vec(),
        request_url: "http://x/fhir/$reindex".into(),
        request_time: Instant::now(),
    }
}

async fn claimed(store: &dyn Store, id: &str) -> i64 {
    store.jobs().enqueue(new_job(id)).await.expect("enqueue");
    let job = store
        .jobs()
        .claim(&Claim {
            worker: "w".into(),
            kinds: vec!["maintenance".into()],
            lease: Duration::from_secs(30),
            now: Instant::now(),
        })
        .await
        .expect("claim")
        .expect("claimed");
    job.attempt
}

async fn checkpoints_commit_with_their_transaction(h: Harness) {
    let store = h.store.as_ref();
    let attempt = claimed(store, "j1").await;
    write(store, put("Patient", "a", 1, 1000)).await.expect("a");

    // Rolled back: neither the work nor the checkpoint.
    let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
    tx.replace_index_many(
        &IndexScope::All,
        vec![replacement("Patient", "a", 1, named("a"))],
    )
    .await
    .expect("replace");
    assert!(
        tx.job_checkpoint("j1", attempt, b"one", Some("Indexed 1 of 1 resources."))
            .await
            .expect("checkpoint")
    );
    drop(tx);
    let job = store.jobs().job("j1").await.expect("job").expect("j1");
    assert_eq!(job.checkpoint, None);
    assert_eq!(h.index_counts("Patient", "a").await, [0; 7]);

    // Committed: both.
    let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
    tx.replace_index_many(
        &IndexScope::All,
        vec![replacement("Patient", "a", 1, named("a"))],
    )
    .await
    .expect("replace");
    assert!(
        tx.job_checkpoint("j1", attempt, b"two", Some("Indexed 1 of 1 resources."))
            .await
            .expect("checkpoint")
    );
    tx.commit().await.expect("commit");
    let job = store.jobs().job("j1").await.expect("job").expect("j1");
    assert_eq!(job.checkpoint.as_deref(), Some(&b"two"[..]));
    assert_eq!(job.progress.as_deref(), Some("Indexed 1 of 1 resources."));
    assert_eq!(h.index_counts("Patient", "a").await, [1, 1, 0, 0, 0, 0, 0]);

    // A stale attempt is told so and changes nothing.
    let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
    assert!(
        !tx.job_checkpoint("j1", attempt + 1, b"three", None)
            .await
            .expect("stale")
    );
    tx.commit().await.expect("commit");
    let job = store.jobs().job("j1").await.expect("job").expect("j1");
    assert_eq!(job.checkpoint.as_deref(), Some(&b"two"[..]));
}

async fn history_len(store: &dyn Store, t: &str, id: &str) -> usize {
    store
        .history(&HistoryQuery {
            scope: HistoryScope::Instance {
                resource_type: t.into(),
                id: id.into(),
            },
            since: None,
            before: None,
            count: 100,
            cursor: None,
        })
        .await
        .expect("history")
        .versions
        .len()
}

/// Versions removed by `batch` (checked against the resources it says it removed).
async fn expunge_in_transaction(store: &dyn Store, batch: ExpungeBatch) -> u64 {
    let resources = match &batch.what {
        ExpungeWhat::Resources(keys) => Some(keys.len() as u64),
        _ => None,
    };
    let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
    let n = tx.expunge(&batch).await.expect("expunge");
    tx.commit().await.expect("commit");
    if let Some(resources) = resources {
        assert_eq!(n.resources, resources);
    }
    assert_eq!(n.resources == 0, n.versions == 0, "{n:?}");
    n.versions
}

async fn expunge_batches(h: Harness) {
    let store = h.store.as_ref();
    // p1: 3 versions; p2: 2 versions, deleted; p3: 1 version; o1: 2 versions, deleted.
    write_all(
        store,
        [
            put("Patient", "p1", 1, 1000),
            put("Patient", "p1", 2, 1001),
            put("Patient", "p1", 3, 1002),
            put("Patient", "p2", 1, 1003).with_index(named("p2")),
            delete("Patient", "p2", 2, 1004),
            put("Patient", "p3", 1, 1005).with_index(named("p3")),
            put("Observation", "o1", 1, 1006),
            delete("Observation", "o1", 2, 1007),
        ],
    )
    .await;
    let batch =
        |scope: ExpungeScope, what: ExpungeWhat, limit: usize| ExpungeBatch { scope, what, limit };
    let patients = ExpungeScope {
        resource_type: Some("Patient".into()),
        id: None,
    };
    // Deleted Patients only: p2's two versions; the deleted Observation stays.
    assert_eq!(
        expunge_in_transaction(
            store,
            batch(patients.clone(), ExpungeWhat::DeletedResources, 10)
        )
        .await,
        2
    );
    assert_eq!(
        expunge_in_transaction(
            store,
            batch(patients.clone(), ExpungeWhat::DeletedResources, 10)
        )
        .await,
        0
    );
    assert!(store.read("Patient", "p2").await.expect("read").is_none());
    assert!(
        store
            .vread("Patient", "p2", 1)
            .await
            .expect("vread")
            .is_none()
    );
    assert!(
        store
            .read("Observation", "o1")
            .await
            .expect("read")
            .is_some()
    );
    // Previous versions, one at a time: p1 v1 and v2, and nothing of p3.
    let previous = batch(
        ExpungeScope {
            resource_type: Some("Patient".into()),
            id: Some("p1".into()),
        },
        ExpungeWhat::PreviousVersions,
        1,
    );
    assert_eq!(store.expunge(&previous).await.expect("one"), 1);
    assert_eq!(store.expunge(&previous).await.expect("two"), 1);
    assert_eq!(store.expunge(&previous).await.expect("none left"), 0);
    assert_eq!(history_len(store, "Patient", "p1").await, 1);
    assert_eq!(
        store
            .read("Patient", "p1")
            .await
            .expect("read")
            .expect("p1")
            .version_id,
        3
    );
    // Given resources: p3 with its index rows.
    assert_eq!(h.index_counts("Patient", "p3").await, [1, 1, 0, 0, 0, 0, 0]);
    assert_eq!(
        expunge_in_transaction(
            store,
            batch(
                ExpungeScope::default(),
                ExpungeWhat::Resources(vec![("Patient".into(), "p3".into())]),
                10
            )
        )
        .await,
        1
    );
    assert_eq!(h.index_counts("Patient", "p3").await, [0; 7]);
    assert!(store.read("Patient", "p3").await.expect("read").is_none());
    // Everything: what is left (p1 v3, o1 v1-v2).
    assert_eq!(
        expunge_in_transaction(
            store,
            batch(ExpungeScope::default(), ExpungeWhat::Everything, 100)
        )
        .await,
        3
    );
    assert_eq!(history_len(store, "Observation", "o1").await, 0);
    assert!(store.read("Patient", "p1").await.expect("read").is_none());
}

store_tests!(
    index_replacement_in_batches,
    checkpoints_commit_with_their_transaction,
    expunge_batches,
);
