//! The child's side: how a spawned or forkserver child finds its target, and how every child
//! reports its outcome and exits.
//!
//! **Entry without `main`.** A spawned child is `/proc/self/exe` started with the argv
//! `[argv0, "--mp-spawn-child", FD]`. mp-spawn puts `entry::child_entry` in `.init_array`, so the
//! C runtime calls it before Rust's `main`: it sees the marker, runs the child and exits. The
//! parent's `main` never runs in a child, the user adds no line to `main`, and test binaries,
//! examples and benches work as they are.
//!
//! **Finding the target.** `Process::new` takes only zero-sized targets (fn items,
//! non-capturing closures). The parent sends the address of the monomorphised
//! [`trampoline::<F, A>`] as an offset (see [`code`](crate::code)). That is sound only in the same program
//! image, so the bootstrap also carries the executable's (device, inode) ([`identity::file`]), and a child whose
//! image differs reports [`Outcome::Failed`] instead of jumping anywhere.
//!
//! **Whom the entry believes.** The argv and the descriptor are chosen by whoever runs the
//! program, so the entry must never be a gadget: it ignores the marker in a setuid/setgid/
//! file-capability program (`AT_SECURE`), accepts only the exact argv mp writes, and believes
//! the channel only if `SO_PEERCRED` names its parent, of its user, running this very
//! executable (`/proc/<pid>/exe`): a process that could run any code of this image anyway.
//! Even then it runs only a registered [`trampoline`] instance (exactly one, named by its code
//! reference: [`code`](crate::code)); a forkserver's preload hooks (any `fn()`) must lie in the
//! program's executable segments. Frames (the [`frame`](crate::frame) codec) are read
//! as their bytes arrive, so a lying length costs nothing.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::CStr;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::child::ChildSpec;
use crate::code::{Kind, RawCodeRef};
use crate::frame::Codec;
use crate::identity::{self, FileId};
use crate::launch::Recipe;
use crate::limits::{self, Armed};
use crate::registry::{ParentLink, child_name_for_panic, finish_children, global};
use crate::target::{Outcome, Target};
use crate::{reduction, resources, stack_guard};

pub(crate) const SPAWN_MARK: &CStr = c"--mp-spawn-child";
pub(crate) const SERVER_MARK: &CStr = c"--mp-forkserver";
pub(crate) const HELPER_MARK: &CStr = c"--mp-helper";
pub(crate) const MAGIC: u64 = 0x6d70_5f62_6f6f_7431; // "mp_boot1"

/// Everything a spawn or forkserver child needs; the fds `[lifeline, shared..., args' fds...]`
/// ride along (`shared`: see [`resources`]).
#[derive(Serialize, Deserialize)]
pub(crate) struct Bootstrap {
    magic: u64,
    exe: FileId,
    entry: RawCodeRef,
    name: String,
    identity: Vec<u32>,
    daemon: bool,
    parent_name: String,
    parent_pid: u32,
    shared: Vec<String>,
    /// Caps to apply before the target runs.
    limits: Option<limits::Wire>,
    args: Vec<u8>,
}

/// The bootstrap message for a child, a duplicate of this process's lifeline read end, and the
/// shared descriptors (to send right after the lifeline).
pub(crate) fn message(
    spec: &ChildSpec<'_>,
    recipe: &Recipe,
) -> std::io::Result<(Vec<u8>, OwnedFd, Vec<BorrowedFd<'static>>)> {
    let (shared, shared_fds) = resources::collect();
    let (parent_name, lifeline) = {
        let mut g = global();
        let lifeline = g.lifeline_reader()?.try_clone_to_owned()?;
        (g.name.to_string(), lifeline)
    };
    let boot = Bootstrap {
        magic: MAGIC,
        exe: identity::file()?,
        entry: recipe.entry,
        name: spec.name.to_owned(),
        identity: spec.identity.to_vec(),
        daemon: spec.daemon,
        parent_name,
        parent_pid: mp_sys::process::getpid(),
        shared,
        limits: spec.limits.map(Armed::wire),
        args: recipe.args.bytes.clone(),
    };
    let bytes = postcard::to_stdvec(&boot).map_err(std::io::Error::other)?;
    Ok((bytes, lifeline, shared_fds))
}

type Entry = fn(&[u8], Vec<OwnedFd>, BorrowedFd<'_>) -> i32;

/// Every `trampoline` instance: a wrong or forged reference never sends the child anywhere
/// else (see [`code`](crate::code)).
// SAFETY: `Entry` is a fn pointer type.
static TRAMPOLINES: Kind<Entry> = unsafe { Kind::new() };

/// Checks the process at the other end of a channel handed to this process before `main`: it
/// must be our parent (`SO_PEERCRED` names the creator of a socketpair), run as our user, and
/// run this very executable. Only then are the offsets in its messages believed: such a process
/// could run any code of this image anyway.
pub(crate) fn authenticate_parent(sock: BorrowedFd<'_>) -> Result<(), String> {
    let ours = identity::file().map_err(|e| format!("cannot identify the executable: {e}"))?;
    check_peer(sock, mp_sys::process::getppid(), ours)
}

fn check_peer(sock: BorrowedFd<'_>, parent: u32, exe: FileId) -> Result<(), String> {
    let (pid, uid) = mp_sys::creds::peer_credentials(sock)
        .map_err(|e| format!("the channel is not a socket from the parent: {e}"))?;
    if pid != parent {
        return Err(format!(
            "the channel was made by process {pid}, not by the parent {parent}"
        ));
    }
    if uid != mp_sys::creds::geteuid() {
        return Err(format!("the parent runs as user {uid}, not as this user"));
    }
    match identity::file_of(pid) {
        Ok(theirs) if theirs == exe => Ok(()),
        Ok(_) => Err("the parent runs a different executable".to_owned()),
        Err(e) => Err(format!("cannot identify the parent's executable: {e}")),
    }
}

/// The reference that names `trampoline::<F, A>` in a child.
pub(crate) fn entry_ref<F, A>() -> RawCodeRef
where
    F: Target<A>,
    A: DeserializeOwned,
    F::Output: Serialize,
{
    crate::code_ref!(TRAMPOLINES, trampoline::<F, A>).raw()
}

/// Runs in the child: decodes the target's code offset and the arguments, recreates `F` (a
/// zero-sized fn item or closure, or a fn pointer found at the offset) and calls it. The child
/// runs only an instance registered in [`TRAMPOLINES`].
fn trampoline<F, A>(args: &[u8], fds: Vec<OwnedFd>, control: BorrowedFd<'_>) -> i32
where
    F: Target<A>,
    A: DeserializeOwned,
    F::Output: Serialize,
{
    let (code, args): (i64, A) = match reduction::loads(args, fds) {
        Ok(decoded) => decoded,
        Err(e) => return report_failure(control, &format!("cannot decode the arguments: {e}")),
    };
    // SAFETY: the message comes from a parent that `authenticate_parent` proved runs this very
    // image, where `code::locate` computed `code` for a value of type `F`.
    let Some(target) = (unsafe { crate::code::recreate::<F, A>(code) }) else {
        return report_failure(control, "the target cannot be found in this process");
    };
    run_target(move || target.call(args), control)
}

/// Runs a target, catching a panic, and sends its outcome to the parent. Returns the exit code.
pub(crate) fn run_target<R: Serialize>(body: impl FnOnce() -> R, control: BorrowedFd<'_>) -> i32 {
    // A forked child inherits its parent thread's record: only this target's panics count.
    LAST_PANIC.with(|last| last.borrow_mut().take());
    let name = global().name.to_string();
    stack_guard::install(&name, control);
    if crate::limits::memory_capped() {
        crate::oom_guard::install(control);
    }
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => match reduction::dumps(&value) {
            Ok(dumped) => {
                let fds: Vec<_> = dumped.fds.iter().map(AsFd::as_fd).collect();
                send_outcome(control, &Outcome::Returned(dumped.bytes), &fds);
                0
            }
            Err(e) => report_failure(control, &format!("cannot serialize the return value: {e}")),
        },
        Err(payload) => {
            let message = panic_report(&*payload);
            send_outcome(control, &Outcome::Panicked(message), &[]);
            1
        }
    }
}

thread_local! {
    /// The last panic of this thread as the hook saw it: its payload text, to match it with
    /// what `catch_unwind` caught, and Rust's report (`panicked at file:line:col:\nmessage`).
    static LAST_PANIC: RefCell<Option<(Option<String>, String)>> = const { RefCell::new(None) };
}

/// The message of a caught panic, with its location as the panic hook recorded it on this
/// thread (the form of mp-pool's `PoolError::Panicked`). A payload the hook did not see (one
/// resumed from another thread) has no location: `panicked: message`.
fn panic_report(payload: &(dyn Any + Send)) -> String {
    let text = payload_text(payload);
    match LAST_PANIC.with(|last| last.borrow_mut().take()) {
        Some((seen, report)) if seen == text => report,
        _ => format!("panicked: {}", text.as_deref().unwrap_or("Box<dyn Any>")),
    }
}

/// The text of a `panic!` payload (a `&str` or a `String`).
fn payload_text(payload: &(dyn Any + Send)) -> Option<String> {
    (payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .or_else(|| payload.downcast_ref::<String>().cloned())
}

pub(crate) fn report_failure(control: BorrowedFd<'_>, message: &str) -> i32 {
    // The name first: mp never prints while it holds its own state (see `mp_sys::fork`).
    let name = global().name.to_string();
    eprintln!("Process {name}: {message}");
    send_outcome(control, &Outcome::Failed(message.to_owned()), &[]);
    1
}

fn send_outcome(control: BorrowedFd<'_>, outcome: &Outcome, fds: &[BorrowedFd<'_>]) {
    // A parent that is gone, or that dropped the process, does not want the value.
    if let Ok(bytes) = postcard::to_stdvec(outcome) {
        let _ = Codec::CHANNEL.send(control, &bytes, fds);
    }
}

/// Prints `Process <name>:` before a panic message in a child, as Python does before a
/// traceback. Installed once, by the parent before its first fork (so that a forked child does
/// not allocate for it) or by a spawned child; in the main process it only delegates.
pub(crate) fn install_panic_hook() {
    // A `Once`, not a `ForkOnce`: mp's forks call this on the forking thread before the fork,
    // so their children find it done; and a second run in a child would wrap the hook twice.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            // For `run_target`'s report, which only gets the payload (nothing is printed).
            let seen = (payload_text(info.payload()), info.to_string());
            // try_with: a panic while the thread-locals are being torn down has no record.
            let _ = LAST_PANIC.try_with(|last| {
                if let Ok(mut last) = last.try_borrow_mut() {
                    *last = Some(seen);
                }
            });
            // try_lock: a panic while this thread holds the state must not deadlock here.
            if let Some(name) = child_name_for_panic() {
                eprintln!("Process {name}:");
            }
            if FORKED.load(Ordering::Relaxed) {
                // std's default hook takes its backtrace lock, which another thread of the
                // parent may have held at the fork (a CI run hung so): print what it would,
                // without a backtrace, through stderr, whose lock every fork holds.
                let thread = std::thread::current();
                eprintln!(
                    "thread '{}' panicked at {}:\n{}",
                    thread.name().unwrap_or("<unnamed>"),
                    info.location()
                        .map_or_else(String::new, ToString::to_string),
                    payload_text(info.payload())
                        .as_deref()
                        .unwrap_or("Box<dyn Any>"),
                );
            } else {
                previous(info);
            }
        }));
    });
}

/// Set in a child made by fork: its panic hook then prints the message itself (see
/// `install_panic_hook`).
static FORKED: AtomicBool = AtomicBool::new(false);

/// Called in a forked child, right after the fork.
pub(crate) fn note_forked() {
    FORKED.store(true, Ordering::Relaxed);
}

/// Sets up the death watch of a daemon child: it is killed when the parent process dies.
/// Returns the lifeline to keep (this child's own open file description of it).
pub(crate) fn watch_parent(lifeline: OwnedFd) -> OwnedFd {
    match mp_sys::process::kill_me_when_hung_up(lifeline.as_fd()) {
        Ok(own)
            if !mp_sys::poll::readable(&[own.as_fd()], Some(std::time::Duration::ZERO))
                .map(|r| r[0])
                .unwrap_or(true) =>
        {
            own
        }
        // The parent died before the watch was set (or it cannot be set): die as it would.
        _ => {
            mp_sys::signal::kill_self(libc::SIGKILL);
            mp_sys::process::exit_now(1)
        }
    }
}

/// Ends a child: flushes its output, finishes its own children, and exits without running the
/// parent's atexit handlers (a forked child shares them), as Python's `os._exit`.
pub(crate) fn finish(code: i32) -> ! {
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    finish_children();
    mp_sys::process::exit_now(code)
}

/// A spawn or forkserver child, from its bootstrap message on: never returns.
pub(crate) fn child_main(payload: &[u8], fds: Vec<OwnedFd>, control: OwnedFd) -> ! {
    let fail = |message: String| -> ! {
        let code = report_failure(control.as_fd(), &message);
        finish(code)
    };
    let boot: Bootstrap = match postcard::from_bytes(payload) {
        Ok(boot) => boot,
        Err(e) => fail(format!("malformed bootstrap message: {e}")),
    };
    if boot.magic != MAGIC {
        fail("malformed bootstrap message: bad magic".to_owned());
    }
    match identity::file() {
        Ok(exe) if exe == boot.exe => {}
        Ok(_) => fail(
            "the child runs a different executable than its parent; cannot find the target"
                .to_owned(),
        ),
        Err(e) => fail(format!("cannot identify the executable: {e}")),
    }
    let mut fds = fds.into_iter();
    let Some(mut lifeline) = fds.next() else {
        fail("the bootstrap message lacks the parent's lifeline".to_owned())
    };
    if boot.daemon {
        lifeline = watch_parent(lifeline);
    }
    let shared_fds: Vec<OwnedFd> = fds.by_ref().take(boot.shared.len()).collect();
    if shared_fds.len() < boot.shared.len() {
        fail("the bootstrap message lacks shared descriptors".to_owned());
    }
    resources::receive(boot.shared, shared_fds);
    global().become_child(
        boot.name.clone(),
        boot.identity,
        boot.daemon,
        ParentLink {
            name: boot.parent_name,
            pid: boot.parent_pid,
            lifeline: Some(lifeline),
        },
    );
    install_panic_hook();
    resources::child_started();
    if let Some(limits) = &boot.limits {
        if let Err(e) = limits.apply() {
            fail(format!("cannot apply its limits: {e}"));
        }
    }
    let Some(entry) = TRAMPOLINES.resolve(boot.entry) else {
        fail("the entry does not name a trampoline; refusing to jump".to_owned())
    };
    let code = (entry.get())(&boot.args, fds.collect(), control.as_fd());
    finish(code)
}
#[cfg(test)]
mod test;
