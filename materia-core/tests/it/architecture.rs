//! The crate's layers (`lib.rs`, "Layout"), checked against the sources: every
//! `crate::` path in `materia-core/src` names a module of its own layer or a
//! lower one, no two modules of a layer use each other (directly or round a
//! longer loop), and within a module no two files do. A failure names the file
//! and line of each offending path.
//!
//! Paths are read from the text: comment lines and the `#[cfg(test)]` tail of a
//! file are skipped; `use` groups (`crate::{a::B, c::{self, D}}`) are expanded.
//! A name re-exported by `lib.rs` (`crate::Error`) counts as its module, and so
//! does one `landing/mod.rs` re-exports from `key` (`crate::landing::LandingKey`
//! is `landing::key`, layer 0).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, low to high. Every top-level module must be listed (a new one
/// fails the test until it is placed); modules behind features, and those of
/// other branches of issue 26 (`bucket`), are listed all the same.
const LAYERS: [&[&str]; 4] = [
    &["error", "landing::key", "text", "blocking", "progress"],
    &["guard", "csv", "archive", "landing", "dataset"],
    &["extract", "transform", "bucket", "mirror"],
    &["publish", "check", "drill", "serve", "supervise", "init"],
];

/// Modules of one layer that may use each other: the base vocabulary (an
/// `Error` names a `LandingKey`; a key's parser returns an `Error`).
const ALLOWED_PAIRS: [(&str, &str); 1] = [("error", "landing::key")];

/// KNOWN EXCEPTIONS, each `(module, file, file)`: files of one module that
/// use each other today. Delete an entry when its cycle is gone; the test then
/// holds the line. None today.
const KNOWN_FILE_CYCLES: [(&str, &str, &str); 0] = [];

/// One `crate::` (or `super::`) path in the sources.
#[derive(Clone, Debug)]
struct Use {
    /// Relative to `src/`.
    file: String,
    line: usize,
    path: Vec<String>,
}

impl Use {
    fn at(&self) -> String {
        format!("src/{}:{} ({})", self.file, self.line, self.path.join("::"))
    }
}

#[test]
fn no_module_uses_a_higher_layer_and_no_layer_has_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let resolver = Resolver::new(&src);
    let mut problems = Vec::new();
    // (from, to) → the first path that makes the edge.
    let mut edges: BTreeMap<(String, String), Use> = BTreeMap::new();
    for file in rust_files(&src) {
        let rel = relative(&src, &file);
        if rel == "lib.rs" {
            continue; // The root declares and re-exports the modules.
        }
        let from = unit_of_file(&rel);
        let Some(from_layer) = layer(&from) else {
            problems.push(format!("src/{rel}: module {from} is not in LAYERS"));
            continue;
        };
        for u in crate_paths(&rel, &read(&file)) {
            let to = resolver.unit(&absolute(&rel, &u.path));
            if to == from {
                continue;
            }
            match layer(&to) {
                None => problems.push(format!("{}: module {to} is not in LAYERS", u.at())),
                Some(l) if l > from_layer => problems.push(format!(
                    "{}: {from} (layer {from_layer}) uses {to}, a higher layer ({l})",
                    u.at()
                )),
                Some(l) if l == from_layer && !allowed(&from, &to) => {
                    edges.entry((from.clone(), to)).or_insert(u);
                }
                Some(_) => {}
            }
        }
    }
    problems.extend(cycles(&edges).into_iter().map(|c| {
        let hops: Vec<String> = c.iter().map(|u| u.at()).collect();
        format!("a cycle within one layer: {}", hops.join(" → "))
    }));
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn no_two_files_of_a_module_use_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for dir in subdirs(&src) {
        let module = relative(&src, &dir);
        let children: BTreeSet<String> = rust_files(&dir)
            .iter()
            .map(|f| relative(&dir, f))
            .filter(|f| f != "mod.rs" && !f.contains('/'))
            .map(|f| f.trim_end_matches(".rs").to_owned())
            .collect();
        let mut edges: BTreeMap<(String, String), Use> = BTreeMap::new();
        for child in &children {
            let rel = format!("{module}/{child}.rs");
            for u in crate_paths(&rel, &read(&src.join(&rel))) {
                let path = absolute(&rel, &u.path);
                let inner = path.get(2).filter(|_| path.get(1) == Some(&module));
                if let Some(to) = inner.filter(|to| children.contains(*to) && *to != child) {
                    edges.entry((child.clone(), to.clone())).or_insert(u);
                }
            }
        }
        for c in cycles(&edges) {
            let known = KNOWN_FILE_CYCLES.iter().any(|(m, a, b)| {
                *m == module && c.len() == 2 && {
                    let pair = [&c[0], &c[1]].map(|u| file_stem(&u.file));
                    pair == [*a, *b] || pair == [*b, *a]
                }
            });
            if !known {
                let hops: Vec<String> = c.iter().map(|u| u.at()).collect();
                problems.push(format!(
                    "files of {module} in a cycle: {}",
                    hops.join(" → ")
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
}

#[test]
fn the_reader_expands_groups_and_skips_comments_and_tests() {
    let text = "//! crate::docs::Ignored\n\
                use crate::error::{Error, Result};\n\
                use crate::{\n    landing::{self, key::Etag},\n    csv::split_header as split,\n};\n\
                fn f() { crate::guard::refuse(x); }\n\
                #[cfg(test)]\nmod tests {\n    use crate::transform::Lakehouse;\n}\n";
    let found: Vec<(usize, String)> = crate_paths("x.rs", text)
        .into_iter()
        .map(|u| (u.line, u.path.join("::")))
        .collect();
    let expected = [
        (2, "crate::error::Error"),
        (2, "crate::error::Result"),
        (4, "crate::landing"),
        (4, "crate::landing::key::Etag"),
        (5, "crate::csv::split_header"),
        (7, "crate::guard::refuse"),
    ];
    assert_eq!(
        found,
        expected.map(|(l, p)| (l, p.to_owned())),
        "every path, with its line"
    );
}

/// The layer of `unit`, if listed.
fn layer(unit: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&unit))
}

fn allowed(a: &str, b: &str) -> bool {
    ALLOWED_PAIRS.contains(&(a, b)) || ALLOWED_PAIRS.contains(&(b, a))
}

/// The unit a file of `src/` belongs to: its top-level module, except that
/// `landing::key` is a unit of its own.
fn unit_of_file(rel: &str) -> String {
    if rel == "landing/key.rs" || rel.starts_with("landing/key/") {
        return "landing::key".into();
    }
    let top = rel.split('/').next().unwrap_or(rel);
    top.trim_end_matches(".rs").to_owned()
}

fn file_stem(rel: &str) -> &str {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.trim_end_matches(".rs")
}

/// Resolves a `crate::` path to the unit it names.
struct Resolver {
    /// Names `lib.rs` re-exports, by the module they come from.
    root: BTreeMap<String, String>,
    /// Names `landing/mod.rs` re-exports from `key`.
    key: BTreeSet<String>,
}

impl Resolver {
    fn new(src: &Path) -> Resolver {
        let root = reexports(&read(&src.join("lib.rs")));
        let key = reexports(&read(&src.join("landing/mod.rs")))
            .into_iter()
            .filter(|(_, from)| from == "key")
            .map(|(name, _)| name)
            .collect();
        Resolver { root, key }
    }

    /// The unit an absolute path (`crate::…`) names.
    fn unit(&self, path: &[String]) -> String {
        let seg = |i: usize| path.get(i).map(String::as_str).unwrap_or("");
        if let Some(module) = self.root.get(seg(1)) {
            return module.clone();
        }
        if seg(1) == "landing" && (seg(2) == "key" || self.key.contains(seg(2))) {
            return "landing::key".into();
        }
        seg(1).to_owned()
    }
}

/// `path` from `crate`: a `super::` path of `src/{file}` made absolute
/// (`super` in `a/b.rs` is `crate::a`; in `a/mod.rs` or `a.rs`, `crate`).
fn absolute(file: &str, path: &[String]) -> Vec<String> {
    if path.first().map(String::as_str) != Some("super") {
        return path.to_vec();
    }
    let mut module: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_owned)
        .collect();
    if module.last().map(String::as_str) == Some("mod") {
        module.pop();
    }
    let mut rest = path;
    while rest.first().map(String::as_str) == Some("super") {
        module.pop();
        rest = &rest[1..];
    }
    let mut out = vec!["crate".to_owned()];
    out.extend(module);
    out.extend(rest.iter().cloned());
    out
}

/// `name → module` for every `pub use module::{names}` / `pub use module::name`.
fn reexports(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for u in paths_after(text, "pub use ") {
        if let [module, .., name] = &u.path[..]
            && u.path.len() >= 2
        {
            out.insert(name.clone(), module.clone());
        }
    }
    out
}

/// Every `crate::…` and `super::…` path in `text`, with its line; comment
/// lines and the `#[cfg(test)]` tail skipped.
fn crate_paths(file: &str, text: &str) -> Vec<Use> {
    let mut out = paths_after(text, "crate::");
    out.extend(paths_after(text, "super::"));
    out.sort_by_key(|u| u.line);
    for u in &mut out {
        u.file = file.to_owned();
    }
    out
}

/// The paths starting at each `marker` (`crate::`, `super::` or `pub use `)
/// that is not inside an identifier. For `pub use `, the paths exclude the
/// marker; otherwise they start with its first segment.
fn paths_after(text: &str, marker: &str) -> Vec<Use> {
    let code = code_of(text);
    let bytes = code.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(found) = code[from..].find(marker) {
        let at = from + found;
        from = at + marker.len();
        let inside_ident = at > 0 && {
            let b = bytes[at - 1];
            b.is_ascii_alphanumeric() || b == b'_' || b == b':' || b == b'$'
        };
        if inside_ident || (marker == "pub use " && !line_starts_with(&code, at, marker)) {
            continue;
        }
        let prefix: Vec<String> = match marker {
            "pub use " => Vec::new(),
            m => vec![m.trim_end_matches("::").to_owned()],
        };
        let mut parser = Parser {
            text: &code,
            at: from,
        };
        let mut found = Vec::new();
        parser.tree(prefix, &mut found);
        out.extend(found.into_iter().map(|(path, offset)| Use {
            file: String::new(),
            line: 1 + code[..offset].matches('\n').count(),
            path,
        }));
    }
    out
}

fn line_starts_with(code: &str, at: usize, marker: &str) -> bool {
    let start = code[..at].rfind('\n').map_or(0, |n| n + 1);
    code[start..].trim_start().starts_with(marker)
}

/// `text` with comment lines blanked (line numbers kept) and cut at the first
/// `#[cfg(test)]` that opens a module.
fn code_of(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let opens_tests = trimmed == "#[cfg(test)]"
            && lines[i + 1..]
                .iter()
                .map(|l| l.trim_start())
                .find(|l| !l.is_empty() && !l.starts_with("#["))
                .is_some_and(|l| l.starts_with("mod ") || l.starts_with("pub mod "));
        if opens_tests {
            break;
        }
        if !trimmed.starts_with("//") {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// A reader of one use tree: `a::b`, `a::{b, c::{self, d as e}}`, `a::*`.
struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn skip_space(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn ident(&mut self) -> &str {
        let start = self.at;
        let len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        self.at += len;
        &self.text[start..self.at]
    }

    /// Reads one tree after `prefix::`, pushing each full path and the offset
    /// of its first segment after the prefix.
    fn tree(&mut self, prefix: Vec<String>, out: &mut Vec<(Vec<String>, usize)>) {
        self.skip_space();
        let start = self.at;
        if self.rest().starts_with('{') {
            self.at += 1;
            loop {
                self.skip_space();
                if self.rest().starts_with('}') || self.rest().is_empty() {
                    self.at += 1.min(self.rest().len());
                    return;
                }
                let before = self.at;
                self.tree(prefix.clone(), out);
                self.skip_space();
                if self.rest().starts_with(',') {
                    self.at += 1;
                } else if self.at == before {
                    return; // Not a use tree after all.
                }
            }
        }
        if self.rest().starts_with('*') {
            self.at += 1;
            out.push((prefix, start));
            return;
        }
        let name = self.ident().to_owned();
        let mut path = prefix;
        if !name.is_empty() && name != "self" {
            path.push(name);
        }
        if self.rest().starts_with("::") {
            self.at += 2;
            let before = out.len();
            self.tree(path.clone(), out);
            if let Some(first) = out.get_mut(before) {
                first.1 = start;
            }
            return;
        }
        self.skip_space();
        if self.rest().starts_with("as ") {
            self.at += 3;
            self.skip_space();
            self.ident();
        }
        out.push((path, start));
    }
}

/// Every cycle of `edges` (each once, as the paths that make its hops);
/// a pair that uses each other is a cycle of two.
fn cycles(edges: &BTreeMap<(String, String), Use>) -> Vec<Vec<Use>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    let mut seen: BTreeSet<Vec<String>> = BTreeSet::new();
    let mut out = Vec::new();
    for start in next.keys() {
        let mut stack = vec![(*start, vec![*start])];
        while let Some((node, trail)) = stack.pop() {
            for &to in next.get(node).into_iter().flatten() {
                if to == *start {
                    let mut key: Vec<String> = trail.iter().map(|s| (*s).to_owned()).collect();
                    key.sort();
                    if seen.insert(key) {
                        let hops = trail.iter().zip(trail.iter().skip(1).chain([start]));
                        let hops =
                            hops.map(|(a, b)| edges[&((*a).to_owned(), (*b).to_owned())].clone());
                        out.push(hops.collect());
                    }
                } else if !trail.contains(&to) && to > *start {
                    let mut longer = trail.clone();
                    longer.push(to);
                    stack.push((to, longer));
                }
            }
        }
    }
    out
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn relative(base: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(base).expect("under base");
    rel.to_string_lossy().replace('\\', "/")
}

/// Every `*.rs` under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The module directories directly under `src/`.
fn subdirs(src: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(src)
        .expect("read_dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}
