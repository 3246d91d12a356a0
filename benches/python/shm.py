"""Python's side of mp's shm bench, with the fork start method, medians of repeated trials
after a warm-up. Prints `<metric> <median> <spread_%>` lines (stats.py): value_lock_incr_ops_per_s (Value('q') under
its lock, 2 processes), lock_uncontended_ns, shm_fill_gb_per_s (256 MiB written by a child,
checksummed by the parent with zlib.adler32), shm_create_unlink_us (1 MiB),
shared_dict_ops_per_s (a child does `d["k"] = d.get("k", 0) + 1` on a `Manager().dict()`: one
op is the get and the set)."""
import multiprocessing as mp
import sys
import time
import zlib
from multiprocessing import shared_memory
from multiprocessing.managers import SyncManager

from stats import emit

MIB = 1 << 20


def incr(v, n, start):
    start.wait()
    for _ in range(n):
        with v.get_lock():
            v.value += 1


def value_lock(rounds, n):
    samples = []
    for _ in range(rounds):
        v = mp.Value("q", 0)
        start = mp.Event()
        ps = [mp.Process(target=incr, args=(v, n, start)) for _ in range(2)]
        for p in ps:
            p.start()
        t = time.perf_counter()
        start.set()
        for p in ps:
            p.join()
        samples.append(2 * n / (time.perf_counter() - t))
    return samples


def lock_uncontended(rounds, n):
    lock = mp.Lock()
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            lock.acquire()
            lock.release()
        samples.append((time.perf_counter() - t) / n * 1e9)
    return samples


def fill(name, size, byte):
    s = shared_memory.SharedMemory(name)
    s.buf[:size] = bytes([byte]) * size
    s.close()


def shm_fill(rounds, size):
    s = shared_memory.SharedMemory(create=True, size=size)
    samples = []
    try:
        for i in range(rounds + 1):
            t = time.perf_counter()
            p = mp.Process(target=fill, args=(s.name, size, i % 250 + 1))
            p.start()
            p.join()
            zlib.adler32(s.buf)
            if i:  # the first round is the warm-up
                samples.append(size / (time.perf_counter() - t) / 1e9)
    finally:
        s.close()
        s.unlink()
    return samples


def create_unlink(rounds, n):
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            s = shared_memory.SharedMemory(create=True, size=MIB)
            s.close()
            s.unlink()
        samples.append((time.perf_counter() - t) / n * 1e6)
    return samples


def dict_get_set(d, n, start, done):
    start.wait()
    t = time.perf_counter()
    for _ in range(n):
        d["k"] = d.get("k", 0) + 1
    done.put(n / (time.perf_counter() - t))


def shared_dict(rounds, n, address=None):
    samples = []
    with SyncManager(address=address, authkey=b"bench") as manager:
        d = manager.dict()
        for _ in range(rounds):
            start, done = mp.Event(), mp.Queue()
            p = mp.Process(target=dict_get_set, args=(d, n, start, done))
            p.start()
            start.set()
            samples.append(done.get())
            p.join()
    return samples


def main():
    quick = "--quick" in sys.argv
    rounds = 3 if quick else 7
    mp.set_start_method("fork")
    emit("value_lock_incr_ops_per_s", value_lock(rounds, 100_000))
    emit("lock_uncontended_ns", lock_uncontended(rounds, 200_000))
    emit("shm_fill_gb_per_s", shm_fill(rounds, 256 * MIB))
    emit("shm_create_unlink_us", create_unlink(rounds, 500))
    manager_dict = shared_dict(rounds, 5_000)
    emit("shared_dict_ops_per_s", manager_dict)
    # The same work is the Python side of mp's managed dict.
    emit("manager_dict_ops_per_s", manager_dict)
    emit("manager_dict_tcp_ops_per_s", shared_dict(rounds, 5_000, ("127.0.0.1", 0)))


if __name__ == "__main__":
    main()
