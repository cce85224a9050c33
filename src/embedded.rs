//! Files compiled into the binary: the stdlib modules scripts import as `std/...`, and the
//! built-in workflows' bundle with the scratch folder it is unpacked into and how diagnostics
//! name its files. A leaf: the script host and the bundle code both read it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

/// The stdlib modules, by import path.
pub const STDLIB: &[(&str, &str)] = &[("std/flow", include_str!("../stdlib/flow.rhai"))];

pub const BUILTIN_FILES: &[(&str, &str)] = &[
    ("plugin.yaml", include_str!("../scripts/plugin.yaml")),
    ("lifecycle.rhai", include_str!("../scripts/lifecycle.rhai")),
    ("operations.rhai", include_str!("../scripts/operations.rhai")),
];

/// The names `rhaiflow run NAME` takes as built-in workflows.
pub const BUILTIN_WORKFLOWS: &[&str] = &["install", "uninstall", "execute_operation", "scale", "heal"];

/// How diagnostics name the built-in files: `builtin:lifecycle.rhai`, not the scratch folder
/// they are unpacked into, which means nothing to a person.
const SHOWN_PREFIX: &str = "builtin:";

/// The scratch folder the built-in bundle is unpacked into, named by its contents.
pub fn builtin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let all: String = BUILTIN_FILES.iter().map(|(name, text)| format!("{name}\n{text}")).collect();
        std::env::temp_dir().join(format!("rhaiflow-builtin-{}", &sha256_hex(all.as_bytes())[..16]))
    })
}

/// The name a diagnostic shows for the file `path`: `builtin:lifecycle.rhai` for a built-in
/// file, else the path as given.
pub fn shown_name(path: &Path) -> String {
    // Bundles are loaded from their canonical folder: the temporary folder may be a link.
    let real = builtin_dir().canonicalize().ok();
    let inside =
        path.strip_prefix(builtin_dir()).ok().or_else(|| real.as_deref().and_then(|d| path.strip_prefix(d).ok()));
    match inside {
        Some(inside) => format!("{SHOWN_PREFIX}{}", inside.display()),
        None => path.display().to_string(),
    }
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
