//! A light Rust tokenizer for the docs checks: identifiers and punctuation with their line,
//! comments dropped and every literal one opaque token. Enough to tell `unsafe {` in code from
//! `unsafe {` in a comment, a string or an identifier such as `unsafe_op`, without `syn`
//! (which would need its `full` feature built for xtask alone).

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    Ident(String),
    Punct(char),
    /// A string, byte, char or number literal (its text is not needed).
    Literal,
    Lifetime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) line: usize,
}

impl Token {
    pub(crate) fn is_ident(&self, name: &str) -> bool {
        matches!(&self.kind, Kind::Ident(i) if i == name)
    }

    pub(crate) fn is_punct(&self, c: char) -> bool {
        self.kind == Kind::Punct(c)
    }
}

fn ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(crate) fn tokenize(src: &str) -> Vec<Token> {
    let s: Vec<char> = src.chars().collect();
    let at = |i: usize| s.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    // Advances over s[from..to], counting newlines.
    let skip = |from: usize, to: usize, line: &mut usize| {
        *line += s[from..to.min(s.len())]
            .iter()
            .filter(|&&c| c == '\n')
            .count();
        to
    };
    while i < s.len() {
        let c = s[i];
        let start_line = line;
        let mut push = |kind| {
            out.push(Token {
                kind,
                line: start_line,
            })
        };
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < s.len() && s[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            // Block comments nest in Rust.
            let (mut depth, mut j) = (1, i + 2);
            while j < s.len() && depth > 0 {
                if s[j] == '/' && at(j + 1) == '*' {
                    depth += 1;
                    j += 2;
                } else if s[j] == '*' && at(j + 1) == '/' {
                    depth -= 1;
                    j += 2;
                } else {
                    j += 1;
                }
            }
            i = skip(i, j, &mut line);
        } else if let Some(end) = raw_string_end(&s, i) {
            push(Kind::Literal);
            i = skip(i, end, &mut line);
        } else if c == '"' || ((c == 'b' || c == 'c') && at(i + 1) == '"') {
            let mut j = if c == '"' { i + 1 } else { i + 2 };
            while j < s.len() && s[j] != '"' {
                j += if s[j] == '\\' { 2 } else { 1 };
            }
            push(Kind::Literal);
            i = skip(i, j + 1, &mut line);
        } else if c == '\'' || (c == 'b' && at(i + 1) == '\'') {
            let q = if c == '\'' { i } else { i + 1 };
            if at(q + 1) == '\\' {
                // An escaped char: '\n', '\'', '\u{1F600}'.
                let mut j = q + 3;
                while j < s.len() && s[j] != '\'' {
                    j += 1;
                }
                push(Kind::Literal);
                i = j + 1;
            } else if at(q + 2) == '\'' {
                push(Kind::Literal);
                i = q + 3;
            } else {
                // A lifetime or label: 'a, 'static.
                let mut j = q + 1;
                while j < s.len() && ident_continue(s[j]) {
                    j += 1;
                }
                push(Kind::Lifetime);
                i = j;
            }
        } else if c == 'r' && at(i + 1) == '#' && ident_start(at(i + 2)) {
            // A raw identifier: r#unsafe is the identifier `unsafe`, never the keyword.
            let mut j = i + 2;
            while j < s.len() && ident_continue(s[j]) {
                j += 1;
            }
            push(Kind::Ident(format!(
                "r#{}",
                s[i + 2..j].iter().collect::<String>()
            )));
            i = j;
        } else if ident_start(c) {
            let mut j = i;
            while j < s.len() && ident_continue(s[j]) {
                j += 1;
            }
            push(Kind::Ident(s[i..j].iter().collect()));
            i = j;
        } else if c.is_ascii_digit() {
            let mut j = i;
            while j < s.len()
                && (ident_continue(s[j]) || (s[j] == '.' && at(j + 1).is_ascii_digit()))
            {
                j += 1;
            }
            push(Kind::Literal);
            i = j;
        } else {
            push(Kind::Punct(c));
            i += 1;
        }
    }
    out
}

/// The end (one past the closing quote and hashes) of a raw string starting at `i`:
/// `r"…"`, `r#"…"#`, `br##"…"##`, `cr"…"`.
fn raw_string_end(s: &[char], i: usize) -> Option<usize> {
    let mut j = i;
    if matches!(s.get(j), Some('b' | 'c')) {
        j += 1;
    }
    if s.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let hashes = s[j..].iter().take_while(|&&c| c == '#').count();
    j += hashes;
    if s.get(j) != Some(&'"') {
        return None;
    }
    j += 1;
    while j < s.len() {
        if s[j] == '"'
            && s[j + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(j + 1 + hashes);
        }
        j += 1;
    }
    Some(s.len())
}

/// The kinds of `unsafe` the docs count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnsafeCount {
    /// `unsafe { … }`.
    pub(crate) blocks: usize,
    /// `unsafe fn name` and `unsafe extern "C" fn name` (not fn-pointer types).
    pub(crate) fns: usize,
    /// `unsafe impl`.
    pub(crate) impls: usize,
    /// `unsafe trait`, `unsafe extern "C" { … }` blocks, `#[unsafe(no_mangle)]`-style attributes.
    pub(crate) other: usize,
}

impl UnsafeCount {
    pub(crate) fn total(&self) -> usize {
        self.blocks + self.fns + self.impls + self.other
    }

    pub(crate) fn add(&mut self, other: &UnsafeCount) {
        self.blocks += other.blocks;
        self.fns += other.fns;
        self.impls += other.impls;
        self.other += other.other;
    }
}

pub(crate) fn count_unsafe(src: &str) -> UnsafeCount {
    let t = tokenize(src);
    let mut n = UnsafeCount::default();
    for (i, tok) in t.iter().enumerate() {
        if !tok.is_ident("unsafe") {
            continue;
        }
        let mut j = i + 1;
        // `unsafe extern "C"`: look past the ABI.
        let is_extern = t.get(j).is_some_and(|t| t.is_ident("extern"));
        if is_extern {
            j += 1;
            if t.get(j).is_some_and(|t| t.kind == Kind::Literal) {
                j += 1;
            }
        }
        let next = t.get(j);
        let after = t.get(j + 1);
        match next {
            Some(n1) if n1.is_punct('{') && !is_extern => n.blocks += 1,
            Some(n1) if n1.is_punct('{') => n.other += 1,
            // A declaration names the fn; `unsafe fn(…)` is a fn-pointer type.
            Some(n1)
                if n1.is_ident("fn") && after.is_some_and(|a| matches!(a.kind, Kind::Ident(_))) =>
            {
                n.fns += 1
            }
            Some(n1) if n1.is_ident("impl") => n.impls += 1,
            Some(n1) if n1.is_ident("trait") || (n1.is_punct('(') && !is_extern) => n.other += 1,
            _ => {}
        }
    }
    n
}

#[cfg(test)]
mod test {
    use super::*;

    /// (blocks, fns, impls, other).
    type Counts = (usize, usize, usize, usize);

    fn check(cases: &[(&str, Counts)]) {
        for (src, want) in cases {
            let c = count_unsafe(src);
            assert_eq!((c.blocks, c.fns, c.impls, c.other), *want, "in {src:?}");
        }
    }

    #[test]
    fn comments_are_skipped() {
        check(&[
            (
                "// unsafe { x }\n/* unsafe fn f() {} */ fn g() {}",
                (0, 0, 0, 0),
            ),
            // Nested block comments end at the matching close.
            (
                "/* a /* unsafe {} */ unsafe {} */ unsafe { 1 }",
                (1, 0, 0, 0),
            ),
            (
                "/// calls `unsafe { f() }`\n//! unsafe impl\nfn f() {}",
                (0, 0, 0, 0),
            ),
        ]);
    }

    #[test]
    fn strings_and_chars_are_skipped() {
        check(&[
            (
                r#"let s = "unsafe { \" unsafe fn f"; unsafe { s }"#,
                (1, 0, 0, 0),
            ),
            (
                r#"let b = b"unsafe impl"; let c = c"unsafe {";"#,
                (0, 0, 0, 0),
            ),
            ("let c = '\"'; unsafe { c }", (1, 0, 0, 0)),
            ("let c = '\\''; let d = '{'; unsafe fn f() {}", (0, 1, 0, 0)),
        ]);
    }

    #[test]
    fn raw_strings_are_skipped() {
        check(&[
            (
                "r#\"unsafe { \" unsafe fn \"#; br##\"unsafe impl \"# \"##;",
                (0, 0, 0, 0),
            ),
            ("let s = r\"\\\"; unsafe { s }", (1, 0, 0, 0)),
        ]);
    }

    #[test]
    fn lifetimes_are_not_chars() {
        check(&[
            (
                "fn f<'a>(x: &'a u8) -> &'a u8 { unsafe { x } }",
                (1, 0, 0, 0),
            ),
            ("'outer: loop { unsafe { break 'outer } }", (1, 0, 0, 0)),
        ]);
    }

    #[test]
    fn unsafe_inside_identifiers_and_attributes_is_not_unsafe() {
        check(&[
            (
                "fn unsafe_op() {} let unsafe_ = 1; r#unsafe { }",
                (0, 0, 0, 0),
            ),
            (
                "#![deny(unsafe_op_in_unsafe_fn)]\n#[allow(unsafe_code)]\nfn f() {}",
                (0, 0, 0, 0),
            ),
        ]);
    }

    #[test]
    fn kinds_are_told_apart() {
        let src = "
            pub unsafe fn a() {}
            pub(crate) const unsafe fn b() {}
            unsafe extern \"C\" fn c(x: i32) {}
            type F = unsafe fn(i32);
            type G = unsafe extern \"C\" fn(i32);
            unsafe impl Send for X {}
            unsafe trait T {}
            unsafe extern \"C\" { fn getpid() -> i32; }
            #[unsafe(no_mangle)]
            fn d() { let x = unsafe { a() }; }
        ";
        check(&[(src, (1, 3, 1, 3))]);
    }

    #[test]
    fn lines_are_counted_across_literals_and_comments() {
        let t = tokenize("/* a\nb */ \"x\ny\" r#\"\n\"# z");
        let last = t.last().map(|t| (t.kind.clone(), t.line));
        assert_eq!(last, Some((Kind::Ident("z".into()), 4)));
    }
}
