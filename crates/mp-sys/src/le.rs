//! Fixed little-endian fields: the one way mp writes and reads the integer headers of its own
//! formats (mp-spawn's frame header, mp-shm's shared array header, mp-pool's and mp-mpi's task
//! and result frames), so that every header is read with a bounds check and a short one is a
//! typed [`Short`] error, never a panic.
//!
//! A [`Writer`] appends fields to a `Vec<u8>`; a [`Reader`] takes them off the front of a
//! byte slice in the same order.
//!
//! ```
//! use mp_sys::le::{Reader, Short, Writer};
//!
//! let mut buf = Vec::new();
//! Writer::new(&mut buf).u32(0x6d70).u64(5).bytes(b"hi");
//! assert_eq!(buf[..4], 0x6d70u32.to_le_bytes());
//!
//! let mut r = Reader::new(&buf);
//! assert_eq!(r.u32()?, 0x6d70);
//! assert_eq!(r.u64()?, 5);
//! assert_eq!(r.rest(), b"hi");
//! assert_eq!(r.u64(), Err(Short { at: 12, want: 8, len: 14 }));
//! # Ok::<(), Short>(())
//! ```

use std::fmt;

/// A field that did not fit: the input ended before it.
///
/// ```
/// use mp_sys::le::{Reader, Short};
/// let e = Reader::new(&[1, 2]).u32().unwrap_err();
/// assert_eq!(e, Short { at: 0, want: 4, len: 2 });
/// assert_eq!(e.to_string(), "a 4-byte field at byte 0 of a 2-byte input");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Short {
    /// Where the field starts.
    pub at: usize,
    /// The field's size.
    pub want: usize,
    /// The input's whole length.
    pub len: usize,
}

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {}-byte field at byte {} of a {}-byte input",
            self.want, self.at, self.len
        )
    }
}

impl std::error::Error for Short {}

impl From<Short> for std::io::Error {
    fn from(e: Short) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::UnexpectedEof, e)
    }
}

/// Appends little-endian fields to a buffer. Chainable; it cannot fail.
///
/// ```
/// let mut buf = vec![9];
/// mp_sys::le::Writer::new(&mut buf).u8(1).u32(2).i64(-1);
/// assert_eq!(buf.len(), 1 + 1 + 4 + 8);
/// assert_eq!(buf[2..6], [2, 0, 0, 0]);
/// ```
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut Vec<u8>,
}

impl<'a> Writer<'a> {
    /// A writer appending to `buf` (what it already holds stays in front).
    pub fn new(buf: &'a mut Vec<u8>) -> Writer<'a> {
        Writer { buf }
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a little-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends a little-endian i64.
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Appends raw bytes (a payload after the fixed fields).
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }
}

/// Overwrites the little-endian u64 at `at` (a field of a header already written, set later:
/// a frame's id at submission, say); a buffer too short for it is a [`Short`] error and is
/// left as it was.
///
/// ```
/// let mut frame = vec![0u8; 9];
/// mp_sys::le::set_u64(&mut frame, 1, 7)?;
/// assert_eq!(frame[1], 7);
/// assert!(mp_sys::le::set_u64(&mut frame, 2, 7).is_err());
/// # Ok::<(), mp_sys::le::Short>(())
/// ```
pub fn set_u64(buf: &mut [u8], at: usize, v: u64) -> Result<(), Short> {
    let end = at.checked_add(8).filter(|end| *end <= buf.len());
    let Some(end) = end else {
        return Err(Short {
            at,
            want: 8,
            len: buf.len(),
        });
    };
    buf[at..end].copy_from_slice(&v.to_le_bytes());
    Ok(())
}

/// Takes little-endian fields off the front of a byte slice. A field the input is too short
/// for is a [`Short`] error, and the reader stays where it was.
///
/// ```
/// let mut r = mp_sys::le::Reader::new(&[7, 1, 0, 0, 0, 42]);
/// assert_eq!(r.u8()?, 7);
/// assert_eq!(r.u32()?, 1);
/// assert_eq!(r.position(), 5);
/// assert!(r.u32().is_err());
/// assert_eq!(r.u8()?, 42);
/// # Ok::<(), mp_sys::le::Short>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, at: 0 }
    }

    /// A reader at byte `at` of `buf` (for a field at a fixed offset). Past the end, the next
    /// field is [`Short`].
    ///
    /// ```
    /// let r = mp_sys::le::Reader::at(&[0, 0, 5, 0, 0, 0], 2);
    /// assert_eq!({ r }.u32(), Ok(5));
    /// assert!(mp_sys::le::Reader::at(&[0], 9).u8().is_err());
    /// ```
    pub fn at(buf: &'a [u8], at: usize) -> Reader<'a> {
        Reader { buf, at }
    }

    /// How many bytes have been read (where the next field starts).
    pub fn position(&self) -> usize {
        self.at
    }

    /// The `N` bytes of the next field.
    ///
    /// ```
    /// let mut r = mp_sys::le::Reader::new(b"mpSARR01!");
    /// assert_eq!(r.array::<8>()?, *b"mpSARR01");
    /// # Ok::<(), mp_sys::le::Short>(())
    /// ```
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], Short> {
        let short = Short {
            at: self.at,
            want: N,
            len: self.buf.len(),
        };
        let field = self
            .at
            .checked_add(N)
            .and_then(|end| self.buf.get(self.at..end))
            .ok_or(short)?;
        let mut out = [0u8; N];
        out.copy_from_slice(field);
        self.at += N;
        Ok(out)
    }

    /// The next byte.
    pub fn u8(&mut self) -> Result<u8, Short> {
        self.array::<1>().map(|[b]| b)
    }

    /// The next little-endian u32.
    pub fn u32(&mut self) -> Result<u32, Short> {
        self.array().map(u32::from_le_bytes)
    }

    /// The next little-endian u64.
    pub fn u64(&mut self) -> Result<u64, Short> {
        self.array().map(u64::from_le_bytes)
    }

    /// The next little-endian i64.
    pub fn i64(&mut self) -> Result<i64, Short> {
        self.array().map(i64::from_le_bytes)
    }

    /// What follows the fields read so far (empty past the end).
    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.at..).unwrap_or_default()
    }
}

#[cfg(test)]
mod test;
