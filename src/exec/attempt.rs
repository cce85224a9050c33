//! One task from its first attempt to its final outcome: run, judge (section 5), retry. A
//! subgraph's runs are judged here too (`judge_subgraph`), by the same rules.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Dynamic, FnPtr};

use super::ending::{end, Ending};
use super::script_pool::{ConcurrencySlot, Overdue};
use super::ScriptPool;
use super::{process, ExecEnv, HandlerVerdict};
use crate::events::TaskKind;
use crate::events::{Payload, Success, TaskInfo};
use crate::seconds;
use crate::task::{ErrorKind, TaskError};
use crate::task::{TaskAction, TaskCell, TaskSettings, TaskState};

/// How a task ended, for the scheduler.
#[derive(Clone, Debug)]
pub enum TaskOutcome {
    Succeeded,
    /// It failed, but a handler said `ignore()`/`cont()`: dependents run.
    Ignored,
    Failed(TaskError),
    Cancelled,
}

/// What one attempt (of a task, or one run of a subgraph) leads to.
pub enum Judgement {
    Succeed(Dynamic),
    /// It succeeded, and `on_success` asked for another attempt (a polling loop): the
    /// success is told, then the rescheduling.
    Poll {
        value: Dynamic,
        after: f64,
    },
    Ignore(TaskError),
    Retry {
        after: f64,
        error: TaskError,
    },
    Fail(TaskError),
    Cancelled,
}

/// The error a polling attempt's `task_rescheduled` carries.
pub const POLL_AGAIN: &str = "on_success asked for a retry";

pub fn task_info(cell: &TaskCell, task_id: u64, retries: u32, total_retries: i64) -> TaskInfo {
    TaskInfo {
        name: cell.name.clone(),
        serial: cell.serial,
        task_id,
        kind: cell.kind(),
        current_retries: retries,
        total_retries,
        node_instance: cell.action.node_instance(),
    }
}

/// The task's events of its current attempt (one that already started) describe it so.
pub fn current_task_info(cell: &TaskCell) -> TaskInfo {
    let attempt = cell.current_attempt();
    task_info(cell, attempt.id, attempt.retries, attempt.total_retries)
}

/// An attempt that already ran (a closure's, on a script thread: `direct_closure`), its
/// `task_started` emitted, waiting to be judged.
pub struct FirstAttempt {
    pub info: TaskInfo,
    pub result: Result<Dynamic, TaskError>,
}

/// Runs every attempt of `cell` until it succeeds, fails for good, or is cancelled.
pub async fn run_task(cell: Arc<TaskCell>, env: Arc<ExecEnv>) -> TaskOutcome {
    if let Some(result) = env.replayed(&cell) {
        return end(&cell, Ending::Succeeded { result, told: None }, &env);
    }
    run_attempts(cell, env, None).await
}

/// Judges an attempt that already ran, then goes on as `run_task` (retries).
pub async fn continue_task(cell: Arc<TaskCell>, env: Arc<ExecEnv>, first: FirstAttempt) -> TaskOutcome {
    run_attempts(cell, env, Some(first)).await
}

async fn run_attempts(cell: Arc<TaskCell>, env: Arc<ExecEnv>, mut first: Option<FirstAttempt>) -> TaskOutcome {
    let _ends_on_panic = EndsOnPanic { cell: &cell, env: &env };
    let settings = cell.settings();
    let mut retries: u32 = first.as_ref().map_or(0, |f| f.info.current_retries);
    loop {
        let (info, result) = match first.take() {
            Some(FirstAttempt { info, result }) => (info, result),
            None => {
                if env.cancel.is_requested() {
                    // A cancel ended the wait before this attempt: the task's error is the
                    // cancel, not its last attempt's, or get() threw that one (exit 1, not 3).
                    let ending = Ending::Failed { error: TaskError::cancelled(), ignored: false, told: None };
                    return end(&cell, ending, &env);
                }
                attempt(&cell, &settings, retries, &env).await
            }
        };
        let (after, error) = match judge(&cell, &settings, result, retries, &env).await {
            Judgement::Succeed(value) => return succeed(&cell, info, value, &env).await,
            Judgement::Poll { value, after } => {
                env.bus.emit_success(info.clone(), Some(&value), Success::Again);
                (after, TaskError::recoverable(POLL_AGAIN))
            }
            Judgement::Retry { after, error } => (after, error),
            Judgement::Ignore(error) => return failed(&cell, info, error, true, &env),
            Judgement::Fail(error) => return failed(&cell, info, error, false, &env),
            Judgement::Cancelled => return failed(&cell, info, TaskError::cancelled(), false, &env),
        };
        env.bus.emit(Payload::TaskRescheduled { task: info, error: error.message.clone(), retry_after: after });
        cell.reschedule(error);
        if after > 0.0 {
            tokio::select! {
                _ = tokio::time::sleep(seconds::duration(after)) => {}
                _ = env.cancel.requested() => {}
            }
        }
        retries += 1;
    }
}

/// Ends the task as failed if its runner panics: tokio catches the panic and drops the
/// future, and without this the task would stay `started` for ever, and a `get()` on it wait
/// for ever. Being a local of the runner, it costs no allocation.
struct EndsOnPanic<'a> {
    cell: &'a TaskCell,
    env: &'a ExecEnv,
}

impl Drop for EndsOnPanic<'_> {
    fn drop(&mut self) {
        // A runner dropped without a panic (the runtime shutting down) ends nothing.
        if !std::thread::panicking() || self.cell.state().is_final() {
            return;
        }
        let error = TaskError::internal(&format!("the runner of task `{}` panicked", self.cell.name));
        self.env.record_bug(&error);
        let told = (self.cell.state() == TaskState::Started).then(|| current_task_info(self.cell));
        end(self.cell, Ending::Failed { error, ignored: false, told }, self.env);
    }
}

/// Starts and performs one attempt (a permit first under `--max-concurrency`).
async fn attempt(
    cell: &Arc<TaskCell>,
    settings: &TaskSettings,
    retries: u32,
    env: &Arc<ExecEnv>,
) -> (TaskInfo, Result<Dynamic, TaskError>) {
    let permit = match &env.limiter {
        Some(limiter) => Some(limiter.clone().acquire_owned().await.expect("the limiter is never closed")),
        None => None,
    };
    let attempt_id = env.attempt_id(cell);
    cell.begin_attempt(attempt_id, retries);
    let info = task_info(cell, attempt_id, retries, settings.total_retries);
    if cell.kind() != TaskKind::Event {
        env.bus.emit_task_started(&info);
    }
    let result = perform(cell, settings, env).await;
    drop(permit);
    (info, result)
}

/// The task succeeded: told, committed when it has effects, then finished.
async fn succeed(cell: &TaskCell, info: TaskInfo, value: Dynamic, env: &ExecEnv) -> TaskOutcome {
    if cell.kind().has_effects() {
        let seq = env.bus.emit_success(info.clone(), Some(&value), Success::Done);
        // A success that is not on disk is no success: nothing may run on it. The bus never
        // announces it either: the attempt's outcome the sinks see is this failure.
        if let Err(error) = env.committed(seq).await {
            return failed(cell, info, error, false, env);
        }
        return end(cell, Ending::Succeeded { result: value, told: None }, env);
    }
    let told = (cell.kind() != TaskKind::Event).then_some(info);
    end(cell, Ending::Succeeded { result: value, told }, env)
}

/// The attempt's failure is told and ends the task (or, `ignored`, makes it count as done).
fn failed(cell: &TaskCell, info: TaskInfo, error: TaskError, ignored: bool, env: &ExecEnv) -> TaskOutcome {
    end(cell, Ending::Failed { error, ignored, told: Some(info) }, env)
}

/// The attempt itself.
async fn perform(cell: &Arc<TaskCell>, settings: &TaskSettings, env: &Arc<ExecEnv>) -> Result<Dynamic, TaskError> {
    if let Some(mock) = env.mocks.0.get(&*cell.name).filter(|_| !matches!(cell.action, TaskAction::Subgraph)) {
        return mock.outcome();
    }
    match &cell.action {
        TaskAction::Noop | TaskAction::Subgraph => Ok(Dynamic::UNIT),
        TaskAction::NoopOn { queue } => super::remote::nothing(current_task_info(cell), queue, env).await,
        TaskAction::Event { message, node_instance } => {
            env.bus.emit(Payload::WorkflowEvent { message: message.clone(), node_instance: node_instance.clone() });
            Ok(Dynamic::UNIT)
        }
        TaskAction::Sleep { seconds: secs } => {
            tokio::select! {
                _ = tokio::time::sleep(seconds::duration(*secs)) => Ok(Dynamic::UNIT),
                _ = env.cancel.requested() => Err(TaskError::cancelled()),
            }
        }
        TaskAction::Shell { command, options } => {
            let argv = ["sh".to_string(), "-c".to_string(), command.clone()];
            process::run(current_task_info(cell), &argv, &short_command(command), options, settings.timeout, env).await
        }
        TaskAction::Exec { argv, options } => {
            process::run(current_task_info(cell), argv, &argv.join(" "), options, settings.timeout, env).await
        }
        TaskAction::Script { .. } => {
            let (closure, args) = closure_call(cell).expect("the task runs a closure");
            call_blocking(env, closure.clone(), args, settings.timeout, Holds::Slot).await
        }
        TaskAction::SetState { deployment, instance, state } => {
            // A stored deployment writes the state through, with an fsync: off tokio's
            // workers. A throw-away one only changes memory, at no cost.
            if !deployment.stored.load(std::sync::atomic::Ordering::Relaxed) {
                deployment.set_state(instance, state).map_err(|e| TaskError::unrecorded(&e))?;
                return Ok(Dynamic::UNIT);
            }
            let (deployment, instance, state) = (deployment.clone(), instance.clone(), state.clone());
            off_the_workers(move || deployment.set_state(&instance, &state))
                .await?
                .map_err(|e| TaskError::unrecorded(&e))?;
            Ok(Dynamic::UNIT)
        }
        TaskAction::Operation(call) => super::operation::run(call, cell, settings, env).await,
    }
}

/// A closure task's closure and the arguments it is called with: its inputs (`requires`,
/// `inject`), when it takes a parameter. Borrowed: a call on the cell's own thread needs no
/// copy of the closure (with its captured values).
pub fn closure_call(cell: &TaskCell) -> Option<(&FnPtr, Vec<Dynamic>)> {
    let TaskAction::Script { closure, arity } = &cell.action else { return None };
    let args = if *arity >= 1 { vec![Dynamic::from_map(cell.inputs())] } else { Vec::new() };
    Some((closure, args))
}

/// A command as messages name it: its first line, cut short.
fn short_command(command: &str) -> String {
    let first = command.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    let more = command.trim().lines().count() > 1;
    match first.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &first[..cut]),
        None if more => format!("{first} …"),
        None => first.to_string(),
    }
}

/// Runs `f`, which may wait on the disk (a stored deployment written through, a file), on
/// tokio's blocking threads: on a worker it would stall every task queued behind it. A
/// panic in `f` goes on unwinding here, as if `f` had run inline.
pub(super) async fn off_the_workers<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, TaskError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(value) => Ok(value),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down: the run is over.
        Err(_) => Err(TaskError::cancelled()),
    }
}

/// Runs script code on a blocking thread, never on tokio's workers.
async fn call_blocking(
    env: &Arc<ExecEnv>,
    closure: FnPtr,
    args: Vec<Dynamic>,
    timeout: Option<f64>,
    holds: Holds,
) -> Result<Dynamic, TaskError> {
    let scripts = env.scripts.clone();
    on_script_thread(env, timeout, holds, move || scripts.call(&closure, args, timeout)).await
}

/// Whether script code runs as a task's attempt, which holds a `--max-concurrency` slot, or
/// outside one (a handler, called once the attempt gave its slot back).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Holds {
    Slot,
    Nothing,
}

/// How long past its timeout a script call may run before the executor stops waiting for
/// it: the script itself stops at its timeout, unless it is stuck in a native call (a read
/// that never returns), which no one can stop.
const OVERDUE_GRACE: f64 = 0.5;

/// Runs `call` (script code, which heeds `timeout` itself) on a script thread. Past its
/// timeout and a grace, the task fails as timed out even if the thread is still stuck.
pub(super) async fn on_script_thread(
    env: &Arc<ExecEnv>,
    timeout: Option<f64>,
    holds: Holds,
    call: impl FnOnce() -> Result<Dynamic, TaskError> + Send + 'static,
) -> Result<Dynamic, TaskError> {
    let slot = match (&env.limiter, holds) {
        (Some(limiter), Holds::Slot) => {
            Some(ConcurrencySlot { limiter: limiter.clone(), runtime: env.runtime.clone() })
        }
        _ => None,
    };
    let call = move || ScriptPool::holding(slot, call);
    let limit = timeout.and_then(|secs| Duration::try_from_secs_f64(secs + OVERDUE_GRACE).ok());
    let ran = match limit {
        None => Ok(env.scripts_pool.run(call).await),
        Some(limit) => env.scripts_pool.run_within(limit, call).await,
    };
    match ran {
        Ok(Some(result)) => result,
        Ok(None) => {
            let error = TaskError::internal("a script thread stopped unexpectedly");
            env.record_bug(&error);
            Err(error)
        }
        Err(Overdue) => Err(TaskError::recoverable(format!(
            "timed out after {}s (its script thread is stuck in a native call and is left to finish)",
            timeout.unwrap_or_default()
        ))),
    }
}

/// Calls a handler with the task and reads its verdict; `None` when it returned no verdict.
async fn call_handler(
    env: &Arc<ExecEnv>,
    cell: &Arc<TaskCell>,
    handler: &FnPtr,
    which: &str,
) -> Result<Option<HandlerVerdict>, TaskError> {
    let handle = env.scripts.task_handle(cell);
    match call_blocking(env, handler.clone(), vec![handle], None, Holds::Nothing).await {
        Ok(value) if value.is_unit() => Ok(None),
        Ok(value) => match value.try_cast::<HandlerVerdict>() {
            Some(verdict) => Ok(Some(verdict)),
            None => Err(TaskError::recoverable(format!(
                "the {which} handler of `{}` must return a HandlerResult (HandlerResult::cont(), ::retry(), ...)",
                cell.name
            ))),
        },
        Err(mut e) => {
            e.message = format!("the {which} handler of `{}` threw: {}", cell.name, e.message);
            Err(e)
        }
    }
}

/// Whether retries remain after the attempt numbered `retries`, and the wait before one.
fn retry_terms(settings: &TaskSettings, retries: u32) -> (bool, f64) {
    let retries_left = settings.total_retries < 0 || (retries as i64) < settings.total_retries;
    (retries_left, settings.retry_interval.max(0.0))
}

/// Section 5's order: a cancel, `operation_retry`, then `on_failure`'s verdict, then the
/// default rules.
async fn judge(
    cell: &Arc<TaskCell>,
    settings: &TaskSettings,
    result: Result<Dynamic, TaskError>,
    retries: u32,
    env: &Arc<ExecEnv>,
) -> Judgement {
    match result {
        Ok(value) => judge_success(cell, settings, value, retries, env).await,
        Err(error) if error.is_cancelled() => Judgement::Cancelled,
        Err(error) => {
            // Nothing a retry or a handler does is recorded by a store that failed, nor
            // trustworthy after a bug in rhaiflow.
            if error.ends_the_run() {
                return Judgement::Fail(error);
            }
            if let ErrorKind::RetryAfter(after) = error.kind {
                let (retries_left, _) = retry_terms(settings, retries);
                return if retries_left { Judgement::Retry { after, error } } else { Judgement::Fail(error) };
            }
            let default_fails = matches!(error.kind, ErrorKind::NonRecoverable | ErrorKind::BadArgument);
            judge_failure(cell, settings, error, retries, default_fails, env).await
        }
    }
}

/// A subgraph's run, judged as a task's attempt except that, without a handler, any failure
/// but a cancel is retried while retries remain (TaskFlow's `Times` retry of a flow). `None`
/// when a handler has a say: then `judge_subgraph` calls it, on a script thread.
pub fn judge_subgraph_now(settings: &TaskSettings, result: &Result<(), TaskError>, retries: u32) -> Option<Judgement> {
    let (retries_left, interval) = retry_terms(settings, retries);
    match result {
        Ok(()) if settings.on_success.is_none() => Some(Judgement::Succeed(Dynamic::UNIT)),
        Err(error) if error.is_cancelled() => Some(Judgement::Cancelled),
        Err(error) if error.ends_the_run() => Some(Judgement::Fail(error.clone())),
        Err(error) if settings.on_failure.is_none() => {
            Some(failure_verdict(None, error.clone(), retries_left, interval, false))
        }
        _ => None,
    }
}

/// `judge_subgraph_now`, with the subgraph's handler called (cells of subgraphs, like tasks,
/// are what handlers receive).
pub async fn judge_subgraph(
    cell: &Arc<TaskCell>,
    result: Result<(), TaskError>,
    retries: u32,
    env: &Arc<ExecEnv>,
) -> Judgement {
    let settings = cell.settings();
    match result {
        Ok(()) => judge_success(cell, &settings, Dynamic::UNIT, retries, env).await,
        Err(error) if error.is_cancelled() => Judgement::Cancelled,
        Err(error) => judge_failure(cell, &settings, error, retries, false, env).await,
    }
}

/// After a success: `on_success`'s verdict, if the task has one.
async fn judge_success(
    cell: &Arc<TaskCell>,
    settings: &TaskSettings,
    value: Dynamic,
    retries: u32,
    env: &Arc<ExecEnv>,
) -> Judgement {
    let Some(handler) = &settings.on_success else {
        return Judgement::Succeed(value);
    };
    let (retries_left, interval) = retry_terms(settings, retries);
    cell.set_result(value.clone());
    match call_handler(env, cell, handler, "on_success").await {
        Ok(None | Some(HandlerVerdict::Continue | HandlerVerdict::Ignore)) => Judgement::Succeed(value),
        Ok(Some(HandlerVerdict::Retry)) if retries_left => Judgement::Poll { value, after: interval },
        Ok(Some(HandlerVerdict::Retry)) => {
            Judgement::Fail(TaskError::recoverable("on_success asked for a retry, but no retries remain"))
        }
        Ok(Some(HandlerVerdict::RetryIgnoringLimit)) => Judgement::Poll { value, after: interval },
        Ok(Some(HandlerVerdict::Fail)) => {
            Judgement::Fail(TaskError::recoverable("the on_success handler returned fail()"))
        }
        Err(e) => Judgement::Fail(e),
    }
}

/// After a failure: `on_failure`'s verdict if the task has one (a handler that throws is a
/// `fail()`), else the default rules; `default_fails` when those say "not retried".
async fn judge_failure(
    cell: &Arc<TaskCell>,
    settings: &TaskSettings,
    error: TaskError,
    retries: u32,
    default_fails: bool,
    env: &Arc<ExecEnv>,
) -> Judgement {
    let (retries_left, interval) = retry_terms(settings, retries);
    let verdict = match &settings.on_failure {
        Some(handler) => {
            cell.set_error(error.clone());
            match call_handler(env, cell, handler, "on_failure").await {
                Ok(v) => v,
                Err(e) => return Judgement::Fail(e),
            }
        }
        None => None,
    };
    failure_verdict(verdict, error, retries_left, interval, default_fails)
}

/// What a failure leads to, given the handler's verdict (`None`: none, or it returned nothing).
fn failure_verdict(
    verdict: Option<HandlerVerdict>,
    error: TaskError,
    retries_left: bool,
    interval: f64,
    default_fails: bool,
) -> Judgement {
    match verdict {
        Some(HandlerVerdict::Continue | HandlerVerdict::Ignore) => Judgement::Ignore(error),
        Some(HandlerVerdict::Fail) => Judgement::Fail(error),
        Some(HandlerVerdict::RetryIgnoringLimit) => Judgement::Retry { after: interval, error },
        None if default_fails => Judgement::Fail(error),
        Some(HandlerVerdict::Retry) | None if retries_left => Judgement::Retry { after: interval, error },
        Some(HandlerVerdict::Retry) | None => Judgement::Fail(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::{Blueprint, Deployment};
    use crate::events::{EventBus, ExecutionLabel};

    struct NoScripts;

    impl super::super::ScriptCalls for NoScripts {
        fn call(&self, _: &FnPtr, _: Vec<Dynamic>, _: Option<f64>) -> Result<Dynamic, TaskError> {
            Ok(Dynamic::UNIT)
        }
        fn task_handle(&self, _: &Arc<TaskCell>) -> Dynamic {
            Dynamic::UNIT
        }
    }

    // A set_state task on a stored deployment wrote the state through (with an fsync) on the
    // tokio worker that ran it: with one worker, every other task waited for the disk.
    #[test]
    fn a_stored_deployment_is_written_through_off_the_tokio_workers() {
        let text = "node_templates:\n  web:\n    type: rhaiflow.nodes.Root\n";
        let blueprint = Arc::new(Blueprint::parse("b.yaml", text, std::env::temp_dir()).unwrap());
        let deployment = Arc::new(Deployment::new("d", blueprint));
        let instance: Arc<str> = Arc::from(deployment.instances.lock()[0].id.as_str());
        let (release, released) = std::sync::mpsc::channel::<()>();
        let released = parking_lot::Mutex::new(released);
        // The disk, as slow as it gets: the write waits until the test lets it go.
        *deployment.on_change.lock() = Some(Box::new(move |_, _| {
            let _ = released.lock().recv();
            Ok(())
        }));
        deployment.stored.store(true, std::sync::atomic::Ordering::Relaxed);

        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let label = ExecutionLabel { execution_id: Arc::from("e"), workflow: Arc::from("w") };
        let bus = Arc::new(EventBus::new(label, Vec::new()));
        let cancel = Arc::new(super::super::CancelState::default());
        let env = ExecEnv::new(runtime.handle().clone(), bus, cancel, Arc::new(NoScripts), None);
        let env = Arc::new(env);
        let action = TaskAction::SetState { deployment, instance, state: "started".into() };
        let cell = TaskCell::new("set_state", action, TaskSettings::with_defaults(0, 1.0), rhai::Position::NONE, 1);
        runtime.spawn(async move { perform(&cell, &TaskSettings::with_defaults(0, 1.0), &env).await });
        let (ran, other_task_ran) = std::sync::mpsc::channel();
        runtime.spawn(async move { ran.send(()).unwrap() });
        let ran = other_task_ran.recv_timeout(Duration::from_secs(20));
        release.send(()).unwrap();
        runtime.shutdown_background();
        assert!(ran.is_ok(), "a task behind the write-through never ran");
    }

    #[test]
    fn commands_are_named_by_their_first_line_cut_short() {
        assert_eq!(short_command("echo hi"), "echo hi");
        assert_eq!(short_command("\n  make build\n  make test\n"), "make build …");
        let long = "x".repeat(80);
        assert_eq!(short_command(&long).chars().count(), 61);
    }
}
