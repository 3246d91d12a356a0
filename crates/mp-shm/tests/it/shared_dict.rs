//! SharedDict across processes, under all three start methods: concurrent increments, growth
//! while others use the map, removal and clear seen by others, a holder killed mid-insert and
//! mid-growth, keys set on one side found on the other (the hash key travels in the map's
//! header), and garbage or another layout received in place of a map.

use std::time::Duration;

use mp_shm::{DictError, Event, SharedDict, Stall, SyncError, Value};
use mp_spawn::StartMethod;
use mp_spawn::reduction::{dumps, loads};
use mp_spawn::testing::{ctx, park_forever};

mp_spawn::test_matrix!(
    nine_processes_add_fifty_each_to_one_key,
    growth_while_others_use_the_map,
    removal_and_clear_by_a_child,
    holder_killed_mid_insert,
    holder_killed_mid_growth,
    test_dict_filled_by_a_child,
    holder_killed_inside_update_with,
    keys_set_on_either_side_are_found_on_the_other,
);

const LONG: Duration = Duration::from_secs(30);

fn run_all(children: &mut [mp_spawn::Process]) {
    for c in children.iter_mut() {
        c.start().unwrap();
    }
    for c in children.iter_mut() {
        assert!(c.join_timeout(LONG).unwrap().is_some(), "hang guard");
    }
}

fn add_fifty(d: SharedDict<String, u64>) {
    for _ in 0..50 {
        d.update_with("hits", |v| *v.get_or_insert(0) += 1).unwrap();
    }
}

/// The first tutorial post's counter (9 processes x 50 increments), on a dict key.
fn nine_processes_add_fifty_each_to_one_key(m: StartMethod) {
    let d = SharedDict::<String, u64>::new().unwrap();
    let mut children: Vec<_> = (0..9)
        .map(|_| ctx(m).process(add_fifty, (d.clone(),)))
        .collect();
    run_all(&mut children);
    assert_eq!(d.get("hits").unwrap(), Some(450));
    assert_eq!(d.len().unwrap(), 1);
}

const PER_CHILD: u32 = 1500;

fn value_for(k: u32) -> String {
    // Values of varied sizes, some large, so that the arena and the table both grow.
    "v".repeat((k % 97) as usize + 1) + &k.to_string()
}

fn insert_many(d: SharedDict<u32, String>, child: u32) {
    // Seeded by the parent before the start: still there after every growth.
    assert_eq!(d.get(&u32::MAX).unwrap().as_deref(), Some("seed"));
    for i in 0..PER_CHILD {
        let k = child * 100_000 + i;
        assert_eq!(d.insert(k, value_for(k)).unwrap(), None);
    }
    // Others have grown the map meanwhile: every key of ours is still there.
    for i in 0..PER_CHILD {
        let k = child * 100_000 + i;
        assert_eq!(d.get(&k).unwrap(), Some(value_for(k)));
    }
}

fn growth_while_others_use_the_map(m: StartMethod) {
    let d = SharedDict::<u32, String>::new().unwrap();
    d.insert(u32::MAX, "seed".into()).unwrap();
    let mut children: Vec<_> = (0..4)
        .map(|c| ctx(m).process(insert_many, (d.clone(), c)))
        .collect();
    run_all(&mut children);
    assert_eq!(d.len().unwrap(), 4 * PER_CHILD as usize + 1);
    let mut keys = d.keys().unwrap();
    keys.sort_unstable();
    let mut want: Vec<u32> = (0..4)
        .flat_map(|c| (0..PER_CHILD).map(move |i| c * 100_000 + i))
        .chain([u32::MAX])
        .collect();
    want.sort_unstable();
    assert_eq!(keys, want);
    for (k, v) in d.items().unwrap() {
        if k != u32::MAX {
            assert_eq!(v, value_for(k));
        }
    }
}

fn remove_then_clear(d: SharedDict<String, i32>, removed: Event, go: Event) {
    assert_eq!(d.remove("a").unwrap(), Some(1));
    assert_eq!(d.pop("b", -1).unwrap(), 2);
    assert_eq!(d.pop("b", -1).unwrap(), -1);
    removed.set();
    assert!(go.wait(Some(LONG)));
    d.clear().unwrap();
}

fn removal_and_clear_by_a_child(m: StartMethod) {
    let d = SharedDict::<String, i32>::new().unwrap();
    d.update([("a".into(), 1), ("b".into(), 2), ("c".into(), 3)])
        .unwrap();
    let (removed, go) = (Event::new().unwrap(), Event::new().unwrap());
    let mut p = ctx(m).process(remove_then_clear, (d.clone(), removed.clone(), go.clone()));
    p.start().unwrap();
    assert!(removed.wait(Some(LONG)));
    assert_eq!(d.keys().unwrap(), ["c"]);
    assert_eq!(d.values().unwrap(), [3]);
    assert!(!d.contains_key("a").unwrap());
    assert_eq!(d.get_or("a", 0).unwrap(), 0);
    // A removed key's bucket is reused.
    assert_eq!(d.setdefault("a".into(), 10).unwrap(), 10);
    assert_eq!(d.setdefault("a".into(), 11).unwrap(), 10);
    assert_eq!(d.len().unwrap(), 2);
    go.set();
    assert!(p.join_timeout(LONG).unwrap().is_some(), "hang guard");
    assert!(d.is_empty().unwrap());
    assert_eq!(d.items().unwrap(), []);
    // Usable after the clear.
    d.insert("z".into(), 26).unwrap();
    assert_eq!(d.items().unwrap(), [("z".to_string(), 26)]);
}

fn insert_and_stall(d: SharedDict<u32, Vec<u8>>, at: Stall, value: Vec<u8>, held: Event) {
    let stall = || {
        held.set();
        park_forever();
    };
    d.insert_stalled(1, value, at, &stall).unwrap();
    unreachable!("killed while stalled");
}

/// Kills a child stalled at `at` inside `insert(1, value)`; the map then reports the death
/// once, and holds the state from before the insertion.
fn kill_mid_insert(m: StartMethod, at: Stall, value: Vec<u8>) {
    let d = SharedDict::<u32, Vec<u8>>::new().unwrap();
    d.update((0..20).map(|k| (k, vec![k as u8; 10]))).unwrap();
    let held = Event::new().unwrap();
    let mut p = ctx(m).process(insert_and_stall, (d.clone(), at, value, held.clone()));
    p.start().unwrap();
    assert!(held.wait(Some(LONG)));
    p.kill().unwrap();
    p.join_timeout(LONG).unwrap_err();
    assert!(matches!(
        d.get(&1),
        Err(DictError::Sync(SyncError::OwnerDied))
    ));
    // Repaired: the old state, whole, and the map works again.
    assert_eq!(d.get(&1).unwrap(), Some(vec![1; 10]));
    assert_eq!(d.len().unwrap(), 20);
    let mut items = d.items().unwrap();
    items.sort();
    assert_eq!(
        items,
        (0..20).map(|k| (k, vec![k as u8; 10])).collect::<Vec<_>>()
    );
    d.insert(1, vec![7; 3]).unwrap();
    d.insert(100, vec![]).unwrap();
    assert_eq!(d.get(&1).unwrap(), Some(vec![7; 3]));
    assert_eq!(d.len().unwrap(), 21);
}

fn holder_killed_mid_insert(m: StartMethod) {
    kill_mid_insert(m, Stall::BeforeLink, vec![9; 5]);
}

fn holder_killed_mid_growth(m: StartMethod) {
    // Larger than the first region: the insertion builds a bigger one first.
    kill_mid_insert(m, Stall::BeforeSwitch, vec![9; 200_000]);
}

fn fill_letters(d: SharedDict<u32, char>) {
    for i in 65..70 {
        d.insert(i, char::from_u32(i).unwrap()).unwrap();
    }
}

/// Port of CPython's `_TestContainers.test_dict` (a Manager dict there; here the child fills
/// the map and the parent reads it).
fn test_dict_filled_by_a_child(m: StartMethod) {
    let d = SharedDict::<u32, char>::new().unwrap();
    run_all(&mut [ctx(m).process(fill_letters, (d.clone(),))]);
    let indices: Vec<u32> = (65..70).collect();
    let letters: Vec<char> = indices
        .iter()
        .map(|&i| char::from_u32(i).unwrap())
        .collect();
    let mut keys = d.keys().unwrap();
    keys.sort_unstable();
    assert_eq!(keys, indices);
    let mut values = d.values().unwrap();
    values.sort_unstable();
    assert_eq!(values, letters);
    let mut items = d.items().unwrap();
    items.sort_unstable();
    assert_eq!(items, indices.into_iter().zip(letters).collect::<Vec<_>>());
}

const SIDE: u64 = 300;

/// Finds the parent's keys, sets its own, and makes a map of its own for the parent.
fn check_and_add(d: SharedDict<String, u64>) -> SharedDict<String, u64> {
    for i in 0..SIDE {
        assert_eq!(d.get(&format!("parent-{i}")).unwrap(), Some(i));
        d.insert(format!("child-{i}"), 2 * i).unwrap();
    }
    let made = SharedDict::new().unwrap();
    for i in 0..SIDE {
        made.insert(format!("made-in-child-{i}"), i).unwrap();
    }
    made
}

/// Every process hashes with the key the map was made with, read from its header: the
/// child finds the parent's keys, the parent the child's, in the map each other made.
fn keys_set_on_either_side_are_found_on_the_other(m: StartMethod) {
    let d = SharedDict::<String, u64>::new().unwrap();
    for i in 0..SIDE {
        d.insert(format!("parent-{i}"), i).unwrap();
    }
    let mut child = ctx(m).process(check_and_add, (d.clone(),));
    child.start().unwrap();
    let made = child.join_timeout(LONG).unwrap().expect("hang guard");
    for i in 0..SIDE {
        assert_eq!(d.get(&format!("child-{i}")).unwrap(), Some(2 * i));
        assert_eq!(made.get(&format!("made-in-child-{i}")).unwrap(), Some(i));
    }
    assert_eq!(d.len().unwrap(), 2 * SIDE as usize);
    made.insert("from-parent".into(), 1).unwrap();
    assert_eq!(made.get("from-parent").unwrap(), Some(1));
}

fn park_inside_update_with(d: SharedDict<String, u64>, held: Event) {
    d.update_with("hits", |v| {
        *v.get_or_insert(0) += 1;
        held.set();
        park_forever();
    })
    .unwrap();
}

/// The counter's read-modify-write, killed between the read and the write: the increment is
/// lost whole, and the next increments count.
fn holder_killed_inside_update_with(m: StartMethod) {
    let d = SharedDict::<String, u64>::new().unwrap();
    d.insert("hits".into(), 5).unwrap();
    let held = Event::new().unwrap();
    let mut p = ctx(m).process(park_inside_update_with, (d.clone(), held.clone()));
    p.start().unwrap();
    assert!(held.wait(Some(LONG)));
    p.kill().unwrap();
    p.join_timeout(LONG).unwrap_err();
    let r = d.update_with("hits", |v| *v.get_or_insert(0) += 1);
    assert!(matches!(r, Err(DictError::Sync(SyncError::OwnerDied))));
    assert_eq!(d.get("hits").unwrap(), Some(5));
    d.update_with("hits", |v| *v.get_or_insert(0) += 1).unwrap();
    assert_eq!(d.get("hits").unwrap(), Some(6));
}

#[test]
fn threads_of_one_process_share_the_lock() {
    let d = SharedDict::<String, u64>::new().unwrap();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..500 {
                    d.update_with("n", |v| *v.get_or_insert(0) += 1).unwrap();
                }
            });
        }
    });
    assert_eq!(d.get("n").unwrap(), Some(2000));
}

#[test]
fn random_operations_match_a_hash_map() {
    // A fixed xorshift sequence over a small key space: many replacements, removals
    // (tombstones), growth, compaction and clears, checked step by step against std's map.
    let d = SharedDict::<u16, Vec<u8>>::new().unwrap();
    let mut model = std::collections::HashMap::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for step in 0..30_000 {
        let r = next();
        let k = (r % 600) as u16;
        let len = ((r >> 16) % 300) as usize;
        match (r >> 32) % 100 {
            0..=49 => assert_eq!(
                d.insert(k, vec![step as u8; len]).unwrap(),
                model.insert(k, vec![step as u8; len])
            ),
            50..=79 => assert_eq!(d.remove(&k).unwrap(), model.remove(&k)),
            80..=98 => assert_eq!(d.get(&k).unwrap(), model.get(&k).cloned()),
            _ if step % 7 == 0 => {
                d.clear().unwrap();
                model.clear();
            }
            _ => {}
        }
        assert_eq!(d.len().unwrap(), model.len(), "step {step}");
    }
    let mut items = d.items().unwrap();
    items.sort();
    let mut want: Vec<_> = model.into_iter().collect();
    want.sort();
    assert_eq!(items, want);
}

#[test]
fn values_carrying_descriptors_are_refused() {
    let d = SharedDict::<u8, Value<u8>>::new().unwrap();
    let v = Value::new(1u8).unwrap();
    assert!(matches!(
        d.insert(1, v.clone()),
        Err(DictError::HasDescriptors)
    ));
    let nested = SharedDict::<u8, SharedDict<u8, u8>>::new().unwrap();
    let inner = SharedDict::new().unwrap();
    assert!(matches!(
        nested.insert(1, inner),
        Err(DictError::HasDescriptors)
    ));
    assert!(d.is_empty().unwrap());
}

#[test]
fn a_map_received_as_another_type_gives_decode_errors() {
    let d = SharedDict::<u32, String>::new().unwrap();
    d.insert(1, "one".into()).unwrap();
    let packed = dumps(&d).unwrap();
    // "one" decodes as a u64 (its length byte) with bytes left over.
    let other: SharedDict<u32, u64> = loads(&packed.bytes, packed.fds).unwrap();
    assert!(matches!(other.get(&1), Err(DictError::Decode(_))));
    assert!(matches!(other.values(), Err(DictError::Decode(_))));
}

#[test]
fn reentrant_use_in_update_with_is_an_error() {
    let d = SharedDict::<u8, u8>::new().unwrap();
    let inner = d
        .update_with(&1, |v| {
            *v = Some(1);
            d.get(&1)
        })
        .unwrap();
    assert!(matches!(inner, Err(DictError::Sync(SyncError::Reentrant))));
    assert_eq!(d.get(&1).unwrap(), Some(1));
}

#[test]
fn a_panic_in_update_with_leaves_the_map_unchanged() {
    let d = SharedDict::<u8, u8>::new().unwrap();
    d.insert(1, 1).unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        d.update_with(&1, |v| {
            *v = Some(2);
            panic!("in the closure");
        })
    }));
    assert!(caught.is_err());
    assert_eq!(d.get(&1).unwrap(), Some(1));
}

/// Replaces descriptor `i` of a packed map with `fd`, and decodes it.
fn forged(i: usize, fd: std::os::fd::OwnedFd) -> String {
    let d = SharedDict::<u8, u8>::new().unwrap();
    let mut packed = dumps(&d).unwrap();
    packed.fds[i] = fd;
    loads::<SharedDict<u8, u8>>(&packed.bytes, packed.fds)
        .unwrap_err()
        .to_string()
}

#[test]
fn garbage_received_as_a_map_is_refused() {
    let value_fd = || {
        dumps(&Value::new([7u64; 8]).unwrap())
            .unwrap()
            .fds
            .remove(0)
    };
    // A Value's block as the map's lock: the magic does not match.
    assert!(forged(0, value_fd()).contains("not a SharedDict"));
    // A lock block of layout 1 (FNV-1a, no key): its magic and region word, no more.
    let old_layout = Value::new([0x6d70_6469_6374_0001u64, 16]).unwrap();
    let old_fd = dumps(&old_layout).unwrap().fds.remove(0);
    let err = forged(0, old_fd);
    assert!(err.contains("layout version 1"), "{err}");
    // A small block as the map's data.
    assert!(forged(1, value_fd()).contains("fewer than"));
    // A lock block where the data block goes: the kind travels with it.
    let v = Value::new([0u64; 2]).unwrap();
    let packed = dumps(&(v.clone(), v)).unwrap();
    let err = loads::<SharedDict<u8, u8>>(&packed.bytes, packed.fds).unwrap_err();
    assert!(err.to_string().contains("not a Dict block"), "{err}");
    // Truncated bytes.
    let d = SharedDict::<u8, u8>::new().unwrap();
    let packed = dumps(&d).unwrap();
    let short = &packed.bytes[..packed.bytes.len() - 1];
    assert!(loads::<SharedDict<u8, u8>>(short, packed.fds).is_err());
}

#[test]
fn many_updates_of_one_key_reuse_the_space() {
    // Each update writes a new entry; compaction keeps the map small.
    let d = SharedDict::<String, u64>::new().unwrap();
    for _ in 0..20_000 {
        d.update_with("n", |v| *v.get_or_insert(0) += 1).unwrap();
    }
    assert_eq!(d.get("n").unwrap(), Some(20_000));
    assert_eq!(d.len().unwrap(), 1);
}

/// Every block of a map is sealed against shrinking as it travels, so no holder of its
/// descriptors can truncate the pages under the other users (SIGBUS in all of them); a block
/// that is not sealed so is refused on arrival.
#[test]
fn no_holder_of_a_maps_descriptors_can_shrink_it() {
    use std::os::fd::AsFd;
    let d = SharedDict::<u8, u8>::new().unwrap();
    d.insert(1, 2).unwrap();
    let packed = dumps(&d).unwrap();
    for fd in &packed.fds {
        assert!(mp_sys::shm::cannot_shrink(fd.as_fd()).unwrap());
        assert!(mp_sys::shm::set_len(fd.as_fd(), 0).is_err());
    }
    assert_eq!(d.get(&1).unwrap(), Some(2));
    // The same bytes in a memfd that is not sealed, in the data block's place.
    let mut packed = dumps(&d).unwrap();
    let size = mp_sys::shm::file_size(packed.fds[1].as_fd()).unwrap();
    packed.fds[1] = mp_sys::shm::memfd(c"forged", size).unwrap();
    let err = loads::<SharedDict<u8, u8>>(&packed.bytes, packed.fds).unwrap_err();
    assert!(err.to_string().contains("sealed"), "{err}");
}
