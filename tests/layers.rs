//! The one-way flow src/README.md promises is the code's: each top-level module imports only
//! the modules below it in the README's list of layers, and the leaves import nothing of the
//! crate. A new import that goes up (a cycle in the making) fails here, in review, not later.

use std::path::{Path, PathBuf};

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The README's layers, top first, and its leaves: from the lines that start with
/// `Layers, top first:` and `Leaves:`, the names in backquotes.
fn declared() -> (Vec<String>, Vec<String>) {
    let readme = std::fs::read_to_string(src().join("README.md")).unwrap();
    let names = |prefix: &str| -> Vec<String> {
        let line = readme.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no `{prefix}` line"));
        line.split('`').skip(1).step_by(2).map(str::to_string).collect()
    };
    (names("Layers, top first:"), names("Leaves:"))
}

/// The top-level modules: `src/x.rs` and `src/x/`, less the crate's roots.
fn top_level_modules() -> Vec<String> {
    let mut modules: Vec<String> = std::fs::read_dir(src())
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            match name.strip_suffix(".rs") {
                Some("lib" | "main") => None,
                Some(module) => Some(module.to_string()),
                None if entry.path().is_dir() => Some(name),
                None => None,
            }
        })
        .collect();
    modules.sort();
    modules.dedup();
    modules
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// The crate's modules that `text` names: `crate::x` and `use crate::{x, y::z}`.
fn modules_named(text: &str, modules: &[String]) -> Vec<String> {
    let mut named = Vec::new();
    for piece in text.split("crate::").skip(1) {
        let names: Vec<&str> = match piece.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|item| item.trim().split("::").next().unwrap_or_default())
                .collect(),
            None => vec![piece.split(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or_default()],
        };
        for name in names {
            if modules.iter().any(|m| m == name) && !named.iter().any(|n| n == name) {
                named.push(name.to_string());
            }
        }
    }
    named
}

/// Each module's imports of other top-level modules, with the file that makes each.
fn imports(modules: &[String]) -> Vec<(String, String, PathBuf)> {
    let mut found = Vec::new();
    for module in modules {
        let path = if src().join(module).is_dir() { src().join(module) } else { src().join(format!("{module}.rs")) };
        for file in rust_files(&path) {
            let text = std::fs::read_to_string(&file).unwrap();
            for named in modules_named(&text, modules) {
                if named != *module {
                    found.push((module.clone(), named, file.clone()));
                }
            }
        }
    }
    found
}

#[test]
fn every_module_is_in_the_readmes_layers() {
    let (layers, leaves) = declared();
    let mut declared: Vec<String> = layers.into_iter().chain(leaves).collect();
    declared.sort();
    assert_eq!(declared, top_level_modules(), "src/README.md's layers and leaves name every module once");
}

#[test]
fn each_module_imports_only_the_layers_below_it_and_leaves_import_nothing() {
    let (layers, leaves) = declared();
    let modules = top_level_modules();
    let rank = |m: &str| layers.iter().position(|l| l == m);
    let mut upward = Vec::new();
    for (module, imported, file) in imports(&modules) {
        let allowed = match (rank(&module), rank(&imported)) {
            _ if leaves.contains(&module) => false,
            (Some(from), Some(to)) => to > from,
            (Some(_), None) => leaves.contains(&imported),
            (None, _) => true, // not declared: the test above reports it
        };
        if !allowed {
            upward.push(format!("{module} imports {imported} ({})", file.strip_prefix(src()).unwrap().display()));
        }
    }
    assert!(upward.is_empty(), "imports against src/README.md's one-way flow:\n{}", upward.join("\n"));
}

#[test]
fn an_import_is_found_in_a_use_group_and_in_a_path() {
    // The reader above is what the flow's check stands on: it must see both spellings.
    let modules: Vec<String> = ["exec", "graph", "task"].map(String::from).to_vec();
    let text = "use crate::{exec::X, graph};\nfn f() { crate::task::y() }";
    assert_eq!(modules_named(text, &modules), ["exec", "graph", "task"]);
}
