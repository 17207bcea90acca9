//! The job queue: claims, leases and fencing, checkpoints, retries, cancellation, release,
//! expiry and listing.

use std::time::Duration;

use oxifhir_model::Instant;
use oxifhir_store::jobs::{CancelResult, Claim, JobCount, JobFilter, JobFinish, JobState, NewJob};

use crate::harness::Harness;

fn job(id: &str, owner: Option<&str>, at: i64) -> NewJob {
    NewJob {
        id: id.to_owned(),
        kind: "test".to_owned(),
        owner: owner.map(str::to_owned),
        input: format!("{{\"n\":\"{id}\"}}").into_bytes(),
        request_url: format!("http://x/fhir/{id}"),
        request_time: Instant::from_millis(at),
    }
}

fn claim(worker: &str, now: Instant) -> Claim {
    Claim {
        worker: worker.to_owned(),
        kinds: vec!["test".to_owned()],
        lease: Duration::from_secs(30),
        now,
    }
}

fn finish(state: JobState, now: Instant) -> JobFinish {
    JobFinish {
        state,
        result: Some(b"result".to_vec()),
        error: None,
        progress: Some("done".into()),
        now,
        expires_at: Instant::from_millis(now.millis() + 1000),
    }
}

async fn claims_are_exclusive_and_fenced(h: Harness) {
    let jobs = h.store.jobs();
    let now = Instant::now();
    let queued = jobs.enqueue(job("j1", None, now.millis())).await.unwrap();
    assert_eq!((queued.state, queued.attempt), (JobState::Queued, 0));
    assert_eq!(queued.input, b"{\"n\":\"j1\"}");

    // Other kinds are not claimed.
    let mut other = claim("w0", now);
    other.kinds = vec!["other".into()];
    assert!(jobs.claim(&other).await.unwrap().is_none());

    let first = jobs
        .claim(&claim("w1", now))
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!((first.state, first.attempt), (JobState::Running, 1));
    assert_eq!(first.worker.as_deref(), Some("w1"));
    // Held: nobody else gets it while the lease lasts.
    assert!(jobs.claim(&claim("w2", now)).await.unwrap().is_none());

    // After the lease, another worker takes it over with a new fencing counter.
    let later = Instant::from_millis(now.millis() + 31_000);
    let second = jobs
        .claim(&claim("w2", later))
        .await
        .unwrap()
        .expect("taken over");
    assert_eq!(second.attempt, 2);
    // The stale attempt can no longer write anything.
    assert!(!jobs.heartbeat("j1", 1, later, Some("stale")).await.unwrap());
    assert!(
        !jobs
            .checkpoint("j1", 1, b"stale", None, None)
            .await
            .unwrap()
    );
    assert!(
        !jobs
            .finish("j1", 1, &finish(JobState::Completed, later))
            .await
            .unwrap()
    );
    assert!(!jobs.requeue("j1", 1, later, None).await.unwrap());
    // The current one can.
    assert!(jobs.heartbeat("j1", 2, later, Some("half")).await.unwrap());
    let t = Instant::from_millis(123);
    assert!(
        jobs.checkpoint("j1", 2, b"cp", Some("60%"), Some(t))
            .await
            .unwrap()
    );
    let current = jobs.job("j1").await.unwrap().unwrap();
    assert_eq!(current.checkpoint.as_deref(), Some(&b"cp"[..]));
    assert_eq!(current.progress.as_deref(), Some("60%"));
    assert_eq!(current.transaction_time, Some(t));
    // The transaction time is set once.
    assert!(
        jobs.checkpoint("j1", 2, b"cp2", None, Some(Instant::from_millis(999)))
            .await
            .unwrap()
    );
    assert_eq!(
        jobs.job("j1").await.unwrap().unwrap().transaction_time,
        Some(t)
    );

    assert!(
        jobs.finish("j1", 2, &finish(JobState::Completed, later))
            .await
            .unwrap()
    );
    let done = jobs.job("j1").await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Completed);
    assert_eq!(done.result.as_deref(), Some(&b"result"[..]));
    assert_eq!(done.progress.as_deref(), Some("done"));
    assert!(done.finished_at.is_some() && done.expires_at.is_some());
    assert!(jobs.claim(&claim("w3", later)).await.unwrap().is_none());
}

async fn requeue_waits_and_counts_failures(h: Harness) {
    let jobs = h.store.jobs();
    let now = Instant::now();
    jobs.enqueue(job("r1", None, now.millis())).await.unwrap();
    let running = jobs.claim(&claim("w", now)).await.unwrap().unwrap();
    let retry_at = Instant::from_millis(now.millis() + 5_000);
    assert!(
        jobs.requeue("r1", running.attempt, retry_at, Some("boom"))
            .await
            .unwrap()
    );
    let queued = jobs.job("r1").await.unwrap().unwrap();
    assert_eq!((queued.state, queued.failures), (JobState::Queued, 1));
    assert_eq!(queued.error.as_deref(), Some("boom"));
    assert!(
        jobs.claim(&claim("w", now)).await.unwrap().is_none(),
        "not before its time"
    );
    let again = jobs.claim(&claim("w", retry_at)).await.unwrap().unwrap();
    assert_eq!(again.attempt, 2);
    // A hand-back (shutdown) does not count as a failure.
    assert!(jobs.requeue("r1", 2, retry_at, None).await.unwrap());
    assert_eq!(jobs.job("r1").await.unwrap().unwrap().failures, 1);
}

async fn cancel_and_release(h: Harness) {
    let jobs = h.store.jobs();
    let now = Instant::now();
    let expires = Instant::from_millis(now.millis() + 60_000);
    assert_eq!(
        jobs.cancel("none", now, expires).await.unwrap(),
        CancelResult::NotFound
    );

    jobs.enqueue(job("c1", None, now.millis())).await.unwrap();
    let CancelResult::Cancelled(cancelled) = jobs.cancel("c1", now, expires).await.unwrap() else {
        panic!("a queued job is cancelled");
    };
    assert_eq!(cancelled.state, JobState::Cancelled);
    let CancelResult::Unchanged(same) = jobs.cancel("c1", now, expires).await.unwrap() else {
        panic!("cancelling twice changes nothing");
    };
    assert_eq!(same.state, JobState::Cancelled);
    assert!(jobs.claim(&claim("w", now)).await.unwrap().is_none());

    // A running job: its attempt loses the job at once.
    jobs.enqueue(job("c2", None, now.millis())).await.unwrap();
    let running = jobs.claim(&claim("w", now)).await.unwrap().unwrap();
    assert!(matches!(
        jobs.cancel("c2", now, expires).await.unwrap(),
        CancelResult::Cancelled(_)
    ));
    assert!(
        !jobs
            .heartbeat("c2", running.attempt, now, None)
            .await
            .unwrap()
    );

    // A finished job cannot be cancelled, but can be released.
    jobs.enqueue(job("c3", None, now.millis())).await.unwrap();
    let running = jobs.claim(&claim("w", now)).await.unwrap().unwrap();
    jobs.finish("c3", running.attempt, &finish(JobState::Completed, now))
        .await
        .unwrap();
    let CancelResult::Unchanged(done) = jobs.cancel("c3", now, expires).await.unwrap() else {
        panic!("finished jobs are not cancelled");
    };
    assert_eq!(done.state, JobState::Completed);
    let released = jobs
        .release("c3", now, now)
        .await
        .unwrap()
        .expect("released");
    assert_eq!(released.state, JobState::Completed);
    assert!(released.result.is_none(), "the result is dropped");
    assert!(released.released_at.is_some());
    assert!(
        jobs.release("c3", now, now).await.unwrap().is_none(),
        "released once"
    );

    // Releasing a queued job cancels it.
    jobs.enqueue(job("c4", None, now.millis())).await.unwrap();
    let released = jobs.release("c4", now, now).await.unwrap().unwrap();
    assert_eq!(released.state, JobState::Cancelled);
    assert!(jobs.release("unknown", now, now).await.unwrap().is_none());
}

async fn expiry_listing_and_counts(h: Harness) {
    let jobs = h.store.jobs();
    let now = Instant::now();
    for (i, owner) in [Some("a"), Some("a"), Some("b"), None]
        .into_iter()
        .enumerate()
    {
        jobs.enqueue(job(&format!("l{i}"), owner, now.millis() + i as i64))
            .await
            .unwrap();
    }
    assert_eq!(jobs.active_count(Some("a")).await.unwrap(), 2);
    assert_eq!(jobs.active_count(Some("b")).await.unwrap(), 1);
    assert_eq!(jobs.active_count(None).await.unwrap(), 1);

    let all = jobs
        .list(&JobFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = all.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(ids, ["l0", "l1", "l2", "l3"]);
    let page = jobs
        .list(&JobFilter {
            limit: 2,
            after: Some((all[1].request_time, all[1].id.clone())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["l2", "l3"]
    );
    // Newest first (the jobs page), paged in that order.
    let newest = jobs
        .list(&JobFilter {
            limit: 3,
            newest_first: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        newest.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["l3", "l2", "l1"]
    );
    let older = jobs
        .list(&JobFilter {
            limit: 3,
            newest_first: true,
            after: Some((newest[2].request_time, newest[2].id.clone())),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        ["l0"]
    );
    let of_a = jobs
        .list(&JobFilter {
            limit: 10,
            owner: Some("a".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(of_a.len(), 2);

    let running = jobs.claim(&claim("w", now)).await.unwrap().unwrap();
    assert_eq!(running.id, "l0");
    let by_state = |states: Vec<JobState>| JobFilter {
        limit: 10,
        states,
        ..Default::default()
    };
    assert_eq!(
        jobs.list(&by_state(vec![JobState::Running]))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        jobs.list(&by_state(vec![JobState::Queued]))
            .await
            .unwrap()
            .len(),
        3
    );

    // Expiry: only jobs past their time, then purged for good.
    jobs.finish("l0", 1, &finish(JobState::Completed, now))
        .await
        .unwrap();
    jobs.release("l1", now, now).await.unwrap();
    assert!(
        jobs.list(&by_state(vec![]))
            .await
            .unwrap()
            .iter()
            .all(|j| j.id != "l1")
    );
    let at = Instant::from_millis(now.millis() + 500);
    let expired: Vec<_> = jobs
        .expired(at, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|j| j.id)
        .collect();
    assert_eq!(expired, ["l1"]);
    let later = Instant::from_millis(now.millis() + 5_000);
    assert_eq!(jobs.expired(later, 10).await.unwrap().len(), 2);
    jobs.purge("l1").await.unwrap();
    assert!(jobs.job("l1").await.unwrap().is_none());
}

async fn counts_by_kind_and_state(h: Harness) {
    let jobs = h.store.jobs();
    let now = Instant::now();
    assert!(jobs.counts().await.unwrap().is_empty());
    for i in 0..4 {
        jobs.enqueue(job(&format!("k{i}"), None, now.millis() + i))
            .await
            .unwrap();
    }
    let mut other = job("o1", None, now.millis());
    other.kind = "other".into();
    jobs.enqueue(other).await.unwrap();
    let later = Instant::from_millis(now.millis() + 10);
    let running = jobs.claim(&claim("w", later)).await.unwrap().unwrap();
    jobs.finish(&running.id, 1, &finish(JobState::Completed, later))
        .await
        .unwrap();
    jobs.claim(&claim("w", later)).await.unwrap().unwrap();
    jobs.cancel("k2", now, now).await.unwrap();
    // A released job no longer counts.
    jobs.release("k3", now, now).await.unwrap();
    let count = |kind: &str, state, count| JobCount {
        kind: kind.into(),
        state,
        count,
    };
    assert_eq!(
        jobs.counts().await.unwrap(),
        [
            count("other", JobState::Queued, 1),
            count("test", JobState::Cancelled, 1),
            count("test", JobState::Completed, 1),
            count("test", JobState::Running, 1),
        ]
    );
}

async fn enqueue_wakes_waiting_workers(h: Harness) {
    let jobs = h.store.jobs();
    let mut wakeups = jobs.wakeups();
    wakeups.borrow_and_update();
    // On PostgreSQL another node's enqueue (a second store on the same database) wakes this
    // one too; SQLite serves one process, whose own enqueues wake it.
    let other = match h.store.backend_name() {
        "postgres" => h.reopen().await,
        _ => h.store.clone(),
    };
    // Give a PostgreSQL listener time to subscribe.
    tokio::time::sleep(Duration::from_millis(300)).await;
    other
        .jobs()
        .enqueue(job("w1", None, Instant::now().millis()))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), wakeups.changed())
        .await
        .expect("woken within 5 s")
        .unwrap();
}

store_tests!(
    claims_are_exclusive_and_fenced,
    requeue_waits_and_counts_failures,
    cancel_and_release,
    expiry_listing_and_counts,
    counts_by_kind_and_state,
    enqueue_wakes_waiting_workers,
);
