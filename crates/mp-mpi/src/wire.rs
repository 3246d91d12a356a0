//! The messages between the master (rank 0) and the worker ranks: the handshake (postcard),
//! then mp-pool's own task frames and answers (see `mp_pool::transport`), each tagged.

use serde::{Deserialize, Serialize};

/// Worker -> master, once: who it is (before any task).
pub(crate) const TAG_HELLO: i32 = 1;
/// Master -> worker, once: go (the master's identity, the local pool's size).
pub(crate) const TAG_START: i32 = 2;
/// Master -> worker: a chunk to run (an mp-pool task frame).
pub(crate) const TAG_TASK: i32 = 3;
/// Worker -> master: a chunk's answer (what `Pool::relay` gave).
pub(crate) const TAG_RESULT: i32 = 4;
/// Master -> worker: exit (instead of `START`, or after the last task).
pub(crate) const TAG_STOP: i32 = 5;

/// A worker rank's introduction.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) identity: Vec<u8>,
    pub(crate) host: String,
    pub(crate) pid: u32,
}

/// The master's go-ahead: its identity (the worker checks it too) and the local pool size.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Start {
    pub(crate) identity: Vec<u8>,
    pub(crate) local_processes: u32,
    /// The caps of each local worker of a rank (see `mp_pool::PoolBuilder`): bytes, CPU
    /// milliseconds per task, and the leak guard's resident bytes.
    pub(crate) max_memory: Option<u64>,
    pub(crate) max_cpu_ms: Option<u64>,
    pub(crate) leak_guard: Option<u64>,
}

/// MPI counts are `int`s: one message holds at most this many bytes.
pub(crate) const MAX_FRAME: usize = i32::MAX as usize;
/// The most a chunk's encoded values may take, so that its answer fits in one message.
pub(crate) const MAX_VALUES: usize = MAX_FRAME - 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_round_trips_and_garbage_is_an_error() {
        let hello = Hello {
            identity: vec![1; 32],
            host: "node".into(),
            pid: 7,
        };
        let bytes = postcard::to_stdvec(&hello).unwrap();
        let back: Hello = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(
            (back.identity, back.host, back.pid),
            (hello.identity, hello.host, 7)
        );
        assert!(postcard::from_bytes::<Start>(&[0xff, 0xff, 0xff]).is_err());
    }
}
