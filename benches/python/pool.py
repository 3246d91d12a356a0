"""Python's side of mp's pool bench: a persistent Pool(2) (the default fork context), medians
of repeated trials after a warm-up. Prints `<metric> <value>` lines:
map_200k_tasks_per_s (map of a trivial function over 200k items, default chunksize),
map_20k_c1_tasks_per_s (the same over 20k items, chunksize 1), apply_rtt_us
(apply_async(...).get()), cpu_serial_s and cpu_pool_s (4 x sum(i*i for i < 10**7) serially and
on 2 workers), and the same with joblib.Parallel(n_jobs=2) when joblib is installed."""
import multiprocessing as mp
import statistics
import sys
import time


def identity(x):
    return x


def sum_squares(count):
    return sum(i * i for i in range(count))


def median_time(fn, rounds):
    fn()
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main():
    quick = "--quick" in sys.argv
    rounds = 3 if quick else 7
    with mp.Pool(2) as pool:
        t = median_time(lambda: pool.map(identity, range(200_000)), rounds)
        print(f"map_200k_tasks_per_s {200_000 / t}")
        t = median_time(lambda: pool.map(identity, range(20_000), chunksize=1), rounds)
        print(f"map_20k_c1_tasks_per_s {20_000 / t}")
        n = 300 if quick else 2000
        t = median_time(lambda: [pool.apply_async(identity, (7,)).get() for _ in range(n)], rounds)
        print(f"apply_rtt_us {t / n * 1e6}")
        count = 10**6 if quick else 10**7
        t_pool = median_time(lambda: pool.map(sum_squares, [count] * 4, chunksize=1), 1 if quick else 3)
    t_serial = median_time(lambda: [sum_squares(count) for _ in range(4)], 1 if quick else 3)
    scale = 10**7 / count
    print(f"cpu_serial_s {t_serial * scale}")
    print(f"cpu_pool_s {t_pool * scale}")
    try:
        from joblib import Parallel, delayed
    except ImportError:
        print("joblib not installed: joblib figures skipped", file=sys.stderr)
        return
    t = median_time(lambda: Parallel(n_jobs=2)(delayed(identity)(i) for i in range(20_000)), rounds)
    print(f"joblib_20k_tasks_per_s {20_000 / t}")


if __name__ == "__main__":
    main()
