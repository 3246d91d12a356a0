//! The engine's side of a pool over a [`Transport`]: starting it (its workers are the
//! transport's, up as soon as it is), the answers its transport hands over, and the timer
//! thread that fails the chunks past their timeout (a local pool's handler does that itself).

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use super::{Backend, Inner, Link, run};
use crate::builder::Config;
use crate::error::PoolError;
use crate::interrupt;
use crate::progress::{Board, Rows};
use crate::scheduler::{Scheduler, Status, Worker};
use crate::transport::{self, Answers, Sink, Transport};
use crate::wire;

impl Inner {
    /// Starts a pool over `transport`'s workers, and its timer thread (returned, for `join`),
    /// which fails the chunks that run past their timeout.
    pub(crate) fn start_remote(
        config: Config,
        transport: Arc<dyn Transport>,
    ) -> Result<(Arc<Inner>, Vec<JoinHandle<()>>), PoolError> {
        crate::task::install_panic_capture();
        let workers = transport.workers();
        if workers == 0 {
            return Err(PoolError::InvalidArgument(
                "the transport reaches no worker",
            ));
        }
        let mut state = Scheduler::new(workers, false);
        for slot in 0..workers {
            let generation = state.next_generation();
            let link = Link::Remote(transport::Remote {
                worker: slot,
                rank: transport.rank(slot),
                transport: Arc::clone(&transport),
            });
            state.workers[slot] = Some(
                Worker::new(link, 0, generation, None).running_at_once(transport.parallel(slot)),
            );
            // Up as soon as the transport is: it started them.
            state.on_ready(slot as u32);
        }
        let inner = Arc::new(Inner {
            state: Mutex::new(state),
            ready: Condvar::new(),
            backend: Backend::Remote(Arc::clone(&transport)),
            board: Board::shared(workers)?,
            rows: Rows::default(),
            started: AtomicUsize::new(workers),
            config,
        });
        let answers: Arc<dyn Answers> = Arc::clone(&inner) as Arc<dyn Answers>;
        transport.start(Sink::new(Arc::downgrade(&answers)))?;
        let timer_inner = Arc::clone(&inner);
        let timer = std::thread::Builder::new()
            .name("mp-pool-timer".into())
            .spawn(move || timer_inner.run_timer());
        let timer = match timer {
            Ok(timer) => timer,
            Err(e) => {
                inner.terminate_all();
                transport.shutdown();
                return Err(e.into());
            }
        };
        interrupt::register_pool(&inner);
        Ok((inner, vec![timer]))
    }

    /// A remote pool's timer thread: fails the chunks past their timeout, until the pool is
    /// terminated, or closed with nothing left to run.
    fn run_timer(&self) {
        let mut st = self.lock();
        loop {
            match st.status {
                Status::Terminated => return,
                Status::Closed if st.idle() => return,
                _ => {}
            }
            let mut callbacks = self.expire_locked(&mut st);
            if !callbacks.is_empty() {
                callbacks.extend(st.dispatch());
                drop(st);
                run(callbacks);
                st = self.lock();
                continue;
            }
            st.wakes_at = st.next_deadline();
            st = match st.wakes_at {
                None => self.ready.wait(st).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    self.ready
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }
}

impl Answers for Inner {
    /// An answer from remote worker `slot`, as its transport received it.
    fn on_answer(&self, slot: usize, answer: Vec<u8>) {
        let slot32 = u32::try_from(slot).unwrap_or(u32::MAX);
        let mut st = self.lock();
        let mut callbacks = match wire::parse_answer(&answer) {
            Err(reason) => st.on_bad_frame(slot32, reason),
            Ok((id, _)) if !st.holds(slot32, id) => st.on_bad_frame(
                slot32,
                format!("an answer to chunk {id}, which the worker does not hold"),
            ),
            Ok((id, outcome)) => {
                if let (wire::Outcome::Ok, Some((tally, items))) = (outcome, st.watched_items(id)) {
                    self.board.0.add(slot32, tally, items);
                }
                let mut answer = answer;
                answer.drain(..wire::RESULT_HEADER);
                st.on_result(slot32, id, outcome, answer, Vec::new())
            }
        };
        callbacks.extend(st.dispatch());
        if st.idle() {
            self.ready.notify_all();
        }
        drop(st);
        run(callbacks);
    }
}
