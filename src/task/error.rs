//! `TaskError`: why an attempt, a graph or a workflow failed, and how to judge it.
//!
//! It is also the script-visible error value: `non_recoverable(msg)`, `operation_retry(msg, s)`
//! and `execution_cancelled()` build one, and `catch (err)` receives one from `t.get()` and
//! `g.execute()`.

use std::fmt;
use std::sync::Arc;

use crate::diagnostic::Code;
use crate::events::Failure;
use crate::value::display_value;
use rhai::{Dynamic, EvalAltResult, Position};

/// How the runtime treats an error (section 5 of the contract).
#[derive(Clone, Debug, PartialEq)]
pub enum ErrorKind {
    /// Any thrown value: retried while retries remain.
    Recoverable,
    /// `non_recoverable(msg)`: never retried.
    NonRecoverable,
    /// `operation_retry(msg, secs)`: retried after `secs`, without `on_failure`.
    RetryAfter(f64),
    /// The execution was cancelled.
    Cancelled,
    /// A graph that cannot run (cycle, bad data links): the input is wrong, exit code 2.
    Invalid,
    /// A host function was called with an argument of the wrong type or value: exit code 2.
    BadArgument,
    /// A graph ran and some of its tasks failed.
    GraphFailed,
    /// The store could not record a task's success: the task failed, and so does the run.
    StoreFailed,
    /// rhaiflow itself went wrong (a panic): the task failed, and so does the run.
    Internal,
}

impl ErrorKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorKind::Recoverable => "recoverable",
            ErrorKind::NonRecoverable => "non_recoverable",
            ErrorKind::RetryAfter(_) => "operation_retry",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Invalid => "invalid",
            ErrorKind::BadArgument => "bad_argument",
            ErrorKind::GraphFailed => "graph_failed",
            ErrorKind::StoreFailed => "store_failed",
            ErrorKind::Internal => "internal",
        }
    }
}

/// A task that failed inside a graph, for the diagnostic of the graph's error.
#[derive(Clone, Debug)]
pub struct FailedTask {
    pub name: Arc<str>,
    /// The instance an operation task ran on: twenty instances share `lifecycle.start`.
    pub node_instance: Option<Arc<str>>,
    pub defined_at: Position,
    pub error: TaskError,
}

impl FailedTask {
    pub fn of(cell: &crate::task::TaskCell, error: TaskError) -> Self {
        FailedTask {
            name: cell.name.clone(),
            node_instance: cell.action.node_instance(),
            defined_at: cell.defined_at,
            error,
        }
    }

    /// How a message names it: `` `greet` ``, or `` `lifecycle.start` on web_1 ``.
    pub fn shown(&self) -> String {
        match &self.node_instance {
            Some(instance) => format!("`{}` on {instance}", self.name),
            None => format!("`{}`", self.name),
        }
    }
}

#[derive(Clone)]
pub struct TaskError {
    pub kind: ErrorKind,
    pub message: String,
    /// The value the script threw, if it threw one (a string, a map, ...).
    pub value: Dynamic,
    /// Where it was thrown in the script, if it came from the script.
    pub position: Position,
    /// For `GraphFailed`: the tasks that failed, in the order they failed.
    pub failed_tasks: Arc<Vec<FailedTask>>,
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl TaskError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        TaskError {
            kind,
            message: message.into(),
            value: Dynamic::UNIT,
            position: Position::NONE,
            failed_tasks: Arc::new(Vec::new()),
        }
    }

    pub fn bad_argument(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadArgument, message)
    }

    pub fn recoverable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Recoverable, message)
    }

    /// Something in rhaiflow itself went wrong (a panic): never retried, and said so.
    pub fn internal(what: &str) -> Self {
        Self::new(ErrorKind::Internal, crate::diagnostic::bug_message(what))
    }

    pub fn cancelled() -> Self {
        Self::new(ErrorKind::Cancelled, CANCELLED)
    }

    pub fn at(mut self, position: Position) -> Self {
        if self.position.is_none() {
            self.position = position;
        }
        self
    }

    /// What a task did (its success, an instance's new state) that the store could not
    /// record: `error` says why.
    pub fn unrecorded(error: &impl fmt::Display) -> Self {
        Self::new(ErrorKind::StoreFailed, error.to_string())
    }

    /// Errors that end the task at once, whatever its retries and handlers say, and fail the
    /// run even when the script catches them: nothing after them would be trustworthy.
    pub fn ends_the_run(&self) -> bool {
        matches!(self.kind, ErrorKind::StoreFailed | ErrorKind::Internal)
    }

    pub fn is_cancelled(&self) -> bool {
        self.kind == ErrorKind::Cancelled
    }

    /// How a task that ended with this error counts in its `task_failed` event: `ignored` (a
    /// handler's `ignore()`/`cont()`) wins over a cancel, as the task's state does.
    pub fn failure(&self, ignored: bool) -> Failure {
        match (ignored, self.is_cancelled()) {
            (true, _) => Failure::Ignored,
            (false, true) => Failure::Cancelled,
            (false, false) => Failure::Failed,
        }
    }

    /// The error as a Rhai exception, so `throw`/`catch` in scripts see it.
    pub fn into_rhai(self) -> Box<EvalAltResult> {
        let position = self.position;
        Box::new(EvalAltResult::ErrorRuntime(Dynamic::from(self), position))
    }

    /// Reads a Rhai error: a thrown `TaskError` keeps its kind, any other thrown value is
    /// recoverable; `terminated` is how a forced cancel (with a cancelled `TaskError`) and a
    /// timeout (with its reason) stop a running script.
    pub fn from_rhai(err: &EvalAltResult) -> Self {
        let inner = innermost(err);
        match inner {
            EvalAltResult::ErrorRuntime(value, pos) => {
                if let Some(e) = value.read_lock::<TaskError>() {
                    return e.clone().at(*pos);
                }
                let mut e = TaskError::recoverable(display_value(value)).at(*pos);
                e.value = value.clone();
                e
            }
            EvalAltResult::ErrorTerminated(value, pos) => {
                if let Some(limit) = value.read_lock::<LimitReached>() {
                    return TaskError::new(ErrorKind::NonRecoverable, limit.message()).at(*pos);
                }
                if let Some(cancelled) = value.read_lock::<TaskError>() {
                    return cancelled.clone().at(*pos);
                }
                TaskError::recoverable(value.to_string()).at(*pos)
            }
            other => TaskError::recoverable(other.to_string()).at(other.position()),
        }
    }
}

pub use crate::events::CANCELLED;

/// A limit the operator set for the whole run that a script reached. It stops the script
/// where it is (as Rhai's own limits do, a `catch` cannot keep it going); inside a task, the
/// task fails without retries, since another attempt would meet the same limit.
#[derive(Clone, Debug, PartialEq)]
pub enum LimitReached {
    /// The process holds more heap than `--max-memory` allows.
    Memory { limit: u64 },
    /// The script made more tasks than `--max-tasks` allows.
    Tasks { limit: u64 },
}

impl LimitReached {
    pub fn message(&self) -> String {
        match self {
            LimitReached::Memory { limit } => format!(
                "the run reached its memory limit of {} (--max-memory) and the script was stopped",
                crate::byte_size::show(*limit)
            ),
            LimitReached::Tasks { limit } => format!(
                "the script made {limit} tasks, the limit of one execution (--max-tasks), and was stopped: is there an endless loop?"
            ),
        }
    }

    /// The diagnostic code a person can look up.
    pub fn code(&self) -> Code {
        match self {
            LimitReached::Memory { .. } => Code::MemoryLimit,
            LimitReached::Tasks { .. } => Code::TasksLimit,
        }
    }

    pub fn help(&self) -> &'static str {
        match self {
            LimitReached::Memory { .. } => {
                "raise the limit with --max-memory SIZE (e.g. 16GiB; 0 = no limit) if the run needs it"
            }
            LimitReached::Tasks { .. } => {
                "raise the limit with --max-tasks N (0 = no limit) if the workflow needs that many"
            }
        }
    }

    /// The error that stops the script (uncatchable, like Rhai's own limits).
    pub fn into_rhai(self, position: Position) -> Box<EvalAltResult> {
        Box::new(EvalAltResult::ErrorTerminated(Dynamic::from(self), position))
    }
}

/// Errors raised inside function calls are wrapped once per call frame: the innermost one
/// says what went wrong and where.
pub fn innermost(mut err: &EvalAltResult) -> &EvalAltResult {
    while let EvalAltResult::ErrorInFunctionCall(_, _, inner, _) | EvalAltResult::ErrorInModule(_, inner, _) = err {
        err = inner;
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    // A forced cancel was told by the words the script was stopped with: any stop saying
    // "the execution was cancelled" counted as a cancel, whatever stopped it.
    #[test]
    fn a_forced_cancel_is_told_by_its_type_not_its_words() {
        let stopped = |value: Dynamic| TaskError::from_rhai(&EvalAltResult::ErrorTerminated(value, Position::NONE));
        assert!(stopped(Dynamic::from(TaskError::cancelled())).is_cancelled());
        assert!(!stopped(Dynamic::from(CANCELLED)).is_cancelled());
    }
}
