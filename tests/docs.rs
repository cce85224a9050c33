//! The documentation stands on its own: a clone has only this project, so no doc or comment
//! points outside it. (That every host function is documented, and docs/REFERENCE.md lists
//! them as registered, is checked beside the registrations: `script::reference`'s tests.)

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
