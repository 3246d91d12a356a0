//! Naming a function across processes that run the same executable image.
//!
//! A parent names a function by its offset from one anchor function; the child adds the
//! offset to its own anchor's address (ASLR moves the image, not the distances inside it).
//! The child turns an offset back into a function only through a [`Section`]: a link section
//! that holds functions of one type and nothing else, so a wrong or forged offset is `None`,
//! never a jump into arbitrary code. mp-spawn's process trampolines (`mp_trampolines`) and
//! mp-pool's chunk and initializer entries (`mp_pool_chunks`, `mp_pool_inits`) are the
//! sections today; forkserver preload hooks, plain `fn()`s that cannot be placed in a section
//! of ours, are bounded by the program's executable segments instead.
//!
//! Offsets are meaningful only in the same image: mp-spawn forks it, or re-executes
//! `/proc/self/exe` and checks its identity before any offset is believed.
//!
//! ```
//! use mp_spawn::code::Section;
//!
//! type Entry = fn(u32) -> u32;
//!
//! #[unsafe(link_section = "doc_entries")]
//! fn double(x: u32) -> u32 { x * 2 }
//! #[unsafe(link_section = "doc_entries")]
//! fn placeholder(_: u32) -> u32 { 0 }
//!
//! unsafe extern "C" {
//!     static __start_doc_entries: u8;
//!     static __stop_doc_entries: u8;
//! }
//!
//! fn entries() -> Section<Entry> {
//!     // SAFETY: `doc_entries` holds only the two functions above, both of type `Entry`.
//!     unsafe {
//!         Section::new(&raw const __start_doc_entries, &raw const __stop_doc_entries, placeholder)
//!     }
//! }
//!
//! let offset = entries().offset(double); // sent to a child
//! let f = entries().get(offset).expect("in the section");
//! assert_eq!(f(21), 42);
//! assert!(entries().get(offset + 1_000_000).is_none()); // outside: refused
//! assert!(entries().get(entries().offset(placeholder)).is_none()); // the placeholder: refused
//! ```

use std::fmt;
use std::marker::PhantomData;

/// The fixed point that offsets are measured from. Never inlined: a small function may
/// otherwise get a local copy in each codegen unit, each at its own address.
#[inline(never)]
fn anchor() {}

fn anchor_addr() -> usize {
    anchor as fn() as usize
}

pub(crate) fn offset_of(addr: usize) -> i64 {
    (addr as i64).wrapping_sub(anchor_addr() as i64)
}

fn address_at(offset: i64) -> Option<usize> {
    usize::try_from((anchor_addr() as i64).checked_add(offset)?).ok()
}

/// A link section holding functions of the fn-pointer type `F` only, and the way in and out
/// of it by offset. See the [module docs](self) for an example.
pub struct Section<F> {
    start: usize,
    stop: usize,
    placeholder: usize,
    _f: PhantomData<F>,
}

impl<F: Copy> Section<F> {
    /// The section bounded by `start` and `stop` (the linker's `__start_<name>` and
    /// `__stop_<name>` symbols). `placeholder` is a function of the section that keeps it
    /// (and so its bounds) in every program; it is never handed out.
    ///
    /// # Safety
    /// `F` must be a function-pointer type, and every function in `[start, stop)` must be of
    /// type `F` (placed there with `#[unsafe(link_section = "<name>")]`), `placeholder`
    /// included.
    pub unsafe fn new(start: *const u8, stop: *const u8, placeholder: F) -> Section<F> {
        const { assert!(size_of::<F>() == size_of::<usize>()) };
        Section {
            start: start as usize,
            stop: stop as usize,
            // SAFETY: `F` is a function pointer (the caller's promise), as wide as a usize.
            placeholder: unsafe { std::mem::transmute_copy::<F, usize>(&placeholder) },
            _f: PhantomData,
        }
    }

    /// The offset that names `f` in every process running this image.
    pub fn offset(&self, f: F) -> i64 {
        // SAFETY: `F` is a function pointer (promised to `new`), as wide as a usize.
        offset_of(unsafe { std::mem::transmute_copy::<F, usize>(&f) })
    }

    /// The function that `offset` names, if it lies in the section (and is not the
    /// placeholder).
    pub fn get(&self, offset: i64) -> Option<F> {
        let addr = address_at(offset)?;
        if !(self.start..self.stop).contains(&addr) || addr == self.placeholder {
            return None;
        }
        // SAFETY: `addr` lies in the section, which holds only functions of type `F` (the
        // promise made to `new`). Offsets come from `offset` in a process running this same
        // image (the module's rule), so `addr` is the start of one of them.
        Some(unsafe { std::mem::transmute_copy::<usize, F>(&addr) })
    }
}

impl<F> fmt::Debug for Section<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Section")
            .field("start", &format_args!("{:#x}", self.start))
            .field("stop", &format_args!("{:#x}", self.stop))
            .finish_non_exhaustive()
    }
}

/// The offset of a plain `fn()` (a forkserver preload hook).
pub(crate) fn hook_offset(hook: fn()) -> i64 {
    offset_of(hook as usize)
}

/// The address at `offset`, if it lands in the program's executable segments (a fn pointer
/// target; the caller knows its type).
///
/// # Safety
/// `offset` must come from [`offset_of`] of a function's address in a process running the
/// same executable image.
pub(crate) unsafe fn program_fn_at(offset: i64) -> Option<usize> {
    address_at(offset).filter(|a| mp_sys::process::in_program_code(*a))
}

/// The plain `fn()` at `offset`, if it lands in the program's executable segments (which also
/// refuses a hook from a `dlopen`ed library, whose offset from the anchor differs between
/// processes).
///
/// # Safety
/// `offset` must come from [`hook_offset`] in a process running the same executable image.
pub(crate) unsafe fn hook_at(offset: i64) -> Option<fn()> {
    let addr = address_at(offset).filter(|a| mp_sys::process::in_program_code(*a))?;
    // SAFETY: the caller guarantees the same image, so anchor + offset is the hook's address,
    // and it lies in the program's code.
    Some(unsafe { std::mem::transmute::<usize, fn()>(addr) })
}
