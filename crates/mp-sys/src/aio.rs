//! Readiness for async code (feature `async`): a future that resolves when one of a few
//! descriptors turns readable (or one turns writable), on async-io's reactor.
//!
//! async-io's reactor is runtime-agnostic: a thread of its own (`async-io`) drives it unless
//! the program uses `async_io::block_on`, so these futures resolve under tokio (either
//! flavour), smol, or `futures::executor::block_on` alike. Nothing here spins.
//!
//! Each future registers duplicates of its descriptors and drops them when it ends: two
//! futures may watch the same descriptor at once (epoll refuses a second registration of one
//! descriptor number), a future dropped early leaves nothing registered, and nothing is left
//! in the reactor that a forked child could touch (a forked child that never awaits never
//! calls into async-io; see docs/DESIGN.md, "Async").

use std::future::Future;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use async_io::Async;

/// Which readiness a [`Ready`] future waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Read,
    Write,
}

/// A future that resolves once any of its descriptors is ready (see [`readable`] and
/// [`writable`]). Readiness is a hint: the caller re-checks its own state afterwards.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct Ready {
    sources: Vec<Async<OwnedFd>>,
    want: Want,
}

/// Resolves once any of `fds` is readable (or hung up, or in error).
///
/// ```
/// use std::os::fd::AsFd;
/// let bell = mp_sys::eventfd::new()?;
/// mp_sys::eventfd::ring(bell.as_fd());
/// // Any executor: async-io's own here, tokio's or smol's alike.
/// async_io::block_on(mp_sys::aio::readable(&[bell.as_fd()])?)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn readable(fds: &[BorrowedFd<'_>]) -> io::Result<Ready> {
    Ready::new(fds, Want::Read)
}

/// Resolves once `fd` is writable (or hung up, or in error).
pub fn writable(fd: BorrowedFd<'_>) -> io::Result<Ready> {
    Ready::new(&[fd], Want::Write)
}

impl Ready {
    fn new(fds: &[BorrowedFd<'_>], want: Want) -> io::Result<Ready> {
        let sources = fds
            .iter()
            .map(|fd| {
                // A duplicate: its own registration, however many futures watch `fd`. Not set
                // non-blocking (that flag is shared with `fd`, whose owner may block on it);
                // nothing reads through it.
                Async::new_nonblocking(fd.try_clone_to_owned()?)
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Ready { sources, want })
    }
}

impl Future for Ready {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // Every source is polled, so that each one has the task's waker.
        let mut ready = false;
        for s in &self.sources {
            let p = match self.want {
                Want::Read => s.poll_readable(cx),
                Want::Write => s.poll_writable(cx),
            };
            match p {
                Poll::Ready(Ok(())) => ready = true,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => {}
            }
        }
        if ready || self.sources.is_empty() {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}
