//! History at system, type and instance level: order, since/before, paging, totals.

use oxifhir_store::{HistoryPage, HistoryQuery, HistoryScope, Store, StoreError};

use crate::harness::{Harness, body, delete, keys, put, write, write_all};

fn query(scope: HistoryScope) -> HistoryQuery {
    HistoryQuery {
        scope,
        since: None,
        before: None,
        count: 100,
        cursor: None,
    }
}

fn patient(id: &str) -> HistoryScope {
    HistoryScope::Instance {
        resource_type: "Patient".into(),
        id: id.into(),
    }
}

/// a1 1000, b1 1500, a2 2000, o1 2500, a3 (deleted) 3000.
async fn seed(store: &dyn Store) {
    write(store, put("Patient", "a", 1, 1_000))
        .await
        .expect("a1");
    write(store, put("Patient", "b", 1, 1_500))
        .await
        .expect("b1");
    write(store, put("Patient", "a", 2, 2_000))
        .await
        .expect("a2");
    write(store, put("Observation", "o", 1, 2_500))
        .await
        .expect("o1");
    write(store, delete("Patient", "a", 3, 3_000))
        .await
        .expect("a3");
}

async fn history_scopes_newest_first(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;

    let page = store.history(&query(patient("a"))).await.expect("instance");
    assert_eq!(
        keys(&page.versions),
        ["Patient/a/3", "Patient/a/2", "Patient/a/1"]
    );
    assert!(page.versions[0].is_deleted());
    assert_eq!((page.total, page.next.as_deref()), (3, None));

    let page = store
        .history(&query(HistoryScope::Type("Patient".into())))
        .await
        .expect("type");
    assert_eq!(
        keys(&page.versions),
        ["Patient/a/3", "Patient/a/2", "Patient/b/1", "Patient/a/1"]
    );
    assert_eq!(page.total, 4);

    let page = store
        .history(&query(HistoryScope::System))
        .await
        .expect("system");
    assert_eq!(
        keys(&page.versions),
        [
            "Patient/a/3",
            "Observation/o/1",
            "Patient/a/2",
            "Patient/b/1",
            "Patient/a/1"
        ]
    );
    assert_eq!(page.total, 5);

    let empty = store
        .history(&query(patient("nobody")))
        .await
        .expect("unknown instance");
    assert_eq!((empty.versions.len(), empty.total), (0, 0));
}

async fn history_since_before(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;

    let since = HistoryQuery {
        since: Some(1_500),
        ..query(HistoryScope::System)
    };
    let page = store.history(&since).await.expect("since");
    assert_eq!(
        keys(&page.versions),
        [
            "Patient/a/3",
            "Observation/o/1",
            "Patient/a/2",
            "Patient/b/1"
        ]
    );
    assert_eq!(page.total, 4);

    let before = HistoryQuery {
        before: Some(2_000),
        ..query(HistoryScope::Type("Patient".into()))
    };
    let page = store.history(&before).await.expect("before");
    assert_eq!(keys(&page.versions), ["Patient/b/1", "Patient/a/1"]);
    assert_eq!(page.total, 2);

    let both = HistoryQuery {
        since: Some(2_000),
        before: Some(3_000),
        ..query(patient("a"))
    };
    let page = store.history(&both).await.expect("both");
    assert_eq!(keys(&page.versions), ["Patient/a/2"]);
    assert_eq!(page.total, 1);
}

async fn collect_pages(store: &dyn Store, mut q: HistoryQuery) -> (Vec<Vec<String>>, Vec<u64>) {
    let (mut pages, mut totals) = (Vec::new(), Vec::new());
    loop {
        let HistoryPage {
            versions,
            next,
            total,
        } = store.history(&q).await.expect("page");
        pages.push(keys(&versions));
        totals.push(total);
        match next {
            Some(cursor) => q.cursor = Some(cursor),
            None => return (pages, totals),
        }
        assert!(pages.len() < 100, "paging does not end");
    }
}

async fn history_paging(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;
    let (pages, totals) = collect_pages(
        store,
        HistoryQuery {
            count: 2,
            ..query(HistoryScope::System)
        },
    )
    .await;
    assert_eq!(
        pages,
        [
            vec!["Patient/a/3", "Observation/o/1"],
            vec!["Patient/a/2", "Patient/b/1"],
            vec!["Patient/a/1"],
        ]
    );
    assert_eq!(totals, [5, 5, 5]);

    // An exact fit: no empty trailing page.
    let (pages, _) = collect_pages(
        store,
        HistoryQuery {
            count: 3,
            ..query(patient("a"))
        },
    )
    .await;
    assert_eq!(pages.len(), 1);

    // Versions with the same lastUpdated keep a stable order (newest write first) across pages.
    for i in 0..7 {
        write(store, put("Group", &format!("g{i}"), 1, 9_000))
            .await
            .expect("group");
    }
    let (pages, totals) = collect_pages(
        store,
        HistoryQuery {
            count: 3,
            ..query(HistoryScope::Type("Group".into()))
        },
    )
    .await;
    let flat: Vec<String> = pages.concat();
    let expected: Vec<String> = (0..7).rev().map(|i| format!("Group/g{i}/1")).collect();
    assert_eq!(flat, expected);
    assert_eq!(totals, [7, 7, 7]);

    // New versions written while paging do not disturb the pages after the cursor.
    let first = store
        .history(&HistoryQuery {
            count: 2,
            ..query(HistoryScope::Type("Group".into()))
        })
        .await
        .expect("first");
    write(store, put("Group", "g0", 2, 9_500))
        .await
        .expect("newer");
    let rest = collect_pages(
        store,
        HistoryQuery {
            count: 2,
            cursor: first.next,
            ..query(HistoryScope::Type("Group".into()))
        },
    )
    .await
    .0
    .concat();
    assert_eq!(rest, expected[2..]);
}

async fn history_count_zero_and_bad_cursors(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;
    let page = store
        .history(&HistoryQuery {
            count: 0,
            ..query(HistoryScope::System)
        })
        .await
        .expect("count 0");
    assert_eq!((page.versions.len(), page.next, page.total), (0, None, 5));

    let search_cursor = store
        .search(&oxifhir_store::SearchQuery {
            count: 1,
            ..Default::default()
        })
        .await
        .expect("search")
        .next
        .expect("search cursor");
    for bad in ["", "garbage", "h1.x.1", "h1.1", search_cursor.as_str()] {
        let q = HistoryQuery {
            cursor: Some(bad.to_owned()),
            ..query(HistoryScope::System)
        };
        let err = store.history(&q).await.expect_err(bad);
        assert!(matches!(err, StoreError::InvalidCursor), "{bad}: {err:?}");
    }
}

/// Every version reads back with its own body however often the resource changed; on SQLite
/// the history row of the current version stores no copy of the body.
async fn every_version_keeps_its_body(h: Harness) {
    let store = h.store.as_ref();
    write_all(
        store,
        [
            put("Patient", "a", 1, 1_000),
            put("Patient", "a", 2, 2_000),
            delete("Patient", "a", 3, 3_000),
            put("Patient", "a", 4, 4_000),
            put("Patient", "a", 5, 5_000),
        ],
    )
    .await;
    for version in 1..=5 {
        let v = store
            .vread("Patient", "a", version)
            .await
            .expect("vread")
            .expect("version");
        let expected = if version == 3 {
            Vec::new()
        } else {
            body("Patient", "a", version)
        };
        assert_eq!(v.body, expected, "version {version}");
    }
    let page = store.history(&query(patient("a"))).await.expect("history");
    let bodies: Vec<Vec<u8>> = page.versions.iter().map(|v| v.body.clone()).collect();
    let expected: Vec<Vec<u8>> = [5, 4, 3, 2, 1]
        .into_iter()
        .map(|v| {
            if v == 3 {
                Vec::new()
            } else {
                body("Patient", "a", v)
            }
        })
        .collect();
    assert_eq!(bodies, expected);
    if let Some(file) = h.sqlite_file() {
        let conn = rusqlite::Connection::open(file).expect("open");
        let stored: Vec<(i64, i64)> = conn
            .prepare("SELECT version_id, length(body) FROM history ORDER BY version_id")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        let len = |v: i64| body("Patient", "a", v).len() as i64;
        assert_eq!(
            stored,
            [(1, len(1)), (2, len(2)), (3, 0), (4, len(4)), (5, 0)]
        );
    }
}

store_tests!(
    every_version_keeps_its_body,
    history_scopes_newest_first,
    history_since_before,
    history_paging,
    history_count_zero_and_bad_cursors,
);
