//! Futex-word objects: the shared block of atomics under Semaphore, BoundedSemaphore, Event,
//! and the wait state of Condition and Barrier.

use std::io;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize};

use crate::heap::{Block, Kind};

/// The state types of futex-word objects, each with its block kind.
pub(super) trait State {
    const KIND: Kind;
}

/// A block holding one `T` made of atomics, at offset 0.
pub(super) struct Words<T> {
    block: Block,
    _t: PhantomData<T>,
}

impl<T: State> Words<T> {
    pub(super) fn new() -> io::Result<Words<T>> {
        Ok(Words {
            block: Block::new(T::KIND, std::mem::size_of::<T>())?,
            _t: PhantomData,
        })
    }

    pub(super) fn get(&self) -> &T {
        // SAFETY: the block is at least size_of::<T>() (checked when attached), page-aligned,
        // mapped while self lives, and T is made of atomics, valid when zeroed.
        unsafe { &*self.block.ptr().cast::<T>() }
    }
}

impl<T> std::fmt::Debug for Words<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Words").field("block", &self.block).finish()
    }
}

impl<T> Serialize for Words<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.block.serialize(s)
    }
}

impl<'de, T: State> Deserialize<'de> for Words<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Words {
            block: Block::deserialize_sized(d, T::KIND, std::mem::size_of::<T>())?,
            _t: PhantomData,
        })
    }
}
