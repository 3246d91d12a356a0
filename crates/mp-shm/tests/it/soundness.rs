//! Safe code cannot reach undefined behaviour through mp-shm's shared data: racing unlocked
//! accesses are atomic copies (a read may be torn, never UB), a guard's `&mut` cannot be
//! aliased through `get_lock`, and every public type's `Send`/`Sync` is as stated.

use std::sync::Arc;
use std::time::Duration;

use mp_shm::{
    Array, Condition, Event, Lock, RLock, RawArray, RawValue, SharedMemory, SyncError, Value,
};
use mp_spawn::StartMethod;
use mp_spawn::reduction::{dumps, loads};
use mp_spawn::testing::ctx;

mp_spawn::test_matrix!(racing_a_child_writer_is_safe_and_never_tears_a_word);

const SHORT: Duration = Duration::from_millis(20);
const LONG: Duration = Duration::from_secs(30);

/// A value received through serialization in this same process: a second handle of it
/// (possibly as another type of the same wire form).
fn round_trip<S: serde::Serialize, T: serde::de::DeserializeOwned>(x: &S) -> T {
    let packed = dumps(x).unwrap();
    let fds = packed
        .fds
        .iter()
        .map(|fd| fd.try_clone().unwrap())
        .collect();
    loads(&packed.bytes, fds).unwrap()
}

#[test]
fn get_lock_cannot_release_a_live_value_guard() {
    let v = Value::new(0u32).unwrap();
    let mut guard = v.lock().unwrap();
    // Before: Ok, and `v.update` from any thread then wrote the value under the guard's `&mut`.
    assert!(matches!(v.get_lock().release(), Err(SyncError::GuardHeld)));
    assert!(matches!(
        v.get_lock().clone().release(),
        Err(SyncError::GuardHeld)
    ));
    // Nor through copies of the lock received as an RLock or as a plain Lock.
    let as_rlock: RLock = round_trip(v.get_lock());
    assert!(matches!(as_rlock.release(), Err(SyncError::GuardHeld)));
    let as_lock: Lock = round_trip(v.get_lock());
    assert!(matches!(as_lock.release(), Err(SyncError::GuardHeld)));
    // Nor by waiting on a condition over it.
    let cond = Condition::with_lock(v.get_lock().clone()).unwrap();
    assert!(matches!(cond.wait(Some(SHORT)), Err(SyncError::GuardHeld)));
    // A second handle of the same value (received in this process) cannot reach the data.
    let again: Value<u32> = round_trip(&v);
    assert!(matches!(again.value(), Err(SyncError::Reentrant)));
    assert!(again.lock().is_err());
    // Still ours: another thread waits for it.
    let other = v.clone();
    let got = std::thread::spawn(move || other.get_lock().acquire(true, Some(SHORT)).unwrap())
        .join()
        .unwrap();
    assert!(!got, "the guard's lock was taken by another thread");
    *guard += 1;
    // Levels taken on top of the guard's can be given back.
    assert!(v.get_lock().acquire(true, None).unwrap());
    v.get_lock().release().unwrap();
    drop(guard);
    assert_eq!(v.value().unwrap(), 1);
    assert!(!v.get_lock().locked());
}

#[test]
fn get_lock_cannot_release_a_live_array_guard() {
    let a = Array::from_slice(&[1u8, 2]).unwrap();
    let mut guard = a.lock().unwrap();
    assert!(matches!(a.get_lock().release(), Err(SyncError::GuardHeld)));
    guard[0] = 9;
    drop(guard);
    assert_eq!(a.to_vec().unwrap(), [9, 2]);
}

#[test]
fn update_closure_cannot_reach_the_value_again() {
    let v = Value::new(5u32).unwrap();
    v.update(|x| {
        // A guard, a read, or a release here would alias the closure's `&mut`.
        assert!(v.lock().is_err());
        assert!(matches!(v.value(), Err(SyncError::Reentrant)));
        assert!(matches!(v.get_lock().release(), Err(SyncError::GuardHeld)));
        *x += 1;
    })
    .unwrap();
    assert_eq!(v.value().unwrap(), 6);
    // Python's `with v.get_lock(): v.value += 1` still works, and so does update under it.
    {
        let _held = v.get_lock().lock().unwrap();
        v.set_value(v.value().unwrap() + 1).unwrap();
        v.update(|x| *x += 1).unwrap();
    }
    assert_eq!(v.value().unwrap(), 8);
    assert!(!v.get_lock().locked());
}

#[test]
fn a_guard_mark_left_by_a_dead_holder_is_cleared() {
    // A thread that ends with a guard alive (forgotten) leaves the mark; the next holder must
    // get the value (told the owner died), not be refused for the dead thread's guard.
    let v = Value::new(0u32).unwrap();
    let v2 = v.clone();
    std::thread::spawn(move || std::mem::forget(v2.lock().unwrap()))
        .join()
        .unwrap();
    let guard = v
        .lock()
        .unwrap_err()
        .into_inner()
        .expect("owner died: a guard anyway");
    v.get_lock().clear_owner_died();
    drop(guard);
    assert!(!v.get_lock().locked());
    v.set_value(3).unwrap();
    assert_eq!(v.value().unwrap(), 3);
}

/// Decodes `x`'s serialized form as a `T`.
fn decode_as<S: serde::Serialize, T: serde::de::DeserializeOwned>(
    x: &S,
) -> Result<T, mp_spawn::reduction::DecodeError> {
    let packed = dumps(x).unwrap();
    let fds = packed
        .fds
        .iter()
        .map(|fd| fd.try_clone().unwrap())
        .collect();
    loads(&packed.bytes, fds)
}

#[test]
fn a_block_cannot_be_received_as_another_kind() {
    // Raw bytes over a lock's mutex (or a guarded value) would race glibc's and the guard's
    // plain accesses with atomic copies: every block travels with its kind.
    let v = Value::new([0u8; 64]).unwrap();
    let a = Array::<u64>::zeroed(16).unwrap();
    let lock = Lock::new().unwrap();
    let raw = RawValue::new([0u8; 64]).unwrap();
    let raw_array = RawArray::<u64>::zeroed(16).unwrap();
    assert!(decode_as::<_, RawValue<[u8; 64]>>(&v).is_err());
    assert!(decode_as::<_, RawValue<[u8; 32]>>(&lock).is_err());
    assert!(decode_as::<_, RawArray<u64>>(&a).is_err());
    assert!(decode_as::<_, Lock>(&raw).is_err());
    assert!(decode_as::<_, Value<[u8; 64]>>(&raw).is_err());
    assert!(decode_as::<_, Array<u64>>(&raw_array).is_err());
    assert!(decode_as::<_, mp_shm::Semaphore>(&Event::new().unwrap()).is_err());
    assert!(decode_as::<_, Event>(&raw).is_err());
    // The same kind still travels, as any type of that kind (a Value's lock as a Lock).
    assert!(decode_as::<_, Lock>(&v).is_ok());
    assert!(decode_as::<_, RawArray<u8>>(&raw_array).is_ok());
    assert!(decode_as::<_, Value<[u8; 64]>>(&v).is_ok());
}

/// Each u64 of the shared words is written whole by every writer: a reader may mix words of
/// two writes, but never sees a word that nobody wrote.
fn check_words(words: &[u64]) {
    for w in words {
        let lo = *w as u32;
        assert_eq!((*w >> 32) as u32, lo, "a torn word: {w:#x}");
    }
}

fn pattern(k: u32) -> u64 {
    (u64::from(k) << 32) | u64::from(k)
}

#[test]
fn racing_threads_on_raw_value_raw_array_and_shared_memory() {
    let rv = RawValue::new([0u64; 4]).unwrap();
    let ra = RawArray::<u64>::zeroed(64).unwrap();
    let shm = Arc::new(SharedMemory::create(256).unwrap());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (1..=2u32)
        .map(|t| {
            let (rv, ra, shm, stop) = (rv.clone(), ra.clone(), shm.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut k = t;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let p = pattern(k);
                    rv.set([p; 4]);
                    ra.set(usize::try_from(k % 64).unwrap(), p).unwrap();
                    shm.write_at(0, &[p.to_ne_bytes(); 32].concat()).unwrap();
                    k = k.wrapping_add(2);
                }
            })
        })
        .collect();
    for _ in 0..20_000 {
        check_words(&rv.get());
        check_words(&ra.to_vec());
        let mut buf = [0u8; 256];
        shm.read_at(0, &mut buf).unwrap();
        let words: Vec<u64> = buf
            .chunks(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap()))
            .collect();
        check_words(&words);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    shm.unlink().unwrap();
}

fn write_until(ra: RawArray<u64>, stop: Event, started: Event) {
    let mut k = 1u32;
    started.set();
    while !stop.is_set() {
        for i in 0..ra.len() {
            ra.set(i, pattern(k)).unwrap();
        }
        k = k.wrapping_add(1);
    }
}

fn racing_a_child_writer_is_safe_and_never_tears_a_word(m: StartMethod) {
    let ra = RawArray::<u64>::zeroed(32).unwrap();
    let (stop, started) = (Event::new().unwrap(), Event::new().unwrap());
    let mut p = ctx(m).process(write_until, (ra.clone(), stop.clone(), started.clone()));
    p.start().unwrap();
    assert!(started.wait(Some(LONG)));
    for _ in 0..2_000 {
        check_words(&ra.to_vec());
    }
    stop.set();
    p.join().unwrap();
}

// ---------------------------------------------------------------------------------------------
// Send and Sync, checked at compile time (as tokio's `_assert_kinds`).

/// Fails to compile if `$t` implements `$trait` (static_assertions' `assert_not_impl_any`):
/// the method is then ambiguous between the two impls.
macro_rules! assert_not_impl {
    ($t:ty: $trait:path) => {
        const _: fn() = || {
            trait Ambiguous<A> {
                fn some_item() {}
            }
            impl<T: ?Sized> Ambiguous<()> for T {}
            #[allow(dead_code)]
            struct Invalid;
            impl<T: ?Sized + $trait> Ambiguous<Invalid> for T {}
            let _ = <$t as Ambiguous<_>>::some_item;
        };
    };
}

const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    // Handles: clone them, send them to threads, share them by reference.
    send_sync::<Value<u64>>();
    send_sync::<Array<u64>>();
    send_sync::<RawValue<u64>>();
    send_sync::<RawArray<u64>>();
    send_sync::<SharedMemory>();
    send_sync::<mp_shm::ShareableList>();
    send_sync::<mp_shm::ShmOptions>();
    send_sync::<mp_shm::Item>();
    send_sync::<Lock>();
    send_sync::<RLock>();
    send_sync::<mp_shm::Semaphore>();
    send_sync::<mp_shm::BoundedSemaphore>();
    send_sync::<Event>();
    send_sync::<Condition>();
    send_sync::<mp_shm::ConditionLock>();
    send_sync::<mp_shm::Barrier>();
    // Errors.
    send_sync::<SyncError>();
    send_sync::<mp_shm::ShmError>();
    send_sync::<mp_shm::ListError>();
    send_sync::<mp_shm::ArrayError>();
    send_sync::<mp_shm::IndexError>();
    send_sync::<mp_shm::LockError<()>>();
};

// Guards are neither Send nor Sync, on purpose: a robust mutex is released by the thread that
// took it, so a guard may not move to (or be dropped by) another thread.
assert_not_impl!(mp_shm::LockGuard<'static>: Send);
assert_not_impl!(mp_shm::LockGuard<'static>: Sync);
assert_not_impl!(mp_shm::RLockGuard<'static>: Send);
assert_not_impl!(mp_shm::RLockGuard<'static>: Sync);
assert_not_impl!(mp_shm::ConditionGuard<'static>: Send);
assert_not_impl!(mp_shm::ConditionGuard<'static>: Sync);
assert_not_impl!(mp_shm::ValueGuard<'static, u64>: Send);
assert_not_impl!(mp_shm::ValueGuard<'static, u64>: Sync);
assert_not_impl!(mp_shm::ArrayGuard<'static, u64>: Send);
assert_not_impl!(mp_shm::ArrayGuard<'static, u64>: Sync);
