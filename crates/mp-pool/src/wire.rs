//! The frames the pool and its workers exchange.
//!
//! Frames are raw bytes in the queues' shared memory (one copy each way, no second encoding);
//! the first byte is a tag:
//! - to a worker ([`ToWorker`]): `Task id:u64 tally:u64 entry:i64 code:i64 limit:u64
//!   items:u64 payload`, where the tally names the call's progress counters (0: nobody watches; see
//!   `progress`), the limit is the largest encoded result the worker may send (0: none), and
//!   the payload is the postcard encoding of the chunk's argument tuples, or `Stop`;
//! - to the pool ([`ToPool`]): `Result slot:u32 id:u64 outcome:u8 body`, `Died slot:u32
//!   generation:u32` (from the pool's monitor thread), `InitFailed slot:u32 message`, `Ready
//!   slot:u32` (the worker is up: its initializer, if any, has returned), `Retire slot:u32`
//!   (the worker exits after the chunk it answered: its leak guard), or `Wake`.
//!
//! A `Result`'s body depends on its [`Outcome`].

use std::os::fd::OwnedFd;
use std::time::Duration;

use mp_spawn::reduction;
use mp_sys::le;
use serde::Serialize;

use crate::error::PoolError;
use crate::plain;
use mp_spawn::code::RawCodeRef;

#[cfg(test)]
mod test;

/// How a worker finds a task's function: the entry that runs it, and the function's own
/// offset if it is a fn pointer (0 otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct TaskFn {
    pub(crate) entry: RawCodeRef,
    pub(crate) code: i64,
}

/// The tag of a frame to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ToWorker {
    /// A chunk to run.
    Task = 1,
    /// Exit.
    Stop = 2,
}

/// The tag of a frame to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ToPool {
    Result = 1,
    Died = 2,
    InitFailed = 3,
    Wake = 4,
    Ready = 5,
    Retire = 6,
}

impl ToPool {
    fn from_byte(byte: u8) -> Option<ToPool> {
        Some(match byte {
            1 => ToPool::Result,
            2 => ToPool::Died,
            3 => ToPool::InitFailed,
            4 => ToPool::Wake,
            5 => ToPool::Ready,
            6 => ToPool::Retire,
            _ => return None,
        })
    }
}

/// How a chunk ended: the outcome byte of a `Result` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Outcome {
    /// The body is the postcard encoding of the chunk's `Vec` of return values.
    Ok = 0,
    /// The body is the offset of the item in the chunk (u64) and the panic message.
    Panicked = 1,
    /// The body is a message: the results could not be serialised.
    EncodeFailed = 2,
    /// The body is a message: the arguments could not be deserialised.
    DecodeFailed = 3,
    /// The body is the encoded size (u64) and the limit (u64): the values were not sent.
    TooLarge = 4,
    /// The body is the postcard encoding of a [`Failure`]: how the chunk failed in a remote
    /// worker's own pool (see `transport`).
    Remote = 5,
    /// No body: the chunk was cancelled before the worker took it, and did not run.
    Skipped = 6,
}

impl Outcome {
    /// The outcome a byte names; an unknown byte reads as `DecodeFailed` (the frame is bad).
    pub(crate) fn from_byte(byte: u8) -> Outcome {
        match byte {
            0 => Outcome::Ok,
            1 => Outcome::Panicked,
            2 => Outcome::EncodeFailed,
            4 => Outcome::TooLarge,
            5 => Outcome::Remote,
            6 => Outcome::Skipped,
            _ => Outcome::DecodeFailed,
        }
    }
}

/// `Task` + id + tally + entry + code + limit + items.
pub(crate) const TASK_HEADER: usize = 49;
/// Where a task frame holds its id.
pub(crate) const ID_AT: usize = 1;
/// `Result` + slot + id + outcome.
pub(crate) const RESULT_HEADER: usize = 14;
pub(crate) const OUTCOME_AT: usize = 13;

/// Appends a little-endian u32 (mp's one field codec, `mp_sys::le`).
pub(crate) fn put_u32(buf: &mut Vec<u8>, v: u32) {
    le::Writer::new(buf).u32(v);
}

/// Appends a little-endian u64.
pub(crate) fn put_u64(buf: &mut Vec<u8>, v: u64) {
    le::Writer::new(buf).u64(v);
}

/// Reads a little-endian u32 at `at`, if the frame is long enough.
pub(crate) fn get_u32(buf: &[u8], at: usize) -> Option<u32> {
    le::Reader::at(buf, at).u32().ok()
}

/// Reads a little-endian u64 at `at`, if the frame is long enough.
pub(crate) fn get_u64(buf: &[u8], at: usize) -> Option<u64> {
    le::Reader::at(buf, at).u64().ok()
}

/// The `Stop` frame.
pub(crate) const STOP: [u8; 1] = [ToWorker::Stop as u8];
/// The `Wake` frame.
pub(crate) const WAKE: [u8; 1] = [ToPool::Wake as u8];

/// The header of a `Task` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskHeader {
    pub(crate) id: u64,
    pub(crate) tally: u64,
    pub(crate) task: TaskFn,
    /// The largest encoded result the worker may send (0: no limit).
    pub(crate) limit: u64,
    /// How many items the chunk holds.
    pub(crate) items: u64,
}

/// A `Task` frame's header, or `None` for anything else (`Stop`, a short frame).
#[inline]
pub(crate) fn parse_task(frame: &[u8]) -> Option<TaskHeader> {
    match (
        frame.first(),
        get_u64(frame, 1),
        get_u64(frame, 9),
        get_u64(frame, 17),
        get_u64(frame, 25),
        get_u64(frame, 33),
        get_u64(frame, 41),
    ) {
        (Some(&tag), Some(id), Some(tally), Some(entry), Some(code), Some(limit), Some(items))
            if tag == ToWorker::Task as u8 =>
        {
            Some(TaskHeader {
                id,
                tally,
                task: TaskFn {
                    entry: RawCodeRef::from_wire(entry),
                    code: code as i64,
                },
                limit,
                items,
            })
        }
        _ => None,
    }
}

/// If the `Result` frame `result` carries values of more than `limit` bytes (0: no limit),
/// the `TooLarge` frame to send instead.
pub(crate) fn too_large(result: &[u8], limit: u64) -> Option<Vec<u8>> {
    let len = result.len().saturating_sub(RESULT_HEADER) as u64;
    if limit == 0 || len <= limit || result.get(OUTCOME_AT) != Some(&(Outcome::Ok as u8)) {
        return None;
    }
    let mut frame = result[..RESULT_HEADER].to_vec();
    set_outcome(&mut frame, Outcome::TooLarge);
    put_u64(&mut frame, len);
    put_u64(&mut frame, limit);
    Some(frame)
}

/// Sets `frame` to the header of a `Result` with outcome `Ok`; the chunk's entry appends the
/// body (and changes the outcome if it must).
#[inline]
pub(crate) fn result_header(frame: &mut Vec<u8>, slot: u32, id: u64) {
    frame.clear();
    frame.push(ToPool::Result as u8);
    put_u32(frame, slot);
    put_u64(frame, id);
    frame.push(Outcome::Ok as u8);
}

/// Sets the outcome of a `Result` frame made by [`result_header`].
#[inline]
pub(crate) fn set_outcome(frame: &mut [u8], outcome: Outcome) {
    frame[OUTCOME_AT] = outcome as u8;
}

/// A `Died` frame.
pub(crate) fn died(slot: u32, generation: u32) -> Vec<u8> {
    let mut frame = vec![ToPool::Died as u8];
    put_u32(&mut frame, slot);
    put_u32(&mut frame, generation);
    frame
}

/// A `Ready` frame.
pub(crate) fn ready(slot: u32) -> Vec<u8> {
    let mut frame = vec![ToPool::Ready as u8];
    put_u32(&mut frame, slot);
    frame
}

/// A `Retire` frame.
pub(crate) fn retire(slot: u32) -> Vec<u8> {
    let mut frame = vec![ToPool::Retire as u8];
    put_u32(&mut frame, slot);
    frame
}

/// An `InitFailed` frame.
pub(crate) fn init_failed(slot: u32, message: &str) -> Vec<u8> {
    let mut frame = vec![ToPool::InitFailed as u8];
    put_u32(&mut frame, slot);
    frame.extend_from_slice(message.as_bytes());
    frame
}

/// The chunk id and outcome of a remote worker's answer (a `Result` frame), or why it is not
/// one; the body follows the header.
pub(crate) fn parse_answer(frame: &[u8]) -> Result<(u64, Outcome), String> {
    if frame.len() < RESULT_HEADER {
        return Err(format!("a result frame of {} bytes", frame.len()));
    }
    if frame[0] != ToPool::Result as u8 {
        return Err(format!("a frame of kind {}, not a result", frame[0]));
    }
    let id = get_u64(frame, 5).unwrap_or(u64::MAX);
    match frame[OUTCOME_AT] {
        byte @ 0..=5 => Ok((id, Outcome::from_byte(byte))),
        other => Err(format!("an unknown outcome {other}")),
    }
}

/// A parsed frame from the result queue.
pub(crate) enum Msg {
    Result {
        slot: u32,
        id: u64,
        outcome: Outcome,
        body: Vec<u8>,
        fds: Vec<OwnedFd>,
    },
    Died {
        slot: u32,
        generation: u32,
    },
    InitFailed {
        message: String,
    },
    Ready {
        slot: u32,
    },
    Retire {
        slot: u32,
    },
    Wake,
}

impl Msg {
    pub(crate) fn parse(bytes: &[u8], fds: Vec<OwnedFd>) -> Msg {
        match bytes.first().copied().and_then(ToPool::from_byte) {
            Some(ToPool::Result) if bytes.len() >= RESULT_HEADER => Msg::Result {
                slot: get_u32(bytes, 1).unwrap_or(u32::MAX),
                id: get_u64(bytes, 5).unwrap_or(u64::MAX),
                outcome: Outcome::from_byte(bytes[OUTCOME_AT]),
                body: bytes[RESULT_HEADER..].to_vec(),
                fds,
            },
            Some(ToPool::Died) => Msg::Died {
                slot: get_u32(bytes, 1).unwrap_or(u32::MAX),
                generation: get_u32(bytes, 5).unwrap_or(u32::MAX),
            },
            Some(ToPool::Ready) => Msg::Ready {
                slot: get_u32(bytes, 1).unwrap_or(u32::MAX),
            },
            Some(ToPool::Retire) => Msg::Retire {
                slot: get_u32(bytes, 1).unwrap_or(u32::MAX),
            },
            Some(ToPool::InitFailed) => Msg::InitFailed {
                message: String::from_utf8_lossy(bytes.get(5..).unwrap_or_default()).into_owned(),
            },
            _ => Msg::Wake,
        }
    }
}

/// A chunk ready to be submitted: its `Task` frame (id unset) and the handles it carries.
pub(crate) struct Prepared {
    pub(crate) chunk: usize,
    pub(crate) index: usize,
    pub(crate) len: usize,
    pub(crate) frame: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
    /// How long it may run.
    pub(crate) timeout: Option<Duration>,
    /// When it runs again.
    pub(crate) retry: crate::Retry,
}

/// The limits of one call's chunks: how long one may run, how large its encoded result
/// may be (0: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) timeout: Option<Duration>,
    pub(crate) max_result: u64,
    pub(crate) retry: crate::Retry,
}

impl Prepared {
    /// Encodes the argument tuples of one chunk for `task`.
    pub(crate) fn encode<A: Serialize + 'static>(
        task: TaskFn,
        chunk: usize,
        index: usize,
        items: &[A],
    ) -> Result<Prepared, PoolError> {
        let mut frame = Vec::with_capacity(TASK_HEADER + 8 * items.len() + 8);
        frame.push(ToWorker::Task as u8);
        put_u64(&mut frame, 0); // the id, set at submission
        put_u64(&mut frame, 0); // the tally, set at submission if the call is watched
        put_u64(&mut frame, u64::from(task.entry.index()));
        le::Writer::new(&mut frame).i64(task.code);
        put_u64(&mut frame, 0); // the limit, set at submission if the call has one
        put_u64(&mut frame, items.len() as u64);
        let fds = if plain::encode(items, &mut frame) {
            Vec::new()
        } else {
            reduction::dumps_into(items, &mut frame).map_err(|e| PoolError::Encode(e.0))?
        };
        Ok(Prepared {
            chunk,
            index,
            len: items.len(),
            frame,
            fds,
            timeout: None,
            retry: crate::Retry::default(),
        })
    }

    /// Sets the id of the chunk, at submission.
    pub(crate) fn set_id(&mut self, id: u64) {
        // A prepared frame always holds its header (`encode`).
        let _ = le::set_u64(&mut self.frame, ID_AT, id);
    }

    /// Sets the tally of the chunk's call (see `progress`), at submission.
    pub(crate) fn set_tally(&mut self, tally: u64) {
        let _ = le::set_u64(&mut self.frame, 9, tally);
    }

    /// Sets the call's limits, at submission.
    pub(crate) fn set_limits(&mut self, limits: Limits) {
        let _ = le::set_u64(&mut self.frame, 33, limits.max_result);
        self.timeout = limits.timeout;
        self.retry = limits.retry;
    }
}

/// How a chunk failed in a remote worker's own pool, as it travels back (the body of a
/// `Remote` outcome). Indices count from the chunk's first item.
#[derive(Debug, PartialEq, Serialize, serde::Deserialize)]
pub(crate) enum Failure {
    Panicked {
        index: u64,
        message: String,
    },
    WorkerDied {
        index: u64,
        len: u64,
        pid: u32,
        exitcode: i32,
    },
    TaskTimeout {
        index: u64,
        timeout: std::time::Duration,
    },
    ResultTooLarge {
        index: u64,
        len: u64,
        limit: u64,
    },
    Encode(String),
    Decode(String),
    /// Any other failure of the remote pool (it could not start, ...).
    Other(String),
    MemoryLimit {
        index: u64,
        len: u64,
        limit: u64,
    },
    CpuLimit {
        index: u64,
        len: u64,
        limit: std::time::Duration,
    },
    Cancelled,
}

impl Failure {
    /// How `error` travels back.
    pub(crate) fn of(error: &PoolError) -> Failure {
        match error.local() {
            PoolError::Panicked { index, message } => Failure::Panicked {
                index: *index as u64,
                message: message.clone(),
            },
            PoolError::WorkerDied {
                index,
                len,
                pid,
                exitcode,
            } => Failure::WorkerDied {
                index: *index as u64,
                len: *len as u64,
                pid: *pid,
                exitcode: *exitcode,
            },
            PoolError::TaskTimeout { index, timeout } => Failure::TaskTimeout {
                index: *index as u64,
                timeout: *timeout,
            },
            PoolError::ResultTooLarge { index, len, limit } => Failure::ResultTooLarge {
                index: *index as u64,
                len: *len as u64,
                limit: *limit as u64,
            },
            PoolError::Encode(m) => Failure::Encode(m.clone()),
            PoolError::Decode(m) => Failure::Decode(m.clone()),
            PoolError::MemoryLimit { index, len, limit } => Failure::MemoryLimit {
                index: *index as u64,
                len: *len as u64,
                limit: *limit,
            },
            PoolError::CpuLimit { index, len, limit } => Failure::CpuLimit {
                index: *index as u64,
                len: *len as u64,
                limit: *limit,
            },
            PoolError::Cancelled => Failure::Cancelled,
            other => Failure::Other(other.to_string()),
        }
    }

    /// The error here, for the chunk whose first item is `start`.
    pub(crate) fn into_error(self, start: usize) -> PoolError {
        let at = |index: u64| start.saturating_add(usize::try_from(index).unwrap_or(usize::MAX));
        match self {
            Failure::Panicked { index, message } => PoolError::Panicked {
                index: at(index),
                message,
            },
            Failure::WorkerDied {
                index,
                len,
                pid,
                exitcode,
            } => PoolError::WorkerDied {
                index: at(index),
                len: len as usize,
                pid,
                exitcode,
            },
            Failure::TaskTimeout { index, timeout } => PoolError::TaskTimeout {
                index: at(index),
                timeout,
            },
            Failure::ResultTooLarge { index, len, limit } => PoolError::ResultTooLarge {
                index: at(index),
                len: len as usize,
                limit: limit as usize,
            },
            Failure::Encode(m) => PoolError::Encode(m),
            Failure::Decode(m) => PoolError::Decode(m),
            Failure::Other(m) => PoolError::StartFailed { message: m },
            Failure::MemoryLimit { index, len, limit } => PoolError::MemoryLimit {
                index: at(index),
                len: len as usize,
                limit,
            },
            Failure::CpuLimit { index, len, limit } => PoolError::CpuLimit {
                index: at(index),
                len: len as usize,
                limit,
            },
            Failure::Cancelled => PoolError::Cancelled,
        }
    }
}
