//! A child that logs after the listening process died (SIGKILL-like: `_exit`, no cleanup) does
//! not hang: its sends fail and its events are dropped. Under fork the child inherited the
//! listener's socket end; the child-start hook closes that copy, else the socket would stay
//! open and the child would block once the buffer is full.

use std::os::fd::AsFd;
use std::time::Duration;

use mp_spawn::testing::{ctx, wait_gone};
use mp_spawn::{StartMethod, test_matrix};

/// Waits for its parent to die, then logs 5 MB (far more than the socket holds), then
/// reports its pid.
fn orphan(started: mp_spawn::reduction::Fd, done: mp_spawn::reduction::Fd) {
    let _ = mp_sys::fd::write_all(started.as_fd(), b"!");
    drop(started);
    let parent = mp_spawn::parent_process().expect("a child has a parent");
    parent.join(None);
    let filler = "x".repeat(1000);
    for i in 0..5000 {
        tracing::info!(i, "{filler}");
    }
    let _ = mp_sys::fd::write_all(done.as_fd(), &std::process::id().to_le_bytes());
}

/// Listens, starts `orphan`, and dies at once without any cleanup.
fn listener(method: String, done: mp_spawn::reduction::Fd) {
    mp_log::log_to_stderr(tracing::Level::INFO);
    let (started_r, started_w) = mp_sys::fd::pipe().unwrap();
    let mut p = mp_spawn::get_context(method.as_str())
        .unwrap()
        .process(orphan, (started_w.into(), done));
    p.start().unwrap();
    // Once the child runs (a spawned child checks that its parent is alive first).
    let mut byte = [0u8; 1];
    let _ = mp_sys::fd::read(started_r.as_fd(), &mut byte);
    mp_sys::process::exit_now(0)
}

fn a_child_logging_after_the_listening_parent_died_does_not_hang(m: StartMethod) {
    // The orphan comes back to this process, to be reaped here rather than left to init.
    mp_spawn::testing::adopt_orphans();
    let (r, w) = mp_sys::fd::pipe().unwrap();
    let mut p = ctx(m).process(listener, (m.name().to_owned(), w.into()));
    p.start().unwrap();
    p.join().unwrap();
    let hang_guard = Some(Duration::from_secs(60));
    assert!(
        mp_sys::poll::readable(&[r.as_fd()], hang_guard).unwrap()[0],
        "the orphan hung in its logging"
    );
    let mut pid = [0u8; 4];
    assert_eq!(mp_sys::fd::read(r.as_fd(), &mut pid).unwrap(), 4);
    wait_gone(u32::from_le_bytes(pid));
}

test_matrix!(a_child_logging_after_the_listening_parent_died_does_not_hang);
