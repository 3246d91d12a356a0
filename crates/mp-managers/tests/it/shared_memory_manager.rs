//! `SharedMemoryManager` under every start method (issue #16 item 6): its blocks are the
//! manager's (a child that makes one and exits leaves it there), all unlinked at shutdown or
//! drop, and after the owner's SIGKILL too (the keeper cleans up after the killed server).
//! CPython: `test_shared_memory_SharedMemoryManager_basics`,
//! `test_shared_memory_SharedMemoryManager_reuses_resource_tracker`,
//! `test_shared_memory_SharedMemoryServer_ignores_sigint`.

use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};

use mp_ipc::Connection;
use mp_managers::{ManagerError, Segments, SharedMemoryManager, SmmError};
use mp_shm::{Item, ListError, ShareableList, SharedMemory, ShmError};
use mp_spawn::StartMethod;
use mp_spawn::testing::{adopt_orphans, ctx, park_forever, wait_gone, wait_pidfd};

mp_spawn::test_matrix!(
    sharedmemorymanager_basics,
    a_childs_blocks_are_the_managers,
    blocks_are_unlinked_after_the_owners_sigkill,
    a_killed_server_leaves_nothing_after_shutdown,
    a_killed_servers_blocks_are_unlinked_by_its_tracker,
    bad_input_is_a_typed_error,
    the_server_ignores_sigint,
    shutdown_leaves_nothing_for_the_trackers,
    threads_share_a_manager,
);

fn smm(m: StartMethod) -> SharedMemoryManager {
    SharedMemoryManager::with_context(&ctx(m)).unwrap()
}

fn exists(name: &str) -> bool {
    Path::new("/dev/shm").join(name).exists()
}

fn ints(n: i64) -> Vec<Item> {
    (0..n).map(Item::Int).collect()
}

fn is_not_found(e: ShmError) -> bool {
    matches!(e, ShmError::NotFound(_))
}

/// CPython's `test_shared_memory_SharedMemoryManager_basics`.
fn sharedmemorymanager_basics(m: StartMethod) {
    let smm1 = smm(m);
    let lol: Vec<ShareableList> = (5..10)
        .map(|i| smm1.shareable_list(&ints(i)).unwrap())
        .collect();
    let lom: Vec<SharedMemory> = (32..128)
        .step_by(16)
        .map(|j| smm1.shared_memory(j).unwrap())
        .collect();
    let doppleganger_list0 = ShareableList::attach(lol[0].shm().name()).unwrap();
    assert_eq!(doppleganger_list0.len(), 5);
    let doppleganger_shm0 = SharedMemory::attach(lom[0].name()).unwrap();
    assert!(doppleganger_shm0.size() >= 32);
    let mut names = smm1.names().unwrap();
    names.sort();
    let mut made: Vec<String> = lol
        .iter()
        .map(|l| l.shm().name().to_owned())
        .chain(lom.iter().map(|s| s.name().to_owned()))
        .collect();
    made.sort();
    assert_eq!(names, made);
    let held_name = lom[0].name().to_owned();
    smm1.shutdown().unwrap();
    // No longer there to be attached to again.
    assert!(is_not_found(SharedMemory::attach(&held_name).unwrap_err()));
    assert!(made.iter().all(|n| !exists(n)));
    // Python's "not started" ValueError: here, a manager that is shut down.
    assert!(matches!(
        smm1.shared_memory(9),
        Err(SmmError::Manager(ManagerError::ServerGone))
    ));

    // `with SharedMemoryManager() as smm2:` is a scope here: drop shuts it down.
    let held_name = {
        let smm2 = smm(m);
        let sl = smm2.shareable_list(&[Item::Str("howdy".into())]).unwrap();
        let _shm = smm2.shared_memory(128).unwrap();
        sl.shm().name().to_owned()
    };
    assert!(matches!(
        ShareableList::attach(&held_name),
        Err(ListError::Shm(ShmError::NotFound(_)))
    ));
}

fn make_blocks(segments: Segments, out: Connection) {
    let shm = segments.shared_memory(16).unwrap();
    shm.write_at(0, b"from the child").unwrap();
    let list = segments
        .shareable_list(&[Item::Int(7), Item::Str("seven".into())])
        .unwrap();
    out.send(&(shm.name().to_owned(), list.shm().name().to_owned()))
        .unwrap();
    // The child returns: its views are unmapped, its proxy dropped; the blocks stay.
}

/// The blocks are the manager's, not their maker's (Python: the server tracks them): a child
/// that makes blocks through a handle and exits leaves them to the manager's shutdown.
fn a_childs_blocks_are_the_managers(m: StartMethod) {
    let smm = smm(m);
    let (ours, theirs) = mp_ipc::pipe(false).unwrap();
    let mut child = ctx(m).process(make_blocks, (smm.segments().unwrap(), theirs));
    child.start().unwrap();
    let (shm_name, list_name): (String, String) = ours.recv().unwrap();
    child.join().unwrap();
    let shm = SharedMemory::attach(&shm_name).unwrap();
    let mut buf = [0u8; 14];
    shm.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"from the child");
    let list = ShareableList::attach(&list_name).unwrap();
    assert_eq!(
        list.to_vec().unwrap(),
        [Item::Int(7), Item::Str("seven".into())]
    );
    let mut expected = vec![shm_name.clone(), list_name.clone()];
    expected.sort();
    assert_eq!(smm.names().unwrap(), expected);
    smm.shutdown().unwrap();
    assert!(is_not_found(SharedMemory::attach(&shm_name).unwrap_err()));
    assert!(is_not_found(SharedMemory::attach(&list_name).unwrap_err()));
    // Views mapped before the shutdown stay valid.
    shm.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf, b"from the child");
}

fn own_an_smm(method: String, out: Connection) {
    let smm = SharedMemoryManager::with_context(&mp_spawn::get_context(&method).unwrap()).unwrap();
    let shm = smm.shared_memory(64).unwrap();
    let list = smm.shareable_list(&ints(3)).unwrap();
    out.send(&(
        vec![shm.name().to_owned(), list.shm().name().to_owned()],
        smm.pid().unwrap(),
        smm.keeper_pid(),
    ))
    .unwrap();
    park_forever();
}

/// The owner (the process holding the manager) is SIGKILLed: its server dies with it, and
/// the keeper unlinks every block.
fn blocks_are_unlinked_after_the_owners_sigkill(m: StartMethod) {
    adopt_orphans();
    let (ours, theirs) = mp_ipc::pipe(false).unwrap();
    let mut owner = ctx(m).process(own_an_smm, (m.name().to_owned(), theirs));
    owner.start().unwrap();
    let (names, server, keeper): (Vec<String>, u32, u32) = ours.recv().unwrap();
    assert!(names.iter().all(|n| exists(n)));
    // Opened while the keeper surely lives (the owner parks): it names the keeper.
    let keeper_fd = mp_sys::pidfd::open(keeper).unwrap();
    owner.kill().unwrap();
    owner.join().unwrap_err();
    // Ours since its parent died (and reaped here).
    wait_gone(server);
    // The keeper exits once it has unlinked what the server left; ours since the server died.
    wait_pidfd(keeper_fd.as_fd());
    mp_sys::process::reap_pid(keeper);
    for n in &names {
        assert!(!exists(n), "{n} leaked after the owner's SIGKILL");
    }
}

/// The server alone is killed: shutdown still leaves no block behind (the keeper unlinks
/// them, and shutdown waits for it).
fn a_killed_server_leaves_nothing_after_shutdown(m: StartMethod) {
    adopt_orphans();
    let smm = smm(m);
    let shm = smm.shared_memory(8).unwrap();
    let list = smm.shareable_list(&ints(2)).unwrap();
    let server = smm.pid().unwrap();
    let pidfd = mp_sys::pidfd::open(server).unwrap();
    mp_sys::pidfd::send_signal(pidfd.as_fd(), libc::SIGKILL).unwrap();
    wait_gone(server);
    assert!(matches!(
        smm.shared_memory(8),
        Err(SmmError::Manager(ManagerError::ServerGone))
    ));
    smm.shutdown().unwrap();
    assert!(!exists(shm.name()));
    assert!(!exists(list.shm().name()));
    // Ended (shutdown waited for it), and ours since the server died.
    mp_sys::process::reap_pid(smm.keeper_pid());
}

/// The server alone is killed and nobody shuts the manager down: its keeper, which is mp-shm's
/// resource tracker program (one tracker for the tree and for managers, issue #25), unlinks
/// every block by itself and exits.
fn a_killed_servers_blocks_are_unlinked_by_its_tracker(m: StartMethod) {
    adopt_orphans();
    let smm = smm(m);
    let names = [
        smm.shared_memory(8).unwrap().name().to_owned(),
        smm.shareable_list(&ints(2))
            .unwrap()
            .shm()
            .name()
            .to_owned(),
    ];
    assert!(names.iter().all(|n| exists(n)));
    let keeper = smm.keeper_pid();
    let argv0 = std::fs::read(format!("/proc/{keeper}/cmdline")).unwrap();
    assert!(
        argv0.starts_with(b"mp-resource-tracker\0"),
        "the keeper is not the resource tracker: {:?}",
        String::from_utf8_lossy(&argv0)
    );
    // Opened while the keeper surely lives (the server holds its channel): it names the keeper.
    let keeper_fd = mp_sys::pidfd::open(keeper).unwrap();
    let server = smm.pid().unwrap();
    let pidfd = mp_sys::pidfd::open(server).unwrap();
    mp_sys::pidfd::send_signal(pidfd.as_fd(), libc::SIGKILL).unwrap();
    wait_gone(server);
    // No shutdown yet: the tracker ends on its own once it has unlinked what the server left.
    wait_pidfd(keeper_fd.as_fd());
    for n in &names {
        assert!(!exists(n), "{n} leaked after the server's SIGKILL");
    }
    smm.shutdown().unwrap();
    // Ours since the server died.
    mp_sys::process::reap_pid(keeper);
}

fn bad_input_is_a_typed_error(m: StartMethod) {
    let smm = smm(m);
    assert!(matches!(
        smm.shared_memory(0),
        Err(SmmError::Shm(ShmError::ZeroSize))
    ));
    // Too big for the OS: refused in the server, a typed error here, and nothing left.
    assert!(matches!(
        smm.shared_memory(usize::MAX),
        Err(SmmError::Shm(ShmError::Os(_)))
    ));
    assert_eq!(smm.names().unwrap(), Vec::<String>::new());
    // An empty list is a list.
    let empty = smm.shareable_list(&[]).unwrap();
    assert!(empty.is_empty());
    smm.shutdown().unwrap();
    smm.shutdown().unwrap();
    assert!(matches!(
        smm.shareable_list(&ints(1)),
        Err(SmmError::Manager(ManagerError::ServerGone))
    ));
    assert!(!exists(empty.shm().name()));
}

/// CPython's `test_shared_memory_SharedMemoryServer_ignores_sigint` (bpo-36368).
fn the_server_ignores_sigint(m: StartMethod) {
    let smm = smm(m);
    let sl = smm.shareable_list(&ints(10)).unwrap();
    let pidfd = mp_sys::pidfd::open(smm.pid().unwrap()).unwrap();
    mp_sys::pidfd::send_signal(pidfd.as_fd(), libc::SIGINT).unwrap();
    let keeper = mp_sys::pidfd::open(smm.keeper_pid()).unwrap();
    mp_sys::pidfd::send_signal(keeper.as_fd(), libc::SIGINT).unwrap();
    let sl2 = smm.shareable_list(&ints(10)).unwrap();
    assert_eq!(sl2.to_vec().unwrap(), ints(10));
    smm.shutdown().unwrap();
    assert!(!exists(sl.shm().name()) && !exists(sl2.shm().name()));
}

/// The body of `shutdown_leaves_nothing_for_the_trackers`, run as a fresh program.
#[test]
#[ignore = "run by shutdown_leaves_nothing_for_the_trackers in a fresh process"]
fn fresh_program() {
    let Ok(method) = std::env::var("MP_SMM_METHOD") else {
        return;
    };
    // libtest runs this on a thread of its own: the warning about forking with threads is
    // about the harness, not what this test looks at.
    mp_spawn::set_fork_warning(false);
    let smm = SharedMemoryManager::with_context(&mp_spawn::get_context(&method).unwrap()).unwrap();
    let sl = smm.shareable_list(&ints(10)).unwrap();
    println!("NAME {}", sl.shm().name());
    smm.shutdown().unwrap();
}

/// CPython's `test_shared_memory_SharedMemoryManager_reuses_resource_tracker` (bpo-36867): a
/// fresh program makes a manager and a list and shuts it down; nothing complains on stderr
/// (neither the resource tracker nor the keeper found anything left to unlink) and the block
/// is gone. stderr reaches end-of-file only when every process of that program's tree (its
/// tracker and the keeper included) has exited.
fn shutdown_leaves_nothing_for_the_trackers(m: StartMethod) {
    let mut program = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "shared_memory_manager::fresh_program",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("MP_SMM_METHOD", m.name())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = program.stdout.take().unwrap();
    let mut stderr = program.stderr.take().unwrap();
    // Read stdout on a thread: a program blocked on a full stdout pipe would never close stderr.
    let out = std::thread::spawn(move || {
        let mut out = String::new();
        stdout.read_to_string(&mut out).unwrap();
        out
    });
    let mut err = String::new();
    stderr.read_to_string(&mut err).unwrap();
    let out = out.join().unwrap();
    assert!(program.wait().unwrap().success(), "{out}\n{err}");
    assert!(err.is_empty(), "stderr: {err}");
    let name = out
        .split_once("NAME ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .expect("the program printed no name");
    assert!(!exists(name), "{name} left behind");
}

/// A manager is shared by the threads of its owner.
#[test]
fn the_manager_and_its_handle_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<SharedMemoryManager>();
    send_sync::<Segments>();
}

/// Blocks made from several threads at once: each has its own name, all are unlinked.
fn threads_share_a_manager(m: StartMethod) {
    let smm = smm(m);
    let names: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let smm = &smm;
                s.spawn(move || {
                    (0..5)
                        .map(|i| {
                            let shm = smm.shared_memory(8 + i).unwrap();
                            shm.write_at(0, &[t as u8]).unwrap();
                            shm.name().to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 20);
    assert_eq!(smm.names().unwrap(), sorted);
    drop(smm);
    assert!(names.iter().all(|n| !exists(n)));
}
