//! The truck's code stays in layers: no folder of `agent/src` imports one that imports it
//! back, directly or around a loop. (That this crate never imports the simulator, the lab or
//! the command line is the compiler's to enforce: they depend on it, and Cargo refuses a
//! dependency cycle. The second test keeps that true of the manifest too.)

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module (folder or file) a path under `src/` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let first = file.strip_prefix(src).unwrap().components().next().unwrap();
    first
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_owned()
}

/// Which top-level modules each one names through `crate::`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let from = module_of(&src, &file);
        if from == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let edges = graph.entry(from.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != from {
                edges.insert(name);
            }
        }
    }
    graph
}

/// A path that leads from `to` back to `from`, if there is one.
fn path_back(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
    seen: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if to == from {
        return Some(vec![to.to_owned()]);
    }
    if !seen.insert(to.to_owned()) {
        return None;
    }
    for next in graph.get(to).into_iter().flatten() {
        if let Some(mut rest) = path_back(graph, from, next, seen) {
            rest.insert(0, to.to_owned());
            return Some(rest);
        }
    }
    None
}

#[test]
fn no_folder_imports_one_that_imports_it_back() {
    let graph = imports();
    assert!(
        graph.contains_key("pipeline") && graph["pipeline"].contains("detect"),
        "the scan finds the imports: {graph:?}"
    );
    let mut cycles = Vec::new();
    for (from, targets) in &graph {
        for to in targets {
            if let Some(back) = path_back(&graph, from, to, &mut BTreeSet::new()) {
                cycles.push(format!("{from} -> {}", back.join(" -> ")));
            }
        }
    }
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn the_agent_depends_on_no_simulator_lab_or_command_line() {
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    // The first word of every line: a dependency's name where the line declares one.
    let names: BTreeSet<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().split(['=', '.', ' ']).next())
        .collect();
    assert!(names.contains("vigil-wire"), "the scan sees dependencies");
    for crate_name in ["vigil-sim", "vigil-lab", "vigil"] {
        assert!(
            !names.contains(crate_name),
            "agent/Cargo.toml names {crate_name}"
        );
    }
}
