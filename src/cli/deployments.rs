//! `rhaiflow deployments create NAME --blueprint FILE | list | show NAME | delete NAME`:
//! deployments kept in the execution store, whose instances' states and runtime properties
//! carry over from one execution to the next (`rhaiflow run ... --deployment NAME`).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::report_all;
use crate::deploy::Blueprint;
use crate::diagnostic::{Code, Diagnostic};
use crate::store::{DeploymentStore, StoreError, StoreLocation};

#[derive(Args)]
pub struct DeploymentsArgs {
    #[command(subcommand)]
    command: DeploymentsCommand,
    /// Execution store, which keeps the deployments: a folder, a .db file or a PostgreSQL URL
    /// (postgres://user@host/db) (default: $RHAIFLOW_STORE, else ./.rhaiflow/).
    #[arg(long, value_name = "PATH", global = true)]
    store: Option<String>,
}

#[derive(Subcommand)]
enum DeploymentsCommand {
    /// Create a deployment of a blueprint: its instances, all `uninitialized`.
    Create {
        name: String,
        #[arg(long, value_name = "FILE")]
        blueprint: PathBuf,
    },
    /// The deployments, with how many instances are in each state.
    List {
        /// One JSON array of objects (name, blueprint, created_at, instances, states).
        #[arg(long)]
        json: bool,
    },
    /// A deployment's instances: node, container, state, runtime properties.
    Show { name: String },
    /// Forget a deployment (its instances must be uninstalled, unless --force).
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
    },
}

/// `deployments list --json`: the states as an object, `{"started": 3}`.
fn list_json(list: &[crate::store::deployments::DeploymentSummary]) -> String {
    let all: Vec<serde_json::Value> = list
        .iter()
        .map(|d| {
            let states: serde_json::Map<String, serde_json::Value> =
                d.states.iter().map(|(state, n)| (state.clone(), (*n).into())).collect();
            serde_json::json!({
                "name": d.name,
                "blueprint": d.blueprint,
                "created_at": d.created_at,
                "instances": d.instances,
                "states": states,
            })
        })
        .collect();
    serde_json::to_string_pretty(&all).unwrap_or_default()
}

pub fn deployments(args: DeploymentsArgs) -> i32 {
    super::end_quietly_on_closed_pipe();
    let done = StoreLocation::locate(args.store.as_deref()).and_then(|path| {
        DeploymentStore::open(&path).map_err(StoreError::into_deployments_diagnostic).and_then(|deployments| match args
            .command
        {
            DeploymentsCommand::Create { name, blueprint } => create(&deployments, &name, &blueprint),
            DeploymentsCommand::List { json: true } => {
                say_out!("{}", list_json(&deployments.list().map_err(StoreError::into_deployments_diagnostic)?));
                Ok(())
            }
            DeploymentsCommand::List { json: false } => list(&deployments, &path),
            DeploymentsCommand::Show { name } => show(&deployments, &name),
            DeploymentsCommand::Delete { name, force } => delete(&deployments, &name, force),
        })
    });
    match done {
        Ok(()) => 0,
        Err(d) => report_all(&[d]),
    }
}

fn create(deployments: &DeploymentStore, name: &str, file: &Path) -> Result<(), Diagnostic> {
    if !crate::names::is_identifier(name) {
        let message = format!("`{name}` cannot name a deployment: use letters, digits and `_`");
        return Err(Diagnostic::plain(Code::Deployments, message));
    }
    // The bundles its operations call are looked for when it runs.
    let blueprint = Blueprint::load(file)?;
    let d = deployments.create(name, file, blueprint).map_err(StoreError::into_deployments_diagnostic)?;
    let count = d.instances.lock().len();
    say!("✔ deployment {name} created from {}: {} nodes, {count} instances", file.display(), d.nodes.len());
    say!("  install it: rhaiflow run install --deployment {name}");
    Ok(())
}

fn list(deployments: &DeploymentStore, location: &StoreLocation) -> Result<(), Diagnostic> {
    let list = deployments.list().map_err(StoreError::into_deployments_diagnostic)?;
    if list.is_empty() {
        say!("no deployments in {location}");
        return Ok(());
    }
    // Tab-separated, so that `cut -f1` gives the names.
    say_out!("NAME\tINSTANCES\tCREATED\tBLUEPRINT");
    for d in list {
        let states: Vec<String> = d.states.iter().map(|(s, n)| format!("{n} {s}")).collect();
        say_out!("{}\t{} instances ({})\t{}\t{}", d.name, d.instances, states.join(", "), d.created_at, d.blueprint);
    }
    Ok(())
}

fn show(deployments: &DeploymentStore, name: &str) -> Result<(), Diagnostic> {
    let deployment = deployments.load(name).map_err(StoreError::into_deployments_diagnostic)?;
    say_out!("deployment {name}");
    let instances = deployment.instances.lock().clone();
    for i in instances {
        let data = deployment.data_of(&i.id);
        let inside = i.contained_in.map(|c| format!(" in {c}")).unwrap_or_default();
        let properties = serde_json::Value::Object(data.runtime_properties);
        let node = &deployment.nodes[i.node].id;
        say_out!("  {:<16} {:<12} {:<14}{inside}  {properties}", i.id, node, data.state);
    }
    Ok(())
}

/// Refused while instances are installed, unless `force`.
fn delete(deployments: &DeploymentStore, name: &str, force: bool) -> Result<(), Diagnostic> {
    let instances = deployments.instances(name).map_err(StoreError::into_deployments_diagnostic)?;
    let live: Vec<String> = instances
        .into_iter()
        .filter(|i| !matches!(i.data.state.as_str(), "uninitialized" | "deleted"))
        .map(|i| i.id)
        .collect();
    if !live.is_empty() && !force {
        let message = format!("deployment {name} still has installed instances ({})", live.join(", "));
        let help = format!("uninstall it first (rhaiflow run uninstall --deployment {name}), or use --force");
        return Err(Diagnostic::plain(Code::Deployments, message).with_help(help));
    }
    deployments.delete(name).map_err(StoreError::into_deployments_diagnostic)?;
    say!("✔ deployment {name} deleted");
    Ok(())
}
