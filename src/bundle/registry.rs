//! Installed bundles: `<root>/<name>/<version>/`, versions side by side, the newest run by
//! name. The root is `$RHAIFLOW_BUNDLES`, else `$XDG_DATA_HOME/rhaiflow/bundles`, else
//! `~/.local/share/rhaiflow/bundles`.

use std::path::{Path, PathBuf};

use super::{archive, Bundle};
use crate::diagnostic::{Code, Diagnostic};
use crate::names::version_order;

pub fn root() -> PathBuf {
    if let Some(dir) = std::env::var_os("RHAIFLOW_BUNDLES").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from(".rhaiflow"));
    data.join("rhaiflow/bundles")
}

fn failed(message: impl Into<String>) -> Diagnostic {
    Diagnostic::plain(Code::BundleRegistry, message)
}

/// An installed version of a bundle.
#[derive(Debug)]
pub struct Installed {
    pub name: String,
    pub version: String,
    pub dir: PathBuf,
}

/// Installs the bundle in `source` (a folder, or a `.tar.gz` made by `bundle pack`): the
/// archive is verified and unpacked into a scratch folder, checked, then moved into place.
/// A version already installed is replaced only with `replace`.
pub fn install(source: &Path, replace: bool) -> Result<Installed, Vec<Diagnostic>> {
    let bytes = if archive::is_archive(source) {
        archive::read(source).map_err(|d| vec![d])?
    } else {
        archive::pack(&Bundle::load(source).map_err(|d| vec![d])?)?
    };
    let root = root();
    std::fs::create_dir_all(&root).map_err(|e| vec![failed(format!("cannot create {}: {e}", root.display()))])?;
    let scratch = root.join(format!(".installing-{}", uuid::Uuid::new_v4()));
    let result = unpack_checked(&bytes, &scratch).and_then(|bundle| {
        let dest = root.join(&bundle.manifest.name).join(&bundle.manifest.version);
        if dest.exists() {
            if !replace {
                return Err(vec![failed(format!(
                    "{} {} is installed already (use --force to replace it)",
                    bundle.manifest.name, bundle.manifest.version
                ))]);
            }
            std::fs::remove_dir_all(&dest)
                .map_err(|e| vec![failed(format!("cannot replace {}: {e}", dest.display()))])?;
        }
        std::fs::create_dir_all(dest.parent().unwrap_or(&root)).map_err(|e| vec![failed(e.to_string())])?;
        std::fs::rename(&scratch, &dest)
            .map_err(|e| vec![failed(format!("cannot install into {}: {e}", dest.display()))])?;
        Ok(Installed { name: bundle.manifest.name.clone(), version: bundle.manifest.version.clone(), dir: dest })
    });
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// Unpacks and checks an archive into `dir`.
fn unpack_checked(bytes: &[u8], dir: &Path) -> Result<Bundle, Vec<Diagnostic>> {
    archive::unpack(bytes, dir).map_err(|d| vec![d])?;
    let bundle = Bundle::load(dir).map_err(|d| vec![d])?;
    super::check::check(&bundle)?;
    Ok(bundle)
}

/// Every installed version, by name, oldest version first.
pub fn list() -> Vec<Installed> {
    let root = root();
    let mut all = Vec::new();
    for name in subfolders(&root) {
        for version in subfolders(&root.join(&name)) {
            let dir = root.join(&name).join(&version);
            all.push(Installed { name: name.clone(), version, dir });
        }
    }
    all.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| version_order(&a.version, &b.version)));
    all
}

fn subfolders(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

/// The newest installed version of `name`.
pub fn find(name: &str) -> Option<Installed> {
    list().into_iter().rfind(|i| i.name == name)
}

/// Removes `name` (one `version`, or all of them); says what it removed.
pub fn remove(name: &str, version: Option<&str>) -> Result<Vec<Installed>, Diagnostic> {
    let matching: Vec<Installed> =
        list().into_iter().filter(|i| i.name == name && version.is_none_or(|v| v == i.version)).collect();
    if matching.is_empty() {
        let what = version.map(|v| format!("{name} {v}")).unwrap_or(name.to_string());
        return Err(failed(format!("{what} is not installed")).with_help("`rhaiflow bundle list` shows what is"));
    }
    for installed in &matching {
        std::fs::remove_dir_all(&installed.dir)
            .map_err(|e| failed(format!("cannot remove {}: {e}", installed.dir.display())))?;
    }
    let name_dir = root().join(name);
    if subfolders(&name_dir).is_empty() {
        let _ = std::fs::remove_dir_all(name_dir);
    }
    Ok(matching)
}

/// An archive to run directly: unpacked once into a folder named by its checksum (so a
/// resume finds the same files), verified and checked like an install.
pub fn unpacked(archive_path: &Path) -> Result<Bundle, Vec<Diagnostic>> {
    let bytes = archive::read(archive_path).map_err(|d| vec![d])?;
    unpacked_bytes(&bytes)
}

/// `unpacked` for an archive's bytes (a bundle that came through the store).
pub fn unpacked_bytes(bytes: &[u8]) -> Result<Bundle, Vec<Diagnostic>> {
    let dir = root().join(".unpacked").join(archive::sha256_hex(bytes));
    if dir.join(super::MANIFEST_FILE).exists() {
        return Bundle::load(&dir).map_err(|d| vec![d]);
    }
    let scratch = root().join(format!(".unpacking-{}", uuid::Uuid::new_v4()));
    let result = unpack_checked(bytes, &scratch).and_then(|_| {
        std::fs::create_dir_all(dir.parent().unwrap_or(&dir)).map_err(|e| vec![failed(e.to_string())])?;
        match std::fs::rename(&scratch, &dir) {
            // Another process unpacked the same archive first: its copy is as good.
            Err(_) if dir.join(super::MANIFEST_FILE).exists() => {}
            Err(e) => return Err(vec![failed(format!("cannot unpack into {}: {e}", dir.display()))]),
            Ok(()) => {}
        }
        Bundle::load(&dir).map_err(|d| vec![d])
    });
    let _ = std::fs::remove_dir_all(&scratch);
    result
}
