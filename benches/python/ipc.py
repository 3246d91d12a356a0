"""Python's side of mp's ipc bench: Pipe and Queue round trips, Queue small-message
throughput and 1 MiB throughput, with the fork start method (the fastest in Python), medians of
repeated trials after a warm-up. Prints `<metric> <median> <spread_%>` lines (stats.py):
pipe_rtt_us, queue_rtt_us, queue_small_msgs_per_s, queue_1mib_gb_per_s, pipe_1mib_gb_per_s."""
import multiprocessing as mp
import sys
import time

from stats import emit

MIB = 1 << 20


def echo_pipe(conn):
    while True:
        v = conn.recv()
        if v is None:
            return
        conn.send(v + 1)


def echo_queue(req, rep):
    while True:
        v = req.get()
        if v is None:
            return
        rep.put(v + 1)


def rounds(control, round_):
    """Runs round_(n) for every n read from control, until a 0: how a bench child is driven."""
    while True:
        n = control.get()
        if n == 0:
            return
        round_(n)


def produce(control, q):
    rounds(control, lambda n: [q.put(i) for i in range(n)])


def produce_big(control, q):
    payload = bytes(MIB)
    rounds(control, lambda n: [q.put(payload) for _ in range(n)])


def send_big(control, conn):
    payload = bytes(MIB)
    rounds(control, lambda n: [conn.send_bytes(payload) for _ in range(n)])


def rtt_us(call, rounds, per_round):
    for _ in range(per_round):
        call()
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(per_round):
            call()
        samples.append((time.perf_counter() - t) / per_round)
    return [s * 1e6 for s in samples]


def rates(run, rounds, n):
    run(n // 4)
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        run(n)
        samples.append(n / (time.perf_counter() - t))
    return samples


def main():
    quick = "--quick" in sys.argv
    rounds = 5 if quick else 15
    ctx = mp.get_context("fork")

    a, b = ctx.Pipe()
    p = ctx.Process(target=echo_pipe, args=(b,))
    p.start()

    def pipe_call():
        a.send(7)
        a.recv()

    emit("pipe_rtt_us", rtt_us(pipe_call, rounds, 2000))
    a.send(None)
    p.join()

    req, rep = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=echo_queue, args=(req, rep))
    p.start()

    def queue_call():
        req.put(7)
        rep.get()

    emit("queue_rtt_us", rtt_us(queue_call, rounds, 1000))
    req.put(None)
    p.join()

    control, q = ctx.Queue(), ctx.Queue()
    p = ctx.Process(target=produce, args=(control, q))
    p.start()

    def small(n):
        control.put(n)
        for _ in range(n):
            q.get()

    emit("queue_small_msgs_per_s", rates(small, rounds, 50_000))
    control.put(0)
    p.join()

    q = ctx.Queue()
    p = ctx.Process(target=produce_big, args=(control, q))
    p.start()

    def big(n):
        control.put(n)
        for _ in range(n):
            q.get()

    emit("queue_1mib_gb_per_s", [r * MIB / 1e9 for r in rates(big, rounds, 100)])
    control.put(0)
    p.join()

    a, b = ctx.Pipe()
    p = ctx.Process(target=send_big, args=(control, b))
    p.start()

    def big_pipe(n):
        control.put(n)
        for _ in range(n):
            a.recv_bytes()

    emit("pipe_1mib_gb_per_s", [r * MIB / 1e9 for r in rates(big_pipe, rounds, 100)])
    control.put(0)
    p.join()


if __name__ == "__main__":
    main()
