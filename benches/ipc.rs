//! Pipe and Queue: round trips, small-message throughput and 1 MiB throughput between two
//! processes. Beside them, in the same run: the Rust peer a user would pick instead (a raw
//! ipc-channel, its child started by procspawn), and the OS baselines (a socketpair ping-pong,
//! two processes spinning on a shared cache line, a bare shared-memory ring, raw 1 MiB socket
//! and pipe writes, memcpy).

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::FromRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group};
use ipc_channel::ipc::{self, IpcBytesReceiver, IpcBytesSender, IpcReceiver, IpcSender};
use mp::spawn::reduction::Fd;
use mp::{Connection, Process, Queue, RawArray};

mod common;
use common::{ctx, start, tune};

const MIB: usize = 1 << 20;

// --- round trips ------------------------------------------------------------------------------

fn echo_connection(conn: Connection) {
    while let Ok(v) = conn.recv::<u64>() {
        if conn.send(&(v + 1)).is_err() {
            return;
        }
    }
}

fn echo_socket(sock: Fd) {
    let mut s = UnixStream::from(sock.into_inner());
    let mut buf = [0u8; 8];
    while s.read_exact(&mut buf).is_ok() {
        let v = u64::from_le_bytes(buf) + 1;
        if s.write_all(&v.to_le_bytes()).is_err() {
            return;
        }
    }
}

fn echo_queue(requests: Queue<u64>, replies: Queue<u64>) {
    loop {
        let v = requests.get().expect("get");
        if v == u64::MAX {
            return;
        }
        replies.put(v + 1).expect("put");
    }
}

fn round_trips(c: &mut Criterion) {
    let mut group = c.benchmark_group("ipc_rtt");
    tune(&mut group, 30, 3);

    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let child = start(ctx().process(echo_socket, (Fd::new(theirs.into()),)));
    let mut ours = ours;
    group.bench_function("socketpair", |b| {
        let mut buf = [0u8; 8];
        b.iter(|| {
            ours.write_all(&black_box(7u64).to_le_bytes())
                .expect("write");
            ours.read_exact(&mut buf).expect("read");
        })
    });
    drop(ours);
    finish(child);

    let (a, b) = mp::pipe(true).expect("pipe");
    let child = start(ctx().process(echo_connection, (b,)));
    group.bench_function("pipe", |bench| {
        bench.iter(|| {
            a.send(&black_box(7u64)).expect("send");
            assert_eq!(a.recv::<u64>().expect("recv"), 8);
        })
    });
    drop(a);
    finish(child);

    let requests = Queue::new().expect("queue");
    let replies = Queue::new().expect("queue");
    let child = start(ctx().process(echo_queue, (requests.clone(), replies.clone())));
    group.bench_function("queue", |b| {
        b.iter(|| {
            requests.put(black_box(7)).expect("put");
            assert_eq!(replies.get().expect("get"), 8);
        })
    });
    requests.put(u64::MAX).expect("put");
    finish(child);
    group.finish();
}

fn finish<R: serde::Serialize + serde::de::DeserializeOwned + 'static>(mut p: Process<R>) {
    p.join().expect("join");
}

// --- small-message throughput ----------------------------------------------------------------

/// Runs `round(n)` for every `n` read from `control`, until a 0: how a bench child is driven.
fn rounds(control: &Queue<u64>, mut round: impl FnMut(u64)) {
    loop {
        let n = control.get().expect("get");
        if n == 0 {
            return;
        }
        round(n);
    }
}

/// Puts `n` u64s per round.
fn produce(control: Queue<u64>, q: Queue<u64>) {
    rounds(&control, |n| (0..n).for_each(|i| q.put(i).expect("put")));
}

/// Takes `n` items per round, then says so on `done`.
fn consume(control: Queue<u64>, q: Queue<u64>, done: Queue<u64>) {
    rounds(&control, |n| {
        for _ in 0..n {
            black_box(q.get().expect("get"));
        }
        done.put(n).expect("put");
    });
}

fn small_messages(c: &mut Criterion) {
    let mut group = c.benchmark_group("queue_small");
    tune(&mut group, 20, 3);
    group.throughput(Throughput::Elements(1));
    for producers in [1u64, 2] {
        let control = Queue::new().expect("queue");
        let q = Queue::new().expect("queue");
        let children: Vec<_> = (0..producers)
            .map(|_| start(ctx().process(produce, (control.clone(), q.clone()))))
            .collect();
        group.bench_function(format!("{producers}_to_1"), |b| {
            b.iter_custom(|iters| {
                let per = iters.div_ceil(producers);
                let t = Instant::now();
                for _ in 0..producers {
                    control.put(per).expect("put");
                }
                for _ in 0..per * producers {
                    black_box(q.get().expect("get"));
                }
                t.elapsed()
            })
        });
        for _ in 0..producers {
            control.put(0).expect("put");
        }
        children.into_iter().for_each(finish);
    }

    let control = Queue::new().expect("queue");
    let q = Queue::new().expect("queue");
    let done = Queue::new().expect("queue");
    let children: Vec<_> = (0..2)
        .map(|_| start(ctx().process(consume, (control.clone(), q.clone(), done.clone()))))
        .collect();
    group.bench_function("1_to_2", |b| {
        b.iter_custom(|iters| {
            let per = iters.div_ceil(2);
            let t = Instant::now();
            control.put(per).expect("put");
            control.put(per).expect("put");
            for i in 0..per * 2 {
                q.put(i).expect("put");
            }
            done.get().expect("get");
            done.get().expect("get");
            t.elapsed()
        })
    });
    control.put(0).expect("put");
    control.put(0).expect("put");
    children.into_iter().for_each(finish);
    group.finish();
}

// --- 1 MiB throughput ------------------------------------------------------------------------

fn produce_big(control: Queue<u64>, q: Queue<serde_bytes::ByteBuf>) {
    let payload = serde_bytes::ByteBuf::from(vec![7u8; MIB]);
    rounds(&control, |n| {
        (0..n).for_each(|_| q.put(&payload).expect("put"))
    });
}

fn send_big(control: Queue<u64>, conn: Connection) {
    let payload = vec![7u8; MIB];
    rounds(&control, |n| {
        (0..n).for_each(|_| conn.send_bytes(&payload, 0, None).expect("send"))
    });
}

fn write_big(control: Queue<u64>, sock: Fd) {
    let mut s = UnixStream::from(sock.into_inner());
    let payload = vec![7u8; MIB];
    rounds(&control, |n| {
        (0..n).for_each(|_| s.write_all(&payload).expect("write"))
    });
}

fn one_mib(c: &mut Criterion) {
    let mut group = c.benchmark_group("one_mib");
    tune(&mut group, 10, 4);
    group.throughput(Throughput::Bytes(MIB as u64));

    let control = Queue::new().expect("queue");
    let q = Queue::new().expect("queue");
    let child = start(ctx().process(produce_big, (control.clone(), q.clone())));
    group.bench_function("queue", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            control.put(iters).expect("put");
            for _ in 0..iters {
                assert_eq!(q.get().expect("get").len(), MIB);
            }
            t.elapsed()
        })
    });
    control.put(0).expect("put");
    finish(child);

    let (a, b) = mp::pipe(true).expect("pipe");
    let child = start(ctx().process(send_big, (control.clone(), b)));
    group.bench_function("pipe", |bench| {
        bench.iter_custom(|iters| {
            let t = Instant::now();
            control.put(iters).expect("put");
            for _ in 0..iters {
                assert_eq!(a.recv_bytes(None).expect("recv").len(), MIB);
            }
            t.elapsed()
        })
    });
    control.put(0).expect("put");
    finish(child);

    let (ours, theirs) = UnixStream::pair().expect("socketpair");
    let mut ours = ours;
    let child = start(ctx().process(write_big, (control.clone(), Fd::new(theirs.into()))));
    group.bench_function("socketpair", |bench| {
        let mut buf = vec![0u8; MIB];
        bench.iter_custom(|iters| {
            let t = Instant::now();
            control.put(iters).expect("put");
            for _ in 0..iters {
                ours.read_exact(&mut buf).expect("read");
            }
            t.elapsed()
        })
    });
    control.put(0).expect("put");
    finish(child);

    group.bench_function("memcpy", |bench| {
        let src = vec![7u8; MIB];
        let mut dst = vec![0u8; MIB];
        bench.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    round_trips,
    small_messages,
    one_mib,
    ipc_channel_peer,
    shared_memory_limits
);

fn main() {
    // procspawn re-executes this binary for the ipc-channel peer's child and catches it here.
    procspawn::init();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}

// --- the Rust peer: a raw ipc-channel -----------------------------------------------------------

fn ipc_echo((requests, replies): (IpcReceiver<u64>, IpcSender<u64>)) {
    while let Ok(v) = requests.recv() {
        if v == u64::MAX || replies.send(v + 1).is_err() {
            return;
        }
    }
}

/// Per request `n` on `control`: `n` small messages on `items`, or `n` MiB on `bytes`.
fn ipc_produce((control, items, bytes): (IpcReceiver<u64>, IpcSender<u64>, IpcBytesSender)) {
    let payload = vec![7u8; MIB];
    while let Ok(request) = control.recv() {
        match request {
            0 => return,
            n if n & BYTES_FLAG != 0 => {
                (0..n & !BYTES_FLAG).for_each(|_| bytes.send(&payload).expect("send bytes"))
            }
            n => (0..n).for_each(|i| items.send(i).expect("send")),
        }
    }
}

const BYTES_FLAG: u64 = 1 << 63;

fn ipc_channel_peer(c: &mut Criterion) {
    let mut group = c.benchmark_group("ipc_channel");
    tune(&mut group, 20, 3);
    let (to_child, requests) = ipc::channel::<u64>().expect("channel");
    let (replies_tx, replies) = ipc::channel::<u64>().expect("channel");
    let echo = procspawn::spawn((requests, replies_tx), ipc_echo);
    group.bench_function("rtt", |b| {
        b.iter(|| {
            to_child.send(black_box(7)).expect("send");
            assert_eq!(replies.recv().expect("recv"), 8);
        })
    });
    to_child.send(u64::MAX).expect("send");
    echo.join().expect("join");

    let (control, control_rx) = ipc::channel::<u64>().expect("channel");
    let (items_tx, items): (_, IpcReceiver<u64>) = ipc::channel().expect("channel");
    let (bytes_tx, bytes): (_, IpcBytesReceiver) = ipc::bytes_channel().expect("channel");
    let producer = procspawn::spawn((control_rx, items_tx, bytes_tx), ipc_produce);
    group.bench_function("small_1_to_1", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            control.send(iters).expect("send");
            for _ in 0..iters {
                black_box(items.recv().expect("recv"));
            }
            t.elapsed()
        })
    });
    group.bench_function("one_mib", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            control.send(iters | BYTES_FLAG).expect("send");
            for _ in 0..iters {
                assert_eq!(bytes.recv().expect("recv").len(), MIB);
            }
            t.elapsed()
        })
    });
    control.send(0).expect("send");
    producer.join().expect("join");
    group.finish();
}

// --- the OS limits: shared memory and nothing else ------------------------------------------------

/// Word indices in the block of the spinning baselines (one cache line apart).
const PING: usize = 0;
const PONG: usize = 8;
const HEAD: usize = 16;
const TAIL: usize = 24;
const CONTROL: usize = 32;
const RING: usize = 40;
const RING_SLOTS: u64 = 1024;
const STOP: u64 = u64::MAX;

fn words(block: &RawArray<u64>) -> &[AtomicU64] {
    // SAFETY: the block is mapped, 8-byte aligned and `len` words long for as long as the
    // borrow lives; `AtomicU64` has the layout of `u64`, and every access to the block, in
    // every process, goes through atomics.
    unsafe { std::slice::from_raw_parts(block.as_ptr().cast::<AtomicU64>(), block.len()) }
}

/// Spins until `word` differs from `last`, and returns it.
fn spin_until_changed(word: &AtomicU64, last: u64) -> u64 {
    loop {
        let v = word.load(Ordering::Acquire);
        if v != last {
            return v;
        }
        std::hint::spin_loop();
    }
}

/// Echoes every new value of PING to PONG until STOP: the fastest possible round trip.
fn spin_echo(block: RawArray<u64>) {
    let w = words(&block);
    let mut last = 0;
    loop {
        last = spin_until_changed(&w[PING], last);
        if last == STOP {
            return;
        }
        w[PONG].store(last, Ordering::Release);
    }
}

/// For each `n` written to CONTROL, pushes `n` words through a single-producer ring.
fn ring_produce(block: RawArray<u64>) {
    let w = words(&block);
    let mut head = 0u64;
    loop {
        let n = spin_until_changed(&w[CONTROL], 0);
        w[CONTROL].store(0, Ordering::Relaxed);
        if n == STOP {
            return;
        }
        for i in 0..n {
            while head - w[TAIL].load(Ordering::Acquire) == RING_SLOTS {
                std::hint::spin_loop();
            }
            w[RING + (head % RING_SLOTS) as usize].store(i, Ordering::Relaxed);
            head += 1;
            w[HEAD].store(head, Ordering::Release);
        }
    }
}

/// Writes `n` MiB to a pipe for every `n` on `control`.
fn write_pipe(control: Queue<u64>, pipe: Fd) {
    let mut pipe = std::fs::File::from(pipe.into_inner());
    let payload = vec![7u8; MIB];
    rounds(&control, |n| {
        (0..n).for_each(|_| pipe.write_all(&payload).expect("write"))
    });
}

fn shared_memory_limits(c: &mut Criterion) {
    let mut group = c.benchmark_group("os_limit");
    tune(&mut group, 20, 3);
    let block = RawArray::<u64>::zeroed(RING + RING_SLOTS as usize).expect("block");
    let w = words(&block);

    let child = start(ctx().process(spin_echo, (block.clone(),)));
    let mut sent = 0;
    group.bench_function("spin_rtt", |b| {
        b.iter(|| {
            sent += 1;
            w[PING].store(sent, Ordering::Release);
            while w[PONG].load(Ordering::Acquire) != sent {
                std::hint::spin_loop();
            }
        })
    });
    w[PING].store(STOP, Ordering::Release);
    finish(child);

    let child = start(ctx().process(ring_produce, (block.clone(),)));
    let mut tail = 0u64;
    group.bench_function("ring_1_to_1", |b| {
        b.iter_custom(|iters| {
            let t = Instant::now();
            w[CONTROL].store(iters, Ordering::Release);
            for _ in 0..iters {
                while w[HEAD].load(Ordering::Acquire) == tail {
                    std::hint::spin_loop();
                }
                black_box(w[RING + (tail % RING_SLOTS) as usize].load(Ordering::Relaxed));
                tail += 1;
                w[TAIL].store(tail, Ordering::Release);
            }
            t.elapsed()
        })
    });
    w[CONTROL].store(STOP, Ordering::Release);
    finish(child);

    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: pipe2 just created both descriptors, and nothing else owns them.
    let (reader, writer) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    let control = Queue::new().expect("queue");
    let child = start(ctx().process(write_pipe, (control.clone(), Fd::new(writer))));
    let mut reader = std::fs::File::from(reader);
    group.throughput(Throughput::Bytes(MIB as u64));
    group.bench_function("pipe_one_mib", |b| {
        let mut buf = vec![0u8; MIB];
        b.iter_custom(|iters| {
            let t = Instant::now();
            control.put(iters).expect("put");
            for _ in 0..iters {
                reader.read_exact(&mut buf).expect("read");
            }
            t.elapsed()
        })
    });
    control.put(0).expect("put");
    finish(child);
    group.finish();
}
