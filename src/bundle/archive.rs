//! Bundles as `.tar.gz` files: packed reproducibly (sorted entries, no timestamps or owners,
//! a `CHECKSUMS` file of SHA-256 sums first), and unpacked defensively: no absolute paths, no
//! `..`, no links or devices, bounded sizes, and every file's checksum verified.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::{Compression, GzBuilder};

use super::{check, Bundle};
use crate::diagnostic::{Code, Diagnostic};

/// The checksum manifest inside every archive: `<sha256>  <path>` a line.
pub const CHECKSUMS: &str = "CHECKSUMS";
/// Limits on what an archive may unpack to.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
pub const MAX_TOTAL_BYTES: u64 = 128 << 20;
pub const MAX_ENTRIES: usize = 10_000;

fn bad(message: impl Into<String>) -> Diagnostic {
    Diagnostic::plain(Code::BadArchive, message)
}

/// Packs the bundle in `dir` (which must pass `bundle check`) into `.tar.gz` bytes. The same
/// files give the same bytes: entries are sorted, with no times, owners or extended attributes.
pub fn pack(bundle: &Bundle) -> Result<Vec<u8>, Vec<Diagnostic>> {
    check::check(bundle)?;
    let files = bundle_files(&bundle.dir).map_err(|d| vec![d])?;
    let mut sums = String::new();
    let mut contents = Vec::new();
    // An installed bundle's folder holds the CHECKSUMS it was unpacked with: the new one
    // stands for it (twice in one archive, it is refused when unpacked).
    for (relative, path) in files.iter().filter(|(relative, _)| relative != CHECKSUMS) {
        let bytes = std::fs::read(path).map_err(|e| vec![bad(format!("cannot read {}: {e}", path.display()))])?;
        sums.push_str(&format!("{}  {relative}\n", sha256_hex(&bytes)));
        contents.push((relative.clone(), bytes, is_executable(path)));
    }
    let top = format!("{}-{}", bundle.manifest.name, bundle.manifest.version);
    let gz = GzBuilder::new().mtime(0).write(Vec::new(), Compression::best());
    let mut tar = tar::Builder::new(gz);
    tar.mode(tar::HeaderMode::Deterministic);
    let io = |e: std::io::Error| vec![bad(format!("cannot write the archive: {e}"))];
    append(&mut tar, &format!("{top}/{CHECKSUMS}"), sums.as_bytes(), false).map_err(io)?;
    for (relative, bytes, executable) in &contents {
        append(&mut tar, &format!("{top}/{relative}"), bytes, *executable).map_err(io)?;
    }
    let gz = tar.into_inner().map_err(io)?;
    gz.finish().map_err(io)
}

fn append(tar: &mut tar::Builder<impl Write>, path: &str, bytes: &[u8], executable: bool) -> std::io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(bytes.len() as u64);
    header.set_mode(if executable { 0o755 } else { 0o644 });
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    tar.append_data(&mut header, path, bytes)
}

/// The files a bundle is made of, as (path inside the bundle, path on disk), sorted. Hidden
/// files and folders are left out; a link is refused, since it could point anywhere.
fn bundle_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, Diagnostic> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder).map_err(|e| bad(format!("cannot read {}: {e}", folder.display())))?;
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let path = entry.path();
            let kind = entry.file_type().map_err(|e| bad(format!("{}: {e}", path.display())))?;
            if kind.is_symlink() {
                return Err(bad(format!("{} is a link: a bundle holds only files and folders", path.display())));
            } else if kind.is_dir() {
                folders.push(path);
            } else if kind.is_file() {
                let relative = path.strip_prefix(dir).unwrap_or(&path);
                let relative =
                    relative.to_str().ok_or_else(|| bad(format!("{}: file names must be UTF-8", path.display())))?;
                files.push((relative.replace('\\', "/"), path));
            }
        }
    }
    files.sort();
    Ok(files)
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o111 != 0)
}

pub use crate::embedded::sha256_hex;

/// Unpacks `archive` (a `.tar.gz` made by `pack`) into the new folder `dest`, refusing
/// anything unsafe, and verifies every checksum. On error `dest` may hold part of the
/// archive; the caller removes it.
pub fn unpack(archive: &[u8], dest: &Path) -> Result<(), Diagnostic> {
    let mut tar = tar::Archive::new(GzDecoder::new(archive));
    let entries = tar.entries().map_err(|e| bad(format!("not a .tar.gz archive: {e}")))?;
    let mut top: Option<String> = None;
    let mut total = 0u64;
    let mut written: Vec<(String, Vec<u8>)> = Vec::new();
    for (count, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| bad(format!("the archive is damaged: {e}")))?;
        if count >= MAX_ENTRIES {
            return Err(bad(format!("the archive has more than {MAX_ENTRIES} entries")));
        }
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8(raw).map_err(|_| bad("the archive has a file name that is not UTF-8"))?;
        let (first, relative) = safe_path(&name)?;
        match &top {
            None => top = Some(first.clone()),
            Some(t) if *t != first => {
                return Err(bad(format!("`{name}` is outside the archive's one top folder `{t}`")));
            }
            _ => {}
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => continue,
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => return Err(bad(format!("`{name}` is a {other:?} entry: only files and folders are allowed"))),
        }
        let Some(relative) = relative else { continue };
        let size = entry.header().size().map_err(|e| bad(format!("`{name}`: {e}")))?;
        if size > MAX_FILE_BYTES {
            return Err(bad(format!("`{name}` is {size} bytes: files are limited to {MAX_FILE_BYTES}")));
        }
        total += size;
        if total > MAX_TOTAL_BYTES {
            return Err(bad(format!("the archive unpacks to more than {MAX_TOTAL_BYTES} bytes")));
        }
        let mut bytes = Vec::with_capacity(size as usize);
        (&mut entry).take(size).read_to_end(&mut bytes).map_err(|e| bad(format!("`{name}`: {e}")))?;
        let mode = entry.header().mode().unwrap_or(0o644);
        let path = dest.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| bad(format!("cannot create {}: {e}", parent.display())))?;
        }
        write_new(&path, &bytes, mode & 0o111 != 0)?;
        written.push((relative, bytes));
    }
    verify(&written)
}

/// Splits an entry's path into its top folder and the rest, refusing absolute paths and `..`.
fn safe_path(name: &str) -> Result<(String, Option<String>), Diagnostic> {
    let mut parts = Vec::new();
    for component in Path::new(name).components() {
        match component {
            Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => return Err(bad(format!("`{name}` climbs out with `..`: refused"))),
            Component::RootDir | Component::Prefix(_) => {
                return Err(bad(format!("`{name}` is an absolute path: refused")))
            }
        }
    }
    let Some((first, rest)) = parts.split_first() else {
        return Err(bad("the archive has an entry with an empty name"));
    };
    Ok((first.clone(), (!rest.is_empty()).then(|| rest.join("/"))))
}

fn write_new(path: &Path, bytes: &[u8], executable: bool) -> Result<(), Diagnostic> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(path)
        .map_err(|e| bad(format!("cannot write {}: {e} (is a file in the archive twice?)", path.display())))?;
    file.write_all(bytes).map_err(|e| bad(format!("cannot write {}: {e}", path.display())))
}

/// Every file is listed in CHECKSUMS with its sum, and every listed file is there.
fn verify(files: &[(String, Vec<u8>)]) -> Result<(), Diagnostic> {
    let sums = files
        .iter()
        .find(|(name, _)| name == CHECKSUMS)
        .ok_or_else(|| bad(format!("the archive has no {CHECKSUMS}: it was not made by `rhaiflow bundle pack`")))?;
    let sums = std::str::from_utf8(&sums.1).map_err(|_| bad(format!("{CHECKSUMS} is not text")))?;
    let mut listed = std::collections::HashMap::new();
    for line in sums.lines().filter(|l| !l.trim().is_empty()) {
        let (sum, name) =
            line.split_once("  ").ok_or_else(|| bad(format!("{CHECKSUMS}: `{line}` is not `<sha256>  <path>`")))?;
        listed.insert(name.to_string(), sum.to_string());
    }
    for (name, bytes) in files.iter().filter(|(name, _)| name != CHECKSUMS) {
        match listed.remove(name) {
            None => return Err(bad(format!("`{name}` is not in {CHECKSUMS}: the archive was changed after packing"))),
            Some(sum) if sum != sha256_hex(bytes) => {
                return Err(bad(format!("`{name}` does not match its checksum: the archive was changed or damaged")))
            }
            Some(_) => {}
        }
    }
    if let Some(name) = listed.keys().next() {
        return Err(bad(format!("`{name}` is in {CHECKSUMS} but not in the archive")));
    }
    Ok(())
}

/// Reads an archive file, refusing one larger than any bundle could be.
pub fn read(path: &Path) -> Result<Vec<u8>, Diagnostic> {
    let size = std::fs::metadata(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?.len();
    if size > MAX_TOTAL_BYTES {
        return Err(bad(format!("{} is {size} bytes: larger than any bundle may be", path.display())));
    }
    std::fs::read(path).map_err(|e| bad(format!("cannot read {}: {e}", path.display())))
}

/// Is `path` a bundle archive (by its name)?
pub fn is_archive(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    name.ends_with(".tar.gz") || name.ends_with(".tgz")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive_of(entries: &[(&str, &[u8], tar::EntryType)]) -> Vec<u8> {
        let mut tar = tar::Builder::new(Vec::new());
        for (path, bytes, kind) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(*kind);
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            // Write the name raw: the builder itself refuses `..` and absolute paths.
            header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            tar.append(&header, *bytes).unwrap();
        }
        let mut gz = GzBuilder::new().write(Vec::new(), Compression::fast());
        gz.write_all(&tar.into_inner().unwrap()).unwrap();
        gz.finish().unwrap()
    }

    fn unpack_error(entries: &[(&str, &[u8], tar::EntryType)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        unpack(&archive_of(entries), &dir.path().join("out")).unwrap_err().into_message()
    }

    #[test]
    fn climbing_out_absolute_paths_and_links_are_refused() {
        use tar::EntryType::*;
        assert!(unpack_error(&[("demo/../../evil", b"x", Regular)]).contains("`..`"));
        assert!(unpack_error(&[("/etc/evil", b"x", Regular)]).contains("absolute"));
        assert!(unpack_error(&[("demo/a", b"", Symlink)]).contains("Symlink"));
        assert!(unpack_error(&[("demo/a", b"", Link)]).contains("Link"));
        assert!(unpack_error(&[("demo/a", b"x", Regular), ("other/b", b"x", Regular)]).contains("top folder"));
    }

    #[test]
    fn checksums_must_cover_every_file() {
        use tar::EntryType::*;
        let sum = format!("{}  plugin.yaml\n", sha256_hex(b"good"));
        assert!(unpack_error(&[("d/plugin.yaml", b"good", Regular)]).contains("no CHECKSUMS"));
        let changed = unpack_error(&[("d/CHECKSUMS", sum.as_bytes(), Regular), ("d/plugin.yaml", b"evil", Regular)]);
        assert!(changed.contains("does not match its checksum"), "{changed}");
        let extra = unpack_error(&[
            ("d/CHECKSUMS", sum.as_bytes(), Regular),
            ("d/plugin.yaml", b"good", Regular),
            ("d/more.rhai", b"x", Regular),
        ]);
        assert!(extra.contains("not in CHECKSUMS"), "{extra}");
        let dir = tempfile::tempdir().unwrap();
        let good = archive_of(&[("d/CHECKSUMS", sum.as_bytes(), Regular), ("d/plugin.yaml", b"good", Regular)]);
        unpack(&good, dir.path()).unwrap();
        assert_eq!(std::fs::read(dir.path().join("plugin.yaml")).unwrap(), b"good");
    }

    #[test]
    fn oversized_entries_are_refused_before_reading() {
        use tar::EntryType::*;
        let mut header = tar::Header::new_gnu();
        header.set_path("d/big").unwrap();
        header.set_entry_type(Regular);
        header.set_size(MAX_FILE_BYTES + 1);
        header.set_cksum();
        let mut raw = header.as_bytes().to_vec();
        raw.extend(std::iter::repeat_n(0u8, 1024));
        let mut gz = GzBuilder::new().write(Vec::new(), Compression::fast());
        gz.write_all(&raw).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let err = unpack(&gz.finish().unwrap(), dir.path()).unwrap_err();
        assert!(err.message.contains("limited to"), "{}", err.message);
    }
}
