//! The table inside a region: the mapping's bounds-checked access (`Mem`), the region header,
//! entries, and lookup, insertion, removal and rebuilding (`Table`). Every offset read from
//! shared memory is checked here before it is used.

use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use super::{
    EMPTY, ENTRY_HEADER, Hook, LOG_MASK, MAX_LOG, MIN_BUCKETS, MIN_LOG, R_BUCKETS, R_LEN, R_TOP,
    R_USED, REGION_HEADER, RESERVE, Shared, Stall, TOMB, corrupt,
};
use crate::atomic_copy;
use crate::error::DictError;
use crate::heap::Block;

pub(super) fn entry_size(key: &[u8], value: &[u8]) -> Result<u64, DictError> {
    let (k, v) = (key.len() as u64, value.len() as u64);
    if k > u64::from(u32::MAX) || v > u64::from(u32::MAX) {
        return Err(DictError::TooLarge);
    }
    Ok((ENTRY_HEADER + k + v).next_multiple_of(8))
}

/// The data block's mapping, with every access checked against it.
#[derive(Clone, Copy)]
pub(super) struct Mem<'a> {
    pub(super) base: *mut u8,
    pub(super) _block: PhantomData<&'a Block>,
}

impl<'a> Mem<'a> {
    /// The word at `off`, if it lies in the mapping and is aligned.
    pub(super) fn word(self, off: u64) -> Result<&'a AtomicU64, DictError> {
        if off % 8 != 0 || off > RESERVE - 8 {
            return Err(corrupt("an offset outside the map"));
        }
        // SAFETY: the data block maps at least RESERVE bytes (checked when made or attached)
        // from a page-aligned base, so `off` (checked above) is in it and 8-aligned; it
        // stays mapped for 'a; shared words are only reached through atomics.
        Ok(unsafe { &*self.base.add(off as usize).cast::<AtomicU64>() })
    }

    /// The start of `len` bytes at `off`, if they lie in the mapping.
    pub(super) fn range(self, off: u64, len: u64) -> Result<*mut u8, DictError> {
        if off.checked_add(len).is_none_or(|end| end > RESERVE) {
            return Err(corrupt("a range outside the map"));
        }
        // SAFETY: in the mapping (checked above), which is RESERVE bytes long.
        Ok(unsafe { self.base.add(off as usize) })
    }

    /// A copy of `len` bytes at `off`. Caller holds the lock, under which alone the dict
    /// writes the bytes; the copy is atomic all the same, because any holder of the dict's
    /// descriptor can map it and store into it without the lock.
    pub(super) fn read(self, off: u64, len: u64) -> Result<Vec<u8>, DictError> {
        let src = self.range(off, len)?;
        let mut out = vec![0; len as usize];
        // SAFETY: `src..src + len` is in the mapping (checked by `range`), which is
        // page-aligned and stays mapped for 'a; every access to it is atomic.
        unsafe { atomic_copy::load(src, &mut out) };
        Ok(out)
    }

    /// Whether the `bytes.len()` bytes at `off` equal `bytes`. Caller holds the lock.
    pub(super) fn equals(self, off: u64, bytes: &[u8]) -> Result<bool, DictError> {
        let src = self.range(off, bytes.len() as u64)?;
        const CHUNK: usize = 256;
        let mut buf = [0u8; CHUNK];
        for (i, want) in bytes.chunks(CHUNK).enumerate() {
            let got = &mut buf[..want.len()];
            // SAFETY: inside `src..src + bytes.len()`, in the mapping (checked by `range`),
            // page-aligned and mapped for 'a; every access to it is atomic.
            unsafe { atomic_copy::load(src.add(i * CHUNK), got) };
            if got != want {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Writes `bytes` at `off`. Caller holds the lock, and nothing links to the bytes yet.
    pub(super) fn write(self, off: u64, bytes: &[u8]) -> Result<(), DictError> {
        let dst = self.range(off, bytes.len() as u64)?;
        // SAFETY: in the mapping (checked by `range`), which is writable and stays mapped for
        // 'a; every access to it is atomic.
        unsafe { atomic_copy::store(bytes, dst) };
        Ok(())
    }

    /// Zero-fills `len` bytes at `off`. Caller holds the lock.
    pub(super) fn zero(self, off: u64, len: u64) -> Result<(), DictError> {
        const ZEROS: [u8; 4096] = [0; 4096];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(ZEROS.len() as u64);
            self.write(off + done, &ZEROS[..n as usize])?;
            done += n;
        }
        Ok(())
    }
}

/// A region: the table (header and buckets) followed by its arena of entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Region {
    pub(super) off: u64,
    pub(super) size: u64,
    pub(super) nb: u64,
}

impl Region {
    pub(super) fn word(self) -> u64 {
        self.off | u64::from(self.size.trailing_zeros())
    }

    pub(super) fn arena(self) -> u64 {
        REGION_HEADER + 8 * self.nb
    }
}

/// A checked entry: its offset in the region and lengths.
#[derive(Clone, Copy)]
pub(super) struct Entry {
    pub(super) at: u64,
    pub(super) hash: u64,
    pub(super) klen: u64,
    pub(super) vlen: u64,
}

pub(super) struct Table<'a> {
    pub(super) mem: Mem<'a>,
    pub(super) r: Region,
}

impl<'a> Table<'a> {
    /// The table the control word names, every field checked against the mapping.
    pub(super) fn load(mem: Mem<'a>, word: u64) -> Result<Table<'a>, DictError> {
        let log = word & LOG_MASK;
        let off = word & !LOG_MASK;
        if !(MIN_LOG..=MAX_LOG).contains(&log) {
            return Err(corrupt("a region size out of range"));
        }
        let size = 1u64 << log;
        if off.checked_add(size).is_none_or(|end| end > RESERVE) {
            return Err(corrupt("a region outside the map"));
        }
        let nb = mem.word(off + R_BUCKETS)?.load(Relaxed);
        if !nb.is_power_of_two() || nb < MIN_BUCKETS || nb > (size - REGION_HEADER) / 16 {
            return Err(corrupt("a bucket count out of range"));
        }
        let t = Table {
            mem,
            r: Region { off, size, nb },
        };
        t.top()?;
        Ok(t)
    }

    /// Writes an empty table in `r`. Caller holds the lock (or is the map's only user), and
    /// `r` is not the current region.
    pub(super) fn init(mem: Mem<'a>, r: Region) -> Result<Table<'a>, DictError> {
        mem.zero(r.off, r.arena())?;
        mem.word(r.off + R_BUCKETS)?.store(r.nb, Relaxed);
        mem.word(r.off + R_TOP)?.store(r.arena(), Relaxed);
        Table::load(mem, r.word())
    }

    pub(super) fn field(&self, f: u64) -> Result<&'a AtomicU64, DictError> {
        self.mem.word(self.r.off + f)
    }

    pub(super) fn bucket(&self, i: u64) -> Result<&'a AtomicU64, DictError> {
        if i >= self.r.nb {
            return Err(corrupt("a bucket index out of range"));
        }
        self.mem.word(self.r.off + REGION_HEADER + 8 * i)
    }

    pub(super) fn top(&self) -> Result<u64, DictError> {
        let top = self.field(R_TOP)?.load(Relaxed);
        if top < self.r.arena() || top > self.r.size {
            return Err(corrupt("an arena top out of range"));
        }
        Ok(top)
    }

    /// The entry bucket `i` links to, checked to lie whole below the arena's top.
    pub(super) fn entry_at(&self, i: u64) -> Result<Option<Entry>, DictError> {
        let at = self.bucket(i)?.load(Acquire);
        if at == EMPTY || at == TOMB {
            return Ok(None);
        }
        let top = self.top()?;
        if at % 8 != 0 || at < self.r.arena() || at > top.saturating_sub(ENTRY_HEADER) {
            return Err(corrupt("a link outside the arena"));
        }
        let hash = self.mem.word(self.r.off + at)?.load(Relaxed);
        let lens = self.mem.word(self.r.off + at + 8)?.load(Relaxed);
        let (klen, vlen) = (lens & 0xffff_ffff, lens >> 32);
        if at + ENTRY_HEADER + klen + vlen > top {
            return Err(corrupt("an entry beyond the arena's top"));
        }
        Ok(Some(Entry {
            at,
            hash,
            klen,
            vlen,
        }))
    }

    /// The bucket for `key`: where it is linked, or where it would go (the first tombstone
    /// or empty bucket on its probe path).
    pub(super) fn find(&self, h: u64, key: &[u8]) -> Result<(u64, Option<Entry>), DictError> {
        let mask = self.r.nb - 1;
        let mut i = h & mask;
        let mut free = None;
        for _ in 0..self.r.nb {
            match self.bucket(i)?.load(Acquire) {
                EMPTY => return Ok((free.unwrap_or(i), None)),
                TOMB => {
                    free.get_or_insert(i);
                }
                _ => {
                    let e = self.entry_at(i)?.ok_or(corrupt("a bucket changed"))?;
                    if e.hash == h
                        && e.klen == key.len() as u64
                        && self.mem.equals(self.r.off + e.at + ENTRY_HEADER, key)?
                    {
                        return Ok((i, Some(e)));
                    }
                }
            }
            i = (i + 1) & mask;
        }
        free.map(|i| (i, None))
            .ok_or(corrupt("a table with no free bucket"))
    }

    pub(super) fn key(&self, e: Entry) -> Result<Vec<u8>, DictError> {
        self.mem.read(self.r.off + e.at + ENTRY_HEADER, e.klen)
    }

    pub(super) fn value(&self, e: Entry) -> Result<Vec<u8>, DictError> {
        self.mem
            .read(self.r.off + e.at + ENTRY_HEADER + e.klen, e.vlen)
    }

    /// Writes an entry at `at` (free arena space, checked by the caller to hold it).
    pub(super) fn write_entry(
        &self,
        at: u64,
        h: u64,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), DictError> {
        let base = self.r.off + at;
        self.mem.word(base)?.store(h, Relaxed);
        let lens = key.len() as u64 | (value.len() as u64) << 32;
        self.mem.word(base + 8)?.store(lens, Relaxed);
        // Key and value in one write of whole words, up to the entry's end (its padding is
        // the entry's own): atomic stores only, no compare-and-swap at a ragged edge.
        let body = key.len() + value.len();
        let padded = body.next_multiple_of(8);
        let mut small = [0u8; 256];
        let mut large = Vec::new();
        let buf = if padded <= small.len() {
            &mut small[..padded]
        } else {
            large.resize(padded, 0);
            &mut large[..]
        };
        buf[..key.len()].copy_from_slice(key);
        buf[key.len()..body].copy_from_slice(value);
        self.mem.write(base + ENTRY_HEADER, buf)
    }

    /// Builds a new region holding the live entries of `from` (none: an empty map) with room
    /// for `extra_bytes` more in `extra_count` entries, switches to it with one store, and
    /// frees the old one. Caller holds the lock.
    pub(super) fn rebuild(
        &self,
        s: &Shared,
        from: Option<&Table<'a>>,
        extra_bytes: u64,
        extra_count: u64,
        hook: Hook<'_>,
    ) -> Result<Table<'a>, DictError> {
        let mut live = Vec::new();
        let mut live_bytes = 0u64;
        if let Some(from) = from {
            for i in 0..from.r.nb {
                if let Some(e) = from.entry_at(i)? {
                    live_bytes += (ENTRY_HEADER + e.klen + e.vlen).next_multiple_of(8);
                    live.push(e);
                }
            }
        }
        let count = live.len() as u64 + extra_count;
        let nb = (count * 2).next_power_of_two().max(MIN_BUCKETS);
        let body = live_bytes
            .checked_add(extra_bytes)
            .and_then(|b| b.checked_mul(2))
            .and_then(|b| b.checked_add(REGION_HEADER + 8 * nb))
            .ok_or(DictError::TooLarge)?;
        let size = body.next_power_of_two().max(1 << MIN_LOG);
        if size > 1 << MAX_LOG {
            return Err(DictError::TooLarge);
        }
        // Beside the current region: at the start if it fits before it, else right after it
        // (regions are at most a quarter of the reserve, so this always fits).
        let cur = self.r;
        let off = if size <= cur.off {
            0
        } else {
            cur.off + cur.size
        };
        if off + size > RESERVE {
            return Err(DictError::TooLarge);
        }
        let new = Table::init(self.mem, Region { off, size, nb })?;
        let mut top = new.r.arena();
        for e in &live {
            let from = from.ok_or(corrupt("unreachable"))?;
            let len = (ENTRY_HEADER + e.klen + e.vlen).next_multiple_of(8);
            let bytes = self
                .mem
                .read(from.r.off + e.at, len.min(from.top()? - e.at))?;
            self.mem.write(new.r.off + top, &bytes)?;
            let mask = nb - 1;
            let mut i = e.hash & mask;
            while new.bucket(i)?.load(Relaxed) != EMPTY {
                i = (i + 1) & mask;
            }
            new.bucket(i)?.store(top, Relaxed);
            top += len;
        }
        new.field(R_TOP)?.store(top, Relaxed);
        new.field(R_LEN)?.store(live.len() as u64, Relaxed);
        new.field(R_USED)?.store(live.len() as u64, Relaxed);
        if let Some(hook) = hook {
            hook(Stall::BeforeSwitch);
        }
        // The switch: one store (Release: the region is whole before anyone can see it).
        s.control().region.store(new.r.word(), Release);
        mp_sys::shm::punch_hole(s.data.fd(), cur.off, cur.size);
        Ok(new)
    }
}
