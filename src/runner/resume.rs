//! Resuming an execution: its options and parameters as recorded, its deployment as its
//! first run began, and the stored results of the tasks that succeeded.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::recorded::RecordedOptions;
use super::{run_execution, BundleWorkflow, RunOptions, RunReport, StoreChoice};
use crate::deploy::Deployment;
use crate::diagnostic::{Code, Diagnostic};
use crate::events::{EventSink, TaskKind};
use crate::exec::{Replay, ReplayedTask};
use crate::script::ModuleRoot;
use crate::store::{self, ExecutionStatus, StoreError};

/// What a resumed execution takes over from its first run.
pub(super) struct ResumeFrom {
    pub(super) execution_id: String,
    pub(super) replay: Arc<Replay>,
    pub(super) last_seq: u64,
    pub(super) resumes: u32,
    pub(super) started_at: String,
    /// Processes of the previous run that were still running, killed before anything ran.
    pub(super) left_behind: Vec<i32>,
}

/// Resumes a failed, cancelled or crashed execution recorded in the store at `store_path`:
/// its script runs again with its parameters; tasks that succeeded give their stored result.
pub fn resume(store_path: &Path, id: &str, sinks: Vec<Box<dyn EventSink>>, owns_process: bool) -> RunReport {
    let started = Instant::now();
    let invalid = |d: Diagnostic| RunReport::invalid(id.to_string(), String::new(), d, started);
    let fail = |code: Code, message: String| invalid(Diagnostic::plain(code, message));
    let store = match store::open(store_path) {
        Ok(s) => s,
        Err(e) => return invalid(e.into()),
    };
    let (record, tasks) = match store.execution(id).and_then(|r| Ok((store.tasks(&r.id)?, r))) {
        Ok((tasks, record)) => (record, tasks),
        Err(e) => return invalid(e.into()),
    };
    match record.status {
        ExecutionStatus::Succeeded => {
            return fail(Code::Resume, format!("execution {} already succeeded: nothing to resume", record.id))
        }
        ExecutionStatus::Running if !record.crashed() => {
            return fail(
                Code::Resume,
                format!("execution {} is still running (process {}); cancel it first", record.id, record.pid),
            )
        }
        _ => {}
    }
    match store.claim(&record, std::process::id()) {
        Ok(true) => {}
        Ok(false) => {
            return fail(Code::Resume, format!("execution {} is being resumed by another process already", record.id))
        }
        Err(e) => return invalid(e.into()),
    }
    // Its tasks run again: what the previous run started must not run beside them.
    let left_behind = crate::exec::left_behind::end_left_behind(&record.id);
    let replay = Replay::new(
        record.id.clone(),
        tasks.iter().filter(|t| t.kind != TaskKind::Subgraph).filter_map(|t| {
            let success = t.state.is_done().then(|| t.result.clone().unwrap_or(Value::Null));
            Some((t.index()?, ReplayedTask { name: t.name.clone(), kind: t.kind, success }))
        }),
    );
    let mut options = RunOptions::new(&record.script);
    options.parameters = record.parameters.as_object().cloned().unwrap_or_default();
    let mut recorded = match RecordedOptions::read(&record.options, store_path, &record.id) {
        Ok(recorded) => recorded,
        Err(e) => return invalid(e.into()),
    };
    options.task_retries = recorded.task_retries;
    options.retry_interval = recorded.retry_interval;
    options.max_concurrency = recorded.max_concurrency;
    options.limits.max_operations = recorded.max_operations;
    options.limits.max_memory = recorded.max_memory;
    options.limits.max_tasks = recorded.max_tasks;
    if let Some(bundle) = recorded.bundle.take() {
        let mut root = ModuleRoot { name: bundle.plugin, dir: bundle.dir };
        // The built-in workflows live in a scratch folder that may be gone since.
        if root.name == "builtin" {
            match crate::bundle::builtin::bundle() {
                Ok(builtin) => root.dir = builtin.dir,
                Err(d) => return RunReport::invalid(record.id.clone(), record.workflow.clone(), d, started),
            }
        }
        options.script = root.dir.join(format!("{}.rhai", bundle.module));
        options.modules = vec![root.clone()];
        options.workflow = Some(BundleWorkflow {
            name: bundle.workflow,
            module: bundle.module,
            function: bundle.function,
            bundle: root,
        });
    }
    if let Some(name) = &recorded.deployment {
        let resumed = resumed_deployment(name, &recorded, store_path, &options.modules);
        match resumed {
            Ok((deployment, roots)) => {
                options.deployment = Some(deployment);
                options.modules.extend(roots);
            }
            Err(d) => return RunReport::invalid(record.id.clone(), record.workflow.clone(), d, started),
        }
    }
    options.owns_process = owns_process;
    options.store = StoreChoice::File(store_path.to_path_buf());
    let from = ResumeFrom {
        execution_id: record.id.clone(),
        replay: Arc::new(replay),
        last_seq: record.last_seq,
        resumes: record.resumes + 1,
        started_at: record.started_at.clone(),
        left_behind,
    };
    run_execution(&options, sinks, Some(store), Some(store_path.to_path_buf()), Some(from), started)
}

/// The deployment a resumed execution ran on: the stored one as it is now, or the
/// throw-away one of its blueprint again; with the bundles its operations call.
fn resumed_deployment(
    name: &str,
    recorded: &RecordedOptions,
    store_path: &Path,
    known: &[ModuleRoot],
) -> Result<(Arc<Deployment>, Vec<ModuleRoot>), Diagnostic> {
    let deployment = if recorded.deployment_stored {
        let deployment = crate::store::DeploymentStore::open(store_path)
            .and_then(|s| s.load(name))
            .map_err(StoreError::into_deployments_diagnostic)?;
        // The script must build the graph it built: from the states the execution began with.
        if let Some(snapshot) = recorded.deployment_snapshot.as_ref().filter(|s| s.is_array()) {
            deployment.restore_snapshot(snapshot);
        }
        deployment
    } else {
        let path = PathBuf::from(recorded.blueprint.as_deref().unwrap_or_default());
        Arc::new(Deployment::new(name, crate::deploy::Blueprint::load(&path)?))
    };
    let roots = crate::bundle::plugins::resolve(&deployment.blueprint, known)?;
    Ok((deployment, roots))
}
