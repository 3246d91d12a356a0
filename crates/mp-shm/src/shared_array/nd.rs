//! `ndarray` views over shared arrays (feature `ndarray`), and [`SharedNdArray`]: an
//! `Array<T, D>` shared in one call, its shape travelling with it.

use std::marker::PhantomData;

use bytemuck::Pod;
use mp_spawn::reduction::custom_error;
use ndarray::{ArrayBase, ArrayView, ArrayViewMut, Data, Dimension, IxDyn, StrideShape};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{Chunk, SharedArray, SharedArrayMut};
use crate::error::ShmError;

fn shape_error(e: ndarray::ShapeError) -> ShmError {
    ShmError::Shape(e.to_string())
}

impl<T: Pod> SharedArray<T> {
    /// The elements as an `ndarray` view of `shape` (row-major, or any strides that stay
    /// inside the array). A shape that does not fit is [`ShmError::Shape`].
    ///
    /// ```
    /// let a = mp_shm::SharedArray::from_slice(&[1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0])?;
    /// let m = a.view((2, 3))?;
    /// assert_eq!(m[[1, 0]], 4.0);
    /// assert!(a.view((4, 4)).is_err());
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn view<D: Dimension, Sh: Into<StrideShape<D>>>(
        &self,
        shape: Sh,
    ) -> Result<ArrayView<'_, T, D>, ShmError> {
        ArrayView::from_shape(shape, self).map_err(shape_error)
    }

    /// Shares an `ndarray` array in one call: its elements (copied once, in row-major order)
    /// and its shape. See [`SharedNdArray`].
    ///
    /// ```
    /// let a = ndarray::Array2::<f64>::ones((3, 4));
    /// let shared = mp_shm::SharedArray::from_ndarray(&a)?;
    /// assert_eq!(shared.view(), a);
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn from_ndarray<S: Data<Elem = T>, D: Dimension>(
        a: &ArrayBase<S, D>,
    ) -> Result<SharedNdArray<T, D>, ShmError> {
        SharedNdArray::from_array(a)
    }
}

impl<T: Pod> SharedArrayMut<T> {
    /// The elements as an `ndarray` view of `shape`.
    ///
    /// ```
    /// let a = mp_shm::SharedArrayMut::<u8>::zeroed(6)?;
    /// assert_eq!(a.view((2, 3))?.shape(), [2, 3]);
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn view<D: Dimension, Sh: Into<StrideShape<D>>>(
        &self,
        shape: Sh,
    ) -> Result<ArrayView<'_, T, D>, ShmError> {
        ArrayView::from_shape(shape, self).map_err(shape_error)
    }

    /// The elements as a mutable `ndarray` view of `shape`.
    ///
    /// ```
    /// let mut a = mp_shm::SharedArrayMut::<u32>::zeroed(6)?;
    /// a.view_mut((3, 2))?[[2, 1]] = 9;
    /// assert_eq!(a[5], 9);
    /// # Ok::<(), mp_shm::ShmError>(())
    /// ```
    pub fn view_mut<D: Dimension, Sh: Into<StrideShape<D>>>(
        &mut self,
        shape: Sh,
    ) -> Result<ArrayViewMut<'_, T, D>, ShmError> {
        ArrayViewMut::from_shape(shape, self).map_err(shape_error)
    }
}

impl<T: Pod> Chunk<T> {
    /// This chunk's elements as a mutable `ndarray` view of `shape`: rows of a 2-D array when
    /// the array was split by whole rows (`split(rows_per_chunk * ncols)`, then
    /// `view_mut((chunk.len() / ncols, ncols))`).
    ///
    /// ```
    /// use mp_shm::SharedArrayMut;
    ///
    /// let chunks = SharedArrayMut::<f32>::zeroed(4 * 3)?.split(2 * 3)?; // two rows a chunk
    /// let mut second = chunks.parts()[1].attach()?;
    /// second.view_mut((2, 3))?.row_mut(1).fill(1.0); // row 3 of the whole
    /// drop(second);
    /// let a = chunks.join()?;
    /// assert_eq!(a.view((4, 3))?.row(3).sum(), 3.0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn view_mut<D: Dimension, Sh: Into<StrideShape<D>>>(
        &mut self,
        shape: Sh,
    ) -> Result<ArrayViewMut<'_, T, D>, ShmError> {
        ArrayViewMut::from_shape(shape, self).map_err(shape_error)
    }
}

/// A read-only shared `ndarray` array: a [`SharedArray`] and its shape, serde (a descriptor
/// and the shape travel), and [`view`](SharedNdArray::view) in any process.
///
/// ```
/// use mp_shm::{SharedArray, SharedNdArray, get_context};
/// use ndarray::Ix2;
///
/// fn trace(m: SharedNdArray<f64, Ix2>) -> f64 {
///     m.view().diag().sum()
/// }
///
/// let a = ndarray::Array2::from_shape_fn((3, 3), |(i, j)| (i * 3 + j) as f64);
/// let shared = SharedArray::from_ndarray(&a)?;
/// let mut child = get_context("spawn")?.process(trace, (shared.clone(),));
/// child.start()?;
/// assert_eq!(child.join()?, 12.0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedNdArray<T, D> {
    data: SharedArray<T>,
    dim: D,
    _t: PhantomData<T>,
}

impl<T, D: Clone> Clone for SharedNdArray<T, D> {
    fn clone(&self) -> Self {
        SharedNdArray {
            data: self.data.clone(),
            dim: self.dim.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: Pod, D: Dimension> std::fmt::Debug for SharedNdArray<T, D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedNdArray")
            .field("shape", &self.dim.slice())
            .finish_non_exhaustive()
    }
}

impl<T: Pod, D: Dimension> SharedNdArray<T, D> {
    /// A shared copy of `a` (row-major, whatever `a`'s own layout).
    pub fn from_array<S: Data<Elem = T>>(a: &ArrayBase<S, D>) -> Result<Self, ShmError> {
        let data = match a.as_slice() {
            Some(s) => SharedArray::from_slice(s)?,
            None => {
                let mut m = SharedArrayMut::zeroed(a.len())?;
                for (dst, src) in m.iter_mut().zip(a.iter()) {
                    *dst = *src;
                }
                m.freeze()?
            }
        };
        Ok(SharedNdArray {
            data,
            dim: a.raw_dim(),
            _t: PhantomData,
        })
    }

    /// The array, viewed.
    pub fn view(&self) -> ArrayView<'_, T, D> {
        // The shape's size was checked against the elements when this value was made or
        // received, and a row-major view of it always fits.
        ArrayView::from_shape(self.dim.clone(), &self.data)
            .expect("the shape was checked against the elements")
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.dim.slice()
    }

    /// The elements, flat.
    pub fn as_shared_array(&self) -> &SharedArray<T> {
        &self.data
    }
}

impl<T: Pod, D: Dimension> Serialize for SharedNdArray<T, D> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (&self.data, self.dim.slice()).serialize(s)
    }
}

impl<'de, T: Pod, D: Dimension> Deserialize<'de> for SharedNdArray<T, D> {
    fn deserialize<D2: Deserializer<'de>>(d: D2) -> Result<Self, D2::Error> {
        let (data, shape) = <(SharedArray<T>, Vec<usize>)>::deserialize(d)?;
        let dim = D::from_dimension(&IxDyn(&shape)).ok_or_else(|| {
            custom_error(ShmError::Shape(format!(
                "a shape of {} dimensions received as {:?}",
                shape.len(),
                D::NDIM
            )))
        })?;
        let size = shape.iter().try_fold(1usize, |n, d| n.checked_mul(*d));
        if size != Some(data.len()) {
            return Err(custom_error(ShmError::WrongLength {
                expected: size.unwrap_or(usize::MAX),
                found: data.len(),
            }));
        }
        Ok(SharedNdArray {
            data,
            dim,
            _t: PhantomData,
        })
    }
}
