//! A task: what it runs, its settings (retries, handlers), its live status, and how it fails
//! (`error`).
//!
//! A `TaskCell` is shared by `Arc` between the script (which builds and reads it through a
//! `Task` handle) and the executor (which runs it and updates its status).

mod error;

pub use error::{innermost, ErrorKind, FailedTask, LimitReached, TaskError};

use std::sync::Arc;

use parking_lot::{Condvar, Mutex};
use petgraph::stable_graph::NodeIndex;
use rhai::{Dynamic, FnPtr, Map, Position};

use crate::events::TaskKind;

/// Options of a process task (`shell`, `exec`).
#[derive(Clone, Debug, Default)]
pub struct ProcessOptions {
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub timeout: Option<f64>,
    /// How many bytes of stdout and of stderr the result keeps (the last ones); `None` is
    /// the default of 1 MiB.
    pub output_limit: Option<usize>,
    /// Run by a worker listening on this queue, not here (a PostgreSQL store).
    pub queue: Option<String>,
}

/// The work itself.
#[derive(Clone)]
pub enum TaskAction {
    /// A Rhai closure; `arity` is its number of declared (not captured) parameters.
    Script {
        closure: FnPtr,
        arity: usize,
    },
    /// `sh -c command`.
    Shell {
        command: String,
        /// Boxed, here and in `Exec`: its 104 bytes made every task's cell larger.
        options: Box<ProcessOptions>,
    },
    /// A program and its arguments, no shell.
    Exec {
        argv: Vec<String>,
        options: Box<ProcessOptions>,
    },
    Sleep {
        seconds: f64,
    },
    Noop,
    /// A no-op run by a worker listening on `queue` (`noop(name, #{queue})`): it tells that
    /// one listens, and carries the queue's own cost (nothing else).
    NoopOn {
        queue: String,
    },
    /// Emits a `workflow_event`, or a `node_event` for a node instance.
    Event {
        message: String,
        node_instance: Option<Arc<str>>,
    },
    /// An operation of the deployment model on a node instance.
    Operation(Arc<crate::deploy::OperationCall>),
    /// `instance.set_state(s)`: records the instance's state in the deployment.
    SetState {
        deployment: Arc<crate::deploy::Deployment>,
        instance: Arc<str>,
        state: String,
    },
    /// A group of tasks; its members live in the same `TaskGraph`.
    Subgraph,
}

impl TaskAction {
    pub fn kind(&self) -> TaskKind {
        match self {
            TaskAction::Script { .. } => TaskKind::Script,
            TaskAction::Shell { .. } | TaskAction::Exec { .. } => TaskKind::Shell,
            TaskAction::Sleep { .. } => TaskKind::Sleep,
            TaskAction::Noop | TaskAction::NoopOn { .. } => TaskKind::Noop,
            TaskAction::Event { .. } => TaskKind::Event,
            TaskAction::Operation(_) | TaskAction::SetState { .. } => TaskKind::Operation,
            TaskAction::Subgraph => TaskKind::Subgraph,
        }
    }

    /// The node instance the task acts on (`node_instance` in its events).
    pub fn node_instance(&self) -> Option<Arc<str>> {
        match self {
            TaskAction::Event { node_instance, .. } => node_instance.clone(),
            TaskAction::Operation(call) => Some(Arc::from(call.runs_for())),
            TaskAction::SetState { instance, .. } => Some(instance.clone()),
            _ => None,
        }
    }
}

/// The life of a task as the script sees it (`t.state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    Pending,
    Started,
    Succeeded,
    Failed,
    Rescheduled,
    Cancelled,
}

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Started => "started",
            TaskState::Succeeded => "succeeded",
            TaskState::Failed => "failed",
            TaskState::Rescheduled => "rescheduled",
            TaskState::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, TaskState::Succeeded | TaskState::Failed | TaskState::Cancelled)
    }
}

/// What the script may set on a task before it runs.
#[derive(Clone)]
pub struct TaskSettings {
    pub total_retries: i64,
    pub retry_interval: f64,
    pub timeout: Option<f64>,
    /// The handlers are boxed: most tasks have none, and each unboxed took 40 bytes of
    /// every task's cell.
    pub on_success: Option<Box<FnPtr>>,
    pub on_failure: Option<Box<FnPtr>>,
    pub revert: Option<Box<FnPtr>>,
    /// Boxed, as the handlers: few tasks take part in data flow.
    pub data_flow: Option<Box<DataFlow>>,
}

/// A task's part in data flow between tasks (TaskFlow's `provides`, `requires`, `inject`).
#[derive(Clone, Default)]
pub struct DataFlow {
    pub provides: Option<String>,
    pub requires: Vec<String>,
    pub inject: Map,
}

impl TaskSettings {
    pub fn with_defaults(total_retries: i64, retry_interval: f64) -> Self {
        TaskSettings {
            total_retries,
            retry_interval,
            timeout: None,
            on_success: None,
            on_failure: None,
            revert: None,
            data_flow: None,
        }
    }

    pub fn provides(&self) -> Option<&String> {
        self.data_flow.as_ref()?.provides.as_ref()
    }

    pub fn requires(&self) -> &[String] {
        self.data_flow.as_ref().map_or(&[], |d| &d.requires)
    }

    pub fn inject(&self) -> Option<&Map> {
        self.data_flow.as_ref().map(|d| &d.inject)
    }

    /// The data flow settings, to change them.
    pub fn data_flow_mut(&mut self) -> &mut DataFlow {
        self.data_flow.get_or_insert_with(Box::default)
    }
}

/// What happened to the task so far.
#[derive(Clone)]
pub struct TaskStatus {
    pub state: TaskState,
    /// The id of the current (or last) attempt; a retry gets a new one.
    pub attempt_id: Option<u64>,
    pub current_retries: u32,
    pub result: Dynamic,
    /// Boxed: most tasks never fail, and a million cells each carried its 72 bytes.
    pub error: Option<Box<TaskError>>,
}

/// Where a task sits: which graph, its node, and the subgraph holding it (if any).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot {
    pub graph: u64,
    pub index: NodeIndex,
    pub parent: Option<NodeIndex>,
}

/// Where a required value comes from when the task runs.
#[derive(Clone)]
pub enum InputSource {
    Injected(Dynamic),
    /// The result of the task that provides the key (it has run by then).
    Provider(Arc<TaskCell>),
    Parameter(Dynamic),
}

/// Which attempt a task is at, as its events show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttemptCount {
    /// The attempt's id; 0 before the first.
    pub id: u64,
    pub retries: u32,
    pub total_retries: i64,
}

/// What reverting a succeeded task takes: its `revert` closure, the attempt that succeeded
/// and its result (the closure's argument).
pub struct RevertCall {
    pub closure: FnPtr,
    pub attempt: AttemptCount,
    pub result: Dynamic,
}

/// Everything that changes, behind the cell's one lock: only the cell's methods touch it, so
/// that each change of state is one named step.
struct TaskInner {
    settings: TaskSettings,
    status: TaskStatus,
    slot: Option<Slot>,
    /// A subgraph's name for the error when a task is added to two of them.
    parent_name: Option<Arc<str>>,
    /// Where each required key comes from, resolved when its graph executes.
    inputs: Vec<(String, InputSource)>,
    /// The `task_id` its first attempt gets, told in advance by `graph_planned`.
    reserved_attempt: Option<u64>,
}

pub struct TaskCell {
    pub name: Arc<str>,
    pub action: TaskAction,
    /// Creation index within the run (1, 2, ...): with the name, the task's stable identity,
    /// the same when a deterministic script runs again on resume.
    pub serial: u64,
    /// Where the script created it.
    pub defined_at: Position,
    inner: Mutex<TaskInner>,
    finished: Condvar,
}

/// Reading the cell: each reader takes the lock once.
impl TaskCell {
    pub fn new(name: &str, action: TaskAction, settings: TaskSettings, defined_at: Position, serial: u64) -> Arc<Self> {
        Arc::new(TaskCell {
            name: Arc::from(name),
            action,
            serial,
            defined_at,
            inner: Mutex::new(TaskInner {
                settings,
                status: TaskStatus {
                    state: TaskState::Pending,
                    attempt_id: None,
                    current_retries: 0,
                    result: Dynamic::UNIT,
                    error: None,
                },
                slot: None,
                parent_name: None,
                inputs: Vec::new(),
                reserved_attempt: None,
            }),
            finished: Condvar::new(),
        })
    }

    pub fn kind(&self) -> TaskKind {
        self.action.kind()
    }

    /// Tells the `task_id` its first attempt will get (when its graph is planned).
    pub fn reserve_attempt(&self, task_id: u64) {
        self.inner.lock().reserved_attempt.get_or_insert(task_id);
    }

    /// The `task_id` reserved for its first attempt, once.
    pub fn take_reserved_attempt(&self) -> Option<u64> {
        self.inner.lock().reserved_attempt.take()
    }

    /// A copy of the settings, for a runner that reads them all along its attempts.
    pub fn settings(&self) -> TaskSettings {
        self.inner.lock().settings.clone()
    }

    /// Reads what it needs of the settings, under one lock and without a copy.
    pub fn with_settings<R>(&self, read: impl FnOnce(&TaskSettings) -> R) -> R {
        read(&self.inner.lock().settings)
    }

    /// Changes settings: the script's to set (`t.total_retries = 2`), before the task runs.
    pub fn configure(&self, change: impl FnOnce(&mut TaskSettings)) {
        change(&mut self.inner.lock().settings)
    }

    pub fn state(&self) -> TaskState {
        self.inner.lock().status.state
    }

    pub fn attempt_id(&self) -> Option<u64> {
        self.inner.lock().status.attempt_id
    }

    pub fn current_retries(&self) -> u32 {
        self.inner.lock().status.current_retries
    }

    pub fn result(&self) -> Dynamic {
        self.inner.lock().status.result.clone()
    }

    pub fn error(&self) -> Option<TaskError> {
        self.inner.lock().status.error.as_deref().cloned()
    }

    /// The current (or last) attempt, as its events show it.
    pub fn current_attempt(&self) -> AttemptCount {
        let inner = self.inner.lock();
        AttemptCount {
            id: inner.status.attempt_id.unwrap_or(0),
            retries: inner.status.current_retries,
            total_retries: inner.settings.total_retries,
        }
    }

    /// What reverting the task takes; `None` when it has no `revert` closure.
    pub fn revert_call(&self) -> Option<RevertCall> {
        let inner = self.inner.lock();
        let closure = inner.settings.revert.clone()?;
        let attempt = AttemptCount {
            id: inner.status.attempt_id.unwrap_or(0),
            retries: inner.status.current_retries,
            total_retries: inner.settings.total_retries,
        };
        Some(RevertCall { closure: *closure, attempt, result: inner.status.result.clone() })
    }

    /// Blocks the calling (script) thread for at most `at_most`: the task's status once it
    /// reached a final state, `None` if it has not by then.
    pub fn wait_final_for(&self, at_most: std::time::Duration) -> Option<TaskStatus> {
        let mut inner = self.inner.lock();
        if !inner.status.state.is_final() {
            self.finished.wait_for(&mut inner, at_most);
        }
        inner.status.state.is_final().then(|| inner.status.clone())
    }
}

/// Where the task sits in a graph, and where its inputs come from.
impl TaskCell {
    pub fn slot(&self) -> Option<Slot> {
        self.inner.lock().slot
    }

    /// The subgraph holding the task, if any.
    pub fn parent(&self) -> Option<NodeIndex> {
        self.inner.lock().slot.and_then(|s| s.parent)
    }

    /// Places the task where `place` says (it adds the node) and under the subgraph named, unless
    /// it already sits somewhere: then nothing changes and `Err` says where (its slot, and the
    /// name of the subgraph holding it).
    pub fn place(
        &self,
        place: impl FnOnce() -> Slot,
        parent_name: Option<Arc<str>>,
    ) -> Result<Slot, (Slot, Option<Arc<str>>)> {
        let mut inner = self.inner.lock();
        if let Some(slot) = inner.slot {
            return Err((slot, inner.parent_name.clone()));
        }
        let slot = place();
        inner.slot = Some(slot);
        inner.parent_name = parent_name;
        Ok(slot)
    }

    /// The task left its graph.
    pub fn unplace(&self) {
        let mut inner = self.inner.lock();
        inner.slot = None;
        inner.parent_name = None;
    }

    /// Whether the task has a part in data flow: it provides, requires or injects a value, or
    /// still holds the inputs of an earlier link (which a new link must clear).
    pub fn has_data_flow(&self) -> bool {
        let inner = self.inner.lock();
        inner.settings.data_flow.is_some() || !inner.inputs.is_empty()
    }

    pub fn set_inputs(&self, inputs: Vec<(String, InputSource)>) {
        self.inner.lock().inputs = inputs;
    }

    /// The map a one-parameter closure receives: its injected values, then its resolved inputs.
    pub fn inputs(&self) -> Map {
        let inner = self.inner.lock();
        let mut map = inner.settings.inject().cloned().unwrap_or_default();
        for (key, source) in &inner.inputs {
            let value = match source {
                InputSource::Injected(v) | InputSource::Parameter(v) => v.clone(),
                InputSource::Provider(p) => p.result(),
            };
            map.insert(key.as_str().into(), value);
        }
        map
    }
}

/// The task's life: every change of its state is one of these, under one lock each.
impl TaskCell {
    /// Records a new attempt.
    pub fn begin_attempt(&self, attempt_id: u64, retries: u32) {
        let mut inner = self.inner.lock();
        inner.status.state = TaskState::Started;
        inner.status.attempt_id = Some(attempt_id);
        inner.status.current_retries = retries;
        inner.status.error = None;
    }

    /// Starts the attempt of a task that runs in place, unless it has handlers (which may
    /// fail or wait it): then nothing changes and `None`; else its `total_retries`.
    pub fn begin_inline_attempt(&self, attempt_id: u64) -> Option<i64> {
        let mut inner = self.inner.lock();
        if inner.settings.on_success.is_some() || inner.settings.on_failure.is_some() {
            return None;
        }
        inner.status.state = TaskState::Started;
        inner.status.attempt_id = Some(attempt_id);
        Some(inner.settings.total_retries)
    }

    /// The result an `on_success` handler sees, before its verdict ends the task.
    pub fn set_result(&self, result: Dynamic) {
        self.inner.lock().status.result = result;
    }

    /// The error an `on_failure` handler sees, before its verdict ends the task.
    pub fn set_error(&self, error: TaskError) {
        self.inner.lock().status.error = Some(Box::new(error));
    }

    pub fn succeed(&self, result: Dynamic) {
        let mut inner = self.inner.lock();
        inner.status.result = result;
        self.end(inner, TaskState::Succeeded);
    }

    pub fn fail(&self, error: TaskError) {
        self.end_with(error, TaskState::Failed);
    }

    /// A failure a handler `ignore()`d: the task counts as succeeded, its error kept.
    pub fn ignore_failure(&self, error: TaskError) {
        self.end_with(error, TaskState::Succeeded);
    }

    pub fn cancel(&self, error: TaskError) {
        self.end_with(error, TaskState::Cancelled);
    }

    /// Cancelled before its first attempt started: no error of its own.
    pub fn cancel_unstarted(&self) {
        self.end(self.inner.lock(), TaskState::Cancelled);
    }

    /// The attempt failed and another follows (after `error`, which it keeps meanwhile).
    pub fn reschedule(&self, error: TaskError) {
        let mut inner = self.inner.lock();
        inner.status.error = Some(Box::new(error));
        inner.status.state = TaskState::Rescheduled;
    }

    /// The task runs again as a fresh one (its subgraph is retried): as never run.
    pub fn reset_for_rerun(&self) {
        let mut inner = self.inner.lock();
        inner.status.state = TaskState::Pending;
        inner.status.attempt_id = None;
        inner.status.current_retries = 0;
        inner.status.result = Dynamic::UNIT;
        inner.status.error = None;
    }

    fn end_with(&self, error: TaskError, state: TaskState) {
        let mut inner = self.inner.lock();
        inner.status.error = Some(Box::new(error));
        self.end(inner, state);
    }

    /// Ends the task in its final `state`, and wakes whoever waits in `wait_final_for`.
    fn end(&self, mut inner: parking_lot::MutexGuard<'_, TaskInner>, state: TaskState) {
        inner.status.state = state;
        drop(inner);
        self.finished.notify_all();
    }
}

/// A task for unit tests, which build tasks without a run: no retries, a unique index.
#[cfg(test)]
pub fn test_task(name: &str, action: TaskAction) -> Arc<TaskCell> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    TaskCell::new(name, action, TaskSettings::with_defaults(0, 0.0), Position::NONE, serial)
}
#[cfg(test)]
mod size {
    // A million-task graph holds a million cells: each was 600 bytes, most of them settings
    // and outcomes that few tasks have (handlers, data flow, process options, an error), now
    // boxed.
    #[test]
    fn a_task_cell_stays_small() {
        assert!(std::mem::size_of::<super::TaskCell>() <= 304, "{}", std::mem::size_of::<super::TaskCell>());
        assert!(std::mem::size_of::<super::TaskAction>() <= 56);
    }
}
