//! Searches over current resources by id and lastUpdated: conditions, sorting, keyset paging
//! (forwards and backwards), totals, cursors.

use std::collections::HashSet;

use oxifhir_store::{Condition, SearchQuery, SortField, SortKey, Store, StoreError};

use crate::harness::{Harness, delete, put, write};

fn ids(page: &oxifhir_store::SearchPage) -> Vec<String> {
    page.resources.iter().map(|r| r.id.clone()).collect()
}

fn patients(conditions: Vec<Condition>) -> SearchQuery {
    SearchQuery {
        resource_types: vec!["Patient".into()],
        conditions,
        count: 100,
        ..SearchQuery::default()
    }
}

const ID_ASC: SortKey = SortKey {
    field: SortField::Id,
    descending: false,
};
const ID_DESC: SortKey = SortKey {
    field: SortField::Id,
    descending: true,
};
const LU_ASC: SortKey = SortKey {
    field: SortField::LastUpdated,
    descending: false,
};
const LU_DESC: SortKey = SortKey {
    field: SortField::LastUpdated,
    descending: true,
};

/// Patients p1..p5 at 1000..5000 (written in the order p3, p1, p5, p2, p4), p6 deleted,
/// an Observation o1 at 2500. Without sort keys, searches order by type and id.
async fn seed(store: &dyn Store) {
    for n in [3, 1, 5, 2, 4] {
        write(store, put("Patient", &format!("p{n}"), 1, n * 1_000))
            .await
            .expect("patient");
    }
    write(store, put("Patient", "p6", 1, 6_000))
        .await
        .expect("p6");
    write(store, delete("Patient", "p6", 2, 6_500))
        .await
        .expect("delete p6");
    write(store, put("Observation", "o1", 1, 2_500))
        .await
        .expect("o1");
}

async fn search_conditions(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;
    let run = |q: SearchQuery| async move { ids(&store.search(&q).await.expect("search")) };

    assert_eq!(run(patients(vec![])).await, ["p1", "p2", "p3", "p4", "p5"]);
    assert_eq!(
        run(patients(vec![Condition::IdIn(vec![
            "p2".into(),
            "p4".into(),
            "zz".into()
        ])]))
        .await,
        ["p2", "p4"]
    );
    assert_eq!(
        run(patients(vec![Condition::IdIn(vec!["p6".into()])])).await,
        Vec::<String>::new()
    );
    assert_eq!(
        run(patients(vec![Condition::IdIn(vec![])])).await,
        Vec::<String>::new()
    );
    assert_eq!(
        run(patients(vec![Condition::IdNotIn(vec![
            "p1".into(),
            "p5".into()
        ])]))
        .await,
        ["p2", "p3", "p4"]
    );
    assert_eq!(
        run(patients(vec![Condition::LastUpdated {
            from: Some(2_000),
            to: Some(4_000)
        }]))
        .await,
        ["p2", "p3"]
    );
    assert_eq!(
        run(patients(vec![Condition::LastUpdated {
            from: Some(4_000),
            to: None
        }]))
        .await,
        ["p4", "p5"]
    );
    assert_eq!(
        run(patients(vec![Condition::LastUpdatedNot {
            from: 2_000,
            to: 5_000
        }]))
        .await,
        ["p1", "p5"]
    );
    let any = Condition::Any(vec![
        Condition::IdIn(vec!["p1".into()]),
        Condition::LastUpdated {
            from: Some(5_000),
            to: None,
        },
    ]);
    assert_eq!(run(patients(vec![any.clone()])).await, ["p1", "p5"]);
    assert_eq!(
        run(patients(vec![any, Condition::IdNotIn(vec!["p5".into()])])).await,
        ["p1"]
    );
    assert_eq!(
        run(patients(vec![Condition::Any(vec![])])).await,
        Vec::<String>::new()
    );

    let all_types = SearchQuery {
        count: 100,
        ..SearchQuery::default()
    };
    assert_eq!(run(all_types).await, ["o1", "p1", "p2", "p3", "p4", "p5"]);
    let two_types = SearchQuery {
        resource_types: vec!["Observation".into(), "Patient".into()],
        conditions: vec![Condition::LastUpdated {
            from: Some(2_000),
            to: Some(3_000),
        }],
        count: 100,
        ..SearchQuery::default()
    };
    assert_eq!(run(two_types).await, ["o1", "p2"]);
    let none = SearchQuery {
        resource_types: vec!["Encounter".into()],
        count: 100,
        ..Default::default()
    };
    assert_eq!(run(none).await, Vec::<String>::new());
}

async fn search_sorting(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;
    // Ties on lastUpdated: q1 and q2 share 3000 with p3, written after it; ties order by id.
    write(store, put("Patient", "q2", 1, 3_000))
        .await
        .expect("q2");
    write(store, put("Patient", "q1", 1, 3_000))
        .await
        .expect("q1");
    let run = |sort: Vec<SortKey>| async move {
        ids(&store
            .search(&SearchQuery {
                sort,
                ..patients(vec![])
            })
            .await
            .expect("search"))
    };
    assert_eq!(
        run(vec![ID_ASC]).await,
        ["p1", "p2", "p3", "p4", "p5", "q1", "q2"]
    );
    assert_eq!(
        run(vec![ID_DESC]).await,
        ["q2", "q1", "p5", "p4", "p3", "p2", "p1"]
    );
    assert_eq!(
        run(vec![LU_ASC]).await,
        ["p1", "p2", "p3", "q1", "q2", "p4", "p5"]
    );
    assert_eq!(
        run(vec![LU_DESC]).await,
        ["p5", "p4", "p3", "q1", "q2", "p2", "p1"]
    );
    assert_eq!(
        run(vec![LU_DESC, ID_DESC]).await,
        ["p5", "p4", "q2", "q1", "p3", "p2", "p1"]
    );
}

/// Pages through `query` with `count`, returning every id in page order.
async fn page_through(store: &dyn Store, query: &SearchQuery, count: usize) -> Vec<String> {
    let mut q = SearchQuery {
        count,
        ..query.clone()
    };
    let mut all = Vec::new();
    for _ in 0..1_000 {
        let page = store.search(&q).await.expect("page");
        assert!(page.resources.len() <= count);
        all.extend(ids(&page));
        match page.next {
            Some(cursor) => q.cursor = Some(cursor),
            None => return all,
        }
    }
    panic!("paging does not end");
}

async fn search_paging_covers_every_row_once(h: Harness) {
    let store = h.store.as_ref();
    for n in 0..23 {
        // Ids out of insertion order, and lastUpdated with many ties.
        let id = format!("r{:02}", (n * 7) % 23);
        write(store, put("Patient", &id, 1, 1_000 + (n % 4) * 10))
            .await
            .expect("write");
    }
    let sorts = [
        vec![],
        vec![ID_ASC],
        vec![ID_DESC],
        vec![LU_DESC],
        vec![LU_ASC, ID_DESC],
    ];
    for sort in sorts {
        let query = SearchQuery {
            sort: sort.clone(),
            ..patients(vec![])
        };
        let whole = ids(&store.search(&query).await.expect("all"));
        assert_eq!(whole.len(), 23);
        for count in [1, 5, 22, 23, 24] {
            assert_eq!(
                page_through(store, &query, count).await,
                whole,
                "{sort:?} by {count}"
            );
        }
    }
}

async fn search_paging_with_inserts_between_pages(h: Harness) {
    let store = h.store.as_ref();
    for n in 0..10 {
        write(store, put("Patient", &format!("m{n}"), 1, 1_000 + n))
            .await
            .expect("write");
    }
    for (s, sort) in [vec![], vec![ID_ASC], vec![ID_DESC], vec![LU_ASC]]
        .into_iter()
        .enumerate()
    {
        let mut q = SearchQuery {
            sort: sort.clone(),
            count: 3,
            ..patients(vec![])
        };
        let mut seen = Vec::new();
        let mut round = 0;
        loop {
            let page = store.search(&q).await.expect("page");
            seen.extend(ids(&page));
            // Ids that sort before and after any cursor.
            round += 1;
            for id in [format!("a-{s}-{round}"), format!("z-{s}-{round}")] {
                write(store, put("Patient", &id, 1, 5_000))
                    .await
                    .expect("insert");
            }
            match page.next {
                Some(cursor) => q.cursor = Some(cursor),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), seen.len(), "{sort:?}: duplicates in {seen:?}");
        for n in 0..10 {
            assert!(
                seen.contains(&format!("m{n}")),
                "{sort:?}: m{n} missing from {seen:?}"
            );
        }
    }
}

async fn search_totals_and_count_zero(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;
    let page = store
        .search(&SearchQuery {
            count: 2,
            with_total: true,
            ..patients(vec![])
        })
        .await
        .expect("search");
    assert_eq!((page.resources.len(), page.total), (2, Some(5)));
    let second = store
        .search(&SearchQuery {
            count: 2,
            with_total: true,
            cursor: page.next,
            ..patients(vec![])
        })
        .await
        .expect("second page");
    assert_eq!(second.total, Some(5));
    let filtered = store
        .search(&SearchQuery {
            with_total: true,
            ..patients(vec![Condition::IdIn(vec!["p1".into(), "p6".into()])])
        })
        .await
        .expect("filtered");
    assert_eq!(filtered.total, Some(1));
    let without = store.search(&patients(vec![])).await.expect("no total");
    assert_eq!(without.total, None);
    let zero = store
        .search(&SearchQuery {
            count: 0,
            with_total: true,
            ..patients(vec![])
        })
        .await
        .expect("count 0");
    assert_eq!(
        (zero.resources.len(), zero.next, zero.total),
        (0, None, Some(5))
    );
}

async fn search_rejects_bad_cursors(h: Harness) {
    let store = h.store.as_ref();
    seed(store).await;
    let by_id = SearchQuery {
        sort: vec![ID_ASC],
        count: 1,
        ..patients(vec![])
    };
    let cursor = store
        .search(&by_id)
        .await
        .expect("search")
        .next
        .expect("cursor");
    let history_cursor = store
        .history(&oxifhir_store::HistoryQuery {
            scope: oxifhir_store::HistoryScope::System,
            since: None,
            before: None,
            count: 1,
            cursor: None,
        })
        .await
        .expect("history")
        .next
        .expect("history cursor");
    let cases = [
        (by_id.clone(), "garbage".to_owned()),
        (by_id.clone(), String::new()),
        (by_id.clone(), history_cursor),
        (by_id.clone(), format!("{cursor}.1")),
        (
            SearchQuery {
                sort: vec![ID_DESC],
                ..by_id.clone()
            },
            cursor.clone(),
        ),
        (
            SearchQuery {
                sort: vec![],
                ..by_id.clone()
            },
            cursor.clone(),
        ),
    ];
    for (query, bad) in cases {
        let err = store
            .search(&SearchQuery {
                cursor: Some(bad.clone()),
                ..query
            })
            .await
            .expect_err(&bad);
        assert!(matches!(err, StoreError::InvalidCursor), "{bad}: {err:?}");
    }
    let ok = store
        .search(&SearchQuery {
            cursor: Some(cursor),
            ..by_id
        })
        .await
        .expect("valid");
    assert_eq!(ids(&ok), ["p2"]);
}

store_tests!(
    search_conditions,
    search_sorting,
    search_paging_covers_every_row_once,
    search_paging_with_inserts_between_pages,
    search_totals_and_count_zero,
    search_rejects_bad_cursors,
);
