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

/// How the scratch folder's name starts; its contents' hash follows.
const DIR_PREFIX: &str = "rhaiflow-builtin-";

/// The scratch folder the built-in bundle is unpacked into, named by its contents.
pub fn builtin_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let all: String = BUILTIN_FILES.iter().map(|(name, text)| format!("{name}\n{text}")).collect();
        std::env::temp_dir().join(format!("{DIR_PREFIX}{}", &sha256_hex(all.as_bytes())[..16]))
    })
}

/// The name a diagnostic shows for the file `path`: `builtin:lifecycle.rhai` for a built-in
/// file, else the path as given.
pub fn shown_name(path: &Path) -> String {
    // Naming the folder hashes every built-in file (~770,000 instructions, a tenth of a small
    // run's start): only a path through a folder named like it can be inside it.
    if !may_be_builtin(path) {
        return path.display().to_string();
    }
    // Bundles are loaded from their canonical folder: the temporary folder may be a link.
    let real = builtin_dir().canonicalize().ok();
    let inside =
        path.strip_prefix(builtin_dir()).ok().or_else(|| real.as_deref().and_then(|d| path.strip_prefix(d).ok()));
    match inside {
        Some(inside) => format!("{SHOWN_PREFIX}{}", inside.display()),
        None => path.display().to_string(),
    }
}

fn may_be_builtin(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str().as_encoded_bytes().starts_with(DIR_PREFIX.as_bytes()))
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_files_are_named_as_built_in_and_others_as_given() {
        assert_eq!(shown_name(&builtin_dir().join("lifecycle.rhai")), "builtin:lifecycle.rhai");
        let linked = builtin_dir().canonicalize().unwrap_or_else(|_| builtin_dir().to_path_buf());
        assert_eq!(shown_name(&linked.join("lifecycle.rhai")), "builtin:lifecycle.rhai");
        assert_eq!(shown_name(Path::new("flows/deploy.rhai")), "flows/deploy.rhai");
    }

    // Only a path through a folder named like the scratch folder is worth hashing the files for.
    #[test]
    fn only_a_path_through_a_scratch_folder_may_be_built_in() {
        assert!(may_be_builtin(&builtin_dir().join("lifecycle.rhai")));
        assert!(may_be_builtin(Path::new("/elsewhere/rhaiflow-builtin-0123/operations.rhai")));
        assert!(!may_be_builtin(Path::new("/tmp/m/hello.rhai")));
        assert!(!may_be_builtin(Path::new("hello.rhai")));
    }
}
