//! Start methods and contexts: `get_context`, `set_start_method`, `get_start_method`.
//!
//! The default start method is **forkserver**, as in Python 3.14 on Linux: it is safe in a
//! multi-threaded parent (tokio, rayon, the test harness), because the children are forked by a
//! single-threaded server, never by the caller. `fork` is faster but copies whatever locks other
//! threads held; `spawn` starts a fresh copy of the executable.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};

/// How a child process is created.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StartMethod {
    /// `fork()` the caller: fastest; the child shares nothing but starts as a copy.
    /// The only method that can run a capturing closure.
    Fork,
    /// Start a fresh copy of the executable (`posix_spawn` of `/proc/self/exe`).
    Spawn,
    /// Ask a single-threaded server process, started on first use, to fork the child.
    Forkserver,
}

impl StartMethod {
    /// The Python name: `"fork"`, `"spawn"` or `"forkserver"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fork => "fork",
            Self::Spawn => "spawn",
            Self::Forkserver => "forkserver",
        }
    }
}

impl fmt::Display for StartMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StartMethod {
    type Err = ContextError;
    fn from_str(s: &str) -> Result<Self, ContextError> {
        match s {
            "fork" => Ok(Self::Fork),
            "spawn" => Ok(Self::Spawn),
            "forkserver" => Ok(Self::Forkserver),
            other => Err(ContextError::UnknownMethod(other.to_owned())),
        }
    }
}

const DEFAULT_METHOD: StartMethod = StartMethod::Forkserver;
/// The chosen default: 0 while none was set, else the method's code. An atomic, not a lock:
/// a forked child reads and forces it, and must never find it held by another thread.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

impl StartMethod {
    const fn code(self) -> u8 {
        match self {
            Self::Fork => 1,
            Self::Spawn => 2,
            Self::Forkserver => 3,
        }
    }

    const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Fork),
            2 => Some(Self::Spawn),
            3 => Some(Self::Forkserver),
            _ => None,
        }
    }
}

/// A start method to create processes with; contexts of different methods work side by side.
///
/// ```
/// let ctx = mp_spawn::get_context("spawn").unwrap();
/// fn double(x: u64) -> u64 { x * 2 }
/// let mut p = ctx.process(double, (21,));
/// p.start().unwrap();
/// assert_eq!(p.join().unwrap(), 42);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    pub(crate) method: Option<StartMethod>,
}

impl Context {
    /// The context that follows `set_start_method` (resolved when a process starts).
    pub const fn default_context() -> Self {
        Context { method: None }
    }

    /// The start method of this context.
    pub fn start_method(&self) -> StartMethod {
        self.method.unwrap_or_else(get_start_method)
    }
}

impl Default for Context {
    fn default() -> Self {
        Self::default_context()
    }
}

/// A start method, named as Python names it (`"fork"`, `"spawn"`, `"forkserver"`) or by the
/// [`StartMethod`] enum: what [`get_context`] and [`set_start_method`] take.
pub trait IntoStartMethod {
    /// The start method, or [`ContextError::UnknownMethod`] for a name that is none.
    fn into_start_method(self) -> Result<StartMethod, ContextError>;
}

impl IntoStartMethod for StartMethod {
    fn into_start_method(self) -> Result<StartMethod, ContextError> {
        Ok(self)
    }
}

/// Any borrowed name: `&str`, `&String`, `&&str`, ...
impl<T: AsRef<str> + ?Sized> IntoStartMethod for &T {
    fn into_start_method(self) -> Result<StartMethod, ContextError> {
        self.as_ref().parse()
    }
}

impl IntoStartMethod for String {
    fn into_start_method(self) -> Result<StartMethod, ContextError> {
        self.parse()
    }
}

/// The context of a start method, by its Python name or by the enum.
///
/// ```
/// use mp_spawn::{StartMethod, get_context};
/// assert_eq!(get_context("spawn")?.start_method(), StartMethod::Spawn);
/// assert_eq!(get_context(StartMethod::Fork)?.start_method(), StartMethod::Fork);
/// assert!(get_context("thread").is_err());
/// # Ok::<(), mp_spawn::ContextError>(())
/// ```
pub fn get_context(method: impl IntoStartMethod) -> Result<Context, ContextError> {
    Ok(Context {
        method: Some(method.into_start_method()?),
    })
}

/// Sets the default start method; a second call is an error unless `force` is true.
pub fn set_start_method(method: impl IntoStartMethod, force: bool) -> Result<(), ContextError> {
    let method = method.into_start_method()?;
    if force {
        CHOSEN.store(method.code(), Ordering::Relaxed);
        return Ok(());
    }
    CHOSEN
        .compare_exchange(0, method.code(), Ordering::Relaxed, Ordering::Relaxed)
        .map(drop)
        .map_err(|_| ContextError::AlreadySet)
}

/// In a child: its default start method becomes the one that started it, as Python's
/// `_bootstrap` forces it (so a child's `get_start_method()` names its own method).
pub(crate) fn force_start_method(method: StartMethod) {
    CHOSEN.store(method.code(), Ordering::Relaxed);
}

/// The default start method: the one set by `set_start_method`, or forkserver.
pub fn get_start_method() -> StartMethod {
    StartMethod::from_code(CHOSEN.load(Ordering::Relaxed)).unwrap_or(DEFAULT_METHOD)
}

/// Every start method, the default first: `["forkserver", "fork", "spawn"]`.
pub fn get_all_start_methods() -> Vec<&'static str> {
    let default = get_start_method();
    let mut all = vec![default.name()];
    all.extend(
        [
            StartMethod::Forkserver,
            StartMethod::Fork,
            StartMethod::Spawn,
        ]
        .iter()
        .filter(|m| **m != default)
        .map(|m| m.name()),
    );
    all
}

/// A start method was unknown, or was set a second time without `force`. An unknown name's
/// message lists the start methods, and names the one a typo most likely meant.
///
/// ```
/// let e = mp_spawn::get_context("spwan").unwrap_err();
/// assert_eq!(
///     e.to_string(),
///     "cannot find context for \"spwan\" (the start methods are \"fork\", \"spawn\" and \
///      \"forkserver\"; did you mean \"spawn\"?)"
/// );
/// let e = mp_spawn::get_context("threads").unwrap_err();
/// assert!(!e.to_string().contains("did you mean"));
/// assert!(mp_spawn::get_context("ForkServer").unwrap_err().to_string().contains("\"forkserver\"?"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContextError {
    /// Not one of `"fork"`, `"spawn"`, `"forkserver"`.
    UnknownMethod(String),
    /// `set_start_method` was already called (pass `force = true` to change it).
    AlreadySet,
}

/// The start method whose name is at most two edits from `name` (a typo), if one is.
fn nearest_method(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    ["fork", "spawn", "forkserver"]
        .into_iter()
        .map(|m| (edit_distance(&lower, m), m))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, m)| m)
}

/// Levenshtein's distance between two short names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

impl fmt::Display for ContextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownMethod(m) => {
                // Python's message first, then what a port from Python needs to fix it.
                write!(
                    f,
                    "cannot find context for {m:?} (the start methods are \"fork\", \"spawn\" \
                     and \"forkserver\""
                )?;
                match nearest_method(m) {
                    Some(near) => write!(f, "; did you mean {near:?}?)"),
                    None => f.write_str(")"),
                }
            }
            Self::AlreadySet => f.write_str("context has already been set"),
        }
    }
}

impl std::error::Error for ContextError {}
