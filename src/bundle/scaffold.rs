//! `rhaiflow bundle new NAME`: a working bundle to start from, with a workflow, an
//! operation, a README and tests that pass as written.

use std::path::{Path, PathBuf};

use crate::diagnostic::{Code, Diagnostic};
use crate::names::is_identifier;

/// The skeleton's files; `NAME` in them becomes the bundle's name.
const FILES: &[(&str, &str)] = &[
    ("plugin.yaml", include_str!("skeleton/plugin.yaml")),
    ("flows.rhai", include_str!("skeleton/flows.rhai")),
    ("ops.rhai", include_str!("skeleton/ops.rhai")),
    ("README.md", include_str!("skeleton/README.md")),
    ("tests/deploy_test.rhai", include_str!("skeleton/tests/deploy_test.rhai")),
    ("tests/hello_test.rhai", include_str!("skeleton/tests/hello_test.rhai")),
];

/// Writes bundle `name` into the new folder `parent/name`; returns the folder.
pub fn create(parent: &Path, name: &str) -> Result<PathBuf, Diagnostic> {
    let fail = |message: String| Diagnostic::plain(Code::BundleNew, message);
    if !is_identifier(name) {
        return Err(fail(format!(
            "`{name}` cannot name a bundle: use letters, digits and `_`, starting with a letter"
        ))
        .with_help("scripts import its modules as \"<name>/<module>\", so it must be a word"));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(fail(format!("{} exists already", dir.display())));
    }
    for (file, text) in FILES {
        let path = dir.join(file);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(|e| fail(format!("cannot create {}: {e}", folder.display())))?;
        }
        std::fs::write(&path, text.replace("NAME", name))
            .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{check, Bundle};

    #[test]
    fn the_skeleton_checks() {
        let parent = tempfile::tempdir().unwrap();
        let dir = create(parent.path(), "acme").unwrap();
        let bundle = Bundle::load(&dir).unwrap();
        let checked =
            check::check(&bundle).map_err(|d| d.into_iter().map(|d| d.into_message()).collect::<Vec<_>>()).unwrap();
        assert_eq!((checked.modules, checked.tests), (2, 2));
        assert!(create(parent.path(), "acme").is_err(), "an existing folder is not overwritten");
        assert!(create(parent.path(), "../x").is_err());
    }
}
