//! The crate's integration tests, one binary (issue #27: one binary links once, where one
//! per file linked all of mp dozens of times). Each former test file is a module; files that
//! change process-wide state (signals, a forkserver preload, a global subscriber) stay
//! binaries of their own beside this one.

#[path = "../common/mod.rs"]
mod common;
mod condition_barrier;
mod resource_tracker;
mod shareable_list_unicode;
mod shared_array;
mod shared_dict;
mod shared_memory;
mod sharedctypes;
mod soundness;
mod synchronize;
