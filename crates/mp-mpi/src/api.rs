//! `PoolApi`, the surface `Pool` and the old `MpiPool` shared. An `MpiPool` is a `Pool` now
//! (it derefs to one): write code for `&mp_pool::Pool`. Kept, deprecated, for one release.
#![allow(deprecated)]

use mp_pool::{AsyncResult, Pool, PoolError};
use mp_spawn::{Portable, Target};

/// A value on its way (`AsyncResult` of a local pool, `MpiAsyncResult` of an MPI one).
///
/// ```
/// use mp_mpi::{Pending, PoolApi};
///
/// fn add(a: u64, b: u64) -> u64 {
///     a + b
/// }
///
/// let pool = mp_pool::Pool::new(1)?;
/// let sum = PoolApi::apply_async(&pool, add, (2, 3))?;
/// assert_eq!(Pending::get(&sum)?, 5);
/// # Ok::<(), mp_pool::PoolError>(())
/// ```
#[deprecated(note = "an MpiPool is an mp_pool::Pool: use mp_pool::AsyncResult")]
pub trait Pending<T> {
    /// The pool's error type.
    type Error;
    /// Waits for the value.
    fn get(&self) -> Result<T, Self::Error>;
}

impl<T: Portable> Pending<T> for AsyncResult<T> {
    type Error = PoolError;
    fn get(&self) -> Result<T, PoolError> {
        AsyncResult::get(self)
    }
}

/// The pool calls `Pool` and `MpiPool` both have, with the same meaning: write a function
/// generic over `P: PoolApi` and pass it either.
///
/// ```
/// use mp_mpi::{Pending, PoolApi};
///
/// fn square(x: u64) -> u64 {
///     x * x
/// }
///
/// fn work<P: PoolApi>(pool: &P) -> Result<u64, P::Error> {
///     let squares = pool.map(square, 0..10u64)?;
///     let first = pool.imap(square, 0..).take(3).collect::<Result<Vec<_>, _>>()?;
///     Ok(squares.iter().sum::<u64>() + first.iter().sum::<u64>() + pool.apply_async(square, (7,))?.get()?)
/// }
///
/// let local = mp_pool::Pool::new(2)?;
/// assert_eq!(work(&local)?, 285 + 5 + 49);
/// // Over MPI, the one line that changes: `let pool = mp_mpi::MpiPool::init()?;`
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[deprecated(note = "an MpiPool is an mp_pool::Pool: write code for `&mp_pool::Pool`")]
pub trait PoolApi {
    /// The error of a call or of one of its tasks.
    type Error: std::error::Error + Send + Sync + 'static;

    /// `f` applied to every item, in input order (Python's `map`).
    fn map<F, T, R>(&self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>, Self::Error>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Portable,
        R: Portable;

    /// `f` applied to every tuple of arguments, in input order (Python's `starmap`).
    fn starmap<F, A>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<F::Output>, Self::Error>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable;

    /// A lazy, ordered map over a possibly endless input, read a bounded number of chunks
    /// ahead (Python's `imap`).
    fn imap<F, T, R, I>(&self, f: F, items: I) -> impl Iterator<Item = Result<R, Self::Error>>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable;

    /// As [`imap`](PoolApi::imap), in completion order (Python's `imap_unordered`).
    fn imap_unordered<F, T, R, I>(
        &self,
        f: F,
        items: I,
    ) -> impl Iterator<Item = Result<R, Self::Error>>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable;

    /// As [`map`](PoolApi::map), `chunksize` items per task (Python's
    /// `map(f, items, chunksize)`; at least 1).
    fn map_chunksize<F, T, R>(
        &self,
        chunksize: usize,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, Self::Error>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Portable,
        R: Portable;

    /// As [`imap`](PoolApi::imap), `chunksize` items per task (Python's
    /// `imap(f, items, chunksize)`).
    fn imap_chunksize<F, T, R, I>(
        &self,
        chunksize: usize,
        f: F,
        items: I,
    ) -> impl Iterator<Item = Result<R, Self::Error>>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable;

    /// As [`imap_unordered`](PoolApi::imap_unordered), `chunksize` items per task.
    fn imap_unordered_chunksize<F, T, R, I>(
        &self,
        chunksize: usize,
        f: F,
        items: I,
    ) -> impl Iterator<Item = Result<R, Self::Error>>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable;

    /// `f(args...)` in a worker; the value comes through [`Pending::get`] (Python's
    /// `apply_async`).
    fn apply_async<F, A>(
        &self,
        f: F,
        args: A,
    ) -> Result<impl Pending<F::Output, Error = Self::Error>, Self::Error>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable;
}

impl PoolApi for Pool {
    type Error = PoolError;

    fn map<F, T, R>(&self, f: F, items: impl IntoIterator<Item = T>) -> Result<Vec<R>, PoolError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Portable,
        R: Portable,
    {
        Pool::map(self, f, items)
    }

    fn starmap<F, A>(
        &self,
        f: F,
        items: impl IntoIterator<Item = A>,
    ) -> Result<Vec<F::Output>, PoolError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        Pool::starmap(self, f, items)
    }

    fn imap<F, T, R, I>(&self, f: F, items: I) -> impl Iterator<Item = Result<R, PoolError>>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        Pool::imap(self, f, items)
    }

    fn imap_unordered<F, T, R, I>(
        &self,
        f: F,
        items: I,
    ) -> impl Iterator<Item = Result<R, PoolError>>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        Pool::imap_unordered(self, f, items)
    }

    fn map_chunksize<F, T, R>(
        &self,
        chunksize: usize,
        f: F,
        items: impl IntoIterator<Item = T>,
    ) -> Result<Vec<R>, PoolError>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        T: Portable,
        R: Portable,
    {
        Pool::chunksize(self, chunksize).map(f, items)
    }

    fn imap_chunksize<F, T, R, I>(
        &self,
        chunksize: usize,
        f: F,
        items: I,
    ) -> impl Iterator<Item = Result<R, PoolError>>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        Pool::chunksize(self, chunksize).imap(f, items)
    }

    fn imap_unordered_chunksize<F, T, R, I>(
        &self,
        chunksize: usize,
        f: F,
        items: I,
    ) -> impl Iterator<Item = Result<R, PoolError>>
    where
        F: Fn(T) -> R + Copy + Send + 'static,
        I: IntoIterator<Item = T>,
        T: Portable,
        R: Portable,
    {
        Pool::chunksize(self, chunksize).imap_unordered(f, items)
    }

    fn apply_async<F, A>(
        &self,
        f: F,
        args: A,
    ) -> Result<impl Pending<F::Output, Error = PoolError>, PoolError>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        Pool::apply_async(self, f, args)
    }
}
