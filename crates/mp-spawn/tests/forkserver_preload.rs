//! A forkserver whose preload hook started a thread refuses to fork, with an error that says
//! why (its fork would copy the locks that thread holds). Its own binary: the preload list
//! and the server are per process.

use mp_spawn::testing::ctx;
use mp_spawn::{ProcessError, StartMethod};

fn start_a_thread() {
    std::thread::spawn(|| {
        loop {
            std::thread::park();
        }
    });
}

fn seven() -> u32 {
    7
}

#[test]
fn a_preload_hook_that_starts_a_thread_is_refused() {
    mp_spawn::set_forkserver_preload(&[start_a_thread]);
    let mut p = ctx(StartMethod::Forkserver).process(seven, ());
    match p.start() {
        Err(ProcessError::Io(e)) => {
            assert!(e.to_string().contains("preload hook"), "{e}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    // The next server, without that hook, forks again.
    mp_spawn::set_forkserver_preload(&[]);
    let server = mp_spawn::forkserver_pid().expect("the server runs");
    // SAFETY: kill with a pid and a signal.
    assert_eq!(unsafe { libc::kill(server as i32, libc::SIGKILL) }, 0);
    let mut p = ctx(StartMethod::Forkserver).process(seven, ());
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 7);
}
