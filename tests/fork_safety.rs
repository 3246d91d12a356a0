//! Fork safety across every crate of mp (issue #25, `mp_sys::fork`): children forked while
//! threads hammer every lock held across forks (std's stdout and stderr, mp-spawn's state,
//! mp-log's forwarding state, mp-managers' sessions, mp-shm's array cache, mp-pool's SIGINT
//! registry, a hold registered with `hold_across_fork`) and the per-process caches (pid,
//! thread id and token, /dev/null). Each child uses all of them and exits: none may hang on a
//! lock a thread it does not have held at the fork, or on a cache another thread was filling.

use std::any::Any;
use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mp::SharedArray;
use mp::managers::ManagedValue;
use mp::spawn::StartMethod;
use mp::spawn::reduction::{dumps, loads};
use mp::spawn::testing::ctx;

const CHILDREN: usize = 300;

/// A library's state, held across forks through the public wrapper (after mp's own ranks).
static LIBRARY_STATE: Mutex<u64> = Mutex::new(0);

fn hold_library_state() -> Box<dyn Any> {
    Box::new(LIBRARY_STATE.lock())
}

/// What the parent's threads hammer and every child uses.
fn touch_everything(array: &SharedArray<u64>) {
    let _ = std::io::stdout().lock().write_all(b"");
    let _ = std::io::stderr().lock().write_all(b"");
    let _ = mp::current_process();
    let _ = mp::active_children();
    let _ = mp::spawn::resources::inherited("no such key");
    // mp-shm: a round trip finds the mapping in the cache; a new array maps and unmaps.
    let msg = dumps(array).unwrap();
    let back: SharedArray<u64> = loads(&msg.bytes, msg.fds).unwrap();
    assert!(back.same_memory(array));
    drop(SharedArray::from_slice(&[1u64; 64]).unwrap());
    // mp-log: the forwarding state (a child forwards to the listening parent).
    mp::log::forward_children().unwrap();
    tracing::info!("touched");
    *LIBRARY_STATE.lock().unwrap() += 1;
    // mp-sys's caches.
    assert_eq!(mp_sys::process::getpid(), std::process::id());
    assert_eq!(mp_sys::thread::token() as u32, mp_sys::thread::id());
    mp_sys::fd::dev_null().unwrap();
}

/// A fork child: everything, then a new session with the manager (mp-managers' list).
fn child(array: SharedArray<u64>, value: ManagedValue<u64>) -> u64 {
    touch_everything(&array);
    value.get().unwrap()
}

fn square(x: u64) -> u64 {
    x * x
}

fn until(stop: &AtomicBool, mut f: impl FnMut()) {
    while !stop.load(Ordering::Relaxed) {
        f();
    }
}

#[test]
fn forks_beside_threads_hammering_every_registered_lock() {
    mp::spawn::set_fork_warning(false);
    mp::spawn::hold_across_fork(hold_library_state);
    mp::log::forward_children().unwrap();
    let array = SharedArray::from_slice(&[7u64; 1000]).unwrap();
    let manager = mp::Manager::new().unwrap();
    let value = manager.value(5u64).unwrap();
    let pool = mp::Pool::new(1).unwrap();
    let stop = AtomicBool::new(false);
    let forks = AtomicUsize::new(0);
    let hung = std::thread::scope(|s| {
        s.spawn(|| until(&stop, || touch_everything(&array)));
        // mp-log's state is held while a listener starts (a socket, a thread): a wide window.
        // Once per fork: each start leaks a descriptor (on purpose: see mp-log's forward.rs).
        s.spawn(|| {
            let mut cycled = 0;
            until(&stop, || {
                let forks = forks.load(Ordering::Relaxed);
                if cycled < forks {
                    cycled = forks;
                    mp::log::stop_forwarding();
                }
                mp::log::forward_children().unwrap();
            })
        });
        // Each new thread opens a new session with the server (the managers' list).
        s.spawn(|| {
            until(&stop, || {
                std::thread::scope(|t| {
                    t.spawn(|| value.get().unwrap());
                });
            })
        });
        // Every wait for a result registers with the pool's SIGINT registry.
        s.spawn(|| until(&stop, || assert_eq!(pool.apply(square, (3,)).unwrap(), 9)));
        let hung = (0..CHILDREN).find(|_| {
            forks.fetch_add(1, Ordering::Relaxed);
            let mut p = ctx(StartMethod::Fork).process(child, (array.clone(), value.clone()));
            p.start().unwrap();
            // A hang guard, not a timing assumption: a healthy child ends in milliseconds.
            let deadline = mp_sys::deadline::after(Duration::from_secs(60));
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match p.join_timeout(left.unwrap_or(Duration::MAX)).unwrap() {
                Some(v) => {
                    assert_eq!(v, 5);
                    false
                }
                None => {
                    p.kill().unwrap();
                    let _ = p.join();
                    true
                }
            }
        });
        stop.store(true, Ordering::Relaxed);
        hung
    });
    mp::log::stop_forwarding();
    if let Some(i) = hung {
        panic!("child {i} of {CHILDREN} hung");
    }
}
