//! The relay's layers point one way: every `crate::<module>` reference in `src/` goes from a
//! module to one listed before it in [`LAYERS`] (lower), so no import cycle can come back; and the sans-IO
//! core (`time`, `token`, `routing`) names no async runtime, web framework, WebRTC stack, OS
//! random source or clock outside its tests.
//!
//! The check reads the sources (code lines only: comments and doc links do not count).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests may panic

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The top-level modules of `hush_relay`, lowest first. A module may use only those before it.
const LAYERS: [&str; 11] = [
    "time",      // the caller's clock reading
    "token",     // access tokens: verify, mint (sans-IO)
    "routing",   // rooms and forwarding decisions (sans-IO)
    "ops",       // metrics, audit trail, per-IP limits, TLS, the admin token
    "turn",      // TURN credentials for clients (pure)
    "bus",       // the driver's channel messages
    "media",     // webrtc-rs adapter
    "recording", // encrypted recordings: taps fan-outs, writes files
    "driver",    // the task that owns the core
    "http",      // axum: signaling, metrics, admin API
    "config",    // the configuration file
];

/// The sans-IO core.
const CORE: [&str; 3] = ["time", "token", "routing"];

/// What the core must not name outside its tests: I/O stacks, OS randomness, the clock.
const FORBIDDEN_IN_CORE: [&str; 10] = [
    "tokio",
    "axum",
    "webrtc",
    "rtc::",
    "tower_http",
    "futures_util",
    "getrandom",
    "SystemTime",
    "Instant::now",
    "std::thread",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`None` for `lib.rs` and the binary under `bin/`,
/// which is a crate of its own that uses the library's public API).
fn module_of(path: &Path) -> Option<String> {
    let relative = path.strip_prefix(src()).unwrap();
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (!matches!(name, "lib" | "main" | "bin")).then(|| name.to_owned())
}

/// The file's code lines, without comments; with `tests_too` false, also without the
/// `#[cfg(test)]` module at the end of the file.
fn code_lines(text: &str, tests_too: bool) -> Vec<&str> {
    let mut lines = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if !tests_too && trimmed.starts_with("#[cfg(test)]") {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        // A trailing comment.
        lines.push(line.split(" // ").next().unwrap_or(line));
    }
    lines
}

/// The top-level modules named as `crate::<module>` in `line`.
fn crate_refs(line: &str) -> Vec<String> {
    line.match_indices("crate::")
        .filter(|(at, _)| {
            // Not the tail of another path (`hush_crate::`, `$crate::`).
            let before = line[..*at].chars().next_back();
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
        })
        .map(|(at, m)| {
            line[at + m.len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// Edges `from -> to` with the files that make them.
fn module_graph() -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for path in files {
        let Some(from) = module_of(&path) else {
            continue;
        };
        let text = fs::read_to_string(&path).unwrap();
        for line in code_lines(&text, true) {
            for to in crate_refs(line) {
                if to != from {
                    let file = path.strip_prefix(src()).unwrap().display().to_string();
                    edges.entry((from.clone(), to)).or_default().insert(file);
                }
            }
        }
    }
    edges
}

fn rank(module: &str) -> usize {
    LAYERS.iter().position(|m| *m == module).unwrap_or_else(|| {
        panic!("`{module}` is a top-level module of hush_relay missing from LAYERS: place it")
    })
}

#[test]
fn every_module_is_placed_in_a_layer() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|p| module_of(p)).collect();
    let listed: BTreeSet<String> = LAYERS.iter().map(|m| (*m).to_owned()).collect();
    assert_eq!(
        modules, listed,
        "LAYERS must list exactly the top-level modules"
    );
}

#[test]
fn imports_point_down_the_layers() {
    let edges = module_graph();
    assert!(
        edges.contains_key(&("routing".to_owned(), "token".to_owned())),
        "the scan found no edges: {edges:?}"
    );
    let upward: Vec<String> = edges
        .iter()
        .filter(|((from, to), _)| rank(to) >= rank(from))
        .map(|((from, to), files)| format!("{from} -> {to} (in {files:?})"))
        .collect();
    assert!(
        upward.is_empty(),
        "imports that point up or sideways (a cycle waiting to happen):\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_module_graph_has_no_cycle() {
    // Implied by the previous test; checked on its own so that a reordered LAYERS cannot hide
    // a cycle. Depth-first search over the edges.
    let edges = module_graph();
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from.as_str()).or_default().push(to.as_str());
    }
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(node) {
            return;
        }
        if let Some(at) = path.iter().position(|n| *n == node) {
            panic!("import cycle: {} -> {node}", path[at..].join(" -> "));
        }
        path.push(node);
        for to in next.get(node).into_iter().flatten() {
            visit(to, next, path, done);
        }
        path.pop();
        done.insert(node);
    }
    let mut done = BTreeSet::new();
    for node in LAYERS {
        visit(node, &next, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_core_does_no_io() {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut found = Vec::new();
    for path in files {
        let Some(module) = module_of(&path) else {
            continue;
        };
        let relative = path.strip_prefix(src()).unwrap();
        let is_test_file = relative.starts_with("routing/tests") || relative.ends_with("tests.rs");
        if !CORE.contains(&module.as_str()) || is_test_file {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        for line in code_lines(&text, false) {
            for word in FORBIDDEN_IN_CORE {
                if line.contains(word) {
                    found.push(format!("{}: {}", relative.display(), line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "I/O in the core:\n{}", found.join("\n"));
}

#[test]
fn the_scan_sees_what_it_should() {
    assert_eq!(
        crate_refs("use crate::routing::{Relay}; x = crate::time::Now::new(a, b);"),
        ["routing", "time"]
    );
    assert!(crate_refs("$crate::x and hush_crate::y").is_empty());
    let text = "use a;\n// crate::http in a comment\n#[cfg(test)]\nmod tests { use tokio; }\n";
    assert_eq!(code_lines(text, false), ["use a;"]);
    assert_eq!(code_lines(text, true).len(), 3);
}
