//! The file behind a shared array: the elements from byte 0 (so that numpy can map a named one
//! with `buffer=shm.buf`), then, at the next page boundary, a header and, once split, one claim
//! word per chunk. The header says what the file holds; every receiver checks it against the
//! descriptor and against `T` before it maps anything.

use std::io;
use std::os::fd::BorrowedFd;

use mp_sys::shm as sys;

use crate::error::ShmError;

/// "mpSARR01", little-endian.
const MAGIC: u64 = u64::from_le_bytes(*b"mpSARR01");
/// The header's size; claim words follow it.
pub(crate) const HEADER: usize = 64;

/// The header's fields, as stored (eight little-endian u64 words, `mp_sys::le`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) type_hash: u64,
    pub(crate) elem_size: u64,
    pub(crate) len: u64,
    /// 0 while not split.
    pub(crate) chunk_len: u64,
    pub(crate) nchunks: u64,
    /// Counts splits, so that a ticket of an earlier split cannot attach a later one's chunk.
    pub(crate) generation: u64,
}

impl Header {
    pub(crate) fn of<T>(len: usize) -> Header {
        Header {
            type_hash: type_hash::<T>(),
            elem_size: std::mem::size_of::<T>() as u64,
            len: len as u64,
            chunk_len: 0,
            nchunks: 0,
            generation: 0,
        }
    }

    pub(crate) fn write(&self, fd: BorrowedFd<'_>, trailer: u64) -> io::Result<()> {
        let mut bytes = Vec::with_capacity(HEADER);
        mp_sys::le::Writer::new(&mut bytes)
            .u64(MAGIC)
            .u64(self.type_hash)
            .u64(self.elem_size)
            .u64(self.len)
            .u64(self.chunk_len)
            .u64(self.nchunks)
            .u64(self.generation)
            .u64(0);
        sys::write_at(fd, trailer, &bytes)
    }

    /// Reads the header of a file whose elements take `data_bytes`, checking the magic and
    /// that the file holds the elements and the header.
    pub(crate) fn read(fd: BorrowedFd<'_>, data_bytes: usize) -> Result<Header, ShmError> {
        let trailer = trailer_offset(data_bytes)?;
        let size = sys::file_size(fd)?;
        if size < trailer + HEADER as u64 {
            return Err(ShmError::Corrupt(
                "the file is smaller than its length says",
            ));
        }
        let mut bytes = [0u8; HEADER];
        sys::read_at(fd, trailer, &mut bytes)?;
        let short = |_| ShmError::Corrupt("the shared array header is cut short");
        let mut r = mp_sys::le::Reader::new(&bytes);
        if r.u64().map_err(short)? != MAGIC {
            return Err(ShmError::Corrupt(
                "no shared array header where it should be",
            ));
        }
        let mut word = || r.u64().map_err(short);
        Ok(Header {
            type_hash: word()?,
            elem_size: word()?,
            len: word()?,
            chunk_len: word()?,
            nchunks: word()?,
            generation: word()?,
        })
    }

    /// Checks that the header describes `len` elements of `T`.
    pub(crate) fn check<T>(&self, len: usize) -> Result<(), ShmError> {
        if self.type_hash != type_hash::<T>() || self.elem_size != std::mem::size_of::<T>() as u64 {
            return Err(ShmError::WrongType {
                expected: std::any::type_name::<T>(),
                found_size: self.elem_size as usize,
            });
        }
        if self.len != len as u64 {
            return Err(ShmError::WrongLength {
                expected: len,
                found: self.len as usize,
            });
        }
        Ok(())
    }
}

/// The type as it travels: FNV-1a of its name, size and alignment. The name is the same in
/// every process of one program (they run one executable).
pub(crate) fn type_hash<T>() -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let name = std::any::type_name::<T>().as_bytes();
    let size = (std::mem::size_of::<T>() as u64).to_le_bytes();
    let align = (std::mem::align_of::<T>() as u64).to_le_bytes();
    for b in name.iter().chain(&size).chain(&align) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The bytes `len` elements of `T` take.
pub(crate) fn data_bytes<T>(len: usize) -> Result<usize, ShmError> {
    len.checked_mul(std::mem::size_of::<T>())
        .filter(|b| *b <= isize::MAX as usize / 2)
        .ok_or(ShmError::Os(io::Error::new(
            io::ErrorKind::InvalidInput,
            "shared array too large",
        )))
}

/// Where the header starts: the first page boundary at or after the elements.
pub(crate) fn trailer_offset(data_bytes: usize) -> Result<u64, ShmError> {
    let page = mp_sys::stack::page_size();
    let t = data_bytes
        .checked_next_multiple_of(page)
        .ok_or(ShmError::Corrupt("length overflows"))?;
    Ok(t as u64)
}

/// The element type's alignment must fit the page-aligned mapping.
pub(crate) fn check_align<T>() -> Result<(), ShmError> {
    if std::mem::align_of::<T>() > mp_sys::stack::page_size() {
        return Err(ShmError::Os(io::Error::new(
            io::ErrorKind::InvalidInput,
            "element types aligned above a page are not supported",
        )));
    }
    Ok(())
}
