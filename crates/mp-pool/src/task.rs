//! A task on the wire, and how a worker finds the function to run.
//!
//! The parent names a monomorphised entry (`run_chunk::<F, A>`, `run_init::<F, A>`) by its
//! registered code reference ([`mp_spawn::code`]); the worker resolves it only if it is
//! exactly an entry of that kind, so even a corrupt frame cannot send it elsewhere. A task's
//! function that is a fn pointer travels as an offset, which the worker believes because
//! frames come only from its own pool: the parent that started it, running this very image
//! (mp-spawn forks it, or re-executes it after checking its identity), and which could run
//! any code in the worker anyway (docs/DESIGN.md, the trust model).
//!
//! The frames themselves are in `wire`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use mp_spawn::Target;
use mp_spawn::code::Located;
use mp_spawn::code::{Kind, RawCodeRef};
use mp_spawn::reduction::{self, Fd};
use serde::{Deserialize, Serialize};

use crate::plain;
use crate::wire::{self, Outcome, TaskFn};
use serde::de::DeserializeOwned;

/// Sends a finished result frame (its bytes and the handles the values carry).
pub(crate) type Send<'s> = &'s mut dyn FnMut(&[u8], &[BorrowedFd<'_>]);
/// Decodes a chunk's arguments, finds the function (a fn pointer's offset is the `i64`; see
/// `mp_spawn::code::locate`), runs it, and sends the result frame: `frame` holds the `Result`
/// header, and the entry sets the outcome and appends the body.
/// Called after each item of a chunk (the progress counter of a watched call).
pub(crate) type Tick<'t> = &'t mut dyn FnMut();
pub(crate) type Entry = fn(&[u8], Vec<OwnedFd>, i64, &mut Vec<u8>, Send<'_>, Tick<'_>);
/// Decodes an initializer's arguments, finds it (as `Entry` does) and calls it.
pub(crate) type InitEntry = fn(&[u8], Vec<OwnedFd>, i64) -> Result<(), String>;

/// The build-time check of every entry point: what a worker cannot find does not compile.
const fn check_findable<F>() {
    assert!(
        size_of::<F>() == 0 || size_of::<F>() == size_of::<fn()>(),
        "a pool task must be a fn item, a fn pointer or a closure that captures nothing, so \
         that every worker can find it; pass state through the arguments"
    )
}

/// The offset of a fn pointer `f`, 0 for a zero-sized one; an error for what a worker cannot
/// find (a closure that captures one pointer-sized value passes the build-time check).
fn code_of<F: Target<A>, A>(f: &F) -> Result<i64, &'static str> {
    match mp_spawn::code::locate(f) {
        Located::ZeroSized => Ok(0),
        Located::FnPointer(code) => Ok(code),
        Located::Foreign => Err(
            "the function is a fn pointer outside the program's code (a dynamically loaded \
             library), which a worker cannot find; use a fn item",
        ),
        _ => Err(
            "the function is a closure that captures state, which a worker cannot recreate; \
             use a fn item or a fn pointer, and pass the state through the arguments",
        ),
    }
}

// SAFETY: `Entry` is a fn pointer type.
static CHUNKS: Kind<Entry> = unsafe { Kind::new() };
// SAFETY: `InitEntry` is a fn pointer type.
static INITS: Kind<InitEntry> = unsafe { Kind::new() };

/// How every worker finds `f` as a chunk's function (`run_chunk::<F, A>`).
/// An error names what a worker cannot find (`PoolError::InvalidArgument`).
pub(crate) fn task_fn<F, A>(f: &F) -> Result<TaskFn, &'static str>
where
    F: Target<A> + Copy,
    A: DeserializeOwned + 'static,
    F::Output: Serialize,
{
    const { check_findable::<F>() };
    Ok(TaskFn {
        entry: mp_spawn::code_ref!(CHUNKS, run_chunk::<F, A>).raw(),
        code: code_of(f)?,
    })
}

/// How every worker finds `f` as its initializer (`run_init::<F, A>`).
pub(crate) fn init_fn<F, A>(f: &F) -> Result<TaskFn, &'static str>
where
    F: Target<A> + Copy,
    A: DeserializeOwned,
{
    const { check_findable::<F>() };
    Ok(TaskFn {
        entry: mp_spawn::code_ref!(INITS, run_init::<F, A>).raw(),
        code: code_of(f)?,
    })
}

/// The chunk entry `entry` names, if it names one (a task frame from this worker's pool
/// always does).
pub(crate) fn entry_at(entry: RawCodeRef) -> Option<Entry> {
    CHUNKS.resolve(entry).map(|r| r.get())
}

/// The initializer, as it travels to each worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct InitSpec {
    pub(crate) task: TaskFn,
    pub(crate) args: Vec<u8>,
    pub(crate) fds: Vec<Fd>,
}

impl InitSpec {
    pub(crate) fn try_clone(&self) -> std::io::Result<InitSpec> {
        Ok(InitSpec {
            task: self.task,
            args: self.args.clone(),
            fds: self
                .fds
                .iter()
                .map(|fd| fd.as_fd().try_clone_to_owned().map(Fd::new))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The initializer entry `entry` names, if it names one.
pub(crate) fn init_entry_at(entry: RawCodeRef) -> Option<InitEntry> {
    INITS.resolve(entry).map(|r| r.get())
}

/// The function `F` again, in a worker: `None` if it cannot be found.
fn recreate<F: Target<A>, A>(code: i64) -> Option<F> {
    // SAFETY: task frames and initializer specs come only from this worker's pool, which ran
    // this same executable image and computed `code` with `code::locate` for a value of type
    // `F` (`task_fn`, `init_fn`).
    unsafe { mp_spawn::code::recreate::<F, A>(code) }
}

fn run_chunk<F, A>(
    payload: &[u8],
    fds: Vec<OwnedFd>,
    code: i64,
    frame: &mut Vec<u8>,
    send: Send<'_>,
    tick: Tick<'_>,
) where
    F: Target<A> + Copy,
    A: DeserializeOwned + 'static,
    F::Output: Serialize,
{
    let decoded = match plain::decode(payload) {
        Some(values) => values.map_err(reduction::DecodeError),
        None => reduction::loads(payload, fds),
    };
    let items: Vec<A> = match decoded {
        Ok(items) => items,
        Err(e) => {
            wire::set_outcome(frame, Outcome::DecodeFailed);
            frame.extend_from_slice(e.to_string().as_bytes());
            return send(frame, &[]);
        }
    };
    let Some(f) = recreate::<F, A>(code) else {
        wire::set_outcome(frame, Outcome::DecodeFailed);
        frame.extend_from_slice(b"the worker cannot find the task's function");
        return send(frame, &[]);
    };
    let mut out = Vec::with_capacity(items.len());
    for (offset, args) in items.into_iter().enumerate() {
        match panic::catch_unwind(AssertUnwindSafe(|| f.call(args))) {
            Ok(value) => {
                out.push(value);
                tick();
            }
            Err(payload) => {
                wire::set_outcome(frame, Outcome::Panicked);
                wire::put_u64(frame, offset as u64);
                frame.extend_from_slice(panic_message(&*payload).as_bytes());
                return send(frame, &[]);
            }
        }
    }
    if plain::encode(&out, frame) {
        return send(frame, &[]);
    }
    let len = frame.len();
    match reduction::dumps_into(&out, frame) {
        Ok(fds) => send(frame, &fds.iter().map(AsFd::as_fd).collect::<Vec<_>>()),
        Err(e) => {
            frame.truncate(len);
            wire::set_outcome(frame, Outcome::EncodeFailed);
            frame.extend_from_slice(e.0.as_bytes());
            send(frame, &[]);
        }
    }
}

fn run_init<F, A>(payload: &[u8], fds: Vec<OwnedFd>, code: i64) -> Result<(), String>
where
    F: Target<A> + Copy,
    A: DeserializeOwned,
{
    let args: A = reduction::loads(payload, fds).map_err(|e| e.to_string())?;
    let f: F = recreate::<F, A>(code)
        .ok_or_else(|| "the worker cannot find the initializer".to_owned())?;
    panic::catch_unwind(AssertUnwindSafe(|| {
        f.call(args);
    }))
    .map_err(|payload| panic_message(&*payload))
}

thread_local! {
    /// The last panic of this thread, as the worker's panic hook recorded it.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Set in a worker process: its panics are recorded for the caller, not printed.
static IN_WORKER: AtomicBool = AtomicBool::new(false);

/// Installs the panic hook that makes a worker's panics silent: their message, with its
/// location, travels back to the caller instead of being printed in the worker. Outside a
/// worker it hands over to the hook it wraps. Installed once, before the first worker is
/// forked: a forked child must not call `set_hook`, whose lock another thread of the parent
/// may have held at the fork (while printing a panic).
pub(crate) fn install_panic_capture() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // mp-spawn's hook ("Process name:" before a child's panic) goes inside ours.
        mp_spawn::install_panic_hook();
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_WORKER.load(Ordering::Relaxed) {
                let text = info.to_string();
                LAST_PANIC.with(|last| *last.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

/// Marks this process as a worker (see [`install_panic_capture`]).
pub(crate) fn become_worker() {
    install_panic_capture();
    IN_WORKER.store(true, Ordering::Relaxed);
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + std::marker::Send)) -> String {
    LAST_PANIC
        .with(|last| last.borrow_mut().take())
        .or_else(|| {
            payload
                .downcast_ref::<&str>()
                .map(|s| format!("panicked: {s}"))
        })
        .or_else(|| {
            payload
                .downcast_ref::<String>()
                .map(|s| format!("panicked: {s}"))
        })
        .unwrap_or_else(|| "panicked".to_owned())
}

#[cfg(test)]
mod test;
