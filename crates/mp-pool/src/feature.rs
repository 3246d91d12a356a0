//! Calls that need a feature which is off: they exist all the same, so that the compiler's
//! error names the feature (`#[diagnostic::on_unimplemented]`) instead of "no method named
//! `progress`".

/// Holds only with mp-pool's `progress` feature (mp-rs: `features = ["progress"]`). A call to
/// `progress` without it fails to build with a message that says so.
#[diagnostic::on_unimplemented(
    message = "`progress` needs the `progress` feature of mp-pool (in mp-rs: `features = [\"progress\"]`)",
    label = "a progress bar needs the `progress` feature",
    note = "add `features = [\"progress\"]` to the mp-rs (or mp-pool) dependency in Cargo.toml"
)]
pub trait Progress {}

#[cfg(feature = "progress")]
impl<T: ?Sized> Progress for T {}
