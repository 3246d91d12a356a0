//! SharedMemory and ShareableList: across processes under all three start methods, their
//! errors, and interop with Python's `multiprocessing.shared_memory` (where python3 is here).

use crate::common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{python, run_python};
use mp_shm::{Item, ListError, ShareableList, SharedMemory, ShmError};
use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

mp_spawn::test_matrix!(
    child_attaches_writes_and_exits_without_unlinking,
    child_creates_and_the_parent_keeps_its_view,
    shareable_list_across_processes,
);

fn write_hello(shm: SharedMemory) -> usize {
    shm.write_at(10, b"hello").unwrap();
    shm.size()
}

fn child_attaches_writes_and_exits_without_unlinking(m: StartMethod) {
    let shm = SharedMemory::create(4096).unwrap();
    let mut p = ctx(m).process(write_hello, (SharedMemory::attach(shm.name()).unwrap(),));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 4096);
    let mut buf = [0u8; 5];
    shm.read_at(10, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    // The child attached and exited: the name is still there (gh-82300 is not ours).
    let again = SharedMemory::attach(shm.name()).unwrap();
    assert_eq!(again.size(), 4096);
    shm.unlink().unwrap();
}

fn create_and_return() -> SharedMemory {
    let shm = SharedMemory::create(8192).unwrap();
    shm.write_at(0, &[7; 8192]).unwrap();
    // Returned by name: the segment must outlive this child (the tree's tracker keeps it).
    shm
}

fn child_creates_and_the_parent_keeps_its_view(m: StartMethod) {
    let mut p = ctx(m).process(create_and_return, ());
    p.start().unwrap();
    // join deserialises the result, which attaches the segment by name.
    let shm = p.join().unwrap();
    let mut buf = vec![0u8; 8192];
    shm.read_at(0, &mut buf).unwrap();
    assert!(buf.iter().all(|b| *b == 7));
    shm.unlink().unwrap();
}

fn edit_list(list: ShareableList) -> Vec<Item> {
    list.set(0, Item::Int(-5)).unwrap();
    list.set(1, "bye".into()).unwrap();
    list.set(3, Item::Bool(true)).unwrap();
    list.to_vec().unwrap()
}

fn shareable_list_across_processes(m: StartMethod) {
    let list = ShareableList::new(&[
        Item::Int(1),
        "hello".into(),
        Item::Float(2.5),
        Item::None,
        Item::Bytes(b"\x01\x02".to_vec()),
    ])
    .unwrap();
    let mut p = ctx(m).process(
        edit_list,
        (ShareableList::attach(list.shm().name()).unwrap(),),
    );
    p.start().unwrap();
    let seen_by_child = p.join().unwrap();
    let expected = vec![
        Item::Int(-5),
        Item::Str("bye".into()),
        Item::Float(2.5),
        Item::Bool(true),
        Item::Bytes(vec![1, 2]),
    ];
    assert_eq!(seen_by_child, expected);
    assert_eq!(list.to_vec().unwrap(), expected);
    list.shm().unlink().unwrap();
}

#[test]
fn errors_are_typed() {
    assert!(matches!(SharedMemory::create(0), Err(ShmError::ZeroSize)));
    let shm = SharedMemory::create(100).unwrap();
    let dup = SharedMemory::options().name(shm.name()).create(100);
    assert!(matches!(dup, Err(ShmError::Exists(n)) if n == shm.name()));
    shm.unlink().unwrap();
    assert!(matches!(shm.unlink(), Err(ShmError::NotFound(_))));
    assert!(matches!(
        SharedMemory::attach(shm.name()),
        Err(ShmError::NotFound(_))
    ));
    for bad in ["", "a/b", "nul\0byte", &"x".repeat(256)] {
        assert!(
            matches!(SharedMemory::attach(bad), Err(ShmError::InvalidName { .. })),
            "{bad:?}"
        );
        assert!(matches!(
            SharedMemory::options().name(bad).create(10),
            Err(ShmError::InvalidName { .. })
        ));
    }
    assert!(matches!(
        SharedMemory::options().attach(),
        Err(ShmError::InvalidName { .. })
    ));
    // A leading slash is the POSIX spelling of the same name, as Python accepts it.
    let named = SharedMemory::options()
        .name(format!("/mp_test_{}", std::process::id()))
        .create(10)
        .unwrap();
    assert_eq!(named.name(), format!("mp_test_{}", std::process::id()));
    named.unlink().unwrap();
}

#[test]
fn views_are_bounded() {
    let mut shm = SharedMemory::create(16).unwrap();
    assert!(shm.write_at(12, b"abcd").is_ok());
    let e = shm.write_at(13, b"abcd").unwrap_err();
    assert_eq!((e.index, e.len), (17, 16));
    assert!(shm.read_at(usize::MAX, &mut [0u8; 2]).is_err());
    // SAFETY: no other process has this segment.
    unsafe { shm.as_mut_slice()[0] = 9 };
    // SAFETY: as above.
    assert_eq!(unsafe { shm.as_slice()[0] }, 9);
    shm.close();
    assert_eq!(shm.size(), 0);
    assert!(shm.read_at(0, &mut [0u8; 1]).is_err());
    shm.unlink().unwrap();
}

#[test]
fn shareable_list_rules() {
    let list = ShareableList::new(&["ab".into(), 8i64.into(), "12345678".into()]).unwrap();
    // Capacity: the length rounded up to the next multiple of 8, so "12345678" gets 16.
    assert_eq!(list.format().unwrap(), "8sq16s");
    assert!(matches!(
        list.set(0, "123456789".into()),
        Err(ListError::ItemTooLong {
            len: 9,
            capacity: 8
        })
    ));
    list.set(0, "12345678".into()).unwrap();
    list.set(1, Item::Float(1.0)).unwrap();
    assert!(matches!(list.get(3), Err(ListError::Index(_))));
    assert!(matches!(list.set(3, Item::None), Err(ListError::Index(_))));
    // Python's ==: 1.0 == True == 1.
    list.set(2, Item::Bool(true)).unwrap();
    assert_eq!(list.count(&Item::Int(1)).unwrap(), 2);
    assert_eq!(list.index(&Item::Bool(true)).unwrap(), 1);
    assert!(matches!(list.index(&Item::None), Err(ListError::NotInList)));
    let empty = ShareableList::new(&[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(ShareableList::attach(empty.shm().name()).unwrap().len(), 0);
    list.shm().unlink().unwrap();
    empty.shm().unlink().unwrap();
}

#[test]
fn a_segment_that_is_not_a_list_is_refused() {
    let shm = SharedMemory::create(64).unwrap();
    shm.write_at(0, &1_000_000i64.to_ne_bytes()).unwrap();
    assert!(matches!(
        ShareableList::attach(shm.name()),
        Err(ListError::Malformed(_))
    ));
    shm.unlink().unwrap();
}

/// Python before 3.13 registers segments it merely attaches, and unlinks them at exit
/// (gh-82300); the scripts unregister what they attach so that they leave ours alone.
const PY_ATTACH: &str = "
import sys
from multiprocessing import shared_memory, resource_tracker
def attach(name, cls=shared_memory.SharedMemory):
    obj = cls(name=name)
    shm = obj if cls is shared_memory.SharedMemory else obj.shm
    resource_tracker.unregister(shm._name, 'shared_memory')
    return obj
";

#[test]
fn python_attaches_ours() {
    let Some(py) = python() else { return };
    let shm = SharedMemory::create(4096).unwrap();
    shm.write_at(0, b"from rust").unwrap();
    let script = format!(
        "{PY_ATTACH}\ns = attach(sys.argv[1])\nprint(bytes(s.buf[:9]).decode(), s.size)\ns.buf[:11] = b'from python'\ns.close()"
    );
    let out = run_python(py, &script, shm.name());
    assert_eq!(out, "from rust 4096");
    let mut buf = [0u8; 11];
    shm.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"from python");
    shm.unlink().unwrap();
}

#[test]
fn we_attach_pythons() {
    let Some(py) = python() else { return };
    // Python creates, prints the name, and waits for us before it unlinks.
    let script = "
from multiprocessing import shared_memory
s = shared_memory.SharedMemory(create=True, size=1000)
s.buf[:6] = b'python'
l = shared_memory.ShareableList([7, 2.5, True, None, 'text', b'raw'])
print(s.name, l.shm.name, flush=True)
input()
print(l[0], l[4], flush=True)
s.close(); s.unlink(); l.shm.close(); l.shm.unlink()
";
    let mut child = Command::new(py)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let names = lines.next().unwrap().unwrap();
    let (shm_name, list_name) = names.split_once(' ').unwrap();
    let shm = SharedMemory::attach(shm_name).unwrap();
    let mut buf = [0u8; 6];
    shm.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"python");
    assert!(shm.size() >= 1000);
    let list = ShareableList::attach(list_name).unwrap();
    assert_eq!(
        list.to_vec().unwrap(),
        [
            Item::Int(7),
            Item::Float(2.5),
            Item::Bool(true),
            Item::None,
            Item::Str("text".into()),
            Item::Bytes(b"raw".to_vec())
        ]
    );
    list.set(0, Item::Int(42)).unwrap();
    list.set(4, "mp".into()).unwrap();
    child.stdin.as_mut().unwrap().write_all(b"\n").unwrap();
    assert_eq!(lines.next().unwrap().unwrap(), "42 mp");
    assert!(child.wait().unwrap().success());
}

#[test]
fn python_reads_our_shareable_list() {
    let Some(py) = python() else { return };
    let list = ShareableList::new(&[
        Item::Int(-1),
        "héllo".into(),
        Item::Float(0.5),
        Item::None,
        Item::Bool(false),
    ])
    .unwrap();
    let script = format!(
        "{PY_ATTACH}\nl = attach(sys.argv[1], shared_memory.ShareableList)\nprint(list(l), l.format)\nl[0] = 99\nl.shm.close()"
    );
    let out = run_python(py, &script, list.shm().name());
    assert_eq!(out, "[-1, 'héllo', 0.5, None, False] q8sdxxxxxx?xxxxxxxx?");
    assert_eq!(list.get(0).unwrap(), Item::Int(99));
    list.shm().unlink().unwrap();
}
