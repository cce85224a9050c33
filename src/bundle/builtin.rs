//! The built-in workflows of the deployment model (`install`, `uninstall`,
//! `execute_operation`, `scale`, `heal`): a bundle written in Rhai under `scripts/`,
//! embedded in the binary, and unpacked on first use into a folder named by its contents
//! (so that a resume finds the same files).

use std::path::PathBuf;

use super::{archive, Bundle};
use crate::script::ScriptDiagnostic;

const FILES: &[(&str, &str)] = &[
    ("plugin.yaml", include_str!("../../scripts/plugin.yaml")),
    ("lifecycle.rhai", include_str!("../../scripts/lifecycle.rhai")),
    ("operations.rhai", include_str!("../../scripts/operations.rhai")),
];

/// The names `rhaiflow run NAME` takes as built-in workflows.
pub const WORKFLOWS: &[&str] = &["install", "uninstall", "execute_operation", "scale", "heal"];

/// The built-in bundle, unpacked if it is not yet.
pub fn bundle() -> Result<Bundle, ScriptDiagnostic> {
    let all: String = FILES.iter().map(|(name, text)| format!("{name}\n{text}")).collect();
    let dir = std::env::temp_dir().join(format!("rhaiflow-builtin-{}", &archive::sha256_hex(all.as_bytes())[..16]));
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
        let bundle = bundle().unwrap();
        let names: Vec<&str> = bundle.manifest.workflows.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, WORKFLOWS);
        if let Err(diagnostics) = super::super::check::check(&bundle) {
            panic!("{:?}", diagnostics.iter().map(|d| &d.message).collect::<Vec<_>>());
        }
    }
}
