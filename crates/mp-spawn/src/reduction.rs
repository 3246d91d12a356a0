//! How values travel to another process: serde (postcard) for the data, and `SCM_RIGHTS` for
//! the OS handles inside it. CPython's `reduction` module plays the same part.
//!
//! A type that holds a file descriptor wraps it in [`Fd`]. While [`dumps`] serialises a value,
//! each `Fd` it meets records its descriptor beside the bytes and writes only its index; the
//! bytes and the descriptors then cross together (inherited under fork, `SCM_RIGHTS` under
//! spawn and forkserver), and [`loads`] hands each `Fd` its new descriptor back by index.
//! The dumped message owns duplicates of the descriptors: a handle closed (and its number
//! reused by the OS) after `dumps` still sends the file it held when it was serialised.
//! `mp-ipc` and `mp-shm` build their handle types (connection ends, shared-memory fds, locks)
//! on this, so they travel as ordinary arguments under every start method.
//!
//! ```
//! use mp_spawn::reduction::{dumps, loads, Fd};
//! use std::os::fd::AsRawFd;
//!
//! let file = std::fs::File::open("/dev/null").unwrap();
//! let value = (7u32, Fd::from(std::os::fd::OwnedFd::from(file)));
//! let packed = dumps(&value).unwrap();
//! assert_eq!(packed.fds.len(), 1);
//! // Another process would receive duplicates of `packed.fds`; here we pass them on directly.
//! let (n, fd): (u32, Fd) = loads(&packed.bytes, packed.fds).unwrap();
//! assert_eq!(n, 7);
//! assert_ne!(fd.as_raw_fd(), value.1.as_raw_fd());
//! ```

use std::cell::RefCell;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::{fmt, io};

use serde::de::DeserializeOwned;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

thread_local! {
    /// The message of the last custom decode error: postcard keeps only "custom error".
    static LAST_CUSTOM: RefCell<Option<String>> = const { RefCell::new(None) };
    /// Duplicates of the descriptors met by the running `dumps`, in index order.
    static SINK: RefCell<Option<Vec<OwnedFd>>> = const { RefCell::new(None) };
    static SOURCE: RefCell<Option<Vec<Option<OwnedFd>>>> = const { RefCell::new(None) };
}

/// An owned file descriptor that can travel inside a serde value to another process.
#[derive(Debug)]
pub struct Fd(OwnedFd);

impl Fd {
    /// Wraps an owned descriptor.
    pub fn new(fd: OwnedFd) -> Self {
        Fd(fd)
    }

    /// The descriptor.
    pub fn into_inner(self) -> OwnedFd {
        self.0
    }
}

impl From<OwnedFd> for Fd {
    fn from(fd: OwnedFd) -> Self {
        Fd(fd)
    }
}

impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl Serialize for Fd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A duplicate, taken now: the holder of this `Fd` may close it (a `Connection` does so
        // through `&self`) before the message is sent, and the OS may reuse its number.
        let index = SINK.with(|sink| {
            sink.borrow_mut().as_mut().map(|fds| {
                let dup = self.0.try_clone()?;
                fds.push(dup);
                Ok::<_, io::Error>(fds.len() - 1)
            })
        });
        match index {
            Some(Ok(i)) => serializer.serialize_u32(i as u32),
            Some(Err(e)) => Err(S::Error::custom(format_args!(
                "cannot duplicate a file descriptor: {e}"
            ))),
            None => Err(S::Error::custom(
                "an mp Fd can only be serialized by mp_spawn::reduction::dumps",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Fd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let index = u32::deserialize(deserializer)? as usize;
        let fd = SOURCE.with(|source| {
            source
                .borrow_mut()
                .as_mut()
                .and_then(|fds| fds.get_mut(index).and_then(Option::take))
        });
        fd.map(Fd).ok_or_else(|| {
            custom_error(format_args!(
                "file descriptor #{index} is missing from the message"
            ))
        })
    }
}

/// A serialised value: its bytes, and the descriptors it refers to.
///
/// The descriptors are duplicates owned by the message, taken while the value was serialised:
/// closing the value's handles afterwards (even from another thread) cannot change what is
/// sent.
#[derive(Debug)]
pub struct Dumped {
    /// The serde (postcard) encoding.
    pub bytes: Vec<u8>,
    /// Duplicates of the descriptors of the value's [`Fd`]s, in index order.
    pub fds: Vec<OwnedFd>,
}

/// A value could not be serialised (a serde error, or a type postcard does not support).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeError(pub String);

/// Bytes could not be turned back into a value (malformed, truncated, or a descriptor missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot serialize value: {}", self.0)
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot deserialize value: {}", self.0)
    }
}

impl std::error::Error for EncodeError {}
impl std::error::Error for DecodeError {}

/// Serialises `value`, collecting duplicates of the descriptors of its [`Fd`]s.
///
/// A serialisation error keeps its text, also that of `serde::ser::Error::custom` (which
/// postcard alone reduces to "Serde Serialization Error").
pub fn dumps<T: Serialize + ?Sized>(value: &T) -> Result<Dumped, EncodeError> {
    let (bytes, fds) = encode(value, postcard::to_stdvec)?;
    Ok(Dumped { bytes, fds })
}

/// As [`dumps`], but appends the bytes to `buf` (reused by callers that serialise often) and
/// returns only the descriptors. On error, `buf` may hold part of the value.
///
/// ```
/// let mut buf = vec![0xff];
/// let fds = mp_spawn::reduction::dumps_into(&(1u8, "a"), &mut buf).unwrap();
/// assert!(fds.is_empty());
/// assert_eq!(buf, [0xff, 1, 1, b'a']);
/// ```
pub fn dumps_into<T: Serialize + ?Sized>(
    value: &T,
    buf: &mut Vec<u8>,
) -> Result<Vec<OwnedFd>, EncodeError> {
    encode(value, |v| {
        postcard::serialize_with_flavor(v, AppendFlavor(buf))
    })
    .map(|((), fds)| fds)
}

/// Runs `serialize` on `value` with a fresh descriptor sink, and returns its output and the
/// descriptors it collected.
fn encode<T: Serialize + ?Sized, R>(
    value: &T,
    serialize: impl FnOnce(&T) -> postcard::Result<R>,
) -> Result<(R, Vec<OwnedFd>), EncodeError> {
    /// Restores the sink of an enclosing `dumps` (a `Serialize` impl may call `dumps`), also
    /// when `serialize` panics.
    struct Scope(Option<Vec<OwnedFd>>);
    impl Drop for Scope {
        fn drop(&mut self) {
            let outer = self.0.take();
            SINK.with(|sink| *sink.borrow_mut() = outer);
        }
    }
    let _scope = Scope(SINK.with(|sink| sink.replace(Some(Vec::new()))));
    let result = serialize(value).map_err(|e| match e {
        // postcard keeps no text for custom errors: walk the value again to find it (the sink
        // is still in place, so `Fd`s behave as in the first walk).
        postcard::Error::SerdeSerCustom => match value.serialize(probe::Probe) {
            Err(probe::Message(text)) => EncodeError(text),
            Ok(()) => EncodeError(e.to_string()),
        },
        e => EncodeError(e.to_string()),
    });
    let fds = SINK
        .with(|sink| sink.replace(Some(Vec::new())))
        .unwrap_or_default();
    result.map(|r| (r, fds))
}

/// Appends to a `Vec` with `push` and `extend_from_slice`: postcard's own `to_extend` goes
/// through `Extend` byte by byte, which made encoding the largest cost of a pool's `map`.
struct AppendFlavor<'a>(&'a mut Vec<u8>);

impl postcard::ser_flavors::Flavor for AppendFlavor<'_> {
    type Output = ();

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        // Varints come as slices of 1 to 10 bytes: a call to memcpy for each cost more than
        // the copy.
        if data.len() <= 16 {
            for &byte in data {
                self.0.push(byte);
            }
        } else {
            self.0.extend_from_slice(data);
        }
        Ok(())
    }

    fn finalize(self) -> postcard::Result<()> {
        Ok(())
    }
}

/// A deserialisation error whose message survives to the [`DecodeError`] of [`loads`] (the
/// postcard format drops the text of `serde::de::Error::custom`). Types that check what they
/// receive (sizes, ranges) report through this.
pub fn custom_error<E: serde::de::Error>(msg: impl fmt::Display) -> E {
    let text = msg.to_string();
    let error = E::custom(&text);
    LAST_CUSTOM.with(|last| *last.borrow_mut() = Some(text));
    error
}

/// Deserialises a value from `bytes`, handing `fds` to its [`Fd`]s by index. Every byte must
/// belong to the value. Descriptors that no `Fd` claims are closed.
pub fn loads<T: DeserializeOwned>(bytes: &[u8], fds: Vec<OwnedFd>) -> Result<T, DecodeError> {
    let outer = SOURCE.with(|source| source.replace(Some(fds.into_iter().map(Some).collect())));
    LAST_CUSTOM.with(|last| last.borrow_mut().take());
    let value = postcard::take_from_bytes(bytes);
    SOURCE.with(|source| source.replace(outer));
    let custom = LAST_CUSTOM.with(|last| last.borrow_mut().take());
    match value {
        Ok((value, [])) => Ok(value),
        // Left-over bytes mean the value was written as another type: say so, rather than
        // hand back a value built from a prefix of it.
        Ok((_, rest)) => Err(DecodeError(format!(
            "{} bytes left over: the message holds another type",
            rest.len()
        ))),
        Err(e) => Err(DecodeError(custom.unwrap_or_else(|| e.to_string()))),
    }
}

/// The most descriptors one message can carry.
pub const MAX_FDS_PER_MSG: usize = mp_sys::socket::MAX_FDS_PER_MSG;

/// A serializer that writes nothing and keeps the text of a custom error: [`dumps`] walks a
/// value with it again when postcard has reported "Serde Serialization Error" and dropped the
/// text (as [`custom_error`] does for decoding). Only that error path pays for it.
mod probe {
    use std::fmt;

    use serde::ser::{self, Serialize};

    pub(super) struct Probe;

    /// The text of the error.
    #[derive(Debug)]
    pub(super) struct Message(pub(super) String);

    impl fmt::Display for Message {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }

    impl std::error::Error for Message {}

    impl ser::Error for Message {
        fn custom<T: fmt::Display>(msg: T) -> Self {
            Message(msg.to_string())
        }
    }

    type R = Result<(), Message>;

    macro_rules! leaves {
        ($($name:ident: $ty:ty),* $(,)?) => {
            $(fn $name(self, _: $ty) -> R { Ok(()) })*
        };
    }

    impl ser::Serializer for Probe {
        type Ok = ();
        type Error = Message;
        type SerializeSeq = Probe;
        type SerializeTuple = Probe;
        type SerializeTupleStruct = Probe;
        type SerializeTupleVariant = Probe;
        type SerializeMap = Probe;
        type SerializeStruct = Probe;
        type SerializeStructVariant = Probe;

        leaves!(
            serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i32: i32,
            serialize_i64: i64, serialize_i128: i128, serialize_u8: u8, serialize_u16: u16,
            serialize_u32: u32, serialize_u64: u64, serialize_u128: u128, serialize_f32: f32,
            serialize_f64: f64, serialize_char: char, serialize_str: &str,
            serialize_bytes: &[u8], serialize_unit_struct: &'static str,
        );

        fn serialize_none(self) -> R {
            Ok(())
        }
        fn serialize_unit(self) -> R {
            Ok(())
        }
        fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> R {
            v.serialize(Probe)
        }
        fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> R {
            Ok(())
        }
        fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, v: &T) -> R {
            v.serialize(Probe)
        }
        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            v: &T,
        ) -> R {
            v.serialize(Probe)
        }
        fn serialize_seq(self, _: Option<usize>) -> Result<Probe, Message> {
            Ok(Probe)
        }
        fn serialize_tuple(self, _: usize) -> Result<Probe, Message> {
            Ok(Probe)
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Probe, Message> {
            Ok(Probe)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Probe, Message> {
            Ok(Probe)
        }
        fn serialize_map(self, _: Option<usize>) -> Result<Probe, Message> {
            Ok(Probe)
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Probe, Message> {
            Ok(Probe)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Probe, Message> {
            Ok(Probe)
        }
        // As postcard: types that serialise differently for humans take the compact path.
        fn is_human_readable(&self) -> bool {
            false
        }
    }

    /// The compound serializers: each element is walked by a fresh `Probe`.
    macro_rules! compound {
        ($($trait:ident :: $method:ident $(($key:ty))?),* $(,)?) => {
            $(impl ser::$trait for Probe {
                type Ok = ();
                type Error = Message;
                fn $method<T: ?Sized + Serialize>(&mut self, $(_: $key,)? v: &T) -> R {
                    v.serialize(Probe)
                }
                fn end(self) -> R {
                    Ok(())
                }
            })*
        };
    }

    compound!(
        SerializeSeq::serialize_element,
        SerializeTuple::serialize_element,
        SerializeTupleStruct::serialize_field,
        SerializeTupleVariant::serialize_field,
        SerializeStruct::serialize_field(&'static str),
        SerializeStructVariant::serialize_field(&'static str),
    );

    impl ser::SerializeMap for Probe {
        type Ok = ();
        type Error = Message;
        fn serialize_key<T: ?Sized + Serialize>(&mut self, k: &T) -> R {
            k.serialize(Probe)
        }
        fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> R {
            v.serialize(Probe)
        }
        fn end(self) -> R {
            Ok(())
        }
    }
}

#[cfg(test)]
mod test;
