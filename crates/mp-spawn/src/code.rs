//! Naming a function across processes that run the same executable image.
//!
//! Another process can ask for a function only by naming a **registered entry**: an opaque
//! [`CodeRef<F>`] that only registration ([`code_ref!`](crate::code_ref)) creates. Each
//! registration writes one slot (the function's address and its [`Kind`]'s address) into the
//! program's table of code references, a link section laid out by the linker, so the table is
//! the same in every process of the image. On the wire a reference is its slot's index, a
//! [`RawCodeRef`]; the receiver turns it back into a function only if that index is a slot of
//! the [`Kind`] it expects ([`Kind::resolve`]). A wrong, forged or mixed-up index is `None`:
//! exact entries, never an address in a range, so nothing a peer sends becomes a jump into
//! the middle of a function.
//!
//! Targets that are plain fn pointers cannot be registered (any `fn` of the program may be
//! one). They travel as offsets from an anchor, and only `unsafe` code turns an offset back
//! into a function ([`recreate`]): the caller states that the
//! peer may run code in this process anyway (the trust model in docs/DESIGN.md: a spawn
//! child's authenticated parent, a pool's own parent, an MPI job's master).
//!
//! ```
//! use mp_spawn::code::{CodeRef, Kind};
//!
//! type Double = fn(u32) -> u32;
//! // SAFETY: `Double` is a fn pointer type.
//! static DOUBLERS: Kind<Double> = unsafe { Kind::new() };
//!
//! fn double<T>(x: u32) -> u32 { x * 2 + size_of::<T>() as u32 }
//!
//! fn reference<T>() -> CodeRef<Double> {
//!     mp_spawn::code_ref!(DOUBLERS, double::<T>)
//! }
//!
//! let raw = reference::<u8>().raw(); // sent to another process of this image
//! let f = DOUBLERS.resolve(raw).expect("a registered doubler");
//! assert_eq!((f.get())(20), 41);
//!
//! // Anything else is refused: another index, or an entry of another kind.
//! type Other = fn(u32) -> u32;
//! // SAFETY: `Other` is a fn pointer type.
//! static OTHERS: Kind<Other> = unsafe { Kind::new() };
//! assert!(OTHERS.resolve(raw).is_none());
//! assert!(DOUBLERS.resolve(mp_spawn::code::RawCodeRef::from_index(u32::MAX)).is_none());
//! ```
//!
//! A reference cannot be made up in safe code:
//!
//! ```compile_fail
//! let r: mp_spawn::code::CodeRef<fn()> = mp_spawn::code::CodeRef { index: 0, f: (|| ()) as fn() };
//! ```

use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Serialize};

use crate::target::Target;

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("mp's code references support x86_64 and aarch64");

/// One slot of the table: a registered function and the [`Kind`] it was registered as.
#[repr(C)]
#[doc(hidden)]
#[derive(Debug)]
pub struct Slot {
    f: usize,
    kind: usize,
}

// The table's first slot, (0, 0), which no `Kind` matches: it keeps the section (and so the
// linker's `__start_`/`__stop_` symbols) in every program. "R" (SHF_GNU_RETAIN) keeps every
// slot through `--gc-sections`.
std::arch::global_asm!(
    ".pushsection mp_code_refs,\"awR\"",
    ".balign 8",
    ".quad 0, 0",
    ".popsection",
);

unsafe extern "C" {
    // The linker defines these around `mp_code_refs`, which holds only `Slot`s: the one above
    // and those `code_ref!` writes.
    static __start_mp_code_refs: Slot;
    static __stop_mp_code_refs: Slot;
}

fn table() -> &'static [Slot] {
    let start = &raw const __start_mp_code_refs;
    let stop = &raw const __stop_mp_code_refs;
    // SAFETY: the linker lays the section out as one array of `Slot`s from `start` to `stop`
    // (every piece of it is `.balign 8` followed by pairs of quads); only the dynamic loader's
    // relocations write it, before any of our code runs.
    unsafe { std::slice::from_raw_parts(start, stop.offset_from(start) as usize) }
}

/// A kind of registered function: all of them of the fn pointer type `F`, named by the
/// static that holds this value (its address is the kind's identity).
pub struct Kind<F> {
    // Not zero-sized: distinct statics then have distinct addresses.
    _id: u8,
    _f: PhantomData<F>,
}

impl<F> Kind<F> {
    /// A new kind, to be held in a `static`.
    ///
    /// # Safety
    /// `F` must be a function pointer type (`fn(..) -> ..`, any ABI).
    pub const unsafe fn new() -> Kind<F> {
        const { assert!(size_of::<F>() == size_of::<usize>()) };
        Kind {
            _id: 0,
            _f: PhantomData,
        }
    }
}

impl<F: Copy> Kind<F> {
    /// The registered function of this kind that `raw` names, if it names one: exactly one
    /// slot of the table, written by [`code_ref!`](crate::code_ref) for this kind.
    pub fn resolve(&'static self, raw: RawCodeRef) -> Option<CodeRef<F>> {
        let slot = table().get(usize::try_from(raw.0).ok()?)?;
        if slot.kind != std::ptr::from_ref(self) as usize || slot.f == 0 {
            return None;
        }
        // SAFETY: a slot names this kind only if `code_ref!` wrote it with a function that it
        // coerced to `F` (its type check), and `F` is a fn pointer type (`Kind::new`), as wide
        // as the address.
        let f = unsafe { std::mem::transmute_copy::<usize, F>(&slot.f) };
        Some(CodeRef { index: raw.0, f })
    }
}

impl<F> fmt::Debug for Kind<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kind")
            .field("fn", &std::any::type_name::<F>())
            .finish_non_exhaustive()
    }
}

/// A registered function of type `F`: made only by [`code_ref!`](crate::code_ref) or by
/// [`Kind::resolve`], so it always names a registered entry.
#[derive(Clone, Copy)]
pub struct CodeRef<F> {
    index: u32,
    f: F,
}

impl<F: Copy> CodeRef<F> {
    /// The function.
    pub fn get(self) -> F {
        self.f
    }

    /// How another process of this image names it.
    pub fn raw(self) -> RawCodeRef {
        RawCodeRef(self.index)
    }
}

impl<F> fmt::Debug for CodeRef<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CodeRef")
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// A code reference on the wire: an index into the table, meaningful in processes of the
/// same executable image; anything may arrive, and [`Kind::resolve`] checks it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct RawCodeRef(u32);

impl RawCodeRef {
    /// The reference at `index` (what a peer sent): not yet believed.
    pub const fn from_index(index: u32) -> RawCodeRef {
        RawCodeRef(index)
    }

    /// The reference in a 64-bit word of a frame: an index no `u32` holds names nothing (it
    /// becomes `u32::MAX`, which no table reaches).
    pub fn from_wire(word: u64) -> RawCodeRef {
        RawCodeRef(u32::try_from(word).unwrap_or(u32::MAX))
    }

    /// Its index in the table.
    pub const fn index(self) -> u32 {
        self.0
    }
}

/// Registers the function at `path` (a fn item, possibly generic over the caller's type
/// parameters) as an entry of the [`Kind`] in the static `kind`, and returns its
/// [`CodeRef`]. The slot is written at build time, once per monomorphised copy of the calling
/// code; at run time this is one address computation.
///
/// ```compile_fail
/// use mp_spawn::code::Kind;
/// // SAFETY: a fn pointer type.
/// static KIND: Kind<fn(u32) -> u32> = unsafe { Kind::new() };
/// fn wrong(x: u8) -> u8 { x }
/// let _ = mp_spawn::code_ref!(KIND, wrong); // not a fn(u32) -> u32
/// ```
#[macro_export]
macro_rules! code_ref {
    ($kind:path, $($f:tt)+) => {{
        let f = $crate::code::__typed(&$kind, $($f)+);
        let slot: *const $crate::code::Slot;
        $crate::__code_ref_asm!(slot, $kind, $($f)+);
        // SAFETY: `slot` is the one just written for `f` (of the kind's type) and `$kind`.
        unsafe { $crate::code::__registered(slot, f) }
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __code_ref_asm {
    ($slot:ident, $kind:path, $($f:tt)+) => {
        // SAFETY: writes one slot (two addresses) into `mp_code_refs`, which holds nothing
        // else, and reads its address; touches no memory, stack or flags.
        unsafe {
            ::core::arch::asm!(
                ".pushsection mp_code_refs,\"awR\"",
                ".balign 8",
                "2:",
                ".quad {f}",
                ".quad {kind}",
                ".popsection",
                $crate::__code_ref_slot_address!(),
                f = sym $($f)+,
                kind = sym $kind,
                slot = out(reg) $slot,
                options(pure, nomem, nostack, preserves_flags),
            )
        }
    };
}

/// The instructions that put the address of the slot at label `2` into `{slot}`.
#[cfg(target_arch = "x86_64")]
#[doc(hidden)]
#[macro_export]
macro_rules! __code_ref_slot_address {
    () => {
        "lea {slot}, [rip + 2b]"
    };
}

/// The instructions that put the address of the slot at label `2` into `{slot}`.
#[cfg(target_arch = "aarch64")]
#[doc(hidden)]
#[macro_export]
macro_rules! __code_ref_slot_address {
    () => {
        "adrp {slot}, 2b\nadd {slot}, {slot}, :lo12:2b"
    };
}

/// `code_ref!`'s type check: `f` coerces to the kind's `F`.
#[doc(hidden)]
pub fn __typed<F>(_: &'static Kind<F>, f: F) -> F {
    f
}

/// `code_ref!`'s result for the slot it wrote.
///
/// # Safety
/// `slot` must be a slot of the table written by `code_ref!` for `f`.
#[doc(hidden)]
pub unsafe fn __registered<F>(slot: *const Slot, f: F) -> CodeRef<F> {
    // Plain address arithmetic: the label the slot was written at and the linker's symbol
    // are both in the table (the caller's promise), whose slots are 16 bytes each.
    let start = &raw const __start_mp_code_refs;
    let index = (slot as usize - start as usize) / size_of::<Slot>();
    CodeRef {
        index: index as u32,
        f,
    }
}

/// The fixed point that fn-pointer offsets are measured from. Never inlined: a small function
/// may otherwise get a local copy in each codegen unit, each at its own address.
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

/// How a fresh process finds a target again (see [`locate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Located {
    /// Zero-sized (a fn item or a non-capturing closure): the child creates it anew.
    ZeroSized,
    /// A fn pointer into the program: the child finds it at this offset
    /// ([`crate::code`]).
    FnPointer(i64),
    /// A fn pointer outside the program's code (a `dlopen`ed library).
    Foreign,
    /// A closure that captures state: only a forked child can run it.
    Captures,
}

impl Located {
    /// The offset to send with the arguments: the fn pointer's, or 0.
    pub fn code(self) -> i64 {
        match self {
            Located::FnPointer(offset) => offset,
            _ => 0,
        }
    }
}

/// Says how a fresh process running this image can find `target` again (mp-pool's tasks;
/// `Process` does the same inside).
///
/// ```
/// use mp_spawn::code::{locate, Located};
///
/// fn square(x: u64) -> u64 { x * x }
///
/// assert_eq!(locate(&square), Located::ZeroSized);
/// let pointer: fn(u64) -> u64 = square;
/// assert!(matches!(locate(&pointer), Located::FnPointer(_)));
/// let k = std::hint::black_box(3u64);
/// assert_eq!(locate(&move |x: u64| x * k), Located::Captures);
/// ```
pub fn locate<F: Target<A>, A>(target: &F) -> Located {
    if size_of::<F>() == 0 {
        return Located::ZeroSized;
    }
    match target.fn_pointer() {
        Some(addr) if mp_sys::process::in_program_code(addr) => Located::FnPointer(offset_of(addr)),
        Some(_) => Located::Foreign,
        None => Located::Captures,
    }
}

/// The target again, in a fresh process: created if zero-sized, found at `code` if a fn
/// pointer; `None` otherwise, or if `code` lies outside the program's code.
///
/// ```
/// use mp_spawn::code::{locate, recreate};
///
/// fn square(x: u64) -> u64 { x * x }
///
/// let pointer: fn(u64) -> u64 = square;
/// let code = locate(&pointer).code();
/// // SAFETY: `code` is `locate`'s for a value of this very type, in this very process.
/// let again = unsafe { recreate::<fn(u64) -> u64, (u64,)>(code) }.unwrap();
/// assert_eq!(again(7), 49);
/// ```
///
/// # Safety
/// `code` must be [`Located::code`] of [`locate`] of a value of type `F`, computed in a
/// process running this same executable image.
pub unsafe fn recreate<F: Target<A>, A>(code: i64) -> Option<F> {
    if size_of::<F>() == 0 {
        // SAFETY: F is zero-sized and is a fn item or closure type (the only `Target`s), which
        // is inhabited and has no bytes to initialise; the parent held a value of it.
        return Some(unsafe { std::mem::zeroed() });
    }
    if !F::is_fn_pointer() {
        return None;
    }
    // SAFETY: the caller's promise: `code` is the offset of a function of the fn pointer type
    // `F` (checked just above, by `TypeId`) in this image; `program_fn_at` refuses what lies
    // outside the program's code.
    let addr = unsafe { program_fn_at(code) }?;
    // SAFETY: `F` is that fn pointer type, and `addr` the function's address.
    Some(unsafe { std::mem::transmute_copy::<usize, F>(&addr) })
}
