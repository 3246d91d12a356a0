//! Process names under all three start methods: the default and a chosen one, a child's
//! child's, and the name `ps`, `top` and `pgrep` show.

use mp_spawn::{StartMethod, get_context};

use super::ctx;

matrix!(names, nested_child_names, children_show_their_names_in_ps);

fn my_name() -> String {
    mp_spawn::current_process().name
}

fn names(m: StartMethod) {
    let mut p = ctx(m).process(my_name, ());
    let default = p.name().to_string();
    assert!(default.starts_with("Process-"), "{default}");
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), default);
    let mut q = ctx(m).process(my_name, ()).with_name("worker");
    q.start().unwrap();
    assert_eq!(q.join().unwrap(), "worker");
}

/// What `ps -o comm` shows for this process.
fn my_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap_or_default()
        .trim_end()
        .to_string()
}

/// `ps`, `top` and `pgrep` show a child by its name (issue #27 item 8), cut to the kernel's 15
/// bytes; a forkserver is `mp-forkserver`.
fn children_show_their_names_in_ps(m: StartMethod) {
    let mut p = ctx(m).process(my_comm, ()).with_name("ingest-7");
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), "ingest-7");
    let mut q = ctx(m)
        .process(my_comm, ())
        .with_name("ForkServerPoolWorker-12");
    q.start().unwrap();
    assert_eq!(q.join().unwrap(), "ForkServerPoolW");
    if m == StartMethod::Forkserver {
        let server = mp_spawn::forkserver_pid().expect("a forkserver runs");
        let comm = std::fs::read_to_string(format!("/proc/{server}/comm")).unwrap();
        assert_eq!(comm.trim_end(), "mp-forkserver");
    }
}

fn child_name_of_child(method: String) -> (String, String) {
    let mut p = get_context(&method).unwrap().process(my_name, ());
    p.start().unwrap();
    (mp_spawn::current_process().name, p.join().unwrap())
}

fn nested_child_names(m: StartMethod) {
    let mut p = ctx(m).process(child_name_of_child, (m.name().to_string(),));
    p.start().unwrap();
    let (child, grandchild) = p.join().unwrap();
    assert_eq!(grandchild, format!("{child}:1"));
}
