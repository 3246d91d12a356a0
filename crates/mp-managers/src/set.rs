//! `Manager::set`: a set held by the server (Python 3.14's `SyncManager.set()`).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use crate::dict::Key;
use crate::error::{ManagerError, RemoteError, unexpected};
use crate::manager::Manager;
use crate::proxy::Proxy;
use crate::servant::Servant;

/// The server's side of a [`Set`].
#[derive(Debug)]
pub struct SetServant<T>(HashSet<T>);

/// A call on a [`Set`]. The other operand of the set operations travels as a `Vec` (its
/// duplicates do not matter: the server makes a set of it).
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub enum SetCall<T> {
    /// `s.add(x)`, answering whether `x` was new
    Add(T),
    /// `s.discard(x)`, answering whether `x` was there
    Discard(T),
    /// `s.remove(x)`: `KeyError` if missing
    Remove(T),
    /// `s.pop()`: `KeyError` if empty
    Pop,
    /// `x in s`
    Contains(T),
    /// `len(s)`
    Len,
    /// `s.clear()`
    Clear,
    /// `s.update(xs)` (`s |= xs`)
    Update(Vec<T>),
    /// `s.difference_update(xs)` (`s -= xs`)
    DifferenceUpdate(Vec<T>),
    /// `s.intersection_update(xs)` (`s &= xs`)
    IntersectionUpdate(Vec<T>),
    /// `s.symmetric_difference_update(xs)` (`s ^= xs`)
    SymmetricDifferenceUpdate(Vec<T>),
    /// `s.union(xs)` (`s | xs`)
    Union(Vec<T>),
    /// `s.intersection(xs)` (`s & xs`)
    Intersection(Vec<T>),
    /// `s.difference(xs)` (`s - xs`)
    Difference(Vec<T>),
    /// `s.symmetric_difference(xs)` (`s ^ xs`)
    SymmetricDifference(Vec<T>),
    /// `s.issubset(xs)` (`s <= xs`)
    IsSubset(Vec<T>),
    /// `s.issuperset(xs)` (`s >= xs`)
    IsSuperset(Vec<T>),
    /// `s.isdisjoint(xs)`
    IsDisjoint(Vec<T>),
    /// `s.copy()`
    Copy,
}

/// The server's answer to a [`SetCall`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub enum SetReply<T> {
    /// One item (`pop`).
    Item(T),
    /// Items, in no particular order (a new set's).
    Items(Vec<T>),
    /// A yes or no.
    Bool(bool),
    /// A length.
    Len(u64),
    /// Nothing to say.
    Done,
}

impl<T: Key> Servant for SetServant<T> {
    type Args = Vec<T>;
    type Call = SetCall<T>;
    type Reply = SetReply<T>;

    fn create(items: Vec<T>) -> Self {
        SetServant(items.into_iter().collect())
    }

    fn call(&mut self, call: SetCall<T>) -> Result<SetReply<T>, RemoteError> {
        let s = &mut self.0;
        let set_of = |xs: Vec<T>| xs.into_iter().collect::<HashSet<T>>();
        let items = |xs: &mut dyn Iterator<Item = &T>| SetReply::Items(xs.cloned().collect());
        Ok(match call {
            SetCall::Add(x) => SetReply::Bool(s.insert(x)),
            SetCall::Discard(x) => SetReply::Bool(s.remove(&x)),
            SetCall::Remove(x) => {
                if !s.remove(&x) {
                    return Err(RemoteError::Key);
                }
                SetReply::Done
            }
            SetCall::Pop => {
                // Python pops an arbitrary item; any will do.
                let x = s.iter().next().cloned().ok_or(RemoteError::Key)?;
                s.remove(&x);
                SetReply::Item(x)
            }
            SetCall::Contains(x) => SetReply::Bool(s.contains(&x)),
            SetCall::Len => SetReply::Len(s.len() as u64),
            SetCall::Clear => {
                s.clear();
                SetReply::Done
            }
            SetCall::Update(xs) => {
                s.extend(xs);
                SetReply::Done
            }
            SetCall::DifferenceUpdate(xs) => {
                for x in &xs {
                    s.remove(x);
                }
                SetReply::Done
            }
            SetCall::IntersectionUpdate(xs) => {
                let other = set_of(xs);
                s.retain(|x| other.contains(x));
                SetReply::Done
            }
            SetCall::SymmetricDifferenceUpdate(xs) => {
                for x in set_of(xs) {
                    if !s.remove(&x) {
                        s.insert(x);
                    }
                }
                SetReply::Done
            }
            SetCall::Union(xs) => {
                let mut union = s.clone();
                union.extend(xs);
                SetReply::Items(union.into_iter().collect())
            }
            SetCall::Intersection(xs) => items(&mut s.intersection(&set_of(xs))),
            SetCall::Difference(xs) => items(&mut s.difference(&set_of(xs))),
            SetCall::SymmetricDifference(xs) => items(&mut s.symmetric_difference(&set_of(xs))),
            SetCall::IsSubset(xs) => SetReply::Bool(s.is_subset(&set_of(xs))),
            SetCall::IsSuperset(xs) => SetReply::Bool(s.is_superset(&set_of(xs))),
            SetCall::IsDisjoint(xs) => SetReply::Bool(s.is_disjoint(&set_of(xs))),
            SetCall::Copy => items(&mut s.iter()),
        })
    }
}

/// A set held by a manager's server (Python 3.14's `manager.set()`): every method is one call
/// to the server, atomic with respect to the others. Operations that make a new set (`union`,
/// `intersection`, ..., `copy`) bring it out as a std [`HashSet`]; the `*_update` ones change
/// the set in the server. Pass it to children like any argument.
///
/// ```
/// use std::collections::HashSet;
///
/// let manager = mp_managers::Manager::new()?;
/// let s = manager.set_from(["a", "b", "c"].map(String::from))?;
/// assert!(s.add("d".to_owned())?);
/// assert!(s.contains(&"a".to_owned())?);
/// s.difference_update(["a".to_owned(), "b".to_owned()])?;
/// assert_eq!(s.copy()?, HashSet::from(["c", "d"].map(String::from)));
/// assert!(s.is_subset(["c", "d", "e"].map(String::from))?);
/// assert!(s.remove(&"z".to_owned()).is_err()); // KeyError
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct Set<T> {
    proxy: Proxy<SetServant<T>>,
}

impl<T: Key> Set<T> {
    fn done(&self, call: SetCall<T>) -> Result<(), ManagerError> {
        self.proxy.call(call).map(drop)
    }

    fn bool(&self, call: SetCall<T>) -> Result<bool, ManagerError> {
        match self.proxy.call(call)? {
            SetReply::Bool(b) => Ok(b),
            _ => unexpected(),
        }
    }

    fn set(&self, call: SetCall<T>) -> Result<HashSet<T>, ManagerError> {
        match self.proxy.call(call)? {
            SetReply::Items(xs) => Ok(xs.into_iter().collect()),
            _ => unexpected(),
        }
    }

    /// `s.add(x)`; returns whether `x` was new (Python returns `None`).
    pub fn add(&self, x: T) -> Result<bool, ManagerError> {
        self.bool(SetCall::Add(x))
    }

    /// `s.discard(x)`: removes `x` if present; returns whether it was.
    pub fn discard(&self, x: &T) -> Result<bool, ManagerError> {
        self.bool(SetCall::Discard(x.clone()))
    }

    /// `s.remove(x)`: a missing `x` is `RemoteError::Key` (Python's `KeyError`).
    pub fn remove(&self, x: &T) -> Result<(), ManagerError> {
        self.done(SetCall::Remove(x.clone()))
    }

    /// `s.pop()`: removes and returns an arbitrary item; an empty set is `RemoteError::Key`.
    pub fn pop(&self) -> Result<T, ManagerError> {
        match self.proxy.call(SetCall::Pop)? {
            SetReply::Item(x) => Ok(x),
            _ => unexpected(),
        }
    }

    /// `x in s`.
    pub fn contains(&self, x: &T) -> Result<bool, ManagerError> {
        self.bool(SetCall::Contains(x.clone()))
    }

    /// `len(s)`.
    #[doc(alias = "__len__")]
    pub fn len(&self) -> Result<usize, ManagerError> {
        match self.proxy.call(SetCall::Len)? {
            SetReply::Len(n) => Ok(n as usize),
            _ => unexpected(),
        }
    }

    /// `not s`.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// `s.clear()`.
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.done(SetCall::Clear)
    }

    /// `s.update(xs)` (`s |= xs`), in one call.
    pub fn update(&self, xs: impl IntoIterator<Item = T>) -> Result<(), ManagerError> {
        self.done(SetCall::Update(xs.into_iter().collect()))
    }

    /// `s.difference_update(xs)` (`s -= xs`).
    pub fn difference_update(&self, xs: impl IntoIterator<Item = T>) -> Result<(), ManagerError> {
        self.done(SetCall::DifferenceUpdate(xs.into_iter().collect()))
    }

    /// `s.intersection_update(xs)` (`s &= xs`).
    pub fn intersection_update(&self, xs: impl IntoIterator<Item = T>) -> Result<(), ManagerError> {
        self.done(SetCall::IntersectionUpdate(xs.into_iter().collect()))
    }

    /// `s.symmetric_difference_update(xs)` (`s ^= xs`).
    pub fn symmetric_difference_update(
        &self,
        xs: impl IntoIterator<Item = T>,
    ) -> Result<(), ManagerError> {
        self.done(SetCall::SymmetricDifferenceUpdate(xs.into_iter().collect()))
    }

    /// `s.union(xs)` (`s | xs`), a new set out of the server.
    pub fn union(&self, xs: impl IntoIterator<Item = T>) -> Result<HashSet<T>, ManagerError> {
        self.set(SetCall::Union(xs.into_iter().collect()))
    }

    /// `s.intersection(xs)` (`s & xs`), a new set out of the server.
    pub fn intersection(
        &self,
        xs: impl IntoIterator<Item = T>,
    ) -> Result<HashSet<T>, ManagerError> {
        self.set(SetCall::Intersection(xs.into_iter().collect()))
    }

    /// `s.difference(xs)` (`s - xs`), a new set out of the server.
    pub fn difference(&self, xs: impl IntoIterator<Item = T>) -> Result<HashSet<T>, ManagerError> {
        self.set(SetCall::Difference(xs.into_iter().collect()))
    }

    /// `s.symmetric_difference(xs)` (`s ^ xs`), a new set out of the server.
    pub fn symmetric_difference(
        &self,
        xs: impl IntoIterator<Item = T>,
    ) -> Result<HashSet<T>, ManagerError> {
        self.set(SetCall::SymmetricDifference(xs.into_iter().collect()))
    }

    /// `s.issubset(xs)` (`s <= xs`): every item of `s` is in `xs`.
    #[doc(alias = "issubset")]
    pub fn is_subset(&self, xs: impl IntoIterator<Item = T>) -> Result<bool, ManagerError> {
        self.bool(SetCall::IsSubset(xs.into_iter().collect()))
    }

    /// `s.issuperset(xs)` (`s >= xs`): every item of `xs` is in `s`.
    #[doc(alias = "issuperset")]
    pub fn is_superset(&self, xs: impl IntoIterator<Item = T>) -> Result<bool, ManagerError> {
        self.bool(SetCall::IsSuperset(xs.into_iter().collect()))
    }

    /// `s.isdisjoint(xs)`: no item in common.
    #[doc(alias = "isdisjoint")]
    pub fn is_disjoint(&self, xs: impl IntoIterator<Item = T>) -> Result<bool, ManagerError> {
        self.bool(SetCall::IsDisjoint(xs.into_iter().collect()))
    }

    /// A copy of the set, out of the server (Python's `s.copy()` / `set(s)`).
    pub fn copy(&self) -> Result<HashSet<T>, ManagerError> {
        self.set(SetCall::Copy)
    }
}

proxy_wrapper!(Set<T> where T: Key);

impl Manager {
    /// A new, empty managed set (Python 3.14's `manager.set()`).
    pub fn set<T: Key>(&self) -> Result<Set<T>, ManagerError> {
        self.set_from(Vec::new())
    }

    /// A managed set holding `items`, duplicates dropped (Python's `manager.set(items)`).
    pub fn set_from<T: Key>(
        &self,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Set<T>, ManagerError> {
        Ok(Set {
            proxy: self.serve(items.into_iter().collect())?,
        })
    }
}
