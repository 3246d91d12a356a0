//! `wait`: block until any of several connections, queues or process sentinels is ready, as
//! Python's `multiprocessing.connection.wait`.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::{Duration, Instant};

use crate::connection::Connection;
use crate::ring::Ring;

/// Something [`wait`] can watch: a [`Connection`] (readable: a message or end-of-file is
/// there), a queue (an item is there), or a descriptor such as `Process::sentinel()` (readable:
/// the process ended).
///
/// Sealed: only mp-ipc's types (and borrowed descriptors) can be waited on.
pub trait Waitable: sealed::Sealed {}

pub(crate) mod sealed {
    /// How [`wait`](super::wait) watches an object. Public in a private module, so nothing
    /// outside mp-ipc can name it: that seals [`Waitable`](super::Waitable).
    pub trait Sealed {
        fn waiter(&self) -> super::Waiter<'_>;
    }
}

/// What [`wait`] watches for one object.
#[derive(Debug)]
pub struct Waiter<'a>(pub(crate) Inner<'a>);

#[derive(Debug)]
pub(crate) enum Inner<'a> {
    Connection(&'a Connection),
    Ring(&'a Ring),
    Fd(BorrowedFd<'a>),
}

impl Waitable for BorrowedFd<'_> {}

impl sealed::Sealed for BorrowedFd<'_> {
    fn waiter(&self) -> Waiter<'_> {
        Waiter(Inner::Fd(self.as_fd()))
    }
}

/// Waits until some of `objects` are ready, or `timeout` passes (`None`: forever; Python's
/// negative timeouts are `Duration::ZERO`). Returns the indices of the ready ones, in order;
/// empty on timeout. Closed connections and the write ends of one-way pipes are never ready.
///
/// ```
/// use std::time::Duration;
/// use mp_ipc::{pipe, wait, Waitable};
///
/// let (a, b) = pipe(true)?;
/// let (c, d) = pipe(true)?;
/// d.send(&1u8)?;
/// let ready = wait(&[&a as &dyn Waitable, &c], Some(Duration::from_secs(5)))?;
/// assert_eq!(ready, [1]);
/// # drop(b);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn wait(objects: &[&dyn Waitable], timeout: Option<Duration>) -> io::Result<Vec<usize>> {
    let deadline = mp_sys::deadline::of(timeout);
    let waiters: Vec<Inner<'_>> = objects.iter().map(|o| o.waiter().0).collect();
    let rings: Vec<&Ring> = waiters
        .iter()
        .filter_map(|w| match w {
            Inner::Ring(r) => Some(*r),
            _ => None,
        })
        .collect();
    for r in &rings {
        r.watch(true);
    }
    let result = wait_inner(&waiters, deadline);
    for r in &rings {
        r.watch(false);
    }
    result
}

// Here rather than in `connection`, so that `wait` depends on `connection` and not the other
// way round.
impl Waitable for Connection {}

impl sealed::Sealed for Connection {
    fn waiter(&self) -> Waiter<'_> {
        Waiter(Inner::Connection(self))
    }
}

fn wait_inner(waiters: &[Inner<'_>], deadline: Option<Instant>) -> io::Result<Vec<usize>> {
    // Keep each connection's descriptor open (its read guard) while it is polled.
    let guards: Vec<_> = waiters
        .iter()
        .map(|w| match w {
            Inner::Connection(c) => c.poll_handle(),
            _ => None,
        })
        .collect();
    // (index into `waiters`, descriptor) for every pollable object.
    let mut polled: Vec<(usize, BorrowedFd<'_>)> = Vec::new();
    for (i, w) in waiters.iter().enumerate() {
        match w {
            Inner::Connection(_) => {
                if let Some(fd) = guards[i].as_ref().and_then(|g| g.as_ref()) {
                    polled.push((i, fd.as_fd()));
                }
            }
            Inner::Ring(r) => polled.push((i, r.bell())),
            Inner::Fd(fd) => polled.push((i, *fd)),
        }
    }
    let fds: Vec<BorrowedFd<'_>> = polled.iter().map(|(_, fd)| *fd).collect();
    let mut first = true;
    loop {
        // A queue that already holds an item is ready without any doorbell.
        let mut ready: Vec<usize> = Vec::new();
        let readiness = if first {
            first = false;
            mp_sys::poll::readable_until(&fds, Some(Instant::now()))?
        } else {
            mp_sys::poll::readable_until(&fds, deadline)?
        };
        for (k, (i, _)) in polled.iter().enumerate() {
            let is_ready = match &waiters[*i] {
                Inner::Ring(r) => r.ready_for_wait(readiness[k]),
                _ => readiness[k],
            };
            if is_ready {
                ready.push(*i);
            }
        }
        if !ready.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(ready);
        }
    }
}
