"""Python's side of mp's big-data rows (issue #17), with numpy and joblib. Prints
`<metric> <median> <spread_%>` lines (stats.py):

- joblib_shared_1gib_gb_per_s: joblib.Parallel(n_jobs=2) sums a 1 GiB float64 array in 64
  chunks (each task gets the array and its chunk's bounds; joblib memmaps an argument above
  max_nbytes = 1 MB, which means dumping the array to /dev/shm on each `Parallel(...)(...)`
  call), counting the array's bytes per second of wall time;
- joblib_dump_1gib_s: the time of that dump alone (joblib.dump of the array to /dev/shm), the
  share of joblib's time that is the copy;
- numpy_sum_1gib_gb_per_s: the single-process sum (numpy's `a.sum()`), for reference;
- pool_big_arg_serialised_tasks_per_s: Pool(2).map of tasks that each receive a 64 MiB bytes
  argument (pickled per task) and read one byte of it.

Without numpy or joblib, says so and prints nothing for the rows that need them."""
import multiprocessing as mp
import os
import sys
import tempfile
import time

from stats import emit

GIB = 1 << 30
MIB = 1 << 20


def chunk_sum(a, lo, hi):
    return float(a[lo:hi].sum())


def read_one(arg):
    big, i = arg
    return big[i % len(big)]


def times(fn, rounds):
    fn()
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return samples


def main():
    quick = "--quick" in sys.argv
    rounds = 3 if quick else 5
    try:
        import joblib
        import numpy as np
    except ImportError as e:
        print(f"# bigdata.py: skipped the numpy/joblib rows ({e})", file=sys.stderr)
        np = None
    if np is not None:
        a = np.ones(GIB // 8, dtype=np.float64)
        n = len(a)
        bounds = [(i * n // 64, (i + 1) * n // 64) for i in range(64)]
        # joblib's usual form, a Parallel per call: the array is dumped on each call (inside
        # one `with Parallel(...)` block joblib would reuse the dump).
        run = lambda: joblib.Parallel(n_jobs=2)(
            joblib.delayed(chunk_sum)(a, lo, hi) for lo, hi in bounds
        )
        emit("joblib_shared_1gib_gb_per_s", [GIB / 1e9 / s for s in times(run, rounds)])
        with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
            path = os.path.join(d, "a.pkl")

            def dump():
                joblib.dump(a, path)
                os.unlink(path)

            emit("joblib_dump_1gib_s", times(dump, rounds))
        emit("numpy_sum_1gib_gb_per_s", [GIB / 1e9 / s for s in times(a.sum, rounds)])
        del a
    big = b"\x01" * (64 * MIB)
    tasks = 20
    with mp.Pool(2) as pool:
        t = times(lambda: pool.map(read_one, [(big, i) for i in range(tasks)]), rounds)
    emit("pool_big_arg_serialised_tasks_per_s", [tasks / s for s in t])


if __name__ == "__main__":
    main()
