//! After a failure, the succeeded tasks are reverted: each with a `revert` closure, one at a
//! time, after every task that depended on it; a revert that fails is reported and the others
//! still run (TaskFlow's semantics).

use crate::events::Payload;
use crate::exec::attempt::task_info;
use crate::exec::ExecEnv;
use crate::graph::{IndexVec, PlanTask, TaskIx};
use crate::task::RevertCall;

/// Reverts `succeeded` (in the order they succeeded) from the last to the first.
pub(super) async fn revert(tasks: &IndexVec<TaskIx, PlanTask>, env: &ExecEnv, succeeded: &[TaskIx]) {
    for &task in succeeded.iter().rev() {
        let cell = &tasks[task].cell;
        let Some(RevertCall { closure, attempt, result }) = cell.revert_call() else { continue };
        let info = task_info(cell, attempt.id, attempt.retries, attempt.total_retries);
        env.bus.emit(Payload::TaskReverting { task: info.clone() });
        let scripts = env.scripts.clone();
        let outcome = env.scripts_pool.run(move || scripts.call(&closure, vec![result], None)).await;
        match outcome {
            Some(Ok(_)) => {
                env.bus.emit(Payload::TaskReverted { task: info });
            }
            Some(Err(e)) => {
                env.bus.emit(Payload::TaskRevertFailed { task: info, error: e.message });
            }
            None => {
                env.bus.emit(Payload::TaskRevertFailed { task: info, error: "the script thread stopped".into() });
            }
        }
    }
}
