//! Compiles and evaluates arbitrary script text with the whole host API, as `rhaiflow run
//! --dry-run --ephemeral` would: no process runs, nothing is recorded. A Rhai error (compile
//! or runtime, a limit reached) is a fine outcome; a panic, an abort, a hang or a diagnostic
//! that says "this is a bug in rhaiflow" is a finding.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use rhaiflow::diagnostic::render;
use rhaiflow::{run, Limits, RunOptions, StoreChoice};

/// One folder for the whole fuzzing process: each input overwrites the one script in it.
fn script_path() -> &'static PathBuf {
    static DIR: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let path = dir.path().join("fuzzed.rhai");
        (dir, path)
    });
    path
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let path = script_path();
    std::fs::write(path, text).expect("the script is written");
    let mut options = RunOptions::new(path);
    options.dry_run = true;
    options.store = StoreChoice::Ephemeral;
    // Low limits: a loop or a recursion ends in milliseconds, as an error, not a timeout.
    options.limits = Limits {
        max_operations: 20_000,
        max_call_levels: 16,
        max_memory: rhaiflow::fuzzing::memory_in_use() + (512 << 20),
        max_tasks: 10_000,
    };
    let report = run(&options, Vec::new());
    if let Some(diagnostic) = &report.diagnostic {
        assert_ne!(diagnostic.code, rhaiflow::diagnostic::Code::Bug, "an internal error: {}", diagnostic.message);
        // Diagnostics point into the fuzzed text: rendering them must not panic either.
        let _ = render(diagnostic, false);
    }
});
