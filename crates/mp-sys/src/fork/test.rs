//! Unit tests of `fork`: the rank order of holds and actions, refused duplicate ranks, and a
//! `ForkOnce` that a fork cut off in the middle of its initialisation.

use std::any::Any;
use std::cell::RefCell;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use super::*;
use crate::process::{Forked, exit_now, fork};
use crate::{fd, pidfd, poll};

thread_local! {
    /// The ranks of the test holds, in the order they were taken.
    static TAKEN: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
}

fn taken(rank: u16) -> Box<dyn Any> {
    TAKEN.with(|t| t.borrow_mut().push(rank));
    Box::new(())
}

fn take_30() -> Box<dyn Any> {
    taken(30)
}
fn take_40() -> Box<dyn Any> {
    taken(40)
}
fn take_50() -> Box<dyn Any> {
    taken(50)
}

/// Takes every hold of `list`, in the order `Held` does; returns their ranks in that order.
fn take_all(list: &HoldList) -> Vec<u16> {
    TAKEN.with(|t| t.borrow_mut().clear());
    let mut guards = Vec::new();
    let next = list.take_below(0, Rank(45), &mut guards);
    list.take_below(next, Rank(u16::MAX), &mut guards);
    TAKEN.with(|t| t.take())
}

#[test]
fn holds_are_taken_in_rank_order_whatever_the_registration_order() {
    let holds: [(Rank, Take); 3] = [
        (Rank(30), take_30),
        (Rank(40), take_40),
        (Rank(50), take_50),
    ];
    let mut forward = HoldList::new();
    let mut backward = HoldList::new();
    for (rank, take) in holds {
        forward.register(rank, take).unwrap();
    }
    for (rank, take) in holds.into_iter().rev() {
        backward.register(rank, take).unwrap();
    }
    assert_eq!(take_all(&forward), [30, 40, 50]);
    assert_eq!(take_all(&backward), [30, 40, 50]);
    // Unranked holds come after every ranked one, in registration order.
    forward.register_unranked(take_40).unwrap();
    forward.register_unranked(take_30).unwrap();
    forward.register_unranked(take_40).unwrap();
    assert_eq!(take_all(&forward), [30, 40, 50, 40, 30]);
}

#[test]
fn a_rank_belongs_to_one_hold() {
    let mut list = HoldList::new();
    list.register(Rank(30), take_30).unwrap();
    // The same hold again: registered once.
    list.register(Rank(30), take_30).unwrap();
    assert_eq!(list.register(Rank(30), take_40), Err(Refused::Taken(Rank(30))));
    assert_eq!(
        list.register(Rank::STDOUT, take_40),
        Err(Refused::NotAHoldRank(Rank::STDOUT))
    );
    assert_eq!(
        list.register(Rank::UNRANKED, take_40),
        Err(Refused::NotAHoldRank(Rank::UNRANKED))
    );
    assert_eq!(take_all(&list), [30]);
}

static FIRST: Mutex<()> = Mutex::new(());
static SECOND: Mutex<()> = Mutex::new(());

#[test]
#[should_panic(expected = "two holds claim rank 900")]
fn a_second_hold_at_a_rank_panics() {
    static A: Hold = Hold::new(Rank(900), || Box::new(FIRST.lock()));
    static B: Hold = Hold::new(Rank(900), || Box::new(SECOND.lock()));
    A.register();
    B.register();
}

#[test]
fn held_takes_the_callers_locks_at_their_ranks() {
    static C: Hold = Hold::new(Rank(910), || taken(910));
    static D: Hold = Hold::new(Rank(905), || taken(905));
    C.register();
    D.register();
    TAKEN.with(|t| t.borrow_mut().clear());
    let mut held = Held::take();
    let own = held.lock(Rank(907), || taken(907));
    held.take_rest();
    let order: Vec<u16> = TAKEN.with(|t| t.take());
    // Other tests' holds may be in the list too: only these three are looked at.
    let ours: Vec<u16> = order.into_iter().filter(|r| (905..=910).contains(r)).collect();
    assert_eq!(ours, [905, 907, 910]);
    drop((own, held));
}

#[test]
#[should_panic(expected = "taken out of order")]
fn held_refuses_a_lower_rank_after_a_higher_one() {
    let mut held = Held::take();
    held.lock(Rank(920), || ());
    held.lock(Rank(919), || ());
}

/// Forks a child that runs `body` and exits with its code; the exit code, waited for with a
/// deadline.
fn in_child(body: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the children of these tests use atomics, `ForkOnce` cells and their own
    // descriptors only, and `_exit`.
    let pidfd = match unsafe { fork() }.unwrap() {
        Forked::Child => exit_now(body()),
        Forked::Parent(pid) => pidfd::open(pid).unwrap(),
    };
    wait_exit(&pidfd)
}

fn wait_exit(pidfd: &OwnedFd) -> i32 {
    // A hang guard, not a timing assumption: the child ends at once.
    poll::readable(&[pidfd.as_fd()], Some(Duration::from_secs(60))).unwrap();
    pidfd::reap(pidfd.as_fd()).unwrap().expect("the child hung")
}

/// What the child actions of `actions_run_in_rank_order_in_every_child` saw: each appends its
/// digit.
static LOG: AtomicU32 = AtomicU32::new(0);

fn log(digit: u32) {
    let _ = LOG.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |l| Some(l * 10 + digit));
}

#[test]
fn actions_run_in_rank_order_in_every_child() {
    static LATE: AtFork = AtFork::in_child(Rank(20_002), || log(2));
    static EARLY: AtFork = AtFork::in_child(Rank(20_001), || log(1));
    LATE.register();
    EARLY.register();
    LATE.register();
    // Not through mp: the actions run whoever forks.
    let code = in_child(|| LOG.load(Ordering::Relaxed) as i32);
    assert_eq!(code, 12);
    assert_eq!(LOG.load(Ordering::Relaxed), 0, "the parent ran a child action");
}

#[test]
#[should_panic(expected = "two fork actions claim rank 20010")]
fn a_second_action_at_a_rank_panics() {
    static A: AtFork = AtFork::in_child(Rank(20_010), || {});
    static B: AtFork = AtFork::in_child(Rank(20_010), || {});
    A.register();
    B.register();
}

#[test]
fn a_fork_during_an_initialisation_leaves_the_cell_to_the_child() {
    static CELL: ForkOnce<u32> = ForkOnce::new();
    let (started_r, started_w) = fd::pipe().unwrap();
    let (go_r, go_w) = fd::pipe().unwrap();
    let filler = std::thread::spawn(move || {
        *CELL.get_or_init(|| {
            fd::write_all(started_w.as_fd(), b"s").unwrap();
            // Until the parent has forked: the fork happens in the middle of this.
            let _ = fd::read(go_r.as_fd(), &mut [0u8; 1]);
            1
        })
    });
    assert_eq!(fd::read(started_r.as_fd(), &mut [0u8; 1]).unwrap(), 1);
    // The filler is gone in the child: its run is the child's to redo (a `OnceLock` hangs).
    let code = in_child(|| *CELL.get_or_init(|| 2) as i32);
    assert_eq!(code, 2);
    drop(go_w);
    assert_eq!(filler.join().unwrap(), 1);
    assert_eq!(CELL.get(), Some(&1));
}

#[test]
fn threads_of_one_process_wait_for_one_initialisation() {
    static CELL: ForkOnce<u32> = ForkOnce::new();
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                *CELL.get_or_init(|| {
                    RUNS.fetch_add(1, Ordering::Relaxed);
                    10 + i
                })
            })
        })
        .collect();
    let values: Vec<u32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(values.iter().all(|v| *v == values[0]), "{values:?}");
    assert_eq!(RUNS.load(Ordering::Relaxed), 1);
}

#[test]
fn a_failed_or_panicking_initialisation_leaves_the_cell_empty() {
    let cell = ForkOnce::new();
    assert_eq!(cell.get_or_try_init(|| Err(())), Err(()));
    let panicked = std::panic::catch_unwind(|| cell.get_or_init(|| panic!("init")));
    assert!(panicked.is_err());
    assert_eq!(cell.get(), None);
    assert_eq!(cell.get_or_init(|| 3), &3);
}

#[test]
fn the_table_is_one_order() {
    let holds = [
        Rank::STDOUT,
        Rank::STDERR,
        Rank::SPAWN_FORKSERVER,
        Rank::SPAWN_FORKSERVER_PRELOAD,
        Rank::SPAWN_PROCESS_STATE,
        Rank::SPAWN_RESOURCES,
        Rank::LOG_STATE,
        Rank::MANAGERS_CLIENTS,
        Rank::SHM_ARRAY_CACHE,
        Rank::SHM_LINGERER,
        Rank::POOL_INTERRUPT,
        Rank::UNRANKED,
    ];
    let actions = [
        Rank::HOLDS_END,
        Rank::PID_CACHE,
        Rank::THREAD_IDS,
        Rank::SIGNAL_HANDLERS,
        Rank::MMAP_HOLES,
        Rank::SHM_HOLDER_TOKEN,
    ];
    // As the table in the module docs lists them: strictly increasing, holds before actions.
    assert!(holds.windows(2).all(|w| w[0] < w[1]), "{holds:?}");
    assert!(actions[1..].windows(2).all(|w| w[0] < w[1]), "{actions:?}");
    assert!(actions.iter().all(|a| *a >= Rank::HOLDS_END));
}
