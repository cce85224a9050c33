//! `rhaiflow bundle new | check | test | pack | install | list | remove`: what a plugin author
//! and an operator do with bundles.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::{report, report_all};
use crate::bundle::{archive, check, registry, scaffold, Bundle};
use crate::runner::bundle_tests as testing;
use crate::runner::Status;

#[derive(Args)]
pub struct BundleArgs {
    #[command(subcommand)]
    command: BundleCommand,
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Write a working bundle to start from: a workflow, an operation, a README and tests.
    New {
        /// The bundle's name (a word: scripts import its modules as "NAME/module").
        name: String,
        /// The folder to create it in.
        #[arg(long, default_value = ".", value_name = "DIR")]
        dir: PathBuf,
    },
    /// Check the manifest, compile every module, match every workflow to its function.
    Check { dir: PathBuf },
    /// Run the bundle's tests (tests/*.rhai): workflows in-process, tasks mocked as told.
    Test { dir: PathBuf },
    /// Pack the bundle into one reproducible .tar.gz with a checksum of every file.
    Pack {
        dir: PathBuf,
        /// The archive to write (default: NAME-VERSION.tar.gz here).
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Install a bundle (a .tar.gz or a folder); versions live side by side.
    Install {
        source: PathBuf,
        /// Replace the same version if it is installed already.
        #[arg(long)]
        force: bool,
    },
    /// The installed bundles and their workflows.
    List {
        /// One JSON array of objects (name, version, dir, description, workflows).
        #[arg(long)]
        json: bool,
    },
    /// Remove an installed bundle (every version, or one).
    Remove {
        name: String,
        #[arg(long)]
        version: Option<String>,
    },
}

pub fn bundle(args: BundleArgs) -> i32 {
    match args.command {
        BundleCommand::New { name, dir } => match scaffold::create(&dir, &name) {
            Ok(created) => {
                say!("✔ created bundle {name} in {}", created.display());
                say!("  try: rhaiflow bundle test {0} && rhaiflow run {0} deploy -p server=web1", created.display());
                0
            }
            Err(d) => report_all(&[d]),
        },
        BundleCommand::Check { dir } => with_bundle(&dir, check_bundle),
        BundleCommand::Test { dir } => with_bundle(&dir, test_bundle),
        BundleCommand::Pack { dir, output } => with_bundle(&dir, |bundle| pack(bundle, output.as_deref())),
        BundleCommand::Install { source, force } => match registry::install(&source, force) {
            Ok(installed) => {
                say!("✔ installed {} {} in {}", installed.name, installed.version, installed.dir.display());
                0
            }
            Err(diagnostics) => report_all(&diagnostics),
        },
        BundleCommand::List { json } => {
            super::end_quietly_on_closed_pipe();
            if json {
                list_json()
            } else {
                list()
            }
        }
        BundleCommand::Remove { name, version } => match registry::remove(&name, version.as_deref()) {
            Ok(removed) => {
                for r in removed {
                    say!("✔ removed {} {}", r.name, r.version);
                }
                0
            }
            Err(d) => report_all(&[d]),
        },
    }
}

fn with_bundle(dir: &Path, f: impl FnOnce(&Bundle) -> i32) -> i32 {
    match Bundle::load(dir) {
        Ok(bundle) => f(&bundle),
        Err(d) => report_all(&[d]),
    }
}

/// `bundle check` (and `check BUNDLE`): the problems, or a summary of the workflows.
pub fn check_bundle(bundle: &Bundle) -> i32 {
    match check::check(bundle) {
        Err(diagnostics) => report_all(&diagnostics),
        Ok(checked) => {
            let m = &bundle.manifest;
            say!(
                "✔ bundle {} {}: {} compile, {} map to their functions, {}",
                m.name,
                m.version,
                count(checked.modules, "module"),
                count(m.workflows.len(), "workflow"),
                count(checked.tests, "test")
            );
            for workflow in &m.workflows {
                let params: Vec<String> = workflow
                    .parameters
                    .iter()
                    .map(|p| match (&p.default, p.mandatory()) {
                        (Some(d), _) => format!("{}={d}", p.name),
                        (None, true) => p.name.clone(),
                        (None, false) => format!("{}?", p.name),
                    })
                    .collect();
                let line = format!("  {}({})  {}", workflow.name, params.join(", "), workflow.description);
                say!("{}", line.trim_end());
            }
            0
        }
    }
}

/// "1 module", "3 modules".
fn count(n: usize, thing: &str) -> String {
    if n == 1 {
        format!("1 {thing}")
    } else {
        format!("{n} {thing}s")
    }
}

fn test_bundle(bundle: &Bundle) -> i32 {
    if let Err(diagnostics) = check::check(bundle) {
        return report_all(&diagnostics);
    }
    let shown = |file: &Path| file.strip_prefix(&bundle.dir).unwrap_or(file).display().to_string();
    let results = testing::run_tests(bundle, |result| {
        let ms = result.report.elapsed.as_millis();
        match result.report.status {
            Status::Succeeded => say!("test {} ... ok ({ms} ms)", shown(&result.file)),
            _ => say!("test {} ... FAILED ({ms} ms)", shown(&result.file)),
        }
        // What the test printed, under its result, before the diagnostic.
        for line in result.printed.iter().flat_map(|printed| printed.lines()) {
            say!("    {line}");
        }
        if let (Some(d), false) = (&result.report.diagnostic, result.report.status == Status::Succeeded) {
            report(d);
        }
    });
    let failed = results.iter().filter(|r| r.report.status != Status::Succeeded).count();
    if results.is_empty() {
        say!("no tests: write them as tests/*.rhai (`rhaiflow bundle new` shows how)");
    } else {
        say!("{} passed, {failed} failed", results.len() - failed);
    }
    if failed > 0 {
        1
    } else {
        0
    }
}

fn pack(bundle: &Bundle, output: Option<&Path>) -> i32 {
    let bytes = match archive::pack(bundle) {
        Ok(bytes) => bytes,
        Err(diagnostics) => return report_all(&diagnostics),
    };
    let m = &bundle.manifest;
    let output =
        output.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(format!("{}-{}.tar.gz", m.name, m.version)));
    if let Err(e) = std::fs::write(&output, &bytes) {
        say!("rhaiflow: cannot write {}: {e}", output.display());
        return 2;
    }
    say!(
        "✔ packed {} {} into {} ({} bytes, sha256 {})",
        m.name,
        m.version,
        output.display(),
        bytes.len(),
        archive::sha256_hex(&bytes)
    );
    0
}

fn list() -> i32 {
    let installed = registry::list();
    if installed.is_empty() {
        say!("no bundles installed in {}", registry::root().display());
        return 0;
    }
    for i in installed {
        let workflows = Bundle::load(&i.dir)
            .map(|b| b.manifest.workflow_names())
            .unwrap_or_else(|d| format!("(unreadable: {})", d.message));
        say_out!("{}\t{}\t{}", i.name, i.version, workflows);
    }
    0
}

/// `bundle list --json`; a bundle that no longer loads has its `error` instead of workflows.
fn list_json() -> i32 {
    let all: Vec<serde_json::Value> = registry::list()
        .into_iter()
        .map(|i| {
            let mut entry = serde_json::json!({ "name": i.name, "version": i.version, "dir": i.dir });
            match Bundle::load(&i.dir) {
                Ok(b) => {
                    let workflows: Vec<&str> = b.manifest.workflows.iter().map(|w| w.name.as_str()).collect();
                    entry["description"] = b.manifest.description.clone().into();
                    entry["workflows"] = workflows.into();
                }
                Err(d) => entry["error"] = d.message.clone().into(),
            }
            entry
        })
        .collect();
    say_out!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
    0
}
