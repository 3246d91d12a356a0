//! The remote side of a [`Transport`](crate::transport::Transport): [`Pool::relay`] runs a
//! task frame that another pool's transport delivered, in this pool's workers, and gives the
//! answer to send back.

use crate::error::PoolError;
use crate::pool::Pool;
use crate::result::Job;
use crate::transport::failure_answer;
use crate::wire::{self, Limits, Prepared};

impl Pool {
    /// Runs a task frame that a remote pool's [`Transport`](crate::transport::Transport) delivered to this process, in this
    /// pool's workers; calls `answer` (on the pool's thread) with the frame to send back,
    /// which that pool's transport hands to its [`Sink::deliver`](crate::transport::Sink::deliver). `max_result_bytes` caps
    /// the encoded values (the transport's own limit on a message): a larger result is
    /// refused here with [`PoolError::ResultTooLarge`], as is one over the call's own limit.
    /// A frame that is not a task gets an answer that fails its chunk there.
    ///
    /// See the [`transport`](crate::transport) module for an example.
    ///
    /// # Safety
    /// `frame` must come from a pool of a process running this same executable image (the
    /// transport checks that, as mp-mpi compares the executables' SHA-256 before any task),
    /// which the caller trusts to run code here: a task whose function is a fn pointer names
    /// it by its offset in the image, and a worker calls what is there (docs/DESIGN.md, the
    /// trust model). A task's entry is always checked (exact registered entries only).
    pub unsafe fn relay(
        &self,
        frame: &[u8],
        max_result_bytes: usize,
        answer: impl FnOnce(Vec<u8>) + Send + 'static,
    ) {
        let Some(header) = wire::parse_task(frame) else {
            let id = wire::get_u64(frame, 1).unwrap_or(u64::MAX);
            let reason = format!("a task frame of {} bytes that does not parse", frame.len());
            return answer(failure_answer(id, &PoolError::BadFrame(reason)));
        };
        let cap = u64::try_from(max_result_bytes).unwrap_or(u64::MAX);
        let limits = Limits {
            timeout: None,
            retry: crate::Retry::default(),
            max_result: match header.limit {
                0 => cap,
                limit => limit.min(cap),
            },
        };
        let mut chunk = Prepared {
            chunk: 0,
            index: 0,
            len: usize::try_from(header.items).unwrap_or(usize::MAX),
            frame: frame.to_vec(),
            fds: Vec::new(),
            timeout: None,
            retry: crate::Retry::default(),
        };
        // This pool's own progress rows, not the sender's.
        chunk.set_tally(0);
        let job = Job::new(Some(1));
        let id = header.id;
        job.on_settled(Box::new(move |job: &Job| {
            let done = job.lock().done.pop_front();
            answer(match done {
                Some((_, Ok(part))) if part.fds.is_empty() => {
                    let mut frame = Vec::with_capacity(wire::RESULT_HEADER + part.bytes.len());
                    wire::result_header(&mut frame, 0, id);
                    frame.extend_from_slice(&part.bytes);
                    frame
                }
                Some((_, Ok(_))) => failure_answer(
                    id,
                    &PoolError::Encode(
                        "the values carry handles (descriptors), which cannot travel to \
                         another host"
                            .into(),
                    ),
                ),
                Some((_, Err(e))) => failure_answer(id, &e),
                None => failure_answer(id, &PoolError::Terminated),
            })
        }));
        if let Err(e) = self.inner().submit(&job, vec![chunk], limits) {
            for callback in job.finish(0, Err(e)) {
                callback();
            }
        }
    }
}
