//! `rhaiflow check SCRIPT | BUNDLE`: compile, build the graphs without running a task,
//! validate them; for a bundle, what `rhaiflow bundle check` does.

use std::path::PathBuf;

use clap::Args;

use super::{report, report_all, resolve_target, Target};
use crate::runner::{self, RunOptions, Status};

#[derive(Args)]
pub struct CheckArgs {
    /// The workflow script (.rhai), or a bundle (folder, .tar.gz or installed name).
    target: PathBuf,
}

pub fn check(args: CheckArgs) -> i32 {
    let script = match resolve_target(&args.target) {
        Ok(Target::Script(script)) => script,
        Ok(Target::Bundle(bundle)) => return super::bundle::check_bundle(&bundle),
        Ok(Target::Builtin(name)) => {
            say!("✔ `{name}` is a built-in workflow: give `rhaiflow run {name} --blueprint FILE` to run it");
            return 0;
        }
        Err(diagnostics) => return report_all(&diagnostics),
    };
    let mut options = RunOptions::new(script);
    options.dry_run = true;
    let outcome = runner::run(&options, Vec::new());
    let tasks: usize = outcome.graphs.iter().map(|g| g.graph.lock().len()).sum();
    match (outcome.status, outcome.dry_result_used_at) {
        (Status::Succeeded, _) => {
            say!("✔ {} compiles; its graphs hold {tasks} tasks and are valid", args.target.display());
            0
        }
        (_, Some(at)) if outcome.status != Status::Invalid || tasks == 0 => {
            say!(
                "✔ {} compiles; checked up to line {}, where it uses a task's result that only a real run has",
                args.target.display(),
                at.line().unwrap_or(0)
            );
            0
        }
        _ => {
            if let Some(d) = &outcome.diagnostic {
                report(d);
            }
            2
        }
    }
}
