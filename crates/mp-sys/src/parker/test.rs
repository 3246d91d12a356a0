//! The parker's contract, thread against thread in one process (the kernel treats a shared
//! futex word in another process the same way).

use super::*;

use std::sync::atomic::AtomicU32;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::deadline;

/// Hang guard only: every wait below ends on an event long before it.
const GUARD: Duration = Duration::from_secs(60);

/// Whether thread `tid` of this process is asleep in a futex wait. Where the kernel hides
/// `wchan` (it reads "0"), any sleep counts: in these tests the threads block nowhere else.
fn asleep_in_futex(tid: u32) -> bool {
    let task = format!("/proc/self/task/{tid}");
    let (Ok(stat), Ok(wchan)) = (
        std::fs::read_to_string(format!("{task}/stat")),
        std::fs::read_to_string(format!("{task}/wchan")),
    ) else {
        return false;
    };
    // The state follows the last ')' (the command name may hold one).
    let sleeping = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('S'));
    sleeping && (wchan.contains("futex") || wchan.trim() == "0")
}

/// Waits (yielding, with a hang guard) until every thread in `tids` sleeps in the kernel.
fn wait_until_asleep(tids: &[u32]) {
    let guard = deadline::after(GUARD);
    while !tids.iter().all(|&t| asleep_in_futex(t)) {
        assert!(!timed_out(guard), "parked threads never went to sleep");
        thread::yield_now();
    }
}

#[test]
fn wake_before_wait_is_not_lost() {
    let word = AtomicU32::new(0);
    // The caller reads the word, then (before it sleeps) another thread changes it and wakes
    // nobody yet parked: the park must see the change, not sleep through it.
    let seen = word.load(SeqCst);
    thread::scope(|s| {
        s.spawn(|| {
            word.store(1, SeqCst);
            unpark_all(&word);
        });
    });
    assert_eq!(park(&word, seen, None), Parked::Changed);
    // The same with a deadline already past: a change wins over the time-out.
    assert_eq!(
        park(&word, seen, deadline::after(Duration::ZERO)),
        Parked::Changed
    );
}

#[test]
fn wake_after_wait_ends_the_park() {
    let word = AtomicU32::new(0);
    let (tid_tx, tid_rx) = mpsc::channel();
    thread::scope(|s| {
        let sleeper = s.spawn(|| {
            tid_tx.send(crate::thread::id()).unwrap();
            park(&word, 0, deadline::after(GUARD))
        });
        let tid = tid_rx.recv_timeout(GUARD).unwrap();
        wait_until_asleep(&[tid]);
        word.store(1, SeqCst);
        unpark(&word, 1);
        assert_eq!(sleeper.join().unwrap(), Parked::Changed);
    });
}

#[test]
fn timeout_returns_after_the_deadline() {
    let word = AtomicU32::new(7);
    let deadline = deadline::after(Duration::from_millis(20));
    assert_eq!(park(&word, 7, deadline), Parked::TimedOut);
    // Never early (the futex time-out is relative; the parker re-checks the deadline).
    assert!(timed_out(deadline));
    // A deadline already past does not sleep at all.
    assert_eq!(
        park(&word, 7, deadline::after(Duration::ZERO)),
        Parked::TimedOut
    );
    assert!(!timed_out(None));
}

#[test]
fn wake_n_of_m_wakes_exactly_n() {
    const M: usize = 4;
    const N: u64 = 2;
    let word = AtomicU32::new(0);
    let (tid_tx, tid_rx) = mpsc::channel();
    let (woke_tx, woke_rx) = mpsc::channel();
    thread::scope(|s| {
        for _ in 0..M {
            let (tid_tx, woke_tx, word) = (tid_tx.clone(), woke_tx.clone(), &word);
            s.spawn(move || {
                let me = crate::thread::id();
                tid_tx.send(me).unwrap();
                let parked = park(word, 0, None);
                woke_tx.send((me, parked)).unwrap();
            });
        }
        let tids: Vec<u32> = (0..M)
            .map(|_| tid_rx.recv_timeout(GUARD).unwrap())
            .collect();
        wait_until_asleep(&tids);

        // Every sleeper could return now (the word changed), but only N are woken.
        word.store(1, SeqCst);
        unpark(&word, N);
        let mut woke = Vec::new();
        for _ in 0..N {
            let (tid, parked) = woke_rx.recv_timeout(GUARD).unwrap();
            assert_eq!(parked, Parked::Changed);
            woke.push(tid);
        }
        let rest: Vec<u32> = tids.iter().copied().filter(|t| !woke.contains(t)).collect();
        assert_eq!(rest.len(), M - N as usize);
        // Nothing else wakes them: they still sleep, and only their own wake ends that.
        assert!(
            rest.iter().all(|&t| asleep_in_futex(t)),
            "more than {N} woke"
        );
        assert!(woke_rx.try_recv().is_err());

        unpark(&word, u64::MAX); // more than i32::MAX: clamped, wakes all
        for _ in rest {
            assert_eq!(woke_rx.recv_timeout(GUARD).unwrap().1, Parked::Changed);
        }
    });
}
