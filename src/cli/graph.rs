//! `rhaiflow graph SCRIPT | BUNDLE WORKFLOW | BUILTIN --format dot|mermaid|json|text`: the
//! graph, drawn, nothing run. It takes the target options `run` takes.

use clap::Args;

use super::{report, report_all, TargetArgs};
use crate::graph::{render, Format};
use crate::runner::{self, RunOptions, Status};

#[derive(Args)]
pub struct GraphArgs {
    #[command(flatten)]
    target: TargetArgs,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn graph(args: GraphArgs) -> i32 {
    let mut options = RunOptions::new(&args.target.target);
    options.dry_run = true;
    let prepared = args.target.resolve().and_then(|target| args.target.options(target, options));
    let options = match prepared {
        Ok(o) => o,
        Err(diagnostics) => return report_all(&diagnostics),
    };
    let outcome = runner::run(&options, Vec::new());
    if outcome.status != Status::Succeeded {
        if let Some(d) = &outcome.diagnostic {
            report(d);
        }
        return outcome.status.exit_code();
    }
    let guards: Vec<_> = outcome.graphs.iter().map(|g| g.graph.lock()).collect();
    let graphs: Vec<&crate::graph::TaskGraph> = guards.iter().map(|g| &**g).collect();
    if graphs.is_empty() {
        say!("{} builds no graph: it never calls graph_mode()", args.target.target.display());
    }
    say_text!(stdout, render(&graphs, args.format));
    0
}
