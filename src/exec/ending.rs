//! How a task ends: the event that tells it and the cell's final state, together, so that the
//! sinks and the script never see two different endings. Runners and the scheduler end tasks
//! through `end` (a runner's success on a store is told first, then awaited on disk).

use rhai::Dynamic;

use super::{ExecEnv, TaskOutcome};
use crate::events::{Payload, Success, TaskInfo};
use crate::task::{TaskCell, TaskError};

/// How a task (or subgraph) ends. `told`: the attempt its closing event describes; `None` when
/// that event was emitted already, or never is (a replayed task, a cancel between attempts).
pub enum Ending {
    Succeeded {
        result: Dynamic,
        told: Option<TaskInfo>,
    },
    /// Ended by `error`: cancelled when it is a cancel's, else failed; `ignored` by a handler
    /// (`ignore()`/`cont()`), it counts as done.
    Failed {
        error: TaskError,
        ignored: bool,
        told: Option<TaskInfo>,
    },
}

/// Tells how the task ended, then records it in its cell (which wakes whoever waits for it).
pub fn end(cell: &TaskCell, ending: Ending, env: &ExecEnv) -> TaskOutcome {
    match ending {
        Ending::Succeeded { result, told } => {
            if let Some(info) = told {
                env.bus.emit_success(info, Some(&result), Success::Done);
            }
            cell.succeed(result);
            TaskOutcome::Succeeded
        }
        Ending::Failed { error, ignored, told } => {
            if let Some(info) = told {
                env.bus.emit(Payload::TaskFailed {
                    task: info,
                    error: error.message.clone(),
                    how: error.failure(ignored),
                });
            }
            if ignored {
                cell.ignore_failure(error);
                TaskOutcome::Ignored
            } else if error.is_cancelled() {
                cell.cancel(error);
                TaskOutcome::Cancelled
            } else {
                cell.fail(error.clone());
                TaskOutcome::Failed(error)
            }
        }
    }
}
