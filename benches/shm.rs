//! Shared state and locks: a `Value` incremented under its lock by two processes, an
//! uncontended `Lock`, 256 MiB of `SharedMemory` written by a child and checksummed by the
//! parent, and `SharedMemory` create+unlink of 1 MiB; each beside the OS doing the same
//! through libc directly (a process-shared pthread mutex, shm_open + mmap), in the same run;
//! and `SharedDict` get + set of one key from a child (Python: `Manager().dict()`).

use std::ffi::CString;
use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use mp::{Lock, Process, Queue, RawArray, SharedDict, SharedMemory, Value};

mod common;
use common::{ctx, start, tune};

const MIB: usize = 1 << 20;
const FILL: usize = 256 * MIB;

/// Runs `round(n)` for every `n` on `control` until a 0, then reports each round on `done`.
fn rounds(control: &Queue<u64>, done: &Queue<u64>, mut round: impl FnMut(u64)) {
    loop {
        let n = control.get().expect("get");
        if n == 0 {
            return;
        }
        round(n);
        done.put(n).expect("put");
    }
}

// --- Value under its lock, two processes --------------------------------------------------------

fn incr_value(control: Queue<u64>, done: Queue<u64>, v: Value<u64>) {
    rounds(&control, &done, |n| {
        for _ in 0..n {
            v.update(|x| *x += 1).expect("update");
        }
    });
}

/// The OS baseline's shared block: a process-shared (not robust) pthread mutex, then a u64.
fn raw_mutex(block: &RawArray<u8>) -> *mut libc::pthread_mutex_t {
    block.as_ptr().cast()
}

fn raw_counter(block: &RawArray<u8>) -> *mut u64 {
    // SAFETY: the block is 128 bytes; the counter sits at 64, past the 40-byte mutex.
    unsafe { block.as_ptr().add(64).cast() }
}

fn init_raw_mutex(block: &RawArray<u8>) {
    // SAFETY: a fresh, zeroed, page-aligned block that no other process uses yet.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_mutex_init(raw_mutex(block), &attr);
    }
}

fn incr_raw(control: Queue<u64>, done: Queue<u64>, block: RawArray<u8>) {
    let (m, counter) = (raw_mutex(&block), raw_counter(&block));
    rounds(&control, &done, |n| {
        for _ in 0..n {
            // SAFETY: the mutex was initialised by the parent and stays mapped; the counter is
            // only touched under it.
            unsafe {
                libc::pthread_mutex_lock(m);
                *counter += 1;
                libc::pthread_mutex_unlock(m);
            }
        }
    });
}

fn two_processes(b: &mut criterion::Bencher<'_>, controls: &[Queue<u64>; 2], done: &Queue<u64>) {
    b.iter_custom(|iters| {
        let each = iters.div_ceil(2).max(1);
        let t = Instant::now();
        for c in controls {
            c.put(each).expect("put");
        }
        for _ in 0..2 {
            done.get().expect("get");
        }
        // Per increment, over both processes.
        t.elapsed() / 2
    });
}

fn value_lock(c: &mut Criterion) {
    let mut group = c.benchmark_group("value_lock");
    tune(&mut group, 20, 3);

    let controls = [Queue::new().expect("queue"), Queue::new().expect("queue")];
    let done = Queue::new().expect("queue");
    let v = Value::new(0u64).expect("value");
    let children: Vec<_> = controls
        .iter()
        .map(|cq| start(ctx().process(incr_value, (cq.clone(), done.clone(), v.clone()))))
        .collect();
    group.bench_function("incr_2proc", |b| two_processes(b, &controls, &done));
    finish(children, &controls);

    let block = RawArray::<u8>::zeroed(128).expect("block");
    init_raw_mutex(&block);
    let children: Vec<_> = controls
        .iter()
        .map(|cq| start(ctx().process(incr_raw, (cq.clone(), done.clone(), block.clone()))))
        .collect();
    group.bench_function("pthread_2proc", |b| two_processes(b, &controls, &done));
    finish(children, &controls);
    group.finish();
}

fn finish(children: Vec<Process<()>>, controls: &[Queue<u64>]) {
    for c in controls {
        c.put(0).expect("put");
    }
    for mut p in children {
        p.join().expect("join");
    }
}

// --- Uncontended lock -------------------------------------------------------------------------

fn lock_uncontended(c: &mut Criterion) {
    let mut group = c.benchmark_group("lock_uncontended");
    tune(&mut group, 100, 2);
    let lock = Lock::new().expect("lock");
    group.bench_function("acquire_release", |b| {
        b.iter(|| {
            black_box(lock.acquire(true, None).expect("acquire"));
            lock.release().expect("release");
        })
    });
    group.bench_function("guard", |b| {
        b.iter(|| drop(black_box(lock.lock().expect("lock"))))
    });
    let block = RawArray::<u8>::zeroed(128).expect("block");
    init_raw_mutex(&block);
    let m = raw_mutex(&block);
    let robust = RawArray::<u8>::zeroed(128).expect("block");
    // SAFETY: a fresh, zeroed, page-aligned block that no one else uses.
    unsafe {
        let mut attr: libc::pthread_mutexattr_t = std::mem::zeroed();
        libc::pthread_mutexattr_init(&mut attr);
        libc::pthread_mutexattr_setpshared(&mut attr, libc::PTHREAD_PROCESS_SHARED);
        libc::pthread_mutexattr_setrobust(&mut attr, libc::PTHREAD_MUTEX_ROBUST);
        libc::pthread_mutex_init(raw_mutex(&robust), &attr);
    }
    let rm = raw_mutex(&robust);
    let ours = RawArray::<u8>::zeroed(128).expect("block");
    let om = raw_mutex(&ours).cast::<mp_sys::robust_mutex::RawMutex>();
    // SAFETY: a fresh block no one else uses.
    unsafe { mp_sys::robust_mutex::init(om).expect("init") };
    group.bench_function("sys_errorcheck_robust", |b| {
        b.iter(|| {
            // SAFETY: an initialised robust mutex in a live mapping, locked then unlocked here.
            unsafe {
                let _ = mp_sys::robust_mutex::lock(black_box(om));
                let _ = mp_sys::robust_mutex::unlock(om);
            }
        })
    });
    group.bench_function("pthread_robust", |b| {
        b.iter(|| {
            // SAFETY: an initialised robust mutex in a live mapping.
            unsafe {
                libc::pthread_mutex_lock(black_box(rm));
                libc::pthread_mutex_unlock(rm);
            }
        })
    });
    group.bench_function("pthread", |b| {
        b.iter(|| {
            // SAFETY: an initialised process-shared mutex in a live mapping.
            unsafe {
                libc::pthread_mutex_lock(black_box(m));
                libc::pthread_mutex_unlock(m);
            }
        })
    });
    group.finish();
}

// --- 256 MiB written by a child, checksummed by the parent ------------------------------------

fn fill_segment(control: Queue<u64>, done: Queue<u64>, mut shm: SharedMemory) {
    rounds(&control, &done, |n| {
        // SAFETY: the parent reads the segment only after this round is reported done.
        unsafe { shm.as_mut_slice() }.fill(n as u8);
    });
}

fn checksum(bytes: &[u8]) -> u64 {
    bytes
        .chunks_exact(8)
        .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
        .fold(0u64, u64::wrapping_add)
}

fn shm_fill(c: &mut Criterion) {
    let mut group = c.benchmark_group("shm_fill");
    tune(&mut group, 10, 5);
    let mut shm = SharedMemory::create(FILL).expect("create");
    let (control, done) = (Queue::new().expect("queue"), Queue::new().expect("queue"));
    let child = start(ctx().process(
        fill_segment,
        (
            control.clone(),
            done.clone(),
            SharedMemory::attach(shm.name()).expect("attach"),
        ),
    ));
    group.bench_function("256mib_child_fills_parent_sums", |b| {
        let mut round = 0u64;
        b.iter(|| {
            round = round % 250 + 1;
            control.put(round).expect("put");
            done.get().expect("get");
            // SAFETY: the child finished writing this round.
            black_box(checksum(unsafe { shm.as_slice() }))
        })
    });
    finish(vec![child], &[control]);
    // The limit: the same fill and checksum of the same mapping, in one process.
    group.bench_function("256mib_one_process", |b| {
        let mut round = 0u8;
        b.iter(|| {
            round = round.wrapping_add(1);
            // SAFETY: no other process uses the segment any more.
            unsafe { shm.as_mut_slice() }.fill(round);
            // SAFETY: as above.
            black_box(checksum(unsafe { shm.as_slice() }))
        })
    });
    shm.unlink().expect("unlink");
    group.finish();
}

// --- create + unlink of 1 MiB -----------------------------------------------------------------

fn shm_create(c: &mut Criterion) {
    let mut group = c.benchmark_group("shm_create");
    tune(&mut group, 100, 2);
    group.bench_function("1mib_create_unlink", |b| {
        b.iter(|| {
            let shm = SharedMemory::create(MIB).expect("create");
            shm.unlink().expect("unlink");
        })
    });
    let name = CString::new(format!("/mp_bench_{}", std::process::id())).expect("name");
    group.bench_function("1mib_libc", |b| {
        b.iter(|| {
            // SAFETY: plain libc calls on a name and a descriptor of our own; the mapping is
            // unmapped before the descriptor is closed.
            unsafe {
                let fd = libc::shm_open(
                    name.as_ptr(),
                    libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
                    0o600,
                );
                assert!(fd >= 0, "shm_open");
                libc::ftruncate(fd, MIB as libc::off_t);
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    MIB,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                );
                libc::close(fd);
                libc::munmap(p, MIB);
                libc::shm_unlink(name.as_ptr());
            }
        })
    });
    group.finish();
}

// --- SharedDict get + set of one key -----------------------------------------------------------

/// One op: a get of the key and a set of it (Python's `d["k"] = d.get("k", 0) + 1`).
fn get_set(d: &SharedDict<String, u64>) {
    let v = d.get("k").expect("get").unwrap_or(0);
    d.insert("k".to_owned(), v + 1).expect("insert");
}

fn dict_child(control: Queue<u64>, done: Queue<u64>, d: SharedDict<String, u64>) {
    rounds(&control, &done, |n| {
        for _ in 0..n {
            get_set(&d);
        }
    });
}

fn shared_dict(c: &mut Criterion) {
    let mut group = c.benchmark_group("shared_dict");
    tune(&mut group, 20, 3);
    let d = SharedDict::<String, u64>::new().expect("dict");
    let (control, done) = (Queue::new().expect("queue"), Queue::new().expect("queue"));
    let child = start(ctx().process(dict_child, (control.clone(), done.clone(), d.clone())));
    group.bench_function("get_set_child", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            control.put(iters).expect("put");
            done.get().expect("get");
            t.elapsed()
        })
    });
    finish(vec![child], &[control]);
    // The same work in this process: what the child's figure loses to the queue round trip.
    group.bench_function("get_set_this_process", |b| {
        b.iter(|| get_set(black_box(&d)))
    });
    group.finish();
}

// --- Manager dict get + set of one key --------------------------------------------------------

/// One op on a managed dict: a get of the key and a set of it (two calls to the server).
fn manager_get_set(d: &mp::managers::Dict<String, u64>) {
    let k = "k".to_owned();
    let v = d.get(&k).expect("get").unwrap_or(0);
    d.insert(k, v + 1).expect("insert");
}

fn manager_dict_child(control: Queue<u64>, done: Queue<u64>, d: mp::managers::Dict<String, u64>) {
    rounds(&control, &done, |n| {
        for _ in 0..n {
            manager_get_set(&d);
        }
    });
}

fn manager_dict(c: &mut Criterion) {
    let mut group = c.benchmark_group("manager_dict");
    tune(&mut group, 10, 3);
    // On one host the calls go through shared-memory rings; over TCP (a remote manager, here
    // on loopback) through the socket.
    let local = mp::Manager::new().expect("manager");
    let tcp = mp::Manager::listen(
        &mp::Address::Tcp("127.0.0.1:0".parse().expect("address")),
        b"bench",
    )
    .expect("manager");
    for (name, manager) in [("get_set_child", &local), ("get_set_child_tcp", &tcp)] {
        let d = manager.dict::<String, u64>().expect("dict");
        let (control, done) = (Queue::new().expect("queue"), Queue::new().expect("queue"));
        let child = start(ctx().process(
            manager_dict_child,
            (control.clone(), done.clone(), d.clone()),
        ));
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let t = Instant::now();
                control.put(iters).expect("put");
                done.get().expect("get");
                t.elapsed()
            })
        });
        finish(vec![child], &[control]);
    }
    group.finish();
}

criterion_group!(
    benches,
    lock_uncontended,
    value_lock,
    shm_create,
    shm_fill,
    shared_dict,
    manager_dict
);
criterion_main!(benches);
