//! Copies to and from memory that other threads or processes may write at the same moment.
//!
//! A plain or volatile copy that races with a write is a data race, undefined behaviour in
//! Rust's model, even for `Pod` data. These copies go through relaxed atomics instead, and
//! every access is an `AtomicU64` on the 8-aligned word that contains the bytes: the size and
//! place of an access depend on the address alone, never on the range asked for, so two racing
//! copies never use atomics that partly overlap (which Rust's model does not allow either). A
//! partial word is read whole and its bytes picked out, or written by a compare-and-swap of
//! the whole word. A read that races with writes therefore sees, word by word, one of the
//! values written: possibly a mix of two writes across words (a torn value), never undefined
//! behaviour. Relaxed atomics compile to plain moves, so the cost is the loss of `memcpy`'s
//! wide vector moves, and a compare-and-swap at each unaligned edge of a write.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use bytemuck::Pod;

/// The 8-aligned words that cover `addr .. addr + len`: for each, its address, the offset of
/// the first wanted byte in it, and how many wanted bytes it holds.
fn words(addr: usize, len: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let first = addr & !7;
    let end = addr + len;
    (first..end).step_by(8).map(move |word| {
        let from = addr.max(word);
        let to = end.min(word + 8);
        (word, from - word, to - from)
    })
}

/// Copies `dst.len()` bytes from `src` into `dst`, as relaxed atomic loads of whole words.
///
/// # Safety
/// The 8-aligned words that contain `src .. src + dst.len()` must stay mapped and readable for
/// the call (true of any range inside a page-aligned mapping, as every mp-shm block and
/// segment is), and be written only through atomics (these copies) or by other processes.
pub(crate) unsafe fn load(src: *const u8, dst: &mut [u8]) {
    let mut done = 0;
    for (word, skip, n) in words(src as usize, dst.len()) {
        // SAFETY: `word` is 8-aligned and mapped (the caller); every Rust access to it is this
        // same-sized atomic, so the load races with nothing it may not.
        let bytes = unsafe { AtomicU64::from_ptr(word as *mut u64) }
            .load(Relaxed)
            .to_ne_bytes();
        dst[done..done + n].copy_from_slice(&bytes[skip..skip + n]);
        done += n;
    }
}

/// Copies `src` to `dst`, as relaxed atomic stores of whole words (a compare-and-swap where a
/// word is only partly written, so that its other bytes keep what others write there).
///
/// # Safety
/// As [`load`], for `dst .. dst + src.len()`, writable.
pub(crate) unsafe fn store(src: &[u8], dst: *mut u8) {
    let mut done = 0;
    for (word, skip, n) in words(dst as usize, src.len()) {
        // SAFETY: as in `load`.
        let atomic = unsafe { AtomicU64::from_ptr(word as *mut u64) };
        let part = &src[done..done + n];
        if n == 8 {
            let value = u64::from_ne_bytes(part.try_into().expect("a whole word"));
            atomic.store(value, Relaxed);
        } else {
            let _ = atomic.fetch_update(Relaxed, Relaxed, |old| {
                let mut bytes = old.to_ne_bytes();
                bytes[skip..skip + n].copy_from_slice(part);
                Some(u64::from_ne_bytes(bytes))
            });
        }
        done += n;
    }
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
    fn a_partial_write_keeps_the_bytes_around_it() {
        let mut buf = [u64::from_ne_bytes([1, 2, 3, 4, 5, 6, 7, 8]); 2];
        let base = buf.as_mut_ptr().cast::<u8>();
        // SAFETY: in `buf`, only touched here, through these copies.
        unsafe { store(&[0xAA, 0xBB, 0xCC], base.add(6)) };
        let mut back = [0u8; 16];
        // SAFETY: as above.
        unsafe { load(base, &mut back) };
        assert_eq!(
            back,
            [1, 2, 3, 4, 5, 6, 0xAA, 0xBB, 0xCC, 2, 3, 4, 5, 6, 7, 8]
        );
    }

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
