//! What a command is pointed at: a script, a bundle (folder, archive or installed name) or a
//! built-in workflow; and the deployment model it sees (`--blueprint`, `--deployment`).
//! `run`, `check` and `graph` share one set of these arguments (`TargetArgs`), turned into run
//! options in one place, so the three commands see a target the same way.

use std::path::{Path, PathBuf};

use super::params;
use crate::diagnostic::{Code, Diagnostic};
use crate::runner::RunOptions;

/// The target of `run`, `check` and `graph`, its parameters and its deployment.
#[derive(clap::Args, Debug)]
pub(super) struct TargetArgs {
    /// The workflow script (.rhai), a bundle (folder or .tar.gz), an installed bundle's name, or
    /// a built-in workflow (install, uninstall, execute_operation, scale, heal).
    pub(super) target: PathBuf,
    /// The bundle's workflow.
    pub(super) workflow: Option<String>,
    /// A workflow parameter; VALUE is JSON when it parses as JSON, else a string.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Parameters from a YAML or JSON file (-p wins over it).
    #[arg(long = "params", value_name = "FILE")]
    params_file: Option<PathBuf>,
    #[command(flatten)]
    model: DeploymentArgs,
    /// Execution store, where runs are recorded and deployments kept: a folder, a .db file or a
    /// PostgreSQL URL (default: $RHAIFLOW_STORE, else ./.rhaiflow/).
    #[arg(long, value_name = "PATH")]
    pub(super) store: Option<String>,
}

impl TargetArgs {
    /// What the target names (read once: a bundle archive is unpacked here).
    pub(super) fn resolve(&self) -> Result<Target, Vec<Diagnostic>> {
        let target = resolve_target(&self.target)?;
        if let Target::Builtin(name) = &target {
            if !self.model.given() {
                return Err(vec![needs_a_deployment(name)]);
            }
        }
        Ok(target)
    }

    /// `options` pointed at `target` (from `resolve`), with the parameters given (checked
    /// against a bundle workflow's declarations) and the deployment asked for.
    pub(super) fn options(&self, target: Target, mut options: RunOptions) -> Result<RunOptions, Vec<Diagnostic>> {
        options.parameters = params::collect(&self.params, self.params_file.as_deref()).map_err(|d| vec![d])?;
        options.parameter_texts = params::texts(&self.params);
        let mut options = target_options(target, &self.target, self.workflow.as_deref(), options)?;
        self.model.attach(&mut options, self.store.as_deref())?;
        Ok(options)
    }
}

/// A built-in workflow works on a deployment's instances: without one it would run nothing
/// and say it succeeded.
fn needs_a_deployment(name: &str) -> Diagnostic {
    Diagnostic::plain(
        Code::NoDeployment,
        format!("`{name}` is a built-in workflow of the deployment model: it needs a deployment to work on"),
    )
    .with_help(format!(
        "give --deployment NAME (made with `rhaiflow deployments create NAME --blueprint FILE`), or --blueprint FILE \
         for a throw-away deployment of a blueprint: rhaiflow run {name} --blueprint blueprint.yaml"
    ))
}

/// What `run`, `check` and `graph` were pointed at.
pub(super) enum Target {
    Script(PathBuf),
    Bundle(crate::bundle::Bundle),
    /// A built-in workflow of the deployment model (`install`, ...).
    Builtin(String),
}

/// A `.rhai` script or `.yaml` flow file, a bundle folder, archive or `plugin.yaml`, or the
/// name of an installed bundle.
fn resolve_target(target: &Path) -> Result<Target, Vec<Diagnostic>> {
    use crate::bundle::{archive, registry, Bundle};
    if target.is_dir() {
        return Bundle::load(target).map(Target::Bundle).map_err(|d| vec![d]);
    }
    if target.is_file() {
        if archive::is_archive(target) {
            return registry::unpacked(target).map(Target::Bundle);
        }
        // A bundle's manifest stands for its bundle; any other .yaml is a flow file, which
        // runs as a script does (the runner translates it).
        if target.file_name().is_some_and(|n| n == "plugin.yaml") {
            let folder = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            return Bundle::load(folder).map(Target::Bundle).map_err(|d| vec![d]);
        }
        return Ok(Target::Script(target.to_path_buf()));
    }
    let name = target.to_string_lossy();
    if crate::names::is_identifier(&name) {
        if let Some(installed) = registry::find(&name) {
            return Bundle::load(&installed.dir).map(Target::Bundle).map_err(|d| vec![d]);
        }
        if crate::bundle::builtin::WORKFLOWS.contains(&&*name) {
            return Ok(Target::Builtin(name.into_owned()));
        }
        let installed: Vec<String> = registry::list().into_iter().map(|i| i.name).collect();
        let known = if installed.is_empty() { "none".to_string() } else { installed.join(", ") };
        return Err(vec![Diagnostic::plain(
            Code::NoTarget,
            format!(
                "`{name}` is neither a file, an installed bundle (installed: {known}) nor a built-in workflow ({})",
                crate::bundle::builtin::WORKFLOWS.join(", ")
            ),
        )
        .with_help(
            "give a .rhai script, a bundle folder or .tar.gz, or install a bundle with `rhaiflow bundle install`",
        )]);
    }
    Err(vec![Diagnostic::plain(Code::NoScript, format!("no such script: {}", target.display()))
        .with_help("give the path of a .rhai file, a bundle folder or .tar.gz, or an installed bundle's name")])
}

/// `options` pointed at `resolved`, which `target` named (its `workflow`, for a bundle, whose
/// parameters are then checked and completed).
fn target_options(
    resolved: Target,
    target: &Path,
    workflow: Option<&str>,
    mut options: RunOptions,
) -> Result<RunOptions, Vec<Diagnostic>> {
    match resolved {
        Target::Script(script) => {
            if let Some(workflow) = workflow {
                return Err(vec![Diagnostic::plain(
                    Code::NotABundle,
                    format!("{} is a script, which has no workflow `{workflow}`: only bundles do", script.display()),
                )]);
            }
            options.script = script;
        }
        Target::Bundle(bundle) => {
            let Some(workflow) = workflow else {
                return Err(vec![Diagnostic::plain(
                    Code::NoWorkflow,
                    format!(
                        "{} is bundle `{}`: name one of its workflows ({}) after it",
                        target.display(),
                        bundle.manifest.name,
                        bundle.manifest.workflow_names()
                    ),
                )]);
            };
            crate::runner::prepare_bundle_workflow(&bundle, workflow, &mut options).map_err(|d| vec![d])?;
        }
        Target::Builtin(name) => {
            if let Some(extra) = workflow {
                return Err(vec![Diagnostic::plain(
                    Code::BadOption,
                    format!("`{name}` is a built-in workflow: `{extra}` after it means nothing"),
                )]);
            }
            let bundle = crate::bundle::builtin::bundle().map_err(|d| vec![d])?;
            crate::runner::prepare_bundle_workflow(&bundle, &name, &mut options).map_err(|d| vec![d])?;
        }
    }
    Ok(options)
}

/// The deployment model a run, a drawing or a REPL session sees.
#[derive(clap::Args, Debug)]
pub(super) struct DeploymentArgs {
    /// Deployment model for ctx.nodes: a blueprint (a throw-away deployment of it).
    #[arg(long, value_name = "FILE", conflicts_with = "deployment")]
    blueprint: Option<PathBuf>,
    /// A deployment in the store (`rhaiflow deployments create`): instance states and runtime
    /// properties carry over between executions.
    #[arg(long, value_name = "NAME")]
    deployment: Option<String>,
}

impl DeploymentArgs {
    /// Whether a deployment was asked for.
    fn given(&self) -> bool {
        self.blueprint.is_some() || self.deployment.is_some()
    }

    /// Gives `options` the deployment asked for (from the store at `store`), with the
    /// bundles its operations call.
    pub(super) fn attach(
        &self,
        options: &mut crate::runner::RunOptions,
        store: Option<&str>,
    ) -> Result<(), Vec<Diagnostic>> {
        let store = crate::store::StoreLocation::locate(store).map_err(|d| vec![d])?;
        let stored = self.deployment.as_deref().map(|name| (name, &store));
        attach_deployment(options, self.blueprint.as_deref(), stored)
    }
}

/// Gives the run a deployment: a stored one (`--deployment NAME`), or a throw-away one of a
/// blueprint (`--blueprint FILE`, named after the file); and the bundles its operations call.
fn attach_deployment(
    options: &mut crate::runner::RunOptions,
    blueprint: Option<&Path>,
    stored: Option<(&str, &crate::store::StoreLocation)>,
) -> Result<(), Vec<Diagnostic>> {
    use crate::runner::DeploymentSource;
    let name;
    let source = match (blueprint, stored) {
        (Some(path), _) => {
            name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "blueprint".into());
            DeploymentSource::Blueprint { path, name: &name }
        }
        (None, Some((name, store))) => DeploymentSource::Stored { name, store },
        (None, None) => return Ok(()),
    };
    crate::runner::attach_deployment(options, source).map(drop).map_err(|d| vec![d])
}
