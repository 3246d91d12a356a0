//! Pipe and Queue: round trips, small-message throughput and 1 MiB throughput between two
//! processes, beside the OS baselines measured in the same run (a raw socketpair ping-pong and
//! raw 1 MiB socket writes).

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mp::spawn::reduction::Fd;
use mp::{Connection, Process, Queue};

mod common;
use common::{ctx, start};

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
    group
        .sample_size(30)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));

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
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(1));
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
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(4))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Bytes(MIB as u64));

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

criterion_group!(benches, round_trips, small_messages, one_mib);
criterion_main!(benches);
