//! Caps on memory and CPU time under all three start methods (issue #26 item 4): a child that
//! goes past one, one that stays under, and the endings a cap must not change. Nothing here
//! waits on the clock: a spinning child measures its own CPU time, and a capped one spins or
//! allocates until the kernel stops it.

use std::hint::black_box;
use std::os::fd::AsFd;
use std::time::Duration;

use mp_spawn::limits::{cgroup_memory, cpu_budget_from_now};
use mp_spawn::{LimitHit, Limits, ProcessError, StartMethod};
use mp_sys::resource::{Resource, cpu_time, limit};

use super::ctx;

matrix!(
    memory_cap_stops_a_runaway_allocation,
    under_the_memory_cap_the_value_comes_back,
    cpu_cap_stops_a_spinning_child,
    a_panic_under_a_memory_cap_is_still_a_panic,
    an_abort_under_a_memory_cap_is_no_memory_limit,
    a_stack_overflow_under_a_memory_cap_is_still_a_stack_overflow,
    cpu_budget_from_now_rearms,
    the_caps_are_set_before_the_target_runs,
    shared_memory_and_threads_do_not_count_toward_the_memory_cap,
    a_cgroup_caps_touched_shared_memory,
);

const CAP: u64 = 64 << 20;
const MIB: u64 = 1 << 20;

/// Allocates `mib` MiB, one at a time, touching every page; returns how many it holds.
fn allocate(mib: usize) -> usize {
    let mut blocks = Vec::with_capacity(mib);
    for _ in 0..mib {
        blocks.push(vec![1u8; 1 << 20]);
    }
    black_box(&blocks);
    blocks.len()
}

fn memory_cap_stops_a_runaway_allocation(m: StartMethod) {
    let mut p = ctx(m)
        .process(allocate, (1024,))
        .with_limits(Limits::new().memory(CAP));
    p.start().unwrap();
    match p.join() {
        Err(ProcessError::MemoryLimit { limit }) => assert_eq!(limit, CAP),
        other => panic!("expected MemoryLimit, got {other:?}"),
    }
    assert_eq!(p.limit_hit(), Some(LimitHit::Memory { limit: CAP }));
    // A failed allocation aborts; a cgroup's OOM kill is a SIGKILL.
    let code = p.exitcode().unwrap();
    assert!(matches!(code, Some(-6) | Some(-9)), "{code:?}");
}

fn under_the_memory_cap_the_value_comes_back(m: StartMethod) {
    let mut p = ctx(m)
        .process(allocate, (16,))
        .with_limits(Limits::new().memory(CAP));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 16);
    assert_eq!(p.limit_hit(), None);
}

fn spin_forever() {
    let mut x = 0u64;
    loop {
        x = black_box(x.wrapping_mul(31).wrapping_add(7));
    }
}

fn cpu_cap_stops_a_spinning_child(m: StartMethod) {
    let budget = Duration::from_secs(1);
    let mut p = ctx(m)
        .process(spin_forever, ())
        .with_limits(Limits::new().cpu_time(budget).memory(CAP));
    p.start().unwrap();
    match p.join() {
        Err(ProcessError::CpuLimit { limit }) => assert_eq!(limit, budget),
        other => panic!("expected CpuLimit, got {other:?}"),
    }
    assert_eq!(p.exitcode().unwrap(), Some(-libc::SIGXCPU));
    assert_eq!(p.limit_hit(), Some(LimitHit::Cpu { limit: budget }));
}

fn boom() {
    panic!("boom under a cap");
}

fn abort() {
    std::process::abort()
}

/// An abort is a memory cap only when the child reported a failed allocation just before
/// (`oom_guard`): an explicit `abort()` stays a SIGABRT.
fn an_abort_under_a_memory_cap_is_no_memory_limit(m: StartMethod) {
    let mut p = ctx(m)
        .process(abort, ())
        .with_limits(Limits::new().memory(CAP));
    p.start().unwrap();
    match p.join() {
        Err(ProcessError::Killed { signal: 6 }) => {}
        other => panic!("expected Killed by SIGABRT, got {other:?}"),
    }
    assert_eq!(p.limit_hit(), None);
}

fn a_panic_under_a_memory_cap_is_still_a_panic(m: StartMethod) {
    let mut p = ctx(m)
        .process(boom, ())
        .with_limits(Limits::new().memory(CAP));
    p.start().unwrap();
    match p.join() {
        Err(ProcessError::Panicked { message }) => {
            assert!(message.ends_with("boom under a cap"), "{message}")
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(p.exitcode().unwrap(), Some(1));
    assert_eq!(p.limit_hit(), None);
}

#[allow(unconditional_recursion)]
fn deep(n: u64) -> u64 {
    let frame = black_box([n; 16]);
    deep(black_box(n + 1)) + frame[0]
}

fn a_stack_overflow_under_a_memory_cap_is_still_a_stack_overflow(m: StartMethod) {
    let mut p = ctx(m)
        .process(deep, (0,))
        .with_limits(Limits::new().memory(CAP));
    p.start().unwrap();
    assert!(matches!(p.join(), Err(ProcessError::StackOverflow)));
    // Aborted, as a failed allocation: the report tells them apart.
    assert_eq!(p.exitcode().unwrap(), Some(-6));
    assert_eq!(p.limit_hit(), None);
}

/// Spins until this process has used `until` of CPU time in all.
fn spin_until(until: Duration) {
    let mut x = 0u64;
    while cpu_time().unwrap() < until {
        for _ in 0..10_000 {
            x = black_box(x.wrapping_mul(31).wrapping_add(7));
        }
    }
}

/// Uses 0.5 s of CPU, gives itself 1 s more, then uses 0.7 s more: past the cap it started
/// with (1 s). Returns the soft `RLIMIT_CPU` before and after, and the CPU time used.
fn rearm() -> (Option<u64>, Option<u64>, Duration) {
    spin_until(Duration::from_millis(500));
    let before = limit(Resource::CpuSeconds).soft;
    cpu_budget_from_now(Duration::from_secs(1)).unwrap();
    let after = limit(Resource::CpuSeconds).soft;
    spin_until(Duration::from_millis(1200));
    (before, after, cpu_time().unwrap())
}

fn cpu_budget_from_now_rearms(m: StartMethod) {
    // Half a second from (almost) nothing used rounds up to a 1 s limit.
    let limits = Limits::new().cpu_time(Duration::from_millis(500));
    let mut p = ctx(m).process(rearm, ()).with_limits(limits);
    p.start().unwrap();
    let (before, after, used) = p.join().unwrap();
    assert_eq!(before, Some(1));
    // 0.5 s and a bit used, plus 1 s, rounded up.
    assert_eq!(after, Some(2));
    assert!(used >= Duration::from_millis(1200), "{used:?}");
}

/// The child's caps as the target finds them: `RLIMIT_DATA` soft and hard, `VmData`, the
/// soft `RLIMIT_CPU`, and the CPU time used.
fn caps() -> (Option<u64>, Option<u64>, u64, Option<u64>, Duration) {
    let data = limit(Resource::DataBytes);
    let vm_data = mp_sys::resource::data_size().unwrap();
    let cpu = limit(Resource::CpuSeconds);
    (data.soft, data.hard, vm_data, cpu.soft, cpu_time().unwrap())
}

fn the_caps_are_set_before_the_target_runs(m: StartMethod) {
    let limits = Limits::new().memory(CAP).cpu_time(Duration::from_secs(10));
    let mut p = ctx(m).process(caps, ()).with_limits(limits);
    p.start().unwrap();
    let (soft, hard, vm_data, cpu, used) = p.join().unwrap();
    // What the child had when the cap was applied, plus the cap: at most what it has now.
    let soft = soft.expect("a data limit");
    assert_eq!(Some(soft), hard);
    assert!(soft > CAP && soft <= vm_data + CAP, "{soft} {vm_data}");
    // 10 s from what was used then, rounded up: 10 s only if nothing was.
    let cpu = cpu.expect("a CPU limit");
    assert!(cpu == 10 || cpu == 11, "{cpu}");
    assert!(used < Duration::from_secs(cpu - 9), "{used:?}");
}

/// Maps 256 MiB of shared memory (a memfd, as mp's queues and shared arrays are), then starts
/// 8 threads that each allocate; returns `VmSize` and `VmData` in MiB at the start, with the
/// mapping, and with the threads too.
fn map_and_thread() -> [(u64, u64); 3] {
    let start = status_mib();
    let fd = mp_sys::shm::memfd(c"mp-limits-test", 256 * MIB).unwrap();
    // SAFETY: a fresh memfd that nothing reads or writes.
    let map = unsafe { mp_sys::mmap::Mapping::new(fd.as_fd(), (256 * MIB) as usize) }.unwrap();
    let mapped = status_mib();
    let barrier = std::sync::Barrier::new(9);
    let threads = std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                black_box(vec![1u8; 64 << 10]);
                barrier.wait(); // all threads alive
                barrier.wait(); // measured
            });
        }
        barrier.wait();
        let figures = status_mib();
        barrier.wait();
        figures
    });
    drop(map);
    [start, mapped, threads]
}

/// `VmSize` and `VmData` of `/proc/self/status`, in MiB.
fn status_mib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let field = |key: &str| {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        kib / 1024
    };
    (field("VmSize:"), field("VmData:"))
}

/// Why `RLIMIT_DATA` and not `RLIMIT_AS` (docs/DESIGN.md, "Limits"): under a 64 MiB cap, a
/// child maps 256 MiB of shared memory and runs 8 threads, which its address space counts
/// and its data does not.
fn shared_memory_and_threads_do_not_count_toward_the_memory_cap(m: StartMethod) {
    let mut p = ctx(m)
        .process(map_and_thread, ())
        .with_limits(Limits::new().memory(CAP));
    p.start().unwrap();
    let [start, mapped, threads] = p.join().unwrap();
    println!(
        "{m:?} child, VmSize/VmData in MiB: at the start {start:?}, with a 256 MiB memfd \
         mapped {mapped:?}, and 8 threads {threads:?}"
    );
    // The mapping counts toward the address space only.
    assert!(
        mapped.0 >= start.0 + 256 && mapped.1 < start.1 + 8,
        "{start:?} {mapped:?}"
    );
    assert!(threads.0 >= threads.1 + 256, "{threads:?}");
}

/// Maps 256 MiB of shared memory and touches it all: `RLIMIT_DATA` does not count it, a
/// cgroup does. Returns the MiB touched.
fn touch_shared() -> u64 {
    let fd = mp_sys::shm::memfd(c"mp-limits-test", 256 * MIB).unwrap();
    // SAFETY: a fresh memfd that only this function reaches, one byte per page, from one
    // thread.
    let map = unsafe { mp_sys::mmap::Mapping::new(fd.as_fd(), (256 * MIB) as usize) }.unwrap();
    for at in (0..map.len()).step_by(4096) {
        // SAFETY: within the mapping (see above).
        unsafe { map.ptr().add(at).write_volatile(1) };
    }
    256
}

fn a_cgroup_caps_touched_shared_memory(m: StartMethod) {
    if let Err(why) = cgroup_memory() {
        println!("skipped: children get no cgroup of their own here: {why}");
        return;
    }
    let mut p = ctx(m)
        .process(touch_shared, ())
        .with_limits(Limits::new().memory(CAP));
    p.start().unwrap();
    match p.join() {
        Err(ProcessError::MemoryLimit { limit }) => assert_eq!(limit, CAP),
        other => panic!("expected MemoryLimit (an OOM kill in the cgroup), got {other:?}"),
    }
    assert_eq!(p.exitcode().unwrap(), Some(-9));
    assert_eq!(p.limit_hit(), Some(LimitHit::Memory { limit: CAP }));
}

/// A process made by a fork helper (`ForkServer::process`) gets its caps through the
/// bootstrap message, as a forkserver child.
#[test]
fn a_fork_helper_child_is_capped_too() {
    let server = mp_spawn::ForkServer::start().unwrap();
    let mut p = server
        .process(allocate, (1024,))
        .with_limits(Limits::new().memory(CAP));
    p.start().unwrap();
    assert!(matches!(p.join(), Err(ProcessError::MemoryLimit { .. })));
    let mut q = server
        .process(allocate, (16,))
        .with_limits(Limits::new().memory(CAP));
    q.start().unwrap();
    assert_eq!(q.join().unwrap(), 16);
}
