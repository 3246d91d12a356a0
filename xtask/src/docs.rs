//! `cargo xtask docs [--fix]`: the facts the docs state about the code, generated from the code.
//!
//! Each generated fact lives between `<!-- xtask:NAME -->` and `<!-- /xtask:NAME -->` in a
//! markdown file. `docs` fails, with a diff, when a block differs from what the code gives now;
//! `docs --fix` rewrites the blocks (run it after moving modules, crates or `unsafe`, and
//! commit the result). The blocks:
//! - `docs/DESIGN.md` `unsafe-table`: `unsafe` blocks, fns, impls and others per crate and per
//!   file (counted by `tokens`, so comments and strings do not count);
//! - `docs/DESIGN.md` `crate-order`: the layers of the workspace's crates, from each
//!   `Cargo.toml`'s `[dependencies]` (dev-dependencies do not order crates);
//! - `docs/DESIGN.md` `module-map`: every module file of every crate, with the first sentence
//!   of its `//!` doc (test modules left out);
//! - `crates/mp-sys/README.md` `libc-calls`: the libc functions mp-sys calls, per file.
//!
//! Then the hand-written statements that cannot be generated are checked (see `invariants`):
//! `docs --fix` cannot repair those; the message says what differs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::invariants;
use crate::root;
use crate::tokens::{self, Kind, UnsafeCount};

/// A workspace crate whose `src/` the docs describe.
#[derive(Debug)]
pub(crate) struct Crate {
    /// The package name (`mp-rs` for the facade, which the docs call `mp`).
    pub(crate) name: String,
    /// Relative to the workspace root.
    pub(crate) dir: PathBuf,
    /// The workspace crates among its `[dependencies]`.
    pub(crate) deps: BTreeSet<String>,
}

impl Crate {
    /// The name the docs use: the facade's library is `mp`.
    pub(crate) fn doc_name(&self) -> &str {
        if self.name == "mp-rs" {
            "mp"
        } else {
            &self.name
        }
    }

    pub(crate) fn src(&self) -> PathBuf {
        self.dir.join("src")
    }
}

pub(crate) fn docs(fix: bool) -> ExitCode {
    let root = root();
    match run(&root, fix) {
        Ok(()) => {
            println!("docs: every generated block and checked statement matches the code");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("{e}\n");
            }
            eprintln!(
                "docs: {} problem(s). Generated blocks are rewritten by `cargo xtask docs --fix`; \
                 the others need the doc or the code changed by hand.",
                errors.len()
            );
            ExitCode::FAILURE
        }
    }
}

fn run(root: &Path, fix: bool) -> Result<(), Vec<String>> {
    let crates = crates(root).map_err(|e| vec![e])?;
    let order = layers(&crates).map_err(|e| vec![e])?;
    let blocks = [
        ("docs/DESIGN.md", "unsafe-table", unsafe_table(root, &order)),
        (
            "docs/DESIGN.md",
            "crate-order",
            crate_order(&crates, &order),
        ),
        ("docs/DESIGN.md", "module-map", module_map(root, &order)),
        ("crates/mp-sys/README.md", "libc-calls", libc_calls(root)),
    ];
    let mut errors = Vec::new();
    let mut files: BTreeMap<&str, Vec<(&str, &String)>> = BTreeMap::new();
    for (file, name, text) in &blocks {
        files.entry(file).or_default().push((name, text));
    }
    for (file, blocks) in files {
        let path = root.join(file);
        let old = match std::fs::read_to_string(&path) {
            Ok(old) => old,
            Err(e) => {
                errors.push(format!("{file}: {e}"));
                continue;
            }
        };
        let mut new = old.clone();
        for (name, text) in blocks {
            match replace_block(&new, name, text) {
                Ok((replaced, before)) => {
                    if before != *text && !fix {
                        errors.push(format!(
                            "{file}: the `{name}` block differs from the code (- doc, + code):\n{}",
                            diff(&before, text)
                        ));
                    }
                    new = replaced;
                }
                Err(e) => errors.push(format!("{file}: {e}")),
            }
        }
        if fix && new != old {
            match std::fs::write(&path, &new) {
                Ok(()) => println!("docs: rewrote {file}"),
                Err(e) => errors.push(format!("{file}: {e}")),
            }
        }
    }
    errors.extend(invariants::check(root, &crates));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// The facade and every crate under `crates/` (xtask and the benches are tools, no part of
/// mp), sorted by name.
pub(crate) fn crates(root: &Path) -> Result<Vec<Crate>, String> {
    let mut dirs = vec![PathBuf::new()];
    let entries = std::fs::read_dir(root.join("crates")).map_err(|e| format!("crates/: {e}"))?;
    for entry in entries.flatten() {
        if entry.path().join("Cargo.toml").is_file() {
            dirs.push(Path::new("crates").join(entry.file_name()));
        }
    }
    let manifests: Vec<(PathBuf, String)> = dirs
        .into_iter()
        .map(|dir| {
            let text = std::fs::read_to_string(root.join(&dir).join("Cargo.toml"))
                .map_err(|e| format!("{}/Cargo.toml: {e}", dir.display()))?;
            Ok((dir, text))
        })
        .collect::<Result<_, String>>()?;
    let names: Vec<String> = manifests
        .iter()
        .map(|(dir, text)| {
            package_name(text)
                .ok_or_else(|| format!("{}/Cargo.toml: no package name", dir.display()))
        })
        .collect::<Result<_, String>>()?;
    let mut crates: Vec<Crate> = manifests
        .iter()
        .zip(&names)
        .map(|((dir, text), name)| Crate {
            name: name.clone(),
            dir: dir.clone(),
            deps: dependencies(text)
                .into_iter()
                .filter(|d| names.contains(d) && d != name)
                .collect(),
        })
        .collect();
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(crates)
}

/// The `[package]`'s `name`.
fn package_name(manifest: &str) -> Option<String> {
    let mut section = "";
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section == "[package]"
            && let Some(value) = line.strip_prefix("name").map(str::trim_start)
            && let Some(value) = value.strip_prefix('=')
        {
            return Some(value.trim().trim_matches('"').to_string());
        }
    }
    None
}

/// The names in `[dependencies]`, `[dependencies.NAME]` and
/// `[target.'cfg(…)'.dependencies]`: what the crate's library is built with. A hand parse of
/// the few forms the workspace uses, rather than a TOML crate for xtask.
fn dependencies(manifest: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    let mut in_deps = false;
    for line in manifest.lines().map(str::trim) {
        if let Some(header) = line.strip_prefix('[') {
            let header = header.trim_end_matches(']');
            in_deps = header == "dependencies"
                || (header.starts_with("target.") && header.ends_with(".dependencies"));
            if let Some(name) = header.strip_prefix("dependencies.") {
                deps.insert(name.trim_matches('"').to_string());
            }
            continue;
        }
        if !in_deps || line.is_empty() || line.starts_with('#') {
            continue;
        }
        // `name = …`, `name.workspace = true`, `"name" = …`.
        let name = line
            .split(['=', '.'])
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if !name.is_empty() {
            deps.insert(name.to_string());
        }
    }
    deps
}

/// Each crate's layer: 0 for a crate with no workspace dependency, else one above its highest
/// dependency. Sorted top first (highest layer), then by name. An error names a cycle.
pub(crate) fn layers(crates: &[Crate]) -> Result<Vec<(usize, &Crate)>, String> {
    let mut layer: BTreeMap<&str, usize> = BTreeMap::new();
    while layer.len() < crates.len() {
        let before = layer.len();
        for c in crates {
            if layer.contains_key(c.name.as_str()) {
                continue;
            }
            let deps: Option<Vec<usize>> = c
                .deps
                .iter()
                .map(|d| layer.get(d.as_str()).copied())
                .collect();
            if let Some(deps) = deps {
                layer.insert(&c.name, deps.into_iter().max().map_or(0, |m| m + 1));
            }
        }
        if layer.len() == before {
            let stuck: Vec<&str> = crates
                .iter()
                .filter(|c| !layer.contains_key(c.name.as_str()))
                .map(|c| c.name.as_str())
                .collect();
            return Err(format!(
                "the workspace's dependencies form a cycle among {stuck:?}"
            ));
        }
    }
    let mut order: Vec<(usize, &Crate)> =
        crates.iter().map(|c| (layer[c.name.as_str()], c)).collect();
    order.sort_by(|a, b| {
        (std::cmp::Reverse(a.0), &a.1.name).cmp(&(std::cmp::Reverse(b.0), &b.1.name))
    });
    Ok(order)
}

/// Every `.rs` file under `dir`, sorted, relative to `dir`.
pub(crate) fn rust_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(base, &path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path.strip_prefix(base).unwrap_or(&path).to_path_buf());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A path as the docs print it: `/`-separated.
fn shown(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

fn unsafe_table(root: &Path, order: &[(usize, &Crate)]) -> String {
    let mut out = String::from(
        "| crate | blocks | fns | impls | other | total | in (file under `src/`: count) |\n\
         |---|---|---|---|---|---|---|\n",
    );
    let mut all = UnsafeCount::default();
    for (_, c) in order {
        let src = root.join(c.src());
        let mut sum = UnsafeCount::default();
        let mut files = Vec::new();
        for file in rust_files(&src) {
            let n =
                tokens::count_unsafe(&std::fs::read_to_string(src.join(&file)).unwrap_or_default());
            if n.total() > 0 {
                files.push(format!("`{}` {}", shown(&file), n.total()));
            }
            sum.add(&n);
        }
        all.add(&sum);
        let files = if files.is_empty() {
            "none".to_string()
        } else {
            files.join(", ")
        };
        out += &format!(
            "| {} | {} | {} | {} | {} | {} | {files} |\n",
            c.doc_name(),
            sum.blocks,
            sum.fns,
            sum.impls,
            sum.other,
            sum.total()
        );
    }
    out += &format!(
        "| all | {} | {} | {} | {} | {} | |\n",
        all.blocks,
        all.fns,
        all.impls,
        all.other,
        all.total()
    );
    out
}

fn crate_order(crates: &[Crate], order: &[(usize, &Crate)]) -> String {
    let doc = |name: &str| {
        crates
            .iter()
            .find(|c| c.name == name)
            .map_or(name.to_string(), |c| format!("`{}`", c.doc_name()))
    };
    let mut out = String::from("| layer | crate | depends on |\n|---|---|---|\n");
    for (layer, c) in order {
        let deps: Vec<String> = c.deps.iter().map(|d| doc(d)).collect();
        let deps = if deps.is_empty() {
            "–".to_string()
        } else {
            deps.join(", ")
        };
        out += &format!("| {layer} | `{}` | {deps} |\n", c.doc_name());
    }
    out
}

/// The module path of a file under `src/`: `lib.rs` is the crate root, `a/mod.rs` is `a`.
fn module_path(file: &Path) -> String {
    let s = shown(file);
    let s = s.trim_end_matches(".rs").trim_end_matches("/mod");
    if s == "lib" || s == "main" {
        "(root)".to_string()
    } else {
        s.replace('/', "::")
    }
}

/// A test module: tests, not part of the design.
fn is_test_file(file: &Path) -> bool {
    file.file_stem()
        .is_some_and(|s| s == "test" || s == "tests")
}

/// The first sentence of a file's `//!` doc.
pub(crate) fn first_sentence(src: &str) -> Option<String> {
    let mut text = String::new();
    for line in src.lines().map(str::trim_start) {
        let Some(doc) = line.strip_prefix("//!") else {
            if text.is_empty() && (line.is_empty() || line.starts_with("//")) {
                continue;
            }
            break;
        };
        let doc = doc.trim();
        if doc.is_empty() {
            if text.is_empty() {
                continue;
            }
            break;
        }
        if !text.is_empty() {
            text.push(' ');
        }
        text += doc;
    }
    if text.is_empty() {
        return None;
    }
    let end = text
        .match_indices(". ")
        .map(|(i, _)| i + 1)
        .next()
        .unwrap_or(text.len());
    let mut sentence = without_links(&text[..end]);
    if sentence.chars().count() > 200 {
        sentence = sentence.chars().take(199).collect::<String>() + "…";
    }
    Some(sentence.replace('|', "\\|"))
}

/// Markdown links and rustdoc's intra-doc links reduced to their text: their targets are
/// paths inside a crate, which mean nothing in DESIGN.md. Code spans are kept as written.
fn without_links(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    let mut code = false;
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                code = !code;
                out.push(c);
            }
            '[' if !code => {}
            ']' if !code && chars.peek() == Some(&'(') => {
                let mut depth = 0;
                for c in chars.by_ref() {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    if depth == 0 {
                        break;
                    }
                }
            }
            ']' if !code => {}
            _ => out.push(c),
        }
    }
    out
}

fn module_map(root: &Path, order: &[(usize, &Crate)]) -> String {
    let mut out = String::new();
    for (_, c) in order {
        let src = root.join(c.src());
        out += &format!(
            "**{}** (`{}`)\n\n| module | what it is (its `//!` doc) |\n|---|---|\n",
            c.doc_name(),
            shown(&c.src())
        );
        // The root first, then by module path (`dict` before `dict::updater`).
        let mut files: Vec<PathBuf> = rust_files(&src)
            .into_iter()
            .filter(|f| !is_test_file(f))
            .collect();
        files.sort_by_key(|f| (module_path(f) != "(root)", module_path(f)));
        for file in files {
            let text = std::fs::read_to_string(src.join(&file)).unwrap_or_default();
            let what = first_sentence(&text).unwrap_or_else(|| "(no `//!` doc)".into());
            out += &format!("| `{}` | {what} |\n", module_path(&file));
        }
        out += "\n";
    }
    out.trim_end().to_string() + "\n"
}

/// The libc functions mp-sys calls (`libc::name(`), per file; tests left out.
fn libc_calls(root: &Path) -> String {
    let src = root.join("crates/mp-sys/src");
    let mut out = String::new();
    for file in rust_files(&src).into_iter().filter(|f| !is_test_file(f)) {
        let text = std::fs::read_to_string(src.join(&file)).unwrap_or_default();
        let calls = libc_functions(&text);
        if !calls.is_empty() {
            let calls: Vec<String> = calls.iter().map(|c| format!("`{c}`")).collect();
            // Indented: the list sits under a bullet of the README's invariants.
            out += &format!("  - `{}`: {}\n", shown(&file), calls.join(", "));
        }
    }
    out
}

/// The names `f` of the calls `libc::f(…)` in `src`.
pub(crate) fn libc_functions(src: &str) -> BTreeSet<String> {
    let t = tokens::tokenize(src);
    let mut out = BTreeSet::new();
    for w in t.windows(5) {
        if w[0].is_ident("libc")
            && w[1].is_punct(':')
            && w[2].is_punct(':')
            && w[4].is_punct('(')
            && let Kind::Ident(name) = &w[3].kind
        {
            out.insert(name.clone());
        }
    }
    out
}

/// Replaces the lines between `<!-- xtask:NAME -->` and `<!-- /xtask:NAME -->` (each on its own
/// line, maybe indented to sit in a list) with `text`; returns the new document and the text it
/// replaced.
fn replace_block(doc: &str, name: &str, text: &str) -> Result<(String, String), String> {
    let open = format!("<!-- xtask:{name} -->\n");
    let close = format!("<!-- /xtask:{name} -->");
    let start = doc.find(&open).ok_or_else(|| {
        format!("no `<!-- xtask:{name} -->` line: add the pair of markers where the block belongs")
    })? + open.len();
    let end = start
        + doc[start..]
            .find(&close)
            .ok_or_else(|| format!("no `{close}` after `<!-- xtask:{name} -->`"))?;
    // The close marker's indentation is no part of the block.
    let end = doc[..end].rfind('\n').map_or(end, |i| (i + 1).max(start));
    let before = doc[start..end].to_string();
    Ok((format!("{}{text}{}", &doc[..start], &doc[end..]), before))
}

/// A line diff (longest common subsequence): `-` lines only in `old`, `+` only in `new`.
fn diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out += &format!("  - {}\n", a[i]);
            i += 1;
        } else {
            out += &format!("  + {}\n", b[j]);
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn dependencies_read_every_form_but_dev() {
        let manifest = r#"
[package]
name = "x"
[dependencies]
mp-sys.workspace = true
mp-spawn = { workspace = true, features = ["a"] }
"quoted" = "1"
# mp-commented = "1"
[dev-dependencies]
mp-dev = "1"
[target.'cfg(unix)'.dependencies]
mp-unix = "1"
[dependencies.mp-table]
version = "1"
"#;
        let deps: Vec<String> = dependencies(manifest).into_iter().collect();
        assert_eq!(
            deps,
            ["mp-spawn", "mp-sys", "mp-table", "mp-unix", "quoted"]
        );
        assert_eq!(package_name(manifest).as_deref(), Some("x"));
    }

    #[test]
    fn layers_order_and_cycles() {
        let c = |name: &str, deps: &[&str]| Crate {
            name: name.into(),
            dir: PathBuf::new(),
            deps: deps.iter().map(|d| d.to_string()).collect(),
        };
        let crates = [c("top", &["mid", "low"]), c("mid", &["low"]), c("low", &[])];
        let order: Vec<(usize, &str)> = layers(&crates)
            .unwrap()
            .into_iter()
            .map(|(l, c)| (l, c.name.as_str()))
            .collect();
        assert_eq!(order, [(2, "top"), (1, "mid"), (0, "low")]);
        assert!(layers(&[c("a", &["b"]), c("b", &["a"])]).is_err());
    }

    #[test]
    fn blocks_are_replaced_between_markers() {
        let doc = "a\n<!-- xtask:t -->\nold\n<!-- /xtask:t -->\nb\n";
        let (new, before) = replace_block(doc, "t", "new\n").unwrap();
        assert_eq!(before, "old\n");
        assert_eq!(new, "a\n<!-- xtask:t -->\nnew\n<!-- /xtask:t -->\nb\n");
        assert!(replace_block(doc, "u", "").is_err());
        let indented = "- a\n  <!-- xtask:t -->\n  - old\n  <!-- /xtask:t -->\n";
        let (new, before) = replace_block(indented, "t", "  - new\n").unwrap();
        assert_eq!(before, "  - old\n");
        assert_eq!(
            new,
            "- a\n  <!-- xtask:t -->\n  - new\n  <!-- /xtask:t -->\n"
        );
        let (_, before) = replace_block("<!-- xtask:t -->\n<!-- /xtask:t -->", "t", "").unwrap();
        assert_eq!(before, "");
    }

    #[test]
    fn first_sentences_and_module_paths() {
        let src = "// SPDX\n//! One thing. And\n//! another.\n//!\n//! More.\nfn f() {}";
        assert_eq!(first_sentence(src).as_deref(), Some("One thing."));
        assert_eq!(
            first_sentence("//! a | b\n//! c").as_deref(),
            Some("a \\| b c")
        );
        assert_eq!(first_sentence("fn f() {}"), None);
        assert_eq!(
            first_sentence("//! [`A::b`](crate::A::b) and [`C`] on `[u8]` [mp](https://x.y/(z)).")
                .as_deref(),
            Some("`A::b` and `C` on `[u8]` mp.")
        );
        assert_eq!(module_path(Path::new("ring/mod.rs")), "ring");
        assert_eq!(module_path(Path::new("ring/protocol.rs")), "ring::protocol");
        assert_eq!(module_path(Path::new("lib.rs")), "(root)");
    }

    #[test]
    fn libc_calls_are_calls() {
        let src = "unsafe { libc::fork() }; let x = libc::SIGKILL; // libc::signal(\nlibc::sigaction (1, 2, 3);";
        let calls: Vec<String> = libc_functions(src).into_iter().collect();
        assert_eq!(calls, ["fork", "sigaction"]);
    }

    #[test]
    fn diff_shows_changed_lines() {
        assert_eq!(diff("a\nb\nc\n", "a\nx\nc\n"), "  - b\n  + x\n");
        assert_eq!(diff("a\n", "a\nb\n"), "  + b\n");
        assert_eq!(diff("a\nb\n", ""), "  - a\n  - b\n");
    }
}
