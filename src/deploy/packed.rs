//! A blueprint with the scripts its operations run, packed as one value that travels through
//! a shared store (a submitted run's throw-away deployment, a stored deployment), and written
//! out as a folder of its own on a machine that does not have the blueprint's folder.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Blueprint;

#[derive(Serialize, Deserialize)]
struct Packed {
    /// The blueprint's file name; its text is among the files.
    blueprint: String,
    /// Relative path → text.
    files: BTreeMap<String, String>,
}

/// The blueprint's text and its scripts (as they are in its folder now); a script that is not
/// there is left out: its operation fails when it runs, as it would in the folder.
pub fn pack(blueprint: &Blueprint) -> Vec<u8> {
    let name = Path::new(&blueprint.source.name)
        .file_name()
        .map_or_else(|| "blueprint.yaml".to_string(), |n| n.to_string_lossy().into_owned());
    let mut files = BTreeMap::from([(name.clone(), blueprint.source.text.to_string())]);
    for path in blueprint.script_paths() {
        if let Ok(text) = std::fs::read_to_string(blueprint.dir.join(&path)) {
            files.insert(path, text);
        }
    }
    serde_json::to_vec(&Packed { blueprint: name, files }).expect("text maps serialize")
}

/// Writes `packed` out as the folder `dir` (once: a folder already there is taken as it is)
/// and returns the path of its blueprint. Written aside, then renamed: a process beside this
/// one never reads half of it.
pub fn unpack(packed: &[u8], dir: &Path) -> std::io::Result<PathBuf> {
    let Packed { blueprint, files } = serde_json::from_slice(packed).map_err(std::io::Error::other)?;
    let inside =
        |path: &str| Path::new(path).components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if let Some(outside) = files.keys().chain([&blueprint]).find(|path| !inside(path)) {
        return Err(std::io::Error::other(format!("`{outside}` leaves the blueprint's folder")));
    }
    if !dir.exists() {
        let scratch = dir.with_file_name(format!(".{}", uuid::Uuid::new_v4()));
        let written = files.iter().try_for_each(|(path, text)| {
            let path = scratch.join(path);
            std::fs::create_dir_all(path.parent().unwrap_or(&scratch))?;
            std::fs::write(path, text)
        });
        let written = written
            .and_then(|()| std::fs::rename(&scratch, dir).or_else(|e| if dir.exists() { Ok(()) } else { Err(e) }));
        let _ = std::fs::remove_dir_all(&scratch);
        written?;
    }
    Ok(dir.join(blueprint))
}

/// Where a packed blueprint is written out on this machine, when its own folder is not here:
/// a folder named by its checksum in the temp folder.
pub fn copy_dir(packed: &[u8]) -> PathBuf {
    std::env::temp_dir().join("rhaiflow-blueprints").join(crate::embedded::sha256_hex(packed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blueprint_written_out_elsewhere_has_its_scripts_and_reads_the_same() {
        let here = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(here.path().join("scripts")).unwrap();
        std::fs::write(here.path().join("scripts/c.sh"), "echo created\n").unwrap();
        let text = "node_templates:\n  vm:\n    type: rhaiflow.nodes.Compute\n    interfaces: {lifecycle: {create: scripts/c.sh, start: scripts/gone.sh}}\n";
        std::fs::write(here.path().join("bp.yaml"), text).unwrap();
        let blueprint = Blueprint::load(&here.path().join("bp.yaml")).unwrap();
        let packed = pack(&blueprint);
        let elsewhere = tempfile::tempdir().unwrap();
        let path = unpack(&packed, &elsewhere.path().join("copy")).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        let copy = Blueprint::load(&path).unwrap();
        assert_eq!(std::fs::read_to_string(copy.dir.join("scripts/c.sh")).unwrap(), "echo created\n");
        assert!(!copy.dir.join("scripts/gone.sh").exists(), "a missing script stays missing");
        // Written once: a second unpack takes the folder as it is.
        assert_eq!(unpack(&packed, &elsewhere.path().join("copy")).unwrap(), path);
    }

    #[test]
    fn a_packed_path_leaving_the_folder_is_refused() {
        let packed = br#"{"blueprint": "bp.yaml", "files": {"../evil.sh": "rm -rf /"}}"#;
        let dir = tempfile::tempdir().unwrap();
        let error = unpack(packed, &dir.path().join("copy")).unwrap_err();
        assert!(error.to_string().contains("`../evil.sh` leaves the blueprint's folder"), "{error}");
    }
}
