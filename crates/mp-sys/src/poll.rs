//! Waiting for descriptors to become readable.

use std::io;
use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};

/// Waits until one of `fds` is ready for reading (or hung up), or `timeout` passes.
/// Returns, per fd, whether it is ready. `None` waits forever.
///
/// ```
/// use std::os::fd::AsFd;
/// use std::time::Duration;
/// let (r, w) = mp_sys::fd::pipe()?;
/// assert_eq!(mp_sys::poll::readable(&[r.as_fd()], Some(Duration::ZERO))?, [false]);
/// drop(w);
/// assert_eq!(mp_sys::poll::readable(&[r.as_fd()], None)?, [true]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn readable(fds: &[BorrowedFd<'_>], timeout: Option<Duration>) -> io::Result<Vec<bool>> {
    readable_until(fds, crate::deadline::of(timeout))
}

/// As [`readable`], until a deadline (`None`: forever); a past deadline does not wait.
///
/// ```
/// use std::os::fd::AsFd;
/// let (r, _w) = mp_sys::fd::pipe()?;
/// let past = std::time::Instant::now();
/// assert_eq!(mp_sys::poll::readable_until(&[r.as_fd()], Some(past))?, [false]);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn readable_until(fds: &[BorrowedFd<'_>], deadline: Option<Instant>) -> io::Result<Vec<bool>> {
    let mut pfds: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::from_borrowed_fd(*fd, PollFlags::IN))
        .collect();
    loop {
        let timeout = deadline.map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            Timespec {
                tv_sec: left.as_secs().min(i64::MAX as u64) as i64,
                tv_nsec: left.subsec_nanos().into(),
            }
        });
        match rustix::event::poll(&mut pfds, timeout.as_ref()) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(pfds.iter().map(|p| !p.revents().is_empty()).collect()),
        }
    }
}

/// Whether `fd` is writable (or hung up, or in error) right now, without waiting.
///
/// ```
/// use std::os::fd::AsFd;
/// let (_r, w) = mp_sys::fd::pipe()?;
/// assert!(mp_sys::poll::writable_now(w.as_fd())?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn writable_now(fd: BorrowedFd<'_>) -> io::Result<bool> {
    let mut pfds = [PollFd::from_borrowed_fd(fd, PollFlags::OUT)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    loop {
        match rustix::event::poll(&mut pfds, Some(&zero)) {
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => return Ok(!pfds[0].revents().is_empty()),
        }
    }
}
