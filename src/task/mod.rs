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
        options: ProcessOptions,
    },
    /// A program and its arguments, no shell.
    Exec {
        argv: Vec<String>,
        options: ProcessOptions,
    },
    Sleep {
        seconds: f64,
    },
    Noop,
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
            TaskAction::Noop => TaskKind::Noop,
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
    pub on_success: Option<FnPtr>,
    pub on_failure: Option<FnPtr>,
    pub revert: Option<FnPtr>,
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
            provides: None,
            requires: Vec::new(),
            inject: Map::new(),
        }
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
    pub error: Option<TaskError>,
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

pub struct TaskInner {
    pub settings: TaskSettings,
    pub status: TaskStatus,
    pub slot: Option<Slot>,
    /// A subgraph's name for the error when a task is added to two of them.
    pub parent_name: Option<Arc<str>>,
    /// Where each required key comes from, resolved when its graph executes.
    pub inputs: Vec<(String, InputSource)>,
}

pub struct TaskCell {
    pub name: Arc<str>,
    pub action: TaskAction,
    /// Creation index within the run (1, 2, ...): with the name, the task's stable identity,
    /// the same when a deterministic script runs again on resume.
    pub serial: u64,
    /// Where the script created it.
    pub defined_at: Position,
    pub inner: Mutex<TaskInner>,
    finished: Condvar,
}

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
            }),
            finished: Condvar::new(),
        })
    }

    pub fn kind(&self) -> TaskKind {
        self.action.kind()
    }

    pub fn settings(&self) -> TaskSettings {
        self.inner.lock().settings.clone()
    }

    pub fn state(&self) -> TaskState {
        self.inner.lock().status.state
    }

    /// Records a new attempt and returns what events need to describe it.
    pub fn begin_attempt(&self, attempt_id: u64, retries: u32) {
        let mut inner = self.inner.lock();
        inner.status.state = TaskState::Started;
        inner.status.attempt_id = Some(attempt_id);
        inner.status.current_retries = retries;
        inner.status.error = None;
    }

    pub fn set_state(&self, state: TaskState) {
        self.inner.lock().status.state = state;
        if state.is_final() {
            self.finished.notify_all();
        }
    }

    pub fn set_result(&self, result: Dynamic) {
        self.inner.lock().status.result = result;
    }

    pub fn set_error(&self, error: Option<TaskError>) {
        self.inner.lock().status.error = error;
    }

    /// Ends the task: its final state, and wakes whoever waits in `wait_final_for`.
    pub fn finish(&self, state: TaskState) {
        let mut inner = self.inner.lock();
        inner.status.state = state;
        drop(inner);
        self.finished.notify_all();
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

/// A task for unit tests, which build tasks without a run: no retries, a unique index.
#[cfg(test)]
pub fn test_task(name: &str, action: TaskAction) -> Arc<TaskCell> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let serial = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    TaskCell::new(name, action, TaskSettings::with_defaults(0, 0.0), Position::NONE, serial)
}
