//! The `MpiPool` suite (issue #19), a test binary without the libtest harness: run as a
//! test (`cargo test -p mp-mpi --features mpi --test mpi`), it starts itself under
//! `mpirun --oversubscribe -n 4` (1 master + 3 worker ranks) for each scenario and checks
//! how the job ended. Without the feature or without `mpirun`, it says it skipped, and why.
//!
//! Scenarios (the environment variable `MP_MPI_SUITE` says which one a rank runs):
//! - `main`: map order and values over 100k items, starmap, imap over an endless input with
//!   bounded look-ahead, imap_unordered, apply_async, 16 MiB arguments and results, a
//!   panicking task, an aborting and a segfaulting task inside a rank's local pool (the rank
//!   goes on), a result over the limit, a rank silent past the deadline, and the generic
//!   body run against both `MpiPool` and `Pool`.
//! - `killed`: a worker rank killed whole: the job ends (no hang), `mpirun` exits non-zero.
//! - `identity`: rank 1 runs another executable (this one with bytes appended):
//!   `IdentityMismatch` on the master, and both ranks exit cleanly.
//! - `silent_start`: rank 1 is not an mp-mpi program: past the deadline, `init` aborts the
//!   job (MPI_Finalize would wait for that rank), no hang.
//! - `bad_frames`: rank 1 is `tests/impostor/rank.py` (mpi4py), which passes the handshake
//!   and answers each task with a malformed frame: each is a typed error on the master.
//! - `singleton`: without `mpirun`, `init` fails with `NoWorkers`.

mod common;

fn main() {
    #[cfg(not(feature = "mpi"))]
    println!(
        "skipped: mp-mpi built without its `mpi` feature; run `cargo test -p mp-mpi --features \
         mpi --test mpi` on a machine with MPI (apt-get install libopenmpi-dev openmpi-bin \
         libclang-dev pkg-config)"
    );
    #[cfg(feature = "mpi")]
    suite::main();
}

#[cfg(feature = "mpi")]
mod suite {
    use std::cell::Cell;
    use std::os::fd::AsFd;
    use std::process::{Command, Output, Stdio};
    use std::time::Duration;

    use mp_mpi::{MpiError, MpiPool};
    use mp_pool::PoolError;

    use super::common::{self, add, boom, square};

    /// A hang guard only: every scenario ends on its own well before.
    const GUARD: Duration = Duration::from_secs(120);

    pub(super) fn main() {
        match std::env::var("MP_MPI_SUITE").as_deref() {
            Ok("main") => main_suite(),
            Ok("killed") => killed_rank(),
            Ok("identity") => identity_mismatch(),
            Ok("singleton") => singleton(),
            Ok("silent_start") => silent_start(),
            Ok("bad_frames") => bad_frames(),
            _ => launcher(),
        }
    }

    // --- The launcher (no MPI here) --------------------------------------------------------

    fn launcher() {
        if Command::new("mpirun").arg("--version").output().is_err() {
            println!(
                "skipped: no mpirun on this machine (apt-get install libopenmpi-dev openmpi-bin \
                 libclang-dev pkg-config)"
            );
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_str().unwrap();

        println!("mpi suite: main (mpirun -n 4)");
        let out = mpirun("main", &["-n", "4", exe]);
        assert!(out.status.success(), "{}", show(&out));
        assert!(
            stdout(&out).contains("main suite: all passed"),
            "{}",
            show(&out)
        );
        print!("{}", stdout(&out));

        println!("mpi suite: a worker rank killed whole");
        let out = mpirun("killed", &["-n", "4", exe]);
        assert!(!out.status.success(), "the job went on: {}", show(&out));
        let text = stdout(&out);
        assert!(text.contains("killed rank 1"), "{}", show(&out));
        assert!(!text.contains("survived"), "{}", show(&out));
        // Every rank is gone (mpirun reaped them); the pids were printed before the kill.
        for pid in text
            .lines()
            .filter_map(|l| l.strip_prefix("worker pid "))
            .map(|p| p.trim().parse::<u32>().unwrap())
        {
            assert!(
                mp_sys::pidfd::open(pid).is_err() || gone(pid),
                "worker rank pid {pid} outlived the job"
            );
        }
        println!("ok: mpirun ended the job ({})", out.status);

        println!("mpi suite: identity mismatch (mpirun -n 1 exe : -n 1 other-exe)");
        let other = std::env::temp_dir().join(format!("mp-mpi-other-{}", std::process::id()));
        let mut bytes = std::fs::read(exe).unwrap();
        bytes.extend_from_slice(b"another build");
        std::fs::write(&other, bytes).unwrap();
        std::fs::set_permissions(&other, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let out = mpirun(
            "identity",
            &["-n", "1", exe, ":", "-n", "1", other.to_str().unwrap()],
        );
        std::fs::remove_file(&other).unwrap();
        assert!(out.status.success(), "{}", show(&out));
        assert!(
            stdout(&out).contains("identity mismatch refused"),
            "{}",
            show(&out)
        );
        print!("{}", stdout(&out));

        // Rank 1: an MPI program (it calls MPI_Init, or the master's MPI_Init would wait for
        // it) that never says hello; mpi4py's, where it is installed (the bench rows use it).
        let mute = "from mpi4py import MPI; import time; time.sleep(600)";
        let python = ["python3", "/usr/bin/python3"].into_iter().find(|p| {
            Command::new(p)
                .args(["-c", "import mpi4py"])
                .output()
                .is_ok_and(|o| o.status.success())
        });
        if let Some(python) = python {
            println!("mpi suite: a rank that never says hello (mpirun -n 1 exe : -n 1 {python})");
            let out = mpirun(
                "silent_start",
                &["-n", "1", exe, ":", "-n", "1", python, "-c", mute],
            );
            assert!(!out.status.success(), "{}", show(&out));
            assert!(!stdout(&out).contains("survived"), "{}", show(&out));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("did not start within 2s"), "{}", show(&out));
            println!("ok: the master aborted the job ({})", out.status);

            println!("mpi suite: bad frames from a rank (mpirun -n 1 exe : -n 1 {python})");
            let impostor = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/impostor/rank.py");
            let out = mpirun(
                "bad_frames",
                &["-n", "1", exe, ":", "-n", "1", python, impostor, exe],
            );
            assert!(out.status.success(), "{}", show(&out));
            assert!(
                stdout(&out).contains("bad frames: all typed errors"),
                "{}",
                show(&out)
            );
            print!("{}", stdout(&out));
        } else {
            println!(
                "skipped: a rank that never says hello, and bad frames (need python3 with mpi4py)"
            );
        }

        println!("mpi suite: singleton (no mpirun)");
        let out = run(Command::new(exe).env("MP_MPI_SUITE", "singleton"));
        assert!(out.status.success(), "{}", show(&out));
        assert!(stdout(&out).contains("no workers: ok"), "{}", show(&out));
        println!("mpi suite: all scenarios passed");
    }

    fn mpirun(suite: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new("mpirun");
        cmd.args(["--oversubscribe", "-x", "MP_MPI_SUITE"])
            .args(args)
            .env("MP_MPI_SUITE", suite)
            // Open MPI refuses root without these (CI containers run as root).
            .env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        run(&mut cmd)
    }

    /// Runs `cmd` to its end, failing past the hang guard (waits on its pidfd).
    fn run(cmd: &mut Command) -> Output {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let pidfd = mp_sys::pidfd::open(pid).unwrap();
        // The pipes are read by threads so that a full pipe never stalls the job.
        let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
        let ended = mp_sys::poll::readable(&[pidfd.as_fd()], Some(GUARD)).unwrap();
        if !ended[0] {
            // SIGTERM first: mpirun passes it on to every rank, so none is left behind.
            // SAFETY: kill has no memory effects; `pid` is our child, not yet reaped.
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            let ended = mp_sys::poll::readable(&[pidfd.as_fd()], Some(Duration::from_secs(20)));
            if !ended.is_ok_and(|e| e[0]) {
                // SAFETY: as above.
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
            }
            panic!(
                "the job hung past {GUARD:?}: {}",
                show(&waiter.join().unwrap())
            );
        }
        waiter.join().unwrap()
    }

    /// Whether `pid` has ended (its pidfd is readable at once, or within the guard).
    fn gone(pid: u32) -> bool {
        match mp_sys::pidfd::open(pid) {
            Ok(fd) => mp_sys::poll::readable(&[fd.as_fd()], Some(GUARD)).unwrap()[0],
            Err(_) => true,
        }
    }

    fn stdout(out: &Output) -> String {
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn show(out: &Output) -> String {
        format!(
            "status {}\n--- stdout\n{}--- stderr\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    // --- Under mpirun ------------------------------------------------------------------------

    fn test(name: &str, body: impl FnOnce()) {
        body();
        println!("  {name} ... ok");
    }

    fn main_suite() {
        // Worker ranks serve inside `init` and exit; only rank 0 goes on.
        let pool = MpiPool::builder()
            .local_processes(2)
            .max_memory_per_worker(MEMORY_CAP)
            .init()
            .unwrap();
        assert_eq!(pool.workers().len(), 3);

        test("generic_body_on_mpi_pool", || common::generic_body(&pool));
        test("generic_body_on_local_pool_beside_mpi", || {
            common::generic_body(&mp_pool::Pool::new(2).unwrap())
        });
        test("map_100k_in_order", || {
            let n = 100_000u64;
            let got = pool.map(square, 0..n).unwrap();
            assert_eq!(got, (0..n).map(square).collect::<Vec<_>>());
            let got = pool.chunksize(777).map(square, 0..n).unwrap();
            assert_eq!(got.len(), n as usize);
            assert!(got.iter().enumerate().all(|(i, v)| *v == square(i as u64)));
        });
        test("starmap", || {
            let items: Vec<(u64, u64)> = (0..1000).map(|i| (i, 2 * i)).collect();
            let got = pool.chunksize(7).starmap(add, items).unwrap();
            assert_eq!(got, (0..1000).map(|i| 3 * i).collect::<Vec<u64>>());
        });
        test("imap_endless_input_bounded_lookahead", || {
            let read = Cell::new(0u64);
            let input = (0u64..).inspect(|_| read.set(read.get() + 1));
            let (chunksize, buffersize) = (10, 4);
            let got: Vec<u64> = pool
                .chunksize(chunksize)
                .buffersize(buffersize)
                .imap(square, input)
                .take(500)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(got, (0..500).map(square).collect::<Vec<_>>());
            // Read no further than the look-ahead past what was yielded.
            let bound = 500 + (buffersize as u64 + 1) * chunksize as u64;
            assert!(
                read.get() <= bound,
                "read {} items, bound {bound}",
                read.get()
            );
        });
        test("imap_unordered", || {
            let mut got: Vec<u64> = pool
                .chunksize(3)
                .imap_unordered(square, 0..1000u64)
                .collect::<Result<_, _>>()
                .unwrap();
            got.sort_unstable();
            assert_eq!(got, (0..1000).map(square).collect::<Vec<_>>());
        });
        test("apply_async", || {
            let pending: Vec<_> = (0..10u64)
                .map(|i| pool.apply_async(add, (i, 100)).unwrap())
                .collect();
            for (i, p) in pending.iter().enumerate().rev() {
                assert_eq!(p.get().unwrap(), i as u64 + 100);
                assert_eq!(p.get().unwrap(), i as u64 + 100, "get again");
                assert!(p.ready());
            }
        });
        test("sixteen_mib_args_and_results", || {
            let big: Vec<Vec<u8>> = (0..2u8).map(|k| vec![k + 1; 16 << 20]).collect();
            let got = pool.chunksize(1).map(reversed_plus_one, big).unwrap();
            assert_eq!(got.len(), 2);
            for (k, v) in got.iter().enumerate() {
                assert_eq!(v.len(), 16 << 20);
                assert!(v.iter().all(|b| *b == k as u8 + 2));
            }
        });
        test("a_panicking_task", || {
            let e = pool.chunksize(3).map(boom, 0..10u64).unwrap_err();
            let PoolError::Remote { rank, error } = &e else {
                panic!("{e:?}")
            };
            assert!(*rank >= 1, "{e}");
            match &**error {
                PoolError::Panicked { index, message } => {
                    assert_eq!(*index, 7, "{e}");
                    assert!(message.contains("boom at 7"), "{message}");
                }
                other => panic!("{other:?}"),
            }
            assert!(e.is_task_failure());
        });
        test("an_aborting_task_in_a_rank_local_pool", || {
            let e = pool.chunksize(1).map(abort_at_5, 0..10u64).unwrap_err();
            match e.local() {
                &PoolError::WorkerDied {
                    index, exitcode, ..
                } => {
                    assert_eq!(index, 5);
                    assert_eq!(exitcode, -libc::SIGABRT);
                }
                other => panic!("{other:?}"),
            }
        });
        test("a_segfaulting_task_in_a_rank_local_pool", || {
            let e = pool.chunksize(1).map(segfault_at_3, 0..6u64).unwrap_err();
            match e.local() {
                &PoolError::WorkerDied {
                    index, exitcode, ..
                } => {
                    assert_eq!(index, 3);
                    assert_eq!(exitcode, -libc::SIGSEGV);
                }
                other => panic!("{other:?}"),
            }
            // Every rank goes on: one chunk per rank, all answered.
            let got = pool.chunksize(1).map(square, 0..30u64).unwrap();
            assert_eq!(got, (0..30).map(square).collect::<Vec<_>>());
        });
        test("a_task_killed_as_by_the_oom_killer", || {
            let e = pool.chunksize(2).map(sigkill_at_4, 0..8u64).unwrap_err();
            match e.local() {
                &PoolError::WorkerDied {
                    index,
                    len,
                    exitcode,
                    ..
                } => {
                    assert_eq!((index, exitcode), (4, -libc::SIGKILL));
                    // The chunk that died, whole: a chunk runs in one local process of its
                    // rank, as in a local pool.
                    assert_eq!(len, 2);
                }
                other => panic!("{other:?}"),
            }
        });
        test("a_task_past_the_ranks_memory_cap", || {
            // The ranks' local workers have the cap: the task fails with its typed error,
            // from the rank, and runs again when asked (once more, here, then gives up).
            let e = pool.apply(hog, (4096,)).unwrap_err();
            assert!(
                matches!(e.local(), PoolError::MemoryLimit { limit, .. } if *limit == MEMORY_CAP),
                "{e:?}"
            );
            let e = pool.retries(1).apply(hog, (4096,)).unwrap_err();
            assert!(matches!(e, PoolError::GaveUp { attempts: 2, .. }), "{e:?}");
            assert!(matches!(e.cause(), PoolError::MemoryLimit { .. }), "{e:?}");
            assert_eq!(pool.apply(hog, (8,)).unwrap(), 8);
        });
        // The limits of a call (max_result_bytes, timeout) and a closure with state are in
        // the generic body, which ran first on this pool.
        test("progress_and_the_executor", || {
            // The same engine: a watched call counts its items (per chunk, from the ranks).
            let r = pool.progress(true).map_async(square, 0..1000u64).unwrap();
            assert_eq!(r.get().unwrap().len(), 1000);
            assert_eq!(r.progress(&pool), Some(1000));
        });
        // The pool itself, for a ProcessPoolExecutor; its drop (shutdown(wait)) ends the job's
        // pool.
        let executor = mp_pool::ProcessPoolExecutor::from_pool(pool.into_pool());
        test("process_pool_executor", || {
            let futures: Vec<_> = (0..10u64)
                .map(|i| executor.submit(add, (i, 1)).unwrap())
                .collect();
            let sum: u64 = mp_pool::as_completed(futures)
                .map(|f| f.get().unwrap())
                .sum();
            assert_eq!(sum, 55);
        });
        drop(executor);
        println!("main suite: all passed");
    }

    fn reversed_plus_one(v: Vec<u8>) -> Vec<u8> {
        v.into_iter().rev().map(|b| b + 1).collect()
    }

    fn abort_at_5(x: u64) -> u64 {
        if x == 5 {
            std::process::abort();
        }
        x
    }

    fn segfault_at_3(x: u64) -> u64 {
        if x == 3 {
            // SAFETY: raising a signal has no memory effects; SIGSEGV's default action
            // kills this (local pool worker) process, which is the point.
            unsafe { libc::raise(libc::SIGSEGV) };
        }
        x
    }

    /// The ranks' local workers' memory cap.
    const MEMORY_CAP: u64 = 1 << 30;

    /// Holds `mib` MiB, touched.
    fn hog(mib: usize) -> usize {
        let mut held = Vec::new();
        for _ in 0..mib {
            held.push(vec![1u8; 1 << 20]);
        }
        held.len()
    }

    fn sigkill_at_4(x: u64) -> u64 {
        if x == 4 {
            // SAFETY: raising a signal has no memory effects; SIGKILL ends this (local pool
            // worker) process, as the OOM killer would.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        x
    }

    fn killed_rank() {
        let pool = MpiPool::init().unwrap();
        for w in pool.workers() {
            println!("worker pid {}", w.pid);
        }
        let victim = pool.workers()[0].pid;
        // SAFETY: kill has no memory effects; the pid is worker rank 1's on this host.
        unsafe { libc::kill(victim as i32, libc::SIGKILL) };
        println!("killed rank 1");
        use std::io::Write;
        std::io::stdout().flush().unwrap();
        // Open MPI aborts the job; nothing below should finish.
        let _ = pool.map(square, 0..1000u64);
        drop(pool);
        println!("survived");
    }

    fn identity_mismatch() {
        match MpiPool::init() {
            Err(e @ MpiError::IdentityMismatch { rank: 1, .. }) => {
                println!("identity mismatch refused: {e}")
            }
            other => panic!("expected IdentityMismatch, got {other:?}"),
        }
    }

    /// Rank 1 is `tests/impostor/rank.py`: a correct handshake, then a bad frame per task.
    fn bad_frames() {
        let pool = MpiPool::init().unwrap();
        let mut errors = Vec::new();
        for _ in 0..4 {
            // One chunk per call: one bad frame each.
            errors.push(pool.chunksize(3).map(square, [1u64, 2, 3]).unwrap_err());
        }
        let reason = |e: &PoolError| match e {
            PoolError::Remote { rank: 1, error } => match &**error {
                PoolError::BadFrame(reason) => reason.clone(),
                other => panic!("expected BadFrame from rank 1, got {other:?}"),
            },
            other => panic!("expected BadFrame from rank 1, got {other:?}"),
        };
        assert!(reason(&errors[0]).contains("a result frame of 3 bytes"));
        assert!(reason(&errors[1]).contains("undecodable failure report"));
        assert!(reason(&errors[2]).contains("which the worker does not hold"));
        assert!(
            matches!(&errors[3], PoolError::Decode(_)),
            "expected Decode, got {:?}",
            errors[3]
        );
        drop(pool);
        println!("bad frames: all typed errors");
    }

    fn silent_start() {
        // Rank 1 is not an mp-mpi program and never says hello: past the deadline, the
        // master aborts the job rather than wait forever.
        let pool = MpiPool::builder()
            .deadline(Some(Duration::from_secs(2)))
            .init();
        println!("survived: {pool:?}");
    }

    fn singleton() {
        match MpiPool::init() {
            Err(MpiError::NoWorkers) => println!("no workers: ok"),
            other => panic!("expected NoWorkers, got {other:?}"),
        }
    }
}
