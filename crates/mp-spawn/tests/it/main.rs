//! The crate's integration tests, one binary (issue #27: one binary links once, where one
//! per file linked all of mp dozens of times). Each former test file is a module; files that
//! change process-wide state (signals, a forkserver preload, a global subscriber) stay
//! binaries of their own beside this one.

mod any_process;
mod child_start;
#[path = "../common/mod.rs"]
mod common;
mod foreign_exe;
mod fork_server;
mod helper;
mod join_async;
mod kinds;
mod parent_exit;
mod process;
mod stack_overflow;
mod targets;
