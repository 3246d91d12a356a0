//! A process's caps on memory and CPU time: set them, read them, and tell which one the
//! process died of (see [`limits`](crate::limits)).

use crate::limits::{LimitHit, Limits};
use crate::target::Outcome;

use super::Process;

impl<R> Process<R> {
    /// Caps the child's memory and CPU time (builder style; see [`Limits`]): applied in the
    /// child before the target runs, under every start method. A child that dies of a cap
    /// gives [`ProcessError::MemoryLimit`](crate::ProcessError::MemoryLimit) or
    /// [`ProcessError::CpuLimit`](crate::ProcessError::CpuLimit) from `join`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use mp_spawn::{LimitHit, Limits, ProcessError};
    ///
    /// fn spin() {
    ///     let mut x = 0u64;
    ///     loop {
    ///         x = std::hint::black_box(x.wrapping_add(1));
    ///     }
    /// }
    ///
    /// let ctx = mp_spawn::get_context("spawn").unwrap();
    /// let limits = Limits::new().cpu_time(Duration::from_millis(200)).memory(256 << 20);
    /// let mut p = ctx.process(spin, ()).with_limits(limits);
    /// p.start()?;
    /// assert!(matches!(p.join(), Err(ProcessError::CpuLimit { .. })));
    /// assert_eq!(p.limit_hit(), Some(LimitHit::Cpu { limit: Duration::from_millis(200) }));
    /// # Ok::<(), ProcessError>(())
    /// ```
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// The caps set with [`with_limits`](Process::with_limits).
    ///
    /// ```
    /// fn nothing() {}
    /// let limits = mp_spawn::Limits::new().memory(1 << 30);
    /// let p = mp_spawn::Process::new(nothing, ()).with_limits(limits.clone());
    /// assert_eq!(p.limits(), Some(&limits));
    /// ```
    pub fn limits(&self) -> Option<&Limits> {
        self.limits.as_ref()
    }

    /// Which cap the process died of, once it has ended: for code that reaps processes itself
    /// (a pool) rather than through [`join`](Process::join)'s errors. The memory cap, when the
    /// child reported that an allocation failed under it before it aborted (read by `join`),
    /// or when its cgroup counted an OOM kill; the CPU cap, when SIGXCPU killed it (see
    /// [`Limits::cause`]). `None` while the process runs, without limits, or when it ended
    /// otherwise: an explicit `abort()` or a stack overflow is no cap.
    ///
    /// ```
    /// use mp_spawn::{LimitHit, Limits, Process};
    ///
    /// fn hog() -> usize {
    ///     let mut held = Vec::new();
    ///     loop {
    ///         held.push(vec![1u8; 1 << 20]);
    ///     }
    /// }
    /// fn abort() {
    ///     std::process::abort()
    /// }
    ///
    /// let limits = Limits::new().memory(64 << 20);
    /// let mut p = Process::new(hog, ()).with_limits(limits.clone());
    /// p.start()?;
    /// let _ = p.join();
    /// assert_eq!(p.limit_hit(), Some(LimitHit::Memory { limit: 64 << 20 }));
    ///
    /// let mut p = Process::new(abort, ()).with_limits(limits);
    /// p.start()?;
    /// assert!(matches!(p.join(), Err(mp_spawn::ProcessError::Killed { signal: 6 })));
    /// assert_eq!(p.limit_hit(), None);
    /// # Ok::<(), mp_spawn::ProcessError>(())
    /// ```
    pub fn limit_hit(&self) -> Option<LimitHit> {
        let limits = self.limits.as_ref()?;
        let child = self.child.as_ref().filter(|c| c.is_ours())?;
        let code = child.try_reap().ok()??;
        if self.overflowed || matches!(self.outcome, Some((Outcome::StackOverflow, _))) {
            return None;
        }
        let out_of_memory =
            self.out_of_memory || matches!(self.outcome, Some((Outcome::OutOfMemory, _)));
        if out_of_memory || child.oom_killed() {
            return limits
                .memory_limit()
                .map(|limit| LimitHit::Memory { limit });
        }
        limits.cause(code)
    }
}
