//! The hand-written statements of `docs/DESIGN.md` and `crates/mp-sys/README.md` that are
//! mechanical, checked against the code by `cargo xtask docs` (no `--fix`: the doc or the code
//! must change). Behavioural statements are tests instead (`crates/mp-sys/src/test.rs`).

use std::collections::BTreeSet;
use std::path::Path;

use crate::docs::{Crate, rust_files};
use crate::tokens::{self, Kind};

/// Every problem found, one message each.
pub(crate) fn check(root: &Path, crates: &[Crate]) -> Vec<String> {
    let read = |file: &str| std::fs::read_to_string(root.join(file)).unwrap_or_default();
    let design = read("docs/DESIGN.md");
    let sys_readme = read("crates/mp-sys/README.md");
    let mut errors = Vec::new();
    errors.extend(crate_table(&design, root, crates));
    errors.extend(os_only_through_mp_sys(root, crates));
    errors.extend(raw_numbers_become_descriptors_only_where_listed(root));
    errors.extend(sys_modules_listed(&sys_readme, root));
    errors.extend(hot_paths_inline(&sys_readme, root));
    errors.extend(unsafe_lints_everywhere(root, crates));
    errors.extend(checked_by_names_exist(root, crates));
    errors.extend(no_module_cycles(root, crates));
    errors.extend(readme_files_exist(root, crates));
    errors
}

/// A crate's README that walks its code file by file (mp-pool's path of a `map` call) stays
/// true: every backticked `name.rs` it names is a file of that crate's `src/`.
fn readme_files_exist(root: &Path, crates: &[Crate]) -> Vec<String> {
    let mut errors = Vec::new();
    for c in crates {
        let dir = root.join(&c.dir);
        let Ok(text) = std::fs::read_to_string(dir.join("README.md")) else {
            continue;
        };
        let files: BTreeSet<String> = rust_files(&dir.join("src"))
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        for name in backticked(&text).filter(|n| n.ends_with(".rs") && !n.contains(' ')) {
            let rel = name.strip_prefix("src/").unwrap_or(name);
            let known =
                files.contains(rel) || files.iter().any(|f| f.ends_with(&format!("/{rel}")));
            if !known {
                errors.push(format!(
                    "{}/README.md names `{name}`, which is no file of its src/ (renamed? keep \
                     the walk-through true)",
                    c.dir.display()
                ));
            }
        }
    }
    errors
}

/// Issue #25, "a call goes one way": within a crate, the top-level modules import each other
/// without a cycle (`crate::x` paths, tests left out).
fn no_module_cycles(root: &Path, crates: &[Crate]) -> Vec<String> {
    let mut errors = Vec::new();
    for krate in crates {
        let src = root.join(&krate.dir).join("src");
        let modules = top_modules(&src);
        let mut uses: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
        for file in rust_files(&src) {
            if is_test(&file) {
                continue;
            }
            let Some(first) = file.components().next() else {
                continue;
            };
            let module = first
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if !modules.contains(&module) {
                continue;
            }
            let text = std::fs::read_to_string(src.join(&file)).unwrap_or_default();
            let used = uses.entry(module.clone()).or_default();
            for name in crate_paths(&text) {
                if name != module && modules.contains(&name) {
                    used.insert(name);
                }
            }
        }
        if let Some(cycle) = find_cycle(&uses) {
            errors.push(format!(
                "{}: its modules import each other in a cycle: {} (issue #25: a call goes one \
                 way; move what both need below both)",
                krate.doc_name(),
                cycle.join(" -> ")
            ));
        }
    }
    errors
}

/// The first segments of the `crate::` paths in `src` (`crate::a::b` and `crate::{a, b::c}`
/// give `a` and `b`).
fn crate_paths(src: &str) -> BTreeSet<String> {
    let tokens = without_test_modules(tokens::tokenize(src));
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i + 3 < tokens.len() {
        if tokens[i].is_ident("crate") && tokens[i + 1].is_punct(':') && tokens[i + 2].is_punct(':')
        {
            if let Kind::Ident(name) = &tokens[i + 3].kind {
                names.insert(name.clone());
            } else if tokens[i + 3].is_punct('{') {
                // A group: the first identifier after `{` and after each `,` at its depth.
                let mut depth = 0usize;
                let mut expect = true;
                for t in &tokens[i + 3..] {
                    if t.is_punct('{') {
                        depth += 1;
                        expect = depth == 1;
                        continue;
                    }
                    if t.is_punct('}') {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                        continue;
                    }
                    if depth == 1 && t.is_punct(',') {
                        expect = true;
                        continue;
                    }
                    match (expect, depth, &t.kind) {
                        (true, 1, Kind::Ident(name)) if name != "self" => {
                            names.insert(name.clone());
                        }
                        _ => {}
                    }
                    expect = false;
                }
            }
        }
        i += 1;
    }
    names
}

/// `tokens` without the inline `#[cfg(test)] mod name { ... }` modules (tests may reach
/// anywhere).
fn without_test_modules(tokens: Vec<tokens::Token>) -> Vec<tokens::Token> {
    let attr = ["#", "[", "cfg", "(", "test", ")", "]", "mod"];
    let matches = |at: usize| {
        attr.iter().enumerate().all(|(k, want)| {
            tokens.get(at + k).is_some_and(|t| match &t.kind {
                Kind::Ident(i) => i == want,
                Kind::Punct(c) => want.len() == 1 && want.starts_with(*c),
                _ => false,
            })
        })
    };
    let mut kept = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        // `mod name {`: skip to its closing brace; `mod name;` (a file) is left out anyway.
        if matches(i) && tokens.get(i + 9).is_some_and(|t| t.is_punct('{')) {
            let mut depth = 0usize;
            let mut j = i + 9;
            while j < tokens.len() {
                if tokens[j].is_punct('{') {
                    depth += 1;
                } else if tokens[j].is_punct('}') {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                j += 1;
            }
            i = j + 1;
            continue;
        }
        kept.push(tokens[i].clone());
        i += 1;
    }
    kept
}

/// A cycle in `graph`, as its modules in order (the first again at the end), if any.
fn find_cycle(graph: &std::collections::BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &std::collections::BTreeMap<String, BTreeSet<String>>,
        state: &mut std::collections::BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let from = path.iter().position(|p| p == next).unwrap_or(0);
                    let mut cycle = path[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(cycle) = visit(next, graph, state, path) {
                        return Some(cycle);
                    }
                }
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = std::collections::BTreeMap::new();
    for node in graph.keys() {
        let cycle = match state.contains_key(node.as_str()) {
            true => None,
            false => visit(node, graph, &mut state, &mut Vec::new()),
        };
        if cycle.is_some() {
            return cycle;
        }
    }
    None
}

/// The rows of DESIGN's crate table (`| crate | layers, top to bottom | …`): their crates,
/// and the backticked words of their `layers` cell.
fn table_rows(design: &str) -> Vec<(String, BTreeSet<String>)> {
    design
        .lines()
        .skip_while(|l| !l.starts_with("| crate | layers"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells.get(1)?.trim_matches('`').to_string();
            let words = cells
                .get(2)?
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            Some((name, words))
        })
        .collect()
}

/// DESIGN's crate table has one row per crate, each above the crates it depends on, and each
/// row names every top-level module of its crate (the layers must place them all).
fn crate_table(design: &str, root: &Path, crates: &[Crate]) -> Vec<String> {
    let rows = table_rows(design);
    let mut errors = Vec::new();
    let names: Vec<&str> = rows.iter().map(|(n, _)| n.as_str()).collect();
    for c in crates {
        let Some(at) = names.iter().position(|n| *n == c.doc_name()) else {
            errors.push(format!(
                "docs/DESIGN.md: the crate table (`| crate | layers, top to bottom |`) has no row for `{}`",
                c.doc_name()
            ));
            continue;
        };
        for d in &c.deps {
            let dep = crates
                .iter()
                .find(|x| &x.name == d)
                .map_or(d.as_str(), |x| x.doc_name());
            if names
                .iter()
                .position(|n| *n == dep)
                .is_some_and(|below| below < at)
            {
                errors.push(format!(
                    "docs/DESIGN.md: the crate table lists `{dep}` above `{}`, which depends on it \
                     (rows go top to bottom: a crate above what it calls)",
                    c.doc_name()
                ));
            }
        }
        let words = &rows[at].1;
        let named = |m: &str| {
            words.iter().any(|w| {
                let w = w.trim_end_matches('/');
                w == m || w.starts_with(&format!("{m}/")) || w.starts_with(&format!("{m}::"))
            })
        };
        let missing: Vec<String> = top_modules(&root.join(c.src()))
            .into_iter()
            .filter(|m| !named(m))
            .collect();
        if !missing.is_empty() && c.doc_name() != "mp" {
            errors.push(format!(
                "docs/DESIGN.md: the crate table's row for `{}` does not place its module(s) {}",
                c.doc_name(),
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    for n in &names {
        if !crates.iter().any(|c| c.doc_name() == *n) {
            errors.push(format!(
                "docs/DESIGN.md: the crate table has a row for `{n}`, which is no crate"
            ));
        }
    }
    errors
}

/// The modules directly under a crate's `src/` (files and directories), tests left out.
fn top_modules(src: &Path) -> BTreeSet<String> {
    rust_files(src)
        .iter()
        .filter_map(|f| {
            let first = f
                .components()
                .next()?
                .as_os_str()
                .to_string_lossy()
                .into_owned();
            let m = first.trim_end_matches(".rs").to_string();
            (!["lib", "main", "test", "tests"].contains(&m.as_str())).then_some(m)
        })
        .collect()
}

/// Calls into libc outside mp-sys that are known and owned by an open issue: each is a
/// (file, function) pair. Remove an entry when its call moves into mp-sys.
const LIBC_OUTSIDE_MP_SYS: &[(&str, &str)] = &[
    // A fork child points inherited server sockets at /dev/null (issue #25: an
    // `mp_sys::fd::dup_onto` would take it).
    ("crates/mp-managers/src/link.rs", "dup3"),
];

/// DESIGN: "the OS is called only through `mp-sys`": no other crate calls a libc function
/// outside its tests (libc's types and constants are fine).
fn os_only_through_mp_sys(root: &Path, crates: &[Crate]) -> Vec<String> {
    let mut errors = Vec::new();
    for c in crates.iter().filter(|c| c.name != "mp-sys") {
        let src = c.src();
        for file in rust_files(&root.join(&src)) {
            if is_test(&file) {
                continue;
            }
            let shown = src.join(&file).to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(root.join(&src).join(&file)).unwrap_or_default();
            for f in crate::docs::libc_functions(&text) {
                if !LIBC_OUTSIDE_MP_SYS.contains(&(shown.as_str(), f.as_str())) {
                    errors.push(format!(
                        "{shown}: calls `libc::{f}`, but DESIGN says the OS is called only through mp-sys \
                         (move the call into an mp-sys wrapper)"
                    ));
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod cycles {
    #[test]
    fn crate_paths_and_cycles() {
        let names =
            super::crate_paths("use crate::a::x; use crate::{b::y, c, self}; // crate::d\n");
        assert_eq!(names.into_iter().collect::<Vec<_>>(), ["a", "b", "c"]);
        let mut graph = std::collections::BTreeMap::new();
        graph.insert("a".to_string(), ["b".to_string()].into());
        graph.insert("b".to_string(), ["c".to_string()].into());
        assert_eq!(super::find_cycle(&graph), None);
        graph.insert("c".to_string(), ["a".to_string()].into());
        assert_eq!(super::find_cycle(&graph).unwrap(), ["a", "b", "c", "a"]);
    }
}

fn is_test(file: &Path) -> bool {
    file.file_stem()
        .is_some_and(|s| s == "test" || s == "tests")
}

/// The functions of mp-sys in which a raw number becomes a descriptor (`from_raw_fd`,
/// `borrow_raw`), as mp-sys's README states them: `fd::adopt`, `fd::StaticFd` (`get`,
/// `get_or_set`), and the signal handler of `signal::send_byte_on` (`send_wake_byte`).
const RAW_INTAKE: &[&str] = &["adopt", "get", "get_or_set", "send_wake_byte"];

/// mp-sys README: "a raw number is taken only by `fd::adopt` …".
fn raw_numbers_become_descriptors_only_where_listed(root: &Path) -> Vec<String> {
    let src = root.join("crates/mp-sys/src");
    let mut errors = Vec::new();
    for file in rust_files(&src).into_iter().filter(|f| !is_test(f)) {
        let t = tokens::tokenize(&std::fs::read_to_string(src.join(&file)).unwrap_or_default());
        let mut current_fn = String::new();
        for (i, tok) in t.iter().enumerate() {
            if tok.is_ident("fn")
                && let Some(Kind::Ident(name)) = t.get(i + 1).map(|n| &n.kind)
            {
                current_fn = name.clone();
            }
            if (tok.is_ident("from_raw_fd") || tok.is_ident("borrow_raw"))
                && !RAW_INTAKE.contains(&current_fn.as_str())
            {
                errors.push(format!(
                    "crates/mp-sys/src/{}:{}: a raw number becomes a descriptor in `{current_fn}`, \
                     which crates/mp-sys/README.md does not list (\"Descriptors are typed\"); take \
                     it through `fd::adopt`, or list it in the README and in xtask's RAW_INTAKE",
                    file.display(),
                    tok.line
                ));
            }
        }
    }
    errors
}

/// The lines of a README's bullet (`- ` and its continuation lines) that contains `needle`.
fn bullet<'a>(readme: &'a str, needle: &str) -> Option<String> {
    let lines: Vec<&'a str> = readme.lines().collect();
    let at = lines.iter().position(|l| l.contains(needle))?;
    let start = (0..=at).rev().find(|&i| lines[i].starts_with("- "))?;
    let end = (at + 1..lines.len())
        .find(|&i| !lines[i].starts_with("  ") || lines[i].trim().is_empty())
        .unwrap_or(lines.len());
    Some(lines[start..end].join("\n"))
}

fn backticked(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

/// mp-sys README: "One module per OS concept: …" names every module of mp-sys, and only those.
fn sys_modules_listed(readme: &str, root: &Path) -> Vec<String> {
    let Some(start) = readme.find("One module per OS concept:") else {
        return vec!["crates/mp-sys/README.md: no \"One module per OS concept:\" sentence".into()];
    };
    let paragraph = readme[start..].split("\n\n").next().unwrap_or("");
    let listed: BTreeSet<String> = backticked(paragraph).map(str::to_string).collect();
    let modules = top_modules(&root.join("crates/mp-sys/src"));
    let mut errors = Vec::new();
    for m in modules.difference(&listed) {
        errors.push(format!(
            "crates/mp-sys/README.md: \"One module per OS concept\" does not name `{m}`"
        ));
    }
    for m in listed.difference(&modules) {
        errors.push(format!(
            "crates/mp-sys/README.md: \"One module per OS concept\" names `{m}`, which is no module"
        ));
    }
    errors
}

/// mp-sys README: "Wrappers on the hot paths (…) are `#[inline]`": each `module::function`
/// the bullet names is declared right after an `#[inline]`.
fn hot_paths_inline(readme: &str, root: &Path) -> Vec<String> {
    let Some(text) = bullet(readme, "`#[inline]`") else {
        return vec!["crates/mp-sys/README.md: no bullet about `#[inline]` hot paths".into()];
    };
    let mut errors = Vec::new();
    for path in backticked(&text).filter(|w| w.contains("::")) {
        let Some((module, function)) = path.rsplit_once("::") else {
            continue;
        };
        let file = ["rs", "mod.rs"]
            .iter()
            .map(|e| {
                if *e == "rs" {
                    root.join(format!("crates/mp-sys/src/{module}.rs"))
                } else {
                    root.join(format!("crates/mp-sys/src/{module}/mod.rs"))
                }
            })
            .find(|p| p.is_file());
        let Some(file) = file else {
            errors.push(format!(
                "crates/mp-sys/README.md: the hot path `{path}` names no module of mp-sys"
            ));
            continue;
        };
        let t = tokens::tokenize(&std::fs::read_to_string(&file).unwrap_or_default());
        let decl = t
            .windows(2)
            .position(|w| w[0].is_ident("fn") && w[1].is_ident(function));
        let Some(decl) = decl else {
            errors.push(format!(
                "crates/mp-sys/README.md: the hot path `{path}` is no function of mp-sys"
            ));
            continue;
        };
        // Back from `fn` over `pub`, `unsafe`, `(crate)` to the attribute's closing `]`.
        let mut i = decl;
        while i > 0 && !t[i - 1].is_punct(']') && !t[i - 1].is_punct('}') && !t[i - 1].is_punct(';')
        {
            i -= 1;
        }
        let inline = i >= 4
            && t[i - 1].is_punct(']')
            && t[i - 2].is_ident("inline")
            && t[i - 3].is_punct('[')
            && t[i - 4].is_punct('#');
        if !inline {
            errors.push(format!(
                "crates/mp-sys/README.md says the hot path `{path}` is `#[inline]`; {} declares it without",
                file.strip_prefix(root).unwrap_or(&file).display()
            ));
        }
    }
    errors
}

/// mp-sys README: "Every `unsafe` block has a `// SAFETY:` comment", and DESIGN's "denied
/// everywhere": the workspace denies the lints, and every crate takes the workspace's lints.
fn unsafe_lints_everywhere(root: &Path, crates: &[Crate]) -> Vec<String> {
    let mut errors = Vec::new();
    let workspace = std::fs::read_to_string(root.join("Cargo.toml")).unwrap_or_default();
    for lint in [
        "undocumented_unsafe_blocks = \"deny\"",
        "unsafe_op_in_unsafe_fn = \"deny\"",
    ] {
        if !workspace.contains(lint) {
            errors.push(format!("Cargo.toml: [workspace.lints] lacks `{lint}`"));
        }
    }
    for c in crates {
        let manifest =
            std::fs::read_to_string(root.join(&c.dir).join("Cargo.toml")).unwrap_or_default();
        let lints = manifest.split("\n[").any(|s| {
            s.starts_with("lints]")
                && s.lines()
                    .any(|l| l.trim().replace(' ', "") == "workspace=true")
        });
        if !lints {
            let manifest = c.dir.join("Cargo.toml");
            errors.push(format!(
                "{}: no `[lints] workspace = true`",
                manifest.display()
            ));
        }
    }
    errors
}

/// The READMEs' "Checked by:" clauses name tests that exist: each backticked name in a clause
/// that is a Rust path, such as `test::name` or `name`, must end in a fn declared in some
/// crate's `src/` or `tests/` (anywhere in the workspace, so that moving a test between crates
/// keeps it found). Tools (`cargo xtask docs`) and lints (`clippy::…`) are left alone.
fn checked_by_names_exist(root: &Path, crates: &[Crate]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut fns: Option<BTreeSet<String>> = None;
    for c in crates {
        let dir = root.join(&c.dir);
        let mut readmes = readmes_under(&dir.join("src"));
        readmes.push(dir.join("README.md"));
        for readme in readmes {
            let Ok(text) = std::fs::read_to_string(&readme) else {
                continue;
            };
            for name in checked_by_names(&text) {
                let fns = fns.get_or_insert_with(|| {
                    crates
                        .iter()
                        .flat_map(|c| declared_fns(&root.join(&c.dir)))
                        .collect()
                });
                let last = name.rsplit("::").next().unwrap_or(&name);
                if !fns.contains(last) {
                    errors.push(format!(
                        "{}: \"Checked by\" names `{name}`, but no crate declares a fn `{last}` \
                         (renamed or removed? name the test that checks it now)",
                        readme.strip_prefix(root).unwrap_or(&readme).display(),
                    ));
                }
            }
        }
    }
    errors
}

/// The `README.md` files under `dir`, at any depth.
fn readmes_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(readmes_under(&path));
        } else if path.file_name().is_some_and(|n| n == "README.md") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The Rust paths named in the "Checked by:" clauses of `text`. A clause ends at the end of its
/// sentence (`. `), bullet or paragraph; what stands in parentheses is commentary, not a name.
fn checked_by_names(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let lower = text.to_lowercase();
    for (at, needle) in lower.match_indices("checked by:") {
        let rest = &text[at + needle.len()..];
        let (mut code, mut depth, mut span) = (false, 0usize, None::<usize>);
        for (i, c) in rest.char_indices() {
            let after = &rest[i..];
            if !code && c == '\n' {
                let next = after[1..].trim_start_matches(' ');
                if next.is_empty()
                    || ["- ", "<!--", "#", "\n"]
                        .iter()
                        .any(|e| next.starts_with(e))
                {
                    break;
                }
            }
            match c {
                '`' if code => {
                    let name = &rest[span.take().unwrap_or(i)..i];
                    if depth == 0 && is_test_path(name) {
                        out.push(name.to_string());
                    }
                    code = false;
                }
                '`' => {
                    code = true;
                    span = Some(i + 1);
                }
                '(' if !code => depth += 1,
                ')' if !code => depth = depth.saturating_sub(1),
                '.' if !code
                    && depth == 0
                    && after[1..].chars().next().is_none_or(char::is_whitespace) =>
                {
                    break;
                }
                _ => {}
            }
        }
    }
    out
}

/// A Rust path that can name a test (`test::name`, `name`); not a lint (`clippy::…`).
fn is_test_path(name: &str) -> bool {
    name.contains('_')
        && !name.starts_with("clippy::")
        && name.split("::").all(|seg| {
            !seg.is_empty() && seg.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
        })
}

/// Every fn declared in a crate's `src/` and `tests/`.
fn declared_fns(crate_dir: &Path) -> BTreeSet<String> {
    let mut fns = BTreeSet::new();
    for sub in ["src", "tests"] {
        let dir = crate_dir.join(sub);
        for file in rust_files(&dir) {
            let t = tokens::tokenize(&std::fs::read_to_string(dir.join(&file)).unwrap_or_default());
            for w in t.windows(2) {
                if w[0].is_ident("fn")
                    && let Kind::Ident(name) = &w[1].kind
                {
                    fns.insert(name.clone());
                }
            }
        }
    }
    fns
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn bullets_span_their_continuation_lines() {
        let readme = "Intro\n- one\n  two `a::b`\n- three\n";
        assert_eq!(
            bullet(readme, "a::b").as_deref(),
            Some("- one\n  two `a::b`")
        );
        assert_eq!(bullet(readme, "three").as_deref(), Some("- three"));
    }

    #[test]
    fn checked_by_clauses_name_paths() {
        let readme = "- a. Checked by: `test::one_thing`, `cargo xtask docs`, \
                      `clippy::undocumented_unsafe_blocks`,\n  `two_things` (`Region::check`).\n\
                      - b `not_this_one`.\n\nChecked by: `three_things`\n\nafter `four_things`";
        assert_eq!(
            checked_by_names(readme),
            ["test::one_thing", "two_things", "three_things"]
        );
    }

    #[test]
    fn table_rows_read_names_and_words() {
        let design = "| crate | layers, top to bottom | x |\n|---|---|---|\n| `a` | `m` → `n/` (`o`) | none |\n\nafter";
        let rows = table_rows(design);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].0, "a");
        assert_eq!(rows[0].1.iter().collect::<Vec<_>>(), ["m", "n/", "o"]);
    }
}
