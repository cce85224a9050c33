//! The documentation stands on its own: a clone has only this project, so no doc or comment
//! points outside it, and every host function a script can call is in docs/REFERENCE.md.

use std::path::{Path, PathBuf};

fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Files under `dir` (recursively) whose name ends with one of `extensions`.
fn files(dir: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path, extensions));
        } else if extensions.iter().any(|e| path.to_string_lossy().ends_with(e)) {
            found.push(path);
        }
    }
    found
}

/// The names `src/script` registers with Rhai (`register_fn("name"`, `register_get("name"`, …).
fn registered_names() -> Vec<String> {
    let mut names = Vec::new();
    for file in files(&project().join("src/script"), &[".rs"]) {
        let text = std::fs::read_to_string(&file).unwrap();
        for piece in text.split(".register_").skip(1) {
            let Some(rest) = piece.split_once("(\"").map(|(_, rest)| rest) else { continue };
            let name = rest.split('"').next().unwrap_or_default();
            if !name.is_empty() && !name.contains(' ') && !names.iter().any(|n| n == name) {
                names.push(name.to_string());
            }
        }
    }
    names
}

// The host-API reference lived only in a contract beside the project, which a clone lacks.
#[test]
fn every_host_function_is_in_the_reference() {
    let reference = std::fs::read_to_string(project().join("docs/REFERENCE.md")).unwrap();
    let names = registered_names();
    assert!(names.len() > 40, "found only {names:?}");
    // Rhai's own conversions, used by `print` and interpolation, not called by name.
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !matches!(n.as_str(), "to_string" | "to_debug"))
        .filter(|n| !reference.contains(&format!("`{n}")) && !reference.contains(&format!("{n}(")))
        .collect();
    assert!(missing.is_empty(), "not in docs/REFERENCE.md: {missing:?}");
}

// README.md, docs/ and comments pointed at the contract beside the project, which a clone lacks.
#[test]
fn no_doc_or_comment_points_outside_the_project() {
    let outside = ["../", "shared/"].concat();
    let contract = ["SCRIPT", "_API"].concat();
    let mut found = Vec::new();
    let mut all = vec![project().join("README.md")];
    for dir in ["docs", "src", "examples", "scripts", "tests", "benches", "fuzz/fuzz_targets"] {
        all.extend(files(&project().join(dir), &[".md", ".rs", ".rhai", ".yaml", ".sh"]));
    }
    for file in all {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            if line.contains(&outside) || line.contains(&contract) {
                found.push(format!("{}:{}: {line}", file.display(), n + 1));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
