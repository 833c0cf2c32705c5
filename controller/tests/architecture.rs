//! The house as drawn in `lib.rs`, kept by reading the sources:
//! - the pure core (`policy.rs`, `core/`, `sim/`, `spec/mod.rs`) imports no Kubernetes type, no IO edge,
//!   no CRD type, no async runtime and no Prometheus client;
//! - `commands/` only wires: no implementation of an edge trait and no child process of its own.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// Crates the pure core must not name.
const FORBIDDEN_CRATES: &[&str] = &["kube", "k8s_openapi", "tokio", "prometheus_http_query"];
/// Modules of this crate the pure core must not name.
const FORBIDDEN_MODULES: &[&str] = &["crd", "edges"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `path` if it is a file, else every `.rs` file below it.
fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).unwrap() {
        files.extend(rust_files(&entry.unwrap().path()));
    }
    files.retain(|f| f.extension().is_some_and(|e| e == "rs"));
    files.sort();
    files
}

fn pure_core_files() -> Vec<PathBuf> {
    let src = src();
    let files: Vec<PathBuf> = ["policy.rs", "core", "sim", "spec/mod.rs"]
        .iter()
        .flat_map(|p| rust_files(&src.join(p)))
        .collect();
    assert!(files.len() >= 5, "pure core files not found: {files:?}");
    files
}

/// The code of a file with its comments (doc comments included) blanked out, line by line.
fn code_lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => line[..at].to_owned(),
            None => line.to_owned(),
        })
        .collect()
}

/// Every path a `use` item brings in, flattened (`use crate::{a::b, c}` gives `crate::a::b` and
/// `crate::c`), with the line the item starts on.
fn use_paths(lines: &[String]) -> Vec<(usize, String)> {
    let mut paths = Vec::new();
    let mut item: Option<(usize, String)> = None;
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if item.is_none() {
            let rest = trimmed
                .strip_prefix("pub ")
                .or_else(|| trimmed.strip_prefix("pub(crate) "))
                .unwrap_or(trimmed);
            if let Some(rest) = rest.strip_prefix("use ") {
                item = Some((index + 1, String::new()));
                item.as_mut().unwrap().1.push_str(rest);
            }
        } else if let Some((_, text)) = item.as_mut() {
            text.push_str(trimmed);
        }
        if let Some((start, text)) = item.take_if(|(_, text)| text.contains(';')) {
            // `a as b` keeps its words apart through the white space removal, as `a~b`.
            let tree: String = text[..text.find(';').unwrap()]
                .replace(" as ", "~")
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            flatten("", &tree, &mut |path| {
                paths.push((start, path.replace('~', " as ")))
            });
        }
    }
    paths
}

/// Calls `out` with every path of a use tree such as `a::{b::{c,d},e}`.
fn flatten(prefix: &str, tree: &str, out: &mut impl FnMut(String)) {
    let join = |head: &str| {
        if prefix.is_empty() {
            head.to_owned()
        } else {
            format!("{prefix}::{head}")
        }
    };
    match tree.find('{') {
        None => out(join(tree.trim_end_matches("::"))),
        Some(open) => {
            let head = join(tree[..open].trim_end_matches("::"));
            let inner = &tree[open + 1..tree.rfind('}').unwrap()];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        flatten(&head, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            if start < inner.len() {
                flatten(&head, &inner[start..], out);
            }
        }
    }
}

/// Why `path` is not allowed in the pure core, if it is not.
fn forbidden(path: &str) -> Option<String> {
    let segments: Vec<&str> = path
        .split("::")
        .map(|s| s.split(" as ").next().unwrap())
        .collect();
    let first = segments
        .first()
        .copied()
        .unwrap_or_default()
        .trim_start_matches("::");
    if FORBIDDEN_CRATES.contains(&first) {
        return Some(format!("crate `{first}`"));
    }
    if first == "crate"
        && let Some(module) = segments.get(1)
        && FORBIDDEN_MODULES.contains(module)
    {
        return Some(format!("module `crate::{module}`"));
    }
    None
}

/// Every forbidden name in `file`: in `use` items and as qualified paths in the code.
fn violations(file: &Path) -> Vec<String> {
    let lines = code_lines(file);
    let name = file.strip_prefix(src()).unwrap_or(file).display().to_string();
    let mut found = Vec::new();
    for (line, path) in use_paths(&lines) {
        if let Some(why) = forbidden(&path) {
            found.push(format!("src/{name}:{line}: `use {path}` brings in {why}"));
        }
    }
    let qualified: Vec<String> = FORBIDDEN_CRATES
        .iter()
        .map(|c| format!("{c}::"))
        .chain(FORBIDDEN_MODULES.iter().map(|m| format!("crate::{m}")))
        .collect();
    for (index, line) in lines.iter().enumerate() {
        for needle in &qualified {
            let named = line.match_indices(needle.as_str()).any(|(at, _)| {
                // A whole path segment: not the tail of a longer name (`my_tokio::`).
                !line[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            if named {
                found.push(format!("src/{name}:{}: names `{needle}`", index + 1));
            }
        }
    }
    found
}

#[test]
fn pure_core_imports_no_kubernetes_edge_crd_async_or_prometheus_client() {
    let found: Vec<String> = pure_core_files().iter().flat_map(|f| violations(f)).collect();
    assert!(
        found.is_empty(),
        "the pure core (policy, core, sim, spec) must not depend on Kubernetes, the IO edges, the CRD, \
         tokio or the Prometheus client; move the type into the core or the code into an edge:\n{}",
        found.join("\n")
    );
}

#[test]
fn commands_only_wire_no_edge_impls_and_no_child_processes() {
    let mut found = Vec::new();
    for file in rust_files(&src().join("commands")) {
        let name = file.strip_prefix(src()).unwrap().display().to_string();
        for (index, line) in code_lines(&file).iter().enumerate() {
            let edge_impl = ["MetricsSource", "ScaleTarget", "Clock"]
                .iter()
                .any(|t| line.contains(&format!("impl {t} for")));
            let process = ["Command::new", "process::Command", "tokio::process"]
                .iter()
                .any(|p| line.contains(p));
            if edge_impl || process {
                found.push(format!("src/{name}:{}: {}", index + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "commands/ only parses flags and wires parts; edge implementations and child processes belong in \
         edges/:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_rule_sees_nested_and_renamed_imports() {
    let lines: Vec<String> = [
        "use std::time::Duration;",
        "use crate::{",
        "    core::ReplicaState,",
        "    edges::{Clock, sim::SimTarget},",
        "};",
        "use kube as k;",
    ]
    .iter()
    .map(|l| (*l).to_owned())
    .collect();
    let bad: Vec<(usize, String)> = use_paths(&lines)
        .into_iter()
        .filter(|(_, p)| forbidden(p).is_some())
        .collect();
    assert_eq!(
        bad,
        vec![
            (2, "crate::edges::Clock".to_owned()),
            (2, "crate::edges::sim::SimTarget".to_owned()),
            (6, "kube as k".to_owned()),
        ]
    );
}
