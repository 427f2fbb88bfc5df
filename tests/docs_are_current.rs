//! The docs cannot point at what is gone: every relative link in the
//! Markdown files and in the `//!` module docs resolves to a file or
//! directory that exists, and every test the docs name in backticks is a
//! test that some file defines.
//!
//! Files move and tests are renamed; a doc that names the old path or the
//! old test reads as true and is not. These checks read the repository as
//! plain text, with nothing but `std`, and list every offender at once.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// The repository's root: where `Cargo.toml` is.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Directories never read: build output, version control, and data (the
/// fuzz corpora, crash artifacts) that is not written by people.
fn skipped(dir: &Path) -> bool {
    let root = root();
    let rel = dir.strip_prefix(&root).unwrap_or(dir);
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.starts_with('.')
        || name == "target"
        || name == "node_modules"
        || rel.starts_with("fuzz/corpus")
        || rel.starts_with("fuzz/artifacts")
        || rel.starts_with("fuzz/coverage")
}

/// Every file under `dir` whose name ends with `ext`, in a stable order.
fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if !skipped(&path) {
                files_under(&path, ext, out);
            }
        } else if path.extension().and_then(|e| e.to_str()) == Some(ext) {
            out.push(path);
        }
    }
}

/// One piece of documentation: the file it is in, and its lines with
/// their line numbers (for a Rust file, only the `//!` lines).
struct Doc {
    path: PathBuf,
    lines: Vec<(usize, String)>,
}

impl Doc {
    /// `path` relative to the root, for messages.
    fn name(&self) -> String {
        self.path
            .strip_prefix(root())
            .unwrap_or(&self.path)
            .display()
            .to_string()
    }

    /// Whether this doc is a Markdown file (as opposed to `//!` lines).
    fn is_markdown(&self) -> bool {
        self.path.extension().and_then(|e| e.to_str()) == Some("md")
    }

    /// The lines outside fenced code blocks: shell sessions and log lines
    /// are examples, not links or names.
    fn prose(&self) -> Vec<(usize, &str)> {
        let mut in_fence = false;
        let mut out = Vec::new();
        for (n, line) in &self.lines {
            if line.trim_start().starts_with("```") {
                in_fence = !in_fence;
                continue;
            }
            if !in_fence {
                out.push((*n, line.as_str()));
            }
        }
        out
    }
}

/// Every Markdown file in the repository, and the `//!` lines of every
/// Rust file under `src/`.
fn docs() -> Vec<Doc> {
    let root = root();
    let mut docs = Vec::new();
    let mut markdown = Vec::new();
    files_under(&root, "md", &mut markdown);
    for path in markdown {
        let text = fs::read_to_string(&path).unwrap();
        let lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.to_string()))
            .collect();
        docs.push(Doc { path, lines });
    }
    let mut sources = Vec::new();
    files_under(&root.join("src"), "rs", &mut sources);
    for path in sources {
        let text = fs::read_to_string(&path).unwrap();
        let lines = text
            .lines()
            .enumerate()
            .filter_map(|(i, l)| {
                let rest = l.trim_start().strip_prefix("//!")?;
                Some((i + 1, rest.strip_prefix(' ').unwrap_or(rest).to_string()))
            })
            .collect();
        docs.push(Doc { path, lines });
    }
    docs
}

/// The targets of the inline links `[text](target)` on one line.
fn link_targets(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let end = after
            .find(|c: char| c == ')' || c.is_whitespace())
            .unwrap_or(after.len());
        out.push(&after[..end]);
        rest = &after[end..];
    }
    out
}

/// Whether a link target is a path in this repository, to be checked.
/// Web links, mail links and anchors in the same page are not. In `//!`
/// docs a target without a `/` or a file extension is a rustdoc intra-doc
/// link (`crate::server::drain`, `Server::run`), which rustdoc checks.
fn is_relative_path(target: &str, markdown: bool) -> bool {
    if target.is_empty()
        || target.starts_with('#')
        || target.starts_with("http://")
        || target.starts_with("https://")
        || target.starts_with("mailto:")
    {
        return false;
    }
    if markdown {
        return true;
    }
    !target.contains("::") && (target.contains('/') || target.contains('.'))
}

/// The contents of the inline code spans (`` `like_this` ``) on one line.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

/// Whether a code span reads like a test name: lower-case snake case with
/// at least three underscores (`in_flight_request_completes_with_connection_close`).
fn looks_like_a_test_name(span: &str) -> bool {
    span.starts_with(|c: char| c.is_ascii_lowercase())
        && span
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && span.matches('_').count() >= 3
        && !span.contains("__")
        && !span.ends_with('_')
}

/// Every Rust file where tests and other names are defined.
fn sources() -> Vec<PathBuf> {
    let root = root();
    let mut out = Vec::new();
    for dir in ["src", "tests", "benches", "fuzz"] {
        files_under(&root.join(dir), "rs", &mut out);
    }
    out
}

/// The name after `fn ` on a line, if the line declares a function.
fn fn_name(line: &str) -> Option<&str> {
    let at = line.find("fn ")?;
    if at > 0 && !line[..at].ends_with(' ') {
        return None;
    }
    let rest = &line[at + 3..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// The names of every function marked `#[test]` or `#[tokio::test…]`,
/// allowing other attributes (`#[ignore = "…"]`, spread over lines or not),
/// comments and blank lines between the mark and the `fn`.
fn defined_tests(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if !(line.starts_with("#[test]") || line.starts_with("#[tokio::test")) {
            continue;
        }
        let mut open_attribute = !line.ends_with(']');
        while i < lines.len() {
            let next = lines[i];
            if open_attribute || next.starts_with("#[") {
                open_attribute = !next.ends_with(']');
            } else if !(next.is_empty() || next.starts_with("//")) {
                break;
            }
            i += 1;
        }
        if let Some(name) = lines.get(i).and_then(|l| fn_name(l)) {
            out.push(name.to_string());
        }
    }
    out
}

/// What the code defines and uses, to tell a test's name from other names.
struct Names {
    /// Every function marked as a test.
    tests: BTreeSet<String>,
    /// Every other word the code itself uses (functions, constants,
    /// fields, and so the flags clap derives from them, metric names in
    /// strings, file names): a code span that is one of those is not
    /// claiming to be a test.
    code_words: BTreeSet<String>,
    /// Names the code builds with `format!`, as their literal pieces
    /// (`http1_{method}_{load}_c{workers}`: `http1_`, `_`, `_c`), so that
    /// a bench figure's name is not read as a test's.
    templates: Vec<Vec<String>>,
}

impl Names {
    /// Whether `span` is a name the code uses or builds.
    fn used_by_the_code(&self, span: &str) -> bool {
        self.code_words.contains(span) || self.templates.iter().any(|t| fits(span, t))
    }
}

/// Whether `span` is what the template with these literal pieces builds:
/// the first piece starts it, the last ends it, the rest come in order.
fn fits(span: &str, pieces: &[String]) -> bool {
    let (Some(first), Some(last)) = (pieces.first(), pieces.last()) else {
        return false;
    };
    let Some(mut rest) = span.strip_prefix(first.as_str()) else {
        return false;
    };
    for piece in &pieces[1..] {
        match rest.find(piece.as_str()) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    last.is_empty() || span.ends_with(last.as_str())
}

/// The literal pieces of each `format!`-style string on a line that
/// builds a snake-case name: starts with at least five name characters,
/// holds a `{…}` and an underscore, and nothing but name characters
/// outside its braces.
fn templates(line: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for literal in line.split('"').skip(1).step_by(2) {
        if !literal.contains('{') || !literal.contains('_') {
            continue;
        }
        let mut pieces = Vec::new();
        let mut piece = String::new();
        let mut depth = 0;
        let mut ok = literal.starts_with(|c: char| c.is_ascii_lowercase());
        for c in literal.chars() {
            match c {
                '{' => {
                    depth += 1;
                    pieces.push(std::mem::take(&mut piece));
                }
                '}' => depth -= 1,
                _ if depth > 0 => {}
                c if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' => piece.push(c),
                _ => ok = false,
            }
        }
        pieces.push(piece);
        // A short prefix (`a_{}`) would fit half the tests' names.
        if ok && depth == 0 && pieces[0].len() >= 5 {
            out.push(pieces);
        }
    }
    out
}

/// Every test defined anywhere, and what else the code names.
fn names() -> Names {
    let mut tests = BTreeSet::new();
    let mut code_words = BTreeSet::new();
    let mut built = Vec::new();
    for path in sources() {
        let text = fs::read_to_string(&path).unwrap();
        let these = defined_tests(&text);
        // This file's own strings name tests on purpose, as examples.
        let lines = if path.ends_with("tests/docs_are_current.rs") {
            ""
        } else {
            text.as_str()
        };
        for line in lines.lines() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            built.extend(templates(code));
            let declared_test = fn_name(code).filter(|n| these.iter().any(|t| t == n));
            for word in code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
                if !word.is_empty() && Some(word) != declared_test {
                    code_words.insert(word.to_string());
                }
            }
        }
        tests.extend(these);
    }
    let mut every_file = Vec::new();
    for dir in ["src", "tests", "benches", "fuzz", "deploy"] {
        collect_all(&root().join(dir), &mut every_file);
    }
    for path in every_file {
        if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
            code_words.insert(stem.to_string());
        }
    }
    Names {
        tests,
        code_words,
        templates: built,
    }
}

/// Every file under `dir`, whatever its name.
fn collect_all(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for path in entries.filter_map(Result::ok).map(|e| e.path()) {
        if path.is_dir() {
            if !skipped(&path) {
                collect_all(&path, out);
            }
        } else {
            out.push(path);
        }
    }
}

/// Fails listing every offender, one per line.
fn assert_none(what: &str, offenders: &[String]) {
    assert!(
        offenders.is_empty(),
        "{} {what}:\n  {}",
        offenders.len(),
        offenders.join("\n  ")
    );
}

/// A relative link, in a Markdown file or a `//!` module doc, resolved
/// against the directory of the file it is in (its `#fragment` dropped),
/// names a file or directory that exists. Web, mail and same-page links
/// are not checked.
#[test]
fn every_relative_link_in_the_docs_points_at_a_file_that_exists() {
    let mut broken = Vec::new();
    for doc in docs() {
        let dir = doc.path.parent().unwrap().to_path_buf();
        for (n, line) in doc.prose() {
            for target in link_targets(line) {
                if !is_relative_path(target, doc.is_markdown()) {
                    continue;
                }
                let path = target.split('#').next().unwrap();
                if !path.is_empty() && !dir.join(path).exists() {
                    broken.push(format!("{}:{n}: ({target})", doc.name()));
                }
            }
        }
    }
    assert_none("links to files that do not exist", &broken);
}

/// A name in backticks that reads like a test (lower-case snake case, three
/// underscores or more) and is not some other name the code uses is a test
/// that `tests/`, `src/`, `benches/` or `fuzz/` defines: a renamed or
/// deleted test cannot stay cited as proof.
#[test]
fn every_test_name_the_docs_mention_is_a_test_that_exists() {
    let names = names();
    let mut stale = Vec::new();
    for doc in docs() {
        for (n, line) in doc.prose() {
            for span in code_spans(line) {
                if looks_like_a_test_name(span)
                    && !names.tests.contains(span)
                    && !names.used_by_the_code(span)
                {
                    stale.push(format!("{}:{n}: `{span}`", doc.name()));
                }
            }
        }
    }
    assert_none("test names that no test defines", &stale);
}

/// The two checks above see what they are meant to see: the tests of this
/// file and of `tests/shutdown.rs` are found, a test's own name does not
/// count as some other identifier, and the docs include the README and
/// the crate's tour.
#[test]
fn the_checks_find_the_tests_and_the_docs_they_read() {
    let names = names();
    for name in [
        "every_relative_link_in_the_docs_points_at_a_file_that_exists",
        "in_flight_request_completes_with_connection_close",
    ] {
        assert!(names.tests.contains(name), "test {name} not found");
        assert!(
            !names.used_by_the_code(name),
            "{name} counted as a non-test"
        );
    }
    let docs: Vec<String> = docs().iter().map(Doc::name).collect();
    for name in ["README.md", "src/lib.rs"] {
        assert!(docs.iter().any(|d| d == name), "{name} not read");
    }
    assert_eq!(
        link_targets("see [`a`](src/a.rs#x) and [b](https://b) [c](d/)"),
        ["src/a.rs#x", "https://b", "d/"]
    );
    assert!(looks_like_a_test_name("hooks_run_exactly_once"));
    assert!(!looks_like_a_test_name("drain_delay"));
    assert!(names.used_by_the_code("http1_sighup_churn_c32"));
}
