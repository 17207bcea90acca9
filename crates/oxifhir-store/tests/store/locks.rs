//! `StoreTx::lock`: transactions that lock one key run one after another, and the later one
//! reads what the earlier one committed (so a decision resting on that read holds).

use std::time::Duration;

use oxifhir_store::Isolation;

use crate::harness::{Harness, put};

async fn lock_serializes_holders(h: Harness) {
    let store = h.store.clone();
    let mut first = store.begin(Isolation::Serializable).await.expect("begin");
    first.lock("Schedule/a").await.expect("lock");
    first
        .write(put("Patient", "a", 1, 1_000))
        .await
        .expect("write");

    let second_store = store.clone();
    let second = tokio::spawn(async move {
        let mut tx = second_store
            .begin(Isolation::Serializable)
            .await
            .expect("begin");
        tx.lock("Schedule/a").await.expect("lock");
        let seen = tx.read("Patient", "a").await.expect("read");
        let version = seen.as_ref().map(|v| v.version_id);
        tx.write(put("Patient", "a", 2, 2_000))
            .await
            .expect("write after the first");
        tx.commit().await.expect("commit");
        version
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !second.is_finished(),
        "the second holder waits for the first"
    );
    first.commit().await.expect("commit");
    let seen = tokio::time::timeout(Duration::from_secs(10), second)
        .await
        .expect("the second holder ran after the first")
        .expect("task");
    assert_eq!(seen, Some(1), "the second holder saw the first one's write");

    // The lock is free again after commit and after rollback (a dropped transaction).
    for round in 0..3 {
        let mut tx = store.begin(Isolation::Serializable).await.expect("begin");
        tokio::time::timeout(Duration::from_secs(10), tx.lock("Schedule/a"))
            .await
            .unwrap_or_else(|_| panic!("round {round}: the lock was not released"))
            .expect("lock");
        if round == 1 {
            drop(tx);
            tokio::time::sleep(Duration::from_millis(100)).await;
        } else {
            tx.commit().await.expect("commit");
        }
    }
    // Other keys do not wait.
    let mut a = store.begin(Isolation::Serializable).await.expect("begin");
    a.lock("Schedule/a").await.expect("lock");
    if store.backend_name() == "postgres" {
        let mut b = store.begin(Isolation::Serializable).await.expect("begin");
        tokio::time::timeout(Duration::from_secs(5), b.lock("Schedule/b"))
            .await
            .expect("another key is free")
            .expect("lock");
        b.commit().await.expect("commit");
    }
    a.commit().await.expect("commit");
}

store_tests!(lock_serializes_holders);
