//! The managed set, array and `List::sort` (issue #16 item 2) under every start method: each
//! container is changed in a child and checked in the parent, Python's errors come back typed,
//! and a sort call that names no sorter, or another type's, is refused. Values read as another
//! type than they were written are a `Decode` error (issue #24 item 11), and
//! `Dict::update_with` is atomic across processes (issue #24 item 6).
//! CPython: `TestSyncManagerTypes` (`test_set`, `test_set_init`, `test_array`, `test_list`),
//! `_TestArray` (`test_array`, `test_array_from_size`).

use crate::common;
use common::{manager, run};

use std::collections::HashSet;

use mp_managers::{
    Barrier, Dict, DictCall, DictReply, DictServant, List, ListCall, ListServant, ManagedArray,
    ManagedValue, ManagerError, Namespace, RemoteError, Set,
};
use mp_spawn::StartMethod;
use mp_spawn::code::RawCodeRef;

mp_spawn::test_matrix!(
    set_methods_from_a_child,
    set_comparisons_from_a_child,
    set_operations_match_std,
    set_init,
    array_from_a_child,
    array_reads_from_a_child,
    array_from_size,
    array_errors,
    list_sort_from_a_child,
    sort_refuses_a_forged_or_foreign_sorter,
    a_namespace_attribute_read_as_another_type_is_a_decode_error,
    a_reply_read_as_another_type_is_a_decode_error,
    update_with_is_atomic_across_processes,
    update_with_edge_cases,
    update_with_refuses_a_forged_or_foreign_updater,
);

fn strings<const N: usize>(items: [&str; N]) -> HashSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn s(x: &str) -> String {
    x.to_owned()
}

fn is_key_error<T: std::fmt::Debug>(r: Result<T, ManagerError>) -> bool {
    matches!(r, Err(ManagerError::Remote(RemoteError::Key)))
}

/// CPython `TestSyncManagerTypes._test_set_operator_methods`, run in the child.
fn set_methods(obj: Set<String>) {
    assert!(obj.add(s("d")).unwrap());
    assert!(!obj.add(s("d")).unwrap(), "already there");
    assert!(obj.contains(&s("d")).unwrap());

    obj.clear().unwrap();
    obj.update(strings(["a", "b", "c"])).unwrap();
    assert_eq!(obj.copy().unwrap(), strings(["a", "b", "c"]));
    obj.remove(&s("a")).unwrap();
    assert!(!obj.contains(&s("a")).unwrap());
    assert!(is_key_error(obj.remove(&s("a"))), "KeyError");

    obj.clear().unwrap();
    obj.update([s("a")]).unwrap();
    assert!(obj.discard(&s("a")).unwrap());
    assert!(!obj.contains(&s("a")).unwrap());
    assert!(
        !obj.discard(&s("a")).unwrap(),
        "discarding a missing item is fine"
    );
    obj.update([s("a")]).unwrap();
    let popped = obj.pop().unwrap();
    assert_eq!(popped, "a");
    assert!(!obj.contains(&popped).unwrap());
    assert!(obj.is_empty().unwrap());
    assert!(
        is_key_error(obj.pop()),
        "pop from an empty set is a KeyError"
    );

    obj.clear().unwrap();
    obj.update(strings(["a", "b", "c"])).unwrap();
    let other = strings(["b", "c", "d"]);
    assert_eq!(
        obj.intersection(other.clone()).unwrap(),
        strings(["b", "c"])
    );
    obj.intersection_update(other).unwrap();
    assert_eq!(obj.copy().unwrap(), strings(["b", "c"]));

    obj.clear().unwrap();
    obj.update(strings(["a", "b", "c"])).unwrap();
    assert_eq!(obj.difference(strings(["a", "b"])).unwrap(), strings(["c"]));
    obj.difference_update(strings(["a", "b"])).unwrap();
    assert_eq!(obj.copy().unwrap(), strings(["c"]));

    obj.clear().unwrap();
    obj.update(strings(["a", "b", "c"])).unwrap();
    let other = strings(["b", "c", "d"]);
    assert_eq!(
        obj.symmetric_difference(other.clone()).unwrap(),
        strings(["a", "d"])
    );
    obj.symmetric_difference_update(other).unwrap();
    assert_eq!(obj.copy().unwrap(), strings(["a", "d"]));
}

fn set_methods_from_a_child(m: StartMethod) {
    let manager = manager(m);
    let set = manager.set::<String>().unwrap();
    run(m, set_methods, (set.clone(),));
    // The child's last change is the parent's to see.
    assert_eq!(set.copy().unwrap(), strings(["a", "d"]));
    assert_eq!(set.len().unwrap(), 2);
}

/// CPython `TestSyncManagerTypes._test_set_comparisons`, run in the child (`<` and `>` are a
/// subset or superset of another length).
fn set_comparisons(obj: Set<String>) {
    obj.update(strings(["a", "b", "c"])).unwrap();
    assert_eq!(
        obj.union(strings(["d", "e"])).unwrap(),
        strings(["a", "b", "c", "d", "e"])
    );
    assert!(obj.is_disjoint(strings(["d", "e"])).unwrap());
    assert!(!obj.is_disjoint(strings(["a", "d"])).unwrap());

    assert!(obj.is_subset(strings(["a", "b", "c", "d"])).unwrap());
    assert!(!obj.is_subset(strings(["a", "b"])).unwrap());
    assert!(obj.is_subset(strings(["a", "b", "c"])).unwrap(), "<=");

    assert!(obj.is_superset(strings(["a", "b"])).unwrap());
    assert!(!obj.is_superset(strings(["a", "b", "d"])).unwrap());
    assert!(obj.is_superset(strings(["a"])).unwrap());
    assert!(
        obj.is_superset(Vec::new()).unwrap(),
        "every set holds the empty set"
    );
    assert!(
        obj.is_subset(["a", "a", "b", "c"].map(s)).unwrap(),
        "duplicates do not count"
    );
}

fn set_comparisons_from_a_child(m: StartMethod) {
    let manager = manager(m);
    let set = manager.set::<String>().unwrap();
    run(m, set_comparisons, (set.clone(),));
    assert_eq!(set.copy().unwrap(), strings(["a", "b", "c"]));
}

/// CPython `TestSyncManagerTypes._test_set_operator_symbols`: Python's `|`, `-`, `^`, `&`
/// (and their in-place forms) are the methods here; each result is checked against std's
/// `HashSet` on the same operands, from either side.
fn set_operations_match_std(m: StartMethod) {
    let manager = manager(m);
    let operands: [&[u16]; 4] = [&[], &[1, 2, 3], &[2, 3, 4, 4], &[7, 8]];
    for a in operands {
        let mine: HashSet<u16> = a.iter().copied().collect();
        let set = manager.set_from(a.iter().copied()).unwrap();
        for b in operands {
            let theirs: HashSet<u16> = b.iter().copied().collect();
            let b = b.to_vec();
            assert_eq!(set.union(b.clone()).unwrap(), &mine | &theirs);
            assert_eq!(set.intersection(b.clone()).unwrap(), &mine & &theirs);
            assert_eq!(set.difference(b.clone()).unwrap(), &mine - &theirs);
            assert_eq!(
                set.symmetric_difference(b.clone()).unwrap(),
                &mine ^ &theirs
            );
            assert_eq!(set.is_subset(b.clone()).unwrap(), mine.is_subset(&theirs));
            assert_eq!(
                set.is_superset(b.clone()).unwrap(),
                mine.is_superset(&theirs)
            );
            assert_eq!(
                set.is_disjoint(b.clone()).unwrap(),
                mine.is_disjoint(&theirs)
            );
            // The in-place forms, each on a fresh copy of `a`.
            type Update = fn(&Set<u16>, Vec<u16>) -> Result<(), ManagerError>;
            let updates: [(Update, HashSet<u16>); 4] = [
                (|s, b| s.update(b), &mine | &theirs),
                (|s, b| s.intersection_update(b), &mine & &theirs),
                (|s, b| s.difference_update(b), &mine - &theirs),
                (|s, b| s.symmetric_difference_update(b), &mine ^ &theirs),
            ];
            for (update, expected) in updates {
                let fresh = manager.set_from(mine.iter().copied()).unwrap();
                update(&fresh, b.clone()).unwrap();
                assert_eq!(fresh.copy().unwrap(), expected);
                assert_eq!(fresh.len().unwrap(), expected.len());
            }
        }
    }
    assert_eq!(manager.object_count().unwrap(), 0, "every set was freed");
}

/// CPython `TestSyncManagerTypes.test_set_init`: from a set, a list with duplicates, a dict's
/// keys. (Python's `manager.set(1234)` is a `RemoteError`; here the type does not compile.)
fn set_init(m: StartMethod) {
    let manager = manager(m);
    let o = manager.set_from(strings(["a", "b", "c"])).unwrap();
    assert_eq!(o.copy().unwrap(), strings(["a", "b", "c"]));
    let o = manager.set_from(["a", "b", "c", "a"].map(s)).unwrap();
    assert_eq!(o.copy().unwrap(), strings(["a", "b", "c"]));
    assert_eq!(o.len().unwrap(), 3);
    let map = std::collections::HashMap::from([(s("a"), 1), (s("b"), 2), (s("c"), 3)]);
    let o = manager.set_from(map.into_keys()).unwrap();
    assert_eq!(o.copy().unwrap(), strings(["a", "b", "c"]));
    let empty = manager.set::<String>().unwrap();
    assert!(empty.is_empty().unwrap());
    assert!(empty.copy().unwrap().is_empty());
}

/// CPython `_TestArray.f`: running sums, in place.
fn running_sums(seq: ManagedArray<i32>) {
    for i in 1..seq.len().unwrap() as i64 {
        let sum = seq.get(i).unwrap() + seq.get(i - 1).unwrap();
        seq.set(i, sum).unwrap();
    }
}

/// CPython `_TestArray.test_array`, through a manager.
fn array_from_a_child(m: StartMethod) {
    let manager = manager(m);
    let mut seq = vec![680, 626, 934, 821, 150, 233, 548, 982, 714, 831];
    let arr = manager.array_from(seq.clone()).unwrap();
    assert_eq!(arr.len().unwrap(), seq.len());
    assert_eq!(arr.get(3).unwrap(), seq[3]);
    assert_eq!(arr.slice(2, 7).unwrap(), seq[2..7]);
    arr.set_slice(4, 8, [1, 2, 3, 4]).unwrap();
    seq[4..8].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(arr.to_vec().unwrap(), seq);

    for i in 1..seq.len() {
        seq[i] += seq[i - 1];
    }
    run(m, running_sums, (arr.clone(),));
    assert_eq!(arr.to_vec().unwrap(), seq);
}

/// CPython `TestSyncManagerTypes._test_array`, run in the child.
fn read_array(obj: ManagedArray<i32>) {
    assert_eq!(obj.get(0).unwrap(), 0);
    assert_eq!(obj.get(1).unwrap(), 1);
    assert_eq!(obj.len().unwrap(), 2);
    assert_eq!(obj.to_vec().unwrap(), [0, 1]);
}

fn array_reads_from_a_child(m: StartMethod) {
    let manager = manager(m);
    let o = manager.array_from([0, 1]).unwrap();
    run(m, read_array, (o,));
}

/// CPython `_TestArray.test_array_from_size`: a size gives zeros (issue #11675), three times
/// over so that a fresh array could land on a freed one's memory.
fn array_from_size(m: StartMethod) {
    let manager = manager(m);
    for _ in 0..3 {
        let arr = manager.array::<i32>(10).unwrap();
        assert_eq!(arr.len().unwrap(), 10);
        assert_eq!(arr.to_vec().unwrap(), [0; 10]);
        arr.set_slice(0, i64::MAX, 0..10).unwrap();
        assert_eq!(arr.to_vec().unwrap(), (0..10).collect::<Vec<_>>());
    }
    let empty = manager.array::<u8>(0).unwrap();
    assert!(empty.is_empty().unwrap());
    // A length no one can allocate is a typed error, not an abort.
    assert!(matches!(
        manager.array::<u64>(usize::MAX),
        Err(ManagerError::Encode(_))
    ));
}

/// Python's indexing and slicing on the fixed-length array, and its errors.
fn array_errors(m: StartMethod) {
    let manager = manager(m);
    let arr = manager.array_from([10u8, 11, 12, 13]).unwrap();
    assert_eq!(arr.get(-1).unwrap(), 13);
    assert_eq!(arr.get(-4).unwrap(), 10);
    let index_error = |r: Result<_, ManagerError>, index: i64| {
        matches!(
            r,
            Err(ManagerError::Remote(RemoteError::Index { index: i, len: 4 })) if i == index
        )
    };
    assert!(index_error(arr.get(4).map(drop), 4));
    assert!(index_error(arr.get(-5).map(drop), -5));
    assert!(index_error(arr.set(4, 0), 4));
    assert!(index_error(arr.get(i64::MIN).map(drop), i64::MIN));
    // Slices clamp, as Python's; a backwards slice is empty.
    assert_eq!(arr.slice(-2, 100).unwrap(), [12, 13]);
    assert_eq!(arr.slice(i64::MIN, 1).unwrap(), [10]);
    assert_eq!(arr.slice(3, 1).unwrap(), [] as [u8; 0]);
    // Assigning a slice takes exactly its length (ctypes' ValueError), and changes nothing
    // otherwise.
    assert!(matches!(
        arr.set_slice(0, 2, [1]),
        Err(ManagerError::Remote(RemoteError::Value))
    ));
    assert!(matches!(
        arr.set_slice(0, 2, [1, 2, 3]),
        Err(ManagerError::Remote(RemoteError::Value))
    ));
    assert_eq!(arr.to_vec().unwrap(), [10, 11, 12, 13]);
    arr.set_slice(3, 1, []).unwrap();
    arr.set_slice(-2, i64::MAX, [2, 3]).unwrap();
    assert_eq!(arr.to_vec().unwrap(), [10, 11, 2, 3]);
    assert_eq!(arr.len().unwrap(), 4, "the length never changes");
}

/// CPython `TestSyncManagerTypes._test_list`, run in the child (the parts of it with a Rust
/// form: `+=` is `extend`, `*= 2` is extending by a copy).
fn list_methods(obj: mp_managers::List<i32>) {
    assert_eq!(obj.get(0).unwrap(), 5);
    assert_eq!(obj.count(5).unwrap(), 1);
    assert_eq!(obj.index(5).unwrap(), 0);
    obj.extend([7]).unwrap();
    assert_eq!(obj.to_vec().unwrap(), [5, 7]);
    obj.extend(obj.to_vec().unwrap()).unwrap();
    assert_eq!(obj.to_vec().unwrap(), [5, 7, 5, 7]);
    let copied = obj.to_vec().unwrap();
    let double: Vec<i32> = copied.iter().chain(&copied).copied().collect();
    obj.extend(double.into_iter().chain(copied)).unwrap();
    obj.sort().unwrap();
    assert_eq!(obj.to_vec().unwrap(), [[5; 8], [7; 8]].concat());
    obj.reverse().unwrap();
    assert_eq!(obj.len().unwrap(), 16);
    assert_eq!(obj.pop(Some(0)).unwrap(), 7);
    obj.clear().unwrap();
    assert_eq!(obj.len().unwrap(), 0);
}

fn sort_strings(l: mp_managers::List<String>) {
    l.sort().unwrap();
}

fn list_sort_from_a_child(m: StartMethod) {
    let manager = manager(m);
    let o = manager.list_from([5]).unwrap();
    run(m, list_methods, (o.clone(),));
    assert_eq!(o.len().unwrap(), 0);

    // The child names the sorter of its own item type; the server finds the same one.
    let words = manager
        .list_from(["pear", "apple", "fig", "apple"].map(s))
        .unwrap();
    run(m, sort_strings, (words.clone(),));
    assert_eq!(words.to_vec().unwrap(), ["apple", "apple", "fig", "pear"]);
    words.sort_reverse().unwrap();
    assert_eq!(words.to_vec().unwrap(), ["pear", "fig", "apple", "apple"]);

    // Tuples sort as Python's do (by the first item, then the next); an empty list sorts.
    let pairs = manager.list_from([(2u8, 'b'), (1, 'z'), (2, 'a')]).unwrap();
    pairs.sort().unwrap();
    assert_eq!(pairs.to_vec().unwrap(), [(1, 'z'), (2, 'a'), (2, 'b')]);
    let empty = manager.list::<u8>().unwrap();
    empty.sort_reverse().unwrap();
    assert!(empty.is_empty().unwrap());
}

/// A sort call is refused, with the list unchanged, when its reference names no sorter (forged:
/// every index near the real one, and far away) or names the sorter of another item type; the
/// server survives each (before exact references, `real + 5` jumped into the middle of a
/// function and killed it with SIGSEGV).
fn sort_refuses_a_forged_or_foreign_sorter(m: StartMethod) {
    let manager = manager(m);
    let list = manager.serve::<ListServant<u32>>(vec![3, 1, 2]).unwrap();
    let ListCall::Sort { sorter, .. } = ListCall::<u32>::sort(false) else {
        unreachable!("sort builds a Sort call")
    };
    let ListCall::Sort {
        sorter: string_sorter,
        ..
    } = ListCall::<String>::sort(false)
    else {
        unreachable!("sort builds a Sort call")
    };
    let bad_call = |sorter: RawCodeRef| {
        matches!(
            list.call(ListCall::Sort {
                sorter,
                reverse: false
            }),
            Err(ManagerError::Remote(RemoteError::BadCall(_)))
        )
    };
    for forged in [u32::MAX, u32::MAX - 1, 1 << 24] {
        assert!(
            bad_call(RawCodeRef::from_index(forged)),
            "{forged} names no sorter"
        );
    }
    // Every slot near the real sorter: refused, or another registration of the very same
    // `u32` sorter (which sorts); never a crash.
    let real = sorter.index();
    for index in real.saturating_sub(64)..real + 64 {
        let forged = ListCall::Sort {
            sorter: RawCodeRef::from_index(index),
            reverse: false,
        };
        match list.call(forged) {
            Ok(_) | Err(ManagerError::Remote(RemoteError::BadCall(_))) => {}
            Err(e) => panic!("index {index}: {e:?}"),
        }
    }
    list.call(ListCall::Set(0, 3)).unwrap();
    list.call(ListCall::Set(1, 1)).unwrap();
    list.call(ListCall::Set(2, 2)).unwrap();
    assert!(bad_call(string_sorter), "the String sorter on a u32 list");
    let to_vec = || match list.call(ListCall::Slice(0, i64::MAX)).unwrap() {
        mp_managers::ListReply::Items(xs) => xs,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(to_vec(), [3, 1, 2], "a refused sort changes nothing");
    list.call(ListCall::Sort {
        sorter,
        reverse: true,
    })
    .unwrap();
    assert_eq!(to_vec(), [3, 2, 1]);
}

// ---- Decoding (issue #24 item 11) ----

fn set_attributes(ns: Namespace) {
    ns.set("name", "abc".to_owned()).unwrap();
    ns.set("n", 3u32).unwrap();
    ns.set("pair", (1u8, 2u8)).unwrap();
}

fn is_decode<T: std::fmt::Debug>(r: Result<T, ManagerError>) -> bool {
    matches!(r, Err(ManagerError::Decode(_)))
}

/// A namespace attribute set in a child as one type and read here as another is a `Decode`
/// error, also where postcard alone would read it (a string's bytes as a `u32`: its length,
/// 3; a pair's as a `u8`: its first item), and reads as its own type.
fn a_namespace_attribute_read_as_another_type_is_a_decode_error(m: StartMethod) {
    let manager = manager(m);
    let ns = manager.namespace().unwrap();
    run(m, set_attributes, (ns.clone(),));
    assert!(is_decode(ns.get::<u32>("name")));
    assert!(is_decode(ns.get::<u8>("pair")));
    assert!(is_decode(ns.get::<i32>("n")));
    assert!(is_decode(ns.get::<String>("n")));
    assert_eq!(ns.get::<String>("name").unwrap(), "abc");
    assert_eq!(ns.get::<u32>("n").unwrap(), 3);
    assert_eq!(ns.get::<(u8, u8)>("pair").unwrap(), (1, 2));
}

/// `proxy`'s bytes read back as a proxy of type `P`: a proxy of another object type, as a
/// mixed-up queue or pipe would deliver it.
fn retyped<P: serde::de::DeserializeOwned>(proxy: &impl serde::Serialize) -> P {
    postcard::from_bytes(&postcard::to_stdvec(proxy).unwrap()).unwrap()
}

/// A value, list or dict reply read as another type is a `Decode` error: the proxies' replies
/// go through the same exact decoding (before, a string came back as its length).
fn a_reply_read_as_another_type_is_a_decode_error(m: StartMethod) {
    let manager = manager(m);
    let value = manager.value("abc".to_owned()).unwrap();
    let list = manager.list_from(["abc".to_owned()]).unwrap();
    let dict = manager
        .dict_from([("k".to_owned(), "abc".to_owned())])
        .unwrap();
    assert!(is_decode(retyped::<ManagedValue<u32>>(&value).get()));
    assert!(is_decode(retyped::<List<u32>>(&list).get(0)));
    assert!(is_decode(
        retyped::<Dict<String, u32>>(&dict).get(&"k".to_owned())
    ));
    assert_eq!(value.get().unwrap(), "abc");
    assert_eq!(list.get(0).unwrap(), "abc");
    assert_eq!(dict.get(&"k".to_owned()).unwrap().unwrap(), "abc");
}

// ---- Dict::update_with (issue #24 item 6) ----

const WORDS: [&str; 3] = ["apple", "fig", "pear"];
const COUNTERS: u64 = 4;
const INCREMENTS: usize = 2_000;
/// A failure bound only, for the start barrier.
const HANG: std::time::Duration = std::time::Duration::from_secs(60);

/// Counts `INCREMENTS` words into `d`, starting with the others (the barrier).
fn count_words(d: Dict<String, u64>, start: Barrier) {
    start.wait(Some(HANG)).unwrap();
    for i in 0..INCREMENTS {
        d.update_with(s(WORDS[i % WORDS.len()]), |n| *n.get_or_insert(0) += 1)
            .unwrap();
    }
}

/// Four processes counting words through `update_with` end exact, run after run (with a get
/// and an insert, most runs lost updates). Fork does 20 runs; spawn and forkserver, whose
/// children start slower, 5.
fn update_with_is_atomic_across_processes(m: StartMethod) {
    let manager = manager(m);
    let runs = if m == StartMethod::Fork { 20 } else { 5 };
    let mut expected = [0u64; WORDS.len()];
    for i in 0..INCREMENTS {
        expected[i % WORDS.len()] += COUNTERS;
    }
    for run in 0..runs {
        let d = manager.dict::<String, u64>().unwrap();
        let start = manager.barrier(COUNTERS, None).unwrap();
        let mut children: Vec<_> = (0..COUNTERS)
            .map(|_| common::start(m, count_words, (d.clone(), start.clone())))
            .collect();
        for c in &mut children {
            c.join().unwrap();
        }
        let counts: Vec<u64> = WORDS
            .iter()
            .map(|w| d.get(&s(w)).unwrap().unwrap())
            .collect();
        assert_eq!(counts, expected, "run {run}");
    }
}

fn bump(v: &mut Option<u64>) -> u64 {
    let n = v.get_or_insert(0);
    *n += 1;
    *n
}

fn explode(_: &mut Option<u64>) {
    panic!("this closure panics in the server (on purpose)");
}

/// What `update_with` returns comes back; `None` left removes the key, and a missing key stays
/// missing; a key keeps its place when changed; a fn item works as a closure does; a panic in
/// the closure is a typed error that leaves the value as it was (and the server serving).
fn update_with_edge_cases(m: StartMethod) {
    let manager = manager(m);
    let d = manager.dict_from([(s("a"), 1u64), (s("b"), 2)]).unwrap();
    assert_eq!(d.update_with(s("a"), bump).unwrap(), 2);
    assert_eq!(d.update_with(s("c"), bump).unwrap(), 1);
    assert_eq!(d.keys().unwrap(), ["a", "b", "c"]);
    assert_eq!(d.update_with(s("b"), |v| v.take()).unwrap(), Some(2));
    assert_eq!(d.update_with(s("z"), |v| v.take()).unwrap(), None);
    assert_eq!(d.items().unwrap(), [(s("a"), 2), (s("c"), 1)]);
    assert!(matches!(
        d.update_with(s("a"), explode),
        Err(ManagerError::Remote(RemoteError::Runtime(_)))
    ));
    assert_eq!(d.get(&s("a")).unwrap(), Some(2));
    // A value of another type, and a closure that returns nothing.
    let text = manager.dict::<u8, String>().unwrap();
    text.update_with(1, |v| v.get_or_insert_with(String::new).push_str("abc"))
        .unwrap();
    assert_eq!(text.get(&1).unwrap().unwrap(), "abc");
}

fn updater_of<K, V>(call: DictCall<K, V>) -> RawCodeRef {
    match call {
        DictCall::UpdateWith { updater, .. } => updater,
        _ => unreachable!("update_with builds an UpdateWith call"),
    }
}

/// An update call is refused, with the dict unchanged, when its reference names no updater
/// (forged) or names the updater of another value type.
fn update_with_refuses_a_forged_or_foreign_updater(m: StartMethod) {
    let manager = manager(m);
    let d = manager
        .serve::<DictServant<u8, u32>>(vec![(1, 10)])
        .unwrap();
    let ours = updater_of(DictCall::<u8, u32>::update_with(1, |v| v.take()));
    let foreign = updater_of(DictCall::<u8, String>::update_with(1, |v| v.take()));
    let bad_call = |updater: RawCodeRef| {
        matches!(
            d.call(DictCall::UpdateWith { updater, key: 1 }),
            Err(ManagerError::Remote(RemoteError::BadCall(_)))
        )
    };
    for forged in [u32::MAX, u32::MAX - 1, 1 << 24] {
        assert!(
            bad_call(RawCodeRef::from_index(forged)),
            "{forged} names no updater"
        );
    }
    assert!(bad_call(foreign), "the String updater on a u32 dict");
    let get = || match d.call(DictCall::Get(1)).unwrap() {
        DictReply::Value(v) => v,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(get(), Some(10), "a refused update changes nothing");
    assert!(matches!(
        d.call(DictCall::UpdateWith {
            updater: ours,
            key: 1
        })
        .unwrap(),
        DictReply::Updated(_)
    ));
    assert_eq!(get(), None);
}
