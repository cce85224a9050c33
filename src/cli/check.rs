//! `rhaiflow check SCRIPT | BUNDLE [WORKFLOW] | BUILTIN`: compile, build the graphs without
//! running a task, validate them; for a bundle, what `rhaiflow bundle check` does, then its
//! workflow if one is named. It takes the target options `run` takes, so that it checks what
//! that run would do.

use clap::Args;

use super::{report, report_all, Target, TargetArgs};
use crate::runner::{self, RunOptions, Status};

#[derive(Args)]
pub struct CheckArgs {
    #[command(flatten)]
    target: TargetArgs,
}

pub fn check(args: CheckArgs) -> i32 {
    let target = match args.target.resolve() {
        Ok(target) => target,
        Err(diagnostics) => return report_all(&diagnostics),
    };
    if let Target::Bundle(bundle) = &target {
        let checked = super::bundle::check_bundle(bundle);
        if checked != 0 || args.target.workflow.is_none() {
            return checked;
        }
    }
    let mut options = RunOptions::new(&args.target.target);
    options.dry_run = true;
    let options = match args.target.options(target, options) {
        Ok(options) => options,
        Err(diagnostics) => return report_all(&diagnostics),
    };
    let outcome = runner::run(&options, Vec::new());
    let tasks: usize = outcome.graphs.iter().map(|g| g.graph.lock().len()).sum();
    let shown = match &args.target.workflow {
        Some(workflow) => format!("{} {workflow}", args.target.target.display()),
        None => args.target.target.display().to_string(),
    };
    match (outcome.status, outcome.dry_result_used_at) {
        (Status::Succeeded, Some(at)) if outcome.dry_run_stopped_early => {
            say!(
                "✔ {shown} compiles; checked up to line {}, where it uses a task's result that only a real run has",
                at.line().unwrap_or(0)
            );
            0
        }
        (Status::Succeeded, _) => {
            say!("✔ {shown} compiles; its graphs hold {tasks} tasks and are valid");
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
