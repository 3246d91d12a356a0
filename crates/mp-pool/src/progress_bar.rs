//! The bar of a watched call (feature `progress`): a thread that reads the call's counters on
//! the progress board (see `progress`) and draws them with indicatif until the call settles.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use crate::core::Inner;
use crate::result::Job;

/// How often the bar is redrawn.
const TICK: Duration = Duration::from_millis(100);

/// Shows a bar for `job` on stderr (drawn only on a terminal) until it settles or is
/// dropped: `total` items if known, counted per item by the workers (see the module
/// notes). Call it before the job's chunks are submitted. Without a free row or a
/// thread, the call runs without a bar.
pub(crate) fn watch(inner: &Arc<Inner>, job: &Arc<Job>, total: Option<u64>) {
    let Some(tally) = inner.rows().take() else {
        return;
    };
    job.set_tally(tally);
    let (owner, owner_job) = (Arc::clone(inner), job);
    let (inner, job): (Arc<Inner>, Weak<Job>) = (Arc::clone(inner), Arc::downgrade(job));
    let spawned = std::thread::Builder::new()
        .name("mp-pool-progress".to_owned())
        .spawn(move || {
            let bar = match total {
                Some(n) => indicatif::ProgressBar::new(n),
                None => indicatif::ProgressBar::no_length(),
            };
            bar.set_style(style(total.is_some()));
            loop {
                let job = job.upgrade();
                let settled = job.as_ref().is_none_or(|j| j.is_settled());
                let count = inner.board().count(tally);
                bar.set_position(total.map_or(count, |n| count.min(n)));
                if settled {
                    if let Some(job) = job {
                        job.set_counted(count);
                    }
                    break;
                }
                drop(job);
                std::thread::park_timeout(TICK);
            }
            bar.finish();
            inner.rows().give_back(tally);
        });
    match spawned {
        Ok(thread) => *lock(&owner_job.bar) = Some(thread),
        Err(_) => owner.rows().give_back(tally),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The items of a watched `job` its workers have finished (`None`: not watched).
pub(crate) fn count(inner: &Inner, job: &Job) -> Option<u64> {
    let tally = job.tally()?;
    let live = inner.board().count(tally);
    // Counted for good once the bar is done, and read after the board: the row may serve
    // another call by now, but then the final count was recorded first.
    Some(job.counted().unwrap_or(live))
}

fn style(known: bool) -> indicatif::ProgressStyle {
    let template = if known {
        "{bar:40} {pos}/{len} [{elapsed_precise}<{eta_precise}, {per_sec}]"
    } else {
        "{spinner} {pos} [{elapsed_precise}, {per_sec}]"
    };
    indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
}
