//! `rhaiflow graph SCRIPT | BUNDLE WORKFLOW | BUILTIN --format dot|mermaid|json|text`: the
//! graph, drawn, nothing run.

use std::path::PathBuf;

use clap::Args;

use super::{params, report, report_all, target_options, DeploymentArgs};
use crate::graph::{render, Format};
use crate::runner::{self, RunOptions, Status};

#[derive(Args)]
pub struct GraphArgs {
    /// The workflow script (.rhai), or a bundle (folder, .tar.gz or installed name).
    target: PathBuf,
    /// The bundle's workflow.
    workflow: Option<String>,
    /// A workflow parameter; VALUE is JSON when it parses as JSON, else a string.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    #[command(flatten)]
    model: DeploymentArgs,
    /// Execution store holding the deployment (default: $RHAIFLOW_STORE, else ./.rhaiflow/).
    #[arg(long, value_name = "PATH")]
    store: Option<String>,
}

pub fn graph(args: GraphArgs) -> i32 {
    let prepared = params::collect(&args.params, None).map_err(|d| vec![d]).and_then(|given| {
        let mut options = RunOptions::new(&args.target);
        options.parameters = given;
        options.parameter_texts = params::texts(&args.params);
        options.dry_run = true;
        let mut options = target_options(&args.target, args.workflow.as_deref(), options)?;
        args.model.attach(&mut options, args.store.as_deref())?;
        Ok(options)
    });
    let options = match prepared {
        Ok(o) => o,
        Err(diagnostics) => return report_all(&diagnostics),
    };
    let outcome = runner::run(&options, Vec::new());
    if outcome.status != Status::Succeeded && outcome.dry_result_used_at.is_none() {
        if let Some(d) = &outcome.diagnostic {
            report(d);
        }
        return outcome.status.exit_code();
    }
    let guards: Vec<_> = outcome.graphs.iter().map(|g| g.graph.lock()).collect();
    let graphs: Vec<&crate::graph::TaskGraph> = guards.iter().map(|g| &**g).collect();
    if graphs.is_empty() {
        say!("{} builds no graph: it never calls graph_mode()", args.target.display());
    }
    say_text!(stdout, render(&graphs, args.format));
    0
}
