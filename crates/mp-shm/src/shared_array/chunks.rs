//! A split [`SharedArrayMut`]: chunks that other processes fill at once, each writable in one
//! place at a time (the claim protocol of `README.md` in this directory).

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut, Range};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytemuck::Pod;
use mp_spawn::reduction::{Fd, custom_error};
use mp_sys::shm as sys;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::holder::{self, CLOSED, FREE};
use super::layout::{HEADER, Header, check_align, data_bytes, trailer_offset, type_hash};
use super::local::{LocalMap, Span};
use super::{SharedArray, SharedArrayMut, check_type};
use crate::error::ShmError;
use crate::shared_memory::SharedMemory;

/// The claim words of one split, mapped in this process.
struct Claims {
    map: LocalMap,
    nchunks: usize,
}

impl Claims {
    fn map(fd: &Fd, trailer: u64, nchunks: usize) -> Result<Claims, ShmError> {
        let len = HEADER + nchunks * 8;
        Ok(Claims {
            map: LocalMap::new(fd.as_fd(), trailer, len)?,
            nchunks,
        })
    }

    /// Claim word `index`, in the process that mapped the words (`ForkedCopy` in a forked
    /// child, which does not have the mapping).
    fn word(&self, index: usize) -> Result<&AtomicU64, ShmError> {
        if index >= self.nchunks {
            return Err(ShmError::Corrupt("a claim word out of range"));
        }
        if !self.map.here() {
            return Err(ShmError::ForkedCopy);
        }
        let base = self.map.ptr();
        // SAFETY: the mapping is page-aligned, mapped in this process, and holds HEADER + 8 *
        // nchunks bytes, so the word is in bounds and 8-aligned; it lives as long as `&self`;
        // every process touches claim words only through atomics.
        Ok(unsafe { &*base.add(HEADER + index * 8).cast::<AtomicU64>() })
    }
}

/// A [`SharedArrayMut`] split into chunks ([`SharedArrayMut::split`]): hand out
/// [`parts`](Chunks::parts), then [`join`](Chunks::join) to get the array back. It gives no
/// access to the elements itself.
///
/// ```
/// use mp_shm::{Chunk, SharedArrayMut, get_context};
///
/// fn fill(mut chunk: Chunk<u64>) {
///     let start = chunk.range().start;
///     for (i, x) in chunk.iter_mut().enumerate() {
///         *x = (start + i) as u64;
///     }
/// }
///
/// let chunks = SharedArrayMut::<u64>::zeroed(100)?.split(30)?;
/// let mut children = Vec::new();
/// for part in chunks.parts() {
///     let mut c = get_context("forkserver")?.process(fill, (part,));
///     c.start()?;
///     children.push(c);
/// }
/// for c in &mut children {
///     c.join()?;
/// }
/// let a = chunks.join()?;
/// assert!(a.iter().enumerate().all(|(i, x)| *x == i as u64));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Chunks<T> {
    ticket: Arc<Ticket>,
    /// The owner's mapping, kept (unused) so that `join` need not map again.
    map: Option<LocalMap>,
    claims: Claims,
    named: Option<SharedMemory>,
    _t: PhantomData<T>,
}

/// What every chunk of one split shares.
struct Ticket {
    fd: Arc<Fd>,
    len: usize,
    chunk_len: usize,
    generation: u64,
}

impl<T: Pod> std::fmt::Debug for Chunks<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunks")
            .field("len", &self.ticket.len)
            .field("chunk_len", &self.ticket.chunk_len)
            .finish_non_exhaustive()
    }
}

/// [`Chunks::join`] or [`Chunks::freeze`] failed: a chunk is still attached by a live process
/// (the chunks come back, to join later), or sealing failed (then they are gone).
pub struct JoinError<T> {
    /// Why ([`ShmError::ChunkBusy`], or an OS error).
    pub error: ShmError,
    /// The split array, unchanged (`None` when `freeze` had joined it already).
    pub chunks: Option<Box<Chunks<T>>>,
}

impl<T> std::fmt::Debug for JoinError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<T> std::fmt::Display for JoinError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot join the chunks: {}", self.error)
    }
}

impl<T> std::error::Error for JoinError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<JoinError<T>> for ShmError {
    fn from(e: JoinError<T>) -> ShmError {
        e.error
    }
}

impl<T: Pod> Chunks<T> {
    pub(super) fn new(array: SharedArrayMut<T>, chunk_len: usize) -> Result<Chunks<T>, ShmError> {
        let (fd, map, len, named) = array.parts();
        if chunk_len == 0 {
            return Err(ShmError::WrongLength {
                expected: 0,
                found: len,
            });
        }
        let bytes = data_bytes::<T>(len)?;
        let trailer = trailer_offset(bytes)?;
        let nchunks = len.div_ceil(chunk_len);
        let mut header = Header::read(fd.as_fd(), bytes)?;
        header.chunk_len = chunk_len as u64;
        header.nchunks = nchunks as u64;
        header.generation = header.generation.wrapping_add(1);
        let need = trailer + (HEADER + nchunks * 8) as u64;
        if sys::file_size(fd.as_fd())? < need {
            sys::set_len(fd.as_fd(), need)?;
        }
        // The new generation first, then the words: a ticket of an earlier split that claims
        // a word freed here sees the new generation when it checks again, and lets go.
        header.write(fd.as_fd(), trailer)?;
        let claims = Claims::map(&fd, trailer, nchunks)?;
        for i in 0..nchunks {
            claims.word(i)?.store(FREE, Ordering::Release);
        }
        Ok(Chunks {
            ticket: Arc::new(Ticket {
                fd,
                len,
                chunk_len,
                generation: header.generation,
            }),
            map,
            claims,
            named,
            _t: PhantomData,
        })
    }

    /// One chunk per `chunk_len` elements, to send to tasks or processes (each is a
    /// descriptor and a range; the receiving process attaches it). Call it as often as you
    /// like: a chunk is writable in one place at a time however many copies of it travel.
    pub fn parts(&self) -> Vec<Chunk<T>> {
        (0..self.claims.nchunks)
            .map(|index| Chunk {
                ticket: Arc::clone(&self.ticket),
                index,
                held: None,
                span: Span::empty(),
            })
            .collect()
    }

    /// The number of elements of the whole array.
    pub fn len(&self) -> usize {
        self.ticket.len
    }

    /// Whether the array has no elements (then there are no chunks).
    pub fn is_empty(&self) -> bool {
        self.ticket.len == 0
    }

    /// The number of chunks.
    pub fn num_chunks(&self) -> usize {
        self.claims.nchunks
    }

    /// Gives the array back, once no live process holds a chunk (a holder that died is
    /// released; what it wrote stays). Tickets still travelling can no longer be attached
    /// ([`ShmError::ChunksJoined`]). Refused with the chunks back
    /// ([`ShmError::ChunkBusy`]) while a chunk is attached.
    pub fn join(self) -> Result<SharedArrayMut<T>, JoinError<T>> {
        if let Err(error) = self.close() {
            return Err(JoinError {
                error,
                chunks: Some(Box::new(self)),
            });
        }
        let Chunks {
            ticket, map, named, ..
        } = self;
        Ok(SharedArrayMut::from_parts(
            Arc::clone(&ticket.fd),
            map,
            ticket.len,
            named,
        ))
    }

    /// [`join`](Chunks::join), then [`freeze`](SharedArrayMut::freeze).
    pub fn freeze(self) -> Result<SharedArray<T>, JoinError<T>> {
        self.join()?.freeze().map_err(|error| JoinError {
            error,
            chunks: None,
        })
    }

    /// Closes every claim word, or none: a first pass finds a live holder without changing
    /// anything; the second closes the words one by one, and gives back those it closed if
    /// a chunk was claimed meanwhile.
    fn close(&self) -> Result<(), ShmError> {
        let n = self.claims.nchunks;
        for i in 0..n {
            let w = self.claims.word(i)?.load(Ordering::Acquire);
            if w != FREE && w != CLOSED && holder::alive(w) {
                return Err(ShmError::ChunkBusy {
                    index: i,
                    pid: holder::pid(w),
                });
            }
        }
        for i in 0..n {
            let word = self.claims.word(i)?;
            let mut cur = word.load(Ordering::Acquire);
            loop {
                if cur == CLOSED {
                    break;
                }
                if cur != FREE && holder::alive(cur) {
                    for j in 0..i {
                        let _ = self.claims.word(j)?.compare_exchange(
                            CLOSED,
                            FREE,
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        );
                    }
                    return Err(ShmError::ChunkBusy {
                        index: i,
                        pid: holder::pid(cur),
                    });
                }
                // Acquire: the holder's writes (released with the word) are seen after.
                match word.compare_exchange(cur, CLOSED, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => break,
                    Err(now) => cur = now,
                }
            }
        }
        Ok(())
    }
}

/// One chunk of a split array ([`Chunks::parts`]): a descriptor and a range, serde. The
/// process that receives it (deserialises it) **attaches** it: claims it and maps its range,
/// and then it derefs to `&mut [T]` of that range only. A chunk that is attached elsewhere
/// (another task, another thread, or this process already) cannot be attached again: the
/// receipt fails with [`ShmError::ChunkBusy`]'s message. Dropping an attached chunk releases
/// it; so does its holder's death.
///
/// A chunk that is not attached (as `parts` makes them, in the owner) derefs to an empty
/// slice: attach it with [`attach`](Chunk::attach) to write it in this process.
pub struct Chunk<T> {
    ticket: Arc<Ticket>,
    index: usize,
    held: Option<Held>,
    /// The range's elements, in `held`'s window (empty for a ticket).
    span: Span<T>,
}

/// An attached chunk's mappings and claim.
struct Held {
    /// The pages that hold the range; `None` for an empty range, and while dropping.
    window: Option<LocalMap>,
    /// Where the range starts in the window.
    offset: usize,
    claims: Claims,
    index: usize,
    token: u64,
}

impl Drop for Held {
    fn drop(&mut self) {
        // Unmapped before the word is released: once free, another process may write.
        drop(self.window.take());
        // Release: our writes are seen by whoever claims or closes the word next. A forked
        // copy (`word` fails there) releases nothing: the claim is its parent's.
        if let Ok(word) = self.claims.word(self.index) {
            let _ = word.compare_exchange(self.token, FREE, Ordering::Release, Ordering::Relaxed);
        }
    }
}

impl<T: Pod> std::fmt::Debug for Chunk<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("index", &self.index)
            .field("range", &self.range())
            .field("attached", &self.is_attached())
            .finish_non_exhaustive()
    }
}

impl<T: Pod> Chunk<T> {
    /// The chunk's index among its array's chunks.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The chunk's range in the whole array.
    pub fn range(&self) -> Range<usize> {
        let start = self.index.saturating_mul(self.ticket.chunk_len);
        let end = start
            .saturating_add(self.ticket.chunk_len)
            .min(self.ticket.len);
        start.min(end)..end
    }

    /// An unattached copy of this chunk's descriptor (what [`Chunks::parts`] gives), to send
    /// again.
    pub fn clone_ticket(&self) -> Chunk<T> {
        Chunk {
            ticket: Arc::clone(&self.ticket),
            index: self.index,
            held: None,
            span: Span::empty(),
        }
    }

    /// Whether this handle is attached in this process (then it derefs to its range).
    pub fn is_attached(&self) -> bool {
        self.held.as_ref().is_some_and(|h| h.claims.map.here())
    }

    /// An attached handle of this chunk in this process (to write it from a thread, or in the
    /// owner). [`ShmError::ChunkBusy`] while it is attached anywhere, this handle included;
    /// [`ShmError::ChunksJoined`] once the owner joined.
    pub fn attach(&self) -> Result<Chunk<T>, ShmError> {
        let held = attach::<T>(&self.ticket, self.index)?;
        Ok(Chunk::held(Arc::clone(&self.ticket), self.index, held))
    }
}

/// Claims chunk `index` and maps its range.
fn attach<T: Pod>(ticket: &Ticket, index: usize) -> Result<Held, ShmError> {
    let bytes = data_bytes::<T>(ticket.len)?;
    let trailer = trailer_offset(bytes)?;
    let header = Header::read(ticket.fd.as_fd(), bytes)?;
    header.check::<T>(ticket.len)?;
    if header.generation != ticket.generation || header.chunk_len != ticket.chunk_len as u64 {
        return Err(ShmError::ChunksJoined);
    }
    let nchunks = usize::try_from(header.nchunks).map_err(|_| ShmError::Corrupt("chunks"))?;
    if nchunks != ticket.len.div_ceil(ticket.chunk_len) || index >= nchunks {
        return Err(ShmError::Corrupt("the chunk's index is out of range"));
    }
    if sys::file_size(ticket.fd.as_fd())? < trailer + (HEADER + nchunks * 8) as u64 {
        return Err(ShmError::Corrupt(
            "the file is smaller than its chunks need",
        ));
    }
    let all = Claims::map(&ticket.fd, trailer, nchunks)?;
    let token = holder::mine()?;
    let word = all.word(index)?;
    let mut cur = word.load(Ordering::Acquire);
    loop {
        if cur == CLOSED {
            return Err(ShmError::ChunksJoined);
        }
        if cur != FREE && holder::alive(cur) {
            return Err(ShmError::ChunkBusy {
                index,
                pid: holder::pid(cur),
            });
        }
        // Free, or its holder is dead (what it wrote stays).
        match word.compare_exchange(cur, token, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(now) => cur = now,
        }
    }
    let release = |claims: &Claims| {
        if let Ok(word) = claims.word(index) {
            let _ = word.compare_exchange(token, FREE, Ordering::Release, Ordering::Relaxed);
        }
    };
    // A ticket of an earlier split may have claimed a word that a new split freed: the
    // generation read again after the claim says so.
    match Header::read(ticket.fd.as_fd(), bytes) {
        Ok(h) if h == header => {}
        Ok(_) => {
            release(&all);
            return Err(ShmError::ChunksJoined);
        }
        Err(e) => {
            release(&all);
            return Err(e);
        }
    }
    let size = std::mem::size_of::<T>();
    let start = index * ticket.chunk_len;
    let end = (start + ticket.chunk_len).min(ticket.len);
    let (from, to) = (start * size, end * size);
    let page = mp_sys::stack::page_size();
    let base = from - from % page;
    let window = if to > from {
        match LocalMap::new(ticket.fd.as_fd(), base as u64, to - base) {
            Ok(m) => Some(m),
            Err(e) => {
                release(&all);
                return Err(e);
            }
        }
    } else {
        None
    };
    Ok(Held {
        window,
        offset: from - base,
        claims: all,
        index,
        token,
    })
}

impl<T: Pod> Chunk<T> {
    /// An attached handle: its span is the range in `held`'s window.
    fn held(ticket: Arc<Ticket>, index: usize, held: Held) -> Chunk<T> {
        let mut c = Chunk {
            ticket,
            index,
            held: None,
            span: Span::empty(),
        };
        let start = held.window.as_ref().map(|w| {
            // SAFETY: `offset` is inside the window (the range's start within its first page).
            unsafe { w.ptr().add(held.offset) }
        });
        c.span = Span::new(start, c.range().len());
        c.held = Some(held);
        c
    }
}

impl<T: Pod> Deref for Chunk<T> {
    type Target = [T];
    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: the span is this chunk's range in `held`'s window (T-aligned: a multiple of
        // size_of::<T>() from a page boundary), which lives as long as `self`, or empty for a
        // ticket; an attached handle holds the chunk's claim, so no other handle in any
        // process maps the range writable (the owner's `Chunks` gives no access; a forked
        // copy of this handle has private zero pages instead) until it is released, after
        // this mapping is gone.
        unsafe { std::slice::from_raw_parts(self.span.ptr(), self.span.len()) }
    }
}

impl<T: Pod> DerefMut for Chunk<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes the borrow unique in this process.
        unsafe { std::slice::from_raw_parts_mut(self.span.ptr(), self.span.len()) }
    }
}

const KIND_CHUNK: u8 = b'C';

/// A chunk as it travels (the fd follows it).
#[derive(Serialize, Deserialize)]
struct Wire {
    kind: u8,
    type_hash: u64,
    elem_size: u64,
    len: u64,
    chunk_len: u64,
    generation: u64,
    index: u64,
}

impl<T: Pod> Serialize for Chunk<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let wire = Wire {
            kind: KIND_CHUNK,
            type_hash: type_hash::<T>(),
            elem_size: std::mem::size_of::<T>() as u64,
            len: self.ticket.len as u64,
            chunk_len: self.ticket.chunk_len as u64,
            generation: self.ticket.generation,
            index: self.index as u64,
        };
        (wire, &*self.ticket.fd).serialize(s)
    }
}

impl<'de, T: Pod> Deserialize<'de> for Chunk<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (wire, fd) = <(Wire, Fd)>::deserialize(d)?;
        receive::<T>(wire, fd).map_err(custom_error)
    }
}

fn receive<T: Pod>(wire: Wire, fd: Fd) -> Result<Chunk<T>, ShmError> {
    check_align::<T>()?;
    if wire.kind != KIND_CHUNK {
        return Err(ShmError::Corrupt("not a Chunk descriptor"));
    }
    check_type::<T>(wire.type_hash, wire.elem_size)?;
    let num = |v: u64| usize::try_from(v).map_err(|_| ShmError::Corrupt("a number overflows"));
    let (len, chunk_len, index) = (num(wire.len)?, num(wire.chunk_len)?, num(wire.index)?);
    if chunk_len == 0 {
        return Err(ShmError::Corrupt("chunks of no element"));
    }
    let ticket = Arc::new(Ticket {
        fd: Arc::new(fd),
        len,
        chunk_len,
        generation: wire.generation,
    });
    let held = attach::<T>(&ticket, index)?;
    Ok(Chunk::held(ticket, index, held))
}
