//! The options a run records with its execution, and reads back on resume: one typed value
//! both ways, so that a resume never guesses. A record it cannot read (a damaged store, or a
//! field of the wrong type) is reported as damage, not filled in with defaults.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::RunOptions;
use crate::store::{StoreError, StoreLocation};

/// What shapes the graph of an execution, besides its script and parameters.
#[derive(Serialize, Deserialize)]
pub(super) struct RecordedOptions {
    pub(super) task_retries: i64,
    pub(super) retry_interval: f64,
    pub(super) max_concurrency: Option<usize>,
    pub(super) max_operations: u64,
    /// Executions recorded before these limits existed ran with the defaults.
    #[serde(default = "crate::script::limits::default_max_memory")]
    pub(super) max_memory: u64,
    #[serde(default = "default_max_tasks")]
    pub(super) max_tasks: u64,
    /// The throw-away deployment's blueprint, absolute, so that a resume from another folder
    /// finds it.
    pub(super) blueprint: Option<String>,
    pub(super) deployment: Option<String>,
    /// What a resume builds its graph from: the instance states this execution started with.
    pub(super) deployment_snapshot: Option<Value>,
    pub(super) deployment_stored: bool,
    pub(super) bundle: Option<RecordedBundle>,
    /// A submitted execution's script or bundle, kept in the store for the worker that runs it.
    #[serde(default)]
    pub(super) source: Option<RecordedSource>,
    /// A submitted execution's throw-away blueprint, with its scripts, kept likewise.
    #[serde(default)]
    pub(super) blueprint_source: Option<RecordedSource>,
    /// The `Idempotency-Key` of the API request that started it, with the request's checksum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) idempotency: Option<Value>,
    /// Who started it, when a server's caller did: a worker's first run of it names them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) caller: Option<String>,
}

/// Which shipped source (`store::ShippedSource`) a submitted execution runs from.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct RecordedSource {
    pub(super) checksum: String,
}

/// A bundle workflow's entry (`runner::BundleWorkflow`).
#[derive(Serialize, Deserialize)]
pub(super) struct RecordedBundle {
    pub(super) plugin: String,
    pub(super) dir: PathBuf,
    pub(super) workflow: String,
    pub(super) module: String,
    pub(super) function: String,
}

fn default_max_tasks() -> u64 {
    crate::script::Limits::default().max_tasks
}

impl RecordedOptions {
    pub(super) fn of(options: &RunOptions) -> Self {
        let deployment = options.deployment.as_ref();
        RecordedOptions {
            task_retries: options.task_retries,
            retry_interval: options.retry_interval,
            max_concurrency: options.max_concurrency,
            max_operations: options.limits.max_operations,
            max_memory: options.limits.max_memory,
            max_tasks: options.limits.max_tasks,
            blueprint: deployment.map(|d| {
                let given = PathBuf::from(&d.blueprint.source.name);
                given.canonicalize().unwrap_or(given).display().to_string()
            }),
            deployment: deployment.map(|d| d.name.clone()),
            deployment_snapshot: deployment.map(|d| d.snapshot()),
            deployment_stored: deployment.is_some_and(|d| d.stored.load(std::sync::atomic::Ordering::Relaxed)),
            bundle: options.workflow.as_ref().map(|w| RecordedBundle {
                plugin: w.bundle.name.clone(),
                dir: w.bundle.dir.clone(),
                workflow: w.name.clone(),
                module: w.module.clone(),
                function: w.function.clone(),
            }),
            source: None,
            blueprint_source: None,
            idempotency: options.idempotency.clone(),
            caller: options.caller.clone(),
        }
    }

    /// Gives `options` what `of` took from the options of the run that recorded this (the
    /// bundle workflow and the deployment are found again by the resume).
    pub(super) fn apply_to(&self, options: &mut RunOptions) {
        options.task_retries = self.task_retries;
        options.retry_interval = self.retry_interval;
        options.max_concurrency = self.max_concurrency;
        options.limits.max_operations = self.max_operations;
        options.limits.max_memory = self.max_memory;
        options.limits.max_tasks = self.max_tasks;
    }

    pub(super) fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Reads the options execution `id` recorded in the store at `store`.
    pub(super) fn read(recorded: &Value, store: &StoreLocation, id: &str) -> Result<Self, StoreError> {
        serde_json::from_value(recorded.clone()).map_err(|e| StoreError::Corrupt {
            path: store.shown(),
            message: format!("the options of execution {id} cannot be read: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Resume read back, key by key, what run wrote: a limit missed on one side ran the resumed
    // execution with a default instead of what its first run was given.
    #[test]
    fn the_options_a_run_records_are_the_options_its_resume_runs_with() {
        let mut run = RunOptions::new("flow.rhai");
        run.task_retries = 3;
        run.retry_interval = 0.5;
        run.max_concurrency = Some(2);
        run.limits.max_operations = 1234;
        run.limits.max_memory = 5 << 20;
        run.limits.max_tasks = 77;
        let written = RecordedOptions::of(&run).to_json();
        let mut resumed = RunOptions::new("flow.rhai");
        RecordedOptions::read(&written, &PathBuf::from("store.db").into(), "e").unwrap().apply_to(&mut resumed);
        assert_eq!(
            (resumed.task_retries, resumed.retry_interval, resumed.max_concurrency),
            (run.task_retries, run.retry_interval, run.max_concurrency)
        );
        let limits = |o: &RunOptions| (o.limits.max_operations, o.limits.max_memory, o.limits.max_tasks);
        assert_eq!(limits(&resumed), limits(&run));
    }

    // A damaged record was filled in with defaults instead of being reported.
    #[test]
    fn options_of_the_wrong_type_are_reported_as_damage() {
        let mut written = RecordedOptions::of(&RunOptions::new("flow.rhai")).to_json();
        written["task_retries"] = Value::from("three");
        assert!(matches!(
            RecordedOptions::read(&written, &PathBuf::from("s.db").into(), "e"),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
