//! The one way a run gets its deployment, whether the command line names it (`run`, `check`,
//! `graph`, `repl`) or a resume reads it from what its execution recorded: load the blueprint
//! or the stored deployment, then resolve the bundles its operations call.

use std::path::Path;
use std::sync::Arc;

use super::RunOptions;
use crate::deploy::{Blueprint, Deployment};
use crate::diagnostic::Diagnostic;

/// Where a run's deployment comes from.
pub enum DeploymentSource<'a> {
    /// A throw-away deployment of the blueprint at `path`, called `name`.
    Blueprint { path: &'a Path, name: &'a str },
    /// The deployment `name` in the store at `store`: its instances carry over.
    Stored { name: &'a str, store: &'a crate::store::StoreLocation },
}

/// Gives `options` the deployment `source` names, and the bundles its operations call
/// (besides the ones `options` already imports). Returns the deployment.
pub fn attach_deployment(options: &mut RunOptions, source: DeploymentSource) -> Result<Arc<Deployment>, Diagnostic> {
    let deployment = match source {
        DeploymentSource::Blueprint { path, name } => Arc::new(Deployment::new(name, Blueprint::load(path)?)),
        DeploymentSource::Stored { name, store } => crate::store::DeploymentStore::open(store)
            .and_then(|s| s.load(name))
            .map_err(crate::store::StoreError::into_deployments_diagnostic)?,
    };
    let roots = crate::bundle::plugins::resolve(&deployment.blueprint, &options.modules)?;
    options.modules.extend(roots);
    options.deployment = Some(deployment.clone());
    Ok(deployment)
}
