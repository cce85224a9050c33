//! Runs a `Plan`: every vertex starts when the vertices it waits for are done.
//!
//! Event-driven: tasks report their outcome on a channel, cancel arrives as a future; there
//! is no polling. No-op and event tasks run inline (no spawn), which keeps big graphs cheap;
//! closure tasks without handlers go straight to a script thread (`direct_closure`).
//! A subgraph's runs, judged by its handlers and retried, are in `subgraphs`.

use std::collections::VecDeque;
use std::sync::Arc;

use rhai::Dynamic;
use tokio::sync::{mpsc, watch};

mod subgraphs;

use super::attempt::{current_task_info, task_info, Judgement};
use super::direct_closure::{DirectClosure, DirectEnd};
use super::{continue_task, run_task, ExecEnv, TaskOutcome};
use crate::events::{Payload, Success};
use crate::graph::{Plan, Role};
use crate::store::{CommitState, StoreError};
use crate::task::{ErrorKind, FailedTask, TaskError};
use crate::task::{TaskAction, TaskCell, TaskState};
use subgraphs::{SubgraphRetry, SubgraphState};

/// What a task's runner, or a subgraph's handler or retry wait, tells the scheduler.
enum Report {
    /// The task ended (`run_task`).
    Ended(TaskOutcome),
    /// The first attempt of a closure task on the direct path ended.
    Direct(DirectEnd),
    /// A subgraph's run was judged by its handler.
    Judged(Judgement),
    /// A subgraph's retry wait is over (or a cancel ended it).
    RetryDue,
}

/// A task's runner tells the scheduler how it ended, even when it panics: tokio catches the
/// panic and drops the runner, and a scheduler that never heard back would wait for ever. A
/// local of the runner, so it costs no allocation and no spawn.
struct ReportsOnPanic<'a> {
    task: u32,
    done: &'a mpsc::UnboundedSender<(u32, Report)>,
}

impl ReportsOnPanic<'_> {
    fn report(self, report: Report) {
        let _ = self.done.send((self.task, report));
        std::mem::forget(self);
    }
}

impl Drop for ReportsOnPanic<'_> {
    fn drop(&mut self) {
        // Dropped without a panic, the runner was stopped with the runtime: no one listens.
        if std::thread::panicking() {
            let error = TaskError::internal("a task's runner panicked");
            let _ = self.done.send((self.task, Report::Ended(TaskOutcome::Failed(error))));
        }
    }
}

struct Scheduler {
    plan: Plan,
    env: Arc<ExecEnv>,
    fail_fast: bool,
    deps: Vec<u32>,
    /// Vertices that released their dependents (to rebuild counts when a subgraph reruns).
    complete: Vec<bool>,
    ready: VecDeque<u32>,
    running: usize,
    subgraphs: Vec<SubgraphState>,
    /// Tasks that failed, in the order they failed, with their plan index (and subgraphs a
    /// handler failed while none of their members did).
    failed: Vec<(u32, FailedTask)>,
    /// Subgraphs to run again, once the loop can await their reverts.
    retries_due: Vec<SubgraphRetry>,
    /// Tasks (not subgraphs) that succeeded, in the order they did: reversed, an order in
    /// which every task comes after all that depended on it.
    succeeded: Vec<u32>,
    stopping: bool,
    done_tx: mpsc::UnboundedSender<(u32, Report)>,
    /// Closure tasks that succeeded on the direct path, with the `seq` of their success: they
    /// finish once the store committed it, so that nothing runs on top of a success that is
    /// not on disk.
    awaiting_commit: Vec<(u64, u32, Dynamic)>,
    /// How far the store's commits got; `None` in memory (nothing to wait for).
    committed: Option<watch::Receiver<CommitState>>,
    /// The store's writer is gone: what it has not committed, it never will.
    writer_stopped: bool,
}

/// Executes the plan; `Err` names the failed tasks, or says the execution was cancelled.
pub async fn execute_plan(plan: Plan, env: Arc<ExecEnv>, fail_fast: bool) -> Result<(), TaskError> {
    // Subgraphs and event tasks have no task state of their own in the store.
    env.planned(
        plan.tasks.iter().filter(|t| !matches!(t.cell.action, TaskAction::Subgraph | TaskAction::Event { .. })).count()
            as u64,
    );
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let deps: Vec<u32> = plan.vertices.iter().map(|v| v.deps).collect();
    let ready = (0..deps.len() as u32).filter(|&v| deps[v as usize] == 0).collect();
    let subgraphs = plan.tasks.iter().map(|_| SubgraphState::default()).collect();
    let mut s = Scheduler {
        plan,
        env: env.clone(),
        fail_fast,
        complete: vec![false; deps.len()],
        deps,
        ready,
        running: 0,
        subgraphs,
        failed: Vec::new(),
        retries_due: Vec::new(),
        succeeded: Vec::new(),
        stopping: false,
        done_tx,
        awaiting_commit: Vec::new(),
        committed: env.committed.clone(),
        writer_stopped: false,
    };
    loop {
        while let Some(v) = s.ready.pop_front() {
            s.activate(v);
        }
        if let Some(retry) = s.retries_due.pop() {
            s.retry_subgraph(retry).await;
            continue;
        }
        if s.running == 0 {
            break;
        }
        tokio::select! {
            Some((task, report)) = done_rx.recv() => s.report(task, report),
            _ = env.cancel.requested(), if !s.stopping => s.stopping = true,
            open = next_commit(&mut s.committed), if !s.awaiting_commit.is_empty() && !s.writer_stopped => {
                s.writer_stopped = !open;
                s.finish_committed();
            }
        }
    }
    s.close_unfinished_subgraphs();
    if env.cancel.is_requested() {
        return Err(TaskError::cancelled());
    }
    if s.failed.is_empty() {
        return Ok(());
    }
    // A store that failed cannot record reverts: a resume would take the reverted tasks for
    // succeeded ones. The record stays as it is, and a resume goes on from it.
    if !s.failed.iter().any(|(_, f)| f.error.kind == ErrorKind::StoreFailed) {
        let succeeded = std::mem::take(&mut s.succeeded);
        s.revert(&succeeded).await;
    }
    Err(graph_failure(s.failed.into_iter().map(|(_, f)| f).collect()))
}

/// Waits until the store's commits move on (`true`), or its writer stops (`false`: nothing
/// more will be committed, and waiting on must not hold the run); never returns when there is
/// no store.
async fn next_commit(committed: &mut Option<watch::Receiver<CommitState>>) -> bool {
    match committed {
        Some(receiver) => receiver.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

fn graph_failure(failed: Vec<FailedTask>) -> TaskError {
    let message = match failed.as_slice() {
        [one] => format!("task {} failed: {}", one.shown(), one.error.message),
        many => {
            let list: Vec<String> = many.iter().map(|f| format!("{} ({})", f.shown(), f.error.message)).collect();
            format!("{} tasks failed: {}", many.len(), list.join(", "))
        }
    };
    let mut error = TaskError::new(ErrorKind::GraphFailed, message);
    error.failed_tasks = Arc::new(failed);
    error
}

impl Scheduler {
    /// True when the task must not start: a stop was asked for, or a subgraph around it failed.
    fn blocked(&self, task: u32) -> bool {
        if self.stopping || self.env.cancel.is_requested() {
            return true;
        }
        let mut at = self.plan.tasks[task as usize].parent;
        while let Some(p) = at {
            if self.subgraphs[p as usize].failure.is_some() {
                return true;
            }
            at = self.plan.tasks[p as usize].parent;
        }
        false
    }

    fn activate(&mut self, vertex: u32) {
        let (task, role) = {
            let v = &self.plan.vertices[vertex as usize];
            (v.task, v.role)
        };
        if role != Role::Close && self.blocked(task) {
            return;
        }
        match role {
            Role::Run => self.start_task(task),
            Role::Open => self.open_subgraph(task),
            Role::Close => self.subgraph_ran(task, Ok(())),
        }
    }

    fn start_task(&mut self, task: u32) {
        self.running += 1;
        if let Some(p) = self.plan.tasks[task as usize].parent {
            self.subgraphs[p as usize].active += 1;
        }
        let cell = self.plan.tasks[task as usize].cell.clone();
        if let Some(result) = self.env.replayed(&cell) {
            cell.set_result(result);
            cell.finish(TaskState::Succeeded);
            self.finish(task, TaskOutcome::Succeeded);
            return;
        }
        let attempt_id = self.env.next_task_id();
        if let Some(total_retries) = self.start_inline(&cell, attempt_id) {
            match &cell.action {
                TaskAction::Event { message, node_instance } => {
                    let node_instance = node_instance.clone();
                    self.env.bus.emit(Payload::WorkflowEvent { message: message.clone(), node_instance });
                }
                _ => {
                    let info = task_info(&cell, attempt_id, 0, total_retries);
                    self.env.bus.emit(Payload::TaskStarted { task: info.clone() });
                    self.env.bus.emit(Payload::TaskSucceeded { task: info, result: None, how: Success::Done });
                }
            }
            cell.finish(TaskState::Succeeded);
            self.finish(task, TaskOutcome::Succeeded);
            return;
        }
        let env = self.env.clone();
        let done = self.done_tx.clone();
        if let Some(direct) = DirectClosure::for_task(&cell, &env) {
            self.env.scripts_pool.submit(Box::new(move || {
                let end = direct.run(&cell, &env);
                let _ = done.send((task, Report::Direct(end)));
            }));
            return;
        }
        self.env.runtime.spawn(async move {
            let reporter = ReportsOnPanic { task, done: &done };
            let outcome = run_task(cell, env).await;
            reporter.report(Report::Ended(outcome));
        });
    }

    fn report(&mut self, task: u32, report: Report) {
        match report {
            Report::Ended(TaskOutcome::Failed(error)) if error.kind == ErrorKind::Internal => {
                self.env.record_bug(&error);
                self.finish(task, TaskOutcome::Failed(error))
            }
            Report::Ended(outcome) => self.finish(task, outcome),
            Report::Direct(DirectEnd::Succeeded { value, seq }) => match self.commit_outcome(seq) {
                Some(Ok(())) => self.finish_succeeded(task, value),
                Some(Err(e)) => self.finish_unrecorded(task, &e),
                None => self.awaiting_commit.push((seq, task, value)),
            },
            Report::Direct(DirectEnd::Cancelled) => self.finish(task, TaskOutcome::Cancelled),
            Report::Direct(DirectEnd::Failed(first)) => {
                let (cell, env, done) =
                    (self.plan.tasks[task as usize].cell.clone(), self.env.clone(), self.done_tx.clone());
                self.env.runtime.spawn(async move {
                    let reporter = ReportsOnPanic { task, done: &done };
                    let outcome = continue_task(cell, env, first).await;
                    reporter.report(Report::Ended(outcome));
                });
            }
            Report::Judged(judgement) => {
                self.running -= 1;
                self.subgraph_judged(task, judgement);
            }
            Report::RetryDue => {
                self.running -= 1;
                self.restart_subgraph(task);
            }
        }
    }

    /// A closure task on the direct path succeeded, and its success is on disk.
    fn finish_succeeded(&mut self, task: u32, value: Dynamic) {
        let cell = &self.plan.tasks[task as usize].cell;
        cell.set_result(value);
        cell.finish(TaskState::Succeeded);
        self.finish(task, TaskOutcome::Succeeded);
    }

    /// A closure task on the direct path succeeded, but the store could not record it: the
    /// task fails (`finish` then starts nothing new). The bus never announces that success:
    /// the attempt's outcome the sinks see is this failure.
    fn finish_unrecorded(&mut self, task: u32, error: &StoreError) {
        let error = TaskError::unrecorded(error);
        let cell = &self.plan.tasks[task as usize].cell;
        self.env.bus.emit(Payload::TaskFailed {
            task: current_task_info(cell),
            error: error.message.clone(),
            how: error.failure(false),
        });
        cell.set_error(Some(error.clone()));
        cell.finish(TaskState::Failed);
        self.finish(task, TaskOutcome::Failed(error));
    }

    /// Whether the event `seq` is on disk: `None` while it may still be.
    fn commit_outcome(&self, seq: u64) -> Option<Result<(), StoreError>> {
        let Some(committed) = &self.committed else { return Some(Ok(())) };
        let outcome = committed.borrow().outcome(seq);
        match outcome {
            None if self.writer_stopped => Some(Err(StoreError::WriterStopped)),
            outcome => outcome,
        }
    }

    /// Finishes the tasks whose success the store has now committed, and fails those whose
    /// success it never will.
    fn finish_committed(&mut self) {
        for (seq, task, value) in std::mem::take(&mut self.awaiting_commit) {
            match self.commit_outcome(seq) {
                Some(Ok(())) => self.finish_succeeded(task, value),
                Some(Err(e)) => self.finish_unrecorded(task, &e),
                None => self.awaiting_commit.push((seq, task, value)),
            }
        }
    }

    /// No-op and event tasks without handlers cannot fail or wait: they run in place, with no
    /// spawn. Starts such an attempt and returns its `total_retries`.
    fn start_inline(&self, cell: &TaskCell, attempt_id: u64) -> Option<i64> {
        if !matches!(cell.action, TaskAction::Noop | TaskAction::Event { .. }) || self.env.limiter.is_some() {
            return None;
        }
        let mut inner = cell.inner.lock();
        if inner.settings.on_success.is_some() || inner.settings.on_failure.is_some() {
            return None;
        }
        inner.status.state = TaskState::Started;
        inner.status.attempt_id = Some(attempt_id);
        Some(inner.settings.total_retries)
    }

    /// The vertices waiting for `vertex` have one less thing to wait for.
    fn release(&mut self, vertex: u32) {
        self.complete[vertex as usize] = true;
        let Scheduler { plan, deps, ready, .. } = self;
        for &d in &plan.vertices[vertex as usize].dependents {
            deps[d as usize] -= 1;
            if deps[d as usize] == 0 {
                ready.push_back(d);
            }
        }
    }

    /// A task or subgraph ended.
    fn finish(&mut self, task: u32, outcome: TaskOutcome) {
        let is_subgraph = self.plan.tasks[task as usize].entry != self.plan.tasks[task as usize].exit;
        if !is_subgraph {
            self.running -= 1;
        }
        let parent = self.plan.tasks[task as usize].parent;
        match outcome {
            TaskOutcome::Succeeded | TaskOutcome::Ignored => {
                if !is_subgraph && matches!(outcome, TaskOutcome::Succeeded) {
                    self.succeeded.push(task);
                }
                let exit = self.plan.tasks[task as usize].exit;
                self.release(exit);
            }
            TaskOutcome::Failed(error) => {
                if !is_subgraph {
                    let cell = &self.plan.tasks[task as usize].cell;
                    let failed = FailedTask::of(cell, error.clone());
                    self.failed.push((task, failed));
                }
                // A store that failed records nothing more, and after a bug in rhaiflow nothing is
                // to be trusted: nothing new starts.
                if self.fail_fast || error.ends_the_run() {
                    self.stopping = true;
                }
                if let Some(p) = parent {
                    self.subgraphs[p as usize].failure.get_or_insert(error);
                }
            }
            TaskOutcome::Cancelled => {
                if let Some(p) = parent {
                    self.subgraphs[p as usize].failure.get_or_insert(TaskError::cancelled());
                }
            }
        }
        if let Some(p) = parent {
            self.subgraphs[p as usize].active -= 1;
            self.end_failed_subgraph(p);
        }
    }

    /// After a failure: every succeeded task with a `revert` closure is reverted, one at a
    /// time, each after all tasks that depended on it; a revert that fails is reported and
    /// the others still run (TaskFlow's semantics).
    async fn revert(&mut self, succeeded: &[u32]) {
        for &task in succeeded.iter().rev() {
            let cell = self.plan.tasks[task as usize].cell.clone();
            let (revert, info) = {
                let inner = cell.inner.lock();
                let Some(revert) = inner.settings.revert.clone() else { continue };
                let info = task_info(
                    &cell,
                    inner.status.attempt_id.unwrap_or(0),
                    inner.status.current_retries,
                    inner.settings.total_retries,
                );
                (revert, (info, inner.status.result.clone()))
            };
            let (info, result) = info;
            self.env.bus.emit(Payload::TaskReverting { task: info.clone() });
            let scripts = self.env.scripts.clone();
            let outcome = self.env.scripts_pool.run(move || scripts.call(&revert, vec![result], None)).await;
            match outcome {
                Some(Ok(_)) => {
                    self.env.bus.emit(Payload::TaskReverted { task: info });
                }
                Some(Err(e)) => {
                    self.env.bus.emit(Payload::TaskRevertFailed { task: info, error: e.message });
                }
                None => {
                    self.env
                        .bus
                        .emit(Payload::TaskRevertFailed { task: info, error: "the script thread stopped".into() });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, EventBus, EventSink, ExecutionLabel};
    use crate::exec::{CancelState, ScriptCalls};
    use crate::graph::TaskGraph;
    use crate::task::{test_task, TaskCell};
    use parking_lot::Mutex;
    use rhai::{Dynamic, FnPtr};

    /// Closures named `fail` fail for good; any other succeeds.
    struct FakeScripts;

    impl ScriptCalls for FakeScripts {
        fn call(&self, closure: &FnPtr, _: Vec<Dynamic>, _: Option<f64>) -> Result<Dynamic, TaskError> {
            match closure.fn_name() {
                "fail" => Err(TaskError::new(ErrorKind::NonRecoverable, "boom")),
                _ => Ok(Dynamic::UNIT),
            }
        }
        fn task_handle(&self, _: &Arc<TaskCell>) -> Dynamic {
            Dynamic::UNIT
        }
    }

    struct Recorder(Arc<Mutex<Vec<String>>>);

    impl EventSink for Recorder {
        fn accept(&mut self, event: &Event, _: &ExecutionLabel) {
            if let Some(t) = event.payload.task() {
                self.0.lock().push(format!("{} {}", event.payload.type_name(), t.name));
            }
        }
    }

    fn closure(name: &str, fn_name: &str) -> Arc<TaskCell> {
        let action = TaskAction::Script { closure: FnPtr::new(fn_name).unwrap(), arity: 0 };
        test_task(name, action)
    }

    fn subgraph(name: &str) -> Arc<TaskCell> {
        test_task(name, TaskAction::Subgraph)
    }

    fn execute(graph: &TaskGraph, fail_fast: bool) -> (Result<(), TaskError>, Vec<String>) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let label = ExecutionLabel { execution_id: "e".into(), workflow: "w".into() };
        let bus = Arc::new(EventBus::new(label, vec![Box::new(Recorder(events.clone()))]));
        let env = ExecEnv::new(
            runtime.handle().clone(),
            bus,
            Arc::new(CancelState::default()),
            Arc::new(FakeScripts),
            None,
            false,
        );
        let plan = Plan::build(graph).unwrap();
        let result = runtime.block_on(execute_plan(plan, Arc::new(env), fail_fast));
        let seen = events.lock().clone();
        (result, seen)
    }

    /// Closures fail; handing a task to a handler panics (a bug in the host).
    struct PanicsInHandles;

    impl ScriptCalls for PanicsInHandles {
        fn call(&self, _: &FnPtr, _: Vec<Dynamic>, _: Option<f64>) -> Result<Dynamic, TaskError> {
            Err(TaskError::recoverable("boom"))
        }
        fn task_handle(&self, _: &Arc<TaskCell>) -> Dynamic {
            panic!("a bug in the host");
        }
    }

    // A panic in a task's runner failed the task, but a script that caught the error could
    // end the run "succeeded": the run must know a bug happened.
    #[test]
    fn a_panic_in_a_task_s_runner_is_recorded_as_the_run_s_bug() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let label = ExecutionLabel { execution_id: "e".into(), workflow: "w".into() };
        let bus = Arc::new(EventBus::new(label, Vec::new()));
        let scripts = Arc::new(PanicsInHandles);
        let env = Arc::new(ExecEnv::new(runtime.handle().clone(), bus, Arc::default(), scripts, None, false));
        let (bad, later) = (closure("bad", "fail"), closure("later", "ok"));
        bad.inner.lock().settings.on_failure = Some(FnPtr::new("handler").unwrap());
        let mut g = TaskGraph::default();
        g.add(&bad, None).unwrap();
        g.add(&later, None).unwrap();
        g.add_dependency(&later, &bad).unwrap();
        let result = runtime.block_on(execute_plan(Plan::build(&g).unwrap(), env.clone(), false));
        let error = result.unwrap_err();
        assert_eq!(error.failed_tasks[0].error.kind, ErrorKind::Internal, "{}", error.message);
        let bug = env.bug().expect("the run knows of the bug");
        assert!(bug.message.starts_with("this is a bug in rhaiflow"), "{}", bug.message);
        assert_eq!(later.state(), TaskState::Pending, "nothing runs on top of a bug");
    }

    #[test]
    fn a_failure_inside_a_subgraph_fails_it_and_stops_its_dependents_only() {
        let mut g = TaskGraph::default();
        let (sg, bad, after, elsewhere) =
            (subgraph("sg"), closure("bad", "fail"), closure("after", "ok"), closure("elsewhere", "ok"));
        g.add(&sg, None).unwrap();
        g.add(&bad, Some(&sg)).unwrap();
        g.add(&after, None).unwrap();
        g.add(&elsewhere, None).unwrap();
        g.add_dependency(&after, &sg).unwrap();
        let (result, events) = execute(&g, false);
        let error = result.unwrap_err();
        assert_eq!(error.kind, ErrorKind::GraphFailed);
        assert_eq!(error.message, "task `bad` failed: boom");
        assert!(events.contains(&"task_failed sg".to_string()), "{events:?}");
        assert!(events.contains(&"task_succeeded elsewhere".to_string()), "{events:?}");
        assert!(!events.iter().any(|e| e.ends_with(" after")), "{events:?}");
        assert_eq!(sg.state(), TaskState::Failed);
    }

    #[test]
    fn fail_fast_starts_nothing_after_the_first_failure() {
        let mut g = TaskGraph::default();
        let (bad, next) = (closure("bad", "fail"), closure("next", "ok"));
        let slow = test_task("slow", TaskAction::Sleep { seconds: 0.2 });
        for t in [&bad, &slow, &next] {
            g.add(t, None).unwrap();
        }
        g.add_dependency(&next, &slow).unwrap();
        let (result, events) = execute(&g, true);
        assert!(result.is_err());
        assert!(events.contains(&"task_succeeded slow".to_string()), "running tasks finish: {events:?}");
        assert!(!events.iter().any(|e| e.ends_with(" next")), "{events:?}");
    }

    /// Records, when `b` runs, whether the fake store had committed the success of `a`.
    struct SeesCommitted {
        committed: tokio::sync::watch::Receiver<CommitState>,
        a_seq: Arc<Mutex<Option<u64>>>,
        a_on_disk_when_b_ran: Arc<Mutex<Option<bool>>>,
    }

    impl ScriptCalls for SeesCommitted {
        fn call(&self, closure: &FnPtr, _: Vec<Dynamic>, _: Option<f64>) -> Result<Dynamic, TaskError> {
            if closure.fn_name() == "b" {
                let a_seq = self.a_seq.lock().expect("a succeeded before b runs");
                let on_disk = matches!(self.committed.borrow().outcome(a_seq), Some(Ok(())));
                *self.a_on_disk_when_b_ran.lock() = Some(on_disk);
            }
            Ok(Dynamic::UNIT)
        }
        fn task_handle(&self, _: &Arc<TaskCell>) -> Dynamic {
            Dynamic::UNIT
        }
    }

    /// A store that commits every event a little after it is emitted, and fails the commit
    /// of `a`'s success when `fail_a` is set.
    struct SlowStore {
        emitted: std::sync::mpsc::Sender<(u64, bool)>,
        a_seq: Arc<Mutex<Option<u64>>>,
        fail_a: bool,
    }

    impl EventSink for SlowStore {
        fn accept(&mut self, event: &Event, _: &ExecutionLabel) {
            let mut fails = false;
            if let Payload::TaskSucceeded { task, .. } = &event.payload {
                if &*task.name == "a" {
                    *self.a_seq.lock() = Some(event.seq);
                    fails = self.fail_a;
                }
            }
            let _ = self.emitted.send((event.seq, fails));
        }
    }

    /// Runs `a` then `b` (closures) on a `SlowStore`; gives the outcome, the events and
    /// whether `a`'s success was on disk when `b` ran (`None`: `b` never ran).
    fn a_then_b_on_a_slow_store(fail_a: bool) -> (Result<(), TaskError>, Vec<String>, Option<bool>) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (commit_tx, committed) = tokio::sync::watch::channel(CommitState::default());
        let (emitted_tx, emitted) = std::sync::mpsc::channel::<(u64, bool)>();
        std::thread::spawn(move || {
            for (seq, fails) in emitted {
                // Late enough that a dependent started without waiting would run first.
                std::thread::sleep(std::time::Duration::from_millis(5));
                match fails {
                    true => commit_tx.send_modify(|c| c.fail(&StoreError::Database("disk full".into()))),
                    false => commit_tx.send_modify(|c| c.advance(seq)),
                }
            }
        });
        let (a_seq, seen_by_b, events) = (Arc::new(Mutex::new(None)), Arc::new(Mutex::new(None)), Arc::default());
        let label = ExecutionLabel { execution_id: "e".into(), workflow: "w".into() };
        let store = SlowStore { emitted: emitted_tx, a_seq: a_seq.clone(), fail_a };
        let bus = Arc::new(EventBus::new(label, vec![Box::new(store), Box::new(Recorder(Arc::clone(&events)))]));
        let scripts =
            Arc::new(SeesCommitted { committed: committed.clone(), a_seq, a_on_disk_when_b_ran: seen_by_b.clone() });
        let mut env =
            ExecEnv::new(runtime.handle().clone(), bus, Arc::new(CancelState::default()), scripts, None, false);
        env.committed = Some(committed);
        let mut g = TaskGraph::default();
        let (a, b) = (closure("a", "a"), closure("b", "b"));
        g.add(&a, None).unwrap();
        g.add(&b, None).unwrap();
        g.add_dependency(&b, &a).unwrap();
        let result = runtime.block_on(execute_plan(Plan::build(&g).unwrap(), Arc::new(env), false));
        let seen = *seen_by_b.lock();
        let events = events.lock().clone();
        (result, events, seen)
    }

    // A closure task that succeeded on a script thread released its dependents before the
    // store had committed its success: a crash then could lose it while they ran on top of it.
    #[test]
    fn a_closure_success_is_committed_before_its_dependents_start() {
        let (result, _, a_on_disk) = a_then_b_on_a_slow_store(false);
        result.unwrap();
        assert_eq!(a_on_disk, Some(true), "b ran before the success of a was committed");
    }

    // A commit that failed advanced the committed seq all the same: `b` ran on top of a
    // success of `a` that was never recorded, and the graph succeeded. Then the task failed
    // without any event: the sinks saw its attempt end only with the success never recorded.
    #[test]
    fn a_success_the_store_cannot_record_fails_the_task_and_starts_nothing_after_it() {
        let (result, events, a_on_disk) = a_then_b_on_a_slow_store(true);
        let error = result.unwrap_err();
        assert_eq!(error.failed_tasks[0].error.kind, ErrorKind::StoreFailed);
        assert_eq!(error.message, "task `a` failed: the execution store failed: disk full");
        assert_eq!(a_on_disk, None, "b ran: {events:?}");
        assert!(!events.iter().any(|e| e.ends_with(" b")), "{events:?}");
        assert_eq!(events.last().map(String::as_str), Some("task_failed a"), "{events:?}");
    }

    #[test]
    fn nested_subgraphs_close_after_their_members() {
        let mut g = TaskGraph::default();
        let (outer, inner, a) = (subgraph("outer"), subgraph("inner"), closure("a", "ok"));
        g.add(&outer, None).unwrap();
        g.add(&inner, Some(&outer)).unwrap();
        g.add(&a, Some(&inner)).unwrap();
        let (result, events) = execute(&g, false);
        assert!(result.is_ok());
        assert_eq!(
            events,
            [
                "task_started outer",
                "task_started inner",
                "task_started a",
                "task_succeeded a",
                "task_succeeded inner",
                "task_succeeded outer"
            ]
        );
    }

    // A task's runner that panicked never reported: the scheduler waited for it for ever.
    #[test]
    fn a_runner_that_panics_reports_its_task_failed() {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let (done, mut reports) = mpsc::unbounded_channel();
        let runner = runtime.spawn(async move {
            let _reporter = ReportsOnPanic { task: 7, done: &done };
            panic!("a runner's bug");
        });
        assert!(runtime.block_on(runner).is_err());
        match reports.try_recv() {
            Ok((7, Report::Ended(TaskOutcome::Failed(e)))) => {
                assert!(e.message.starts_with("this is a bug in rhaiflow"), "{}", e.message)
            }
            _ => panic!("no failure reported for task 7"),
        }
    }

    #[test]
    fn a_runner_that_ends_reports_once() {
        let (done, mut reports) = mpsc::unbounded_channel();
        ReportsOnPanic { task: 3, done: &done }.report(Report::RetryDue);
        assert!(matches!(reports.try_recv(), Ok((3, Report::RetryDue))));
        assert!(reports.try_recv().is_err());
    }
}
