//! The state of one run that host functions share: the executor's environment, the mode
//! (standard or graph), the graphs built, and the tasks started in standard mode.
//!
//! Host functions hold it through a `Weak` so that the engine does not keep it alive.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use parking_lot::Mutex;
use rhai::{EvalAltResult, FnPtr, Position};
use tokio::task::JoinHandle;

use super::api::GraphShared;
use crate::exec::{run_task, ExecEnv, TaskOutcome};
use crate::task::{FailedTask, TaskError};
use crate::task::{TaskAction, TaskCell, TaskSettings};

/// What the command line decided for this run.
#[derive(Clone, Debug)]
pub struct RunSettings {
    /// The workflow parameters: the last place a required key is looked up.
    pub parameters: rhai::Map,
    pub task_retries: i64,
    pub retry_interval: f64,
    pub dry_run: bool,
    /// Tasks the execution may make (`--max-tasks`); 0 = none.
    pub max_tasks: u64,
    /// The deployment `ctx.nodes` describes (`--blueprint`, `--deployment`).
    pub deployment: Option<Arc<crate::deploy::Deployment>>,
}

pub struct RunState {
    pub settings: RunSettings,
    env: OnceLock<Arc<ExecEnv>>,
    graph_mode: std::sync::atomic::AtomicBool,
    /// Tasks started in standard mode, to wait for when the script returns.
    standard: Mutex<Vec<(Arc<TaskCell>, JoinHandle<TaskOutcome>)>>,
    /// Every graph `graph_mode()` made, for `rhaiflow graph`.
    pub graphs: Mutex<Vec<Arc<GraphShared>>>,
    /// Graphs executing right now (a `get()` on a pending task waits only then).
    executing: AtomicUsize,
    /// Declared parameter count of each script function, to know what a closure takes.
    arity: parking_lot::RwLock<HashMap<String, usize>>,
    /// The last function `closure_arity` looked up, with its count: a loop makes its tasks'
    /// closures from one function, and hashing its name each time cost ~200 instructions.
    last_arity: Mutex<(String, usize)>,
    /// Set when a dry run had to make up a standard-mode result.
    pub dry_results_used: Mutex<Option<Position>>,
    /// Creation indices: the stable identity of tasks across a resume.
    next_serial: AtomicU64,
    /// Standard-mode tasks whose outcome the script read with `get()`.
    observed: Mutex<std::collections::HashSet<u64>>,
    /// The module files this run's imports read, for its diagnostics.
    pub module_sources: crate::script::HeldSources,
}

pub type RunRef = Weak<RunState>;

impl RunState {
    pub fn new(settings: RunSettings) -> Arc<Self> {
        Arc::new(RunState {
            settings,
            env: OnceLock::new(),
            graph_mode: std::sync::atomic::AtomicBool::new(false),
            standard: Mutex::new(Vec::new()),
            graphs: Mutex::new(Vec::new()),
            executing: AtomicUsize::new(0),
            arity: Default::default(),
            last_arity: Mutex::new((String::new(), 0)),
            dry_results_used: Mutex::new(None),
            next_serial: AtomicU64::new(1),
            observed: Mutex::new(std::collections::HashSet::new()),
            module_sources: Default::default(),
        })
    }

    pub fn set_env(&self, env: Arc<ExecEnv>) {
        let _ = self.env.set(env);
    }

    pub fn env(&self) -> &Arc<ExecEnv> {
        self.env.get().expect("the executor environment is set before the script runs")
    }

    pub fn set_arity(&self, arity: HashMap<String, usize>) {
        let mut arities = self.arity.write();
        *arities = arity;
        self.last_arity.lock().0.clear();
    }

    /// More functions (the REPL defines them line by line; one may be defined again).
    pub fn add_arity(&self, arity: HashMap<String, usize>) {
        let mut arities = self.arity.write();
        arities.extend(arity);
        self.last_arity.lock().0.clear();
    }

    /// How many parameters a closure takes, not counting the variables it captured.
    pub fn closure_arity(&self, closure: &FnPtr) -> usize {
        let name = closure.fn_name();
        // Read under the lock of the counts, so that a change to them cannot come between.
        let arities = self.arity.read();
        let mut last = self.last_arity.lock();
        let declared = if last.0 == name {
            last.1
        } else {
            let declared = arities.get(name).copied().unwrap_or(0);
            last.0.clear();
            last.0.push_str(name);
            last.1 = declared;
            declared
        };
        declared.saturating_sub(closure.curry().len())
    }

    /// Makes a task with the next creation index. On resume, a task that differs from the one
    /// the first run made at this index means the script changed: invalid input.
    pub fn new_task(
        &self,
        name: &str,
        action: TaskAction,
        settings: TaskSettings,
        position: Position,
    ) -> Result<Arc<TaskCell>, Box<EvalAltResult>> {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        let limit = self.settings.max_tasks;
        if limit != 0 && serial > limit {
            return Err(crate::task::LimitReached::Tasks { limit }.into_rhai(position));
        }
        if let Some(replay) = &self.env().replay {
            if let Some(difference) = replay.difference(serial, name, action.kind()) {
                return Err(TaskError::new(crate::task::ErrorKind::Invalid, difference).at(position).into_rhai());
            }
        }
        Ok(TaskCell::new(name, action, settings, position, serial))
    }

    pub fn new_settings(&self) -> TaskSettings {
        TaskSettings::with_defaults(self.settings.task_retries, self.settings.retry_interval)
    }

    pub fn is_graph_mode(&self) -> bool {
        self.graph_mode.load(Ordering::Acquire)
    }

    /// Switches to graph mode; refused once a task ran in standard mode.
    /// Forgets standard-mode tasks that have ended (the REPL, between lines: a session may
    /// switch to graph mode once its earlier tasks are done).
    pub fn settle_standard_tasks(&self) {
        self.standard.lock().retain(|(_, handle)| !handle.is_finished());
    }

    pub fn enter_graph_mode(&self) -> Result<(), Box<EvalAltResult>> {
        if let Some((first, _)) = self.standard.lock().first() {
            return Err(TaskError::recoverable(format!(
                "graph_mode() must come before any task runs, but task `{}` already started in standard mode",
                first.name
            ))
            .into_rhai());
        }
        self.graph_mode.store(true, Ordering::Release);
        Ok(())
    }

    /// A task was just built: in standard mode it starts now.
    pub fn task_built(&self, cell: &Arc<TaskCell>) {
        if self.is_graph_mode() || self.settings.dry_run || matches!(cell.action, TaskAction::Subgraph) {
            return;
        }
        let env = self.env().clone();
        if !matches!(cell.action, TaskAction::Event { .. }) {
            env.planned(1);
        }
        let handle = env.runtime.spawn(run_task(cell.clone(), env.clone()));
        self.standard.lock().push((cell.clone(), handle));
    }

    /// Waits for every standard-mode task (the script returned). Returns the cancel when one
    /// came during that wait, or stopped a task nothing waited for with `get()` (the end of
    /// the script is then a graph's `execute()`: it ends cancelled); else the error of those
    /// that failed while nothing waited for them: an unnoticed failure must not pass for a
    /// success.
    pub fn wait_standard_tasks(&self) -> Option<TaskError> {
        let tasks = std::mem::take(&mut *self.standard.lock());
        if tasks.is_empty() {
            return None;
        }
        let cancel = self.env().cancel.clone();
        let cancelled_before = cancel.is_requested();
        let runtime = self.env().runtime.clone();
        let outcomes = runtime.block_on(async move {
            let mut outcomes = Vec::with_capacity(tasks.len());
            for (cell, handle) in tasks {
                outcomes.push((cell, handle.await));
            }
            outcomes
        });
        let observed = self.observed.lock();
        let unnoticed: Vec<(Arc<TaskCell>, TaskOutcome)> = outcomes
            .into_iter()
            .filter(|(cell, _)| !observed.contains(&cell.serial))
            // A runner that panicked ended its task as failed (`EndsOnPanic`): so it is told.
            .map(|(cell, outcome)| {
                let outcome = outcome.unwrap_or_else(|_| {
                    let bug = TaskError::internal(&format!("the runner of task `{}` panicked", cell.name));
                    self.env().record_bug(&bug);
                    TaskOutcome::Failed(bug)
                });
                (cell, outcome)
            })
            .collect();
        let stopped = unnoticed.iter().any(|(_, outcome)| matches!(outcome, TaskOutcome::Cancelled));
        if stopped || (cancel.is_requested() && !cancelled_before) {
            return Some(TaskError::cancelled());
        }
        unnoticed_failure(unnoticed)
    }

    /// `get()` was called on this task: its failure (if any) reached the script.
    pub fn observe(&self, cell: &TaskCell) {
        self.observed.lock().insert(cell.serial);
    }

    pub fn executing(&self) -> bool {
        self.executing.load(Ordering::Acquire) > 0
    }

    pub fn begin_execution(&self) {
        self.executing.fetch_add(1, Ordering::AcqRel);
    }

    pub fn end_execution(&self) {
        self.executing.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The error of the standard-mode tasks that failed while nothing waited for them, if any.
fn unnoticed_failure(outcomes: Vec<(Arc<TaskCell>, TaskOutcome)>) -> Option<TaskError> {
    let unnoticed: Vec<FailedTask> = outcomes
        .into_iter()
        .filter_map(|(cell, outcome)| match outcome {
            TaskOutcome::Failed(error) => Some(FailedTask::of(&cell, error)),
            _ => None,
        })
        .collect();
    let names: Vec<String> = unnoticed.iter().map(|f| format!("{} ({})", f.shown(), f.error.message)).collect();
    let (first, more) = names.split_first()?;
    let message = match more.len() {
        0 => format!("task {first} failed, and the script never waited for it with get()"),
        n => format!("task {first} and {n} more failed, and the script never waited for them with get()"),
    };
    let mut error = TaskError::new(crate::task::ErrorKind::GraphFailed, message);
    error.failed_tasks = Arc::new(unnoticed);
    Some(error)
}

/// Upgrades the host functions' reference; fails only if a script value outlived its run.
pub fn upgrade(run: &RunRef) -> Result<Arc<RunState>, Box<EvalAltResult>> {
    run.upgrade().ok_or_else(|| TaskError::recoverable("this run has ended").into_rhai())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_state() -> Arc<RunState> {
        RunState::new(RunSettings {
            parameters: rhai::Map::new(),
            task_retries: 0,
            retry_interval: 0.0,
            dry_run: false,
            max_tasks: 0,
            deployment: None,
        })
    }

    // The last count looked up is kept: a function defined again (a REPL line) must not
    // keep its old count, nor a closure take the count of the function looked up before.
    #[test]
    fn a_closure_s_arity_follows_its_function_as_it_is_defined_again() {
        let run = run_state();
        let f = FnPtr::new("f").unwrap();
        let g = FnPtr::new("g").unwrap();
        run.set_arity(HashMap::from([("f".to_string(), 1), ("g".to_string(), 0)]));
        assert_eq!((run.closure_arity(&f), run.closure_arity(&f), run.closure_arity(&g)), (1, 1, 0));
        assert_eq!(run.closure_arity(&f), 1);
        run.add_arity(HashMap::from([("f".to_string(), 0)]));
        assert_eq!(run.closure_arity(&f), 0);
        run.set_arity(HashMap::from([("f".to_string(), 2)]));
        let mut curried = f.clone();
        curried.add_curry(rhai::Dynamic::from(1_i64));
        assert_eq!((run.closure_arity(&f), run.closure_arity(&curried)), (2, 1));
        run.set_arity(HashMap::new());
        assert_eq!(run.closure_arity(&f), 0);
    }
}
