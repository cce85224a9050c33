//! `rhaiflow run`'s store, opened while clap reads the command line.
//!
//! Opening a SQLite store (reading its schema, recovering its WAL) takes a large part of a
//! small run's start, and it ran on its own thread only once clap had built and parsed the
//! whole command line (a third of a millisecond and more). The store the run will use can be
//! told from the raw arguments as the run reads them: `--store PATH` (or `--store=PATH`), else
//! `RHAIFLOW_STORE`, else `.rhaiflow`. Only a SQLite store that exists already is opened this
//! early, and not for `--ephemeral`, `--submit`, `--dry-run` or `--help`: a command line that
//! turns out invalid still creates nothing. The run takes the opening only when it names the
//! same store (`runner::EarlyStore`); otherwise it is dropped unused.

use std::ffi::OsString;

use crate::runner::EarlyStore;
use crate::store::StoreLocation;

/// Arguments after which the run opens no store, or another way.
const NO_EARLY_STORE: [&str; 5] = ["--ephemeral", "--submit", "--dry-run", "--help", "-h"];

/// Starts opening the store of `rhaiflow run …` (`args`, the program's name first).
pub(super) fn open(args: impl IntoIterator<Item = OsString>) -> Option<EarlyStore> {
    let location = StoreLocation::locate(store_named(args)?.as_deref()).ok()?;
    let StoreLocation::Sqlite(path) = &location else { return None };
    if !path.is_file() {
        return None;
    }
    EarlyStore::start(location)
}

/// For `rhaiflow run`: the value of its `--store`, if given (`Some(None)` when not); `None`
/// for any other command, or a run that opens no store or another way.
fn store_named(args: impl IntoIterator<Item = OsString>) -> Option<Option<String>> {
    let mut args = args.into_iter().skip(1).map(|arg| arg.into_string().ok());
    if args.next()?.as_deref() != Some("run") {
        return None;
    }
    let mut store = None;
    while let Some(arg) = args.next() {
        let arg = arg?;
        if NO_EARLY_STORE.contains(&arg.as_str()) {
            return None;
        }
        if arg == "--store" {
            store = Some(args.next()??);
        } else if let Some(value) = arg.strip_prefix("--store=") {
            store = Some(value.to_string());
        }
    }
    Some(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn named(line: &str) -> Option<Option<String>> {
        store_named(line.split(' ').map(OsString::from))
    }

    #[test]
    fn the_store_is_read_from_a_run_command_line_as_the_run_reads_it() {
        assert_eq!(named("rhaiflow run hello.rhai"), Some(None));
        assert_eq!(named("rhaiflow run hello.rhai --store s.db -q"), Some(Some("s.db".into())));
        assert_eq!(named("rhaiflow run --store=runs/ hello.rhai"), Some(Some("runs/".into())));
        assert_eq!(named("rhaiflow run hello.rhai --store"), None, "clap will refuse it");
        for other in ["rhaiflow check hello.rhai --store s.db", "rhaiflow executions list", "rhaiflow"] {
            assert_eq!(named(other), None, "{other}");
        }
        for no_store in ["--ephemeral", "--submit", "--dry-run", "--help", "-h"] {
            assert_eq!(named(&format!("rhaiflow run hello.rhai --store s.db {no_store}")), None, "{no_store}");
        }
    }

    // Opened early, a store that does not exist would be created by a command line that
    // clap then refuses.
    #[test]
    fn only_a_store_that_exists_is_opened_early() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("s.db");
        let line = |store: &std::path::Path| {
            ["rhaiflow", "run", "--bogus", "--store", store.to_str().unwrap()].map(OsString::from)
        };
        assert!(open(line(&store)).is_none());
        assert!(!store.exists(), "nothing created");
        drop(crate::store::open(&StoreLocation::Sqlite(store.clone())).unwrap());
        assert!(open(line(&store)).is_some());
    }
}
