//! A spawned child that is handed a bad bootstrap reports a typed failure and exits with 1:
//! it never jumps to an address it cannot trust.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::{Bootstrap, MAGIC, Outcome, SPAWN_MARK};
use crate::frame::{self, Codec, Stop};
use crate::popen_spawn::spawn_with_channel;

fn noop() {}

/// Spawns a child, hands it `send` to write on its channel, and returns (its outcome, its exit
/// code).
fn run_with(send: impl FnOnce(BorrowedFd<'_>)) -> (Option<Outcome>, i32) {
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap();
    let pid = spawn_with_channel(c"mp-test", SPAWN_MARK, &theirs).unwrap();
    drop(theirs);
    let pidfd = mp_sys::pidfd::open(pid).unwrap();
    send(ours.as_fd());
    let outcome = Codec::CHANNEL
        .recv(ours.as_fd(), frame::LIMIT, Stop::NEVER)
        .ok()
        .and_then(|(p, _)| postcard::from_bytes(&p).ok());
    mp_sys::poll::readable(&[pidfd.as_fd()], Some(Duration::from_secs(60))).unwrap();
    (
        outcome,
        mp_sys::pidfd::reap(pidfd.as_fd()).unwrap().unwrap(),
    )
}

/// Sends `payload` as a well-formed frame with `fds` (a child that is gone is no error here).
fn frame<'a>(payload: &'a [u8], fds: &'a [BorrowedFd<'a>]) -> impl FnOnce(BorrowedFd<'_>) + 'a {
    move |sock| {
        let _ = Codec::CHANNEL.send(sock, payload, fds);
    }
}

fn bootstrap(exe: crate::identity::FileId, magic: u64) -> Vec<u8> {
    bootstrap_with(exe, magic, other_kind(), Vec::new())
}

fn bootstrap_with(
    exe: crate::identity::FileId,
    magic: u64,
    entry: RawCodeRef,
    args: Vec<u8>,
) -> Vec<u8> {
    let boot = Bootstrap {
        magic,
        exe,
        entry,
        name: "tampered".into(),
        identity: vec![1],
        daemon: false,
        parent_name: "MainProcess".into(),
        parent_pid: mp_sys::process::getpid(),
        shared: Vec::new(),
        limits: None,
        args,
    };
    postcard::to_stdvec(&boot).unwrap()
}

#[test]
fn another_executable_is_refused() {
    let lifeline = mp_sys::fd::pipe().unwrap();
    let boot = bootstrap(crate::identity::FileId { dev: 1, ino: 2 }, MAGIC);
    let (outcome, code) = run_with(frame(&boot, &[lifeline.0.as_fd()]));
    match outcome {
        Some(Outcome::Failed(message)) => {
            assert!(message.contains("different executable"), "{message}")
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert_eq!(code, 1);
}

#[test]
fn a_bad_magic_is_refused() {
    let lifeline = mp_sys::fd::pipe().unwrap();
    let exe = crate::identity::file().unwrap();
    let boot = bootstrap(exe, MAGIC ^ 1);
    let (outcome, code) = run_with(frame(&boot, &[lifeline.0.as_fd()]));
    assert!(matches!(outcome, Some(Outcome::Failed(m)) if m.contains("bad magic")));
    assert_eq!(code, 1);
}

#[test]
fn garbage_is_refused() {
    let (outcome, code) = run_with(frame(b"\xff\xff\xff\xff garbage", &[]));
    assert!(matches!(outcome, Some(Outcome::Failed(m)) if m.contains("malformed")));
    assert_eq!(code, 1);
    // Not even a frame: the child gives up without running anything.
    let (outcome, code) = run_with(|sock| {
        let _ = mp_sys::fd::write_all(sock, b"not a frame at all");
    });
    assert!(outcome.is_none());
    assert_eq!(code, 1);
}

#[test]
fn a_missing_lifeline_is_refused() {
    let exe = crate::identity::file().unwrap();
    let boot = bootstrap(exe, MAGIC);
    let (outcome, code) = run_with(frame(&boot, &[]));
    assert!(matches!(outcome, Some(Outcome::Failed(m)) if m.contains("lifeline")));
    assert_eq!(code, 1);
}

// The pre-`main` entry must never be a gadget (issue #13): every case below hands this very
// test binary a channel and a message it must refuse, and checks that it exits without
// jumping (exit code 1, a message, no signal).

use std::ffi::CStr;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use super::{SERVER_MARK, TRAMPOLINES, entry_ref};
use crate::code::{Kind, RawCodeRef};
use crate::reduction;
use crate::target::Target;
use mp_sys::process::Forked;

fn triple(x: u64) -> u64 {
    3 * x
}

fn offset_of<F, A>(_: F) -> RawCodeRef
where
    F: Target<A>,
    A: serde::de::DeserializeOwned,
    F::Output: serde::Serialize,
{
    entry_ref::<F, A>()
}

type NotEntry = fn(u8) -> u8;
// SAFETY: a fn pointer type.
static NOT_TRAMPOLINES: Kind<NotEntry> = unsafe { Kind::new() };

fn not_a_trampoline(x: u8) -> u8 {
    x
}

/// The reference of a registered function of another kind.
fn other_kind() -> RawCodeRef {
    crate::code_ref!(NOT_TRAMPOLINES, not_a_trampoline).raw()
}

/// A well-formed bootstrap that runs `triple(14)`, and the lifeline read end it needs.
fn triple_bootstrap() -> (Vec<u8>, OwnedFd) {
    // The target's code offset (0: zero-sized) comes first, then the arguments.
    let args = reduction::dumps(&(0i64, (14u64,))).unwrap();
    let boot = bootstrap_with(
        crate::identity::file().unwrap(),
        MAGIC,
        offset_of(triple),
        args.bytes,
    );
    (boot, mp_sys::fd::pipe().unwrap().0)
}

/// The descriptor number the child gets its channel on.
const CHILD_FD: i32 = 200;

/// Runs `exe` as `[exe, mark, "200"]` with `channel` as its descriptor 200, lets `talk` write
/// on `ours`, and returns (exit code, or the signal as a negative number; stderr; peak RSS in
/// KiB).
fn run_marked(
    exe: &std::path::Path,
    mark: &CStr,
    channel: OwnedFd,
    ours: OwnedFd,
    talk: impl FnOnce(BorrowedFd<'_>),
) -> (i32, String, i64) {
    let fd = CHILD_FD.to_string();
    run_args(exe, &[mark.to_str().unwrap(), &fd], channel, ours, talk)
}

/// As [`run_marked`], with the arguments after argv[0] given.
#[expect(
    clippy::zombie_processes,
    reason = "reaped by wait4 below, which also gives the peak RSS"
)]
fn run_args(
    exe: &std::path::Path,
    args: &[&str],
    channel: OwnedFd,
    ours: OwnedFd,
    talk: impl FnOnce(BorrowedFd<'_>),
) -> (i32, String, i64) {
    let raw = channel.as_raw_fd();
    let mut cmd = Command::new(exe);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: dup2 and fcntl are async-signal-safe; `raw` stays open in the parent until spawn
    // returns.
    unsafe {
        cmd.pre_exec(move || {
            if raw == CHILD_FD {
                libc::fcntl(raw, libc::F_SETFD, 0);
            } else if libc::dup2(raw, CHILD_FD) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    drop(channel);
    talk(ours.as_fd());
    drop(ours);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let mut status = 0;
    // SAFETY: all zero is a valid rusage.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `child` is our unreaped child; status and usage are valid for writes.
    let pid = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as libc::pid_t);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -libc::WTERMSIG(status)
    };
    (code, stderr, usage.ru_maxrss)
}

fn this_exe() -> std::path::PathBuf {
    std::env::current_exe().unwrap()
}

/// A socketpair made by another process (a forked helper that exits at once): its
/// `SO_PEERCRED` names that process, not whoever runs the child.
fn foreign_socketpair() -> (OwnedFd, OwnedFd) {
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap();
    // SAFETY: the child only makes a socketpair, sends it and exits (glibc keeps malloc usable
    // in a child of a threaded process).
    match unsafe { mp_sys::process::fork() }.unwrap() {
        Forked::Child => {
            let code = match mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream) {
                Ok((a, b)) => i32::from(
                    Codec::CHANNEL
                        .send(theirs.as_fd(), b"pair", &[a.as_fd(), b.as_fd()])
                        .is_err(),
                ),
                Err(_) => 1,
            };
            mp_sys::process::exit_now(code)
        }
        Forked::Parent(pid) => {
            drop(theirs);
            let pidfd = mp_sys::pidfd::open(pid).unwrap();
            let (_, mut fds) = Codec::CHANNEL.recv(ours.as_fd(), 16, Stop::NEVER).unwrap();
            mp_sys::poll::readable(&[pidfd.as_fd()], Some(Duration::from_secs(60))).unwrap();
            assert_eq!(mp_sys::pidfd::reap(pidfd.as_fd()).unwrap(), Some(0));
            let b = fds.pop().unwrap();
            let a = fds.pop().unwrap();
            (a, b)
        }
    }
}

/// The harness itself: a channel from the parent and a valid bootstrap run the target.
#[test]
fn a_valid_channel_from_the_parent_runs_the_target() {
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap();
    let (boot, lifeline) = triple_bootstrap();
    let mut outcome = None;
    let (code, stderr, _) = run_marked(&this_exe(), SPAWN_MARK, theirs, ours, |sock| {
        Codec::CHANNEL
            .send(sock, &boot, &[lifeline.as_fd()])
            .unwrap();
        outcome = Codec::CHANNEL
            .recv(sock, frame::LIMIT, Stop::NEVER)
            .ok()
            .and_then(|(p, _)| postcard::from_bytes::<Outcome>(&p).ok());
    });
    assert_eq!(code, 0, "{stderr}");
    match outcome {
        Some(Outcome::Returned(bytes)) => {
            assert_eq!(reduction::loads::<u64>(&bytes, Vec::new()).unwrap(), 42)
        }
        other => panic!("expected 42, got {other:?}"),
    }
}

/// (a) A reference that names no trampoline (another kind's entry, the slots next to a
/// trampoline's that are not trampolines, an index past the table) is refused with `Failed`, and
/// nothing runs.
#[test]
fn a_reference_to_no_trampoline_is_refused() {
    let exe = crate::identity::file().unwrap();
    let real = offset_of(triple).index();
    let neighbours = [real.wrapping_sub(1), real + 1]
        .map(RawCodeRef::from_index)
        .into_iter()
        .filter(|r| TRAMPOLINES.resolve(*r).is_none());
    let refused = [other_kind(), RawCodeRef::from_index(u32::MAX)];
    for entry in refused.into_iter().chain(neighbours) {
        let lifeline = mp_sys::fd::pipe().unwrap();
        let boot = bootstrap_with(exe, MAGIC, entry, Vec::new());
        let (outcome, code) = run_with(frame(&boot, &[lifeline.0.as_fd()]));
        match outcome {
            Some(Outcome::Failed(message)) => {
                assert!(message.contains("trampoline"), "{message}")
            }
            other => panic!("expected a failure for {entry:?}, got {other:?}"),
        }
        assert_eq!(code, 1);
    }
}

#[test]
fn only_registered_trampolines_resolve() {
    assert!(TRAMPOLINES.resolve(offset_of(triple)).is_some());
    assert!(
        TRAMPOLINES
            .resolve(offset_of(|x: u8, y: u8| x ^ y))
            .is_some()
    );
    assert!(TRAMPOLINES.resolve(other_kind()).is_none());
    assert!(NOT_TRAMPOLINES.resolve(offset_of(triple)).is_none());
    assert!(
        TRAMPOLINES
            .resolve(RawCodeRef::from_index(u32::MAX))
            .is_none()
    );
    // Every slot of the table resolves as at most one kind, and the same slot twice gives the
    // same function.
    let a = TRAMPOLINES.resolve(offset_of(triple)).unwrap().get();
    let b = TRAMPOLINES.resolve(offset_of(triple)).unwrap().get();
    assert_eq!(a as usize, b as usize);
}

/// (b) A valid bootstrap on a channel that the parent did not make is refused before it is
/// read: the target does not run.
#[test]
fn a_channel_from_another_process_is_refused() {
    let (ours, theirs) = foreign_socketpair();
    let (boot, lifeline) = triple_bootstrap();
    let mut outcome = None;
    let (code, stderr, _) = run_marked(&this_exe(), SPAWN_MARK, theirs, ours, |sock| {
        let _ = Codec::CHANNEL.send(sock, &boot, &[lifeline.as_fd()]);
        outcome = Codec::CHANNEL.recv(sock, frame::LIMIT, Stop::NEVER).ok();
    });
    assert!(
        outcome.is_none(),
        "the child answered: it read the bootstrap"
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("refuses its channel") && stderr.contains("not by the parent"),
        "{stderr}"
    );
}

/// (b) A pipe has no peer credentials: refused.
#[test]
fn a_pipe_is_refused_as_a_channel() {
    let (r, w) = mp_sys::fd::pipe().unwrap();
    let (code, stderr, _) = run_marked(&this_exe(), SPAWN_MARK, r, w, |_| {});
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("refuses its channel") && stderr.contains("not a socket"),
        "{stderr}"
    );
}

/// (b) The forkserver checks its hello's sender the same way: a valid hello on a foreign
/// channel makes it exit 1 at once (it would otherwise serve, and exit 0 at our hang-up).
#[test]
fn a_forkserver_refuses_a_channel_from_another_process() {
    // The same encoding as `forkserver::Hello` (postcard is not self-describing).
    #[derive(serde::Serialize)]
    struct Hello {
        magic: u64,
        exe: crate::identity::FileId,
        preload: Vec<i64>,
    }
    let hello = postcard::to_stdvec(&Hello {
        magic: MAGIC,
        exe: crate::identity::file().unwrap(),
        preload: Vec::new(),
    })
    .unwrap();
    let talk = |sock: BorrowedFd<'_>| {
        let _ = Codec::CHANNEL.send(sock, &hello, &[]);
    };
    // Control: from the parent, the hello is accepted and the server exits 0 at our hang-up.
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap();
    let (code, stderr, _) = run_marked(&this_exe(), SERVER_MARK, theirs, ours, talk);
    assert_eq!(code, 0, "{stderr}");
    let (ours, theirs) = foreign_socketpair();
    let (code, stderr, _) = run_marked(&this_exe(), SERVER_MARK, theirs, ours, talk);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("forkserver refuses its channel") && stderr.contains("not by the parent"),
        "{stderr}"
    );
}

/// (c) A header that announces 1 GiB, then the end: the child reports a typed error and never
/// allocates what was announced (its peak RSS stays far below it).
#[test]
fn a_lying_length_costs_the_child_no_memory() {
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap();
    let (code, stderr, max_rss_kib) = run_marked(&this_exe(), SPAWN_MARK, theirs, ours, |sock| {
        mp_sys::fd::write_all(sock, &Codec::CHANNEL.header(0, 1 << 30)).unwrap();
        mp_sys::fd::write_all(sock, &[0; 1000]).unwrap();
    });
    assert!(max_rss_kib < 256 * 1024, "peak RSS {max_rss_kib} KiB");
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("could not read its bootstrap message")
            && stderr.contains("ended after 1000 of 1073741824 payload bytes"),
        "{stderr}"
    );
}

/// A marker with extra arguments, or a malformed descriptor number, is a normal run: `main`
/// (here the test harness, which rejects the unknown option) runs instead of the entry.
#[test]
fn a_malformed_marker_lets_main_run() {
    for args in [
        &["--mp-spawn-child", "200", "extra"][..],
        &["--mp-spawn-child", "+200"],
        &["--mp-spawn-child", "0200"],
        &["--mp-spawn-child", "2"],
        &["--mp-spawn-child", "99999999999"],
        &["--mp-spawn-child", "201"], // not open
    ] {
        // Descriptor 200 is a valid channel from us: only the marker's form is wrong.
        let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap();
        let (_, stderr, _) = run_args(&this_exe(), args, theirs, ours, |_| {});
        assert!(!stderr.contains("mp:"), "{args:?}: {stderr}");
        assert!(
            stderr.contains("mp-spawn-child"),
            "{args:?}: libtest should reject the option: {stderr}"
        );
    }
}

/// Under `AT_SECURE` (here a setuid copy of this binary, run by root as another user) the
/// marker is ignored and `main` runs. Needs root and a filesystem that honours setuid.
#[test]
fn a_setuid_program_ignores_the_marker() {
    if mp_sys::creds::geteuid() != 0 {
        eprintln!("skipped: needs root to make a setuid copy");
        return;
    }
    let dir = std::env::temp_dir().join(format!("mp-setuid-{}", mp_sys::process::getpid()));
    std::fs::create_dir_all(&dir).unwrap();
    /// Removes the directory however the test ends.
    struct Cleanup(std::path::PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _cleanup = Cleanup(dir.clone());
    let c_dir = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: all zero is a valid statvfs; the path is a valid C string.
    let mut fs: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above; `fs` is valid for writes.
    let nosuid =
        unsafe { libc::statvfs(c_dir.as_ptr(), &mut fs) } != 0 || fs.f_flag & libc::ST_NOSUID != 0;
    if nosuid {
        eprintln!("skipped: the temporary directory ignores setuid");
        return;
    }
    let copy = dir.join("entry-test");
    // Copied by another process: a write descriptor of ours would leak into the children that
    // other tests fork meanwhile, and make the exec fail with ETXTBSY.
    let cp = Command::new("cp")
        .arg(this_exe())
        .arg(&copy)
        .status()
        .unwrap();
    assert!(cp.success());
    let c_copy = std::ffi::CString::new(copy.as_os_str().as_encoded_bytes()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: a valid path; chown has no other precondition.
    let owned = unsafe { libc::chown(c_copy.as_ptr(), 65534, 65534) } == 0;
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap();
    let (boot, lifeline) = triple_bootstrap();
    let result = run_marked(&copy, SPAWN_MARK, theirs, ours, |sock| {
        let _ = Codec::CHANNEL.send(sock, &boot, &[lifeline.as_fd()]);
    });
    assert!(owned, "chown failed");
    let (code, stderr, _) = result;
    assert!(
        !stderr.contains("mp:") && !stderr.contains("Process"),
        "{stderr}"
    );
    assert!(
        stderr.contains("mp-spawn-child"),
        "libtest should reject the option: {stderr}"
    );
    assert_ne!(code, 0);
}

/// The peer check itself: our own socketpair names us, and any other pid or image is refused.
#[test]
fn the_peer_check_names_the_creator() {
    let (a, _b) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap();
    let exe = crate::identity::file().unwrap();
    assert_eq!(
        super::check_peer(a.as_fd(), mp_sys::process::getpid(), exe),
        Ok(())
    );
    let e = super::check_peer(a.as_fd(), mp_sys::process::getppid(), exe).unwrap_err();
    assert!(e.contains("not by the parent"), "{e}");
    let e = super::check_peer(
        a.as_fd(),
        mp_sys::process::getpid(),
        crate::identity::FileId {
            ino: exe.ino ^ 1,
            ..exe
        },
    )
    .unwrap_err();
    assert!(e.contains("different executable"), "{e}");
    let (r, _w) = mp_sys::fd::pipe().unwrap();
    let e = super::check_peer(r.as_fd(), mp_sys::process::getpid(), exe).unwrap_err();
    assert!(e.contains("not a socket"), "{e}");
}

static NOT_CODE: u64 = 7;

#[test]
fn only_program_code_passes_the_hook_check() {
    assert!(mp_sys::process::in_program_code(noop as fn() as usize));
    assert!(!mp_sys::process::in_program_code(
        &raw const NOT_CODE as usize
    ));
    // A shared libc is no program code; musl's is linked into the program itself.
    #[cfg(target_env = "gnu")]
    assert!(
        !mp_sys::process::in_program_code(libc::getpid as *const () as usize),
        "libc is no program code"
    );
    assert!(!mp_sys::process::in_program_code(0));
}

/// A forkserver's preload hooks must land in the program's code: one that names data, or an
/// address beyond the image, makes the server exit 1 instead of jumping there.
#[test]
fn a_forkserver_refuses_a_hook_outside_the_code() {
    #[derive(serde::Serialize)]
    struct Hello {
        magic: u64,
        exe: crate::identity::FileId,
        preload: Vec<i64>,
    }
    let data = crate::code::offset_of(&raw const NOT_CODE as usize);
    for hook in [data, 1 << 40, i64::MIN] {
        let hello = postcard::to_stdvec(&Hello {
            magic: MAGIC,
            exe: crate::identity::file().unwrap(),
            preload: vec![crate::code::hook_offset(noop), hook],
        })
        .unwrap();
        let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream).unwrap();
        let (code, stderr, _) = run_marked(&this_exe(), SERVER_MARK, theirs, ours, |sock| {
            let _ = Codec::CHANNEL.send(sock, &hello, &[]);
        });
        assert_eq!(code, 1, "{hook}: {stderr}");
        assert!(stderr.contains("preload hook lies outside"), "{stderr}");
    }
}
