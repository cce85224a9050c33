//! A subgraph's runs (contract sections 5 and 6). It opens, its members run, it closes; each
//! run is judged as a task's attempt is (its `on_success` / `on_failure` verdicts, else its
//! `total_retries`), and a run that is retried after a failure is reverted first (its
//! succeeded members' `revert`s), waits `retry_interval`, and starts again from fresh copies
//! of its members, with `current_retries + 1`.

use std::sync::Arc;

use rhai::Dynamic;

use super::revert::revert;
use super::{has_stored_state, Report, Scheduler};
use crate::events::{Payload, Success, TaskInfo};
use crate::exec::attempt::{judge_subgraph, judge_subgraph_now, task_info, Judgement, POLL_AGAIN};
use crate::exec::ending::{end, Ending};
use crate::graph::{TaskIx, VertexIx};
use crate::task::{FailedTask, TaskError};

/// Per subgraph: how many members are running or open, and the first failure inside it.
#[derive(Default)]
pub(super) struct SubgraphState {
    pub(super) active: u32,
    opened: bool,
    ended: bool,
    /// Its handler is judging the run that just ended.
    judging: bool,
    /// Boxed: every task has a state here (most are no subgraph), and most never fail.
    pub(super) failure: Option<Box<TaskError>>,
    attempt_id: u64,
    /// Runs of the whole subgraph so far beyond the first: the current run's `current_retries`.
    retries: u32,
}

/// A subgraph to run again, once the scheduler can await the reverts of its last run.
pub(super) struct SubgraphRetry {
    task: TaskIx,
    /// Seconds to wait before the next run (`retry_after`).
    after: f64,
    error: TaskError,
    /// The run succeeded and `on_success` asked for another (a polling loop): nothing failed,
    /// so nothing is reverted.
    polled: bool,
}

impl Scheduler {
    pub(super) fn open_subgraph(&mut self, task: TaskIx) {
        if let Some(p) = self.plan.tasks[task].parent {
            self.subgraphs[p].active += 1;
        }
        let attempt_id = self.env.attempt_id(&self.plan.tasks[task].cell);
        self.plan.tasks[task].cell.begin_attempt(attempt_id, 0);
        let state = &mut self.subgraphs[task];
        state.opened = true;
        state.attempt_id = attempt_id;
        self.env.bus.emit(Payload::TaskStarted { task: self.subgraph_info(task) });
        let entry = self.plan.tasks[task].entry;
        self.ready.release(&self.plan, entry);
    }

    /// What the events of the subgraph's current run say about it.
    fn subgraph_info(&self, task: TaskIx) -> TaskInfo {
        let cell = &self.plan.tasks[task].cell;
        let state = &self.subgraphs[task];
        let total_retries = cell.with_settings(|s| s.total_retries);
        task_info(cell, state.attempt_id, state.retries, total_retries)
    }

    /// A subgraph with a failure ends its run once none of its members is still running.
    pub(super) fn end_failed_subgraph(&mut self, task: TaskIx) {
        let state = &self.subgraphs[task];
        if state.ended || state.judging || state.active > 0 {
            return;
        }
        if let Some(error) = state.failure.as_deref().cloned() {
            self.subgraph_ran(task, Err(error));
        }
    }

    /// A run of the subgraph ended: all its members are done, or one failed and none still
    /// runs. Judged at once, or by its handler on a script thread (a handler may wait for a
    /// task, which needs this loop).
    pub(super) fn subgraph_ran(&mut self, task: TaskIx, result: Result<(), TaskError>) {
        let cell = self.plan.tasks[task].cell.clone();
        let retries = self.subgraphs[task].retries;
        let now = cell.with_settings(|settings| judge_subgraph_now(settings, &result, retries));
        if let Some(judgement) = now {
            return self.subgraph_judged(task, judgement);
        }
        self.subgraphs[task].judging = true;
        self.running += 1;
        let (env, done) = (self.env.clone(), self.done_tx.clone());
        self.env.runtime.spawn(async move {
            let judgement = judge_subgraph(&cell, result, retries, &env).await;
            let _ = done.send((task, Report::Judged(judgement)));
        });
    }

    /// What a run's judgement means for the subgraph. Nothing runs again once the graph is
    /// stopping: a retry is then the failure, a polling run the success it was.
    pub(super) fn subgraph_judged(&mut self, task: TaskIx, judgement: Judgement) {
        self.subgraphs[task].judging = false;
        let stop = self.stopping || self.env.cancel.is_requested();
        match judgement {
            Judgement::Retry { after, error } if !stop => {
                self.retries_due.push(SubgraphRetry { task, after, error, polled: false });
            }
            Judgement::Poll { after, .. } if !stop => {
                self.env.bus.emit_success(self.subgraph_info(task), None, Success::Again);
                let error = TaskError::recoverable(POLL_AGAIN);
                self.retries_due.push(SubgraphRetry { task, after, error, polled: true });
            }
            Judgement::Succeed(_) | Judgement::Poll { .. } => self.subgraph_succeeded(task),
            Judgement::Ignore(error) => self.subgraph_failed(task, error, true),
            Judgement::Retry { error, .. } | Judgement::Fail(error) => self.subgraph_failed(task, error, false),
            Judgement::Cancelled => self.subgraph_failed(task, TaskError::cancelled(), false),
        }
    }

    /// The subgraph succeeded: told before anything waiting for it is released.
    fn subgraph_succeeded(&mut self, task: TaskIx) {
        let told = Some(self.subgraph_info(task));
        self.subgraphs[task].ended = true;
        self.end_task(task, Ending::Succeeded { result: Dynamic::UNIT, told });
    }

    /// The subgraph ends without success: failed, cancelled, or failed but `ignored` by its
    /// handler (`ignore()`/`cont()`: what waits for it runs, and the failures inside it no
    /// longer fail the graph).
    fn subgraph_failed(&mut self, task: TaskIx, error: TaskError, ignored: bool) {
        let told = Some(self.subgraph_info(task));
        self.subgraphs[task].ended = true;
        let failed_inside: Vec<bool> = self.failed.iter().map(|(t, _)| self.plan.holds(task, *t)).collect();
        if ignored {
            let mut inside = failed_inside.into_iter();
            self.failed.retain(|_| !inside.next().unwrap_or(false));
        } else if !error.is_cancelled() && !failed_inside.contains(&true) {
            // A handler can fail a run none of whose members failed (on_success's fail()):
            // the graph's error then names the subgraph.
            let failed = FailedTask::of(&self.plan.tasks[task].cell, error.clone());
            self.failed.push((task, failed));
        }
        self.end_task(task, Ending::Failed { error, ignored, told });
    }

    /// Sets the subgraph up to run again: its last run's succeeded members are reverted
    /// (unless it was polled), its rescheduling told, and the next run starts after
    /// `retry_interval` (`restart_subgraph`), a wait that a cancel ends. The wait runs off
    /// this loop: the rest of the graph goes on meanwhile.
    pub(super) async fn retry_subgraph(&mut self, retry: SubgraphRetry) {
        let subgraph = retry.task;
        let members: Vec<TaskIx> = self.plan.tasks.indices().filter(|&t| self.plan.holds(subgraph, t)).collect();
        let (undo, kept): (Vec<TaskIx>, Vec<TaskIx>) =
            self.succeeded.iter().partition(|&&t| self.plan.holds(subgraph, t));
        self.succeeded = kept;
        if !retry.polled {
            revert(&self.plan.tasks, &self.env, &undo).await;
        }
        self.failed.retain(|(t, _)| !members.contains(t));
        self.reset_members(subgraph, &members);

        let info = self.subgraph_info(subgraph);
        self.env.bus.emit(Payload::TaskRescheduled {
            task: info,
            error: retry.error.message.clone(),
            retry_after: retry.after,
        });
        self.plan.tasks[subgraph].cell.reschedule(retry.error);
        let state = &mut self.subgraphs[subgraph];
        state.retries += 1;
        state.active = 0;
        state.failure = None;
        self.running += 1;
        let (cancel, done, after) = (self.env.cancel.clone(), self.done_tx.clone(), retry.after);
        self.env.runtime.spawn(async move {
            if after > 0.0 {
                tokio::select! {
                    _ = tokio::time::sleep(crate::seconds::duration(after)) => {}
                    _ = cancel.requested() => {}
                }
            }
            let _ = done.send((subgraph, Report::RetryDue));
        });
    }

    /// Every vertex of the subgraph waits again, for what is inside it and for what outside
    /// has not completed; its members are fresh, as never run.
    fn reset_members(&mut self, subgraph: TaskIx, members: &[TaskIx]) {
        let sg = &self.plan.tasks[subgraph];
        let mut vertices: Vec<VertexIx> = vec![sg.entry, sg.exit];
        for &m in members {
            let t = &self.plan.tasks[m];
            vertices.push(t.entry);
            if t.is_subgraph() {
                vertices.push(t.exit);
            }
        }
        self.ready.wait_again(&self.plan, &vertices);
        for &m in members {
            self.plan.tasks[m].cell.reset_for_rerun();
            self.subgraphs[m] = SubgraphState::default();
        }
    }

    /// The retry wait is over: the subgraph's next run starts, unless a cancel ended the wait
    /// (then, as after a task's retry wait, no attempt follows).
    pub(super) fn restart_subgraph(&mut self, task: TaskIx) {
        if self.env.cancel.is_requested() {
            self.subgraphs[task].ended = true;
            return self.end_task(task, Ending::Failed { error: TaskError::cancelled(), ignored: false, told: None });
        }
        // Its members run again as fresh tasks: more tasks for the execution's done/total.
        let fresh = self
            .plan
            .tasks
            .iter_enumerated()
            .filter(|&(t, planned)| self.plan.holds(task, t) && has_stored_state(&planned.cell))
            .count();
        self.env.planned(fresh as u64);
        let attempt_id = self.env.next_task_id();
        let state = &mut self.subgraphs[task];
        state.attempt_id = attempt_id;
        self.plan.tasks[task].cell.begin_attempt(attempt_id, state.retries);
        self.env.bus.emit(Payload::TaskStarted { task: self.subgraph_info(task) });
        let entry = self.plan.tasks[task].entry;
        self.ready.release(&self.plan, entry);
    }

    /// Subgraphs that started but could not finish (a stop, or a member whose dependency
    /// failed) still get their one closing event.
    pub(super) fn close_unfinished_subgraphs(&mut self) {
        for task in self.subgraphs.indices() {
            let state = &self.subgraphs[task];
            if !state.opened || state.ended {
                continue;
            }
            let cell = Arc::clone(&self.plan.tasks[task].cell);
            let error = if self.env.cancel.is_requested() {
                TaskError::cancelled()
            } else {
                TaskError::recoverable(format!("not all tasks of subgraph `{}` could run", cell.name))
            };
            let told = Some(self.subgraph_info(task));
            end(&cell, Ending::Failed { error, ignored: false, told }, &self.env);
            self.subgraphs[task].ended = true;
        }
    }
}
