//! The one locking rule of mp-spawn: a poisoned lock is still taken (a panicking target must
//! not wedge the process's state, its exit hook or a fork).

use std::sync::{Mutex, MutexGuard};

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
