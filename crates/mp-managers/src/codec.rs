//! Reading the bytes of calls, replies and stored values: postcard, to the last byte.
//!
//! postcard stops once it has read the value asked for and ignores what follows, so the bytes
//! of one type read as another often pass (a `String` read as a `u32` is its length). Every
//! decode in this crate goes through [`decode`], which refuses bytes left over.

use serde::de::DeserializeOwned;

/// `bytes` as a `T`, all of them: an error says what is wrong (bad bytes, or bytes left over).
pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    match postcard::take_from_bytes::<T>(bytes) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(format!(
            "{} bytes left over after a {} (another type?)",
            rest.len(),
            std::any::type_name::<T>()
        )),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod test;
