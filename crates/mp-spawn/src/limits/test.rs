use std::path::Path;
use std::time::Duration;

use super::cgroup::{Base, choose_base};
use super::*;

fn words(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn cpu_seconds_round_up() {
    assert_eq!(whole_seconds_up(Duration::ZERO), 0);
    assert_eq!(whole_seconds_up(Duration::from_secs(1)), 1);
    assert_eq!(whole_seconds_up(Duration::from_nanos(1)), 1);
    assert_eq!(whole_seconds_up(Duration::from_millis(1500)), 2);
    assert_eq!(whole_seconds_up(Duration::MAX), u64::MAX);
}

#[test]
fn the_classifier_reads_exit_codes() {
    let both = Limits::new()
        .memory(64 << 20)
        .cpu_time(Duration::from_secs(1));
    let cpu = LimitHit::Cpu {
        limit: Duration::from_secs(1),
    };
    assert_eq!(both.cause(-libc::SIGXCPU), Some(cpu));
    // An abort is no memory cap by its exit code alone (the child's report says so).
    for other in [
        -libc::SIGABRT,
        0,
        1,
        101,
        -libc::SIGKILL,
        -libc::SIGSEGV,
        -libc::SIGTERM,
        i32::MIN,
    ] {
        assert_eq!(both.cause(other), None, "{other}");
    }
    // A cap that was not set is not the cause.
    let cpu_only = Limits::new().cpu_time(Duration::from_secs(1));
    assert_eq!(cpu_only.cause(-libc::SIGABRT), None);
    let memory_only = Limits::new().memory(64 << 20);
    assert_eq!(memory_only.cause(-libc::SIGXCPU), None);
}

#[test]
fn a_limit_hit_becomes_the_matching_error() {
    let e = ProcessError::from(LimitHit::Memory { limit: 64 << 20 });
    assert!(matches!(e, ProcessError::MemoryLimit { limit } if limit == 64 << 20));
    assert_eq!(
        e.to_string(),
        "the process went past its memory limit of 64 MiB"
    );
    let odd = ProcessError::MemoryLimit { limit: 1000 };
    assert_eq!(
        odd.to_string(),
        "the process went past its memory limit of 1000 bytes"
    );
    let e = ProcessError::from(LimitHit::Cpu {
        limit: Duration::from_millis(1500),
    });
    assert!(matches!(e, ProcessError::CpuLimit { .. }));
    assert_eq!(
        e.to_string(),
        "the process used up its CPU time limit of 1.5s"
    );
}

#[test]
fn limits_travel_through_serde() {
    let limits = Limits::new()
        .memory(3 << 30)
        .cpu_time(Duration::from_millis(2500));
    let bytes = postcard::to_stdvec(&limits).unwrap();
    assert_eq!(postcard::from_bytes::<Limits>(&bytes).unwrap(), limits);
    let none = postcard::to_stdvec(&Limits::new()).unwrap();
    assert_eq!(
        postcard::from_bytes::<Limits>(&none).unwrap(),
        Limits::new()
    );
}

#[test]
fn children_cgroups_go_where_memory_is_enabled_for_children() {
    let own = Path::new("/sys/fs/cgroup/app.slice/app.service");
    // The cgroup enables memory for its children (the root, or one without processes).
    let base = choose_base(own, &words("cpu memory pids"), &words("memory pids"), true);
    assert_eq!(base, Ok(Base::Own));
    // The usual delegated case: the parent enables it; children's cgroups go beside this one.
    let base = choose_base(own, &words("cpu io memory pids"), &words(""), true);
    assert_eq!(base, Ok(Base::Parent));
    // The root cgroup with memory available but not enabled for children: not changed by mp.
    let root = Path::new("/sys/fs/cgroup");
    let why = choose_base(root, &words("cpu memory"), &words(""), false).unwrap_err();
    assert!(
        why.contains("does not enable the memory controller"),
        "{why}"
    );
    // cgroup v1 hybrid (this machine): cgroup2 without the memory controller.
    let unified = Path::new("/sys/fs/cgroup/unified");
    let why = choose_base(unified, &words("hugetlb"), &words(""), false).unwrap_err();
    assert!(why.contains("not available"), "{why}");
    assert!(why.contains("\"hugetlb\""), "{why}");
}

#[test]
fn cgroup_detection_answers_without_panicking() {
    // What this machine gives; both answers are legitimate.
    match cgroup_memory() {
        Ok(base) => {
            println!("children's cgroups go under {}", base.display());
            assert!(base.is_dir());
        }
        Err(why) => {
            println!("no cgroup for children: {why}");
            assert!(!why.is_empty());
        }
    }
    // Found once: the same answer again.
    assert_eq!(cgroup_memory(), cgroup_memory());
}

#[test]
fn cpu_budget_sets_the_soft_limit_from_the_time_used() {
    use mp_sys::resource::{Resource, limit};
    let before = limit(Resource::CpuSeconds);
    // Generous: this test process must not be stopped by it; restored below.
    cpu_budget_from_now(Duration::from_secs(100_000)).unwrap();
    let used = mp_sys::resource::cpu_time().unwrap();
    let set = limit(Resource::CpuSeconds);
    assert_eq!(set.hard, before.hard);
    let soft = set.soft.unwrap();
    assert!(soft >= 100_000 + used.as_secs().saturating_sub(1), "{soft}");
    assert!(soft <= 100_001 + used.as_secs(), "{soft}");
    mp_sys::resource::set_limit(Resource::CpuSeconds, before).unwrap();
}
