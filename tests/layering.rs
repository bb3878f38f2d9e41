//! The modules of `src/` form no import cycle: a lower layer never reaches up.
//!
//! A module is `src/NAME.rs` or `src/NAME/` (every file in it); `lib.rs` and the CLI
//! (`src/bin/`) are not modules here. `A` depends on `B` when a file of `A` names
//! `crate::B` (in a `use`, a path, or a `use crate::{.., B, ..}` group), comments left
//! out.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module name -> its files.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if matches!(name.as_str(), "lib" | "main" | "bin") {
            continue;
        }
        if path.is_dir() {
            out.insert(name, common::rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.insert(name, vec![path]);
        }
    }
    out
}

/// The modules named after `crate::` in `text` (comments removed).
fn named(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(group.split(',').map(|g| ident(g.trim())));
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

/// The dependency graph between modules.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let mut edges = BTreeMap::new();
    for (name, files) in &modules {
        let mut deps = BTreeSet::new();
        for file in files {
            let text = std::fs::read_to_string(file).unwrap();
            deps.extend(
                named(&text)
                    .into_iter()
                    .filter(|d| d != name && modules.contains_key(d)),
            );
        }
        edges.insert(name.clone(), deps);
    }
    edges
}

/// A cycle through `start`, if there is one: the path back to it.
fn cycle_from(
    edges: &BTreeMap<String, BTreeSet<String>>,
    start: &str,
    at: &str,
    path: &mut Vec<String>,
    seen: &mut BTreeSet<String>,
) -> bool {
    for next in &edges[at] {
        if next == start {
            return true;
        }
        if seen.insert(next.clone()) {
            path.push(next.clone());
            if cycle_from(edges, start, next, path, seen) {
                return true;
            }
            path.pop();
        }
    }
    false
}

fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for start in edges.keys() {
        let mut path = vec![start.clone()];
        if cycle_from(edges, start, start, &mut path, &mut BTreeSet::new()) {
            found.push(path);
        }
    }
    found
}

#[test]
fn src_has_no_import_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let edges = graph(&src);
    assert!(edges.len() > 5, "found the modules: {:?}", edges.keys());
    let found = cycles(&edges);
    assert!(
        found.is_empty(),
        "import cycles (a -> b -> .. -> a): {found:?}"
    );
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    // The same check over a made-up tree where `b` reaches back up into `a`.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.rs"), "use crate::b::X;\n").unwrap();
    std::fs::create_dir(dir.path().join("b")).unwrap();
    std::fs::write(
        dir.path().join("b/mod.rs"),
        "// crate::c is only a comment\nuse crate::{a, d};\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("c.rs"), "").unwrap();
    std::fs::write(dir.path().join("d.rs"), "").unwrap();
    let edges = graph(dir.path());
    assert_eq!(
        edges["b"],
        BTreeSet::from(["a".to_string(), "d".to_string()])
    );
    let found = cycles(&edges);
    assert!(
        found.contains(&vec!["a".to_string(), "b".to_string()]),
        "{found:?}"
    );
}
