//! The kernel's random source (`getrandom`, on rustix).

use std::io;

/// Fills `buf` from the kernel's random source.
///
/// ```
/// let mut nonce = [0u8; 16];
/// mp_sys::random::fill(&mut nonce)?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn fill(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        filled += crate::retry(|| {
            rustix::rand::getrandom(&mut *rest, rustix::rand::GetRandomFlags::empty())
        })?;
    }
    Ok(())
}
