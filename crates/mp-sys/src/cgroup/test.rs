use std::path::{Path, PathBuf};

use super::*;

const MOUNTINFO_HYBRID: &[u8] = b"\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
";

const MOUNTINFO_NAMESPACED: &[u8] = b"\
600 500 0:26 /docker/abc /sys/fs/cgroup ro,nosuid master:5 - cgroup2 cgroup rw,nsdelegate
";

#[test]
fn the_unified_line_of_proc_self_cgroup() {
    let hybrid = b"9:name=systemd:/\n4:memory:/process_api/a75\n0::/\n";
    assert_eq!(unified_path(hybrid), Some(PathBuf::from("/")));
    let unified = b"0::/user.slice/user-1000.slice/session-2.scope\n";
    assert_eq!(
        unified_path(unified),
        Some(PathBuf::from("/user.slice/user-1000.slice/session-2.scope"))
    );
    assert_eq!(unified_path(b"4:memory:/x\n"), None);
}

#[test]
fn a_cgroup2_mount_and_its_root() {
    let mounts: Vec<_> = MOUNTINFO_HYBRID
        .split(|b| *b == b'\n')
        .filter_map(cgroup2_mount)
        .collect();
    assert_eq!(
        mounts,
        [(PathBuf::from("/"), PathBuf::from("/sys/fs/cgroup/unified"))]
    );
    // Spaces in a mount point are written as \040.
    let line = b"41 31 0:38 / /mnt/my\\040cgroups rw - cgroup2 none rw";
    assert_eq!(
        cgroup2_mount(line).map(|m| m.1),
        Some(PathBuf::from("/mnt/my cgroups"))
    );
    assert_eq!(cgroup2_mount(b"garbage"), None);
}

#[test]
fn own_cgroup_under_the_mount_that_shows_it() {
    let own = locate(MOUNTINFO_HYBRID, Path::new("/")).unwrap();
    assert_eq!(own.path(), Path::new("/sys/fs/cgroup/unified"));
    assert_eq!(own.parent(), None);
    let deep = locate(MOUNTINFO_HYBRID, Path::new("/a/b")).unwrap();
    assert_eq!(deep.path(), Path::new("/sys/fs/cgroup/unified/a/b"));
    assert_eq!(
        deep.parent().map(|p| p.path().to_owned()),
        Some(PathBuf::from("/sys/fs/cgroup/unified/a"))
    );
    // A mount of a sub-tree (a container's view without a cgroup namespace).
    let inside = locate(MOUNTINFO_NAMESPACED, Path::new("/docker/abc/worker")).unwrap();
    assert_eq!(inside.path(), Path::new("/sys/fs/cgroup/worker"));
    assert_eq!(locate(MOUNTINFO_NAMESPACED, Path::new("/elsewhere")), None);
}

#[test]
fn flat_keyed_counters() {
    let events = "low 0\nhigh 3\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n";
    assert_eq!(flat_keyed(events, "oom_kill"), Some(1));
    assert_eq!(flat_keyed(events, "oom"), Some(2));
    assert_eq!(flat_keyed(events, "nope"), None);
}

#[test]
fn own_cgroup_of_this_process_if_any() {
    // This machine may have no cgroup2 at all: only the error's kind is fixed.
    match Cgroup::own() {
        Ok(own) => assert!(own.path().is_dir(), "{own:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}"),
    }
}
