//! A closure task's first attempt, run straight on a script thread.
//!
//! The general path (`attempt::run_task`) is a tokio task that hands the closure to a script
//! thread and waits for its value: for every closure a spawn, a job, a oneshot channel and two
//! more thread wake-ups. Most closure tasks have no handlers and succeed at once, so for them
//! the scheduler queues the attempt on the script pool itself and the script thread reports
//! the outcome back. A failure must be judged and perhaps retried after a wait: it goes on
//! through `run_task`, with this attempt as its first.
//!
//! Such attempts cost little besides Rhai's call of the closure, so what carries them must
//! cost little too: a `DirectJob` sits in the pool's queue as it is (no boxed closure of its
//! own), and its end goes back through the plan's `DirectRun`, where the scheduler takes all
//! the ends that arrived at once instead of waking for each.

use std::sync::Arc;

use parking_lot::Mutex;
use rhai::Dynamic;

use super::attempt::{closure_call, task_info, FirstAttempt};
use super::ExecEnv;
use crate::events::Success;
use crate::graph::TaskIx;
use crate::task::{TaskAction, TaskCell};

/// A closure task that can take the direct path, with the settings its attempt needs.
pub struct DirectClosure {
    total_retries: i64,
    /// The `task_id` of the attempt, handed over as it is: no other attempt can take it.
    attempt_id: u64,
}

/// How the direct attempt ended.
pub enum DirectEnd {
    /// The closure returned `value`; its `task_succeeded` event is `seq`. The task is finished
    /// (its result set, its dependents released) once that event is committed.
    Succeeded { value: Dynamic, seq: u64 },
    /// A cancel came first: the task is finished, as cancelled.
    Cancelled,
    /// The closure threw: `continue_task` judges it, and retries it, as any other attempt.
    /// Boxed: the rare case, and every end is moved twice on its way to the scheduler.
    Failed(Box<FirstAttempt>),
    /// The attempt's own code panicked (a bug in rhaiflow; Rhai's panics are caught inside
    /// the call): the task fails, and the run knows of the bug.
    Panicked,
}

/// One plan's direct attempts: what they run with, and their ends on the way back.
pub struct DirectRun {
    env: Arc<ExecEnv>,
    ends: Mutex<Vec<(TaskIx, DirectEnd)>>,
    /// Told when `ends` stops being empty; a told with nothing left to take is harmless.
    arrived: tokio::sync::Notify,
}

impl DirectRun {
    pub fn new(env: Arc<ExecEnv>) -> Arc<Self> {
        Arc::new(DirectRun { env, ends: Mutex::new(Vec::new()), arrived: tokio::sync::Notify::new() })
    }

    /// Waits until an end has arrived since the last `take`.
    pub async fn arrived(&self) {
        self.arrived.notified().await;
    }

    /// `attempts` more were queued: room for their ends, made once.
    pub fn expect(&self, attempts: usize) {
        self.ends.lock().reserve(attempts);
    }

    /// Every end that arrived, in the order they did. The list they arrive in next gets room
    /// for as many (`into`, empty, is the scheduler's list of the last time).
    pub fn take(&self, into: &mut Vec<(TaskIx, DirectEnd)>) {
        let mut ends = self.ends.lock();
        std::mem::swap(&mut *ends, into);
        ends.reserve(into.len());
    }

    fn arrive(&self, task: TaskIx, end: DirectEnd) {
        let first = {
            let mut ends = self.ends.lock();
            ends.push((task, end));
            ends.len() == 1
        };
        // The scheduler empties the list whole: it needs waking only when it was empty.
        if first {
            self.arrived.notify_one();
        }
    }
}

/// A closure task's first attempt as it waits in the script pool's queue.
pub struct DirectJob {
    pub task: TaskIx,
    pub cell: Arc<TaskCell>,
    pub direct: DirectClosure,
    pub run: Arc<DirectRun>,
}

impl DirectJob {
    /// Runs the attempt on this (script) thread and hands its end to the scheduler, which
    /// hears of it even when the attempt panics: it would otherwise wait for it for ever.
    pub fn run(self) {
        let DirectJob { task, cell, direct, run } = self;
        let end = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| direct.run(&cell, &run.env)))
            .unwrap_or(DirectEnd::Panicked);
        run.arrive(task, end);
    }
}

impl DirectClosure {
    /// A closure task without handlers, in a run without a concurrency limit (whose permits
    /// are awaited on tokio), takes the direct path; a mocked one does not run its closure.
    pub fn for_task(cell: &TaskCell, env: &ExecEnv, attempt_id: u64) -> Option<Self> {
        if !matches!(cell.action, TaskAction::Script { .. }) || env.limiter.is_some() {
            return None;
        }
        if !env.mocks.0.is_empty() && env.mocks.0.contains_key(&*cell.name) {
            return None;
        }
        // A timeout is the executor's to enforce when the closure is stuck in a native call.
        cell.with_settings(|settings| {
            let handled = settings.on_success.is_some() || settings.on_failure.is_some();
            let direct = DirectClosure { total_retries: settings.total_retries, attempt_id };
            (!handled && settings.timeout.is_none()).then_some(direct)
        })
    }

    /// Runs the first attempt on the calling (script) thread, as `run_task` would.
    pub fn run(self, cell: &Arc<TaskCell>, env: &ExecEnv) -> DirectEnd {
        if env.cancel.is_requested() {
            cell.cancel_unstarted();
            return DirectEnd::Cancelled;
        }
        let attempt_id = self.attempt_id;
        cell.begin_attempt(attempt_id, 0);
        let info = task_info(cell, attempt_id, 0, self.total_retries);
        env.bus.emit_task_started(&info);
        let (closure, args) = closure_call(cell).expect("a direct task runs a closure");
        match env.scripts.call(closure, args, None) {
            Ok(value) => {
                let seq = env.bus.emit_success(info, Some(&value), Success::Done);
                DirectEnd::Succeeded { value, seq }
            }
            Err(error) => DirectEnd::Failed(Box::new(FirstAttempt { info, result: Err(error) })),
        }
    }
}
