//! Export scans: versions at a cut, keyset batches by id, `since`, deletions, compartments.

use futures::StreamExt;
use oxifhir_store::{ExportFilter, ExportRow, ExportScan, IndexEntries, ReferenceEntry, Store};

use crate::harness::{Harness, WriteExt, delete, put, write, write_all};

fn scan(resource_type: &str, cut: i64) -> ExportScan {
    ExportScan {
        resource_type: resource_type.into(),
        after_id: None,
        up_to: None,
        since: None,
        cut,
        include_deleted: false,
        filter: ExportFilter::All,
        ids: None,
        limit: 100,
        as_ndjson: false,
    }
}

fn keys(rows: &[ExportRow]) -> Vec<String> {
    rows.iter()
        .map(|r| {
            format!(
                "{}/{}{}",
                r.version.id,
                r.version.version_id,
                if r.rewound { "*" } else { "" }
            )
        })
        .collect()
}

/// Every row of a scan, read in batches of `limit`.
async fn all(store: &dyn Store, mut scan: ExportScan) -> Vec<ExportRow> {
    let mut out = Vec::new();
    loop {
        let batch = store.export_scan(&scan).await.expect("scan");
        out.extend(batch.rows);
        if batch.complete {
            return out;
        }
        scan.after_id = batch.last_id;
    }
}

fn subject(patient: &str) -> IndexEntries {
    IndexEntries {
        references: vec![ReferenceEntry {
            param: "subject".into(),
            target_type: Some("Patient".into()),
            target_id: Some(patient.into()),
            url: format!("Patient/{patient}"),
        }],
        ..Default::default()
    }
}

/// Patients around a cut at 200. a: v1 at 100, v2 at 300 (after the cut); b: v1 at 150,
/// deleted at 400 (after the cut); c: created at 500 (after the cut); d: v1 at 120, deleted
/// at 180; e: v1 at 50.
async fn write_patients_around_the_cut(store: &dyn Store) {
    write_all(
        store,
        [
            put("Patient", "a", 1, 100),
            put("Patient", "b", 1, 150),
            put("Patient", "d", 1, 120),
            delete("Patient", "d", 2, 180),
            put("Patient", "e", 1, 50),
            put("Patient", "a", 2, 300),
            delete("Patient", "b", 2, 400),
            put("Patient", "c", 1, 500),
        ],
    )
    .await;
}

async fn export_scan_reads_versions_at_the_cut(h: Harness) {
    let store = h.store.as_ref();
    write_patients_around_the_cut(store).await;
    write(store, put("Observation", "o", 1, 100))
        .await
        .expect("write");
    let cut = 200;
    assert_eq!(
        keys(&all(store, scan("Patient", cut)).await),
        ["a/1*", "b/1*", "e/1"]
    );
    // In batches of one, with nothing lost or repeated.
    let mut small = scan("Patient", cut);
    small.limit = 1;
    assert_eq!(keys(&all(store, small).await), ["a/1*", "b/1*", "e/1"]);
    // `since` is exclusive; deletions when asked for.
    let mut since = scan("Patient", cut);
    since.since = Some(100);
    assert_eq!(keys(&all(store, since.clone()).await), ["b/1*"]);
    since.include_deleted = true;
    let rows = all(store, since).await;
    assert_eq!(keys(&rows), ["b/1*", "d/2"]);
    assert!(rows[1].version.is_deleted());
    // A later cut sees later versions; b is deleted at 400.
    assert_eq!(
        keys(&all(store, scan("Patient", 1_000)).await),
        ["a/2", "c/1", "e/1"]
    );
    let mut deleted = scan("Patient", 1_000);
    deleted.since = Some(350);
    deleted.include_deleted = true;
    assert_eq!(keys(&all(store, deleted).await), ["b/2", "c/1"]);
    // Counts leave out rows changed after the cut.
    assert_eq!(
        store
            .export_count(&scan("Patient", cut))
            .await
            .expect("count"),
        1
    );
    assert_eq!(
        store
            .export_count(&scan("Patient", 1_000))
            .await
            .expect("count"),
        3
    );
    assert_eq!(keys(&all(store, scan("Observation", cut)).await), ["o/1"]);
}

/// Every version a scan yields, as `id/version` (`*` when rewound), whether it came back as an
/// NDJSON line or as a row, in id order.
async fn all_keys(store: &dyn Store, mut scan: ExportScan) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let batch = store.export_scan(&scan).await.expect("scan");
        let text = String::from_utf8(batch.ndjson).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() as u64, batch.ndjson_lines);
        for line in lines {
            let body: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            out.push(format!(
                "{}/{}",
                body["id"].as_str().expect("id"),
                body["meta"]["versionId"].as_str().expect("versionId")
            ));
        }
        out.extend(keys(&batch.rows));
        if batch.complete {
            out.sort();
            return out;
        }
        scan.after_id = batch.last_id;
    }
}

async fn export_scan_as_ndjson_yields_the_same_versions(h: Harness) {
    let store = h.store.as_ref();
    // Every kind of row, and one more live resource after the others.
    write_patients_around_the_cut(store).await;
    write(store, put("Patient", "f", 1, 60))
        .await
        .expect("write");
    let mut cases = Vec::new();
    for cut in [40, 200, 1_000] {
        cases.push(scan("Patient", cut));
        let mut since = scan("Patient", cut);
        since.since = Some(100);
        cases.push(since.clone());
        since.include_deleted = true;
        cases.push(since);
    }
    for case in cases {
        for limit in [1, 2, 100] {
            let rows = ExportScan {
                limit,
                ..case.clone()
            };
            let lines = ExportScan {
                as_ndjson: true,
                ..rows.clone()
            };
            let mut expected = keys(&all(store, rows).await);
            expected.sort();
            // Current live versions come back as lines, the others as rows.
            assert_eq!(
                all_keys(store, lines).await,
                expected,
                "{case:?}, limit {limit}"
            );
        }
    }
}

async fn export_scan_filters_by_compartment(h: Harness) {
    let store = h.store.as_ref();
    for (id, patient) in [("o1", "p1"), ("o2", "p2"), ("o3", "p1"), ("o4", "p3")] {
        write(
            store,
            put("Observation", id, 1, 100).with_index(subject(patient)),
        )
        .await
        .expect("write");
    }
    write(store, put("Observation", "o5", 1, 100))
        .await
        .expect("write");
    let compartment = |ids: Option<Vec<&str>>| ExportFilter::References {
        params: vec!["subject".into(), "performer".into()],
        target_type: "Patient".into(),
        target_ids: ids.map(|ids| ids.into_iter().map(String::from).collect()),
    };
    let mut s = scan("Observation", 1_000);
    s.filter = compartment(None);
    assert_eq!(
        keys(&all(store, s.clone()).await),
        ["o1/1", "o2/1", "o3/1", "o4/1"]
    );
    s.filter = compartment(Some(vec!["p1", "p3"]));
    assert_eq!(keys(&all(store, s.clone()).await), ["o1/1", "o3/1", "o4/1"]);
    assert_eq!(store.export_count(&s).await.expect("count"), 3);
    s.filter = compartment(Some(vec![]));
    assert!(all(store, s.clone()).await.is_empty());
    s.filter = ExportFilter::Ids(vec!["o2".into(), "o5".into()]);
    assert_eq!(keys(&all(store, s).await), ["o2/1", "o5/1"]);
    // A resource that changed after the cut comes back unfiltered, from history.
    write(
        store,
        put("Observation", "o2", 2, 2_000).with_index(subject("p1")),
    )
    .await
    .expect("write");
    let mut s = scan("Observation", 1_000);
    s.filter = compartment(Some(vec!["p3"]));
    assert_eq!(keys(&all(store, s.clone()).await), ["o2/1*", "o4/1"]);
    // `ids` restricts every row, those changed after the cut included, whatever the filter.
    s.ids = Some(vec!["o1".into(), "o4".into()]);
    assert_eq!(keys(&all(store, s.clone()).await), ["o4/1"]);
    assert_eq!(store.export_count(&s).await.expect("count"), 1);
    s.filter = ExportFilter::All;
    s.ids = Some(vec!["o2".into(), "o3".into()]);
    assert_eq!(keys(&all(store, s.clone()).await), ["o2/1*", "o3/1"]);
    s.ids = Some(vec![]);
    assert!(all(store, s).await.is_empty());
}

/// The ids of the lines and rows of every batch of `export_batches`, batch by batch.
async fn batch_ids(store: &dyn Store, scan: ExportScan, rows: u64) -> Vec<Vec<String>> {
    let mut batches = store.export_batches(scan, rows);
    let mut out = Vec::new();
    while let Some(batch) = batches.next().await {
        let batch = batch.expect("batch");
        let text = String::from_utf8(batch.ndjson).expect("utf-8");
        let mut ids: Vec<String> = text
            .lines()
            .map(|line| {
                let body: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                body["id"].as_str().expect("id").to_owned()
            })
            .collect();
        ids.extend(batch.rows.iter().map(|r| r.version.id.clone()));
        ids.sort();
        assert_eq!(
            batch.last_id.as_ref(),
            ids.last(),
            "the batch ends at its last id"
        );
        out.push(ids);
    }
    out
}

async fn export_batches_follow_each_other_within_a_slice(h: Harness) {
    let store = h.store.as_ref();
    let ids: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    for id in &ids {
        write(store, put("Patient", id, 1, 100))
            .await
            .expect("write");
    }
    let mut plain = scan("Patient", 1_000);
    plain.as_ndjson = true;
    plain.limit = 3;
    // Batches of three continue after each other to the end.
    let batches = batch_ids(store, plain.clone(), 100).await;
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        [3, 3, 3, 1]
    );
    assert_eq!(batches.concat(), ids);
    // At most seven rows: the last batch asks for one.
    let batches = batch_ids(store, plain.clone(), 7).await;
    assert_eq!(batches.concat(), ids[..7]);
    // A slice: after p2 up to p6 (inclusive), whatever the batch size.
    for limit in [1, 2, 100] {
        let slice = ExportScan {
            after_id: Some("p2".into()),
            up_to: Some("p6".into()),
            limit,
            ..plain.clone()
        };
        assert_eq!(batch_ids(store, slice, 100).await.concat(), ids[3..7]);
    }
    // Dropping the stream early stops the scan without harm.
    let mut batches = store.export_batches(plain.clone(), 100);
    assert!(batches.next().await.expect("a batch").is_ok());
    drop(batches);
    // Samples: every id at one in one; the same sample every time; bounds that cut the ids
    // into even slices.
    let mut every = store.export_sample("Patient", 1).await.expect("sample");
    every.sort();
    assert_eq!(every, ids);
    let third = store.export_sample("Patient", 3).await.expect("sample");
    assert!(!third.is_empty() && third.len() <= 4, "{third:?}");
    assert_eq!(
        store.export_sample("Patient", 3).await.expect("sample"),
        third
    );
    assert!(
        store
            .export_sample("Observation", 1)
            .await
            .expect("sample")
            .is_empty()
    );
    assert_eq!(
        oxifhir_store::export::split_points(every, 2),
        ["p4"],
        "two slices of five"
    );
}

store_tests!(
    export_scan_reads_versions_at_the_cut,
    export_scan_as_ndjson_yields_the_same_versions,
    export_scan_filters_by_compartment,
    export_batches_follow_each_other_within_a_slice
);
