//! The crate's integration tests, one binary (issue #27: one binary links once, where one
//! per file linked all of mp dozens of times). Each former test file is a module; files that
//! change process-wide state (signals, a forkserver preload, a global subscriber) stay
//! binaries of their own beside this one.

mod async_pool;
mod bigdata;
#[path = "../common/mod.rs"]
mod common;
mod executor;
mod failures;
mod fork_helper;
mod parallel;
mod pool;
mod progress;
mod serialize_error;
mod targets;
