//! Control groups, version 2: this process's cgroup (found through `/proc/self/mountinfo` and
//! `/proc/self/cgroup`), and the directory operations a per-child cgroup needs (make one, set
//! its interface files, move a process into it, read its event counters, remove it).
//!
//! A cgroup is a directory of the cgroup2 mount; everything is a plain file operation, so no
//! `unsafe` and no libc here. Which cgroup mp makes, and when, is mp-spawn's policy.

use std::ffi::OsStr;
use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Access, Mode, OFlags};

/// A cgroup of the v2 hierarchy: a directory under the cgroup2 mount.
///
/// ```
/// match mp_sys::cgroup::Cgroup::own() {
///     Ok(own) => println!("this process is in {}", own.path().display()),
///     Err(e) => println!("no cgroup v2 here: {e}"),
/// }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    path: PathBuf,
    /// The cgroup2 mount point: the top this one's `parent` does not go above.
    mount: PathBuf,
}

impl Cgroup {
    /// The calling process's cgroup: its `0::` line of `/proc/self/cgroup`, under the cgroup2
    /// mount of `/proc/self/mountinfo` that shows it. `NotFound` when there is no cgroup2
    /// mount, no `0::` line (cgroup v1 only), or the cgroup lies outside every cgroup2 mount
    /// this process sees.
    ///
    /// ```
    /// if let Ok(own) = mp_sys::cgroup::Cgroup::own() {
    ///     assert!(own.path().is_dir());
    /// }
    /// ```
    pub fn own() -> io::Result<Cgroup> {
        let cgroups = std::fs::read("/proc/self/cgroup")?;
        let own = unified_path(&cgroups)
            .ok_or_else(|| not_found("/proc/self/cgroup has no cgroup v2 line (0::)"))?;
        let mountinfo = std::fs::read("/proc/self/mountinfo")?;
        locate(&mountinfo, &own).ok_or_else(|| {
            not_found("no cgroup2 mount in /proc/self/mountinfo shows this process's cgroup")
        })
    }

    /// Its directory.
    ///
    /// ```
    /// if let Ok(own) = mp_sys::cgroup::Cgroup::own() {
    ///     assert!(own.path().join("cgroup.procs").exists());
    /// }
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The cgroup above, `None` at the top of the mount.
    ///
    /// ```
    /// if let Ok(own) = mp_sys::cgroup::Cgroup::own() {
    ///     if let Some(parent) = own.parent() {
    ///         assert!(own.path().starts_with(parent.path()));
    ///     }
    /// }
    /// ```
    pub fn parent(&self) -> Option<Cgroup> {
        if self.path == self.mount {
            return None;
        }
        Some(Cgroup {
            path: self.path.parent()?.to_owned(),
            mount: self.mount.clone(),
        })
    }

    /// The controllers this cgroup may use (`cgroup.controllers`): those its parent enables
    /// for its children.
    ///
    /// ```
    /// if let Ok(own) = mp_sys::cgroup::Cgroup::own() {
    ///     let memory = own.controllers()?.iter().any(|c| c == "memory");
    ///     println!("memory controller: {memory}");
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn controllers(&self) -> io::Result<Vec<String>> {
        self.words("cgroup.controllers")
    }

    /// The controllers this cgroup enables for its children (`cgroup.subtree_control`).
    ///
    /// ```
    /// if let Ok(own) = mp_sys::cgroup::Cgroup::own() {
    ///     let enabled = own.subtree_control()?;
    ///     let available = own.controllers()?;
    ///     assert!(enabled.iter().all(|c| available.contains(c)));
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn subtree_control(&self) -> io::Result<Vec<String>> {
        self.words("cgroup.subtree_control")
    }

    fn words(&self, file: &str) -> io::Result<Vec<String>> {
        let text = std::fs::read_to_string(self.path.join(file))?;
        Ok(text.split_whitespace().map(str::to_owned).collect())
    }

    /// Makes the child cgroup `name` (`mkdir`; a name with a `/` is `InvalidInput`).
    ///
    /// ```no_run
    /// let own = mp_sys::cgroup::Cgroup::own()?;
    /// let child = own.create_child("worker-1")?;
    /// child.set("memory.max", "67108864")?;
    /// child.remove()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create_child(&self, name: &str) -> io::Result<Cgroup> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a cgroup name"));
        }
        let path = self.path.join(name);
        rustix::fs::mkdir(&path, Mode::from_raw_mode(0o755))?;
        Ok(Cgroup {
            path,
            mount: self.mount.clone(),
        })
    }

    /// Removes this cgroup (`rmdir`): `ResourceBusy` while a process or a child cgroup is in it.
    ///
    /// ```
    /// if let Ok(own) = mp_sys::cgroup::Cgroup::own() {
    ///     assert!(own.remove().is_err()); // this process is in it
    /// }
    /// ```
    pub fn remove(&self) -> io::Result<()> {
        Ok(rustix::fs::rmdir(&self.path)?)
    }

    /// Whether the interface file `file` exists (`memory.swap.max` does only with swap
    /// accounting).
    ///
    /// ```
    /// if let Ok(own) = mp_sys::cgroup::Cgroup::own() {
    ///     assert!(own.has("cgroup.procs"));
    ///     assert!(!own.has("no.such.file"));
    /// }
    /// ```
    pub fn has(&self, file: &str) -> bool {
        self.path.join(file).exists()
    }

    /// Whether this process may write the interface file `file` (`access(W_OK)`, by the real
    /// user id).
    ///
    /// ```
    /// if let Ok(own) = mp_sys::cgroup::Cgroup::own() {
    ///     assert!(!own.writable("no.such.file"));
    ///     println!("may move processes here: {}", own.writable("cgroup.procs"));
    /// }
    /// ```
    pub fn writable(&self, file: &str) -> bool {
        rustix::fs::access(self.path.join(file), Access::WRITE_OK).is_ok()
    }

    /// Writes `value` to the interface file `file` (`memory.max`, ...), in one write.
    ///
    /// ```
    /// if let Ok(own) = mp_sys::cgroup::Cgroup::own() {
    ///     assert!(own.set("no.such.file", "1").is_err());
    /// }
    /// ```
    pub fn set(&self, file: &str, value: &str) -> io::Result<()> {
        let fd = crate::retry(|| {
            rustix::fs::open(
                self.path.join(file),
                OFlags::WRONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        })?;
        crate::fd::write_all(std::os::fd::AsFd::as_fd(&fd), value.as_bytes())
    }

    /// The value of `key` in the flat-keyed file `file` (`memory.events`' `oom_kill`), `None`
    /// if the file has no such key.
    ///
    /// ```
    /// if let Ok(own) = mp_sys::cgroup::Cgroup::own() {
    ///     if own.has("memory.events") {
    ///         let kills = own.counter("memory.events", "oom_kill")?;
    ///         println!("OOM kills in this cgroup: {kills:?}");
    ///     }
    /// }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn counter(&self, file: &str, key: &str) -> io::Result<Option<u64>> {
        let text = std::fs::read_to_string(self.path.join(file))?;
        Ok(flat_keyed(&text, key))
    }

    /// `cgroup.procs`, open for writing: [`join`] with it moves the caller into this cgroup.
    /// Opened ahead (in a parent, before a fork) so that joining is one `write`.
    ///
    /// ```no_run
    /// let own = mp_sys::cgroup::Cgroup::own()?;
    /// let procs = own.procs()?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn procs(&self) -> io::Result<OwnedFd> {
        open_procs(&self.path)
    }
}

/// `cgroup.procs` of the cgroup at `dir`, open for writing (see [`Cgroup::procs`]): for a
/// process that was told its cgroup's directory.
///
/// ```no_run
/// let procs = mp_sys::cgroup::open_procs("/sys/fs/cgroup/mine".as_ref())?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn open_procs(dir: &Path) -> io::Result<OwnedFd> {
    crate::retry(|| {
        rustix::fs::open(
            dir.join("cgroup.procs"),
            OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    })
}

/// Moves the calling process (every thread) into the cgroup whose `cgroup.procs` is `procs`
/// (writes `0`, the kernel's "the writer"). One `write`, no allocation: a forked child calls it.
///
/// ```no_run
/// let own = mp_sys::cgroup::Cgroup::own()?;
/// let procs = own.procs()?;
/// mp_sys::cgroup::join(std::os::fd::AsFd::as_fd(&procs))?; // where it already is
/// # Ok::<(), std::io::Error>(())
/// ```
#[inline]
pub fn join(procs: BorrowedFd<'_>) -> io::Result<()> {
    crate::fd::write_all(procs, b"0")
}

/// The value of `key` in a flat-keyed cgroup file (`key value` lines).
pub(crate) fn flat_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The path of the `0::` line of a `/proc/<pid>/cgroup` text (relative to the cgroup
/// namespace's root).
pub(crate) fn unified_path(text: &[u8]) -> Option<PathBuf> {
    text.split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(b"0::"))
        .filter(|path| path.starts_with(b"/"))
        .map(|path| PathBuf::from(OsStr::from_bytes(path)))
}

/// The cgroup `own` (a `0::` path) as a directory, from a `/proc/self/mountinfo` text: under
/// the first cgroup2 mount whose root is `own` or above it.
pub(crate) fn locate(mountinfo: &[u8], own: &Path) -> Option<Cgroup> {
    mountinfo.split(|b| *b == b'\n').find_map(|line| {
        let (root, mount) = cgroup2_mount(line)?;
        let below = own.strip_prefix(&root).ok()?;
        let path = match below.as_os_str().is_empty() {
            true => mount.clone(),
            false => mount.join(below),
        };
        Some(Cgroup { path, mount })
    })
}

/// (root, mount point) of a mountinfo line, if it is a cgroup2 mount. The line is
/// `id parent major:minor root mount-point options [optional fields...] - fstype source ...`.
pub(crate) fn cgroup2_mount(line: &[u8]) -> Option<(PathBuf, PathBuf)> {
    let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
    let dash = fields.iter().position(|f| *f == b"-")?;
    if dash < 6 || fields.get(dash + 1) != Some(&&b"cgroup2"[..]) {
        return None;
    }
    Some((unescape(fields[3]), unescape(fields[4])))
}

/// A mountinfo path field: the kernel writes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &[u8]) -> PathBuf {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        let octal = field.get(i + 1..i + 4).filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (field[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    PathBuf::from(OsStr::from_bytes(&out))
}

fn not_found(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, why)
}

#[cfg(test)]
mod test;
