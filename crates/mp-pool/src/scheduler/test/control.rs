//! Cancels, retries and the crash budget, and a timeout that finds its chunk still queued:
//! the scheduler's side of per-task control (issue #26).

use std::time::Duration;

use super::*;

/// `n` chunks as `chunks(n)` under `retry`.
fn retried_chunks(n: usize, retry: crate::Retry) -> Vec<Prepared> {
    let mut chunks = chunks(n);
    for chunk in &mut chunks {
        chunk.set_limits(crate::wire::Limits {
            retry,
            ..Default::default()
        });
    }
    chunks
}

#[test]
fn cancel_drops_pending_skips_queued_and_kills_running() {
    let (mut s, queues) = pool(1, false);
    all_up(&mut s);
    let other = Job::new(Some(1));
    run(s.submit(&other, chunks(1)).unwrap());
    let job = Job::new(Some(3));
    run(s.submit(&job, chunks(3)).unwrap());
    // The worker holds the other job's chunk 0 and this job's first chunk; two are pending.
    assert_eq!(outstanding(&s, 0), [0, 1]);
    assert_eq!(queues[0].take(), Some(0));
    let (report, callbacks, kill) = s.cancel_job(&job);
    run(callbacks);
    assert_eq!(
        report,
        Cancel::Cancelled {
            queued: 3,
            running: 0
        }
    );
    assert!(
        kill.is_empty(),
        "nothing of the job runs: no worker dies for it"
    );
    assert_eq!(done(&job).len(), 3);
    assert!(
        done(&job)
            .iter()
            .all(|(_, e)| e.as_deref() == Some("Cancelled"))
    );
    // The worker exits when it reaches the cancelled chunk, and gets nothing more meanwhile.
    assert!(s.workers[0].as_ref().unwrap().stopping);
    check_places(&s);
    run(s.on_result(0, 0, Outcome::Ok, Vec::new(), Vec::new()));
    assert_eq!(done(&other), [(0, None)]);
    assert_eq!(queues[0].take(), Some(1));
    run(s.on_result(0, 1, Outcome::Skipped, Vec::new(), Vec::new()));
    run(dies(&mut s, 0, 0));
    assert_eq!(
        s.early_deaths, 0,
        "a worker that exits at a cancelled chunk did not crash"
    );

    // Running: its worker is to be killed; its death fails nothing more.
    start(&mut s, &queues[0], 0);
    all_up(&mut s);
    let running = Job::new(Some(1));
    run(s.submit(&running, chunks(1)).unwrap());
    let id = queues[0].take().unwrap();
    let (report, callbacks, kill) = s.cancel_job(&running);
    run(callbacks);
    assert_eq!(
        report,
        Cancel::Cancelled {
            queued: 0,
            running: 1
        }
    );
    assert_eq!(kill, [(0, s.workers[0].as_ref().unwrap().generation)]);
    assert_eq!(done(&running), [(0, Some("Cancelled".into()))]);
    assert!(!s.tasks.contains_key(&id));
    run(dies(&mut s, 0, -9));
    assert_eq!(done(&running).len(), 1, "its death fails it no second time");
    check_places(&s);

    // Finished: nothing to cancel.
    assert_eq!(s.cancel_job(&running).0, Cancel::Finished);
}

#[test]
fn a_crashed_chunk_runs_again_up_to_its_retries_then_gives_up_with_the_count() {
    let (mut s, queues) = pool(1, false);
    all_up(&mut s);
    let job = Job::new(Some(1));
    run(s
        .submit(&job, retried_chunks(1, crate::Retry::new(2)))
        .unwrap());
    for attempt in 1..=3 {
        assert!(queues[0].take().is_some(), "attempt {attempt} was sent");
        run(dies(&mut s, 0, -11));
        check_places(&s);
        start(&mut s, &queues[0], 0);
        all_up(&mut s);
        run(s.dispatch());
        if attempt < 3 {
            assert!(done(&job).is_empty(), "attempt {attempt} is retried");
        }
    }
    let failed = done(&job);
    assert_eq!(failed.len(), 1);
    let message = failed[0].1.as_deref().unwrap();
    assert!(message.starts_with("GaveUp { attempts: 3"), "{message}");
    assert!(queues[0].ids().is_empty(), "no fourth run");
}

#[test]
fn the_crash_budget_stops_retries_and_timeouts_do_not_count_towards_it() {
    let (mut s, queues) = pool(1, false);
    all_up(&mut s);
    let job = Job::new(Some(1));
    let retry = crate::Retry::new(5).crash_limit(2);
    let mut chunk = retried_chunks(1, retry);
    chunk[0].timeout = Some(Duration::from_millis(1));
    run(s.submit(&job, chunk).unwrap());
    // A timeout: runs again, and is no crash.
    queues[0].take().unwrap();
    let later = mp_sys::deadline::after(Duration::from_secs(3600)).unwrap();
    let (callbacks, kill) = s.expire(later);
    run(callbacks);
    assert_eq!(kill.len(), 1);
    run(dies(&mut s, 0, -9));
    // Two crashes: the budget is spent.
    for _ in 0..2 {
        start(&mut s, &queues[0], 0);
        all_up(&mut s);
        run(s.dispatch());
        queues[0].take().unwrap();
        run(dies(&mut s, 0, -11));
    }
    let failed = done(&job);
    assert_eq!(failed.len(), 1);
    let message = failed[0].1.as_deref().unwrap();
    assert!(message.starts_with("GaveUp { attempts: 3"), "{message}");
    assert!(message.contains("WorkerDied"), "{message}");
}

#[test]
fn without_retries_nothing_runs_twice() {
    let (mut s, queues) = pool(1, false);
    all_up(&mut s);
    let job = Job::new(Some(1));
    run(s.submit(&job, chunks(1)).unwrap());
    queues[0].take().unwrap();
    run(dies(&mut s, 0, -11));
    start(&mut s, &queues[0], 0);
    all_up(&mut s);
    run(s.dispatch());
    assert!(queues[0].ids().is_empty());
    assert!(
        done(&job)[0]
            .1
            .as_deref()
            .unwrap()
            .starts_with("WorkerDied")
    );
}

#[test]
fn a_timed_out_chunk_not_taken_yet_runs_elsewhere_untimed() {
    let (mut s, _queues) = pool(1, false);
    all_up(&mut s);
    let job = Job::new(Some(1));
    run(s.submit(&job, timed_chunks(1, 1)).unwrap());
    // The worker never took it: its deadline passed in the queue.
    let later = mp_sys::deadline::after(Duration::from_secs(3600)).unwrap();
    let (callbacks, kill) = s.expire(later);
    run(callbacks);
    assert!(
        kill.is_empty(),
        "no worker is killed for a chunk it does not run"
    );
    assert!(done(&job).is_empty(), "the chunk did not fail");
    assert_eq!(s.pending_len(), 1, "it waits for another worker");
    check_places(&s);
}
