//! Sends that do not block: the master's thread must never wait in a send to a rank, or a rank
//! that waits in its own send of a large answer (MPI's rendezvous) would wait for it forever.
//! rsmpi's non-blocking send borrows its buffer for the request's life; a frame here is owned
//! by the [`Sending`] that sends it, and freed only once the request has completed.

use mpi::request::{Request, StaticScope};
use mpi::traits::*;

/// One frame on its way to a rank.
pub(crate) struct Sending {
    /// `None` once completed (a `Request` must not be dropped before).
    request: Option<Request<'static, [u8], StaticScope>>,
    /// The frame the request reads: leaked for it, reclaimed in `drop`.
    frame: *mut [u8],
}

impl Sending {
    /// Starts sending `frame` to `rank` with `tag`.
    pub(crate) fn start(
        world: &mpi::topology::SimpleCommunicator,
        rank: i32,
        tag: i32,
        frame: Vec<u8>,
    ) -> Sending {
        let frame: &'static mut [u8] = Box::leak(frame.into_boxed_slice());
        let ptr: *mut [u8] = frame;
        // Reborrowed shared for the request; the mutable one is not used again.
        // SAFETY: `ptr` was just made from a live, leaked, exclusively owned allocation; the
        // shared reference lives as long as the request, and `drop` frees the allocation only
        // after the request is complete and gone.
        let shared: &'static [u8] = unsafe { &*ptr };
        let request = world
            .process_at_rank(rank)
            .immediate_send_with_tag(StaticScope, shared, tag);
        Sending {
            request: Some(request),
            frame: ptr,
        }
    }

    /// Whether the send has completed (the rank received the frame, or MPI buffered it).
    pub(crate) fn done(&mut self) -> bool {
        match self.request.take() {
            None => true,
            Some(request) => match request.test() {
                Ok(_) => true,
                Err(request) => {
                    self.request = Some(request);
                    false
                }
            },
        }
    }
}

impl Drop for Sending {
    fn drop(&mut self) {
        if let Some(request) = self.request.take() {
            // Waits for the rank to take it: the job's end waits for every rank anyway.
            request.wait_without_status();
        }
        // SAFETY: the request that read the frame has completed and is gone, so nothing
        // refers to the allocation `start` leaked any more; it is freed exactly once, here.
        drop(unsafe { Box::from_raw(self.frame) });
    }
}
