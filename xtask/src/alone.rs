//! `cargo xtask alone`: each crate's front-page example, built and run from a tiny crate that
//! depends on that crate alone. The design card promises that users depend on only the crates
//! they need; this checks that a crate's own front page can be followed that way (nothing in
//! it needs another mp crate's name).
//!
//! The example is the first code block of the crate's `//!` docs, turned into a `main` as
//! rustdoc does (hidden `# ` lines kept, a block ending in `Ok::<..>(())` run as a fallible
//! body). The tiny crates live in `target/alone/` and share one target directory and the
//! workspace's `Cargo.lock`.

use std::path::Path;
use std::process::{Command, ExitCode};

use crate::root;

/// The crates users may depend on alone, lowest first.
const CRATES: [&str; 7] = [
    "mp-sys",
    "mp-spawn",
    "mp-log",
    "mp-shm",
    "mp-ipc",
    "mp-pool",
    "mp-managers",
];

pub(crate) fn alone() -> ExitCode {
    let root = root();
    let work = root.join("target/alone");
    for name in CRATES {
        let lib = root.join("crates").join(name).join("src/lib.rs");
        let Some(example) = std::fs::read_to_string(&lib)
            .ok()
            .and_then(|text| front_page_example(&text))
        else {
            eprintln!("{name}: no example in the `//!` docs of {}", lib.display());
            return ExitCode::FAILURE;
        };
        let dir = work.join(name);
        if let Err(e) = write_crate(&root, &dir, name, &example) {
            eprintln!("{name}: cannot write {}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        println!("== {name}: its front-page example, depending on {name} alone");
        let status = Command::new(env!("CARGO"))
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", work.join("target"))
            .args(["run", "--quiet"])
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("{name}: the example does not build or run with {name} alone");
            return ExitCode::FAILURE;
        }
    }
    println!("every crate's front-page example works with that crate alone");
    ExitCode::SUCCESS
}

fn write_crate(root: &Path, dir: &Path, name: &str, example: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("src"))?;
    let manifest = format!(
        "[package]\nname = \"alone-{name}\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\
         publish = false\n\n[dependencies]\n{name} = {{ path = {path:?} }}\n\n[workspace]\n",
        path = root.join("crates").join(name).display().to_string(),
    );
    std::fs::write(dir.join("Cargo.toml"), manifest)?;
    // The workspace's versions, so that the check does not depend on what crates.io has today.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    std::fs::write(dir.join("src/main.rs"), as_main(example))
}

/// The first code block of the `//!` docs at the top of `lib`, with rustdoc's hidden-line
/// markers removed.
fn front_page_example(lib: &str) -> Option<String> {
    let docs = lib
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l));
    let mut code = None::<Vec<String>>;
    for line in docs {
        match (&mut code, line.trim_start().starts_with("```")) {
            (None, true) => {
                let lang = line.trim_start().trim_start_matches('`').trim();
                if lang.is_empty() || lang == "rust" {
                    code = Some(Vec::new());
                }
            }
            (Some(body), true) => return Some(body.join("\n")),
            (Some(body), false) => body.push(unhide(line).to_owned()),
            (None, false) => {}
        }
    }
    None
}

/// A line as the compiler sees it: `# x` is `x`, `#` alone is empty.
fn unhide(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed == "#" {
        ""
    } else if let Some(rest) = trimmed.strip_prefix("# ") {
        rest
    } else {
        line
    }
}

/// The example as a program, wrapped as rustdoc wraps a doctest.
fn as_main(example: &str) -> String {
    if example.contains("fn main") {
        return example.to_owned();
    }
    if example.trim_end().ends_with("(())") {
        format!(
            "fn main() {{\n    fn body() -> Result<(), impl core::fmt::Debug> {{\n{example}\n    }}\n    \
             body().unwrap()\n}}\n"
        )
    } else {
        format!("fn main() {{\n{example}\n}}\n")
    }
}
