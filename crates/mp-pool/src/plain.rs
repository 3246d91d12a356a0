//! Plain numbers travel as raw little-endian bytes, not through serde.
//!
//! A `map` over integers or floats is the commonest pool call, and for it the per-value cost
//! of a serde format (a varint and a bounds check per number, four times per task: out, in,
//! back, in) was most of the time. When a chunk's item type is a primitive number, or a
//! 1-tuple of one (what `map` runs), its values are copied as a block instead, the way
//! pickle protocol 5 sends a NumPy array's buffer out of band.
//!
//! Both ends choose the encoding from the same static type, so no flag is sent: the parent
//! encodes `&[T]` and the worker decodes `Vec<(T,)>` (or `Vec<T>`) with the same width; the
//! worker encodes its results `&[R]` and the parent decodes `Vec<R>`.

use std::any::TypeId;
use std::mem::ManuallyDrop;

/// `s` as a slice of `U`, if `T` is `U`.
fn same<T: 'static, U: 'static>(s: &[T]) -> Option<&[U]> {
    (TypeId::of::<T>() == TypeId::of::<U>()).then(|| {
        // SAFETY: `T` and `U` are the same type (equal `TypeId`s), so the slice is unchanged.
        unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<U>(), s.len()) }
    })
}

/// `v` as a `Vec<T>`, if `U` is `T`.
fn into_same<U: 'static, T: 'static>(v: Vec<U>) -> Option<Vec<T>> {
    (TypeId::of::<T>() == TypeId::of::<U>()).then(|| {
        let mut v = ManuallyDrop::new(v);
        // SAFETY: `T` and `U` are the same type (equal `TypeId`s), so pointer, length and
        // capacity describe the same allocation with the same layout; `v` is not dropped.
        unsafe { Vec::from_raw_parts(v.as_mut_ptr().cast::<T>(), v.len(), v.capacity()) }
    })
}

/// Calls `$body!(type)` for every fixed-width plain number type (all but `usize` and `isize`).
macro_rules! for_each_fixed {
    ($body:ident) => {
        $body!(u8);
        $body!(u16);
        $body!(u32);
        $body!(u64);
        $body!(u128);
        $body!(i8);
        $body!(i16);
        $body!(i32);
        $body!(i64);
        $body!(i128);
        $body!(f32);
        $body!(f64);
    };
}

/// Appends `items` as raw little-endian bytes if `T` is plain (`usize` and `isize` as 8
/// bytes); returns false, with nothing written, otherwise.
pub(crate) fn encode<T: 'static>(items: &[T], out: &mut Vec<u8>) -> bool {
    macro_rules! try_encode {
        ($t:ty) => {
            if let Some(values) = same::<T, $t>(items) {
                <$t>::put_slice(values, out);
                return true;
            }
            if let Some(values) = same::<T, ($t,)>(items) {
                put_all(values.iter().map(|v| v.0), out);
                return true;
            }
        };
    }
    for_each_fixed!(try_encode);
    try_encode!(usize);
    try_encode!(isize);
    false
}

/// Decodes `bytes` as raw little-endian numbers if `T` is plain: `None` if it is not, an
/// error if the bytes are not a whole number of values.
pub(crate) fn decode<T: 'static>(bytes: &[u8]) -> Option<Result<Vec<T>, String>> {
    macro_rules! try_decode {
        ($t:ty) => {
            if TypeId::of::<T>() == TypeId::of::<$t>() {
                return Some(take_all::<$t>(bytes).map(|v| into_same(v).expect("same type")));
            }
            if TypeId::of::<T>() == TypeId::of::<($t,)>() {
                return Some(take_all::<$t>(bytes).map(|v| {
                    let tuples: Vec<($t,)> = v.into_iter().map(|x| (x,)).collect();
                    into_same(tuples).expect("same type")
                }));
            }
        };
    }
    for_each_fixed!(try_decode);
    try_decode!(usize);
    try_decode!(isize);
    None
}

/// A number with a fixed-width little-endian form.
trait Plain: Copy + 'static {
    const WIDTH: usize;
    const NAME: &'static str;
    fn put(self, out: &mut Vec<u8>);
    fn take(bytes: &[u8]) -> Self;

    fn put_slice(values: &[Self], out: &mut Vec<u8>) {
        put_all(values.iter().copied(), out);
    }

    /// `bytes` holds a whole number of values.
    fn take_slice(bytes: &[u8]) -> Vec<Self> {
        bytes.chunks_exact(Self::WIDTH).map(Self::take).collect()
    }
}

macro_rules! impl_plain {
    ($t:ty) => {
        impl Plain for $t {
            const WIDTH: usize = size_of::<$t>();
            const NAME: &'static str = stringify!($t);
            #[inline]
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            #[inline]
            fn take(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("a chunk of WIDTH bytes"))
            }
            // In memory the values already are their wire form: one block copy.
            #[cfg(target_endian = "little")]
            fn put_slice(values: &[Self], out: &mut Vec<u8>) {
                out.extend_from_slice(bytemuck::cast_slice(values));
            }
            #[cfg(target_endian = "little")]
            fn take_slice(bytes: &[u8]) -> Vec<Self> {
                let mut values = vec![<$t>::default(); bytes.len() / Self::WIDTH];
                bytemuck::cast_slice_mut::<$t, u8>(&mut values).copy_from_slice(bytes);
                values
            }
        }
    };
}

for_each_fixed!(impl_plain);

/// `usize` and `isize` travel as 8 bytes whatever the target. Every worker runs the same
/// executable, so both ends have the same width and the casts lose nothing.
macro_rules! impl_plain_as {
    ($t:ty, $wire:ty) => {
        impl Plain for $t {
            const WIDTH: usize = 8;
            const NAME: &'static str = stringify!($t);
            #[inline]
            fn put(self, out: &mut Vec<u8>) {
                (self as $wire).put(out);
            }
            #[inline]
            fn take(bytes: &[u8]) -> Self {
                <$wire>::take(bytes) as $t
            }
        }
    };
}

impl_plain_as!(usize, u64);
impl_plain_as!(isize, i64);

fn put_all<P: Plain>(values: impl ExactSizeIterator<Item = P>, out: &mut Vec<u8>) {
    out.reserve(values.len() * P::WIDTH);
    for v in values {
        v.put(out);
    }
}

fn take_all<P: Plain>(bytes: &[u8]) -> Result<Vec<P>, String> {
    if bytes.len() % P::WIDTH != 0 {
        return Err(format!(
            "{} bytes are not a whole number of {} values",
            bytes.len(),
            P::NAME
        ));
    }
    Ok(P::take_slice(bytes))
}

#[cfg(test)]
mod test;
