//! Helper processes (`mp_spawn::helper`): started from this executable, caught by the one
//! pre-`main` entry, found by name, and run instead of `main`; from the main process and from
//! a child of every start method.

use std::os::fd::{AsFd, OwnedFd};

use mp_spawn::StartMethod;
use mp_spawn::helper::{HELPERS, Helper, start_helper};

/// Echoes what it reads, upper-cased (so a test sees that this code ran, not `main`), until
/// end-of-file; then exits 7.
fn shout(channel: OwnedFd) -> ! {
    let mut buf = [0u8; 256];
    while let Ok(n @ 1..) = mp_sys::fd::read(channel.as_fd(), &mut buf) {
        buf[..n].make_ascii_uppercase();
        if mp_sys::fd::write_all(channel.as_fd(), &buf[..n]).is_err() {
            break;
        }
    }
    mp_sys::process::exit_now(7)
}

#[linkme::distributed_slice(HELPERS)]
static SHOUT: Helper = Helper {
    name: c"mp-test-shout",
    run: shout,
};

/// Starts the helper, talks to it, closes the channel and returns the helper's exit code.
fn round_trip(text: &str) -> (String, i32) {
    let (channel, pid) = start_helper(&SHOUT).expect("the helper starts");
    let pidfd = mp_sys::pidfd::open(pid).expect("a pidfd");
    mp_sys::fd::write_all(channel.as_fd(), text.as_bytes()).unwrap();
    let mut got = Vec::new();
    while got.len() < text.len() {
        let n = mp_sys::fd::read_append(channel.as_fd(), &mut got, 256).unwrap();
        assert!(n > 0, "the helper hung up early");
    }
    drop(channel);
    mp_sys::poll::readable(&[pidfd.as_fd()], None).unwrap();
    let code = mp_sys::pidfd::reap(pidfd.as_fd()).unwrap().expect("ended");
    (String::from_utf8(got).unwrap(), code)
}

#[test]
fn a_helper_runs_its_code_not_main_and_ends_at_end_of_file() {
    assert_eq!(round_trip("hello helper"), ("HELLO HELPER".to_owned(), 7));
}

#[test]
fn helpers_are_found_by_name() {
    assert!(HELPERS.iter().any(|h| h.name == c"mp-test-shout"));
}

fn from_a_child(text: String) -> (String, i32) {
    round_trip(&text)
}

mp_spawn::test_matrix!(a_child_starts_a_helper);

fn a_child_starts_a_helper(m: StartMethod) {
    let ctx = mp_spawn::get_context(m).unwrap();
    let mut p = ctx.process(from_a_child, ("from a child".to_owned(),));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), ("FROM A CHILD".to_owned(), 7));
}
