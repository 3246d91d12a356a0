//! A cgroup of its own for a child under a memory cap: whether this process can make one
//! ([`cgroup_memory`]), and the child's ([`ChildCgroup`]): made and configured by the parent,
//! joined by the child before its target runs, read and removed once the child is reaped.
//!
//! Where the children's cgroups go: under this process's own cgroup if it enables the memory
//! controller for its children (`cgroup.subtree_control`); otherwise beside it, under its
//! parent, if that one enables it (`memory` is then in the own cgroup's
//! `cgroup.controllers`). The second is the usual case: a cgroup with processes in it (this
//! one) may not enable controllers for children, except the root (cgroup v2's "no internal
//! processes" rule), so a delegated cgroup keeps its processes in a leaf and its controllers
//! for the leaves beside it. Either way this process must be allowed to make a directory
//! there and move a process into it (it must own the delegation).

use std::ffi::OsStr;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use mp_sys::cgroup::Cgroup;
use mp_sys::fork::ForkOnce;

/// Whether a child under a memory cap gets a cgroup of its own (`memory.max`): `Ok` with the
/// cgroup under which the children's cgroups are made, or `Err` saying why not (no cgroup v2;
/// the memory controller not on it, as on a cgroup v1 or hybrid system, or not delegated to
/// this process; no right to make a cgroup there). Found once per process, by reading
/// `/proc/self/mountinfo`, `/proc/self/cgroup` and the cgroup's `cgroup.controllers` and
/// `cgroup.subtree_control`, and by making (and removing) a probe cgroup. Without one, the
/// memory cap is `RLIMIT_DATA` alone.
///
/// ```
/// match mp_spawn::limits::cgroup_memory() {
///     Ok(base) => println!("children's cgroups go under {}", base.display()),
///     Err(why) => println!("memory caps are RLIMIT_DATA only: {why}"),
/// }
/// ```
pub fn cgroup_memory() -> Result<PathBuf, String> {
    base()
        .map(|base| base.path().to_owned())
        .map_err(Clone::clone)
}

fn base() -> Result<&'static Cgroup, &'static String> {
    // A `ForkOnce`: a forked child that starts children of its own asks too.
    static BASE: ForkOnce<Result<Cgroup, String>> = ForkOnce::new();
    BASE.get_or_init(detect).as_ref()
}

fn detect() -> Result<Cgroup, String> {
    let own = Cgroup::own().map_err(|e| format!("no cgroup v2 for this process: {e}"))?;
    let read = |what: &str, words: io::Result<Vec<String>>| {
        words.map_err(|e| format!("cannot read {}/{what}: {e}", own.path().display()))
    };
    let controllers = read("cgroup.controllers", own.controllers())?;
    let subtree = read("cgroup.subtree_control", own.subtree_control())?;
    let base = match choose_base(own.path(), &controllers, &subtree, own.parent().is_some())? {
        Base::Own => own.clone(),
        Base::Parent => own.parent().ok_or("no cgroup above the root")?,
    };
    probe(&base)?;
    Ok(base)
}

/// Where the children's cgroups go, relative to this process's cgroup.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Base {
    /// Under it: it enables `memory` for its children.
    Own,
    /// Beside it, under its parent, which enables `memory` for its children.
    Parent,
}

/// The choice of [`Base`], from this process's cgroup (`own`): its `cgroup.controllers`, its
/// `cgroup.subtree_control`, and whether it has a parent (it is not the root).
pub(crate) fn choose_base(
    own: &Path,
    controllers: &[String],
    subtree: &[String],
    has_parent: bool,
) -> Result<Base, String> {
    let memory = |words: &[String]| words.iter().any(|w| w == "memory");
    if memory(subtree) {
        return Ok(Base::Own);
    }
    if !memory(controllers) {
        return Err(format!(
            "the memory controller is not available to cgroup {} (its cgroup.controllers: \
             \"{}\"): memory is on cgroup v1 (a hybrid setup), or not delegated to this cgroup",
            own.display(),
            controllers.join(" ")
        ));
    }
    if !has_parent {
        return Err(format!(
            "cgroup {} (the root) does not enable the memory controller for its children \
             (cgroup.subtree_control)",
            own.display()
        ));
    }
    Ok(Base::Parent)
}

/// Checks that this process may make a cgroup under `base` that has `memory.max`, and move
/// processes into it.
fn probe(base: &Cgroup) -> Result<(), String> {
    let at = base.path().display();
    let name = format!("mp-probe-{}", mp_sys::process::getpid());
    let probe = base
        .create_child(&name)
        .map_err(|e| format!("cannot make a cgroup under {at}: {e}"))?;
    let has_max = probe.has("memory.max");
    let _ = probe.remove();
    if !has_max {
        return Err(format!("a cgroup made under {at} has no memory.max"));
    }
    if !base.writable("cgroup.procs") {
        return Err(format!(
            "cannot move processes within {at} (its cgroup.procs is not writable)"
        ));
    }
    Ok(())
}

/// `cgroup.procs` of the cgroup at `dir` (as the bootstrap message carries it), for writing.
pub(crate) fn open_procs(dir: &[u8]) -> io::Result<OwnedFd> {
    mp_sys::cgroup::open_procs(Path::new(OsStr::from_bytes(dir)))
}

/// The cgroup of one child, owned by its parent: made before the child starts, read and
/// removed when it is reaped ([`finish`](ChildCgroup::finish)), or when dropped.
#[derive(Debug)]
pub(crate) struct ChildCgroup {
    cgroup: Cgroup,
    /// The process that made it: a forked copy of this value is not the owner.
    owner: u32,
    /// `RUNNING`, then `ENDED` or `OOM_KILLED`.
    state: AtomicU8,
}

const RUNNING: u8 = 0;
const ENDED: u8 = 1;
const OOM_KILLED: u8 = 2;

impl ChildCgroup {
    /// A new cgroup for a child capped at `bytes`, if this process can make one.
    pub(crate) fn make(bytes: u64) -> io::Result<Option<ChildCgroup>> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let Ok(base) = base() else {
            return Ok(None);
        };
        let owner = mp_sys::process::getpid();
        let name = format!("mp-{owner}-{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let child = ChildCgroup {
            cgroup: base.create_child(&name)?,
            owner,
            state: AtomicU8::new(RUNNING),
        };
        // On an error, `child` is dropped, which removes the directory.
        child.cgroup.set("memory.max", &bytes.to_string())?;
        // Swap would let the child grow past the cap, only slower.
        if child.cgroup.has("memory.swap.max") {
            child.cgroup.set("memory.swap.max", "0")?;
        }
        Ok(Some(child))
    }

    /// Its `cgroup.procs`, open for writing.
    pub(crate) fn procs(&self) -> io::Result<OwnedFd> {
        self.cgroup.procs()
    }

    /// Its directory, as the bootstrap message carries it.
    pub(crate) fn wire_path(&self) -> Vec<u8> {
        self.cgroup.path().as_os_str().as_bytes().to_vec()
    }

    /// Once the child is reaped: notes whether the kernel OOM-killed a process in it, and
    /// removes it. A descendant of the child still in it keeps it (`rmdir` fails): dropping
    /// this value tries again.
    pub(crate) fn finish(&self) {
        if self.state.load(Ordering::Acquire) != RUNNING {
            return;
        }
        let killed = self
            .cgroup
            .counter("memory.events", "oom_kill")
            .ok()
            .flatten()
            .is_some_and(|n| n > 0);
        let state = if killed { OOM_KILLED } else { ENDED };
        self.state.store(state, Ordering::Release);
        let _ = self.cgroup.remove();
    }

    /// Whether [`finish`](ChildCgroup::finish) found an OOM kill.
    pub(crate) fn oom_killed(&self) -> bool {
        self.state.load(Ordering::Acquire) == OOM_KILLED
    }
}

impl Drop for ChildCgroup {
    fn drop(&mut self) {
        if self.owner == mp_sys::process::getpid() {
            let _ = self.cgroup.remove();
        }
    }
}
