//! `Manager::array`: a fixed-length array held by the server (Python's `manager.Array(typecode,
//! sequence)`).

use serde::{Deserialize, Serialize};

use crate::dict::Item;
use crate::error::{ManagerError, RemoteError, unexpected};
use crate::list::{bound, position};
use crate::manager::Manager;
use crate::proxy::Proxy;
use crate::servant::Servant;

/// The server's side of a [`ManagedArray`]: its length never changes.
#[derive(Debug)]
pub struct ArrayServant<T>(Box<[T]>);

/// A call on a [`ManagedArray`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub enum ArrayCall<T> {
    /// `len(a)`
    Len,
    /// `a[i]`
    Get(i64),
    /// `a[i] = x`
    Set(i64, T),
    /// `a[start:stop]`
    Slice(i64, i64),
    /// `a[start:stop] = xs`: as many items as the slice holds
    SetSlice(i64, i64, Vec<T>),
}

/// The server's answer to an [`ArrayCall`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub enum ArrayReply<T> {
    /// One item.
    Item(T),
    /// Several items.
    Items(Vec<T>),
    /// A length.
    Len(u64),
    /// Nothing to say.
    Done,
}

impl<T: Item> Servant for ArrayServant<T> {
    type Args = Vec<T>;
    type Call = ArrayCall<T>;
    type Reply = ArrayReply<T>;

    fn create(items: Vec<T>) -> Self {
        ArrayServant(items.into_boxed_slice())
    }

    fn call(&mut self, call: ArrayCall<T>) -> Result<ArrayReply<T>, RemoteError> {
        let a = &mut self.0;
        let len = a.len();
        let at = |index: i64| {
            position(index, len).ok_or(RemoteError::Index {
                index,
                len: len as u64,
            })
        };
        // Python's slice bounds: clamped, and an empty slice when stop is before start.
        let range = |start: i64, stop: i64| {
            let start = bound(start, len);
            start..bound(stop, len).max(start)
        };
        Ok(match call {
            ArrayCall::Len => ArrayReply::Len(len as u64),
            ArrayCall::Get(i) => ArrayReply::Item(a[at(i)?].clone()),
            ArrayCall::Set(i, x) => {
                a[at(i)?] = x;
                ArrayReply::Done
            }
            ArrayCall::Slice(start, stop) => ArrayReply::Items(a[range(start, stop)].to_vec()),
            ArrayCall::SetSlice(start, stop, xs) => {
                let slot = &mut a[range(start, stop)];
                // The length is fixed (ctypes: "Can only assign sequence of same size").
                if slot.len() != xs.len() {
                    return Err(RemoteError::Value);
                }
                for (old, new) in slot.iter_mut().zip(xs) {
                    *old = new;
                }
                ArrayReply::Done
            }
        })
    }
}

/// A fixed-length array held by a manager's server (Python's `manager.Array(typecode,
/// sequence)`), of any portable item type. Indices are `i64`, negative from the end, as in
/// Python; out of range is `RemoteError::Index`. Slices are clamped as Python's; assigning a
/// slice takes exactly as many items as it holds (else `RemoteError::Value`), so the length
/// never changes.
///
/// For numbers in shared memory with no server round trip, see `mp_shm::Array`.
///
/// ```
/// let manager = mp_managers::Manager::new()?;
/// let a = manager.array_from(vec![1.5f64, 2.5, 3.5])?;
/// a.set(-1, 9.0)?;
/// assert_eq!(a.get(2)?, 9.0);
/// a.set_slice(0, 2, [0.0, 0.5])?;
/// assert_eq!(a.to_vec()?, [0.0, 0.5, 9.0]);
/// assert!(a.get(3).is_err()); // IndexError
/// assert!(a.set_slice(0, 2, [1.0]).is_err()); // ValueError: the length is fixed
///
/// let zeros = manager.array::<u32>(4)?;
/// assert_eq!(zeros.to_vec()?, [0; 4]);
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct ManagedArray<T> {
    proxy: Proxy<ArrayServant<T>>,
}

impl<T: Item> ManagedArray<T> {
    fn items(&self, call: ArrayCall<T>) -> Result<Vec<T>, ManagerError> {
        match self.proxy.call(call)? {
            ArrayReply::Items(xs) => Ok(xs),
            _ => unexpected(),
        }
    }

    /// `len(a)`.
    #[doc(alias = "__len__")]
    pub fn len(&self) -> Result<usize, ManagerError> {
        match self.proxy.call(ArrayCall::Len)? {
            ArrayReply::Len(n) => Ok(n as usize),
            _ => unexpected(),
        }
    }

    /// `len(a) == 0`.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// `a[i]`.
    pub fn get(&self, index: i64) -> Result<T, ManagerError> {
        match self.proxy.call(ArrayCall::Get(index))? {
            ArrayReply::Item(x) => Ok(x),
            _ => unexpected(),
        }
    }

    /// `a[i] = x`.
    pub fn set(&self, index: i64, x: T) -> Result<(), ManagerError> {
        self.proxy.call(ArrayCall::Set(index, x)).map(drop)
    }

    /// `a[start:stop]` (bounds clamped, negative from the end).
    pub fn slice(&self, start: i64, stop: i64) -> Result<Vec<T>, ManagerError> {
        self.items(ArrayCall::Slice(start, stop))
    }

    /// `a[start:stop] = xs`, in one call: `xs` must hold as many items as the slice (else
    /// `RemoteError::Value`, and the array is unchanged).
    pub fn set_slice(
        &self,
        start: i64,
        stop: i64,
        xs: impl IntoIterator<Item = T>,
    ) -> Result<(), ManagerError> {
        self.proxy
            .call(ArrayCall::SetSlice(start, stop, xs.into_iter().collect()))
            .map(drop)
    }

    /// A copy of the array, out of the server (`a[:]`, `list(a)`).
    pub fn to_vec(&self) -> Result<Vec<T>, ManagerError> {
        self.items(ArrayCall::Slice(0, i64::MAX))
    }
}

proxy_wrapper!(ManagedArray<T> where T: Item);

impl Manager {
    /// A managed array of `len` default values (zeros for numbers), as Python's
    /// `manager.Array(typecode, size)`.
    /// A length that cannot be allocated is [`ManagerError::Encode`], not an abort.
    pub fn array<T: Item + Default>(&self, len: usize) -> Result<ManagedArray<T>, ManagerError> {
        let mut items = Vec::new();
        items
            .try_reserve_exact(len)
            .map_err(|e| ManagerError::Encode(format!("an array of {len} items: {e}")))?;
        items.resize_with(len, T::default);
        self.array_from(items)
    }

    /// A managed array holding `items`, its length fixed from now on (Python's
    /// `manager.Array(typecode, sequence)`).
    pub fn array_from<T: Item>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<ManagedArray<T>, ManagerError> {
        Ok(ManagedArray {
            proxy: self.serve(items.into_iter().collect())?,
        })
    }
}
