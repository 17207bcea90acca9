//! A rough measurement of single-task reads by id; prints, never asserts.
//!
//! Run with `cargo test -p oxifhir-store --release --test store bench -- --nocapture`.

use oxifhir_store::Isolation;
use std::time::{Duration, Instant};

use crate::harness::{Harness, put};

async fn reads_by_id_per_second(h: Harness) {
    let store = h.store.as_ref();
    const N: usize = 1_000;
    let mut tx = store.begin(Isolation::Serializable).await.expect("begin");
    for n in 0..N {
        tx.write(put("Patient", &format!("b{n}"), 1, 1_000))
            .await
            .expect("write");
    }
    tx.commit().await.expect("commit");

    let started = Instant::now();
    let mut reads = 0usize;
    while started.elapsed() < Duration::from_millis(700) {
        let id = format!("b{}", (reads * 7919) % N);
        assert!(store.read("Patient", &id).await.expect("read").is_some());
        reads += 1;
    }
    let rate = reads as f64 / started.elapsed().as_secs_f64();
    eprintln!(
        "{}: {rate:.0} reads/s by id (one task, sequential)",
        store.backend_name()
    );
}

store_tests!(reads_by_id_per_second);
