//! Runs a `Plan`: every vertex starts when the vertices it waits for are done.
//!
//! Event-driven: tasks report their outcome on a channel, cancel arrives as a future; there
//! is no polling. No-op and event tasks run inline (no spawn), which keeps big graphs cheap;
//! closure tasks without handlers go straight to a script thread (`direct_closure`).
//! The loop and how a task ends are here; the vertices ready to start are in `ready`, a
//! subgraph's runs (judged by its handlers, retried) in `subgraphs`, the reverts after a
//! failure in `revert`, and closure successes waiting for the store's commit in `commits`.

use std::sync::Arc;

use rhai::Dynamic;
use tokio::sync::mpsc;

mod commits;
mod ready;
mod revert;
mod subgraphs;

use super::attempt::{current_task_info, task_info, Judgement};
use super::direct_closure::{DirectClosure, DirectEnd, DirectJob, DirectRun};
use super::ending::{end, Ending};
use super::{continue_task, run_task, ExecEnv, TaskOutcome};
use crate::events::Payload;
use crate::graph::{IndexVec, Plan, Role, TaskIx, VertexIx};
use crate::store::StoreError;
use crate::task::{ErrorKind, FailedTask, TaskError};
use crate::task::{TaskAction, TaskCell};
use commits::Commits;
use ready::ReadySet;
use subgraphs::{SubgraphRetry, SubgraphState};

/// What a task's runner, or a subgraph's handler or retry wait, tells the scheduler.
enum Report {
    /// The task ended (`run_task`).
    Ended(TaskOutcome),
    /// A subgraph's run was judged by its handler.
    Judged(Judgement),
    /// A subgraph's retry wait is over (or a cancel ended it).
    RetryDue,
}

/// A task's runner tells the scheduler how it ended, even when it panics: tokio catches the
/// panic and drops the runner, and a scheduler that never heard back would wait for ever. A
/// local of the runner, so it costs no allocation and no spawn.
struct ReportsOnPanic<'a> {
    task: TaskIx,
    done: &'a mpsc::UnboundedSender<(TaskIx, Report)>,
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

/// One plan's run: what is ready, running, failed and succeeded, and each subgraph's runs.
struct Scheduler {
    plan: Plan,
    env: Arc<ExecEnv>,
    fail_fast: bool,
    ready: ReadySet,
    /// Tasks running, and subgraphs being judged or waiting to run again: the run ends when
    /// none is left and nothing is ready.
    running: usize,
    subgraphs: IndexVec<TaskIx, SubgraphState>,
    /// Tasks that failed, in the order they failed (and subgraphs a handler failed while none
    /// of their members did).
    failed: Vec<(TaskIx, FailedTask)>,
    /// Subgraphs to run again, once the loop can await their reverts.
    retries_due: Vec<SubgraphRetry>,
    /// Tasks (not subgraphs) that succeeded, in the order they did: reversed, an order in
    /// which every task comes after all that depended on it.
    succeeded: Vec<TaskIx>,
    stopping: bool,
    done_tx: mpsc::UnboundedSender<(TaskIx, Report)>,
    commits: Commits,
    /// Where closure tasks on the direct path report their ends.
    direct: Arc<DirectRun>,
    /// Direct attempts about to be queued: all that become ready together go in one lock.
    direct_due: Vec<DirectJob>,
    /// The direct ends taken from `direct` at once (kept for its room).
    direct_ends: Vec<(TaskIx, DirectEnd)>,
}

/// Executes the plan; `Err` names the failed tasks, or says the execution was cancelled.
pub async fn execute_plan(plan: Plan, env: Arc<ExecEnv>, fail_fast: bool) -> Result<(), TaskError> {
    // Subgraphs and event tasks have no task state of their own in the store.
    env.planned(plan.tasks.iter().filter(|t| has_stored_state(&t.cell)).count() as u64);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let mut s = Scheduler {
        ready: ReadySet::new(&plan),
        subgraphs: plan.tasks.iter().map(|_| SubgraphState::default()).collect(),
        plan,
        env: env.clone(),
        fail_fast,
        running: 0,
        failed: Vec::new(),
        retries_due: Vec::new(),
        succeeded: Vec::new(),
        stopping: false,
        done_tx,
        commits: Commits::new(env.committed.clone()),
        direct: DirectRun::new(env.clone()),
        direct_due: Vec::new(),
        direct_ends: Vec::new(),
    };
    loop {
        // Room for every closure among the ready tasks at once (not doubled up to it).
        s.direct_due.reserve(s.ready.len());
        while let Some(v) = s.ready.pop() {
            s.activate(v);
        }
        if !s.direct_due.is_empty() {
            s.direct.expect(s.direct_due.len());
            env.scripts_pool.submit_direct(s.direct_due.drain(..));
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
            _ = s.direct.arrived() => s.take_direct_ends(),
            _ = env.cancel.requested(), if !s.stopping => s.stopping = true,
            _ = s.commits.changed(), if s.commits.pending() => s.finish_committed(),
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
        revert::revert(&s.plan.tasks, &env, &s.succeeded).await;
    }
    Err(graph_failure(s.failed.into_iter().map(|(_, f)| f).collect()))
}

/// Subgraphs and event tasks have no task state of their own in the store (nor count in the
/// execution's done/total).
fn has_stored_state(cell: &TaskCell) -> bool {
    !matches!(cell.action, TaskAction::Subgraph | TaskAction::Event { .. })
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
    fn blocked(&self, task: TaskIx) -> bool {
        if self.stopping || self.env.cancel.is_requested() {
            return true;
        }
        let mut at = self.plan.tasks[task].parent;
        while let Some(p) = at {
            if self.subgraphs[p].failure.is_some() {
                return true;
            }
            at = self.plan.tasks[p].parent;
        }
        false
    }

    fn activate(&mut self, vertex: VertexIx) {
        let (task, role) = {
            let v = &self.plan.vertices[vertex];
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

    fn start_task(&mut self, task: TaskIx) {
        self.running += 1;
        if let Some(p) = self.plan.tasks[task].parent {
            self.subgraphs[p].active += 1;
        }
        let cell = self.plan.tasks[task].cell.clone();
        if let Some(result) = self.env.replayed(&cell) {
            return self.end_task(task, Ending::Succeeded { result, told: None });
        }
        let attempt_id = self.env.attempt_id(&cell);
        if let Some(total_retries) = self.start_inline(&cell, attempt_id) {
            let told = match &cell.action {
                TaskAction::Event { message, node_instance } => {
                    let node_instance = node_instance.clone();
                    self.env.bus.emit(Payload::WorkflowEvent { message: message.clone(), node_instance });
                    None
                }
                _ => {
                    let info = task_info(&cell, attempt_id, 0, total_retries);
                    self.env.bus.emit_task_started(&info);
                    Some(info)
                }
            };
            return self.end_task(task, Ending::Succeeded { result: Dynamic::UNIT, told });
        }
        // Not run in place: its attempt, wherever it runs, takes the same `task_id`.
        if let Some(direct) = DirectClosure::for_task(&cell, &self.env, attempt_id) {
            return self.direct_due.push(DirectJob { task, cell, direct, run: self.direct.clone() });
        }
        cell.reserve_attempt(attempt_id);
        let (env, done) = (self.env.clone(), self.done_tx.clone());
        self.env.runtime.spawn(async move {
            let reporter = ReportsOnPanic { task, done: &done };
            let outcome = run_task(cell, env).await;
            reporter.report(Report::Ended(outcome));
        });
    }

    /// No-op and event tasks without handlers cannot fail or wait: they run in place, with no
    /// spawn. Starts such an attempt and returns its `total_retries`.
    fn start_inline(&self, cell: &TaskCell, attempt_id: u64) -> Option<i64> {
        if !matches!(cell.action, TaskAction::Noop | TaskAction::Event { .. }) || self.env.limiter.is_some() {
            return None;
        }
        cell.begin_inline_attempt(attempt_id)
    }

    fn report(&mut self, task: TaskIx, report: Report) {
        match report {
            Report::Ended(TaskOutcome::Failed(error)) if error.kind == ErrorKind::Internal => {
                self.env.record_bug(&error);
                self.settle(task, TaskOutcome::Failed(error))
            }
            Report::Ended(outcome) => self.settle(task, outcome),
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

    /// Settles the ends of direct attempts that arrived, all at once.
    fn take_direct_ends(&mut self) {
        let mut ends = std::mem::take(&mut self.direct_ends);
        self.direct.take(&mut ends);
        for (task, end) in ends.drain(..) {
            self.direct_ended(task, end);
        }
        self.direct_ends = ends;
    }

    /// A closure task's first attempt on the direct path ended.
    fn direct_ended(&mut self, task: TaskIx, end: DirectEnd) {
        match end {
            DirectEnd::Succeeded { value, seq } => match self.commits.outcome(seq) {
                Some(Ok(())) => self.end_task(task, Ending::Succeeded { result: value, told: None }),
                Some(Err(e)) => self.end_unrecorded(task, &e),
                None => self.commits.wait(seq, task, value),
            },
            DirectEnd::Cancelled => self.settle(task, TaskOutcome::Cancelled),
            DirectEnd::Panicked => {
                let error = TaskError::internal("a closure task's attempt panicked");
                self.report(task, Report::Ended(TaskOutcome::Failed(error)))
            }
            DirectEnd::Failed(first) => {
                let (cell, env, done) = (self.plan.tasks[task].cell.clone(), self.env.clone(), self.done_tx.clone());
                self.env.runtime.spawn(async move {
                    let reporter = ReportsOnPanic { task, done: &done };
                    let outcome = continue_task(cell, env, *first).await;
                    reporter.report(Report::Ended(outcome));
                });
            }
        }
    }

    /// Finishes the closure tasks whose success the store has now committed, and fails those
    /// whose success it never will.
    fn finish_committed(&mut self) {
        for (seq, task, result) in self.commits.take() {
            match self.commits.outcome(seq) {
                Some(Ok(())) => self.end_task(task, Ending::Succeeded { result, told: None }),
                Some(Err(e)) => self.end_unrecorded(task, &e),
                None => self.commits.wait(seq, task, result),
            }
        }
    }

    /// A closure task on the direct path succeeded, but the store could not record it: the
    /// task fails (`settle` then starts nothing new). The bus never announces that success:
    /// the attempt's outcome the sinks see is this failure.
    fn end_unrecorded(&mut self, task: TaskIx, error: &StoreError) {
        let told = Some(current_task_info(&self.plan.tasks[task].cell));
        self.end_task(task, Ending::Failed { error: TaskError::unrecorded(error), ignored: false, told });
    }

    /// Ends a task (or subgraph) the scheduler ends itself: tells it and records it in its cell
    /// (`end`, as runners end theirs), then settles what that means for the graph.
    fn end_task(&mut self, task: TaskIx, ending: Ending) {
        let outcome = end(&self.plan.tasks[task].cell, ending, &self.env);
        self.settle(task, outcome);
    }

    /// What a task's (or subgraph's) end means for the graph: what waited for it is released,
    /// or its failure is recorded (and stops the graph, or fails the subgraph around it).
    fn settle(&mut self, task: TaskIx, outcome: TaskOutcome) {
        let planned = &self.plan.tasks[task];
        let (is_subgraph, parent, exit) = (planned.is_subgraph(), planned.parent, planned.exit);
        if !is_subgraph {
            self.running -= 1;
        }
        match outcome {
            TaskOutcome::Succeeded | TaskOutcome::Ignored => {
                if !is_subgraph && matches!(outcome, TaskOutcome::Succeeded) {
                    self.succeeded.push(task);
                }
                self.ready.release(&self.plan, exit);
            }
            TaskOutcome::Failed(error) => {
                if !is_subgraph {
                    let failed = FailedTask::of(&self.plan.tasks[task].cell, error.clone());
                    self.failed.push((task, failed));
                }
                // A store that failed records nothing more, and after a bug in rhaiflow nothing is
                // to be trusted: nothing new starts.
                if self.fail_fast || error.ends_the_run() {
                    self.stopping = true;
                }
                if let Some(p) = parent {
                    self.subgraphs[p].failure.get_or_insert_with(|| Box::new(error));
                }
            }
            TaskOutcome::Cancelled => {
                if let Some(p) = parent {
                    self.subgraphs[p].failure.get_or_insert_with(|| Box::new(TaskError::cancelled()));
                }
            }
        }
        if let Some(p) = parent {
            self.subgraphs[p].active -= 1;
            self.end_failed_subgraph(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, EventBus, EventSink, ExecutionLabel};
    use crate::exec::{CancelState, ScriptCalls};
    use crate::graph::{Idx, TaskGraph};
    use crate::store::CommitState;
    use crate::task::{test_task, TaskCell, TaskState};
    use parking_lot::Mutex;
    use rhai::{Dynamic, FnPtr};

    /// Closures named `fail` fail for good, `panic` panics (a bug in the host), `vN` returns N;
    /// any other succeeds.
    struct FakeScripts;

    impl ScriptCalls for FakeScripts {
        fn call(&self, closure: &FnPtr, _: Vec<Dynamic>, _: Option<f64>) -> Result<Dynamic, TaskError> {
            match closure.fn_name() {
                "fail" => Err(TaskError::new(ErrorKind::NonRecoverable, "boom")),
                "panic" => panic!("a bug in the host"),
                name => {
                    Ok(name.strip_prefix('v').and_then(|n| n.parse::<i64>().ok()).map_or(Dynamic::UNIT, Dynamic::from))
                }
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
        let env =
            ExecEnv::new(runtime.handle().clone(), bus, Arc::new(CancelState::default()), Arc::new(FakeScripts), None);
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

    // A closure task's first attempt that panicked on its script thread never reported: the
    // scheduler waited for it for ever.
    #[test]
    fn a_direct_closure_attempt_that_panics_fails_its_task_instead_of_hanging_the_run() {
        let mut g = TaskGraph::default();
        let (bad, fine) = (closure("bad", "panic"), closure("fine", "ok"));
        g.add(&bad, None).unwrap();
        g.add(&fine, None).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let label = ExecutionLabel { execution_id: "e".into(), workflow: "w".into() };
        let bus = Arc::new(EventBus::new(label, Vec::new()));
        let env = Arc::new(ExecEnv::new(runtime.handle().clone(), bus, Arc::default(), Arc::new(FakeScripts), None));
        let run = execute_plan(Plan::build(&g).unwrap(), env.clone(), false);
        let result = runtime.block_on(async { tokio::time::timeout(std::time::Duration::from_secs(20), run).await });
        let error = result.expect("the run ended").unwrap_err();
        assert_eq!(error.failed_tasks[0].error.kind, ErrorKind::Internal, "{}", error.message);
        assert!(env.bug().is_some(), "the run knows of the bug");
        assert_eq!(fine.state(), TaskState::Succeeded);
    }

    // Closure tasks ready at once go to the script threads together and their ends come back
    // together: each must still get its own events and its own result.
    #[test]
    fn closures_ready_together_each_get_their_own_events_and_result() {
        let mut g = TaskGraph::default();
        let cells: Vec<_> = (0..40).map(|i| closure(&format!("t{i}"), &format!("v{i}"))).collect();
        let bad = closure("bad", "fail");
        for cell in cells.iter().chain([&bad]) {
            g.add(cell, None).unwrap();
        }
        let (result, events) = execute(&g, false);
        assert_eq!(result.unwrap_err().message, "task `bad` failed: boom");
        for (i, cell) in cells.iter().enumerate() {
            assert_eq!(cell.state(), TaskState::Succeeded);
            assert_eq!(cell.result().as_int(), Ok(i as i64), "{}", cell.name);
            let mine: Vec<_> = events.iter().filter(|e| e.ends_with(&format!(" t{i}"))).collect();
            assert_eq!(mine, [&format!("task_started t{i}"), &format!("task_succeeded t{i}")]);
        }
        let bad_events: Vec<_> = events.iter().filter(|e| e.ends_with(" bad")).collect();
        assert_eq!(bad_events, ["task_started bad", "task_failed bad"]);
        assert_eq!(bad.state(), TaskState::Failed);
    }

    // A panic in a task's runner failed the task, but a script that caught the error could
    // end the run "succeeded": the run must know a bug happened.
    #[test]
    fn a_panic_in_a_task_s_runner_is_recorded_as_the_run_s_bug() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let label = ExecutionLabel { execution_id: "e".into(), workflow: "w".into() };
        let bus = Arc::new(EventBus::new(label, Vec::new()));
        let scripts = Arc::new(PanicsInHandles);
        let env = Arc::new(ExecEnv::new(runtime.handle().clone(), bus, Arc::default(), scripts, None));
        let (bad, later) = (closure("bad", "fail"), closure("later", "ok"));
        bad.configure(|s| s.on_failure = Some(Box::new(FnPtr::new("handler").unwrap())));
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
        let mut env = ExecEnv::new(runtime.handle().clone(), bus, Arc::new(CancelState::default()), scripts, None);
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
            let _reporter = ReportsOnPanic { task: TaskIx::new(7), done: &done };
            panic!("a runner's bug");
        });
        assert!(runtime.block_on(runner).is_err());
        match reports.try_recv() {
            Ok((task, Report::Ended(TaskOutcome::Failed(e)))) if task == TaskIx::new(7) => {
                assert!(e.message.starts_with("this is a bug in rhaiflow"), "{}", e.message)
            }
            _ => panic!("no failure reported for task 7"),
        }
    }

    #[test]
    fn a_runner_that_ends_reports_once() {
        let (done, mut reports) = mpsc::unbounded_channel();
        ReportsOnPanic { task: TaskIx::new(3), done: &done }.report(Report::RetryDue);
        assert!(matches!(reports.try_recv(), Ok((task, Report::RetryDue)) if task == TaskIx::new(3)));
        assert!(reports.try_recv().is_err());
    }
}
