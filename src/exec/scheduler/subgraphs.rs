//! A subgraph's runs (contract sections 5 and 6). It opens, its members run, it closes; each
//! run is judged as a task's attempt is (its `on_success` / `on_failure` verdicts, else its
//! `total_retries`), and a run that is retried after a failure is reverted first (its
//! succeeded members' `revert`s), waits `retry_interval`, and starts again from fresh copies
//! of its members, with `current_retries + 1`.

use std::sync::Arc;

use super::{Report, Scheduler};
use crate::events::{Payload, Success, TaskInfo};
use crate::exec::attempt::{fail, judge_subgraph, judge_subgraph_now, task_info, Judgement, POLL_AGAIN};
use crate::exec::TaskOutcome;
use crate::task::{FailedTask, TaskError};
use crate::task::{TaskAction, TaskCell, TaskState};

/// Per subgraph: how many members are running or open, and the first failure inside it.
#[derive(Default)]
pub(super) struct SubgraphState {
    pub(super) active: u32,
    pub(super) opened: bool,
    pub(super) ended: bool,
    /// Its handler is judging the run that just ended.
    judging: bool,
    pub(super) failure: Option<TaskError>,
    attempt_id: u64,
    /// Runs of the whole subgraph so far beyond the first: the current run's `current_retries`.
    retries: u32,
}

/// A subgraph to run again, once the scheduler can await the reverts of its last run.
pub(super) struct SubgraphRetry {
    task: u32,
    /// Seconds to wait before the next run (`retry_after`).
    after: f64,
    error: TaskError,
    /// The run succeeded and `on_success` asked for another (a polling loop): nothing failed,
    /// so nothing is reverted.
    polled: bool,
}

impl Scheduler {
    pub(super) fn open_subgraph(&mut self, task: u32) {
        if let Some(p) = self.plan.tasks[task as usize].parent {
            self.subgraphs[p as usize].active += 1;
        }
        let cell = self.plan.tasks[task as usize].cell.clone();
        let attempt_id = self.env.next_task_id();
        cell.begin_attempt(attempt_id, 0);
        let state = &mut self.subgraphs[task as usize];
        state.opened = true;
        state.attempt_id = attempt_id;
        let (_, info) = self.subgraph_attempt(task);
        self.env.bus.emit(Payload::TaskStarted { task: info });
        let entry = self.plan.tasks[task as usize].entry;
        self.release(entry);
    }

    /// The subgraph's cell, and what the events of its current run say about it.
    fn subgraph_attempt(&self, task: u32) -> (Arc<TaskCell>, TaskInfo) {
        let cell = self.plan.tasks[task as usize].cell.clone();
        let state = &self.subgraphs[task as usize];
        let total_retries = cell.inner.lock().settings.total_retries;
        let info = task_info(&cell, state.attempt_id, state.retries, total_retries);
        (cell, info)
    }

    /// A subgraph with a failure ends its run once none of its members is still running.
    pub(super) fn end_failed_subgraph(&mut self, task: u32) {
        let state = &self.subgraphs[task as usize];
        if state.ended || state.judging || state.active > 0 {
            return;
        }
        if let Some(error) = state.failure.clone() {
            self.subgraph_ran(task, Err(error));
        }
    }

    /// A run of the subgraph ended: all its members are done, or one failed and none still
    /// runs. Judged at once, or by its handler on a script thread (a handler may wait for a
    /// task, which needs this loop).
    pub(super) fn subgraph_ran(&mut self, task: u32, result: Result<(), TaskError>) {
        let cell = self.plan.tasks[task as usize].cell.clone();
        let retries = self.subgraphs[task as usize].retries;
        let now = judge_subgraph_now(&cell.inner.lock().settings, &result, retries);
        if let Some(judgement) = now {
            return self.subgraph_judged(task, judgement);
        }
        self.subgraphs[task as usize].judging = true;
        self.running += 1;
        let (env, done) = (self.env.clone(), self.done_tx.clone());
        self.env.runtime.spawn(async move {
            let judgement = judge_subgraph(&cell, result, retries, &env).await;
            let _ = done.send((task, Report::Judged(judgement)));
        });
    }

    /// What a run's judgement means for the subgraph. Nothing runs again once the graph is
    /// stopping: a retry is then the failure, a polling run the success it was.
    pub(super) fn subgraph_judged(&mut self, task: u32, judgement: Judgement) {
        self.subgraphs[task as usize].judging = false;
        let stop = self.stopping || self.env.cancel.is_requested();
        match judgement {
            Judgement::Retry { after, error } if !stop => {
                self.retries_due.push(SubgraphRetry { task, after, error, polled: false });
            }
            Judgement::Poll { after, .. } if !stop => {
                let (_, info) = self.subgraph_attempt(task);
                self.env.bus.emit(Payload::TaskSucceeded { task: info, result: None, how: Success::Again });
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
    fn subgraph_succeeded(&mut self, task: u32) {
        let (cell, info) = self.subgraph_attempt(task);
        self.env.bus.emit(Payload::TaskSucceeded { task: info, result: None, how: Success::Done });
        cell.finish(TaskState::Succeeded);
        self.subgraphs[task as usize].ended = true;
        self.finish(task, TaskOutcome::Succeeded);
    }

    /// The subgraph ends without success: failed, cancelled, or failed but `ignored` by its
    /// handler (`ignore()`/`cont()`: what waits for it runs, and the failures inside it no
    /// longer fail the graph).
    fn subgraph_failed(&mut self, task: u32, error: TaskError, ignored: bool) {
        let (cell, info) = self.subgraph_attempt(task);
        self.subgraphs[task as usize].ended = true;
        let failed_inside: Vec<bool> = self.failed.iter().map(|(t, _)| self.inside(*t, task)).collect();
        if ignored {
            let mut inside = failed_inside.into_iter();
            self.failed.retain(|_| !inside.next().unwrap_or(false));
        } else if !error.is_cancelled() && !failed_inside.contains(&true) {
            // A handler can fail a run none of whose members failed (on_success's fail()):
            // the graph's error then names the subgraph.
            let failed = FailedTask::of(&cell, error.clone());
            self.failed.push((task, failed));
        }
        let outcome = fail(&cell, info, error, ignored, &self.env);
        self.finish(task, outcome);
    }

    /// True when `task` sits inside subgraph `subgraph`, at any depth.
    pub(super) fn inside(&self, task: u32, subgraph: u32) -> bool {
        let mut at = self.plan.tasks[task as usize].parent;
        while let Some(p) = at {
            if p == subgraph {
                return true;
            }
            at = self.plan.tasks[p as usize].parent;
        }
        false
    }

    /// Sets the subgraph up to run again: its last run's succeeded members are reverted
    /// (unless it was polled), its rescheduling told, and the next run starts after
    /// `retry_interval` (`restart_subgraph`), a wait that a cancel ends. The wait runs off
    /// this loop: the rest of the graph goes on meanwhile.
    pub(super) async fn retry_subgraph(&mut self, retry: SubgraphRetry) {
        let subgraph = retry.task;
        let members: Vec<u32> = (0..self.plan.tasks.len() as u32).filter(|&t| self.inside(t, subgraph)).collect();
        let (undo, kept): (Vec<u32>, Vec<u32>) = self.succeeded.iter().partition(|&&t| self.inside(t, subgraph));
        self.succeeded = kept;
        if !retry.polled {
            self.revert(&undo).await;
        }
        self.failed.retain(|(t, _)| !members.contains(t));
        self.reset_members(subgraph, &members);

        let (cell, info) = self.subgraph_attempt(subgraph);
        self.env.bus.emit(Payload::TaskRescheduled {
            task: info,
            error: retry.error.message.clone(),
            retry_after: retry.after,
        });
        cell.set_error(Some(retry.error));
        cell.set_state(TaskState::Rescheduled);
        let state = &mut self.subgraphs[subgraph as usize];
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
    fn reset_members(&mut self, subgraph: u32, members: &[u32]) {
        let sg = &self.plan.tasks[subgraph as usize];
        let mut vertices: Vec<u32> = vec![sg.entry, sg.exit];
        for &m in members {
            let t = &self.plan.tasks[m as usize];
            vertices.push(t.entry);
            if t.exit != t.entry {
                vertices.push(t.exit);
            }
        }
        for &v in &vertices {
            self.complete[v as usize] = false;
        }
        let mut waits = vec![0u32; self.plan.vertices.len()];
        for (from, vertex) in self.plan.vertices.iter().enumerate() {
            if !self.complete[from] {
                for &to in &vertex.dependents {
                    waits[to as usize] += 1;
                }
            }
        }
        for &v in &vertices {
            self.deps[v as usize] = waits[v as usize];
        }
        for &m in members {
            let mut inner = self.plan.tasks[m as usize].cell.inner.lock();
            inner.status.state = TaskState::Pending;
            inner.status.attempt_id = None;
            inner.status.current_retries = 0;
            inner.status.result = rhai::Dynamic::UNIT;
            inner.status.error = None;
            drop(inner);
            self.subgraphs[m as usize] = SubgraphState::default();
        }
    }

    /// The retry wait is over: the subgraph's next run starts, unless a cancel ended the wait
    /// (then, as after a task's retry wait, no attempt follows).
    pub(super) fn restart_subgraph(&mut self, task: u32) {
        let cell = self.plan.tasks[task as usize].cell.clone();
        if self.env.cancel.is_requested() {
            cell.set_error(Some(TaskError::cancelled()));
            cell.finish(TaskState::Cancelled);
            self.subgraphs[task as usize].ended = true;
            self.finish(task, TaskOutcome::Cancelled);
            return;
        }
        // Its members run again as fresh tasks: more tasks for the execution's done/total.
        let fresh = (0..self.plan.tasks.len() as u32)
            .filter(|&t| self.inside(t, task))
            .filter(|&t| {
                !matches!(self.plan.tasks[t as usize].cell.action, TaskAction::Subgraph | TaskAction::Event { .. })
            })
            .count();
        self.env.planned(fresh as u64);
        let attempt_id = self.env.next_task_id();
        let state = &mut self.subgraphs[task as usize];
        state.attempt_id = attempt_id;
        cell.begin_attempt(attempt_id, state.retries);
        let (_, info) = self.subgraph_attempt(task);
        self.env.bus.emit(Payload::TaskStarted { task: info });
        let entry = self.plan.tasks[task as usize].entry;
        self.release(entry);
    }

    /// Subgraphs that started but could not finish (a stop, or a member whose dependency
    /// failed) still get their one closing event.
    pub(super) fn close_unfinished_subgraphs(&mut self) {
        for task in 0..self.subgraphs.len() as u32 {
            let state = &self.subgraphs[task as usize];
            if !state.opened || state.ended {
                continue;
            }
            let (cell, info) = self.subgraph_attempt(task);
            let cancelled = self.env.cancel.is_requested();
            let error = if cancelled {
                TaskError::cancelled()
            } else {
                TaskError::recoverable(format!("not all tasks of subgraph `{}` could run", cell.name))
            };
            self.env.bus.emit(Payload::TaskFailed {
                task: info,
                error: error.message.clone(),
                how: error.failure(false),
            });
            cell.set_error(Some(error));
            cell.finish(if cancelled { TaskState::Cancelled } else { TaskState::Failed });
            self.subgraphs[task as usize].ended = true;
        }
    }
}
