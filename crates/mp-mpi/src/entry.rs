//! How a worker rank finds and runs a chunk's function.
//!
//! The master names a monomorphised entry `run_on_rank::<F, A>` by its registered code
//! reference ([`mp_spawn::code`], as mp-pool names its chunk entries), and the function
//! itself by its offset if it is a fn pointer. Both mean the same code only in the same
//! executable image, which the handshake checks on both sides (a SHA-256 of the executable,
//! see `identity`), so they hold across hosts. A rank resolves the entry only if it is exactly
//! a registered `run_on_rank` instance, so a forged or corrupt reference is refused, never
//! jumped to. The fn pointer's offset is believed because tasks come only from the master,
//! rank 0 of the job that started this rank: a process the user launched to run this program,
//! which the trust model (docs/DESIGN.md) counts as able to run code in every rank anyway.
//!
//! The entry runs the chunk in the rank's node-local mp `Pool`, so a task that segfaults
//! kills a local worker process, not the rank.

use mp_pool::Pool;
use mp_spawn::code::{Kind, RawCodeRef};
use mp_spawn::{Located, Portable, Target};

use crate::wire::{RemoteError, Reply, Task};

/// Decodes a chunk's arguments, finds the function at the `i64`, runs the chunk in the local
/// pool, and encodes the results (refusing more than `usize` bytes).
pub(crate) type Entry = fn(&Pool, &[u8], i64, usize) -> Result<Vec<u8>, RemoteError>;

// SAFETY: `Entry` is a fn pointer type.
static TASKS: Kind<Entry> = unsafe { Kind::new() };

/// The task's entry and function offsets, as a worker rank finds them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskFn {
    pub(crate) entry: RawCodeRef,
    pub(crate) code: i64,
}

/// How every worker rank finds `f` as a chunk's function; an error for what it cannot find.
pub(crate) fn task_fn<F, A>(f: &F) -> Result<TaskFn, &'static str>
where
    F: Target<A> + Copy,
    A: Portable,
    F::Output: Portable,
{
    const {
        assert!(
            size_of::<F>() == 0 || size_of::<F>() == size_of::<fn()>(),
            "an MpiPool task must be a fn item, a fn pointer or a closure that captures \
             nothing; pass state through the arguments"
        )
    };
    let code = match mp_spawn::locate_target(f) {
        Located::ZeroSized => 0,
        Located::FnPointer(code) => code,
        Located::Foreign => {
            return Err(
                "the function is a fn pointer outside the program's code (a dynamically \
                        loaded library), which a worker rank cannot find; use a fn item",
            );
        }
        _ => {
            return Err(
                "the function is a closure that captures state, which a worker rank \
                        cannot recreate; use a fn item and pass the state through the arguments",
            );
        }
    };
    Ok(TaskFn {
        entry: mp_spawn::code_ref!(TASKS, run_on_rank::<F, A>).raw(),
        code,
    })
}

fn run_on_rank<F, A>(
    pool: &Pool,
    payload: &[u8],
    code: i64,
    max_result: usize,
) -> Result<Vec<u8>, RemoteError>
where
    F: Target<A> + Copy,
    A: Portable,
    F::Output: Portable,
{
    let items: Vec<A> =
        postcard::from_bytes(payload).map_err(|e| RemoteError::Decode(e.to_string()))?;
    // SAFETY: `code` comes from `task_fn` on the master for a value of type `F` (the entry is
    // `run_on_rank::<F, A>` itself), and the master runs this same executable image: the
    // worker took no task before the master's START carried an identity equal to its own.
    let f = unsafe { mp_spawn::recreate_target::<F, A>(code) }
        .ok_or_else(|| RemoteError::Decode("the worker cannot find the task's function".into()))?;
    // One local chunk per local process: the MPI chunk is already the unit of scheduling.
    let chunksize = items.len().div_ceil(pool.processes()).max(1);
    let values = pool.chunksize(chunksize).starmap(f, items)?;
    let bytes = postcard::to_stdvec(&values).map_err(|e| RemoteError::Encode(e.to_string()))?;
    if bytes.len() > max_result {
        return Err(RemoteError::ResultTooLarge { len: bytes.len() });
    }
    Ok(bytes)
}

/// Runs the task in `frame` in `pool`: the reply to send back (a frame that does not decode,
/// or names no entry, is answered with an error, never run).
pub(crate) fn execute(pool: &Pool, frame: &[u8]) -> Reply {
    let task = match Task::decode(frame) {
        Ok(task) => task,
        Err(e) => {
            return Reply {
                job: u64::MAX,
                chunk: u64::MAX,
                outcome: Err(RemoteError::Decode(e)),
            };
        }
    };
    let outcome = match TASKS.resolve(task.entry) {
        Some(entry) => (entry.get())(
            pool,
            task.payload,
            task.code,
            usize::try_from(task.max_result).unwrap_or(usize::MAX),
        ),
        None => Err(RemoteError::Decode(
            "the task frame names no task entry of this executable".into(),
        )),
    };
    Reply {
        job: task.job,
        chunk: task.chunk,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn square(x: u64) -> u64 {
        x * x
    }

    fn boom(x: u64) -> u64 {
        if x == 2 {
            panic!("boom at {x}");
        }
        x
    }

    fn frame<F, A>(f: F, args: &[A], max_result: u64) -> Vec<u8>
    where
        F: Target<A> + Copy,
        A: Portable,
        F::Output: Portable,
    {
        let t = task_fn::<F, A>(&f).unwrap();
        Task {
            job: 1,
            chunk: 0,
            start: 0,
            entry: t.entry,
            code: t.code,
            max_result,
            payload: &postcard::to_stdvec(args).unwrap(),
        }
        .encode()
    }

    #[test]
    fn runs_a_chunk_in_the_local_pool() {
        let pool = Pool::new(2).unwrap();
        let reply = execute(&pool, &frame(square, &[(1u64,), (2,), (3,)], u64::MAX));
        let values: Vec<u64> = postcard::from_bytes(&reply.outcome.unwrap()).unwrap();
        assert_eq!(values, [1, 4, 9]);
    }

    #[test]
    fn a_panic_is_an_error_with_its_index() {
        let pool = Pool::new(1).unwrap();
        let reply = execute(&pool, &frame(boom, &[(0u64,), (1,), (2,)], u64::MAX));
        match reply.outcome {
            Err(RemoteError::Panicked { index, message }) => {
                assert_eq!(index, 2);
                assert!(message.contains("boom at 2"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_result_over_the_limit_is_refused() {
        let pool = Pool::new(1).unwrap();
        let reply = execute(&pool, &frame(square, &[(1u64,); 100], 10));
        assert!(matches!(
            reply.outcome,
            Err(RemoteError::ResultTooLarge { len }) if len > 10
        ));
    }

    #[test]
    fn a_forged_entry_is_refused() {
        let pool = Pool::new(1).unwrap();
        let mut bytes = frame(square, &[(1u64,)], u64::MAX);
        bytes[24..32].copy_from_slice(&12345i64.to_le_bytes());
        assert!(matches!(
            execute(&pool, &bytes).outcome,
            Err(RemoteError::Decode(_))
        ));
        assert!(matches!(
            execute(&pool, &[1, 2, 3]).outcome,
            Err(RemoteError::Decode(_))
        ));
    }
}
