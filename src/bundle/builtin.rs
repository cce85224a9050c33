//! The built-in workflows of the deployment model (`install`, `uninstall`,
//! `execute_operation`, `scale`, `heal`): a bundle written in Rhai under `scripts/`,
//! embedded in the binary, and unpacked on first use into a folder named by its contents
//! (so that a resume finds the same files).

use std::path::{Path, PathBuf};

use super::Bundle;
use crate::diagnostic::{Code, Diagnostic};
use crate::embedded::{builtin_dir as dir, BUILTIN_FILES as FILES};
pub use crate::embedded::{shown_name, BUILTIN_WORKFLOWS as WORKFLOWS};

/// The built-in bundle, unpacked if it is not yet.
pub fn bundle() -> Result<Bundle, Diagnostic> {
    unpacked_in(dir())
}

/// The built-in bundle in `dir`, unpacked there if it is not yet.
fn unpacked_in(dir: &Path) -> Result<Bundle, Diagnostic> {
    let dir = dir.to_path_buf();
    if !dir.join(super::MANIFEST_FILE).exists() {
        write(&dir).map_err(|e| {
            Diagnostic::plain(
                Code::Builtin,
                format!("cannot unpack the built-in workflows into {}: {e}", dir.display()),
            )
        })?;
    }
    Bundle::load(&dir)
}

/// Writes the files into a scratch folder, then renames it into place: a process that
/// finds the folder finds it whole.
fn write(dir: &PathBuf) -> std::io::Result<()> {
    let scratch = dir.with_extension(format!("tmp-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&scratch)?;
    for (name, text) in FILES {
        std::fs::write(scratch.join(name), text)?;
    }
    match std::fs::rename(&scratch, dir) {
        Err(_) if dir.join(super::MANIFEST_FILE).exists() => {
            let _ = std::fs::remove_dir_all(&scratch);
            Ok(())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_bundle_checks() {
        // Unpacked into a folder of the test's own: the tests leave nothing in the temp folder.
        let scratch = tempfile::tempdir().unwrap();
        let bundle = unpacked_in(&scratch.path().join("builtin")).unwrap();
        let names: Vec<&str> = bundle.manifest.workflows.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, WORKFLOWS);
        if let Err(diagnostics) = super::super::check::check(&bundle) {
            panic!("{:?}", diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>());
        }
    }
}
