//! `rhaiflow repl [--blueprint FILE | --deployment NAME]`: the interactive session.

use std::path::PathBuf;

use clap::Args;

use super::{report_all, DeploymentArgs};
use crate::repl::session::SessionSetup;
use crate::repl::{self, ReplOptions};
use crate::runner::RunOptions;

#[derive(Args)]
pub struct ReplArgs {
    #[command(flatten)]
    model: DeploymentArgs,
    /// Execution store holding the deployment (default: $RHAIFLOW_STORE, else ./.rhaiflow/).
    #[arg(long, value_name = "PATH")]
    store: Option<String>,
    /// The history file (default: $XDG_STATE_HOME/rhaiflow/history, else
    /// ~/.local/state/rhaiflow/history).
    #[arg(long, value_name = "FILE")]
    history: Option<PathBuf>,
}

pub fn repl(args: ReplArgs) -> i32 {
    // Installed bundles are importable by name, as the stdlib is.
    let mut options = RunOptions::new("<repl>");
    options.modules = installed_bundles();
    if let Err(diagnostics) = args.model.attach(&mut options, args.store.as_deref()) {
        return report_all(&diagnostics);
    }
    let setup = SessionSetup { deployment: options.deployment, modules: options.modules };
    repl::run(ReplOptions { setup, history: args.history.or_else(default_history) })
}

/// The newest version of every installed bundle.
fn installed_bundles() -> Vec<crate::script::ModuleRoot> {
    let mut roots: Vec<crate::script::ModuleRoot> = Vec::new();
    for installed in crate::bundle::registry::list() {
        roots.retain(|r| r.name != installed.name);
        roots.push(crate::script::ModuleRoot { name: installed.name, dir: installed.dir });
    }
    roots
}

fn default_history() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("rhaiflow/history"))
}
