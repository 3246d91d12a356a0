"""mpi4py.futures' side of mp-mpi's bench rows, run by `cargo xtask bench` as
`mpirun --oversubscribe -n 3 python3 -m mpi4py.futures benches/python/mpi.py [--quick]`
(1 master + 2 worker ranks, as `bench_mpi`): MPIPoolExecutor.map of a trivial function over
200k items (chunksize as Pool's default, ceil(n / (4 x workers))), and 4 x sum(i*i for
i < 10**7) serially and over the ranks. Prints `<metric> <median> <spread_%>` lines
(stats.py): map_200k_tasks_per_s, cpu_serial_s, cpu_pool_s."""
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPIPoolExecutor

from stats import emit


def identity(x):
    return x


def sum_squares(count):
    return sum(i * i for i in range(count))


def times(fn, rounds):
    """Seconds per call of fn, one sample per round, after one warm-up call."""
    fn()
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return samples


def main():
    rounds = 3 if "--quick" in sys.argv else 7
    with MPIPoolExecutor() as pool:
        workers = MPI.COMM_WORLD.Get_size() - 1
        n = 200_000
        chunksize = -(-n // (4 * workers))
        t = times(lambda: list(pool.map(identity, range(n), chunksize=chunksize)), rounds)
        emit("map_200k_tasks_per_s", [n / s for s in t])
        jobs = [10**7] * 4
        serial = times(lambda: [sum_squares(c) for c in jobs], rounds)
        parallel = times(lambda: list(pool.map(sum_squares, jobs)), rounds)
        emit("cpu_serial_s", serial)
        emit("cpu_pool_s", parallel)


if __name__ == "__main__":
    main()
