//! A fixed-length list of mixed items in a named segment, in the byte layout of Python's
//! `multiprocessing.shared_memory.ShareableList`, so either side can attach the other's list.
//!
//! Layout (all integers native-endian i64): the item count N; N + 1 offsets of the items in
//! the data area; the data area (8 bytes per number, bool or None; str and bytes get a slot of
//! their length rounded up to the next multiple of 8, always leaving room); N 8-byte `struct`
//! formats (`q`, `d`, `xxxxxxx?`, `xxxxxx?x`, `<n>s`); N one-byte codes (0 number or bool,
//! 1 str, 2 bytes, 3 None).
//!
//! **Where it differs from CPython:** a str's slot is its UTF-8 byte length rounded up, where
//! CPython rounds up its length in characters and then packs the UTF-8 bytes into that slot,
//! silently cutting what does not fit (`ShareableList(['ééééééé'])` reads back `'éééé'`, and a
//! cut inside a character raises `UnicodeDecodeError`). The layout is otherwise the same, so
//! either side reads the other's lists as written (a cut str read here is
//! [`ListError::Malformed`]); replacing an item is limited by the slot's bytes on both sides.

use std::fmt;

use mp_spawn::reduction::custom_error;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{IndexError, ListError};
use crate::shared_memory::SharedMemory;

/// One item of a [`ShareableList`]: Python's item types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Item {
    /// `int` (64-bit, as Python's `q` format).
    Int(i64),
    /// `float`.
    Float(f64),
    /// `bool`.
    Bool(bool),
    /// `None`.
    None,
    /// `str` (UTF-8; trailing NULs are dropped on read, as Python).
    Str(String),
    /// `bytes` (trailing NULs are dropped on read, as Python).
    Bytes(Vec<u8>),
}

impl Item {
    /// Python's `==`: numbers and bools compare by value across types (`1 == 1.0 == True`).
    pub fn py_eq(&self, other: &Item) -> bool {
        match (self.as_number(), other.as_number()) {
            (Some(a), Some(b)) => a == b,
            _ => self == other,
        }
    }

    fn as_number(&self) -> Option<f64> {
        match *self {
            Item::Int(i) => Some(i as f64),
            Item::Float(f) => Some(f),
            Item::Bool(b) => Some(f64::from(u8::from(b))),
            _ => None,
        }
    }

    fn code(&self) -> u8 {
        match self {
            Item::Str(_) => 1,
            Item::Bytes(_) => 2,
            Item::None => 3,
            _ => 0,
        }
    }

    fn fixed_format(&self) -> Option<&'static str> {
        match self {
            Item::Int(_) => Some("q"),
            Item::Float(_) => Some("d"),
            Item::Bool(_) => Some("xxxxxxx?"),
            Item::None => Some("xxxxxx?x"),
            _ => None,
        }
    }

    fn encoded(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        match *self {
            Item::Int(i) => out = i.to_ne_bytes(),
            Item::Float(f) => out = f.to_ne_bytes(),
            Item::Bool(b) => out[7] = u8::from(b),
            _ => {}
        }
        out
    }
}

macro_rules! item_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for Item {
            fn from(x: $t) -> Item {
                Item::$v(x.into())
            }
        }
    )*};
}
item_from!(i64 => Int, i32 => Int, f64 => Float, bool => Bool, String => Str, &str => Str, Vec<u8> => Bytes, &[u8] => Bytes);

impl From<()> for Item {
    fn from(_: ()) -> Item {
        Item::None
    }
}

/// A fixed-length list of [`Item`]s in shared memory (Python's `ShareableList`).
///
/// ```
/// use mp_shm::{Item, ShareableList};
///
/// let list = ShareableList::new(&[Item::Int(1), "howdy".into(), Item::Float(-2.5), Item::None])?;
/// assert_eq!(list.len(), 4);
/// assert_eq!(list.get(1)?, Item::Str("howdy".into()));
/// list.set(1, "hi".into())?; // fits the 8-byte slot
/// assert!(list.set(1, "far too long for it".into()).is_err());
/// let same = ShareableList::attach(list.shm().name())?;
/// assert_eq!(same.format()?, "q8sdxxxxxx?x");
/// list.shm().unlink()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct ShareableList {
    shm: SharedMemory,
    len: usize,
    /// `len + 1` offsets into the data area.
    offsets: Vec<usize>,
}

const WORD: usize = 8;

fn capacity(encoded_len: usize) -> usize {
    WORD * (encoded_len / WORD + 1)
}

impl ShareableList {
    /// A new list in a new tracked segment with a random name.
    pub fn new(items: &[Item]) -> Result<ShareableList, ListError> {
        ShareableList::create(items, SharedMemory::options())
    }

    /// A new list in a segment made with `options` (a name, `track`).
    pub fn create(
        items: &[Item],
        options: crate::shared_memory::ShmOptions,
    ) -> Result<ShareableList, ListError> {
        let mut formats = Vec::with_capacity(items.len());
        let mut offsets = vec![0usize];
        for item in items {
            let (format, size) = match item {
                Item::Str(s) => {
                    let c = capacity(s.len());
                    (format!("{c}s"), c)
                }
                Item::Bytes(b) => {
                    let c = capacity(b.len());
                    (format!("{c}s"), c)
                }
                other => (other.fixed_format().unwrap_or("q").to_owned(), WORD),
            };
            formats.push(format);
            offsets.push(offsets[offsets.len() - 1] + size);
        }
        let n = items.len();
        let data_start = (n + 2) * WORD;
        let size = data_start + offsets[n] + n * WORD + n;
        let shm = options.create(size)?;
        let list = ShareableList {
            shm,
            len: n,
            offsets,
        };
        let mut header = Vec::with_capacity(data_start);
        header.extend_from_slice(&(n as i64).to_ne_bytes());
        for off in &list.offsets {
            header.extend_from_slice(&(*off as i64).to_ne_bytes());
        }
        list.write(0, &header)?;
        for (i, (item, format)) in items.iter().zip(&formats).enumerate() {
            list.store(i, item, format)?;
        }
        Ok(list)
    }

    /// Attaches the list in the segment called `name` (made by mp or by Python).
    pub fn attach(name: &str) -> Result<ShareableList, ListError> {
        let shm = SharedMemory::attach(name)?;
        let size = shm.size();
        let word = |at: usize| -> Result<i64, ListError> {
            let mut b = [0u8; 8];
            shm.read_at(at, &mut b)
                .map_err(|_| ListError::Malformed(format!("segment too small ({size} bytes)")))?;
            Ok(i64::from_ne_bytes(b))
        };
        let n = usize::try_from(word(0)?)
            .map_err(|_| ListError::Malformed("negative length".into()))?;
        if n > size / WORD {
            return Err(ListError::Malformed(format!(
                "length {n} does not fit {size} bytes"
            )));
        }
        let mut offsets = Vec::with_capacity(n + 1);
        for i in 0..=n {
            let off = usize::try_from(word((i + 1) * WORD)?)
                .map_err(|_| ListError::Malformed("negative offset".into()))?;
            if offsets.last().is_some_and(|prev| off < *prev) {
                return Err(ListError::Malformed("offsets out of order".into()));
            }
            offsets.push(off);
        }
        let need = (n + 2) * WORD + offsets[n] + n * WORD + n;
        if need > size {
            return Err(ListError::Malformed(format!(
                "the list needs {need} bytes, the segment has {size}"
            )));
        }
        Ok(ShareableList {
            shm,
            len: n,
            offsets,
        })
    }

    /// The segment (for its name, and `unlink`).
    pub fn shm(&self) -> &SharedMemory {
        &self.shm
    }

    /// The number of items (fixed).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list has no items.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn data_start(&self) -> usize {
        (self.len + 2) * WORD
    }

    fn formats_start(&self) -> usize {
        self.data_start() + self.offsets[self.len]
    }

    fn codes_start(&self) -> usize {
        self.formats_start() + self.len * WORD
    }

    fn write(&self, at: usize, bytes: &[u8]) -> Result<(), ListError> {
        self.shm
            .write_at(at, bytes)
            .map_err(|_| ListError::Malformed("write past the end of the segment".into()))
    }

    fn read(&self, at: usize, buf: &mut [u8]) -> Result<(), ListError> {
        self.shm
            .read_at(at, buf)
            .map_err(|_| ListError::Malformed("read past the end of the segment".into()))
    }

    fn store(&self, index: usize, item: &Item, format: &str) -> Result<(), ListError> {
        let mut fmt = [0u8; WORD];
        fmt[..format.len()].copy_from_slice(format.as_bytes());
        self.write(self.formats_start() + index * WORD, &fmt)?;
        self.write(self.codes_start() + index, &[item.code()])?;
        let at = self.data_start() + self.offsets[index];
        match item {
            Item::Str(s) => self.write_padded(at, s.as_bytes(), index),
            Item::Bytes(b) => self.write_padded(at, b, index),
            other => self.write(at, &other.encoded()),
        }
    }

    fn slot(&self, index: usize) -> usize {
        self.offsets[index + 1] - self.offsets[index]
    }

    fn write_padded(&self, at: usize, bytes: &[u8], index: usize) -> Result<(), ListError> {
        let mut slot = vec![0u8; self.slot(index)];
        slot[..bytes.len()].copy_from_slice(bytes);
        self.write(at, &slot)
    }

    /// The `struct` format of item `index`.
    fn format_of(&self, index: usize) -> Result<String, ListError> {
        let mut fmt = [0u8; WORD];
        self.read(self.formats_start() + index * WORD, &mut fmt)?;
        let end = fmt.iter().position(|b| *b == 0).unwrap_or(WORD);
        String::from_utf8(fmt[..end].to_vec())
            .map_err(|_| ListError::Malformed("format is not text".into()))
    }

    /// A copy of item `index`.
    pub fn get(&self, index: usize) -> Result<Item, ListError> {
        IndexError::check(index, self.len)?;
        let format = self.format_of(index)?;
        let at = self.data_start() + self.offsets[index];
        let mut code = [0u8];
        self.read(self.codes_start() + index, &mut code)?;
        let mut word = [0u8; WORD];
        match format.as_str() {
            "q" => {
                self.read(at, &mut word)?;
                Ok(Item::Int(i64::from_ne_bytes(word)))
            }
            "d" => {
                self.read(at, &mut word)?;
                Ok(Item::Float(f64::from_ne_bytes(word)))
            }
            "xxxxxxx?" => {
                self.read(at, &mut word)?;
                Ok(Item::Bool(word[7] != 0))
            }
            "xxxxxx?x" => Ok(Item::None),
            s if s.ends_with('s') => {
                let n: usize = s[..s.len() - 1]
                    .parse()
                    .map_err(|_| ListError::Malformed(format!("bad format {s:?}")))?;
                if n > self.slot(index) {
                    return Err(ListError::Malformed(format!(
                        "format {s:?} overruns its slot"
                    )));
                }
                let mut bytes = vec![0u8; n];
                self.read(at, &mut bytes)?;
                while bytes.last() == Some(&0) {
                    bytes.pop();
                }
                match code[0] {
                    1 => String::from_utf8(bytes)
                        .map(Item::Str)
                        .map_err(|_| ListError::Malformed("a str item is not UTF-8".into())),
                    _ => Ok(Item::Bytes(bytes)),
                }
            }
            other => Err(ListError::Malformed(format!("unknown format {other:?}"))),
        }
    }

    /// Replaces item `index`. A str or bytes item must fit the slot the list was made with
    /// ([`ListError::ItemTooLong`]); the slot's size never changes.
    pub fn set(&self, index: usize, item: Item) -> Result<(), ListError> {
        IndexError::check(index, self.len)?;
        let format = match &item {
            Item::Str(_) | Item::Bytes(_) => {
                let len = match &item {
                    Item::Str(s) => s.len(),
                    Item::Bytes(b) => b.len(),
                    _ => 0,
                };
                let capacity = self.slot(index);
                if len > capacity {
                    return Err(ListError::ItemTooLong { len, capacity });
                }
                format!("{capacity}s")
            }
            other => other.fixed_format().unwrap_or("q").to_owned(),
        };
        self.store(index, &item, &format)
    }

    /// Copies of all the items.
    pub fn to_vec(&self) -> Result<Vec<Item>, ListError> {
        (0..self.len).map(|i| self.get(i)).collect()
    }

    /// How many items equal `value` (Python's `==`, see [`Item::py_eq`]).
    pub fn count(&self, value: &Item) -> Result<usize, ListError> {
        Ok(self.to_vec()?.iter().filter(|x| x.py_eq(value)).count())
    }

    /// The first index of `value`, or [`ListError::NotInList`].
    pub fn index(&self, value: &Item) -> Result<usize, ListError> {
        self.to_vec()?
            .iter()
            .position(|x| x.py_eq(value))
            .ok_or(ListError::NotInList)
    }

    /// The items' `struct` formats, joined (Python's `.format`).
    pub fn format(&self) -> Result<String, ListError> {
        (0..self.len).map(|i| self.format_of(i)).collect()
    }
}

impl fmt::Debug for ShareableList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShareableList")
            .field("name", &self.shm.name())
            .field("len", &self.len)
            .finish()
    }
}

/// Sent by name, as Python pickles it.
impl Serialize for ShareableList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.shm.name().serialize(s)
    }
}

impl<'de> Deserialize<'de> for ShareableList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        ShareableList::attach(&name).map_err(custom_error)
    }
}
