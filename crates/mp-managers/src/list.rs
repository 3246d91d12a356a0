//! `Manager::list`: a list held by the server, with Python's indexing (negative from the end).

use mp_spawn::code::{Kind, RawCodeRef};
use std::any::Any;

use serde::{Deserialize, Serialize};

use crate::dict::Item;
use crate::error::{ManagerError, RemoteError, unexpected};
use crate::manager::Manager;
use crate::proxy::Proxy;
use crate::servant::Servant;

/// What a list item must be: an [`Item`] that compares (for `remove`, `index`, `count`).
pub trait ListItem: Item + PartialEq {}
impl<T: Item + PartialEq> ListItem for T {}

/// The server's side of a [`List`].
#[derive(Debug)]
pub struct ListServant<T>(Vec<T>);

/// A call on a [`List`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub enum ListCall<T> {
    /// `l.append(x)`
    Append(T),
    /// `l.extend(xs)`
    Extend(Vec<T>),
    /// `l.insert(i, x)`
    Insert(i64, T),
    /// `l.pop(i)` (`None`: the last)
    Pop(Option<i64>),
    /// `l.remove(x)`
    Remove(T),
    /// `l.index(x)`
    Index(T),
    /// `l.count(x)`
    Count(T),
    /// `len(l)`
    Len,
    /// `l[i]`
    Get(i64),
    /// `l[i] = x`
    Set(i64, T),
    /// `l[a:b]`
    Slice(i64, i64),
    /// `l.clear()`
    Clear,
    /// `l.reverse()`
    Reverse,
    /// `l.sort(reverse=...)`: `sorter` names `sort_vec::<T>` in the server (build it with
    /// [`ListCall::sort`]); a reference that names no sorter, or the sorter of another item
    /// type, is refused with `RemoteError::BadCall`.
    Sort {
        /// The sorter's registered code reference.
        sorter: RawCodeRef,
        /// Largest first (Python's `reverse=True`).
        reverse: bool,
    },
}

impl<T: ListItem + Ord> ListCall<T> {
    /// `l.sort(reverse=reverse)`, naming the sorter of `T` for the server.
    pub fn sort(reverse: bool) -> ListCall<T> {
        ListCall::Sort {
            sorter: mp_spawn::code_ref!(SORTERS, sort_vec::<T>).raw(),
            reverse,
        }
    }
}

// Sorting on the server. `ListServant<T>` is created for any `T: ListItem` (only `PartialEq`), so
// it cannot call `sort` generically, and Rust has no specialisation to ask "is T: Ord?" there.
// The client, which knows `T: Ord`, names the monomorphised `sort_vec::<T>` by its registered
// code reference, the way a servant's type is named (servant.rs): the server resolves it only
// if it is exactly a registered sorter (anything else is refused), and the sorter checks the
// `TypeId` of what it is given before it sorts, so a sorter of another type (a forged or
// mixed-up call) is an error, never a wrong cast.

/// A sorter: sorts the `Vec<T>` behind the `&mut dyn Any` (largest first if asked), or
/// returns `false` if it is not a `Vec` of its `T`.
type Sorter = fn(&mut dyn Any, bool) -> bool;

// SAFETY: `Sorter` is a fn pointer type.
static SORTERS: Kind<Sorter> = unsafe { Kind::new() };

fn sort_vec<T: Ord + 'static>(v: &mut dyn Any, reverse: bool) -> bool {
    let Some(v) = v.downcast_mut::<Vec<T>>() else {
        return false;
    };
    // Stable both ways, as Python's: equal items keep their order, reversed or not.
    if reverse {
        v.sort_by(|a, b| b.cmp(a));
    } else {
        v.sort();
    }
    true
}

/// The server's answer to a [`ListCall`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub enum ListReply<T> {
    /// One item.
    Item(T),
    /// Several items.
    Items(Vec<T>),
    /// A number (a length, an index, a count).
    Number(u64),
    /// Nothing to say.
    Done,
}

/// Python's index: negative counts from the end; `None` if out of range.
pub(crate) fn position(index: i64, len: usize) -> Option<usize> {
    let len_i = i64::try_from(len).ok()?;
    let i = if index < 0 {
        index.checked_add(len_i)?
    } else {
        index
    };
    (0..len_i).contains(&i).then_some(i as usize)
}

/// Python's slice bound: clamped into `0..=len`.
pub(crate) fn bound(index: i64, len: usize) -> usize {
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let i = if index < 0 {
        index.saturating_add(len_i)
    } else {
        index
    };
    i.clamp(0, len_i) as usize
}

impl<T: ListItem> Servant for ListServant<T> {
    type Args = Vec<T>;
    type Call = ListCall<T>;
    type Reply = ListReply<T>;

    fn create(items: Vec<T>) -> Self {
        ListServant(items)
    }

    fn call(&mut self, call: ListCall<T>) -> Result<ListReply<T>, RemoteError> {
        let v = &mut self.0;
        let out_of_range = |index: i64, len: usize| RemoteError::Index {
            index,
            len: len as u64,
        };
        Ok(match call {
            ListCall::Append(x) => {
                v.push(x);
                ListReply::Done
            }
            ListCall::Extend(xs) => {
                v.extend(xs);
                ListReply::Done
            }
            ListCall::Insert(i, x) => {
                // Python's insert clamps instead of failing.
                v.insert(bound(i, v.len()), x);
                ListReply::Done
            }
            ListCall::Pop(i) => {
                let i = i.unwrap_or(-1);
                let at = position(i, v.len()).ok_or(out_of_range(i, v.len()))?;
                ListReply::Item(v.remove(at))
            }
            ListCall::Remove(x) => {
                let at = v.iter().position(|y| *y == x).ok_or(RemoteError::Value)?;
                v.remove(at);
                ListReply::Done
            }
            ListCall::Index(x) => {
                ListReply::Number(v.iter().position(|y| *y == x).ok_or(RemoteError::Value)? as u64)
            }
            ListCall::Count(x) => ListReply::Number(v.iter().filter(|y| **y == x).count() as u64),
            ListCall::Len => ListReply::Number(v.len() as u64),
            ListCall::Get(i) => {
                let at = position(i, v.len()).ok_or(out_of_range(i, v.len()))?;
                ListReply::Item(v[at].clone())
            }
            ListCall::Set(i, x) => {
                let at = position(i, v.len()).ok_or(out_of_range(i, v.len()))?;
                v[at] = x;
                ListReply::Done
            }
            ListCall::Slice(a, b) => {
                let (a, b) = (bound(a, v.len()), bound(b, v.len()));
                ListReply::Items(v.get(a..b.max(a)).unwrap_or_default().to_vec())
            }
            ListCall::Clear => {
                v.clear();
                ListReply::Done
            }
            ListCall::Reverse => {
                v.reverse();
                ListReply::Done
            }
            ListCall::Sort { sorter, reverse } => {
                let sort = SORTERS
                    .resolve(sorter)
                    .ok_or_else(|| RemoteError::BadCall("no such sorter".to_owned()))?;
                if !(sort.get())(v, reverse) {
                    return Err(RemoteError::BadCall(
                        "the sorter of another item type".to_owned(),
                    ));
                }
                ListReply::Done
            }
        })
    }
}

/// A list held by a manager's server (Python's `Manager().list()`): indices are `i64`, negative
/// from the end, as in Python; out of range is `RemoteError::Index`.
///
/// ```
/// let manager = mp_managers::Manager::new()?;
/// let l = manager.list_from(vec![1, 2, 3])?;
/// l.append(4)?;
/// assert_eq!(l.get(-1)?, 4);
/// assert_eq!(l.slice(1, -1)?, [2, 3]);
/// assert_eq!(l.pop(None)?, 4);
/// assert!(l.get(10).is_err()); // IndexError
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct List<T> {
    proxy: Proxy<ListServant<T>>,
}

impl<T: ListItem> List<T> {
    fn done(&self, call: ListCall<T>) -> Result<(), ManagerError> {
        self.proxy.call(call).map(drop)
    }

    fn item(&self, call: ListCall<T>) -> Result<T, ManagerError> {
        match self.proxy.call(call)? {
            ListReply::Item(x) => Ok(x),
            _ => unexpected(),
        }
    }

    fn number(&self, call: ListCall<T>) -> Result<usize, ManagerError> {
        match self.proxy.call(call)? {
            ListReply::Number(n) => Ok(n as usize),
            _ => unexpected(),
        }
    }

    /// `l.append(x)`.
    pub fn append(&self, x: T) -> Result<(), ManagerError> {
        self.done(ListCall::Append(x))
    }

    /// `l.extend(xs)`, in one call.
    pub fn extend(&self, xs: impl IntoIterator<Item = T>) -> Result<(), ManagerError> {
        self.done(ListCall::Extend(xs.into_iter().collect()))
    }

    /// `l.insert(i, x)` (clamped into range, as Python's).
    pub fn insert(&self, index: i64, x: T) -> Result<(), ManagerError> {
        self.done(ListCall::Insert(index, x))
    }

    /// `l.pop(i)`; `None` pops the last item.
    pub fn pop(&self, index: Option<i64>) -> Result<T, ManagerError> {
        self.item(ListCall::Pop(index))
    }

    /// `l.remove(x)`: the first equal item; none is `RemoteError::Value`.
    pub fn remove(&self, x: T) -> Result<(), ManagerError> {
        self.done(ListCall::Remove(x))
    }

    /// `l.index(x)`: where the first equal item is; none is `RemoteError::Value`.
    pub fn index(&self, x: T) -> Result<usize, ManagerError> {
        self.number(ListCall::Index(x))
    }

    /// `l.count(x)`.
    pub fn count(&self, x: T) -> Result<usize, ManagerError> {
        self.number(ListCall::Count(x))
    }

    /// `len(l)`.
    pub fn len(&self) -> Result<usize, ManagerError> {
        self.number(ListCall::Len)
    }

    /// `not l`.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// `l[i]`.
    pub fn get(&self, index: i64) -> Result<T, ManagerError> {
        self.item(ListCall::Get(index))
    }

    /// `l[i] = x`.
    pub fn set(&self, index: i64, x: T) -> Result<(), ManagerError> {
        self.done(ListCall::Set(index, x))
    }

    /// `l[start:stop]` (bounds clamped, negative from the end).
    pub fn slice(&self, start: i64, stop: i64) -> Result<Vec<T>, ManagerError> {
        match self.proxy.call(ListCall::Slice(start, stop))? {
            ListReply::Items(xs) => Ok(xs),
            _ => unexpected(),
        }
    }

    /// A copy of the list, out of the server (`l[:]`).
    pub fn to_vec(&self) -> Result<Vec<T>, ManagerError> {
        self.slice(0, i64::MAX)
    }

    /// `l.clear()`.
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.done(ListCall::Clear)
    }

    /// `l.reverse()`.
    pub fn reverse(&self) -> Result<(), ManagerError> {
        self.done(ListCall::Reverse)
    }
}

impl<T: ListItem + Ord> List<T> {
    /// `l.sort()`: smallest first, in the server, in one call. Stable (equal items keep their
    /// order), as Python's.
    ///
    /// ```
    /// let manager = mp_managers::Manager::new()?;
    /// let l = manager.list_from([3, 1, 2])?;
    /// l.sort()?;
    /// assert_eq!(l.to_vec()?, [1, 2, 3]);
    /// l.sort_reverse()?;
    /// assert_eq!(l.to_vec()?, [3, 2, 1]);
    /// # Ok::<(), mp_managers::ManagerError>(())
    /// ```
    pub fn sort(&self) -> Result<(), ManagerError> {
        self.done(ListCall::sort(false))
    }

    /// `l.sort(reverse=True)`: largest first, stable as [`sort`](List::sort).
    pub fn sort_reverse(&self) -> Result<(), ManagerError> {
        self.done(ListCall::sort(true))
    }
}

proxy_wrapper!(List<T> where T: ListItem);

impl Manager {
    /// A new, empty managed list (Python's `manager.list()`).
    pub fn list<T: ListItem>(&self) -> Result<List<T>, ManagerError> {
        self.list_from(Vec::new())
    }

    /// A managed list holding `items` (Python's `manager.list(items)`).
    pub fn list_from<T: ListItem>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<List<T>, ManagerError> {
        Ok(List {
            proxy: self.serve(items.into_iter().collect())?,
        })
    }
}
