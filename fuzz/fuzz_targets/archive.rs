//! Unpacks arbitrary bytes as a bundle archive into a fresh folder, as `rhaiflow bundle
//! install` does. A refusal is a fine outcome; a panic, an abort, a hang, anything written
//! beside the destination folder, or a link inside it is a finding.
//!
//! An input that is not gzip (no `1f 8b` at its start) is a plain tar the target compresses
//! first: mutating compressed bytes mostly breaks the deflate stream, so without this the
//! fuzzer would rarely reach the tar entries and the checks on them.

#![no_main]

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use libfuzzer_sys::fuzz_target;
use rhaiflow::fuzzing::unpack;
use rhaiflow::diagnostic::render;

fuzz_target!(|data: &[u8]| {
    // root/inner/dest: an entry that climbs out one or two levels shows up in root or inner.
    let root = tempfile::tempdir().expect("a temporary folder");
    let inner = root.path().join("inner");
    std::fs::create_dir(&inner).expect("a folder");
    let dest = inner.join("dest");
    let archive = if data.starts_with(&[0x1f, 0x8b]) { data.to_vec() } else { gzip(data) };
    if let Err(diagnostic) = unpack(&archive, &dest) {
        let _ = render(&diagnostic, false);
    }
    assert_eq!(names(root.path()), ["inner"], "unpack wrote beside its destination");
    let beside = names(&inner);
    assert!(beside.is_empty() || beside == ["dest"], "unpack wrote beside its destination: {beside:?}");
    if dest.exists() {
        assert_no_links(&dest);
    }
});

fn gzip(tar: &[u8]) -> Vec<u8> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
    gz.write_all(tar).expect("compressed in memory");
    gz.finish().expect("compressed in memory")
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("the folder is readable")
        .map(|e| e.expect("an entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn assert_no_links(dir: &Path) {
    for entry in std::fs::read_dir(dir).expect("the folder is readable") {
        let entry = entry.expect("an entry");
        let kind = entry.file_type().expect("its type");
        assert!(!kind.is_symlink(), "unpack made a link: {}", entry.path().display());
        if kind.is_dir() {
            assert_no_links(&entry.path());
        }
    }
}
