//! The pool's watching threads: the *monitor* waits on the workers' pidfds and reports each
//! death on the result queue, and the *handler* reads the result queue (results, deaths,
//! readiness) and hands each batch to the pool.

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mp_ipc::Queue;

use crate::wire::{self, Msg};

/// How long the handler polls its queue before it sleeps: a result that comes within this
/// time costs no wake-up (tens of microseconds on a small VM).
const POLL: Duration = Duration::from_micros(50);
/// The most messages the handler takes under one lock.
const BATCH: usize = 256;

/// What the monitor thread is told.
enum Watch {
    Add {
        slot: u32,
        generation: u32,
        sentinel: OwnedFd,
    },
    Stop,
}

/// Tells the monitor thread about new workers; the socket wakes it from its wait.
pub(crate) struct Monitor {
    watches: mpsc::Sender<Watch>,
    wake: UnixStream,
}

impl Monitor {
    /// Starts the monitor thread, which reports deaths on `results`.
    pub(crate) fn start(
        results: Queue<()>,
    ) -> std::io::Result<(Monitor, std::thread::JoinHandle<()>)> {
        let (wake_rx, wake_tx) = mp_sys::socket::socketpair(mp_sys::socket::Kind::Stream)?;
        let (watch_tx, watch_rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("mp-pool-monitor".into())
            .spawn(move || monitor_loop(results, watch_rx, UnixStream::from(wake_rx)))?;
        Ok((
            Monitor {
                watches: watch_tx,
                wake: UnixStream::from(wake_tx),
            },
            thread,
        ))
    }

    /// Watches a new worker: its death will be reported as `Died slot generation`.
    pub(crate) fn add(&self, slot: u32, generation: u32, sentinel: OwnedFd) {
        let _ = self.watches.send(Watch::Add {
            slot,
            generation,
            sentinel,
        });
        let _ = (&self.wake).write_all(&[1]);
    }

    /// Ends the monitor thread.
    pub(crate) fn stop(&self) {
        let _ = self.watches.send(Watch::Stop);
        let _ = (&self.wake).write_all(&[1]);
    }
}

/// The monitor thread: waits on the workers' sentinels and reports each death on the result
/// queue, after the results the worker sent before it died.
fn monitor_loop(results: Queue<()>, watches: mpsc::Receiver<Watch>, mut wake: UnixStream) {
    let mut watched: Vec<(u32, u32, OwnedFd)> = Vec::new();
    loop {
        loop {
            match watches.try_recv() {
                Ok(Watch::Add {
                    slot,
                    generation,
                    sentinel,
                }) => watched.push((slot, generation, sentinel)),
                Ok(Watch::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        let mut objects: Vec<BorrowedFd<'_>> = vec![wake.as_fd()];
        objects.extend(watched.iter().map(|(_, _, fd)| fd.as_fd()));
        let refs: Vec<&dyn mp_ipc::Waitable> = objects
            .iter()
            .map(|fd| fd as &dyn mp_ipc::Waitable)
            .collect();
        let ready = match mp_ipc::wait(&refs, None) {
            Ok(ready) => ready,
            Err(_) => return,
        };
        let mut dead = Vec::new();
        for index in ready {
            if index == 0 {
                let mut buf = [0u8; 64];
                let _ = wake.read(&mut buf);
            } else {
                dead.push(index - 1);
            }
        }
        dead.sort_unstable();
        for index in dead.into_iter().rev() {
            let (slot, generation, _) = watched.remove(index);
            if results
                .put_bytes(&wire::died(slot, generation), &[])
                .is_err()
            {
                return;
            }
        }
    }
}

/// The handler thread's loop: reads the result queue and hands what has arrived, in batches,
/// to `on_batch` (which empties it, and says whether the pool is finished and when the next
/// running chunk's timeout ends), also with nothing once that deadline passes; calls
/// `on_broken` and stops if the queue breaks (nothing more can arrive). (A submission with a
/// timeout wakes it, so that it learns the new deadline.)
pub(crate) fn handle_results(
    results: &Queue<()>,
    mut on_batch: impl FnMut(&mut Vec<Msg>) -> (bool, Option<Instant>),
    on_broken: impl FnOnce(),
) {
    let mut msgs = Vec::with_capacity(BATCH);
    let mut next_deadline = None;
    loop {
        crate::spin::spin_for(POLL, || results.qsize() > 0);
        let wait = next_deadline.map(|d: Instant| d.saturating_duration_since(Instant::now()));
        match results.get_bytes(wait, Msg::parse) {
            Ok(msg) => msgs.push(msg),
            // A timeout is due: the batch is empty.
            Err(mp_ipc::GetError::Empty) => {}
            // The queue is broken: nothing more can arrive. Fail what is left.
            Err(_) => {
                on_broken();
                break;
            }
        }
        // Whatever else has arrived, under one lock.
        while msgs.len() < BATCH && results.qsize() > 0 {
            match results.get_bytes(Some(Duration::ZERO), Msg::parse) {
                Ok(msg) => msgs.push(msg),
                Err(_) => break,
            }
        }
        let (finished, next) = on_batch(&mut msgs);
        if finished {
            break;
        }
        next_deadline = next;
    }
}
