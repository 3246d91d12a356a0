//! The frames between the master (rank 0) and the worker ranks. Byte frames with a fixed
//! little-endian header, then a postcard body: MPI moves the bytes, so the only parsing is
//! here, and every malformed frame is an error value, never a panic.

use mp_pool::PoolError;
use mp_spawn::code::RawCodeRef;
use mp_sys::le::{Reader, Short, Writer};
use serde::{Deserialize, Serialize};

use crate::error::MpiError;

/// Worker -> master, once: who it is (before any task).
pub(crate) const TAG_HELLO: i32 = 1;
/// Master -> worker, once: go (the master's identity, the local pool's size).
pub(crate) const TAG_START: i32 = 2;
/// Master -> worker: a chunk to run.
pub(crate) const TAG_TASK: i32 = 3;
/// Worker -> master: a chunk's result.
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
}

/// How a chunk failed on a worker rank (indices within the chunk).
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub(crate) enum RemoteError {
    Panicked {
        index: usize,
        message: String,
    },
    WorkerDied {
        index: usize,
        len: usize,
        pid: u32,
        exitcode: i32,
    },
    ResultTooLarge {
        len: usize,
    },
    Decode(String),
    Encode(String),
    /// Any other failure of the local pool (it could not start, ...).
    Other(String),
}

impl From<PoolError> for RemoteError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Panicked { index, message } => RemoteError::Panicked { index, message },
            PoolError::WorkerDied {
                index,
                len,
                pid,
                exitcode,
            } => RemoteError::WorkerDied {
                index,
                len,
                pid,
                exitcode,
            },
            PoolError::Decode(m) => RemoteError::Decode(m),
            PoolError::Encode(m) => RemoteError::Encode(m),
            other => RemoteError::Other(other.to_string()),
        }
    }
}

impl RemoteError {
    /// The master's error for this failure of the chunk whose first item is `start`.
    pub(crate) fn into_mpi(self, rank: i32, start: usize, limit: usize) -> MpiError {
        let task = |error| MpiError::Task { rank, error };
        match self {
            RemoteError::Panicked { index, message } => task(PoolError::Panicked {
                index: start + index,
                message,
            }),
            RemoteError::WorkerDied {
                index,
                len,
                pid,
                exitcode,
            } => task(PoolError::WorkerDied {
                index: start + index,
                len,
                pid,
                exitcode,
            }),
            RemoteError::ResultTooLarge { len } => MpiError::ResultTooLarge {
                rank,
                index: start,
                len,
                limit,
            },
            RemoteError::Decode(m) => MpiError::Decode(format!("on worker rank {rank}: {m}")),
            RemoteError::Encode(m) => MpiError::Encode(format!("on worker rank {rank}: {m}")),
            RemoteError::Other(m) => task(PoolError::StartFailed { message: m }),
        }
    }
}

const TASK_HEADER: usize = 6 * 8;
const RESULT_HEADER: usize = 2 * 8 + 1;

/// A chunk to run: which job and chunk, the first item's index, the entry and function
/// offsets, the result size limit; then the postcard-encoded `Vec` of arguments.
#[derive(Debug, PartialEq)]
pub(crate) struct Task<'a> {
    pub(crate) job: u64,
    pub(crate) chunk: u64,
    pub(crate) start: u64,
    pub(crate) entry: RawCodeRef,
    pub(crate) code: i64,
    pub(crate) max_result: u64,
    pub(crate) payload: &'a [u8],
}

impl Task<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(TASK_HEADER + self.payload.len());
        Writer::new(&mut out)
            .u64(self.job)
            .u64(self.chunk)
            .u64(self.start)
            .u64(u64::from(self.entry.index()))
            .i64(self.code)
            .u64(self.max_result)
            .bytes(self.payload);
        out
    }

    pub(crate) fn decode<'a>(frame: &'a [u8]) -> Result<Task<'a>, String> {
        let read = |mut r: Reader<'a>| -> Result<Task<'a>, Short> {
            // Fields are read in the order written: the payload is what follows the header.
            Ok(Task {
                job: r.u64()?,
                chunk: r.u64()?,
                start: r.u64()?,
                entry: RawCodeRef::from_wire(r.u64()?),
                code: r.i64()?,
                max_result: r.u64()?,
                payload: r.rest(),
            })
        };
        read(Reader::new(frame)).map_err(|_| format!("a task frame of {} bytes", frame.len()))
    }
}

/// A chunk's outcome: the postcard-encoded `Vec` of results, or how it failed.
#[derive(Debug, PartialEq)]
pub(crate) struct Reply {
    pub(crate) job: u64,
    pub(crate) chunk: u64,
    pub(crate) outcome: Result<Vec<u8>, RemoteError>,
}

impl Reply {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RESULT_HEADER + 64);
        let mut w = Writer::new(&mut out);
        w.u64(self.job).u64(self.chunk);
        match &self.outcome {
            Ok(body) => w.u8(0).bytes(body),
            // A RemoteError holds strings and integers only: postcard cannot fail on it.
            Err(e) => w.u8(1).bytes(&postcard::to_stdvec(e).unwrap_or_default()),
        };
        out
    }

    /// The reply in `frame`, or why it is not one.
    pub(crate) fn decode(mut frame: Vec<u8>) -> Result<Reply, String> {
        let read = |mut r: Reader<'_>| -> Result<_, Short> { Ok((r.u64()?, r.u64()?, r.u8()?)) };
        let (job, chunk, kind) = read(Reader::new(&frame))
            .map_err(|_| format!("a result frame of {} bytes", frame.len()))?;
        let outcome = match kind {
            0 => {
                frame.drain(..RESULT_HEADER);
                Ok(frame)
            }
            1 => Err(postcard::from_bytes::<RemoteError>(&frame[RESULT_HEADER..])
                .map_err(|e| format!("an undecodable failure report: {e}"))?),
            other => return Err(format!("an unknown outcome {other}")),
        };
        Ok(Reply {
            job,
            chunk,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_round_trip() {
        let task = Task {
            job: 1,
            chunk: 2,
            start: 3,
            entry: RawCodeRef::from_index(4),
            code: 5,
            max_result: 6,
            payload: b"args",
        };
        let frame = task.encode();
        assert_eq!(Task::decode(&frame).unwrap(), task);
    }

    #[test]
    fn reply_round_trip() {
        for outcome in [
            Ok(vec![1, 2, 3]),
            Err(RemoteError::Panicked {
                index: 1,
                message: "boom".into(),
            }),
        ] {
            let reply = Reply {
                job: 7,
                chunk: 8,
                outcome,
            };
            assert_eq!(Reply::decode(reply.encode()).unwrap(), reply);
        }
    }

    #[test]
    fn frames_that_do_not_decode_are_errors() {
        assert!(Task::decode(&[0; 47]).is_err());
        assert!(Reply::decode(vec![0; 16]).is_err());
        let mut unknown = vec![0; 16];
        unknown.push(9);
        assert!(
            Reply::decode(unknown)
                .unwrap_err()
                .contains("unknown outcome")
        );
        let mut garbage = vec![0; 16];
        garbage.extend_from_slice(&[1, 0xff, 0xff, 0xff]);
        assert!(Reply::decode(garbage).unwrap_err().contains("undecodable"));
    }
}
