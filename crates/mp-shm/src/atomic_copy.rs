//! Copies to and from memory that other threads or processes may write at the same moment.
//!
//! A plain or volatile copy that races with a write is a data race, undefined behaviour in
//! Rust's model, even for `Pod` data. These copies go through relaxed atomics instead: the
//! range is cut at fixed points (each piece is the largest of 8, 4, 2 or 1 bytes that is aligned
//! at its address and fits), and each piece is one atomic load or store. A read that races
//! with writes therefore sees, piece by piece, one of the values written: possibly a mix of two
//! writes across pieces (a torn value), never undefined behaviour. Relaxed atomics compile to
//! plain moves, so the cost is the loss of `memcpy`'s wide vector moves.

use std::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering::Relaxed};

use bytemuck::Pod;

/// The size of a small piece (under 8 bytes, or unaligned) that starts at `addr` with `left`
/// bytes to go.
#[inline]
fn piece(addr: usize, left: usize) -> usize {
    if addr % 4 == 0 && left >= 4 {
        4
    } else if addr % 2 == 0 && left >= 2 {
        2
    } else {
        1
    }
}

/// How a range splits: `head` bytes of small pieces up to the first 8-aligned address, `words`
/// 8-byte pieces, then the rest in small pieces. The same range always splits the same way.
#[inline]
fn split(addr: usize, len: usize) -> (usize, usize) {
    let head = ((8 - addr % 8) % 8).min(len);
    (head, (len - head) / 8)
}

/// Copies `dst.len()` bytes from `src` into `dst`, piece by piece as relaxed atomic loads.
///
/// # Safety
/// `src .. src + dst.len()` must stay mapped and readable for the call, and be written only
/// through atomics (these copies, the futex words) or by other processes.
pub(crate) unsafe fn load(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let (head, words) = split(src as usize, len);
    let load_small = |dst: &mut [u8], from: usize, to: usize| {
        let mut i = from;
        while i < to {
            // SAFETY: `src + i` is in the range (i < to <= len) and the piece fits in it.
            let at = unsafe { src.add(i) }.cast_mut();
            let n = piece(at as usize, to - i);
            // SAFETY: `at` is aligned for the piece's atomic type (`piece`) and valid for the
            // call; the caller guarantees no non-atomic access races with it.
            unsafe {
                match n {
                    4 => dst[i..i + 4].copy_from_slice(
                        &AtomicU32::from_ptr(at.cast()).load(Relaxed).to_ne_bytes(),
                    ),
                    2 => dst[i..i + 2].copy_from_slice(
                        &AtomicU16::from_ptr(at.cast()).load(Relaxed).to_ne_bytes(),
                    ),
                    _ => dst[i] = AtomicU8::from_ptr(at).load(Relaxed),
                }
            }
            i += n;
        }
    };
    load_small(dst, 0, head);
    let body = &mut dst[head..head + words * 8];
    for (k, out) in body.chunks_exact_mut(8).enumerate() {
        // SAFETY: `src + head` is 8-aligned (`split`) and word `k` is inside the range; as
        // above for the races.
        let word = unsafe { AtomicU64::from_ptr(src.add(head + 8 * k).cast_mut().cast()) };
        out.copy_from_slice(&word.load(Relaxed).to_ne_bytes());
    }
    load_small(dst, head + words * 8, len);
}

/// Copies `src` to `dst`, piece by piece as relaxed atomic stores.
///
/// # Safety
/// `dst .. dst + src.len()` must stay mapped and writable for the call, and be accessed only
/// through atomics or by other processes.
pub(crate) unsafe fn store(src: &[u8], dst: *mut u8) {
    let len = src.len();
    let (head, words) = split(dst as usize, len);
    let store_small = |from: usize, to: usize| {
        let mut i = from;
        while i < to {
            // SAFETY: as in `load`.
            let at = unsafe { dst.add(i) };
            let n = piece(at as usize, to - i);
            // SAFETY: as in `load`.
            unsafe {
                match n {
                    4 => AtomicU32::from_ptr(at.cast()).store(
                        u32::from_ne_bytes([src[i], src[i + 1], src[i + 2], src[i + 3]]),
                        Relaxed,
                    ),
                    2 => AtomicU16::from_ptr(at.cast())
                        .store(u16::from_ne_bytes([src[i], src[i + 1]]), Relaxed),
                    _ => AtomicU8::from_ptr(at).store(src[i], Relaxed),
                }
            }
            i += n;
        }
    };
    store_small(0, head);
    for (k, chunk) in src[head..head + words * 8].chunks_exact(8).enumerate() {
        let value = u64::from_ne_bytes(chunk.try_into().expect("chunks_exact(8)"));
        // SAFETY: as in `load`'s word loop.
        unsafe { AtomicU64::from_ptr(dst.add(head + 8 * k).cast()).store(value, Relaxed) };
    }
    store_small(head + words * 8, len);
}

/// Reads a `T` at `src` (see [`load`]).
///
/// # Safety
/// As [`load`], for `size_of::<T>()` bytes.
pub(crate) unsafe fn read<T: Pod>(src: *const T) -> T {
    let mut value = T::zeroed();
    // SAFETY: forwarded to the caller; `value` is a local T, whose bytes any bytes are (Pod).
    unsafe { load(src.cast(), bytemuck::bytes_of_mut(&mut value)) };
    value
}

/// Writes `value` at `dst` (see [`store`]).
///
/// # Safety
/// As [`store`], for `size_of::<T>()` bytes.
pub(crate) unsafe fn write<T: Pod>(dst: *mut T, value: T) {
    // SAFETY: forwarded to the caller.
    unsafe { store(bytemuck::bytes_of(&value), dst.cast()) }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn round_trips_at_every_alignment_and_length() {
        let mut buf = [0u64; 8];
        let base = buf.as_mut_ptr().cast::<u8>();
        for start in 0..16 {
            for len in 0..40 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + start) as u8 | 1).collect();
                // SAFETY: in `buf`, only touched here, through these copies.
                unsafe { store(&data, base.add(start)) };
                let mut back = vec![0u8; len];
                // SAFETY: as above.
                unsafe { load(base.add(start), &mut back) };
                assert_eq!(back, data);
            }
        }
    }
}
