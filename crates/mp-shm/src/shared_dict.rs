//! [`SharedDict`]: a hash map whose table and entries live in shared memory. Layout and the
//! argument for its robustness: `shared_dict/README.md`.

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering::*;

use mp_spawn::reduction::{dumps_into, loads};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{DictError, SyncError};
use crate::heap::{Block, Kind};
use crate::synchronize::MutexBlock;

mod header;
mod table;
#[cfg(test)]
mod test;

use header::{Control, Key, MAGIC};
use table::{Mem, Region, Table, entry_size};

/// Address space reserved per map, and the data memfd's (sparse) size: regions are placed
/// inside it, so no process ever re-maps and no offset below it can fault.
const RESERVE: u64 = 1 << 35;
/// Regions are powers of two from 64 KiB to a quarter of the reserve (so that a new region
/// always fits beside the current one, see `Table::rebuild`).
const MIN_LOG: u64 = 16;
const MAX_LOG: u64 = 33;
const LOG_MASK: u64 = 0xfff;
/// A region starts with its header: bucket count, arena top, live count, used buckets.
const REGION_HEADER: u64 = 64;
const R_BUCKETS: u64 = 0;
const R_TOP: u64 = 8;
const R_LEN: u64 = 16;
const R_USED: u64 = 24;
/// An entry: hash, then key length | value length << 32, then the bytes, padded to 8.
const ENTRY_HEADER: u64 = 16;
/// Bucket values: an entry's offset in its region (always >= REGION_HEADER), or these.
const EMPTY: u64 = 0;
const TOMB: u64 = 1;
const MIN_BUCKETS: u64 = 8;

/// Where a test holds an insertion still (feature `unstable-test-hooks`).
#[cfg_attr(not(feature = "unstable-test-hooks"), allow(unreachable_pub))]
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stall {
    /// The new entry is written in free space, not linked yet.
    BeforeLink,
    /// A bigger region is built, not switched to yet.
    BeforeSwitch,
}

type Hook<'a> = Option<&'a dyn Fn(Stall)>;

/// A key's and a value's bytes, copied out.
type RawPair = (Vec<u8>, Vec<u8>);

/// A hash map in shared memory, with one robust lock: Python's `Manager().dict()` without the
/// server round trip.
///
/// Keys and values are copied in and out (serialized with postcard, as `mp_spawn::reduction`
/// does), so any serde type works that carries no descriptor; a clone, or a copy sent to a
/// child under any start method, is the same map. **Key equality is equality of the
/// serialized bytes**: right for integers, strings, and tuples and structs of them; floats
/// compare by bits (`0.0 != -0.0`, a NaN equals itself). A key may be looked up by a borrowed
/// form that serializes the same (`&str` for `String`), as with `HashMap`.
///
/// ```
/// use mp_shm::{SharedDict, get_context};
///
/// fn count(hits: SharedDict<String, u64>) {
///     for _ in 0..50 {
///         hits.update_with("hits", |v| *v.get_or_insert(0) += 1).unwrap();
///     }
/// }
///
/// let d = SharedDict::<String, u64>::new()?;
/// d.insert("misses".into(), 3)?;
/// let mut children: Vec<_> = (0..3)
///     .map(|_| get_context("forkserver").unwrap().process(count, (d.clone(),)))
///     .collect();
/// for c in &mut children {
///     c.start()?;
/// }
/// for c in &mut children {
///     c.join()?;
/// }
/// assert_eq!(d.get("hits")?, Some(150));
/// assert_eq!(d.len()?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// **`SharedDict` or a `Manager` dict?** `SharedDict` needs no server: each operation is a lock
/// and a copy in this process (well under a microsecond for small items), and it survives any
/// process's death. It serves processes of one machine that received it (or a clone of it)
/// as an argument or a message, and holds plain data. A `Manager` dict serves any process,
/// remote ones included, by address, and may hold proxies to other managed objects; every
/// call is a round trip to the server.
///
/// **When a process dies holding the lock** (killed mid-operation), the map is still
/// consistent: every change becomes visible through one final store (see the crate's
/// `shared_dict/README.md`), so it holds either the state before the interrupted operation
/// or the one after. The next operation, in any process, checks and repairs the counters,
/// returns [`DictError::Sync`]`(`[`SyncError::OwnerDied`]`)` without doing anything else, and
/// the map works again from the call after. `update` and `update_with` are atomic per key.
pub struct SharedDict<K, V> {
    shared: Arc<Shared>,
    _t: PhantomData<fn() -> (K, V)>,
}

#[derive(Debug)]
struct Shared {
    lock: MutexBlock,
    data: Block,
    /// The hash key, from the header (it never changes).
    key: Key,
}

impl<K, V> Clone for SharedDict<K, V> {
    fn clone(&self) -> Self {
        SharedDict {
            shared: self.shared.clone(),
            _t: PhantomData,
        }
    }
}

impl<K, V> std::fmt::Debug for SharedDict<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedDict").finish_non_exhaustive()
    }
}

fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, DictError> {
    let mut buf = Vec::new();
    let fds = dumps_into(value, &mut buf).map_err(|e| DictError::Encode(e.0))?;
    if !fds.is_empty() {
        return Err(DictError::HasDescriptors);
    }
    Ok(buf)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DictError> {
    loads(bytes, Vec::new()).map_err(|e| DictError::Decode(e.0))
}

fn corrupt(what: &'static str) -> DictError {
    DictError::Corrupt(what)
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> SharedDict<K, V> {
    /// An empty map.
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<u32, String>::new()?;
    /// assert!(d.is_empty()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new() -> Result<Self, DictError> {
        let lock = MutexBlock::new(std::mem::size_of::<Control>())?;
        let data = Block::new(Kind::Dict, RESERVE as usize)?;
        let key = Key::random()?;
        let shared = Shared { lock, data, key };
        let mem = shared.mem();
        let first = Region {
            off: 0,
            size: 1 << MIN_LOG,
            nb: MIN_BUCKETS,
        };
        let t = Table::init(mem, first)?;
        let control = shared.control();
        control.region.store(t.r.word(), Release);
        let [k0, k1] = key.words();
        control.key[0].store(k0, Relaxed);
        control.key[1].store(k1, Relaxed);
        // Last: a process that sees the magic sees the region and the key.
        control.magic.store(MAGIC, Release);
        Ok(SharedDict {
            shared: Arc::new(shared),
            _t: PhantomData,
        })
    }

    /// Runs `f` on the current table under the lock.
    fn locked<R>(&self, f: impl FnOnce(&Shared) -> Result<R, DictError>) -> Result<R, DictError> {
        /// Gives the lock back, also when `f` (a user closure, in `update_with`) panics.
        struct Release<'a>(&'a MutexBlock);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                let _ = self.0.release_once();
            }
        }
        let s = &*self.shared;
        match s.lock.take_forever() {
            Ok(_) => {}
            Err(SyncError::OwnerDied) => {
                let _release = Release(&s.lock);
                s.repair()?;
                s.lock.clear_owner_died();
                return Err(DictError::Sync(SyncError::OwnerDied));
            }
            Err(e) => return Err(e.into()),
        }
        let _release = Release(&s.lock);
        f(s)
    }

    fn put(&self, key: &[u8], value: &[u8], hook: Hook<'_>) -> Result<Option<Vec<u8>>, DictError> {
        let h = self.shared.key.hash(key);
        self.locked(|s| s.put(h, key, value, hook))
    }

    /// Sets `key` to `value`, returning the value it replaces (Python's `d[k] = v`).
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<String, u32>::new()?;
    /// assert_eq!(d.insert("a".into(), 1)?, None);
    /// assert_eq!(d.insert("a".into(), 2)?, Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn insert(&self, key: K, value: V) -> Result<Option<V>, DictError> {
        let old = self.put(&encode(&key)?, &encode(&value)?, None)?;
        old.map(|b| decode(&b)).transpose()
    }

    /// `insert`, stalled at `at` by calling `stall` there (which never returns, in the tests
    /// that kill the process there).
    #[cfg(feature = "unstable-test-hooks")]
    #[doc(hidden)]
    pub fn insert_stalled(
        &self,
        key: K,
        value: V,
        at: Stall,
        stall: &dyn Fn(),
    ) -> Result<Option<V>, DictError> {
        let hook = |here: Stall| {
            if here == at {
                stall()
            }
        };
        let old = self.put(&encode(&key)?, &encode(&value)?, Some(&hook))?;
        old.map(|b| decode(&b)).transpose()
    }

    /// The value of `key` (Python's `d.get(k)`).
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<String, u32>::new()?;
    /// d.insert("a".into(), 1)?;
    /// assert_eq!(d.get("a")?, Some(1));
    /// assert_eq!(d.get("b")?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>, DictError>
    where
        K: Borrow<Q>,
    {
        let key = encode(key)?;
        let h = self.shared.key.hash(&key);
        let bytes = self.locked(|s| {
            let t = s.table()?;
            match t.find(h, &key)?.1 {
                Some(e) => Ok(Some(t.value(e)?)),
                None => Ok(None),
            }
        })?;
        bytes.map(|b| decode(&b)).transpose()
    }

    /// The value of `key`, or `default` (Python's `d.get(k, default)`).
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<u8, u8>::new()?;
    /// assert_eq!(d.get_or(&1, 9)?, 9);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_or<Q: Serialize + ?Sized>(&self, key: &Q, default: V) -> Result<V, DictError>
    where
        K: Borrow<Q>,
    {
        Ok(self.get(key)?.unwrap_or(default))
    }

    /// Whether `key` is in the map (Python's `k in d`).
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<u8, u8>::new()?;
    /// d.insert(1, 2)?;
    /// assert!(d.contains_key(&1)? && !d.contains_key(&2)?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn contains_key<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<bool, DictError>
    where
        K: Borrow<Q>,
    {
        let key = encode(key)?;
        let h = self.shared.key.hash(&key);
        self.locked(|s| Ok(s.table()?.find(h, &key)?.1.is_some()))
    }

    /// Removes `key`, returning its value (Python's `d.pop(k, None)`).
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<u8, u8>::new()?;
    /// d.insert(1, 2)?;
    /// assert_eq!(d.remove(&1)?, Some(2));
    /// assert_eq!(d.remove(&1)?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn remove<Q: Serialize + ?Sized>(&self, key: &Q) -> Result<Option<V>, DictError>
    where
        K: Borrow<Q>,
    {
        let key = encode(key)?;
        let h = self.shared.key.hash(&key);
        let old = self.locked(|s| s.remove(h, &key))?;
        old.map(|b| decode(&b)).transpose()
    }

    /// Removes `key`, returning its value, or `default` when it is absent (Python's
    /// `d.pop(k, default)`).
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<u8, u8>::new()?;
    /// d.insert(1, 2)?;
    /// assert_eq!(d.pop(&1, 0)?, 2);
    /// assert_eq!(d.pop(&1, 0)?, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn pop<Q: Serialize + ?Sized>(&self, key: &Q, default: V) -> Result<V, DictError>
    where
        K: Borrow<Q>,
    {
        Ok(self.remove(key)?.unwrap_or(default))
    }

    /// The value of `key`; if absent, inserts `default` and returns it (Python's
    /// `d.setdefault(k, default)`), in one step under the lock.
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<u8, u8>::new()?;
    /// assert_eq!(d.setdefault(1, 5)?, 5);
    /// assert_eq!(d.setdefault(1, 6)?, 5);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn setdefault(&self, key: K, default: V) -> Result<V, DictError> {
        let key_bytes = encode(&key)?;
        let value_bytes = encode(&default)?;
        let h = self.shared.key.hash(&key_bytes);
        let found = self.locked(|s| {
            let t = s.table()?;
            if let Some(e) = t.find(h, &key_bytes)?.1 {
                return Ok(Some(t.value(e)?));
            }
            s.put(h, &key_bytes, &value_bytes, None)?;
            Ok(None)
        })?;
        match found {
            Some(b) => decode(&b),
            None => Ok(default),
        }
    }

    /// Reads, changes and writes back the value of `key` in one step under the lock: `f`
    /// gets `Some(value)` or `None` when absent, and what it leaves is stored (`None`
    /// removes the key). Python needs a separate lock around `d[k] += 1` for this.
    ///
    /// `f` runs with the map locked: it must not use the same map (that fails with
    /// [`SyncError::Reentrant`]). If it panics, the map is unchanged.
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<String, u64>::new()?;
    /// d.update_with("hits", |v| *v.get_or_insert(0) += 1)?;
    /// d.update_with("hits", |v| *v.get_or_insert(0) += 1)?;
    /// assert_eq!(d.get("hits")?, Some(2));
    /// let was = d.update_with("hits", |v| v.take())?; // remove, returning the old value
    /// assert_eq!(was, Some(2));
    /// assert!(d.is_empty()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_with<Q: Serialize + ?Sized, R>(
        &self,
        key: &Q,
        f: impl FnOnce(&mut Option<V>) -> R,
    ) -> Result<R, DictError>
    where
        K: Borrow<Q>,
    {
        let key = encode(key)?;
        let h = self.shared.key.hash(&key);
        self.locked(|s| {
            let t = s.table()?;
            let found = t.find(h, &key)?.1;
            let mut value = match found {
                Some(e) => Some(decode::<V>(&t.value(e)?)?),
                None => None,
            };
            let r = f(&mut value);
            match value {
                Some(v) => {
                    s.put(h, &key, &encode(&v)?, None)?;
                }
                None if found.is_some() => {
                    s.remove(h, &key)?;
                }
                None => {}
            }
            Ok(r)
        })
    }

    /// The number of keys (Python's `len(d)`).
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<u8, u8>::new()?;
    /// d.insert(1, 1)?;
    /// d.insert(1, 2)?;
    /// assert_eq!(d.len()?, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn len(&self) -> Result<usize, DictError> {
        self.locked(|s| {
            let n = s.table()?.field(R_LEN)?.load(Relaxed);
            usize::try_from(n).map_err(|_| corrupt("the length does not fit"))
        })
    }

    /// Whether the map is empty.
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<u8, u8>::new()?;
    /// assert!(d.is_empty()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn is_empty(&self) -> Result<bool, DictError> {
        Ok(self.len()? == 0)
    }

    /// Copies of every (key bytes, value bytes) pair, taken in one step under the lock.
    fn raw_items(&self, keys: bool, values: bool) -> Result<Vec<RawPair>, DictError> {
        self.locked(|s| {
            let t = s.table()?;
            let mut out = Vec::new();
            for i in 0..t.r.nb {
                if let Some(e) = t.entry_at(i)? {
                    let k = if keys { t.key(e)? } else { Vec::new() };
                    let v = if values { t.value(e)? } else { Vec::new() };
                    out.push((k, v));
                }
            }
            Ok(out)
        })
    }

    /// The keys, in no particular order (Python's `list(d.keys())`).
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<u8, u8>::new()?;
    /// d.update([(1, 10), (2, 20)])?;
    /// let mut keys = d.keys()?;
    /// keys.sort();
    /// assert_eq!(keys, [1, 2]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn keys(&self) -> Result<Vec<K>, DictError> {
        self.raw_items(true, false)?
            .iter()
            .map(|(k, _)| decode(k))
            .collect()
    }

    /// The values, in no particular order (Python's `list(d.values())`).
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<u8, String>::new()?;
    /// d.insert(1, "one".into())?;
    /// assert_eq!(d.values()?, ["one"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn values(&self) -> Result<Vec<V>, DictError> {
        self.raw_items(false, true)?
            .iter()
            .map(|(_, v)| decode(v))
            .collect()
    }

    /// The (key, value) pairs, in no particular order (Python's `list(d.items())`).
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<String, u8>::new()?;
    /// d.insert("x".into(), 1)?;
    /// assert_eq!(d.items()?, [("x".to_string(), 1)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn items(&self) -> Result<Vec<(K, V)>, DictError> {
        self.raw_items(true, true)?
            .iter()
            .map(|(k, v)| Ok((decode(k)?, decode(v)?)))
            .collect()
    }

    /// Removes every key (Python's `d.clear()`), in one step: other processes see the whole
    /// map or an empty one. The memory it used is given back.
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<u8, u8>::new()?;
    /// d.update([(1, 1), (2, 2)])?;
    /// d.clear()?;
    /// assert!(d.is_empty()?);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn clear(&self) -> Result<(), DictError> {
        self.locked(|s| {
            let t = s.table()?;
            t.rebuild(s, None, 0, 0, None).map(drop)
        })
    }

    /// Inserts every pair (Python's `d.update(pairs)`), under one hold of the lock. Each
    /// insertion is atomic; a process killed midway leaves the ones before it.
    ///
    /// ```
    /// let d = mp_shm::SharedDict::<u8, u8>::new()?;
    /// d.update((0..100).map(|i| (i, i)))?;
    /// assert_eq!(d.len()?, 100);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update(&self, pairs: impl IntoIterator<Item = (K, V)>) -> Result<(), DictError> {
        let encoded = pairs
            .into_iter()
            .map(|(k, v)| Ok((encode(&k)?, encode(&v)?)))
            .collect::<Result<Vec<_>, DictError>>()?;
        self.locked(|s| {
            for (k, v) in &encoded {
                s.put(s.key.hash(k), k, v, None)?;
            }
            Ok(())
        })
    }
}

impl Shared {
    fn control(&self) -> &Control {
        // SAFETY: the lock's block has room for a Control at its data offset (64-aligned),
        // checked when it was made or attached, and stays mapped while `self` lives; the
        // words are only reached through atomics.
        unsafe { &*self.lock.data().cast::<Control>() }
    }

    fn mem(&self) -> Mem<'_> {
        Mem {
            base: self.data.ptr(),
            _block: PhantomData,
        }
    }

    /// The current table, checked. Caller holds the lock.
    fn table(&self) -> Result<Table<'_>, DictError> {
        Table::load(self.mem(), self.control().region.load(Acquire))
    }

    /// Caller holds the lock.
    fn put(
        &self,
        h: u64,
        key: &[u8],
        value: &[u8],
        hook: Hook<'_>,
    ) -> Result<Option<Vec<u8>>, DictError> {
        let need = entry_size(key, value)?;
        let mut t = self.table()?;
        let mut grown = false;
        loop {
            let (slot, found) = t.find(h, key)?;
            let slot_empty = t.bucket(slot)?.load(Relaxed) == EMPTY;
            let top = t.top()?;
            let used = t.field(R_USED)?.load(Relaxed);
            let adds_bucket = found.is_none() && slot_empty;
            let room = top.checked_add(need).is_some_and(|end| end <= t.r.size);
            if !room || (adds_bucket && used.saturating_add(1) * 4 > t.r.nb * 3) {
                if grown {
                    return Err(corrupt("no room after growing"));
                }
                t = t.rebuild(self, Some(&t), need, 1, hook)?;
                grown = true;
                continue;
            }
            let old = found.map(|e| t.value(e)).transpose()?;
            // The entry goes into free space, invisible until linked...
            t.write_entry(top, h, key, value)?;
            t.field(R_TOP)?.store(top + need, Release);
            if let Some(hook) = hook {
                hook(Stall::BeforeLink);
            }
            // ...by this one store (Release: the entry and the top are written before it).
            t.bucket(slot)?.store(top, Release);
            if found.is_none() {
                let len = t.field(R_LEN)?;
                len.store(len.load(Relaxed) + 1, Relaxed);
            }
            if adds_bucket {
                t.field(R_USED)?.store(used + 1, Relaxed);
            }
            return Ok(old);
        }
    }

    /// Caller holds the lock.
    fn remove(&self, h: u64, key: &[u8]) -> Result<Option<Vec<u8>>, DictError> {
        let t = self.table()?;
        let (slot, found) = t.find(h, key)?;
        let Some(e) = found else {
            return Ok(None);
        };
        let old = t.value(e)?;
        // Removal is this one store.
        t.bucket(slot)?.store(TOMB, Release);
        let len = t.field(R_LEN)?;
        len.store(len.load(Relaxed).saturating_sub(1), Relaxed);
        Ok(Some(old))
    }

    /// After a holder died: the table's links are whole by construction; recount what the
    /// holder may not have finished counting. Caller holds the lock.
    fn repair(&self) -> Result<(), DictError> {
        let t = self.table()?;
        let (mut len, mut used) = (0, 0);
        for i in 0..t.r.nb {
            let b = t.bucket(i)?;
            match b.load(Relaxed) {
                EMPTY => {}
                TOMB => used += 1,
                _ => {
                    used += 1;
                    if t.entry_at(i).is_ok() {
                        len += 1;
                    } else {
                        // Never made by a whole link; drop it rather than fail forever.
                        b.store(TOMB, Release);
                    }
                }
            }
        }
        t.field(R_LEN)?.store(len, Relaxed);
        t.field(R_USED)?.store(used, Relaxed);
        Ok(())
    }
}
