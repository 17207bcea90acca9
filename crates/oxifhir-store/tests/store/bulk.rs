//! Many versions at once: `write_many` with more index rows than one multi-row insert holds,
//! a resource written twice in one batch, and bulk loads with deferred indexes — finished,
//! and interrupted (the next opening rebuilds the indexes) — and, on SQLite, the rollback
//! journal a load uses when it has the database to itself.

use oxifhir_store::{
    BulkLoad, IndexEntries, Isolation, Store, StoreError, StringEntry, TokenEntry, VersionWrite,
};

use crate::harness::{Harness, WriteExt, put, write};

fn index(i: usize) -> IndexEntries {
    IndexEntries {
        strings: vec![StringEntry {
            param: "name".into(),
            normalized: format!("n{i}"),
            exact: format!("N{i}"),
        }],
        tokens: (0..3)
            .map(|k| TokenEntry {
                param: "identifier".into(),
                system: Some("urn:s".into()),
                code: Some(format!("{i}-{k}")),
                text: None,
            })
            .collect(),
        ..Default::default()
    }
}

/// Creates of Patients `p{i}` for each `i` of `ids`, at `millis`.
fn creates(ids: std::ops::Range<usize>, millis: i64) -> Vec<VersionWrite> {
    ids.map(|i| put("Patient", &format!("p{i}"), 1, millis).with_index(index(i)))
        .collect()
}

/// The error with which `write_many(writes)` fails, in a transaction then dropped.
async fn refused(store: &dyn Store, writes: Vec<VersionWrite>) -> StoreError {
    let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
    tx.write_many(writes).await.expect_err("a refused batch")
}

/// Writes Patients `p0`…`p{n-1}` in one transaction; then, in another, `p0` as version 2,
/// and `q0` created and updated in the same batch.
async fn load(store: &dyn Store, n: usize) {
    let writes = creates(0..n, 1_000);
    let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
    tx.write_many(writes).await.expect("write_many");
    tx.commit().await.expect("commit");
    let one_token = IndexEntries {
        tokens: index(0).tokens[..1].to_vec(),
        ..Default::default()
    };
    let writes = vec![
        put("Patient", "p0", 2, 2_000).with_index(one_token.clone()),
        put("Patient", "q0", 1, 2_000).with_index(index(7)),
        put("Patient", "q0", 2, 2_000).with_index(one_token),
    ];
    let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
    tx.write_many(writes).await.expect("write_many");
    tx.commit().await.expect("commit");
}

/// Begins a bulk load that defers the value indexes.
async fn begin_deferred(store: &dyn Store) {
    store
        .begin_bulk_load(BulkLoad {
            input_bytes: 1,
            defer_indexes: Some(true),
        })
        .await
        .expect("begin bulk load");
}

async fn check(h: &Harness, store: &dyn Store, n: usize) {
    assert_eq!(h.index_counts("Patient", "p0").await, [0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(h.index_counts("Patient", "q0").await, [0, 1, 0, 0, 0, 0, 0]);
    for i in [1, n / 2, n - 1] {
        assert_eq!(
            h.index_counts("Patient", &format!("p{i}")).await,
            [1, 3, 0, 0, 0, 0, 0],
            "p{i}"
        );
    }
    let p0 = store
        .read("Patient", "p0")
        .await
        .expect("read")
        .expect("p0");
    assert_eq!(p0.version_id, 2);
}

/// Names of the indexes of the SQLite index tables and of `history`.
fn sqlite_indexes(h: &Harness) -> Option<Vec<String>> {
    let path = h.sqlite_file()?;
    let conn = rusqlite::Connection::open(path).expect("open");
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'index' \
             AND (tbl_name LIKE 'idx_%' OR tbl_name = 'history') ORDER BY name",
        )
        .expect("prepare");
    let names = stmt
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<rusqlite::Result<Vec<String>>>()
        .expect("rows");
    Some(names)
}

async fn write_many_batches_index_rows(h: Harness) {
    load(h.store.as_ref(), 300).await;
    check(&h, h.store.as_ref(), 300).await;
}

/// A call of many hundreds of resources (SQLite binds its values in place rather than
/// copying them, from 512 on), creates among them a conflict and a repeated id.
async fn write_many_of_many_hundred_resources(h: Harness) {
    let store = h.store.as_ref();
    load(store, 1_100).await;
    check(&h, store, 1_100).await;
    let found = store
        .read("Patient", "p1099")
        .await
        .expect("read")
        .expect("p1099");
    assert_eq!(found.body, crate::harness::body("Patient", "p1099", 1));
    let err = refused(store, creates(1_000..1_600, 3_000)).await;
    assert!(
        matches!(&err, StoreError::VersionConflict { id, .. } if id.starts_with("p10")),
        "{err:?}"
    );
    assert!(
        store
            .read("Patient", "p1100")
            .await
            .expect("read")
            .is_none()
    );
}

/// Among many creates (SQLite stores them with multi-row inserts), one of an id that exists
/// fails the batch with a conflict naming it, and nothing of the batch is stored.
async fn a_create_of_an_existing_id_among_many_is_a_conflict(h: Harness) {
    let store = h.store.as_ref();
    write(store, put("Patient", "p10", 1, 500))
        .await
        .expect("p10");
    match refused(store, creates(0..80, 1_000)).await {
        StoreError::VersionConflict { id, expected, .. } => {
            assert_eq!((id.as_str(), expected), ("p10", None));
        }
        other => panic!("{other:?}"),
    }
    assert!(store.read("Patient", "p0").await.expect("read").is_none());
    let writes = creates(20..220, 1_000);
    let mut tx = store.begin(Isolation::VersionChecked).await.expect("begin");
    tx.write_many(writes).await.expect("write_many");
    tx.commit().await.expect("commit");
    for i in [20, 83, 84, 150, 219] {
        let v = store
            .read("Patient", &format!("p{i}"))
            .await
            .expect("read")
            .expect("stored");
        assert_eq!(v.body, crate::harness::body("Patient", &format!("p{i}"), 1));
        let history = store
            .vread("Patient", &format!("p{i}"), 1)
            .await
            .expect("vread")
            .expect("version");
        assert_eq!(history.body, v.body);
    }
    write(store, put("Patient", "p84", 2, 2_000))
        .await
        .expect("update after a multi-row create");
    let old = store
        .vread("Patient", "p84", 1)
        .await
        .expect("vread")
        .expect("version 1");
    assert_eq!(old.body, crate::harness::body("Patient", "p84", 1));
}

async fn bulk_load_with_deferred_indexes(h: Harness) {
    let before = sqlite_indexes(&h);
    let store = h.store.as_ref();
    begin_deferred(store).await;
    if let Some(during) = sqlite_indexes(&h) {
        for deferred in ["idx_token_val", "history_type_idx"] {
            assert!(!during.contains(&deferred.to_owned()), "{during:?}");
        }
        assert!(
            during
                .iter()
                .any(|name| name.starts_with("sqlite_autoindex_history")),
            "the unique version key stays: {during:?}"
        );
    }
    load(store, 200).await;
    store.end_bulk_load().await.expect("end bulk load");
    check(&h, store, 200).await;
    assert_eq!(sqlite_indexes(&h), before);
}

async fn an_interrupted_bulk_load_is_finished_on_opening(h: Harness) {
    let before = sqlite_indexes(&h);
    begin_deferred(h.store.as_ref()).await;
    load(h.store.as_ref(), 100).await;
    // No end_bulk_load: as if the import had been killed.
    let reopened = h.reopen().await;
    assert_eq!(sqlite_indexes(&h), before);
    check(&h, reopened.as_ref(), 100).await;
}

/// The SQLite journal mode of the database, as a new connection sees it.
fn sqlite_journal_mode(h: &Harness) -> Option<String> {
    let conn = rusqlite::Connection::open(h.sqlite_file()?).expect("open");
    Some(
        conn.query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("journal mode"),
    )
}

async fn a_load_alone_on_the_database_leaves_the_wal_until_it_ends(h: Harness) {
    let store = h.store.as_ref();
    write(store, put("Patient", "before", 1, 500))
        .await
        .expect("write");
    begin_deferred(store).await;
    if let Some(mode) = sqlite_journal_mode(&h) {
        assert_eq!(mode, "delete", "new pages are written once");
    }
    load(store, 50).await;
    // Readers reconnect during the load and read what it committed.
    let read = store.read("Patient", "p49").await.expect("read");
    assert_eq!(read.map(|v| v.version_id), Some(1));
    store.end_bulk_load().await.expect("end bulk load");
    if let Some(mode) = sqlite_journal_mode(&h) {
        assert_eq!(mode, "wal");
    }
    check(&h, store, 50).await;
    let before = store.read("Patient", "before").await.expect("read");
    assert_eq!(before.map(|v| v.version_id), Some(1));
}

async fn a_load_beside_another_open_store_keeps_the_wal(h: Harness) {
    let other = h.reopen().await;
    assert!(other.read("Patient", "p0").await.expect("read").is_none());
    begin_deferred(h.store.as_ref()).await;
    if let Some(mode) = sqlite_journal_mode(&h) {
        assert_eq!(
            mode, "wal",
            "the other store's connections keep the database in WAL"
        );
    }
    load(h.store.as_ref(), 50).await;
    let seen = other.read("Patient", "p49").await.expect("read");
    assert_eq!(
        seen.map(|v| v.version_id),
        Some(1),
        "the other store reads the load"
    );
    h.store.end_bulk_load().await.expect("end bulk load");
    check(&h, other.as_ref(), 50).await;
}

store_tests!(
    a_create_of_an_existing_id_among_many_is_a_conflict,
    a_load_alone_on_the_database_leaves_the_wal_until_it_ends,
    a_load_beside_another_open_store_keeps_the_wal,
    write_many_batches_index_rows,
    write_many_of_many_hundred_resources,
    bulk_load_with_deferred_indexes,
    an_interrupted_bulk_load_is_finished_on_opening,
);
