//! Resuming an execution: its options and parameters as recorded, its deployment as its
//! first run began, and the stored results of the tasks that succeeded.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;

use super::deployment::{attach_deployment, DeploymentSource};
use super::recorded::{RecordedBundle, RecordedOptions};
use super::store_opening::StoreOpening;
use super::{run_execution, shipped, BundleWorkflow, RunOptions, RunReport, StoreChoice};
use crate::diagnostic::{Code, Diagnostic};
use crate::events::{EventSink, TaskKind};
use crate::exec::{Replay, ReplayedTask};
use crate::script::ModuleRoot;
use crate::store::{self, ExecutionRecord, ExecutionStatus, Store, StoreLocation, StoredTask};

/// What a resumed execution takes over from its first run.
pub(super) struct ResumeFrom {
    pub(super) execution_id: String,
    pub(super) replay: Arc<Replay>,
    pub(super) last_seq: u64,
    pub(super) resumes: u32,
    /// A submitted execution that a worker takes up for the first time: nothing to replay,
    /// and its events say it starts, not resumes.
    pub(super) first_run: bool,
    pub(super) started_at: String,
    /// Processes of the previous run that were still running, killed before anything ran.
    pub(super) left_behind: Vec<i32>,
}

/// Resumes a failed, cancelled or crashed execution recorded in the store at `location`:
/// its script runs again with its parameters; tasks that succeeded give their stored result.
/// `caller` (a person, a server's client) is named in `workflow_started`'s `by`.
pub fn resume(
    location: &StoreLocation,
    id: &str,
    sinks: Vec<Box<dyn EventSink>>,
    owns_process: bool,
    caller: Option<String>,
) -> RunReport {
    match store::open(location) {
        Ok(store) => resume_in(store, location, id, sinks, owns_process, caller),
        Err(e) => RunReport::invalid(id.into(), String::new(), e.into(), Instant::now()),
    }
}

/// `resume` in a store already open (a worker runs many executions through one): also the
/// first run of a submitted execution, its script or bundle fetched from the store when it
/// came from another machine.
pub fn resume_in(
    store: Arc<dyn Store>,
    location: &StoreLocation,
    id: &str,
    sinks: Vec<Box<dyn EventSink>>,
    owns_process: bool,
    caller: Option<String>,
) -> RunReport {
    let started = Instant::now();
    let (record, tasks) = match claim(store.as_ref(), id) {
        Ok(claimed) => claimed,
        Err(d) => return RunReport::invalid(id.into(), String::new(), d, started),
    };
    let first_run = record.status == ExecutionStatus::Queued;
    // Its tasks run again: what the previous run started must not run beside them.
    let left_behind = if first_run { Vec::new() } else { crate::exec::left_behind::end_left_behind(&record.id) };
    let recorded = match RecordedOptions::read(&record.options, location, &record.id) {
        Ok(recorded) => recorded,
        Err(e) => return not_run(store.as_ref(), &record, e.into(), started),
    };
    // A queued execution's first run is its submitter's; a resume, its own caller's.
    let caller = if first_run { caller.or_else(|| recorded.caller.clone()) } else { caller };
    let options = match recorded_options(store.as_ref(), &record, recorded, location, owns_process) {
        Ok(options) => RunOptions { caller, ..options },
        Err(d) => return not_run(store.as_ref(), &record, d, started),
    };
    let from = ResumeFrom {
        execution_id: record.id.clone(),
        replay: Arc::new(replay(&record, &tasks)),
        last_seq: record.last_seq,
        resumes: if first_run { 0 } else { record.resumes + 1 },
        first_run,
        started_at: if first_run { super::now() } else { record.started_at.clone() },
        left_behind,
    };
    run_execution(&options, sinks, StoreOpening::Ready(Some(store)), Some(location.clone()), Some(from), started)
}

/// An execution claimed but that cannot run here: recorded as failed with the reason. Left
/// running, it would be taken up again when its runner is found gone, and refused again, for
/// ever; failed, it is there to be resumed once what it lacks is fixed.
fn not_run(store: &dyn Store, record: &ExecutionRecord, why: Diagnostic, started: Instant) -> RunReport {
    let _ = store.end(&record.id, ExecutionStatus::Failed, Some(why.message.clone())).and_then(|()| store.flush());
    RunReport::invalid(record.id.clone(), record.workflow.clone(), why, started)
}

/// The execution `id` and its tasks, taken over for this process: refused when it succeeded,
/// still runs, or another process resumes it already.
fn claim(store: &dyn Store, id: &str) -> Result<(ExecutionRecord, Vec<StoredTask>), Diagnostic> {
    let record = store.execution(id)?;
    let tasks = store.tasks(&record.id)?;
    let refused = |message: String| Err(Diagnostic::plain(Code::Resume, message));
    match record.status {
        ExecutionStatus::Succeeded => {
            return refused(format!("execution {} already succeeded: nothing to resume", record.id))
        }
        ExecutionStatus::Running if !record.crashed() && !record.taken_here() => {
            return refused(format!(
                "execution {} is still running ({}); cancel it first",
                record.id,
                record.runner_shown()
            ))
        }
        _ => {}
    }
    match store.claim(&record, std::process::id()) {
        Ok(true) => Ok((record, tasks)),
        Ok(false) => refused(format!("execution {} is being resumed by another process already", record.id)),
        Err(e) => Err(super::not_begun(e)),
    }
}

/// The stored results a resumed execution's tasks give instead of running again.
fn replay(record: &ExecutionRecord, tasks: &[StoredTask]) -> Replay {
    Replay::new(
        record.id.clone(),
        tasks.iter().filter(|t| t.kind != TaskKind::Subgraph).filter_map(|t| {
            let success = t.state.is_done().then(|| t.result.clone().unwrap_or(Value::Null));
            Some((t.index()?, ReplayedTask { name: t.name.clone(), kind: t.kind, success }))
        }),
    )
}

/// The run's options as the execution recorded them, with its bundle workflow and its
/// deployment found again.
fn recorded_options(
    store: &dyn Store,
    record: &ExecutionRecord,
    recorded: RecordedOptions,
    location: &StoreLocation,
    owns_process: bool,
) -> Result<RunOptions, Diagnostic> {
    let mut options = RunOptions::new(&record.script);
    let shipped = match &recorded.source {
        Some(source) => Some(shipped::fetch(store, &source.checksum)?),
        None => None,
    };
    if let (Some(path), None) = (&shipped, &recorded.bundle) {
        options.script = path.clone();
    }
    options.parameters = record.parameters.as_object().cloned().unwrap_or_default();
    recorded.apply_to(&mut options);
    options.owns_process = owns_process;
    options.store = StoreChoice::At(location.clone());
    if let Some(bundle) = &recorded.bundle {
        bundle_workflow(&mut options, bundle, shipped)?;
    }
    if let Some(name) = &recorded.deployment {
        resumed_deployment(store, &mut options, name, &recorded, location)?;
    }
    Ok(options)
}

/// Points `options` at the bundle workflow an execution ran.
/// `shipped`: where the bundle came to through the store (a submitted execution).
fn bundle_workflow(
    options: &mut RunOptions,
    bundle: &RecordedBundle,
    shipped: Option<PathBuf>,
) -> Result<(), Diagnostic> {
    let mut root = ModuleRoot { name: bundle.plugin.clone(), dir: shipped.unwrap_or_else(|| bundle.dir.clone()) };
    // The built-in workflows live in a scratch folder that may be gone since.
    if root.name == "builtin" {
        root.dir = crate::bundle::builtin::bundle()?.dir;
    }
    options.script = root.dir.join(format!("{}.rhai", bundle.module));
    options.modules = vec![root.clone()];
    options.workflow = Some(BundleWorkflow {
        name: bundle.workflow.clone(),
        module: bundle.module.clone(),
        function: bundle.function.clone(),
        bundle: root,
    });
    Ok(())
}

/// The deployment a resumed execution ran on: the stored one as it is now, or the
/// throw-away one of its blueprint again; with the bundles its operations call.
fn resumed_deployment(
    store: &dyn Store,
    options: &mut RunOptions,
    name: &str,
    recorded: &RecordedOptions,
    location: &StoreLocation,
) -> Result<(), Diagnostic> {
    if !recorded.deployment_stored {
        let path = match &recorded.blueprint_source {
            Some(source) => shipped::fetch(store, &source.checksum)?,
            None => PathBuf::from(recorded.blueprint.as_deref().unwrap_or_default()),
        };
        return attach_deployment(options, DeploymentSource::Blueprint { path: &path, name }).map(drop);
    }
    let deployment = attach_deployment(options, DeploymentSource::Stored { name, store: location })?;
    // The script must build the graph it built: from the states the execution began with.
    if let Some(snapshot) = recorded.deployment_snapshot.as_ref().filter(|s| s.is_array()) {
        deployment.restore_snapshot(snapshot);
    }
    Ok(())
}
