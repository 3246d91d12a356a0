//! The forkserver start method: a single-threaded server, spawned on first use, forks the
//! children. The caller may run any number of threads; the server never does.
//!
//! The server is a spawned copy of the executable that stops before `main` (see `bootstrap`).
//! Per child the parent sends the bootstrap message with the fds `[result channel, status pipe,
//! lifeline, shared..., args' fds...]`; the server forks, answers with the pid and a pidfd (for race-free
//! signals), and writes the child's exit code into the status pipe when it reaps it. If the
//! server dies, the next start brings up a new one; children of the old one keep running but
//! their exit code is lost (their `join` reports an I/O error).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bootstrap::{self, MAGIC, SERVER_MARK};
use crate::child::{Child, ChildSpec, ServerStatus};
use crate::code;
use crate::context::{self, StartMethod};
use crate::error::ProcessError;
use crate::frame::{self, Codec, Stop};
use crate::identity::{self, FileId};
use crate::launch::Recipe;
use crate::popen_spawn::spawn_with_channel;
use crate::registry;
use crate::sync::lock;
use mp_sys::fork::{Hold, Rank};
use mp_sys::process::Forked;

#[derive(Debug)]
pub(crate) struct Server {
    #[cfg_attr(not(feature = "unstable-test-hooks"), allow(dead_code))] // read by `forkserver_pid`
    pid: u32,
    pidfd: OwnedFd,
    sock: OwnedFd,
}

static SERVER: Mutex<Option<Server>> = Mutex::new(None);
static PRELOAD: Mutex<Vec<i64>> = Mutex::new(Vec::new());

#[derive(Serialize, Deserialize)]
struct Hello {
    magic: u64,
    exe: FileId,
    preload: Vec<i64>,
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Started { pid: u32 },
    Failed(String),
}

/// Functions the forkserver runs once when it starts, before forking any child (Python's
/// `set_forkserver_preload`, with functions instead of module names): warm caches, load data,
/// initialise libraries once for all children. A server that is already running keeps its
/// preload; the list applies to the next server.
///
/// ```
/// fn warm_up() { /* e.g. build a lookup table in a static */ }
/// mp_spawn::set_forkserver_preload(&[warm_up]);
/// ```
pub fn set_forkserver_preload(hooks: &[fn()]) {
    HOLD_PRELOAD.register();
    *lock(&PRELOAD) = hooks.iter().map(|h| code::hook_offset(*h)).collect();
}

/// A fork child that launches its own server reads the list. `launch` reads it under `SERVER`,
/// which every fork holds already; this covers the writer, which holds nothing else.
static HOLD_PRELOAD: Hold = Hold::new(Rank::SPAWN_FORKSERVER_PRELOAD, || Box::new(lock(&PRELOAD)));

fn launch() -> std::io::Result<Server> {
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
    let pid = spawn_with_channel(&crate::popen_spawn::argv0(), SERVER_MARK, &theirs)?;
    drop(theirs);
    let pidfd = mp_sys::pidfd::open(pid)?;
    let hello = Hello {
        magic: MAGIC,
        exe: identity::file()?,
        preload: lock(&PRELOAD).clone(),
    };
    let bytes = postcard::to_stdvec(&hello).map_err(std::io::Error::other)?;
    Codec::CHANNEL.send(ours.as_fd(), &bytes, &[])?;
    Ok(Server {
        pid,
        pidfd,
        sock: ours,
    })
}

/// Stops a server and reaps it.
fn retire(server: Server, kill: bool) {
    if kill {
        let _ = mp_sys::pidfd::send_signal(server.pidfd.as_fd(), libc::SIGKILL);
    }
    drop(server.sock); // the server exits when its socket closes
    let _ = mp_sys::poll::readable(&[server.pidfd.as_fd()], Some(Duration::from_secs(5)));
    let _ = mp_sys::pidfd::reap(server.pidfd.as_fd());
}

/// One start request to a server (the forkserver or a fork helper): the pid and pidfd of the
/// child it forked.
pub(crate) fn request(
    sock: BorrowedFd<'_>,
    boot: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<(u32, OwnedFd)> {
    Codec::CHANNEL.send(sock, boot, fds)?;
    let (payload, mut fds) = Codec::CHANNEL.recv(sock, 1 << 16, Stop::NEVER)?;
    match postcard::from_bytes::<Reply>(&payload).map_err(std::io::Error::other)? {
        Reply::Started { pid } => Ok((
            pid,
            fds.pop()
                .ok_or_else(|| std::io::Error::other("forkserver sent no pidfd"))?,
        )),
        Reply::Failed(message) => Err(std::io::Error::other(format!("forkserver: {message}"))),
    }
}

pub(crate) fn is_disconnect(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(e.kind(), BrokenPipe | ConnectionReset | UnexpectedEof)
}

pub(crate) fn start(
    spec: &ChildSpec<'_>,
    recipe: &Recipe,
) -> Result<(Child, OwnedFd), ProcessError> {
    crate::popen_spawn::refuse_foreign_exe(StartMethod::Forkserver)?;
    start_with(spec, recipe, |boot, fds| {
        let mut server = lock(&SERVER);
        let mut retried = false;
        loop {
            if server.is_none() {
                *server = Some(launch()?);
                // This process now has a server to retire when it finishes its children.
                registry::on_finish_shutdown_server(shutdown);
            }
            let running = server.as_ref().expect("launched above");
            match request(running.sock.as_fd(), boot, fds) {
                Ok((pid, pidfd)) => return Ok((pid, pidfd, running.pidfd.try_clone()?)),
                Err(e) if !retried && is_disconnect(&e) => {
                    retried = true;
                    if let Some(dead) = server.take() {
                        retire(dead, true);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    })
}

/// Starts a child through a server: builds the bootstrap message and the descriptors
/// `[result channel, status pipe, lifeline, shared..., args' fds...]`, has `send` deliver them
/// (it answers the child's pid and pidfd, and a pidfd of the server), and keeps the read end
/// of the status pipe, into which the server writes the exit code.
pub(crate) fn start_with(
    spec: &ChildSpec<'_>,
    recipe: &Recipe,
    send: impl FnOnce(&[u8], &[BorrowedFd<'_>]) -> std::io::Result<(u32, OwnedFd, OwnedFd)>,
) -> Result<(Child, OwnedFd), ProcessError> {
    let (boot, lifeline, shared) = bootstrap::message(spec, recipe)?;
    let (ours, theirs) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
    let (status_r, status_w) = mp_sys::fd::pipe()?;
    let mut fds = vec![theirs.as_fd(), status_w.as_fd(), lifeline.as_fd()];
    fds.extend(shared);
    fds.extend(recipe.args.fds.iter().map(AsFd::as_fd));
    let (pid, pidfd, server) = send(&boot, &fds)?;
    let status = ServerStatus {
        pipe: status_r,
        server,
    };
    Ok((
        Child::new(pid, spec.name.to_owned(), spec.daemon, pidfd, Some(status)),
        ours,
    ))
}

/// The server lock, held across a fork so that the child finds it consistent.
pub(crate) fn lock_for_fork() -> MutexGuard<'static, Option<Server>> {
    lock(&SERVER)
}

/// In a forked child: the parent's server is not ours (its socket copy is closed here).
pub(crate) fn forget_in_child(mut server: MutexGuard<'static, Option<Server>>) {
    server.take();
}

/// At exit: closes the connection, so that the server exits, and reaps it.
pub(crate) fn shutdown() {
    if let Some(server) = lock(&SERVER).take() {
        retire(server, false);
    }
}

/// The pid of the running forkserver, if any (for tests that kill it).
#[cfg(feature = "unstable-test-hooks")]
pub fn forkserver_pid() -> Option<u32> {
    lock(&SERVER).as_ref().map(|s| s.pid)
}

struct Kid {
    pidfd: OwnedFd,
    status: OwnedFd,
}

/// The server's loop; runs before `main` in the server process and never returns.
pub(crate) fn serve(sock: OwnedFd) -> ! {
    // Its children inherit this: their `get_start_method()` says forkserver.
    context::force_start_method(StartMethod::Forkserver);
    mp_sys::signal::set_ignored(libc::SIGPIPE, true);
    // Ctrl-C reaches the whole process group; the parent decides what its children do.
    mp_sys::signal::set_ignored(libc::SIGINT, true);
    // The preload hooks in the hello are offsets: believe them only from our parent, running
    // this very image.
    if let Err(e) = bootstrap::authenticate_parent(sock.as_fd()) {
        eprintln!("mp: a forkserver refuses its channel: {e}");
        mp_sys::process::exit_now(1)
    }
    let hello = Codec::CHANNEL
        .recv(sock.as_fd(), 1 << 20, Stop::NEVER)
        .ok()
        .and_then(|(payload, _)| postcard::from_bytes::<Hello>(&payload).ok());
    let Some(hello) = hello.filter(|h| h.magic == MAGIC) else {
        mp_sys::process::exit_now(1)
    };
    if identity::file().ok() != Some(hello.exe) {
        mp_sys::process::exit_now(1);
    }
    bootstrap::install_panic_hook();
    for hook in hello.preload {
        // SAFETY: the sender is our parent running this very image (checked above), so each
        // offset designates the same fn here.
        let Some(hook) = (unsafe { code::hook_at(hook) }) else {
            eprintln!("mp: a forkserver preload hook lies outside the program's code");
            mp_sys::process::exit_now(1)
        };
        hook();
    }
    serve_requests(sock)
}

/// The request loop of a server: the forkserver, or a fork helper (see `fork_helper`). It
/// must run in a single-threaded process, and never returns.
pub(crate) fn serve_requests(sock: OwnedFd) -> ! {
    mp_sys::signal::set_ignored(libc::SIGPIPE, true);
    // Ctrl-C reaches the whole process group; the parent decides what its children do.
    mp_sys::signal::set_ignored(libc::SIGINT, true);
    let _ = mp_sys::fd::dev_null();
    // A preload hook may have started a thread: forking then would copy whatever locks it
    // holds, the very hazard a server exists to avoid. Refuse every request, saying why.
    let threads = mp_sys::process::thread_count();
    crate::stack_guard::prepare_fork();
    let mut kids: Vec<Kid> = Vec::new();
    loop {
        let mut watch = vec![sock.as_fd()];
        watch.extend(kids.iter().map(|k| k.pidfd.as_fd()));
        let Ok(ready) = mp_sys::poll::readable(&watch, None) else {
            mp_sys::process::exit_now(1)
        };
        for i in (0..kids.len()).rev() {
            if ready[i + 1] {
                if let Ok(Some(code)) = mp_sys::pidfd::reap(kids[i].pidfd.as_fd()) {
                    let kid = kids.swap_remove(i);
                    let _ = mp_sys::fd::write_all(kid.status.as_fd(), &code.to_le_bytes());
                }
            }
        }
        if !ready[0] {
            continue;
        }
        // The parent closed its end (it exited) or broke the protocol: stop serving.
        let Ok((payload, fds)) = Codec::CHANNEL.recv(sock.as_fd(), frame::LIMIT, Stop::NEVER)
        else {
            mp_sys::process::exit_now(0)
        };
        let mut fds = fds.into_iter();
        let (Some(control), Some(status)) = (fds.next(), fds.next()) else {
            reply(
                &sock,
                &Reply::Failed("request without its channels".to_owned()),
                None,
            );
            continue;
        };
        if threads > 1 {
            let why = format!(
                "the forkserver runs {threads} threads (did a preload hook start one?) and \
                 forks only while single-threaded; start threads in the children instead"
            );
            reply(&sock, &Reply::Failed(why), None);
            continue;
        }
        // SAFETY: this server is single-threaded (checked above): the forkserver runs before
        // main, a fork helper is a fork of one thread, and neither starts a thread.
        match unsafe { mp_sys::process::fork() } {
            Ok(Forked::Child) => {
                drop(sock);
                drop(kids);
                drop(status);
                mp_sys::signal::set_ignored(libc::SIGINT, false);
                if let Ok(dev_null) = mp_sys::fd::dev_null() {
                    let _ = mp_sys::fd::stdin_to(dev_null);
                }
                bootstrap::child_main(&payload, fds.collect(), control)
            }
            Ok(Forked::Parent(pid)) => match mp_sys::pidfd::open(pid) {
                Ok(pidfd) => {
                    reply(&sock, &Reply::Started { pid }, Some(&pidfd));
                    kids.push(Kid { pidfd, status });
                }
                Err(e) => reply(&sock, &Reply::Failed(e.to_string()), None),
            },
            Err(e) => reply(&sock, &Reply::Failed(format!("fork failed: {e}")), None),
        }
    }
}

fn reply(sock: &OwnedFd, reply: &Reply, fd: Option<&OwnedFd>) {
    let fds: Vec<_> = fd.iter().map(|f| f.as_fd()).collect();
    if let Ok(bytes) = postcard::to_stdvec(reply) {
        if Codec::CHANNEL.send(sock.as_fd(), &bytes, &fds).is_err() {
            mp_sys::process::exit_now(0);
        }
    }
}
