//! A task on the wire, and how a worker finds the function to run.
//!
//! The parent names a function by the offset of a monomorphised trampoline from [`anchor`];
//! the worker adds its own `anchor` address (ASLR moves the image, not the distances in it).
//! That is sound because every worker runs the parent's executable image: mp-spawn forks it,
//! or re-executes it after checking its identity, and a worker never takes frames from
//! anyone but its pool.
//!
//! The frames themselves are in `wire`.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};

use mp_spawn::Target;
use mp_spawn::reduction;
use serde::Serialize;

use crate::plain;
use crate::wire::{self, Outcome};
use serde::de::DeserializeOwned;

/// Sends a finished result frame (its bytes and the handles the values carry).
pub(crate) type Send<'s> = &'s mut dyn FnMut(&[u8], &[BorrowedFd<'_>]);
/// Decodes a chunk's arguments, runs it, and sends the result frame: `frame` holds the
/// `Result` header, and the entry sets the outcome and appends the body.
pub(crate) type Entry = fn(&[u8], Vec<OwnedFd>, &mut Vec<u8>, Send<'_>);
/// Decodes an initializer's arguments and calls it.
pub(crate) type InitEntry = fn(&[u8], Vec<OwnedFd>) -> Result<(), String>;

/// The fixed point that code addresses are measured from. Never inlined: a small function may
/// otherwise get a local copy in each codegen unit, each at its own address.
#[inline(never)]
fn anchor() {}

fn anchor_addr() -> i64 {
    anchor as fn() as usize as i64
}

/// The offset that names `run_chunk::<F, A>` in every worker.
pub(crate) fn entry_offset<F, A>() -> i64
where
    F: Target<A> + Copy,
    A: DeserializeOwned + 'static,
    F::Output: Serialize,
{
    run_chunk::<F, A> as Entry as usize as i64 - anchor_addr()
}

/// The offset that names `run_init::<F, A>` in every worker.
pub(crate) fn init_offset<F, A>() -> i64
where
    F: Target<A> + Copy,
    A: DeserializeOwned,
{
    run_init::<F, A> as InitEntry as usize as i64 - anchor_addr()
}

/// The chunk entry at `offset`.
///
/// # Safety
/// `offset` must come from [`entry_offset`] in a process running the same executable image.
pub(crate) unsafe fn entry_at(offset: i64) -> Entry {
    // SAFETY: the caller guarantees that the offset was computed from `anchor` in this image,
    // so anchor + offset is the address of a function of type `Entry`.
    unsafe { std::mem::transmute::<usize, Entry>((anchor_addr() + offset) as usize) }
}

/// The initializer entry at `offset`.
///
/// # Safety
/// `offset` must come from [`init_offset`] in a process running the same executable image.
pub(crate) unsafe fn init_entry_at(offset: i64) -> InitEntry {
    // SAFETY: as in `entry_at`.
    unsafe { std::mem::transmute::<usize, InitEntry>((anchor_addr() + offset) as usize) }
}

/// A value of the zero-sized function type `F`.
fn conjure<F>() -> F {
    const {
        assert!(
            std::mem::size_of::<F>() == 0,
            "a pool needs a fn item or a non-capturing closure, so that every worker can find \
             it; pass state through the arguments"
        )
    };
    // SAFETY: F is zero-sized (asserted above), and is a fn item or closure type, which is
    // inhabited and has no bytes to initialise; the parent held a value of it.
    unsafe { std::mem::zeroed() }
}

fn run_chunk<F, A>(payload: &[u8], fds: Vec<OwnedFd>, frame: &mut Vec<u8>, send: Send<'_>)
where
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
    let f: F = conjure();
    let mut out = Vec::with_capacity(items.len());
    for (offset, args) in items.into_iter().enumerate() {
        match panic::catch_unwind(AssertUnwindSafe(|| f.call(args))) {
            Ok(value) => out.push(value),
            Err(payload) => {
                wire::set_outcome(frame, Outcome::Panicked);
                frame.extend_from_slice(&(offset as u64).to_le_bytes());
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

fn run_init<F, A>(payload: &[u8], fds: Vec<OwnedFd>) -> Result<(), String>
where
    F: Target<A> + Copy,
    A: DeserializeOwned,
{
    let args: A = reduction::loads(payload, fds).map_err(|e| e.to_string())?;
    let f: F = conjure();
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
