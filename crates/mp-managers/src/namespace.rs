//! `Manager::value` and `Manager::namespace`: one value, and named attributes, held by the
//! server.

use std::collections::BTreeMap;

use mp_spawn::Portable;
use serde::{Deserialize, Serialize};

use crate::dict::Item;
use crate::error::{ManagerError, RemoteError, unexpected};
use crate::manager::Manager;
use crate::proxy::Proxy;
use crate::servant::Servant;

/// The server's side of a [`ManagedValue`].
#[derive(Debug)]
pub struct ValueServant<T>(T);

/// A call on a [`ManagedValue`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub enum ValueCall<T> {
    /// `v.value`
    Get,
    /// `v.value = x`, returning the old value
    Set(T),
}

impl<T: Item> Servant for ValueServant<T> {
    type Args = T;
    type Call = ValueCall<T>;
    type Reply = T;

    fn create(value: T) -> Self {
        ValueServant(value)
    }

    fn call(&mut self, call: ValueCall<T>) -> Result<T, RemoteError> {
        Ok(match call {
            ValueCall::Get => self.0.clone(),
            ValueCall::Set(x) => std::mem::replace(&mut self.0, x),
        })
    }
}

/// One value held by a manager's server (Python's `manager.Value(typecode, value)`), of any
/// portable type.
///
/// ```
/// let manager = mp_managers::Manager::new()?;
/// let v = manager.value(String::from("a"))?;
/// assert_eq!(v.set("b".to_owned())?, "a");
/// assert_eq!(v.get()?, "b");
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct ManagedValue<T> {
    proxy: Proxy<ValueServant<T>>,
}

impl<T: Item> ManagedValue<T> {
    /// The value (`v.value`).
    pub fn get(&self) -> Result<T, ManagerError> {
        self.proxy.call(ValueCall::Get)
    }

    /// Replaces the value (`v.value = x`), returning the old one.
    pub fn set(&self, value: T) -> Result<T, ManagerError> {
        self.proxy.call(ValueCall::Set(value))
    }
}

/// The server's side of a [`Namespace`]: attributes stored encoded, each with the name of the
/// type it was set as (checked by the reader).
#[derive(Debug)]
pub struct NamespaceServant(BTreeMap<String, Vec<u8>>);

/// A call on a [`Namespace`].
#[derive(Debug, Serialize, Deserialize)]
pub enum NamespaceCall {
    /// `getattr(ns, name)`
    Get(String),
    /// `setattr(ns, name, value)` (the value encoded)
    Set(String, Vec<u8>),
    /// `delattr(ns, name)`
    Del(String),
    /// The names, sorted.
    Names,
}

/// The server's answer to a [`NamespaceCall`].
#[derive(Debug, Serialize, Deserialize)]
pub enum NamespaceReply {
    /// An encoded value.
    Value(Vec<u8>),
    /// Names.
    Names(Vec<String>),
    /// Nothing to say.
    Done,
}

impl Servant for NamespaceServant {
    type Args = ();
    type Call = NamespaceCall;
    type Reply = NamespaceReply;

    fn create((): ()) -> Self {
        NamespaceServant(BTreeMap::new())
    }

    fn call(&mut self, call: NamespaceCall) -> Result<NamespaceReply, RemoteError> {
        Ok(match call {
            NamespaceCall::Get(name) => match self.0.get(&name) {
                Some(bytes) => NamespaceReply::Value(bytes.clone()),
                None => return Err(RemoteError::Attribute(name)),
            },
            NamespaceCall::Set(name, bytes) => {
                self.0.insert(name, bytes);
                NamespaceReply::Done
            }
            NamespaceCall::Del(name) => match self.0.remove(&name) {
                Some(_) => NamespaceReply::Done,
                None => return Err(RemoteError::Attribute(name)),
            },
            NamespaceCall::Names => NamespaceReply::Names(self.0.keys().cloned().collect()),
        })
    }
}

/// Named attributes held by a manager's server (Python's `manager.Namespace()`), each typed at
/// the call: reading a name as another type than it was written is a `Decode` error (the
/// type's name is stored with the value).
///
/// ```
/// let manager = mp_managers::Manager::new()?;
/// let ns = manager.namespace()?;
/// ns.set("x", 10u32)?;
/// ns.set("name", "bob".to_owned())?;
/// assert_eq!(ns.get::<u32>("x")?, 10);
/// assert!(ns.get::<u32>("y").is_err()); // AttributeError
/// assert!(matches!(ns.get::<u32>("name"), Err(mp_managers::ManagerError::Decode(_))));
/// assert_eq!(ns.names()?, ["name", "x"]);
/// # Ok::<(), mp_managers::ManagerError>(())
/// ```
pub struct Namespace {
    proxy: Proxy<NamespaceServant>,
}

impl Namespace {
    /// `getattr(ns, name)`, decoded as a `T`: a `Decode` error if it was set as another type.
    pub fn get<T: Portable>(&self, name: &str) -> Result<T, ManagerError> {
        match self.proxy.call(NamespaceCall::Get(name.to_owned()))? {
            NamespaceReply::Value(bytes) => untag(name, &bytes),
            _ => unexpected(),
        }
    }

    /// `setattr(ns, name, value)`.
    pub fn set<T: Portable>(&self, name: &str, value: T) -> Result<(), ManagerError> {
        let bytes = tag(&value)?;
        self.proxy
            .call(NamespaceCall::Set(name.to_owned(), bytes))
            .map(drop)
    }

    /// `delattr(ns, name)`.
    pub fn remove(&self, name: &str) -> Result<(), ManagerError> {
        self.proxy
            .call(NamespaceCall::Del(name.to_owned()))
            .map(drop)
    }

    /// The names set, sorted.
    pub fn names(&self) -> Result<Vec<String>, ManagerError> {
        match self.proxy.call(NamespaceCall::Names)? {
            NamespaceReply::Names(names) => Ok(names),
            _ => unexpected(),
        }
    }
}

// An attribute is stored as its type's name and then its value: postcard's bytes carry no
// type, and those of one type often read as another (a `String` as a `u32`: its length).

/// `value`, encoded after the name of its type.
fn tag<T: Portable>(value: &T) -> Result<Vec<u8>, ManagerError> {
    postcard::to_stdvec(&(std::any::type_name::<T>(), value))
        .map_err(|e| ManagerError::Encode(e.to_string()))
}

/// The value of the attribute `name` out of its stored `bytes`, if it was set as a `T`.
fn untag<T: Portable>(name: &str, bytes: &[u8]) -> Result<T, ManagerError> {
    let expected = std::any::type_name::<T>();
    let (found, value) = postcard::take_from_bytes::<&str>(bytes)
        .map_err(|_| ManagerError::Decode(format!("attribute {name:?} holds no typed value")))?;
    if found != expected {
        return Err(ManagerError::Decode(format!(
            "attribute {name:?} holds a {found}, not a {expected}"
        )));
    }
    crate::codec::decode(value).map_err(ManagerError::Decode)
}

proxy_wrapper!(ManagedValue<T> where T: Item);
proxy_wrapper!(Namespace<> where);

impl Manager {
    /// A managed value (Python's `manager.Value(typecode, value)`).
    pub fn value<T: Item>(&self, value: T) -> Result<ManagedValue<T>, ManagerError> {
        Ok(ManagedValue {
            proxy: self.serve(value)?,
        })
    }

    /// A managed namespace (Python's `manager.Namespace()`).
    pub fn namespace(&self) -> Result<Namespace, ManagerError> {
        Ok(Namespace {
            proxy: self.serve(())?,
        })
    }
}
