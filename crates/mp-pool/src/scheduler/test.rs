//! The scheduler without processes: each worker's queue is a plain list that the test takes
//! frames from, as a worker would, and deaths are told to the scheduler as the monitor would.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::os::fd::BorrowedFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::{Port, Scheduler, Status, Worker};
use crate::control::{Cancel, Found};
use crate::error::PoolError;
use crate::result::{Deferred, Job};
use crate::wire::{self, Outcome, Prepared};

/// A worker's task queue, the rank of a remote worker (`None`: a local process), and how
/// many frames the worker took (for the cancel handshake: the last one taken is running).
#[derive(Clone, Default)]
struct Fake(Rc<RefCell<VecDeque<Vec<u8>>>>, Option<u32>, Rc<Cell<u64>>);

impl Port for Fake {
    type Error = &'static str;

    fn send(&self, frame: &[u8], _: &[BorrowedFd<'_>]) -> Result<(), &'static str> {
        self.0.borrow_mut().push_back(frame.to_vec());
        Ok(())
    }

    fn queued(&self) -> usize {
        self.0.borrow().len()
    }

    fn rank(&self) -> Option<u32> {
        self.1
    }

    fn mark_cancelled(&self, seq: u64) -> Option<Found> {
        if self.1.is_some() {
            return None;
        }
        let taken = self.2.get();
        Some(match seq + 1 {
            n if n > taken => Found::Queued,
            n if n == taken => Found::Running,
            _ => Found::Finished,
        })
    }
}

impl Fake {
    /// The worker takes its next frame: the id of the chunk, if it is a task.
    fn take(&self) -> Option<u64> {
        let frame = self.0.borrow_mut().pop_front()?;
        self.2.set(self.2.get() + 1);
        wire::parse_task(&frame).map(|t| t.id)
    }

    /// The ids of the tasks in the queue, not taken.
    fn ids(&self) -> Vec<u64> {
        let queue = self.0.borrow();
        queue
            .iter()
            .filter_map(|f| wire::parse_task(f))
            .map(|t| t.id)
            .collect()
    }
}

const PID: u32 = 1000;

/// A scheduler with `processes` workers, started (not up yet), and their queues.
fn pool(processes: usize, has_init: bool) -> (Scheduler<Fake>, Vec<Fake>) {
    let mut s = Scheduler::new(processes, has_init);
    let queues: Vec<Fake> = (0..processes).map(|_| Fake::default()).collect();
    for (slot, queue) in queues.iter().enumerate() {
        start(&mut s, queue, slot);
    }
    (s, queues)
}

/// Starts a worker in `slot` (a replacement, after a death), as the pool does.
fn start(s: &mut Scheduler<Fake>, queue: &Fake, slot: usize) {
    queue.0.borrow_mut().clear();
    queue.2.set(0);
    let generation = s.next_generation();
    s.workers[slot] = Some(Worker::new(
        queue.clone(),
        PID + slot as u32,
        generation,
        None,
    ));
}

/// The workers in every slot are up (sent `Ready`).
fn all_up(s: &mut Scheduler<Fake>) {
    for slot in 0..s.workers.len() {
        s.on_ready(slot as u32);
    }
}

/// `n` chunks of two items each: chunk `c` holds items `2c` and `2c + 1`.
fn chunks(n: usize) -> Vec<Prepared> {
    (0..n)
        .map(|c| {
            Prepared::encode(
                crate::wire::TaskFn {
                    entry: mp_spawn::code::RawCodeRef::from_index(7),
                    code: 0,
                },
                c,
                2 * c,
                &[1u64, 2],
            )
            .unwrap()
        })
        .collect()
}

/// The monitor reports the death of the worker in `slot`.
fn dies(s: &mut Scheduler<Fake>, slot: usize, exitcode: i32) -> Vec<Deferred> {
    let generation = s.workers[slot].as_ref().unwrap().generation;
    let worker = s.take_dead(slot, generation).expect("the slot holds it");
    s.on_died(worker, exitcode, None)
}

fn run(callbacks: Vec<Deferred>) {
    for callback in callbacks {
        callback();
    }
}

/// The chunk numbers the job has finished, with their failure if any.
fn done(job: &Arc<Job>) -> Vec<(usize, Option<String>)> {
    job.lock()
        .done
        .iter()
        .map(|(chunk, r)| (*chunk, r.as_ref().err().map(|e| format!("{e:?}"))))
        .collect()
}

fn outstanding(s: &Scheduler<Fake>, slot: usize) -> Vec<u64> {
    s.workers[slot]
        .as_ref()
        .unwrap()
        .outstanding
        .iter()
        .copied()
        .collect()
}

/// Every unfinished chunk is in exactly one place: pending, or sent to one worker (in its
/// queue or taken); and a finished one is in none, but for a worker's late chunks (failed past
/// their timeout, not answered yet).
fn check_places(s: &Scheduler<Fake>) {
    let mut seen: Vec<u64> = s.pending.iter().copied().collect();
    for worker in s.workers.iter().flatten() {
        let late = worker
            .outstanding
            .iter()
            .filter(|id| !s.tasks.contains_key(id))
            .count();
        assert!(
            late <= worker.late || worker.killed || worker.retiring,
            "a finished chunk is still placed"
        );
        seen.extend(
            worker
                .outstanding
                .iter()
                .filter(|id| s.tasks.contains_key(id)),
        );
    }
    let mut sorted = seen.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        seen.len(),
        "a chunk is in two places: {seen:?}"
    );
    let mut tasks: Vec<u64> = s.tasks.keys().copied().collect();
    tasks.sort_unstable();
    assert_eq!(sorted, tasks, "placed chunks vs unfinished chunks");
}

#[test]
fn dispatch_least_loaded_first_up_to_depth() {
    let (mut s, queues) = pool(2, false);
    let job = Job::new(Some(5));
    run(s.submit(&job, chunks(5)).unwrap());
    // Two per worker at first (the depth before any chunk was timed), alternating.
    assert_eq!(outstanding(&s, 0), [0, 2]);
    assert_eq!(outstanding(&s, 1), [1, 3]);
    assert_eq!(queues[0].ids(), [0, 2]);
    assert_eq!(queues[1].ids(), [1, 3]);
    assert_eq!(s.pending.iter().copied().collect::<Vec<_>>(), [4]);
    check_places(&s);

    // A result frees room: the next dispatch fills it.
    assert_eq!(queues[0].take(), Some(0));
    run(s.on_result(0, 0, Outcome::Ok, Vec::new(), Vec::new()));
    assert_eq!(done(&job), [(0, None)]);
    run(s.dispatch());
    assert_eq!(outstanding(&s, 0), [2, 4]);
    assert_eq!(s.pending_len(), 0);
    check_places(&s);
}

#[test]
fn exhausted_workers_get_nothing() {
    let mut s = Scheduler::new(2, false);
    let queues = [Fake::default(), Fake::default()];
    for (slot, budget) in [(0, Some(1)), (1, None)] {
        let generation = s.next_generation();
        s.workers[slot] = Some(Worker::new(queues[slot].clone(), PID, generation, budget));
    }
    let job = Job::new(Some(3));
    run(s.submit(&job, chunks(3)).unwrap());
    // Slot 0 may take one chunk in its life (`maxtasksperchild`).
    assert_eq!(outstanding(&s, 0), [0]);
    assert_eq!(outstanding(&s, 1), [1, 2]);
    check_places(&s);
}

#[test]
fn death_mid_chunk_fails_it_and_returns_the_untaken() {
    let (mut s, queues) = pool(2, false);
    all_up(&mut s);
    let job = Job::new(Some(4));
    run(s.submit(&job, chunks(4)).unwrap());
    // Worker 0 holds chunks 0 and 2; it takes 0 and dies running it.
    assert_eq!(queues[0].take(), Some(0));
    run(dies(&mut s, 0, -9));
    let failed = done(&job);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, 0);
    let expected = format!(
        "{:?}",
        PoolError::WorkerDied {
            index: 0,
            len: 2,
            pid: PID,
            exitcode: -9
        }
    );
    assert_eq!(failed[0].1.as_deref(), Some(expected.as_str()));
    // Chunk 2 was never taken: it waits for the next worker, and nothing else failed.
    assert_eq!(s.pending.iter().copied().collect::<Vec<_>>(), [2]);
    assert!(s.workers[0].is_none());
    check_places(&s);
    // A worker that died running a chunk is not a crash loop.
    assert_eq!(s.early_deaths, 0);
    assert!(s.needs_replacement());

    // Its replacement gets chunk 2.
    start(&mut s, &queues[0], 0);
    run(s.dispatch());
    assert_eq!(outstanding(&s, 0), [2]);
    check_places(&s);
}

#[test]
fn death_while_idle_fails_nothing_and_is_not_counted() {
    let (mut s, queues) = pool(1, true);
    // Killed while idle far more often than the crash-loop limit: replaced every time.
    for _ in 0..20 {
        all_up(&mut s);
        assert!(dies(&mut s, 0, -9).is_empty());
        assert_eq!(s.early_deaths, 0);
        assert!(s.needs_replacement());
        start(&mut s, &queues[0], 0);
    }
    let job = Job::new(Some(1));
    run(s.submit(&job, chunks(1)).unwrap());
    assert_eq!(outstanding(&s, 0), [0]);
}

#[test]
fn death_with_untaken_work_returns_it_all_in_order() {
    let (mut s, _queues) = pool(2, false);
    all_up(&mut s);
    let job = Job::new(Some(6));
    run(s.submit(&job, chunks(6)).unwrap());
    assert_eq!(s.pending.iter().copied().collect::<Vec<_>>(), [4, 5]);
    run(dies(&mut s, 0, 1));
    // Nothing failed; its chunks go first, in their order, before the ones never sent.
    assert!(done(&job).is_empty());
    assert_eq!(s.pending.iter().copied().collect::<Vec<_>>(), [0, 2, 4, 5]);
    check_places(&s);
    // Up, with work queued and none taken: that counts.
    assert_eq!(s.early_deaths, 1);
}

#[test]
fn stale_death_reports_are_ignored() {
    let (mut s, _queues) = pool(1, false);
    let generation = s.workers[0].as_ref().unwrap().generation;
    assert!(s.take_dead(0, generation.wrapping_add(1)).is_none());
    assert!(s.take_dead(5, generation).is_none());
    assert!(s.workers[0].is_some());
}

/// Workers that die before `Ready`, one after another, until the guard trips.
fn crash_loop(has_init: bool) -> (Scheduler<Fake>, Arc<Job>) {
    let (mut s, queues) = pool(1, has_init);
    let job = Job::new(Some(1));
    run(s.submit(&job, chunks(1)).unwrap());
    // The limit is 2 × processes + 2 deaths in a row; the next one trips it.
    for death in 1..=4 {
        run(dies(&mut s, 0, -11));
        assert_eq!(s.early_deaths, death);
        assert!(s.needs_replacement(), "death {death}");
        start(&mut s, &queues[0], 0);
        run(s.dispatch());
    }
    assert!(done(&job).is_empty());
    run(dies(&mut s, 0, -11));
    (s, job)
}

#[test]
fn crash_loop_trips_with_start_failed() {
    let (mut s, job) = crash_loop(false);
    let failed = done(&job);
    assert_eq!(failed.len(), 1);
    let error = failed[0].1.clone().unwrap();
    assert!(error.starts_with("StartFailed"), "{error}");
    assert!(error.contains("5 workers in a row"), "{error}");
    assert!(error.contains("SIGSEGV"), "{error}");
    // Broken: no replacement, and later work fails at once with the same error.
    assert!(!s.needs_replacement());
    let later = s.submit(&Job::new(Some(1)), chunks(1)).err().unwrap();
    assert!(format!("{later:?}").starts_with("StartFailed"));
    check_places(&s);
}

#[test]
fn crash_loop_in_the_initializer_trips_with_initializer() {
    let (_s, job) = crash_loop(true);
    let error = done(&job)[0].1.clone().unwrap();
    assert!(error.starts_with("Initializer"), "{error}");
}

#[test]
fn crash_loop_count_resets_on_a_result_only() {
    let (mut s, queues) = pool(2, false);
    let job = Job::new(None);
    run(s.submit(&job, chunks(2)).unwrap());
    for _ in 0..4 {
        run(dies(&mut s, 1, -9));
        start(&mut s, &queues[1], 1);
    }
    assert_eq!(s.early_deaths, 4);
    // A worker coming up does not reset it...
    all_up(&mut s);
    assert_eq!(s.early_deaths, 4);
    // ...a result does.
    assert_eq!(queues[0].take(), Some(0));
    run(s.on_result(0, 0, Outcome::Ok, Vec::new(), Vec::new()));
    assert_eq!(s.early_deaths, 0);
    // So four more deaths do not trip it.
    for _ in 0..4 {
        run(dies(&mut s, 1, -9));
        start(&mut s, &queues[1], 1);
        run(s.dispatch());
    }
    assert!(s.needs_replacement());
    assert_eq!(s.status, Status::Running);
    check_places(&s);
}

#[test]
fn terminate_fails_everything_once() {
    let (mut s, queues) = pool(1, false);
    let job = Job::new(Some(3));
    run(s.submit(&job, chunks(3)).unwrap());
    assert_eq!(queues[0].take(), Some(0));
    let callbacks = s.terminate().expect("was running");
    run(callbacks);
    assert_eq!(done(&job).len(), 3);
    assert!(s.terminate().is_none());
    assert!(!s.needs_replacement());
    check_places(&s);
}

/// `n` chunks as `chunks(n)`, with a timeout of `ms` milliseconds each.
fn timed_chunks(n: usize, ms: u64) -> Vec<Prepared> {
    let mut chunks = chunks(n);
    for chunk in &mut chunks {
        chunk.set_limits(crate::wire::Limits {
            timeout: Some(Duration::from_millis(ms)),
            max_result: 0,
            retry: crate::Retry::default(),
        });
    }
    chunks
}

/// `ranks` remote workers (ranks 1..), each running one chunk at a time.
fn remote_pool(ranks: usize) -> (Scheduler<Fake>, Vec<Fake>) {
    let mut s = Scheduler::new(ranks, false);
    let queues: Vec<Fake> = (0..ranks)
        .map(|r| Fake(Default::default(), Some(r as u32 + 1), Default::default()))
        .collect();
    for (slot, queue) in queues.iter().enumerate() {
        let generation = s.next_generation();
        s.workers[slot] = Some(Worker::new(queue.clone(), 0, generation, None).running_at_once(1));
        s.on_ready(slot as u32);
    }
    (s, queues)
}

#[test]
fn a_local_chunk_past_its_timeout_fails_and_its_worker_is_killed() {
    let (mut s, queues) = pool(1, false);
    all_up(&mut s);
    let job = Job::new(Some(2));
    run(s.submit(&job, timed_chunks(2, 10)).unwrap());
    assert_eq!(queues[0].take(), Some(0));
    let sent = s.next_deadline().expect("a running chunk has a deadline");
    // Before the deadline: nothing expires.
    let (callbacks, kill) = s.expire(sent - Duration::from_millis(1));
    assert!(callbacks.is_empty() && kill.is_empty());
    let (callbacks, kill) = s.expire(sent);
    run(callbacks);
    assert_eq!(kill, [(0, s.workers[0].as_ref().unwrap().generation)]);
    assert_eq!(done(&job).len(), 1);
    assert!(
        done(&job)[0].1.as_ref().unwrap().contains("TaskTimeout"),
        "{:?}",
        done(&job)
    );
    check_places(&s);
    // Its queued chunk never times out there (it never runs there): it waits for the death.
    assert_eq!(s.next_deadline(), None);
    let (callbacks, kill) = s.expire(sent + Duration::from_secs(3600));
    assert!(callbacks.is_empty() && kill.is_empty());
    // The death returns the queued chunk to the pending ones, and fails nothing more.
    run(dies(&mut s, 0, -9));
    assert_eq!(done(&job).len(), 1);
    assert_eq!(s.pending.iter().copied().collect::<Vec<_>>(), [1]);
    check_places(&s);
}

#[test]
fn a_remote_worker_past_a_timeout_gets_no_work_until_it_answers() {
    let (mut s, queues) = remote_pool(2);
    let job = Job::new(Some(3));
    run(s.submit(&job, timed_chunks(3, 10)).unwrap());
    // One chunk each (they run one at a time); the third waits.
    assert_eq!(outstanding(&s, 0), [0]);
    assert_eq!(outstanding(&s, 1), [1]);
    assert_eq!(queues[0].ids(), [0]);
    let deadline = s.next_deadline().unwrap();
    // Rank 2 answers in time; rank 1 does not.
    run(s.on_result(1, 1, Outcome::Ok, Vec::new(), Vec::new()));
    run(s.dispatch());
    assert_eq!(outstanding(&s, 1), [2]);
    let (callbacks, kill) = s.expire(deadline);
    run(callbacks);
    // A remote worker is not killed: its chunk fails, as a failure on that rank.
    assert!(kill.is_empty());
    let failed = done(&job);
    let late = failed.iter().find(|(c, _)| *c == 0).unwrap();
    let message = late.1.as_ref().unwrap();
    assert!(
        message.contains("Remote")
            && message.contains("rank: 1")
            && message.contains("TaskTimeout"),
        "{message}"
    );
    check_places(&s);
    // Rank 1 holds its late chunk: nothing more goes to it.
    let more = Job::new(Some(1));
    run(s.submit(&more, chunks(1)).unwrap());
    assert_eq!(outstanding(&s, 0), [0]);
    // Its late answer frees it (the answer itself is dropped), and it takes work again.
    run(s.on_result(0, 0, Outcome::Ok, Vec::new(), Vec::new()));
    assert_eq!(done(&job).len(), 2);
    run(s.dispatch());
    assert_eq!(outstanding(&s, 0), [3]);
    check_places(&s);
}

#[test]
fn every_remote_worker_late_fails_what_waits() {
    let (mut s, _queues) = remote_pool(1);
    let job = Job::new(Some(2));
    run(s.submit(&job, timed_chunks(2, 10)).unwrap());
    let deadline = s.next_deadline().unwrap();
    let (callbacks, _) = s.expire(deadline);
    run(callbacks);
    // The running chunk failed on its rank; the pending one could never run: it fails too.
    let failed = done(&job);
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(
        failed
            .iter()
            .all(|(_, e)| e.as_ref().unwrap().contains("TaskTimeout"))
    );
    assert_eq!(s.pending_len(), 0);
}

#[test]
fn remote_failures_name_the_rank_and_bad_frames_fail_the_oldest_chunk() {
    let (mut s, _queues) = remote_pool(1);
    let job = Job::new(Some(2));
    // Two chunks of two items: the second starts at item 2.
    run(s.submit(&job, chunks(2)).unwrap());
    assert_eq!(outstanding(&s, 0), [0]);
    // Its own pool's failure, at the chunk's second item, comes back shifted to the input.
    let failure = crate::wire::Failure::Panicked {
        index: 1,
        message: "boom".into(),
    };
    let body = postcard::to_stdvec(&failure).unwrap();
    run(s.on_result(0, 0, Outcome::Remote, body, Vec::new()));
    match &job.lock().done[0].1 {
        Err(PoolError::Remote { rank: 1, error }) => {
            assert!(
                matches!(**error, PoolError::Panicked { index: 1, .. }),
                "{error:?}"
            )
        }
        other => panic!("{other:?}"),
    }
    run(s.dispatch());
    assert_eq!(outstanding(&s, 0), [1]);
    assert!(!s.holds(0, 7));
    run(s.on_bad_frame(0, "a result frame of 3 bytes".into()));
    match &job.lock().done[1].1 {
        Err(PoolError::Remote { rank: 1, error }) => {
            assert!(matches!(&**error, PoolError::BadFrame(m) if m.contains("3 bytes")))
        }
        other => panic!("{other:?}"),
    }
    check_places(&s);
}

mod control;
