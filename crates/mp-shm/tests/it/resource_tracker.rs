//! The resource tracker: a segment that its process tree created and never unlinked is
//! unlinked once the whole tree is gone, whether its processes were killed, panicked or just
//! returned; under all three start methods. Each case runs in a fresh process tree: this test
//! binary re-runs itself as the tree's root (`tree_root` below), which starts the creating
//! child, so that the tracker of the tree is not the test binary's own.

use std::io::{BufRead, BufReader};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mp_shm::{Event, RawArray, SharedMemory};
use mp_spawn::StartMethod;
use mp_spawn::testing::{ctx, park_forever};

mp_spawn::test_matrix!(
    creator_killed,
    creator_panics,
    creator_returns_without_unlinking,
    untracked_segment_outlives_its_creator,
    unlinked_segment_is_forgotten,
    segment_made_by_a_child_outlives_it,
);

const LONG: Duration = Duration::from_secs(30);

/// Where a child writes the name of the segment it made (a RawArray of bytes, NUL-padded).
fn publish(name: &str, out: &RawArray<u8>, ready: &Event) {
    for (i, b) in name.bytes().enumerate() {
        out.set(i, b).unwrap();
    }
    ready.set();
}

fn read_name(out: &RawArray<u8>, ready: &Event) -> String {
    assert!(
        ready.wait(Some(LONG)),
        "the child never published its segment"
    );
    let bytes: Vec<u8> = out.to_vec().into_iter().take_while(|b| *b != 0).collect();
    String::from_utf8(bytes).unwrap()
}

fn exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

/// Waits (bounded) for the tracker to unlink `name` after its creator's death: woken by
/// inotify on each deletion in /dev/shm, not by polling.
fn gone_soon(name: &str) -> bool {
    // SAFETY: inotify_init1 returns a new descriptor or -1.
    let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
    assert!(
        fd >= 0,
        "inotify_init1: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the descriptor is new and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: a valid C string and our inotify descriptor.
    let watch =
        unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c"/dev/shm".as_ptr(), libc::IN_DELETE) };
    assert!(
        watch >= 0,
        "inotify_add_watch: {}",
        std::io::Error::last_os_error()
    );
    let deadline = Instant::now() + LONG;
    // Checked after the watch is in place, so no deletion goes unseen.
    while exists(name) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut pfd = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        let mut events = [0u8; 4096];
        if pfd.revents != 0 {
            // SAFETY: reading inotify events into a local buffer of the given size.
            unsafe { libc::read(fd.as_raw_fd(), events.as_mut_ptr().cast(), events.len()) };
        }
    }
    true
}

enum End {
    Park,
    Panic,
    Return,
    Forget,
}

fn create_then(end: u8, track: bool, out: RawArray<u8>, ready: Event) {
    if end == End::Forget as u8 {
        return create_unlink_recreate(&out, &ready);
    }
    let shm = SharedMemory::options()
        .track(track)
        .create(1 << 20)
        .unwrap();
    shm.write_at(0, b"data").unwrap();
    publish(shm.name(), &out, &ready);
    match [End::Park, End::Panic, End::Return]
        .into_iter()
        .nth(end as usize)
    {
        Some(End::Park) => park_forever(),
        Some(End::Panic) => panic!("the creator panics"),
        _ => std::mem::forget(shm), // not even closed
    }
}

fn run_creator(m: StartMethod, end: u8, track: bool) -> String {
    let (out, ready) = (RawArray::<u8>::zeroed(64).unwrap(), Event::new().unwrap());
    let mut p = ctx(m).process(create_then, (end, track, out.clone(), ready.clone()));
    p.set_daemon(true).unwrap();
    p.start().unwrap();
    let name = read_name(&out, &ready);
    assert!(exists(&name));
    if end == End::Park as u8 {
        p.kill().unwrap();
    }
    let _ = p.join_timeout(LONG);
    assert!(!p.is_alive().unwrap());
    name
}

/// Not a test on its own: the root of a fresh process tree for the tests above. It runs a
/// creator under `MP_TREE_METHOD`, prints the segment's name, and then, for `Park`, waits to
/// be killed itself.
#[test]
#[ignore = "run by the tests of this file in a fresh process"]
fn tree_root() {
    let (Ok(method), Ok(end)) = (
        std::env::var("MP_TREE_METHOD"),
        std::env::var("MP_TREE_END"),
    ) else {
        return;
    };
    let m = ctx_method(&method);
    let end: u8 = end.parse().unwrap();
    let (out, ready) = (RawArray::<u8>::zeroed(64).unwrap(), Event::new().unwrap());
    let mut p = ctx(m).process(create_then, (end, true, out.clone(), ready.clone()));
    p.set_daemon(true).unwrap();
    p.start().unwrap();
    let name = read_name(&out, &ready);
    println!("NAME {name}");
    if end == End::Park as u8 {
        park_forever();
    }
    let _ = p.join_timeout(LONG);
}

fn ctx_method(name: &str) -> StartMethod {
    [
        StartMethod::Fork,
        StartMethod::Spawn,
        StartMethod::Forkserver,
    ]
    .into_iter()
    .find(|m| m.name() == name)
    .unwrap()
}

/// Runs `tree_root` in a fresh process; kills that whole tree for `Park`; returns the name.
fn run_tree(m: StartMethod, end: End) -> String {
    let park = matches!(end, End::Park);
    let mut root = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "resource_tracker::tree_root",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MP_TREE_METHOD", m.name())
        .env("MP_TREE_END", (end as u8).to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = BufReader::new(root.stdout.take().unwrap()).lines();
    let name = lines
        .map_while(Result::ok)
        // libtest may print "test tree_root ... " on the same line first.
        .find_map(|l| {
            l.split_once("NAME ")
                .map(|(_, name)| name.trim().to_owned())
        });
    if park {
        // SIGKILL of the root: its daemon child dies with it.
        root.kill().unwrap();
    }
    root.wait().unwrap();
    name.expect("the tree root printed no segment name")
}

fn creator_killed(m: StartMethod) {
    let name = run_tree(m, End::Park);
    assert!(gone_soon(&name), "{name} leaked after SIGKILL");
}

fn creator_panics(m: StartMethod) {
    let name = run_tree(m, End::Panic);
    assert!(gone_soon(&name), "{name} leaked after a panic");
}

fn creator_returns_without_unlinking(m: StartMethod) {
    let name = run_tree(m, End::Return);
    assert!(gone_soon(&name), "{name} leaked after a normal exit");
}

/// In our own tree, a segment a child made and did not unlink outlives the child (the tree's
/// tracker keeps it until the tree ends), as in Python.
fn segment_made_by_a_child_outlives_it(m: StartMethod) {
    let name = run_creator(m, End::Return as u8, true);
    let shm = SharedMemory::attach(&name).unwrap();
    shm.unlink().unwrap();
}

fn untracked_segment_outlives_its_creator(m: StartMethod) {
    let name = run_creator(m, End::Park as u8, false);
    let shm = SharedMemory::attach(&name).unwrap();
    let mut buf = [0u8; 4];
    shm.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"data");
    shm.unlink().unwrap();
    assert!(!exists(&name));
}

/// Tracked, unlinked, then made again, untracked, under the same name: the tracker was told
/// to forget the name and must leave the new segment alone. A tracked sentinel whose name sorts
/// after every `psm_` name is unlinked last at the end of the tree, so its disappearance says
/// that the tracker has done its pass.
fn create_unlink_recreate(out: &RawArray<u8>, ready: &Event) {
    let shm = SharedMemory::create(4096).unwrap();
    let name = shm.name().to_owned();
    shm.unlink().unwrap();
    let again = SharedMemory::options()
        .name(name.as_str())
        .track(false)
        .create(4096)
        .unwrap();
    let sentinel = SharedMemory::options()
        .name(format!("zz_mp_sentinel_{}", std::process::id()))
        .create(1)
        .unwrap();
    publish(&format!("{} {}", again.name(), sentinel.name()), out, ready);
}

fn unlinked_segment_is_forgotten(m: StartMethod) {
    let names = run_tree(m, End::Forget);
    let (name, sentinel) = names.split_once(' ').unwrap();
    assert!(gone_soon(sentinel), "the tree's tracker never did its pass");
    assert!(
        exists(name),
        "the tracker unlinked a segment it was told to forget"
    );
    SharedMemory::attach(name).unwrap().unlink().unwrap();
}
