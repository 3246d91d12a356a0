//! What a target may be (issue #15): fn items and non-capturing closures (zero-sized), fn
//! pointers (found by offset in a spawned child), and, under fork only, a closure that
//! captures one pointer-sized value (the build-time check cannot tell it from a fn pointer).

use mp_spawn::testing::ctx;
use mp_spawn::{ProcessError, StartMethod};

mp_spawn::test_matrix!(
    fn_pointers_run_under_every_method,
    a_fn_pointer_with_several_arguments_returns_its_value,
    a_pointer_sized_capture_needs_fork,
    arguments_reach_the_child_serialised_under_every_method,
);

fn double(x: u64) -> u64 {
    2 * x
}

fn triple(x: u64) -> u64 {
    3 * x
}

fn join_text(a: String, b: String, times: usize) -> String {
    format!("{a}{b}").repeat(times)
}

/// A choice made at run time, so the compiler cannot turn the pointer back into an item.
fn chosen(first: bool) -> fn(u64) -> u64 {
    if std::hint::black_box(first) {
        double
    } else {
        triple
    }
}

fn fn_pointers_run_under_every_method(m: StartMethod) {
    for (first, want) in [(true, 14), (false, 21)] {
        let mut p = ctx(m).process(chosen(first), (7,));
        p.start().unwrap();
        assert_eq!(p.join().unwrap(), want, "{m}");
    }
}

fn a_fn_pointer_with_several_arguments_returns_its_value(m: StartMethod) {
    let f: fn(String, String, usize) -> String = std::hint::black_box(join_text);
    let mut p = ctx(m).process(f, ("ab".to_owned(), "c".to_owned(), 2));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), "abcabc");
}

fn a_pointer_sized_capture_needs_fork(m: StartMethod) {
    let base = std::hint::black_box(40u64);
    let mut p = ctx(m).process(move |x: u64| base + x, (2,));
    match m {
        StartMethod::Fork => {
            p.start().unwrap();
            assert_eq!(p.join().unwrap(), 42);
        }
        _ => assert!(
            matches!(p.start(), Err(ProcessError::ClosureNeedsFork { method }) if method == m),
            "{m}"
        ),
    }
}

/// A value with a field that does not travel (`#[serde(skip)]`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Marked {
    sent: u32,
    #[serde(skip)]
    local: u32,
}

fn read_marked(m: Marked) -> (u32, u32) {
    (m.sent, m.local)
}

/// Every start method hands the arguments over serialised, fork included (issue #16: a
/// manager proxy takes a reference for the child when it is serialised): a field that does not
/// travel arrives as its default under fork too.
fn arguments_reach_the_child_serialised_under_every_method(m: StartMethod) {
    let mut p = ctx(m).process(read_marked, (Marked { sent: 5, local: 9 },));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), (5, 0), "{m}");
}
