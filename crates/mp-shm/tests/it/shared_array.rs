//! SharedArray, SharedArrayMut and their chunks across processes, under all three start
//! methods: read-only sharing, chunks filled in parallel, claims, faults, and the checks a
//! receiver makes.

use crate::common;

use std::os::fd::AsFd;
use std::time::Duration;

use mp_shm::{Chunk, Event, SharedArray, SharedArrayMut, SharedMemory, ShmError, mapped_arrays};
use mp_spawn::StartMethod;
use mp_spawn::reduction::{dumps, loads};
use mp_spawn::testing::{ctx, park_forever};

mp_spawn::test_matrix!(
    read_only_sharing_to_a_child,
    chunks_filled_by_children_in_parallel_then_joined,
    a_chunk_held_by_a_child_is_refused_elsewhere_and_join_waits,
    a_child_killed_holding_a_chunk_releases_it,
    the_same_array_received_twice_maps_once,
);

const LONG: Duration = Duration::from_secs(30);

/// What a child sees of a read-only array: its sum, and that its memory is sealed.
fn sum_and_seals(a: SharedArray<f64>) -> (f64, bool) {
    (a.iter().sum(), a.is_write_sealed().unwrap())
}

fn read_only_sharing_to_a_child(m: StartMethod) {
    let mut a = SharedArrayMut::<f64>::zeroed(100_000).unwrap();
    for (i, x) in a.iter_mut().enumerate() {
        *x = i as f64;
    }
    let a = a.freeze().unwrap();
    let mut p = ctx(m).process(sum_and_seals, (a.clone(),));
    p.start().unwrap();
    let (sum, sealed) = p.join().unwrap();
    assert_eq!(sum, (0..100_000).map(|i| i as f64).sum::<f64>());
    assert!(sealed);
    // The memfd as it travels: sealed against writes and resizing (F_GET_SEALS), so no
    // process can map it writable.
    let msg = dumps(&a).unwrap();
    let fd = msg.fds[0].as_fd();
    assert!(mp_sys::shm::is_read_only(fd).unwrap());
    // SAFETY: the mapping fails (the point of the test); nothing is reached.
    assert!(unsafe { mp_sys::mmap::Mapping::new(fd, 4096) }.is_err());
    assert!(mp_sys::shm::set_len(fd, 0).is_err());
}

fn fill_chunk(mut c: Chunk<u64>) -> usize {
    let start = c.range().start;
    for (i, x) in c.iter_mut().enumerate() {
        *x = (start + i) as u64 * 3;
    }
    c.len()
}

fn chunks_filled_by_children_in_parallel_then_joined(m: StartMethod) {
    // 10_000 u64s in chunks of 2_600: chunk boundaries fall inside pages, the last is short.
    let chunks = SharedArrayMut::<u64>::zeroed(10_000)
        .unwrap()
        .split(2_600)
        .unwrap();
    let parts = chunks.parts();
    assert_eq!(parts.len(), 4);
    assert_eq!(parts[3].range(), 7_800..10_000);
    let mut children: Vec<_> = parts
        .into_iter()
        .map(|c| ctx(m).process(fill_chunk, (c,)))
        .collect();
    for c in &mut children {
        c.start().unwrap();
    }
    let lens: Vec<usize> = children.iter_mut().map(|c| c.join().unwrap()).collect();
    assert_eq!(lens, [2_600, 2_600, 2_600, 2_200]);
    let a = chunks.join().unwrap();
    assert!(a.iter().enumerate().all(|(i, x)| *x == i as u64 * 3));
    let frozen = a.freeze().unwrap();
    assert_eq!(frozen[9_999], 29_997);
}

fn hold_chunk(c: Chunk<u32>, held: Event) {
    let mut c = c;
    c[0] = 1;
    held.set();
    park_forever();
}

fn attach_in_child(c: Chunk<u32>) -> bool {
    c.is_attached()
}

fn a_chunk_held_by_a_child_is_refused_elsewhere_and_join_waits(m: StartMethod) {
    let chunks = SharedArrayMut::<u32>::zeroed(8).unwrap().split(4).unwrap();
    let parts = chunks.parts();
    let held = Event::new().unwrap();
    let mut holder = ctx(m).process(hold_chunk, (parts[1].clone_ticket(), held.clone()));
    holder.start().unwrap();
    assert!(held.wait(Some(LONG)));
    let pid = holder.pid().unwrap();
    // Here, in this process.
    match parts[1].attach() {
        Err(ShmError::ChunkBusy { index: 1, pid: p }) => assert_eq!(p, pid),
        other => panic!("expected ChunkBusy, got {other:?}"),
    }
    // In another process: its receipt of the chunk fails, so the child never runs.
    let mut second = ctx(m).process(attach_in_child, (parts[1].clone_ticket(),));
    second.start().unwrap();
    assert!(second.join().is_err());
    // The other chunk is free.
    assert!(parts[0].attach().unwrap().is_attached());
    // The owner cannot take the array back while the holder lives.
    let chunks = match chunks.join() {
        Err(e) => {
            assert!(matches!(e.error, ShmError::ChunkBusy { index: 1, .. }));
            *e.chunks.unwrap()
        }
        Ok(_) => panic!("joined while a live child holds a chunk"),
    };
    holder.kill().unwrap();
    let _ = holder.join_timeout(LONG);
    let a = chunks.join().unwrap();
    assert_eq!(&a[..], [0, 0, 0, 0, 1, 0, 0, 0]);
    // Tickets of a joined array attach nothing.
    assert!(matches!(parts[0].attach(), Err(ShmError::ChunksJoined)));
}

fn write_half_and_park(c: Chunk<u32>, held: Event) {
    let mut c = c;
    for x in c.iter_mut().take(50) {
        *x = 7;
    }
    held.set();
    park_forever();
}

fn fill_with(c: Chunk<u32>, v: u32) {
    let mut c = c;
    c.fill(v);
}

fn a_child_killed_holding_a_chunk_releases_it(m: StartMethod) {
    let chunks = SharedArrayMut::<u32>::zeroed(300)
        .unwrap()
        .split(100)
        .unwrap();
    let parts = chunks.parts();
    let held = Event::new().unwrap();
    let mut victim = ctx(m).process(write_half_and_park, (parts[1].clone_ticket(), held.clone()));
    victim.start().unwrap();
    let mut others: Vec<_> = [0, 2]
        .into_iter()
        .map(|i| ctx(m).process(fill_with, (parts[i].clone_ticket(), i as u32 + 1)))
        .collect();
    for c in &mut others {
        c.start().unwrap();
    }
    assert!(held.wait(Some(LONG)));
    victim.kill().unwrap();
    let _ = victim.join_timeout(LONG);
    for c in &mut others {
        c.join().unwrap();
    }
    // The dead holder's chunk can be attached again (a retried task would)...
    let again = parts[1].attach().unwrap();
    assert_eq!(again[..50], [7; 50]);
    assert_eq!(again[50..], [0; 50]);
    drop(again);
    // ...and the array joined: the other chunks are intact.
    let a = chunks.join().unwrap();
    assert_eq!(a[..100], [1; 100]);
    assert_eq!(a[200..], [3; 100]);
}

fn same_memory_twice(x: SharedArray<u8>, y: SharedArray<u8>) -> (bool, usize) {
    (
        x.as_ptr() == y.as_ptr() && x.same_memory(&y),
        mapped_arrays(),
    )
}

fn the_same_array_received_twice_maps_once(m: StartMethod) {
    let a = SharedArray::from_slice(&[5u8; 10_000]).unwrap();
    let mut p = ctx(m).process(same_memory_twice, (a.clone(), a.clone()));
    p.start().unwrap();
    let (same, mapped) = p.join().unwrap();
    assert!(same);
    // Spawned children map only this array; a forked one inherits this process's too.
    if m != StartMethod::Fork {
        assert_eq!(mapped, 1);
    }
    // In this process too: a round trip gives the mapping already here.
    let msg = dumps(&a).unwrap();
    let back: SharedArray<u8> = loads(&msg.bytes, msg.fds).unwrap();
    assert!(back.same_memory(&a));
}

#[test]
fn a_chunk_is_attached_once_per_process_too() {
    let chunks = SharedArrayMut::<i16>::zeroed(10).unwrap().split(5).unwrap();
    let parts = chunks.parts();
    let msg = dumps(&parts[0]).unwrap();
    let dup =
        |fds: &Vec<std::os::fd::OwnedFd>| fds.iter().map(|f| f.try_clone().unwrap()).collect();
    let mut first: Chunk<i16> = loads(&msg.bytes, dup(&msg.fds)).unwrap();
    first.fill(-1);
    let second = loads::<Chunk<i16>>(&msg.bytes, dup(&msg.fds)).unwrap_err();
    assert!(
        second.to_string().contains("is attached by live process"),
        "{second}"
    );
    assert!(matches!(
        first.attach(),
        Err(ShmError::ChunkBusy { index: 0, .. })
    ));
    assert!(matches!(
        parts[0].attach(),
        Err(ShmError::ChunkBusy { index: 0, .. })
    ));
    // A ticket derefs to nothing; only an attached chunk gives its range.
    assert!(parts[0].is_empty() && !parts[0].is_attached());
    assert!(chunks.join().is_err());
    drop(first);
    let _again: Chunk<i16> = loads(&msg.bytes, msg.fds).unwrap();
}

#[test]
fn a_wrong_type_or_length_is_refused() {
    let a = SharedArray::from_slice(&[1.0f64; 10]).unwrap();
    let msg = dumps(&a).unwrap();
    let dup =
        |fds: &Vec<std::os::fd::OwnedFd>| fds.iter().map(|f| f.try_clone().unwrap()).collect();
    let as_u8 = loads::<SharedArray<u8>>(&msg.bytes, dup(&msg.fds)).unwrap_err();
    assert!(as_u8.to_string().contains("does not hold u8"), "{as_u8}");
    // The same size, another type.
    let as_u64 = loads::<SharedArray<u64>>(&msg.bytes, dup(&msg.fds)).unwrap_err();
    assert!(as_u64.to_string().contains("does not hold u64"), "{as_u64}");
    // A descriptor of 11 elements with the memory of 10: the header in the memory says 10.
    let eleven = dumps(&SharedArray::from_slice(&[1.0f64; 11]).unwrap()).unwrap();
    let e = loads::<SharedArray<f64>>(&eleven.bytes, dup(&msg.fds)).unwrap_err();
    assert!(e.to_string().contains("wrong shared array length"), "{e}");
    // A chunk's memory (writable, not sealed) received as a read-only array is refused.
    let chunks = SharedArrayMut::<f64>::zeroed(10).unwrap().split(5).unwrap();
    let c = dumps(&chunks.parts()[0]).unwrap();
    let e = loads::<SharedArray<f64>>(&msg.bytes, c.fds).unwrap_err();
    assert!(e.to_string().contains("not sealed"), "{e}");
    // A chunk received as another element type.
    let c = dumps(&chunks.parts()[1]).unwrap();
    let e = loads::<Chunk<u32>>(&c.bytes, c.fds).unwrap_err();
    assert!(e.to_string().contains("does not hold u32"), "{e}");
    // Garbage instead of a descriptor.
    assert!(loads::<SharedArray<f64>>(&[1, 2, 3], Vec::new()).is_err());
}

/// The lines of /proc/self/maps and the descriptors of this process that show inode `ino`.
fn uses_of(ino: u64) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mapped = maps
        .lines()
        .filter(|l| l.split_whitespace().nth(4) == Some(&ino.to_string()))
        .count();
    let fds = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::metadata(e.ok()?.path()).ok())
        .filter(|m| std::os::unix::fs::MetadataExt::ino(m) == ino)
        .count();
    mapped + fds
}

#[test]
fn the_last_handle_gone_nothing_is_left_in_this_process() {
    let a = SharedArrayMut::<u32>::zeroed(50_000).unwrap();
    let chunks = a.split(10_000).unwrap();
    let ino = {
        let m = dumps(&chunks.parts()[0]).unwrap();
        mp_sys::shm::identity(m.fds[0].as_fd()).unwrap().1
    };
    let held = chunks.parts()[2].attach().unwrap();
    assert!(uses_of(ino) >= 3); // the fd, the owner's mapping, the claim words, the window
    drop(held);
    let frozen = chunks.freeze().unwrap();
    let msg = dumps(&frozen).unwrap();
    let again: SharedArray<u32> = loads(&msg.bytes, msg.fds).unwrap();
    assert!(uses_of(ino) >= 2);
    drop((frozen, again));
    assert_eq!(uses_of(ino), 0);
}

#[test]
fn the_handles_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SharedArray<f64>>();
    send_sync::<SharedArrayMut<f64>>();
    send_sync::<Chunk<f64>>();
    send_sync::<mp_shm::Chunks<f64>>();
}

#[test]
fn edges_are_typed_errors() {
    assert!(matches!(
        SharedArrayMut::<u8>::zeroed(4).unwrap().split(0),
        Err(ShmError::WrongLength { .. })
    ));
    assert!(SharedArrayMut::<u64>::zeroed(usize::MAX / 4).is_err());
    let empty = SharedArray::<u8>::from_slice(&[]).unwrap();
    assert!(empty.is_empty());
    let msg = dumps(&empty).unwrap();
    assert!(
        loads::<SharedArray<u8>>(&msg.bytes, msg.fds)
            .unwrap()
            .is_empty()
    );
    let none = SharedArrayMut::<u8>::zeroed(0).unwrap().split(3).unwrap();
    assert_eq!(none.num_chunks(), 0);
    assert!(none.join().unwrap().is_empty());
}

#[test]
fn nothing_in_dev_shm_only_memfds() {
    let a = SharedArrayMut::<u8>::zeroed(10).unwrap();
    let chunks = a.split(5).unwrap();
    let c = dumps(&chunks.parts()[0]).unwrap();
    let frozen = chunks.freeze().unwrap();
    let f = dumps(&frozen).unwrap();
    // A chunk's holder cannot shrink the file under the others' mappings.
    assert!(mp_sys::shm::set_len(c.fds[0].as_fd(), 0).is_err());
    for fd in [&c.fds[0], &f.fds[0]] {
        use std::os::fd::AsRawFd;
        let link = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap();
        assert!(
            link.to_string_lossy().starts_with("/memfd:mp-array"),
            "{link:?}"
        );
    }
}

#[test]
fn a_split_array_rejoined_and_split_again_refuses_old_tickets() {
    let chunks = SharedArrayMut::<u8>::zeroed(8).unwrap().split(4).unwrap();
    let old = chunks.parts();
    let chunks = chunks.join().unwrap().split(4).unwrap();
    // Same geometry, a later split: the old tickets are stale.
    assert!(matches!(old[0].attach(), Err(ShmError::ChunksJoined)));
    assert!(chunks.parts()[0].attach().is_ok());
}

#[test]
fn named_round_trip_with_shared_memory() {
    // SAFETY: the segment is read by name only after the writes, in this thread.
    let mut a = unsafe { SharedArrayMut::<f64>::named(4).unwrap() };
    a.copy_from_slice(&[0.5, 1.5, 2.5, 3.5]);
    let name = a.name().unwrap().to_owned();
    let shm = SharedMemory::attach(&name).unwrap();
    let mut bytes = [0u8; 32];
    shm.read_at(0, &mut bytes).unwrap();
    let got: Vec<f64> = bytes
        .chunks(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(got, [0.5, 1.5, 2.5, 3.5]);
    // The other way: numpy's segment, attached (copied) as a read-only array.
    let back = SharedArray::<f64>::attach_named(&name, 4).unwrap();
    assert_eq!(&back[..], [0.5, 1.5, 2.5, 3.5]);
    assert!(matches!(
        SharedArray::<f64>::attach_named(&name, 100_000),
        Err(ShmError::WrongLength { .. })
    ));
    // A named array's chunks work as an anonymous one's.
    let chunks = a.split(2).unwrap();
    chunks.parts()[1].attach().unwrap().fill(9.0);
    let a = chunks.join().unwrap();
    assert_eq!(&a[..], [0.5, 1.5, 9.0, 9.0]);
    // Frozen: a sealed copy (a named segment cannot be sealed).
    let frozen = a.freeze().unwrap();
    assert!(frozen.is_write_sealed().unwrap());
    shm.unlink().unwrap();
    assert!(!std::path::Path::new(&format!("/dev/shm/{name}")).exists());
}

#[test]
fn named_round_trip_with_python() {
    let Some(py) = common::python() else { return };
    // SAFETY: Python reads the segment after the writes, and nothing writes it meanwhile.
    let mut a = unsafe { SharedArrayMut::<f64>::named(1000).unwrap() };
    for (i, x) in a.iter_mut().enumerate() {
        *x = i as f64;
    }
    let name = a.name().unwrap().to_owned();
    // What numpy's `np.ndarray((n,), dtype='<f8', buffer=shm.buf)` reads, with the standard
    // library only: the buffer cast to C doubles.
    let script = "import sys\n\
        from multiprocessing import resource_tracker\n\
        from multiprocessing.shared_memory import SharedMemory\n\
        shm = SharedMemory(sys.argv[1])\n\
        resource_tracker.unregister(shm._name, 'shared_memory')\n\
        v = shm.buf[:8000].cast('d')\n\
        print(sum(v))\n\
        out = SharedMemory(create=True, size=24)\n\
        resource_tracker.unregister(out._name, 'shared_memory')\n\
        out.buf[:24].cast('d')[:] = __import__('array').array('d', [1.0, 2.0, 4.0])\n\
        print(out.name)\n\
        del v";
    let out = common::run_python(py, script, &name);
    let mut lines = out.lines();
    assert_eq!(lines.next().unwrap(), "499500.0");
    let theirs = lines.next().unwrap().to_owned();
    let back = SharedArray::<f64>::attach_named(&theirs, 3).unwrap();
    assert_eq!(&back[..], [1.0, 2.0, 4.0]);
    SharedMemory::attach(&theirs).unwrap().unlink().unwrap();
    a.unlink().unwrap();
}

#[test]
fn named_round_trip_with_numpy() {
    let Some(py) = common::python() else { return };
    let has_numpy = std::process::Command::new(py)
        .args(["-c", "import numpy"])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_numpy {
        eprintln!("skipped: numpy is not installed (python3 -c 'import numpy' failed)");
        return;
    }
    // SAFETY: numpy reads the segment after the writes.
    let mut a = unsafe { SharedArrayMut::<f64>::named(1000).unwrap() };
    for (i, x) in a.iter_mut().enumerate() {
        *x = i as f64;
    }
    let script = "import sys\n\
        import numpy as np\n\
        from multiprocessing import resource_tracker\n\
        from multiprocessing.shared_memory import SharedMemory\n\
        shm = SharedMemory(sys.argv[1])\n\
        resource_tracker.unregister(shm._name, 'shared_memory')\n\
        a = np.ndarray((1000,), dtype='<f8', buffer=shm.buf)\n\
        print(a.sum())\n\
        del a";
    assert_eq!(
        common::run_python(py, script, a.name().unwrap()),
        "499500.0"
    );
    a.unlink().unwrap();
}

#[test]
fn a_forked_child_keeps_no_writable_mapping() {
    fn wait(e: Event) {
        e.wait(Some(LONG));
    }
    let a = SharedArrayMut::<u8>::from_slice(&[1, 2, 3]).unwrap();
    let go = Event::new().unwrap();
    // A forked child copies this process's mappings, but not the array's writable one
    // (MADV_DONTFORK): else F_SEAL_WRITE would be refused while the child lives.
    let mut child = ctx(StartMethod::Fork).process(wait, (go.clone(),));
    child.start().unwrap();
    // Lets the child go on also when an assertion below fails.
    struct SetOnDrop(Event);
    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.set();
        }
    }
    let _go = SetOnDrop(go.clone());
    let frozen = a.freeze().unwrap();
    assert!(frozen.is_write_sealed().unwrap());
    let msg = dumps(&frozen).unwrap();
    // SAFETY: the mapping fails (the point of the test); nothing is reached.
    assert!(unsafe { mp_sys::mmap::Mapping::new(msg.fds[0].as_fd(), 4096) }.is_err());
    go.set();
    child.join().unwrap();
}

fn use_forked_copy(a: std::sync::Arc<std::sync::Mutex<Option<SharedArrayMut<u8>>>>) -> bool {
    let mut g = a.lock().unwrap();
    let a = g.as_mut().unwrap();
    // The parent's handle, copied by fork: private zero pages here, writes reach no one, and
    // it cannot be frozen.
    let zeros = a[..] == [0, 0, 0];
    a[0] = 99;
    zeros && matches!(g.take().unwrap().freeze(), Err(ShmError::ForkedCopy))
}

#[test]
fn a_handle_carried_into_a_forked_child_reaches_nothing_shared() {
    let a = SharedArrayMut::<u8>::from_slice(&[1, 2, 3]).unwrap();
    let shared = std::sync::Arc::new(std::sync::Mutex::new(Some(a)));
    let s2 = shared.clone();
    let mut child = ctx(StartMethod::Fork).process_closure(move || use_forked_copy(s2));
    child.start().unwrap();
    assert!(child.join().unwrap());
    // The parent's handle is untouched.
    assert_eq!(&shared.lock().unwrap().as_ref().unwrap()[..], [1, 2, 3]);
    let chunks = shared.lock().unwrap().take().unwrap().split(2).unwrap();
    let held = chunks.parts()[0].attach().unwrap();
    let mut child = ctx(StartMethod::Fork).process_closure(move || {
        let mut c = held;
        let zeros = c[..] == [0, 0];
        c[1] = 42;
        // Not attached here: the claim is the parent's (dropping this copy releases nothing).
        !c.is_attached() && zeros
    });
    child.start().unwrap();
    assert!(child.join().unwrap());
    // The closure's copy in this process, dropped with the child's handle, released it.
    drop(child);
    let a = chunks.join().unwrap();
    assert_eq!(&a[..], [1, 2, 3]);
}

/// `ndarray` views and `SharedNdArray` (feature `ndarray`; `.ci/run` runs them).
#[cfg(feature = "ndarray")]
mod nd {
    use mp_shm::{Chunk, SharedArray, SharedArrayMut, SharedNdArray};
    use mp_spawn::StartMethod;
    use mp_spawn::reduction::{dumps, loads};
    use mp_spawn::testing::ctx;
    use ndarray::{Array2, Array3, Ix2, Ix3, s};

    mp_spawn::test_matrix!(
        an_array2_is_shared_in_one_call,
        rows_of_a_2d_array_are_filled_by_children,
    );

    fn column_sums(m: SharedNdArray<f64, Ix2>) -> Vec<f64> {
        m.view().sum_axis(ndarray::Axis(0)).to_vec()
    }

    fn an_array2_is_shared_in_one_call(m: StartMethod) {
        let a = Array2::from_shape_fn((100, 3), |(i, j)| (i * 3 + j) as f64);
        let shared = SharedArray::from_ndarray(&a).unwrap();
        assert_eq!(shared.view(), a);
        let mut p = ctx(m).process(column_sums, (shared.clone(),));
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), a.sum_axis(ndarray::Axis(0)).to_vec());
    }

    const COLS: usize = 5;

    fn fill_rows(mut c: Chunk<i32>) {
        let first_row = c.range().start / COLS;
        let rows = c.len() / COLS;
        let mut v = c.view_mut((rows, COLS)).unwrap();
        for ((r, col), x) in v.indexed_iter_mut() {
            *x = ((first_row + r) * 10 + col) as i32;
        }
    }

    fn rows_of_a_2d_array_are_filled_by_children(m: StartMethod) {
        // 7 rows of 5 in chunks of 3 rows: the last chunk has one row.
        let chunks = SharedArrayMut::<i32>::zeroed(7 * COLS)
            .unwrap()
            .split(3 * COLS)
            .unwrap();
        let mut children: Vec<_> = chunks
            .parts()
            .into_iter()
            .map(|c| ctx(m).process(fill_rows, (c,)))
            .collect();
        for c in &mut children {
            c.start().unwrap();
        }
        for c in &mut children {
            c.join().unwrap();
        }
        let mut a = chunks.join().unwrap();
        let v = a.view_mut((7, COLS)).unwrap();
        assert_eq!(v[[6, 4]], 64);
        assert_eq!(v.row(2).to_vec(), [20, 21, 22, 23, 24]);
    }

    #[test]
    fn views_and_shapes() {
        let a = SharedArray::from_slice(&(0..24).collect::<Vec<u16>>()).unwrap();
        let v = a.view((2, 3, 4)).unwrap();
        assert_eq!(v[[1, 2, 3]], 23);
        assert!(matches!(a.view((5, 5)), Err(mp_shm::ShmError::Shape(_))));
        // A non-standard layout is shared in row-major order.
        let t = Array3::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 12 + j * 4 + k) as u16);
        let transposed = t.t();
        let shared = SharedNdArray::from_array(&transposed).unwrap();
        assert_eq!(shared.view(), transposed);
        assert_eq!(shared.shape(), [4, 3, 2]);
        let sliced = t.slice(s![.., 1.., ..2]);
        assert_eq!(SharedNdArray::from_array(&sliced).unwrap().view(), sliced);
        // Received with the wrong number of dimensions: refused.
        let msg = dumps(&shared).unwrap();
        let e = loads::<SharedNdArray<u16, Ix2>>(&msg.bytes, msg.fds).unwrap_err();
        assert!(e.to_string().contains("dimensions"), "{e}");
        let msg = dumps(&shared).unwrap();
        let back: SharedNdArray<u16, Ix3> = loads(&msg.bytes, msg.fds).unwrap();
        assert_eq!(back.view(), transposed);
    }
}
