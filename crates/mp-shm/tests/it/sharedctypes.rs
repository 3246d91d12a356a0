//! Value, Array, RawValue and RawArray across processes, under all three start methods.

use std::time::Duration;

use mp_shm::{Array, ArrayError, Event, Pod, RawArray, RawValue, SyncError, Value, Zeroable};
use mp_spawn::StartMethod;
use mp_spawn::reduction::{dumps, loads};
use mp_spawn::testing::{ctx, park_forever};

mp_spawn::test_matrix!(
    nine_processes_add_fifty_each_under_the_lock,
    child_writes_are_seen_by_the_parent,
    a_repr_c_struct_is_shared,
    value_lock_holder_killed,
    array_guard_holder_killed_mid_write,
);

const LONG: Duration = Duration::from_secs(30);

fn add_fifty(v: Value<i32>, a: Array<i32>) {
    for _ in 0..50 {
        v.update(|x| *x += 1).unwrap();
        let mut all = a.lock().unwrap();
        for x in all.iter_mut() {
            *x += 1;
        }
    }
}

fn nine_processes_add_fifty_each_under_the_lock(m: StartMethod) {
    let v = Value::new(0i32).unwrap();
    let a = Array::from_slice(&(0..50).collect::<Vec<i32>>()).unwrap();
    let mut children: Vec<_> = (0..9)
        .map(|_| ctx(m).process(add_fifty, (v.clone(), a.clone())))
        .collect();
    for c in &mut children {
        c.start().unwrap();
    }
    for c in &mut children {
        c.join().unwrap();
    }
    assert_eq!(v.value().unwrap(), 450);
    assert_eq!(a.to_vec().unwrap(), (450..500).collect::<Vec<i32>>());
}

fn write_all(v: Value<f64>, rv: RawValue<u64>, a: Array<u8>, ra: RawArray<i64>) {
    v.set_value(2.5).unwrap();
    rv.set(u64::MAX - 1);
    a.set(3, 7).unwrap();
    ra.set(1, -9).unwrap();
}

fn child_writes_are_seen_by_the_parent(m: StartMethod) {
    let v = Value::new(0.0f64).unwrap();
    let rv = RawValue::new(0u64).unwrap();
    let a = Array::<u8>::zeroed(4).unwrap();
    let ra = RawArray::<i64>::zeroed(2).unwrap();
    let mut p = ctx(m).process(write_all, (v.clone(), rv.clone(), a.clone(), ra.clone()));
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(v.value().unwrap(), 2.5);
    assert_eq!(rv.get(), u64::MAX - 1);
    assert_eq!(a.to_vec().unwrap(), [0, 0, 0, 7]);
    assert_eq!(ra.to_vec(), [0, -9]);
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
struct Point {
    x: f64,
    y: f64,
    tag: u32,
    _pad: u32,
}

fn move_points(p: Value<Point>, many: Array<Point>) {
    p.update(|pt| {
        pt.x += 1.0;
        pt.tag = 7;
    })
    .unwrap();
    many.set(
        1,
        Point {
            x: 3.0,
            y: 4.0,
            tag: 1,
            _pad: 0,
        },
    )
    .unwrap();
}

fn a_repr_c_struct_is_shared(m: StartMethod) {
    let p = Value::new(Point {
        x: 1.0,
        y: 2.0,
        tag: 0,
        _pad: 0,
    })
    .unwrap();
    let many = Array::<Point>::zeroed(2).unwrap();
    let mut child = ctx(m).process(move_points, (p.clone(), many.clone()));
    child.start().unwrap();
    child.join().unwrap();
    assert_eq!(
        p.value().unwrap(),
        Point {
            x: 2.0,
            y: 2.0,
            tag: 7,
            _pad: 0
        }
    );
    assert_eq!(many.get(1).unwrap().y, 4.0);
    assert_eq!(many.get(0).unwrap(), Point::zeroed());
}

fn hold_value_lock(v: Value<u64>, held: Event) {
    let mut guard = v.lock().unwrap();
    *guard = 1;
    held.set();
    park_forever();
}

fn value_lock_holder_killed(m: StartMethod) {
    let (v, held) = (Value::new(0u64).unwrap(), Event::new().unwrap());
    let mut p = ctx(m).process(hold_value_lock, (v.clone(), held.clone()));
    p.start().unwrap();
    assert!(held.wait(Some(LONG)));
    p.kill().unwrap();
    p.join_timeout(LONG).unwrap_err();
    // Short accesses report the death and do not keep the lock...
    assert!(matches!(v.value(), Err(SyncError::OwnerDied)));
    assert!(matches!(v.update(|x| *x += 1), Err(SyncError::OwnerDied)));
    // ...a guard is handed over for the repair; then clear the mark.
    let mut guard = v.lock().unwrap_err().into_inner().unwrap();
    assert_eq!(*guard, 1); // what the dead holder wrote
    *guard = 100;
    v.get_lock().clear_owner_died();
    drop(guard);
    v.update(|x| *x += 1).unwrap();
    assert_eq!(v.value().unwrap(), 101);
}

fn write_half_and_park(a: Array<u32>, held: Event) {
    let mut all = a.lock().unwrap();
    for x in all.iter_mut().take(5) {
        *x = 1;
    }
    held.set();
    park_forever();
}

fn array_guard_holder_killed_mid_write(m: StartMethod) {
    let (a, held) = (Array::<u32>::zeroed(10).unwrap(), Event::new().unwrap());
    let mut p = ctx(m).process(write_half_and_park, (a.clone(), held.clone()));
    p.start().unwrap();
    assert!(held.wait(Some(LONG)));
    p.kill().unwrap();
    p.join_timeout(LONG).unwrap_err();
    assert!(matches!(
        a.get(0),
        Err(ArrayError::Sync(SyncError::OwnerDied))
    ));
    let mut all = a.lock().unwrap_err().into_inner().unwrap();
    assert_eq!(&all[..], [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
    all.fill(2);
    a.get_lock().clear_owner_died();
    drop(all);
    assert_eq!(a.to_vec().unwrap(), [2; 10]);
}

#[test]
fn out_of_range_is_a_typed_error() {
    let a = Array::from_slice(&[1u16, 2]).unwrap();
    let e = a.get(2).unwrap_err();
    assert!(matches!(e, ArrayError::Index(i) if i.index == 2 && i.len == 2));
    assert!(matches!(a.set(usize::MAX, 0), Err(ArrayError::Index(_))));
    let r = RawArray::from_slice(&[1u8]).unwrap();
    assert!(r.get(1).is_err());
    let empty = Array::<u8>::zeroed(0).unwrap();
    assert!(empty.is_empty() && empty.get(0).is_err());
    assert_eq!(empty.to_vec().unwrap(), Vec::<u8>::new());
    // Too large to allocate: an error, not a panic or an overflow.
    assert!(Array::<u64>::zeroed(usize::MAX / 4).is_err());
}

#[test]
fn a_second_guard_on_the_same_thread_is_refused() {
    let v = Value::new(1u8).unwrap();
    let g = v.lock().unwrap();
    assert!(matches!(v.lock().unwrap_err().kind(), SyncError::Reentrant));
    assert!(matches!(v.value(), Err(SyncError::Reentrant)));
    drop(g);
    // Holding only the RLock (Python's `with v.get_lock():`), reads and writes re-enter it.
    let _outer = v.get_lock().lock().unwrap();
    v.set_value(v.value().unwrap() + 1).unwrap();
    *v.lock().unwrap() += 1;
    assert_eq!(v.value().unwrap(), 3);
}

#[test]
fn a_block_smaller_than_the_type_is_refused() {
    // A one-byte RawValue received as a RawValue<u64>: a decode error, never a short read.
    let small = RawValue::new(1u8).unwrap();
    let packed = dumps(&small).unwrap();
    let fds = packed
        .fds
        .iter()
        .map(|fd| fd.try_clone().unwrap())
        .collect();
    let err = loads::<RawValue<u64>>(&packed.bytes, fds).unwrap_err();
    assert!(err.to_string().contains("fewer than"), "{err}");
    // An Array whose length was tampered with in transit.
    let a = Array::<u32>::zeroed(4).unwrap();
    let mut packed = dumps(&a).unwrap();
    *packed.bytes.last_mut().unwrap() = 100; // len 4 -> 100 (postcard varint)
    let fds = packed
        .fds
        .iter()
        .map(|fd| fd.try_clone().unwrap())
        .collect();
    assert!(loads::<Array<u32>>(&packed.bytes, fds).is_err());
}
