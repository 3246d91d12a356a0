//! `Manager::dict`: a dict held by the server, in insertion order as Python's.

use std::collections::HashMap;
use std::hash::Hash;

use mp_spawn::Portable;
use serde::{Deserialize, Serialize};

use crate::error::{ManagerError, RemoteError, unexpected};
use crate::manager::Manager;
use crate::proxy::Proxy;
use crate::servant::Servant;

mod updater;

/// What a dict key must be: hashable and comparable on the server, and portable.
pub trait Key: Portable + Hash + Eq + Clone + Send {}
impl<T: Portable + Hash + Eq + Clone + Send> Key for T {}

/// What a managed value must be: portable and clonable on the server.
pub trait Item: Portable + Clone + Send {}
impl<T: Portable + Clone + Send> Item for T {}

/// The server's side of a [`Dict`]: a map that keeps insertion order (removed slots are
/// compacted when they outnumber the live ones).
#[derive(Debug)]
pub struct DictServant<K, V> {
    slots: Vec<Option<(K, V)>>,
    index: HashMap<K, usize>,
}

impl<K: Key, V> DictServant<K, V> {
    fn get(&self, key: &K) -> Option<&V> {
        self.index
            .get(key)
            .and_then(|&i| self.slots[i].as_ref())
            .map(|(_, v)| v)
    }

    fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.index.get(&key) {
            Some(&i) => self.slots[i]
                .as_mut()
                .map(|(_, v)| std::mem::replace(v, value)),
            None => {
                self.index.insert(key.clone(), self.slots.len());
                self.slots.push(Some((key, value)));
                None
            }
        }
    }

    fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.index.remove(key)?;
        let removed = self.slots[i].take().map(|(_, v)| v);
        if self.slots.len() > 16 && self.index.len() < self.slots.len() / 2 {
            self.slots.retain(Option::is_some);
            for (i, (k, _)) in self.slots.iter().flatten().enumerate() {
                self.index.insert(k.clone(), i);
            }
        }
        removed
    }

    fn entries(&self) -> impl Iterator<Item = &(K, V)> {
        self.slots.iter().flatten()
    }
}

/// A call on a [`Dict`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "K: Serialize, V: Serialize"))]
#[serde(bound(deserialize = "K: Deserialize<'de>, V: Deserialize<'de>"))]
pub enum DictCall<K, V> {
    /// `d.get(k)`
    Get(K),
    /// `d[k] = v`, returning the old value
    Insert(K, V),
    /// `del d[k]` / `d.pop(k, None)`
    Remove(K),
    /// `d.pop(k)`: `KeyError` if missing
    Pop(K),
    /// `k in d`
    Contains(K),
    /// `len(d)`
    Len,
    /// `list(d.keys())`
    Keys,
    /// `list(d.values())`
    Values,
    /// `list(d.items())`
    Items,
    /// `d.clear()`
    Clear,
    /// `d.update(pairs)`
    Update(Vec<(K, V)>),
    /// `d.setdefault(k, v)`
    SetDefault(K, V),
    /// A read-modify-write of `d[k]` in one call: `updater` names the closure's updater in the
    /// server (build it with [`DictCall::update_with`]); a reference that names no updater, or
    /// the updater of another value type, is refused with `RemoteError::BadCall`.
    UpdateWith {
        /// The updater's registered code reference.
        updater: mp_spawn::code::RawCodeRef,
        /// The key whose value the closure changes.
        key: K,
    },
}

impl<K, V: 'static> DictCall<K, V> {
    /// The call that runs `f` on the value of `key` in the server (see [`Dict::update_with`]).
    pub fn update_with<F, R>(key: K, f: F) -> DictCall<K, V>
    where
        F: FnOnce(&mut Option<V>) -> R + Copy + 'static,
        R: Serialize,
    {
        // Only the type of `f` is sent: the server makes its own.
        let _ = f;
        DictCall::UpdateWith {
            updater: updater::updater_ref::<V, F, R>(),
            key,
        }
    }
}

/// The server's answer to a [`DictCall`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "K: Serialize, V: Serialize"))]
#[serde(bound(deserialize = "K: Deserialize<'de>, V: Deserialize<'de>"))]
pub enum DictReply<K, V> {
    /// A value, or none.
    Value(Option<V>),
    /// A yes or no.
    Bool(bool),
    /// A length.
    Len(u64),
    /// Keys, in insertion order.
    Keys(Vec<K>),
    /// Values, in insertion order.
    Values(Vec<V>),
    /// Pairs, in insertion order.
    Items(Vec<(K, V)>),
    /// What an `update_with` closure returned, encoded.
    Updated(Vec<u8>),
    /// Nothing to say.
    Done,
}

impl<K: Key, V: Item> Servant for DictServant<K, V> {
    type Args = Vec<(K, V)>;
    type Call = DictCall<K, V>;
    type Reply = DictReply<K, V>;

    fn create(items: Vec<(K, V)>) -> Self {
        let mut dict = DictServant {
            slots: Vec::new(),
            index: HashMap::new(),
        };
        for (k, v) in items {
            dict.insert(k, v);
        }
        dict
    }

    fn call(&mut self, call: DictCall<K, V>) -> Result<DictReply<K, V>, RemoteError> {
        Ok(match call {
            DictCall::Get(k) => DictReply::Value(self.get(&k).cloned()),
            DictCall::Insert(k, v) => DictReply::Value(self.insert(k, v)),
            DictCall::Remove(k) => DictReply::Value(self.remove(&k)),
            DictCall::Pop(k) => DictReply::Value(Some(self.remove(&k).ok_or(RemoteError::Key)?)),
            DictCall::Contains(k) => DictReply::Bool(self.index.contains_key(&k)),
            DictCall::Len => DictReply::Len(self.index.len() as u64),
            DictCall::Keys => DictReply::Keys(self.entries().map(|(k, _)| k.clone()).collect()),
            DictCall::Values => DictReply::Values(self.entries().map(|(_, v)| v.clone()).collect()),
            DictCall::Items => DictReply::Items(self.entries().cloned().collect()),
            DictCall::Clear => {
                self.slots.clear();
                self.index.clear();
                DictReply::Done
            }
            DictCall::Update(pairs) => {
                for (k, v) in pairs {
                    self.insert(k, v);
                }
                DictReply::Done
            }
            DictCall::SetDefault(k, v) => match self.get(&k) {
                Some(existing) => DictReply::Value(Some(existing.clone())),
                None => {
                    self.insert(k, v.clone());
                    DictReply::Value(Some(v))
                }
            },
            DictCall::UpdateWith { updater, key } => {
                let update = updater::updater_at(updater)
                    .ok_or_else(|| RemoteError::BadCall("no such updater".to_owned()))?;
                // A copy: a closure that panics (an error) leaves the dict as it was.
                let mut value = self.get(&key).cloned();
                let result = update(&mut value).ok_or_else(|| {
                    RemoteError::BadCall("the updater of another value type".to_owned())
                })??;
                match value {
                    Some(v) => {
                        self.insert(key, v);
                    }
                    None => {
                        self.remove(&key);
                    }
                }
                DictReply::Updated(result)
            }
        })
    }
}

/// A dict held by a manager's server (Python's `Manager().dict()`): every method is one call to
/// the server, atomic with respect to the others. Pass it to children like any argument.
///
/// ```
/// let manager = mp_managers::Manager::new()?;
/// let d = manager.dict::<String, i64>()?;
/// d.insert("a".to_owned(), 1)?;
/// d.update([("b".to_owned(), 2)])?;
/// assert_eq!(d.keys()?, ["a", "b"]);
/// assert_eq!(d.pop(&"a".to_owned())?, 1);
/// assert!(d.pop(&"a".to_owned()).is_err()); // KeyError
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct Dict<K, V> {
    proxy: Proxy<DictServant<K, V>>,
}

impl<K: Key, V: Item> Dict<K, V> {
    fn value(&self, call: DictCall<K, V>) -> Result<Option<V>, ManagerError> {
        match self.proxy.call(call)? {
            DictReply::Value(v) => Ok(v),
            _ => unexpected(),
        }
    }

    /// `d.get(key)`.
    pub fn get(&self, key: &K) -> Result<Option<V>, ManagerError> {
        self.value(DictCall::Get(key.clone()))
    }

    /// `d.get(key, default)`.
    pub fn get_or(&self, key: &K, default: V) -> Result<V, ManagerError> {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// `d[key] = value`; returns the value it replaced.
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, ManagerError> {
        self.value(DictCall::Insert(key, value))
    }

    /// `d.pop(key, None)`: removes the key, returning its value if it had one.
    pub fn remove(&self, key: &K) -> Result<Option<V>, ManagerError> {
        self.value(DictCall::Remove(key.clone()))
    }

    /// `d.pop(key)`: a missing key is `RemoteError::Key` (Python's `KeyError`).
    pub fn pop(&self, key: &K) -> Result<V, ManagerError> {
        match self.value(DictCall::Pop(key.clone()))? {
            Some(v) => Ok(v),
            None => unexpected(),
        }
    }

    /// `key in d`.
    pub fn contains_key(&self, key: &K) -> Result<bool, ManagerError> {
        match self.proxy.call(DictCall::Contains(key.clone()))? {
            DictReply::Bool(b) => Ok(b),
            _ => unexpected(),
        }
    }

    /// `len(d)`.
    #[doc(alias = "__len__")]
    pub fn len(&self) -> Result<usize, ManagerError> {
        match self.proxy.call(DictCall::Len)? {
            DictReply::Len(n) => Ok(n as usize),
            _ => unexpected(),
        }
    }

    /// `not d`.
    pub fn is_empty(&self) -> Result<bool, ManagerError> {
        Ok(self.len()? == 0)
    }

    /// `list(d.keys())`, in insertion order.
    pub fn keys(&self) -> Result<Vec<K>, ManagerError> {
        match self.proxy.call(DictCall::Keys)? {
            DictReply::Keys(k) => Ok(k),
            _ => unexpected(),
        }
    }

    /// `list(d.values())`, in insertion order.
    pub fn values(&self) -> Result<Vec<V>, ManagerError> {
        match self.proxy.call(DictCall::Values)? {
            DictReply::Values(v) => Ok(v),
            _ => unexpected(),
        }
    }

    /// `list(d.items())`, in insertion order.
    pub fn items(&self) -> Result<Vec<(K, V)>, ManagerError> {
        match self.proxy.call(DictCall::Items)? {
            DictReply::Items(i) => Ok(i),
            _ => unexpected(),
        }
    }

    /// A copy of the dict, out of the server (Python's `d.copy()` / `_getvalue()`).
    pub fn copy(&self) -> Result<Vec<(K, V)>, ManagerError> {
        self.items()
    }

    /// `d.clear()`.
    pub fn clear(&self) -> Result<(), ManagerError> {
        self.proxy.call(DictCall::Clear).map(drop)
    }

    /// `d.update(pairs)`, in one call.
    pub fn update(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), ManagerError> {
        self.proxy
            .call(DictCall::Update(pairs.into_iter().collect()))
            .map(drop)
    }

    /// `d.setdefault(key, default)`: the value of `key`, inserting `default` first if missing.
    pub fn setdefault(&self, key: K, default: V) -> Result<V, ManagerError> {
        match self.value(DictCall::SetDefault(key, default))? {
            Some(v) => Ok(v),
            None => unexpected(),
        }
    }

    /// Reads, changes and writes back the value of `key` in one call, atomic against every
    /// other call on the dict, as `mp_shm::SharedDict::update_with` (Python's `d[k] += 1` is
    /// not): `f` gets the value (`None` if missing; leaving `None` removes it), and what it
    /// returns comes back.
    ///
    /// `f` runs in the manager's server, under the dict's lock: it must be a fn item or a
    /// closure that captures nothing (the server makes its own; checked when the program is
    /// built), and its side effects happen there. A panic in `f` leaves the value as it was
    /// and is `RemoteError::Runtime`.
    ///
    /// ```
    /// let manager = mp_managers::Manager::new()?;
    /// let d = manager.dict::<String, u64>()?;
    /// d.update_with("hits".to_owned(), |v| *v.get_or_insert(0) += 1)?;
    /// d.update_with("hits".to_owned(), |v| *v.get_or_insert(0) += 1)?;
    /// assert_eq!(d.get(&"hits".to_owned())?, Some(2));
    /// let was = d.update_with("hits".to_owned(), |v| v.take())?; // remove, returning it
    /// assert_eq!((was, d.len()?), (Some(2), 0));
    /// # Ok::<(), mp_managers::ManagerError>(())
    /// ```
    ///
    /// A closure that captures state does not build:
    ///
    /// ```compile_fail
    /// let manager = mp_managers::Manager::new().unwrap();
    /// let d = manager.dict::<u8, u64>().unwrap();
    /// let step = 5;
    /// d.update_with(1, move |v| *v.get_or_insert(0) += step).unwrap();
    /// ```
    pub fn update_with<F, R>(&self, key: K, f: F) -> Result<R, ManagerError>
    where
        F: FnOnce(&mut Option<V>) -> R + Copy + 'static,
        R: Portable,
    {
        match self.proxy.call(DictCall::update_with(key, f))? {
            DictReply::Updated(bytes) => crate::codec::decode(&bytes).map_err(ManagerError::Decode),
            _ => unexpected(),
        }
    }
}

proxy_wrapper!(Dict<K, V> where K: Key, V: Item);

impl Manager {
    /// A new, empty managed dict (Python's `manager.dict()`).
    pub fn dict<K: Key, V: Item>(&self) -> Result<Dict<K, V>, ManagerError> {
        self.dict_from(Vec::new())
    }

    /// A managed dict holding `pairs` (Python's `manager.dict(pairs)`).
    pub fn dict_from<K: Key, V: Item>(
        &self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Dict<K, V>, ManagerError> {
        Ok(Dict {
            proxy: self.serve(pairs.into_iter().collect())?,
        })
    }
}
