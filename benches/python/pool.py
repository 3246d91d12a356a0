"""Python's side of mp's pool bench: a persistent Pool(2) (the default fork context), medians
of repeated trials after a warm-up. Prints `<metric> <median> <spread_%>` lines (stats.py):
map_200k_tasks_per_s (map of a trivial function over 200k items, default chunksize),
map_20k_c1_tasks_per_s (the same over 20k items, chunksize 1), apply_rtt_us
(apply_async(...).get()), apply_await_rtt_us (the same awaited in asyncio, through a callback that
resolves a future: Pool has nothing awaitable), cpu_serial_s and cpu_pool_s (4 x sum(i*i for i < 10**7) serially and
on 2 workers; the report divides them), and joblib_20k_tasks_per_s (joblib.Parallel(n_jobs=2) over 20k
delayed calls) when joblib is installed; pebble_map_20k_c1_timeout_tasks_per_s and
pebble_timeout_kill_ms (see pebble_figures) when pebble is installed."""
import asyncio
import multiprocessing as mp
import sys
import time

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


async def awaited_applies(pool, n):
    loop = asyncio.get_running_loop()
    for _ in range(n):
        fut = loop.create_future()
        pool.apply_async(
            identity, (7,), callback=lambda v, f=fut: loop.call_soon_threadsafe(f.set_result, v)
        )
        await fut


def main():
    quick = "--quick" in sys.argv
    rounds = 3 if quick else 7
    with mp.Pool(2) as pool:
        t = times(lambda: pool.map(identity, range(200_000)), rounds)
        emit("map_200k_tasks_per_s", [200_000 / s for s in t])
        t = times(lambda: pool.map(identity, range(20_000), chunksize=1), rounds)
        emit("map_20k_c1_tasks_per_s", [20_000 / s for s in t])
        n = 300 if quick else 2000
        t = times(lambda: [pool.apply_async(identity, (7,)).get() for _ in range(n)], rounds)
        emit("apply_rtt_us", [s / n * 1e6 for s in t])
        t = times(lambda: asyncio.run(awaited_applies(pool, n)), rounds)
        emit("apply_await_rtt_us", [s / n * 1e6 for s in t])
        # The quick run does a tenth of the work and scales it up.
        count = 10**6 if quick else 10**7
        cpu_rounds = 3 if quick else 5
        t_pool = times(lambda: pool.map(sum_squares, [count] * 4, chunksize=1), cpu_rounds)
    t_serial = times(lambda: [sum_squares(count) for _ in range(4)], cpu_rounds)
    scale = 10**7 / count
    emit("cpu_serial_s", [s * scale for s in t_serial])
    emit("cpu_pool_s", [s * scale for s in t_pool])
    pebble_figures(rounds, quick)
    try:
        from joblib import Parallel, delayed
    except ImportError:
        print("joblib not installed: joblib figures skipped", file=sys.stderr)
        return
    t = times(lambda: Parallel(n_jobs=2)(delayed(identity)(i) for i in range(20_000)), rounds)
    emit("joblib_20k_tasks_per_s", [20_000 / s for s in t])


def forever():
    while True:
        time.sleep(3600)


def pebble_figures(rounds, quick):
    """pebble's ProcessPool (the per-task timeouts Python users reach for): a chunksize-1 map
    of 20k trivial tasks under a timeout, and a task past its 20 ms timeout, from its deadline
    to its error returned and a replacement worker running the next task (one worker)."""
    try:
        from concurrent.futures import TimeoutError as FutureTimeout
        from pebble import ProcessPool
    except ImportError:
        print("pebble not installed: pebble figures skipped", file=sys.stderr)
        return
    with ProcessPool(max_workers=2) as pool:
        t = times(
            lambda: list(pool.map(identity, range(20_000), chunksize=1, timeout=600).result()),
            rounds,
        )
        emit("pebble_map_20k_c1_timeout_tasks_per_s", [20_000 / s for s in t])
    timeout = 0.02
    with ProcessPool(max_workers=1) as pool:
        pool.schedule(identity, args=(7,)).result()
        samples = []
        for _ in range(5 if quick else 20):
            start = time.perf_counter()
            try:
                pool.schedule(forever, timeout=timeout).result()
            except FutureTimeout:
                pass
            assert pool.schedule(identity, args=(7,)).result() == 7
            samples.append((time.perf_counter() - start - timeout) * 1e3)
        emit("pebble_timeout_kill_ms", samples)


if __name__ == "__main__":
    main()
