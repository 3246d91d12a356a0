//! Unit tests of the ring: the layout checks, wrap-around, growth, a lock holder that dies
//! mid-publish, mid-get or mid-growth, and a many-thread model of put/get with random yields.
//! (Across processes: `tests/it/queues.rs`, e.g. `holder_of_the_locks_is_killed`,
//! `producer_killed_in_a_put_loop`, `growth_keeps_order_across_wraps`; crafted descriptors:
//! `tests/it/ring_corrupt.rs`.)

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::layout::{HEADER_SIZE, INITIAL_CAP, MAX_CAP, RESERVE, Region};
use super::{Ring, RingError};

fn get_bytes(ring: &Ring) -> Result<Vec<u8>, RingError> {
    ring.get(Some(Instant::now()), |b, _| b.to_vec())
}

fn region(ring: &Ring) -> Region {
    ring.header().region().unwrap()
}

#[test]
fn region_check_accepts_only_regions_inside_the_mapping() {
    assert!(Region::check(HEADER_SIZE, INITIAL_CAP, 0).is_ok());
    assert!(Region::check(RESERVE - MAX_CAP, MAX_CAP, 7).is_ok());
    for (base, cap) in [
        (HEADER_SIZE, 0),
        (HEADER_SIZE, 3 << 10),
        (HEADER_SIZE, 32),
        (HEADER_SIZE, MAX_CAP * 2),
        (0, INITIAL_CAP),
        (RESERVE - MAX_CAP + 8, MAX_CAP),
        (u64::MAX - 4095, 4096),
        (RESERVE, 64),
    ] {
        assert!(
            matches!(Region::check(base, cap, 0), Err(RingError::Corrupt(_))),
            "{base} {cap}"
        );
    }
}

#[test]
fn phys_wraps_without_overflow() {
    let r = Region::check(HEADER_SIZE, 1024, 100).unwrap();
    assert_eq!(r.phys(100), 0);
    assert_eq!(r.phys(100 + 1024 + 8), 8);
    // A position before the origin (only a corrupt header has one) must not overflow.
    assert!(r.phys(0) < 1024);
}

#[test]
fn wrap_around_keeps_items_whole_and_in_order() {
    let ring = Ring::new(0).unwrap();
    let cap = region(&ring).cap;
    // Items of a size that does not divide the ring, so records straddle its end (skip
    // records) many times over without the ring having to grow.
    let item = |i: u64| vec![(i % 251) as u8; 1000 + (i % 13) as usize];
    let rounds = 4 * cap / 1000;
    for i in 0..rounds {
        ring.put(&item(i), &[], None, false).unwrap();
        assert_eq!(get_bytes(&ring).unwrap(), item(i));
    }
    assert_eq!(region(&ring).cap, cap, "the ring grew instead of wrapping");
    assert!(ring.header().producers.tail.load(Ordering::Relaxed) > 3 * cap);
    assert!(matches!(get_bytes(&ring), Err(RingError::Empty)));
}

#[test]
fn growth_moves_live_items_and_keeps_order() {
    let ring = Ring::new(0).unwrap();
    let first = region(&ring);
    // Make the live items straddle the ring's end before it grows.
    let filler = vec![1u8; 3000];
    for _ in 0..(first.cap / 3008 - 2) {
        ring.put(&filler, &[], None, false).unwrap();
        get_bytes(&ring).unwrap();
    }
    let item = |i: u32| i.to_le_bytes().repeat(500 + i as usize % 7);
    let n = (3 * first.cap / 2000) as u32;
    for i in 0..n {
        ring.put(&item(i), &[], None, false).unwrap();
    }
    let grown = region(&ring);
    assert!(grown.cap > first.cap && grown.base >= first.base + first.cap);
    for i in 0..n {
        assert_eq!(get_bytes(&ring).unwrap(), item(i), "item {i}");
    }
    assert!(matches!(get_bytes(&ring), Err(RingError::Empty)));
}

#[test]
fn lying_layout_is_corrupt_not_out_of_bounds() {
    let ring = Ring::new(0).unwrap();
    ring.put(b"x", &[], None, false).unwrap();
    let l = &ring.header().shape.layouts[0];
    l.offset.store(RESERVE, Ordering::Relaxed);
    assert!(matches!(get_bytes(&ring), Err(RingError::Corrupt(_))));
    assert!(matches!(
        ring.put(b"y", &[], None, false),
        Err(RingError::Corrupt(_))
    ));
    l.offset.store(HEADER_SIZE, Ordering::Relaxed);
    l.cap.store(INITIAL_CAP + 8, Ordering::Relaxed);
    assert!(matches!(get_bytes(&ring), Err(RingError::Corrupt(_))));
    l.cap.store(INITIAL_CAP, Ordering::Relaxed);
    assert_eq!(get_bytes(&ring).unwrap(), b"x");
}

#[test]
fn misaligned_tail_is_corrupt_not_out_of_bounds() {
    let ring = Ring::new(0).unwrap();
    let cap = region(&ring).cap;
    // A tail 3 bytes before the region's end: the skip record would not fit.
    let h = ring.header();
    h.producers.tail.store(cap - 3, Ordering::Relaxed);
    h.consumers.head.store(cap - 3, Ordering::Relaxed);
    assert!(matches!(
        ring.put(b"abc", &[], None, false),
        Err(RingError::Corrupt(_))
    ));
}

#[test]
fn holder_killed_mid_publish_leaves_the_ring_usable() {
    // A robust lock held by a thread that exits is reported to the next taker, as a dead
    // process's is. The dead holder wrote a record past `tail` but never published it.
    let ring = Ring::new(0).unwrap();
    ring.put(b"before", &[], None, false).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let guard = ring.lock_producers().unwrap();
            let tail = ring.header().producers.tail.load(Ordering::Relaxed);
            let r = region(&ring);
            // SAFETY: the free part of the ring after `tail`, and we hold the producer lock.
            unsafe { ring.write_at(r.base + r.phys(tail), &[0xff; 64]) };
            std::mem::forget(guard);
        });
    });
    ring.put(b"after", &[], None, false).unwrap();
    assert_eq!(get_bytes(&ring).unwrap(), b"before");
    assert_eq!(get_bytes(&ring).unwrap(), b"after");
    assert!(matches!(get_bytes(&ring), Err(RingError::Empty)));
}

#[test]
fn holder_killed_mid_get_leaves_the_item_for_the_next_getter() {
    // A getter that dies holding the consumer lock before its `head` store (a thread that
    // exits holding it, reported as a dead process's would be): the item is read again.
    let ring = Ring::new(0).unwrap();
    ring.put(b"item", &[], None, false).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| std::mem::forget(ring.lock_consumers().unwrap()));
    });
    assert_eq!(get_bytes(&ring).unwrap(), b"item");
    assert!(matches!(get_bytes(&ring), Err(RingError::Empty)));
}

#[test]
fn holder_killed_mid_growth_leaves_the_old_layout_active() {
    // A grower that dies after copying and writing the inactive layout, before the `active`
    // store: the old layout is intact and still active, and a later growth goes on.
    let ring = Ring::new(0).unwrap();
    ring.put(b"before", &[], None, false).unwrap();
    let old = region(&ring);
    std::thread::scope(|s| {
        s.spawn(|| {
            let producers = ring.lock_producers().unwrap();
            let consumers = ring.lock_consumers().unwrap();
            // SAFETY: the unused pages right after the active region, inside the mapping
            // (INITIAL_CAP is far below RESERVE), and we hold both locks.
            unsafe { ring.write_at(old.base + old.cap, &[0xff; 64]) };
            let shape = &ring.header().shape;
            let next = (shape.active.load(Ordering::Relaxed) & 1) ^ 1;
            shape.layouts[next as usize]
                .offset
                .store(u64::MAX, Ordering::Relaxed);
            shape.layouts[next as usize].cap.store(3, Ordering::Relaxed);
            std::mem::forget((producers, consumers));
        });
    });
    assert_eq!(region(&ring), old);
    let big = vec![7u8; INITIAL_CAP as usize];
    ring.put(&big, &[], None, false).unwrap();
    assert_ne!(region(&ring), old, "the big item made the ring grow");
    assert_eq!(get_bytes(&ring).unwrap(), b"before");
    assert_eq!(get_bytes(&ring).unwrap(), big);
}

/// A tiny xorshift, so that every thread has its own reproducible schedule of yields.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn maybe_yield(&mut self) {
        if self.next() % 4 == 0 {
            std::thread::yield_now();
        }
    }
}

#[test]
fn model_many_threads_random_yields() {
    // Producers and consumers on one ring, each yielding at random between steps, with items
    // large enough that the ring wraps and grows while others wait on it. Every item must
    // come out exactly once, whole, and in its producer's order.
    const PRODUCERS: u64 = 4;
    const CONSUMERS: usize = 3;
    const PER_PRODUCER: u64 = 400;
    for seed in 1..=3u64 {
        let bounded = seed == 2;
        let ring = Ring::new(if bounded { 16 } else { 0 }).unwrap();
        let first_cap = region(&ring).cap;
        // Unbounded: consumers start once every producer put half its items (more than the
        // first ring holds), so the ring grows while the others work on it.
        let parties = if bounded {
            1
        } else {
            PRODUCERS as usize + CONSUMERS
        };
        let halfway = std::sync::Barrier::new(parties);
        let item = |p: u64, i: u64| {
            let mut v = (p << 32 | i).to_le_bytes().to_vec();
            v.resize(
                8 + ((p * 7919 + i * 104_729) % 4000) as usize,
                (i % 256) as u8,
            );
            v
        };
        let got = std::thread::scope(|s| {
            for p in 0..PRODUCERS {
                let (ring, halfway) = (&ring, &halfway);
                s.spawn(move || {
                    let mut rng = Rng(seed * 1000 + p + 1);
                    for i in 0..PER_PRODUCER {
                        if i == PER_PRODUCER / 2 && !bounded {
                            halfway.wait();
                        }
                        rng.maybe_yield();
                        ring.put(&item(p, i), &[], None, false).unwrap();
                    }
                });
            }
            let consumers: Vec<_> = (0..CONSUMERS)
                .map(|c| {
                    let (ring, halfway) = (&ring, &halfway);
                    s.spawn(move || {
                        if !bounded {
                            halfway.wait();
                        }
                        let mut rng = Rng(seed * 2000 + c as u64 + 1);
                        let mut got = Vec::new();
                        let share = PRODUCERS * PER_PRODUCER / CONSUMERS as u64
                            + u64::from(c == 0) * (PRODUCERS * PER_PRODUCER % CONSUMERS as u64);
                        for _ in 0..share {
                            rng.maybe_yield();
                            got.push(ring.get(None, |b, _| b.to_vec()).unwrap());
                        }
                        got
                    })
                })
                .collect();
            consumers
                .into_iter()
                .map(|c| c.join().unwrap())
                .collect::<Vec<_>>()
        });
        let mut next = vec![0u64; PRODUCERS as usize];
        let mut all = Vec::new();
        for per_consumer in got {
            // Each consumer sees each producer's items in order.
            let mut last = vec![None::<u64>; PRODUCERS as usize];
            for v in per_consumer {
                let id = u64::from_le_bytes(v[..8].try_into().unwrap());
                let (p, i) = (id >> 32, id & 0xffff_ffff);
                assert_eq!(v, item(p, i), "item {p}/{i} came out torn");
                assert!(last[p as usize] < Some(i), "item {p}/{i} out of order");
                last[p as usize] = Some(i);
                all.push((p, i));
            }
        }
        all.sort_unstable();
        for (p, i) in all {
            assert_eq!(i, next[p as usize], "item {p}/{i} lost or duplicated");
            next[p as usize] += 1;
        }
        assert!(next.iter().all(|&n| n == PER_PRODUCER));
        assert_eq!(ring.len(), 0);
        assert_eq!(region(&ring).cap > first_cap, !bounded);
    }
}
