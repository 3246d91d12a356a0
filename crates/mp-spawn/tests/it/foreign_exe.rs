//! A foreign `/proc/self/exe`: the test binary run through the dynamic loader
//! (`/lib64/ld-linux-x86-64.so.2 ./test-binary`), so that the running image is ld.so, not the
//! program that contains mp. Spawn and forkserver must refuse with a typed error that names the
//! cause, instead of starting ld.so with mp's arguments; fork keeps working.

use std::path::PathBuf;
use std::process::Command;

use mp_spawn::testing::ctx;
use mp_spawn::{ProcessError, StartMethod};

/// The dynamic loader, set for the copy of this binary run through it; without it,
/// `under_ld_so` does nothing.
const UNDER_LD_SO: &str = "MP_TEST_UNDER_LD_SO";

fn square(n: u64) -> u64 {
    n * n
}

/// The interpreter (`PT_INTERP`) of an ELF file, or `None` for a static binary (musl-static,
/// static-pie) or a format this parser does not read (it reads 64-bit little-endian ELF).
fn interpreter(elf: &[u8]) -> Option<PathBuf> {
    let u16_at = |at: usize| Some(u16::from_le_bytes(elf.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(elf.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| {
        let v = u64::from_le_bytes(elf.get(at..at + 8)?.try_into().ok()?);
        usize::try_from(v).ok()
    };
    // \x7fELF, ELFCLASS64, ELFDATA2LSB.
    if elf.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (phoff, phentsize, phnum) = (u64_at(0x20)?, u16_at(0x36)?, u16_at(0x38)?);
    (0..usize::from(phnum)).find_map(|i| {
        let ph = phoff.checked_add(i.checked_mul(usize::from(phentsize))?)?;
        const PT_INTERP: u32 = 3;
        if u32_at(ph)? != PT_INTERP {
            return None;
        }
        let (offset, size) = (u64_at(ph + 8)?, u64_at(ph + 32)?);
        let path = elf.get(offset..offset.checked_add(size)?)?;
        let path = std::ffi::CStr::from_bytes_until_nul(path).ok()?;
        Some(PathBuf::from(path.to_str().ok()?))
    })
}

/// Runs this test binary through its dynamic loader, with only `under_ld_so` selected, and
/// checks that it passed.
#[test]
fn spawn_and_forkserver_refuse_a_foreign_exe() {
    let me = std::env::current_exe().unwrap();
    let Some(ld_so) = interpreter(&std::fs::read(&me).unwrap()) else {
        eprintln!(
            "skipped: {} has no PT_INTERP (a static binary)",
            me.display()
        );
        return;
    };
    if !ld_so.exists() {
        eprintln!("skipped: the interpreter {} is missing", ld_so.display());
        return;
    }
    let out = Command::new(&ld_so)
        .arg(&me)
        .args([
            "--ignored",
            "--exact",
            "foreign_exe::under_ld_so",
            "--nocapture",
        ])
        .env(UNDER_LD_SO, &ld_so)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{} {} failed: {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        ld_so.display(),
        me.display(),
        out.status
    );
    // The refusal came first: no child ran ld.so with mp's arguments.
    assert!(!stderr.contains("--mp-"), "{stderr}");
}

/// Runs inside the copy started through ld.so (see above).
#[test]
#[ignore = "run by spawn_and_forkserver_refuse_a_foreign_exe, through the dynamic loader"]
fn under_ld_so() {
    let Some(ld_so) = std::env::var_os(UNDER_LD_SO) else {
        eprintln!("skipped: only meaningful when run through ld.so");
        return;
    };
    let exe = std::fs::read_link("/proc/self/exe").unwrap();
    assert_eq!(
        exe,
        std::fs::canonicalize(ld_so).unwrap(),
        "not run through ld.so"
    );
    for method in [StartMethod::Spawn, StartMethod::Forkserver] {
        let mut p = ctx(method).process(square, (3,));
        match p.start() {
            Err(e @ ProcessError::ForeignExecutable { .. }) => {
                let ProcessError::ForeignExecutable {
                    method: m,
                    exe: named,
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!(*m, method);
                assert_eq!(*named, exe);
                let text = e.to_string();
                assert!(text.contains(&*exe.to_string_lossy()), "{text}");
                assert!(text.contains("use the fork start method"), "{text}");
            }
            other => panic!("{method}: expected ForeignExecutable, got {other:?}"),
        }
        assert_eq!(p.pid(), None);
    }
    assert_eq!(mp_spawn::forkserver_pid(), None);
    let mut p = ctx(StartMethod::Fork).process(square, (3,));
    p.start().unwrap();
    assert_eq!(p.join().unwrap(), 9);
}
