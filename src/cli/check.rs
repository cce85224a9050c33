//! `rhaiflow check SCRIPT`: compile, build the graphs without running a task, validate them.

use std::path::PathBuf;

use clap::Args;

use super::{report, script_target};
use crate::runner::{self, RunOptions, Status};

#[derive(Args)]
pub struct CheckArgs {
    /// The workflow script (.rhai).
    target: PathBuf,
}

pub fn check(args: CheckArgs) -> i32 {
    let script = match script_target(&args.target) {
        Ok(s) => s,
        Err(d) => {
            report(&d);
            return 2;
        }
    };
    let mut options = RunOptions::new(script);
    options.dry_run = true;
    let outcome = runner::run(&options, Vec::new());
    let tasks: usize = outcome.graphs.iter().map(|g| g.graph.lock().len()).sum();
    match (outcome.status, outcome.dry_result_used_at) {
        (Status::Succeeded, _) => {
            eprintln!("✔ {} compiles; its graphs hold {tasks} tasks and are valid", args.target.display());
            0
        }
        (_, Some(at)) if outcome.status != Status::Invalid || tasks == 0 => {
            eprintln!(
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
