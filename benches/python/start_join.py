"""Python's side of mp's start_join bench: Process start+join of a trivial target per start
method, median of repeated trials after a warm-up. Prints `<method> <median_us> <spread_%>`
lines (see stats.py)."""
import multiprocessing as mp
import sys
import time

from stats import emit


def trivial(x):
    return x + 1


def main():
    quick = "--quick" in sys.argv
    for method in ("fork", "spawn", "forkserver"):
        ctx = mp.get_context(method)
        for _ in range(3):
            p = ctx.Process(target=trivial, args=(1,))
            p.start()
            p.join()
        n = (20 if quick else 60) if method == "spawn" else (60 if quick else 300)
        samples = []
        for _ in range(n):
            t = time.perf_counter()
            p = ctx.Process(target=trivial, args=(1,))
            p.start()
            p.join()
            samples.append(time.perf_counter() - t)
        emit(method, [s * 1e6 for s in samples])


if __name__ == "__main__":
    main()
