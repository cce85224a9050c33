//! The built-in workflows of the deployment model (`install`, `uninstall`,
//! `execute_operation`, `scale`, `heal`): a bundle written in Rhai under `scripts/`,
//! embedded in the binary, and unpacked on first use into a folder named by its contents
//! (so that a resume finds the same files).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{archive, Bundle};
use crate::script::ScriptDiagnostic;

const FILES: &[(&str, &str)] = &[
    ("plugin.yaml", include_str!("../../scripts/plugin.yaml")),
    ("lifecycle.rhai", include_str!("../../scripts/lifecycle.rhai")),
    ("operations.rhai", include_str!("../../scripts/operations.rhai")),
];

/// The names `rhaiflow run NAME` takes as built-in workflows.
pub const WORKFLOWS: &[&str] = &["install", "uninstall", "execute_operation", "scale", "heal"];

/// How diagnostics name the built-in files: `builtin:lifecycle.rhai`, not the scratch folder
/// they are unpacked into, which means nothing to a person.
const SHOWN_PREFIX: &str = "builtin:";

/// The scratch folder the built-in bundle is unpacked into, named by its contents.
fn dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let all: String = FILES.iter().map(|(name, text)| format!("{name}\n{text}")).collect();
        std::env::temp_dir().join(format!("rhaiflow-builtin-{}", &archive::sha256_hex(all.as_bytes())[..16]))
    })
}

/// The name a diagnostic shows for the file `path`: `builtin:lifecycle.rhai` for a built-in
/// file, else the path as given.
pub fn shown_name(path: &Path) -> String {
    // Bundles are loaded from their canonical folder: the temporary folder may be a link.
    let real = dir().canonicalize().ok();
    let inside = path.strip_prefix(dir()).ok().or_else(|| real.as_deref().and_then(|d| path.strip_prefix(d).ok()));
    match inside {
        Some(inside) => format!("{SHOWN_PREFIX}{}", inside.display()),
        None => path.display().to_string(),
    }
}

/// The built-in bundle, unpacked if it is not yet.
pub fn bundle() -> Result<Bundle, ScriptDiagnostic> {
    unpacked_in(dir())
}

/// The built-in bundle in `dir`, unpacked there if it is not yet.
fn unpacked_in(dir: &Path) -> Result<Bundle, ScriptDiagnostic> {
    let dir = dir.to_path_buf();
    if !dir.join(super::MANIFEST_FILE).exists() {
        write(&dir).map_err(|e| {
            ScriptDiagnostic::plain(
                "rhaiflow::builtin",
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
