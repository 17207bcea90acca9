//! Create, read, vread, update, delete, version conflicts, transactions and index upkeep.

use oxifhir_store::Isolation;
use oxifhir_store::{
    Condition, DateEntry, EntryTest, IndexEntries, IndexTable, NumberEntry, QuantityEntry,
    ReferenceEntry, SearchQuery, StoreError, StringEntry, TokenEntry, UriEntry,
};

use crate::harness::{Harness, WriteExt, body, delete, put, write};

async fn create_read_vread(h: Harness) {
    let store = h.store.as_ref();
    write(store, put("Patient", "a", 1, 1_000))
        .await
        .expect("create");

    let current = store
        .read("Patient", "a")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(current.version_id, 1);
    assert_eq!(current.last_updated.millis(), 1_000);
    assert_eq!(current.body, body("Patient", "a", 1));
    assert!(!current.is_deleted());
    assert_eq!(
        store.vread("Patient", "a", 1).await.expect("vread"),
        Some(current)
    );
    assert_eq!(store.vread("Patient", "a", 2).await.expect("vread"), None);
    assert_eq!(store.read("Patient", "b").await.expect("read"), None);
    assert_eq!(store.read("Observation", "a").await.expect("read"), None);

    // A second store on the same database sees it (migrations are idempotent).
    let again = h.reopen().await;
    assert_eq!(
        again
            .read("Patient", "a")
            .await
            .expect("read")
            .map(|v| v.version_id),
        Some(1)
    );
}

async fn update_delete_recreate(h: Harness) {
    let store = h.store.as_ref();
    write(store, put("Patient", "a", 1, 1_000))
        .await
        .expect("create");
    write(store, put("Patient", "a", 2, 2_000))
        .await
        .expect("update");
    write(store, delete("Patient", "a", 3, 3_000))
        .await
        .expect("delete");

    let tombstone = store
        .read("Patient", "a")
        .await
        .expect("read")
        .expect("tombstone");
    assert!(tombstone.is_deleted());
    assert_eq!(tombstone.version_id, 3);
    assert!(tombstone.body.is_empty());
    let v2 = store
        .vread("Patient", "a", 2)
        .await
        .expect("vread")
        .expect("v2");
    assert_eq!(v2.body, body("Patient", "a", 2));
    assert!(
        store
            .vread("Patient", "a", 3)
            .await
            .expect("vread")
            .expect("v3")
            .is_deleted()
    );

    write(store, put("Patient", "a", 4, 4_000))
        .await
        .expect("recreate");
    let current = store
        .read("Patient", "a")
        .await
        .expect("read")
        .expect("found");
    assert_eq!((current.version_id, current.is_deleted()), (4, false));
}

async fn version_conflicts(h: Harness) {
    let store = h.store.as_ref();
    write(store, put("Patient", "a", 1, 1_000))
        .await
        .expect("create");

    let err = write(store, put("Patient", "a", 1, 2_000))
        .await
        .expect_err("duplicate create");
    assert!(
        matches!(
            &err,
            StoreError::VersionConflict {
                expected: None,
                found: Some(1),
                ..
            }
        ),
        "{err:?}"
    );
    let err = write(store, put("Patient", "a", 6, 2_000))
        .await
        .expect_err("stale update");
    assert!(
        matches!(
            &err,
            StoreError::VersionConflict {
                expected: Some(5),
                found: Some(1),
                ..
            }
        ),
        "{err:?}"
    );
    let err = write(store, put("Patient", "b", 2, 2_000))
        .await
        .expect_err("update of nothing");
    assert!(
        matches!(
            &err,
            StoreError::VersionConflict {
                expected: Some(1),
                found: None,
                ..
            }
        ),
        "{err:?}"
    );
    let current = store
        .read("Patient", "a")
        .await
        .expect("read")
        .expect("found");
    assert_eq!(
        (current.version_id, current.last_updated.millis()),
        (1, 1_000)
    );
    assert_eq!(store.read("Patient", "b").await.expect("read"), None);
}

async fn rollback_on_drop(h: Harness) {
    let store = h.store.as_ref();
    {
        let mut tx = store.begin(Isolation::Serializable).await.expect("begin");
        tx.write(put("Patient", "a", 1, 1_000))
            .await
            .expect("write a");
        tx.write(put("Patient", "b", 1, 1_000))
            .await
            .expect("write b");
        // Dropped without commit.
    }
    // A failed write leaves the transaction usable for rollback too.
    {
        let mut tx = store.begin(Isolation::Serializable).await.expect("begin");
        tx.write(put("Patient", "c", 1, 1_000))
            .await
            .expect("write c");
        tx.write(put("Patient", "c", 1, 1_000))
            .await
            .expect_err("conflict");
    }
    for id in ["a", "b", "c"] {
        assert_eq!(store.read("Patient", id).await.expect("read"), None, "{id}");
    }
    let history = store
        .history(&oxifhir_store::HistoryQuery {
            scope: oxifhir_store::HistoryScope::System,
            since: None,
            before: None,
            count: 10,
            cursor: None,
        })
        .await
        .expect("history");
    assert_eq!(history.total, 0);
    assert_eq!(h.index_counts("Patient", "a").await, [0; 7]);

    write(store, put("Patient", "a", 1, 1_000))
        .await
        .expect("write after rollback");
    assert!(store.read("Patient", "a").await.expect("read").is_some());
}

async fn reads_inside_tx_see_its_writes(h: Harness) {
    let store = h.store.as_ref();
    write(store, put("Patient", "a", 1, 1_000))
        .await
        .expect("create a");
    let mut tx = store.begin(Isolation::Serializable).await.expect("begin");
    tx.write(put("Patient", "a", 2, 2_000))
        .await
        .expect("update a");
    tx.write(put("Patient", "b", 1, 2_000))
        .await
        .expect("create b");

    assert_eq!(
        tx.read("Patient", "a")
            .await
            .expect("read")
            .map(|v| v.version_id),
        Some(2)
    );
    assert_eq!(
        tx.vread("Patient", "b", 1)
            .await
            .expect("vread")
            .map(|v| v.version_id),
        Some(1)
    );
    let all = SearchQuery {
        count: 10,
        ..SearchQuery::default()
    };
    assert_eq!(tx.search(&all).await.expect("search").resources.len(), 2);

    assert_eq!(
        store
            .read("Patient", "a")
            .await
            .expect("read")
            .map(|v| v.version_id),
        Some(1)
    );
    assert_eq!(store.read("Patient", "b").await.expect("read"), None);
    assert_eq!(store.search(&all).await.expect("search").resources.len(), 1);

    tx.commit().await.expect("commit");
    assert_eq!(
        store
            .read("Patient", "a")
            .await
            .expect("read")
            .map(|v| v.version_id),
        Some(2)
    );
    assert_eq!(store.search(&all).await.expect("search").resources.len(), 2);
}

fn entries(strings: usize) -> IndexEntries {
    let string = |i: usize| StringEntry {
        param: "name".into(),
        normalized: format!("name{i}"),
        exact: format!("Name{i}"),
    };
    IndexEntries {
        strings: (0..strings).map(string).collect(),
        tokens: vec![TokenEntry {
            param: "identifier".into(),
            system: Some("urn:sys".into()),
            code: Some("123".into()),
            text: None,
        }],
        references: vec![ReferenceEntry {
            param: "general-practitioner".into(),
            target_type: Some("Practitioner".into()),
            target_id: Some("p1".into()),
            url: "Practitioner/p1".into(),
        }],
        dates: vec![DateEntry {
            param: "birthdate".into(),
            start: 0,
            end: 86_399_999,
        }],
        numbers: vec![NumberEntry {
            param: "n".into(),
            value: 1.5,
            low: 1.45,
            high: 1.55,
        }],
        quantities: vec![QuantityEntry {
            param: "q".into(),
            value: 2.0,
            low: 1.5,
            high: 2.5,
            system: Some("http://unitsofmeasure.org".into()),
            code: Some("kg".into()),
            unit: None,
        }],
        uris: vec![UriEntry {
            param: "url".into(),
            value: "http://example.org".into(),
        }],
    }
}

async fn index_entries_are_replaced(h: Harness) {
    let store = h.store.as_ref();
    write(
        store,
        put("Patient", "other", 1, 500).with_index(entries(1)),
    )
    .await
    .expect("other");
    write(store, put("Patient", "a", 1, 1_000).with_index(entries(2)))
        .await
        .expect("create");
    assert_eq!(h.index_counts("Patient", "a").await, [2, 1, 1, 1, 1, 1, 1]);

    let only_strings = IndexEntries {
        strings: entries(3).strings,
        ..IndexEntries::default()
    };
    write(
        store,
        put("Patient", "a", 2, 2_000).with_index(only_strings),
    )
    .await
    .expect("update");
    assert_eq!(h.index_counts("Patient", "a").await, [3, 0, 0, 0, 0, 0, 0]);

    write(store, delete("Patient", "a", 3, 3_000))
        .await
        .expect("delete");
    assert_eq!(h.index_counts("Patient", "a").await, [0; 7]);
    assert_eq!(
        h.index_counts("Patient", "other").await,
        [1, 1, 1, 1, 1, 1, 1]
    );

    write(store, put("Patient", "a", 4, 4_000).with_index(entries(1)))
        .await
        .expect("recreate");
    assert_eq!(h.index_counts("Patient", "a").await, [1, 1, 1, 1, 1, 1, 1]);
}

/// Two transactions write the same next version at once: exactly one commits.
async fn concurrent_writers_one_wins(h: Harness) {
    write(h.store.as_ref(), put("Patient", "a", 1, 1_000))
        .await
        .expect("create");
    for (version, id) in [(2, "a"), (1, "fresh")] {
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let mut tasks = Vec::new();
        for n in 0..2 {
            let (store, barrier) = (h.store.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                let attempt = async {
                    let mut tx = store.begin(Isolation::Serializable).await?;
                    // On PostgreSQL both transactions are open here; on SQLite the single
                    // writer lets only one in at a time, so the barrier is skipped there.
                    if store.backend_name() == "postgres" {
                        tx.read("Patient", id).await?;
                        barrier.wait().await;
                    }
                    tx.write(put("Patient", id, version, 2_000 + n)).await?;
                    tx.commit().await
                };
                attempt.await
            }));
        }
        let mut ok = 0;
        for task in tasks {
            match task.await.expect("task") {
                Ok(()) => ok += 1,
                Err(StoreError::VersionConflict { .. } | StoreError::Retryable(_)) => {}
                Err(other) => panic!("unexpected error {other:?}"),
            }
        }
        assert_eq!(ok, 1, "{id}");
        let current = h
            .store
            .read("Patient", id)
            .await
            .expect("read")
            .expect("found");
        assert_eq!(current.version_id, version);
    }
}

/// A token entry of `param`: `system|code`, without text.
fn coded(param: &str, system: &str, code: &str) -> TokenEntry {
    TokenEntry {
        param: param.into(),
        system: Some(system.into()),
        code: Some(code.into()),
        text: None,
    }
}

/// A quantity entry of `param`: `value` mm[Hg], give or take half of one.
fn pressure(param: &str, value: f64) -> QuantityEntry {
    QuantityEntry {
        param: param.into(),
        value,
        low: value - 0.5,
        high: value + 0.5,
        system: Some("http://unitsofmeasure.org".into()),
        code: Some("mm[Hg]".into()),
        unit: None,
    }
}

/// Migration 6 deletes the index rows of `Observation`'s `combo-*` parameters (searched
/// through their parts since) and no others.
async fn migration_6_drops_the_rows_of_union_parameters(h: Harness) {
    let token = |param: &str| coded(param, "http://loinc.org", "8480-6");
    let quantity = |param: &str| pressure(param, 120.0);
    let index = IndexEntries {
        tokens: vec![
            token("code"),
            token("combo-code"),
            token("combo-value-concept"),
            token("combo-code-value-concept$http://loinc.org|8480-6"),
        ],
        quantities: vec![
            quantity("value-quantity"),
            quantity("code-value-quantity$http://loinc.org|8480-6"),
            quantity("combo-value-quantity"),
            quantity("combo-code-value-quantity$http://loinc.org|8480-6"),
        ],
        ..Default::default()
    };
    for (t, id) in [("Observation", "bp"), ("Basic", "other")] {
        write(
            h.store.as_ref(),
            put(t, id, 1, 1_000).with_index(index.clone()),
        )
        .await
        .expect("write");
    }
    assert_eq!(
        h.index_counts("Observation", "bp").await,
        [0, 4, 0, 0, 0, 4, 0]
    );
    h.forget_migrations_from(6).await;
    let _reopened = h.reopen().await;
    assert_eq!(
        h.index_counts("Observation", "bp").await,
        [0, 1, 0, 0, 0, 2, 0]
    );
    assert_eq!(
        h.index_counts("Basic", "other").await,
        [0, 4, 0, 0, 0, 4, 0]
    );
}

/// The migration that keys composite entries code first (SQLite's 9th, PostgreSQL's 8th)
/// drops the `$*` rows, turns `{param}${system}|{code}` into `{param}${code}|{system}` (the
/// code escaped), and leaves other parameters alone; a search then finds the rows by their
/// new names.
async fn composite_keys_migrate_code_first(h: Harness) {
    let token = |param: &str| coded(param, "http://snomed.info/sct", "373066001");
    let index = IndexEntries {
        tokens: vec![
            token("code"),
            token("code-value-concept$*|8480-6"),
            token("code-value-concept$http://loinc.org|8480-6"),
        ],
        quantities: vec![
            pressure("value-quantity", 120.0),
            pressure("code-value-quantity$*|8480-6", 120.0),
            pressure("code-value-quantity$http://loinc.org|8480-6", 120.0),
            pressure("component-code-value-quantity$*|8462-4", 80.0),
            pressure("component-code-value-quantity$|8462-4", 80.0),
            pressure("component-code-value-quantity$urn:x|a|b\\c", 1.0),
        ],
        ..Default::default()
    };
    write(
        h.store.as_ref(),
        put("Observation", "bp", 1, 1_000).with_index(index),
    )
    .await
    .expect("write");
    let version = if h.sqlite_file().is_some() { 9 } else { 8 };
    h.forget_migrations_from(version).await;
    let store = h.reopen().await;
    assert_eq!(
        h.index_counts("Observation", "bp").await,
        [0, 2, 0, 0, 0, 4, 0]
    );
    let exists = |param: &str, table: IndexTable| Condition::Match {
        param: param.into(),
        tests: vec![EntryTest::Exists(table)],
    };
    let prefixed = |prefix: &str, table: IndexTable| Condition::MatchPrefixed {
        prefix: prefix.into(),
        tests: vec![EntryTest::Exists(table)],
    };
    for condition in [
        exists("code", IndexTable::Token),
        exists(
            "code-value-concept$8480-6|http://loinc.org",
            IndexTable::Token,
        ),
        exists("value-quantity", IndexTable::Quantity),
        exists(
            "code-value-quantity$8480-6|http://loinc.org",
            IndexTable::Quantity,
        ),
        prefixed("code-value-quantity$8480-6|", IndexTable::Quantity),
        exists(
            "component-code-value-quantity$8462-4|",
            IndexTable::Quantity,
        ),
        exists(
            "component-code-value-quantity$a\\|b\\\\c|urn:x",
            IndexTable::Quantity,
        ),
    ] {
        let query = SearchQuery {
            resource_types: vec!["Observation".into()],
            conditions: vec![condition.clone()],
            count: 10,
            ..Default::default()
        };
        let page = store.search(&query).await.expect("search");
        assert_eq!(page.resources.len(), 1, "{condition:?}");
    }
}

/// Several processes starting at once on a new database migrate it exactly once.
async fn concurrent_open_migrates_once(h: Harness) {
    let stores = h.open_concurrently(4).await;
    write(stores[0].as_ref(), put("Patient", "a", 1, 1_000))
        .await
        .expect("write");
    for store in &stores {
        let found = store.read("Patient", "a").await.expect("read");
        assert_eq!(found.map(|v| v.version_id), Some(1));
    }
}

/// Many concurrent single writes (group-committed on SQLite): each succeeds or fails on its
/// own, and a conflicting one does not take the others down.
async fn concurrent_writes_alone(h: Harness) {
    let mut tasks = Vec::new();
    for n in 0..60 {
        let store = h.store.clone();
        tasks.push(tokio::spawn(async move {
            // Every tenth write repeats the id of the one before it: exactly one of each
            // such pair creates the resource.
            let id = if n % 10 == 9 {
                format!("w{}", n - 1)
            } else {
                format!("w{n}")
            };
            store.write_alone(put("Patient", &id, 1, 1_000 + n)).await
        }));
    }
    let mut ok = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => ok += 1,
            Err(StoreError::VersionConflict { .. }) => conflicts += 1,
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!((ok, conflicts), (54, 6));
    for n in (0..60).filter(|n| n % 10 != 9) {
        let found = h
            .store
            .read("Patient", &format!("w{n}"))
            .await
            .expect("read");
        assert_eq!(found.map(|v| v.version_id), Some(1), "w{n}");
    }
}

store_tests!(
    concurrent_writes_alone,
    concurrent_open_migrates_once,
    migration_6_drops_the_rows_of_union_parameters,
    composite_keys_migrate_code_first,
    create_read_vread,
    update_delete_recreate,
    version_conflicts,
    rollback_on_drop,
    reads_inside_tx_see_its_writes,
    index_entries_are_replaced,
    concurrent_writers_one_wins,
);
