//! Children's `tracing` events reach the parent's subscriber with their name and pid, under
//! every start method, from pool workers and from children of children; and the faults: a
//! child killed while logging, a huge event, malformed messages.

mod common;

use std::os::fd::AsFd;

use common::{setup, wait_for, with_token};
use mp_spawn::testing::ctx;
use mp_spawn::{StartMethod, test_matrix};
use tracing::Level;

fn log_three(token: String) -> u32 {
    tracing::info!(target: "my_app", n = 1, "{token} one");
    tracing::warn!("{token} two");
    tracing::error!(answer = 42, text = "x y", "{token} three");
    std::process::id()
}

/// Each event arrives once, in order, at its level, with the child's name and pid, the
/// original target and the fields.
fn child_events_reach_the_parent(m: StartMethod) {
    setup();
    let token = format!("events-{}:", m.name());
    let mut p = ctx(m)
        .process(log_three, (token.clone(),))
        .with_name("Logger-1");
    p.start().unwrap();
    let pid = p.join().unwrap();
    mp_log::flush();
    let got = with_token(&token);
    assert_eq!(got.len(), 3, "{got:#?}");
    let messages: Vec<&str> = got.iter().map(|g| g.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            format!("{token} one"),
            format!("{token} two"),
            format!("{token} three")
        ]
    );
    for g in &got {
        assert_eq!(g.process_name, "Logger-1");
        assert_eq!(g.pid, u64::from(pid));
    }
    assert_eq!(got[0].target, "my_app");
    assert_eq!(got[0].level, Some(Level::INFO));
    assert_eq!(got[0].fields, "n=1");
    assert_eq!(got[1].target, module_path!());
    assert_eq!(got[1].level, Some(Level::WARN));
    assert_eq!(got[2].level, Some(Level::ERROR));
    assert_eq!(got[2].fields, "answer=42 text=\"x y\"");
}

fn log_task(token: String, x: u64) -> u64 {
    tracing::info!(x, "{token} task {x}");
    x * x
}

/// Pool workers' events arrive too, with the workers' names.
fn pool_workers_events(m: StartMethod) {
    setup();
    let token = format!("pool-{}:", m.name());
    let pool = mp_pool::Pool::builder()
        .processes(2)
        .context(ctx(m))
        .build()
        .unwrap();
    let out = pool
        .starmap(log_task, (0..20u64).map(|x| (token.clone(), x)))
        .unwrap();
    assert_eq!(out, (0..20u64).map(|x| x * x).collect::<Vec<_>>());
    let got = wait_for(&token, 20);
    assert_eq!(got.len(), 20);
    let mut xs: Vec<u64> = got
        .iter()
        .map(|g| g.message.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    xs.sort();
    assert_eq!(xs, (0..20).collect::<Vec<_>>());
    for g in &got {
        assert!(g.process_name.contains("PoolWorker-"), "{g:?}");
        assert_ne!(g.pid, u64::from(std::process::id()));
    }
    pool.close();
    pool.join().unwrap();
}

fn grandchild(token: String) -> u32 {
    tracing::info!("{token} from below");
    std::process::id()
}

fn middle(token: String, method: String) -> u32 {
    let mut p = mp_spawn::get_context(method.as_str())
        .unwrap()
        .process(grandchild, (token,));
    p.start().unwrap();
    p.join().unwrap()
}

/// A child's child forwards to the process that listens, with its own name.
fn grandchildren_events(m: StartMethod) {
    setup();
    let token = format!("grandchild-{}:", m.name());
    let mut p = ctx(m).process(middle, (token.clone(), m.name().to_owned()));
    p.start().unwrap();
    let pid = p.join().unwrap();
    mp_log::flush();
    let got = with_token(&token);
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].pid, u64::from(pid));
    assert!(got[0].process_name.starts_with("Process-"), "{:?}", got[0]);
    assert!(got[0].process_name.contains(':'), "{:?}", got[0]);
}

fn huge(token: String) {
    let big = "é".repeat(1 << 20);
    tracing::info!(blob = %big, "{token} {big}");
    tracing::info!("{token} after");
}

/// A 2 MiB event arrives capped (message 8 KiB, fields 4 KiB, saying how much was cut), and
/// the next event arrives as usual.
fn huge_event_is_capped(m: StartMethod) {
    setup();
    let token = format!("huge-{}:", m.name());
    let mut p = ctx(m).process(huge, (token.clone(),));
    p.start().unwrap();
    p.join().unwrap();
    mp_log::flush();
    let got = with_token(&token);
    assert_eq!(got.len(), 2);
    let first = &got[0];
    assert!(
        first.message.len() <= 8 * 1024 + 32,
        "{}",
        first.message.len()
    );
    assert!(
        first.message.ends_with(" bytes cut]"),
        "{}",
        &first.message[8000..]
    );
    assert!(first.fields.len() <= 4 * 1024 + 32);
    assert!(first.fields.starts_with("blob=é"));
    assert_eq!(got[1].message, format!("{token} after"));
}

fn log_forever(token: String, ready: mp_spawn::reduction::Fd) {
    for i in 0u64.. {
        tracing::info!(i, "{token} {i} {}", "x".repeat(1000));
        if i == 10 {
            let _ = mp_sys::fd::write_all(ready.as_fd(), b"!");
        }
    }
}

fn log_numbered(token: String, n: u64) {
    for i in 0..n {
        tracing::info!("{token} {i}");
    }
}

/// A child SIGKILLed while it logs loses at most its last event: every event that arrived is
/// whole and in order, and another child's events all arrive afterwards.
fn killed_child_does_not_break_the_stream(m: StartMethod) {
    setup();
    let token = format!("killed-{}:", m.name());
    let (r, w) = mp_sys::fd::pipe().unwrap();
    let mut p = ctx(m).process(log_forever, (token.clone(), w.into()));
    p.start().unwrap();
    assert!(
        mp_sys::poll::readable(&[r.as_fd()], Some(std::time::Duration::from_secs(60))).unwrap()[0]
    );
    p.kill().unwrap();
    let _ = p.join();
    let seen = wait_for(&token, 10);
    for (i, g) in seen.iter().enumerate() {
        let n: usize = g.message.split(' ').nth(1).unwrap().parse().unwrap();
        assert_eq!(n, i, "out of order or torn: {:?}", &g.message[..40]);
        assert_eq!(
            g.message.len(),
            token.len() + 1 + i.to_string().len() + 1 + 1000
        );
    }
    let after = format!("after-{token}");
    let mut q = ctx(m).process(log_numbered, (after.clone(), 100));
    q.start().unwrap();
    q.join().unwrap();
    mp_log::flush();
    let got = with_token(&after);
    let expected: Vec<String> = (0..100).map(|i| format!("{after} {i}")).collect();
    assert_eq!(
        got.iter().map(|g| g.message.clone()).collect::<Vec<_>>(),
        expected
    );
}

fn garbage_then_log(token: String) {
    // Spawn and forkserver children hold the socket under mp-log's key; a fork child has no
    // inherited descriptor (it has its parent's state), so it sends only the real event.
    if let Some(sock) = mp_spawn::resources::inherited("mp-log/events") {
        let _ = mp_sys::socket::send_all(sock, b"\x00\xff\xff\xff\xff\xff garbage");
        let _ = mp_sys::socket::send_all(sock, &[0u8; 20_000]);
        let _ = mp_sys::socket::send_all(sock, &[0u8, 9]);
        // An empty message reads as 0 bytes, like end-of-file.
        mp_sys::socket::send_now(sock, b"");
    }
    tracing::info!("{token} fine");
}

/// Messages that are not events (garbage, too long, a bad level) are dropped, and the next
/// event arrives.
fn malformed_messages_are_dropped(m: StartMethod) {
    setup();
    let token = format!("garbage-{}:", m.name());
    let mut p = ctx(m).process(garbage_then_log, (token.clone(),));
    p.start().unwrap();
    p.join().unwrap();
    mp_log::flush();
    let got = with_token(&token);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].message, format!("{token} fine"));
}

fn parent_logs_too(m: StartMethod) {
    setup();
    // The parent's own events go to its subscriber directly, beside its children's.
    let token = format!("parent-{}:", m.name());
    let mut p = ctx(m).process(log_numbered, (token.clone(), 50));
    p.start().unwrap();
    for i in 0..50 {
        tracing::info!(target: "parent", "{token} parent {i}");
    }
    p.join().unwrap();
    mp_log::flush();
    assert_eq!(with_token(&token).len(), 50);
    let own = common::own_with_token(&token);
    assert_eq!(own.len(), 50);
    assert!(own.iter().all(|g| g.target == "parent"));
}

fn log_in_spans(token: String) {
    tracing::info!("{token} outside");
    tracing::info_span!("outer", k = 1)
        .in_scope(|| tracing::debug_span!("inner").in_scope(|| tracing::info!("{token} inside")));
}

/// An event in spans carries their names, outermost first.
fn events_carry_their_spans(m: StartMethod) {
    setup();
    let token = format!("spans-{}:", m.name());
    let mut p = ctx(m).process(log_in_spans, (token.clone(),));
    p.start().unwrap();
    p.join().unwrap();
    mp_log::flush();
    let got = with_token(&token);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].spans, "");
    assert_eq!(got[1].spans, "outer:inner");
}

fn log_from_a_thread(token: String) {
    std::thread::spawn(move || tracing::info!("{token} from a thread"))
        .join()
        .unwrap();
}

/// A thread that a spawn or forkserver child starts forwards too (the forwarder is that
/// child's global subscriber). A fork child keeps its parent's global subscriber (here the
/// test's collector, copied), which its other threads log into: documented, not forwarded.
fn threads_of_a_child(m: StartMethod) {
    setup();
    let token = format!("thread-{}:", m.name());
    let mut p = ctx(m).process(log_from_a_thread, (token.clone(),));
    p.start().unwrap();
    p.join().unwrap();
    mp_log::flush();
    let expected = usize::from(m != StartMethod::Fork);
    assert_eq!(with_token(&token).len(), expected);
}

fn log_for_filters(token: String) {
    tracing::info!(target: "filter_myapp", n = 1, ok = true, "{token} info");
    tracing::warn!(target: "filter_myapp", text = "x y", "{token} warn");
    tracing::debug!(target: "filter_myapp", "{token} debug");
    tracing::info!(target: "filter_other", "{token} other");
}

/// A child's event keeps its target, level and fields in the parent, so the parent's filters
/// treat it as its own: `filter_myapp=info` (a per-layer `EnvFilter`) passes the child's
/// `filter_myapp` events at INFO and WARN and drops its DEBUG one and its `filter_other` one;
/// `filter_myapp=warn` passes the WARN one only.
fn parent_filters_see_the_childs_target(m: StartMethod) {
    setup();
    let token = format!("filters-{}:", m.name());
    let mut p = ctx(m).process(log_for_filters, (token.clone(),));
    p.start().unwrap();
    p.join().unwrap();
    mp_log::flush();
    let [info, warn] = common::FILTERS;
    assert_eq!(
        common::filtered(info, &token),
        [format!("{token} info"), format!("{token} warn")]
    );
    assert_eq!(common::filtered(warn, &token), [format!("{token} warn")]);
    // The unfiltered layer sees them all, as they were.
    let got = with_token(&token);
    let seen: Vec<(&str, Level, &str)> = got
        .iter()
        .map(|g| (g.target.as_str(), g.level.unwrap(), g.fields.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("filter_myapp", Level::INFO, "n=1 ok=true"),
            ("filter_myapp", Level::WARN, "text=\"x y\""),
            ("filter_myapp", Level::DEBUG, ""),
            ("filter_other", Level::INFO, ""),
        ]
    );
}

test_matrix!(
    parent_filters_see_the_childs_target,
    events_carry_their_spans,
    threads_of_a_child,
    child_events_reach_the_parent,
    pool_workers_events,
    grandchildren_events,
    huge_event_is_capped,
    killed_child_does_not_break_the_stream,
    malformed_messages_are_dropped,
    parent_logs_too,
);
