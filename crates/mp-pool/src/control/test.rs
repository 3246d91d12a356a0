use std::sync::atomic::AtomicU64;

use super::{Found, Words};

fn words() -> (AtomicU64, AtomicU64) {
    (AtomicU64::new(0), AtomicU64::new(0))
}

#[test]
fn a_chunk_cancelled_before_it_is_taken_is_skipped() {
    let (at, cancelled) = words();
    let w = Words {
        at: &at,
        cancelled: &cancelled,
    };
    w.reset();
    assert!(!w.take(0));
    assert!(!w.answered(0));
    assert_eq!(w.cancel(1), Found::Queued);
    assert!(w.take(1), "the worker must skip frame 1");
}

#[test]
fn a_running_chunk_is_found_running_and_its_worker_stops_after_it() {
    let (at, cancelled) = words();
    let w = Words {
        at: &at,
        cancelled: &cancelled,
    };
    assert!(!w.take(0));
    assert_eq!(w.cancel(0), Found::Running);
    assert!(
        w.answered(0),
        "a worker that answers first must not take another frame"
    );
}

#[test]
fn a_finished_chunk_is_found_finished_and_its_bit_is_freed_for_the_next_round() {
    let (at, cancelled) = words();
    let w = Words {
        at: &at,
        cancelled: &cancelled,
    };
    assert!(!w.take(3));
    assert!(!w.answered(3));
    assert_eq!(w.cancel(3), Found::Finished);
    // Frame 67 shares frame 3's bit: the owner frees it before sending it.
    w.clear(67);
    assert!(!w.take(67));
}

/// Two threads race: whatever the owner found, the worker's view agrees with it. A chunk
/// found queued is skipped; one found running is never followed by another frame; one
/// found finished had been answered.
#[test]
fn owner_and_worker_racing_always_agree() {
    for round in 0..200u64 {
        let (at, cancelled) = words();
        let target = round % 7;
        let (found, worker_saw) = std::thread::scope(|s| {
            let worker = s.spawn(|| {
                let w = Words {
                    at: &at,
                    cancelled: &cancelled,
                };
                for seq in 0..=target + 1 {
                    if w.take(seq) {
                        return Some((seq, "skipped"));
                    }
                    std::hint::black_box(seq);
                    if w.answered(seq) {
                        return Some((seq, "stopped after"));
                    }
                }
                None
            });
            let w = Words {
                at: &at,
                cancelled: &cancelled,
            };
            let found = w.cancel(target);
            (found, worker.join().unwrap())
        });
        match found {
            Found::Queued => assert_eq!(worker_saw, Some((target, "skipped"))),
            Found::Running => assert!(
                matches!(worker_saw, Some((seq, _)) if seq == target),
                "round {round}: found running, the worker went on: {worker_saw:?}"
            ),
            // It may still stop after it (harmless), but never skips it.
            Found::Finished => assert_ne!(worker_saw, Some((target, "skipped"))),
        }
    }
}
