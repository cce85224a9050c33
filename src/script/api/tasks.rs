//! Task constructors (`task`, `shell`, `exec`, `sleep`, `noop`, `send_event`) and the `Task`
//! handle's properties and `get()` (contract section 4).

use std::sync::Arc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext, Position};

use super::doc::doc;
use super::graph::SubgraphHandle;
use crate::events::TaskKind;
use crate::exec::ScriptPool;
use crate::script::limits;
use crate::script::state::{upgrade, RunRef, RunState};
use crate::task::{FailedTask, TaskError};
use crate::task::{ProcessOptions, TaskAction, TaskCell, TaskState};

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// The script's handle on a task: cheap to clone, shares the task with the executor.
#[derive(Clone)]
pub struct TaskHandle(pub Arc<TaskCell>);

/// Anything that is a task to the script: plain tasks and subgraphs.
pub trait AsTask: Clone + Send + Sync + 'static {
    fn cell(&self) -> &Arc<TaskCell>;
}

impl AsTask for TaskHandle {
    fn cell(&self) -> &Arc<TaskCell> {
        &self.0
    }
}

/// A misuse of the host API at run time (a task in two subgraphs, ...): the workflow fails.
pub fn error(message: impl Into<String>) -> Box<EvalAltResult> {
    TaskError::recoverable(message).into_rhai()
}

/// An argument of the wrong type or value: the script is wrong, exit code 2.
pub fn bad_argument(message: impl Into<String>) -> Box<EvalAltResult> {
    TaskError::bad_argument(message).into_rhai()
}

/// Seconds given as an integer or a float, from 0 to `seconds::MAX_SECONDS`: more than a
/// `Duration` holds panicked the executor, and a negative or NaN wait means nothing.
pub fn seconds(value: &Dynamic, what: &str) -> Result<f64> {
    let secs = match value.as_int() {
        Ok(i) => i as f64,
        Err(_) => value.as_float().map_err(|t| bad_argument(format!("{what} must be a number of seconds, not {t}")))?,
    };
    crate::seconds::checked(secs).map_err(|e| bad_argument(format!("{what} {e}")))
}

pub(super) fn build(run: &Arc<RunState>, name: &str, action: TaskAction, position: Position) -> Result<TaskHandle> {
    if name.is_empty() {
        return Err(bad_argument("a task needs a name"));
    }
    let mut settings = run.new_settings();
    if let TaskAction::Shell { options, .. } | TaskAction::Exec { options, .. } = &action {
        settings.timeout = options.timeout;
    }
    let cell = run.new_task(name, action, settings, position)?;
    run.task_built(&cell);
    Ok(TaskHandle(cell))
}

fn process_options(opts: &Map, constructor: &str) -> Result<ProcessOptions> {
    let mut options = ProcessOptions::default();
    for (key, value) in opts {
        match key.as_str() {
            "env" => {
                let env = value
                    .read_lock::<Map>()
                    .ok_or_else(|| bad_argument(format!("{constructor}: `env` must be a map of names to values")))?;
                options.env = env.iter().map(|(k, v)| (k.to_string(), crate::value::display_value(v))).collect();
            }
            "cwd" => options.cwd = Some(crate::value::display_value(value)),
            "timeout" => options.timeout = Some(seconds(value, &format!("{constructor}'s timeout"))?),
            "output_limit" => options.output_limit = Some(output_limit(value, constructor)?),
            "queue" => {
                let queue = value.clone().into_immutable_string().map_err(|_| {
                    bad_argument(format!("{constructor}: `queue` must be the name of a queue, not {value}"))
                })?;
                options.queue = Some(queue.to_string()).filter(|q| !q.is_empty());
            }
            other => {
                return Err(bad_argument(format!(
                    "{constructor}: unknown option `{other}` (expected env, cwd, timeout, output_limit, queue)"
                )));
            }
        }
    }
    Ok(options)
}

/// `output_limit`: bytes of stdout and of stderr a process task keeps, a whole number ≥ 0.
fn output_limit(value: &Dynamic, constructor: &str) -> Result<usize> {
    value.as_int().ok().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
        bad_argument(format!("{constructor}: `output_limit` must be a number of bytes (0 or more), not {value}"))
    })
}

fn argv_of(argv: &Array) -> Result<Vec<String>> {
    if argv.is_empty() {
        return Err(bad_argument("exec needs at least the program to run: exec(name, [\"program\", \"arg\", ...])"));
    }
    Ok(argv.iter().map(crate::value::display_value).collect())
}

pub fn register(engine: &mut Engine, run: &RunRef) {
    engine.register_type_with_name::<TaskHandle>("Task");
    register_constructors(engine, run);
    register_process_constructors(engine, run);
    register_properties::<TaskHandle>(engine);
    register_properties::<SubgraphHandle>(engine);
    register_task_methods(engine, run);
}

/// `task`, `sleep`, `noop`, `send_event`.
fn register_constructors(engine: &mut Engine, run: &RunRef) {
    let r = run.clone();
    let task = doc(
        "task(name, closure)",
        "A task running the Rhai closure (no parameter, or one: the map of its `requires`); its value is the result.",
    );
    task.func("task").register_into_engine(engine, move |ctx: NativeCallContext, name: &str, closure: FnPtr| {
        let run = upgrade(&r)?;
        let arity = run.closure_arity(&closure);
        if arity > 1 {
            return Err(bad_argument(format!(
                "the closure of task `{name}` takes {arity} parameters: a task closure takes none, or one (the map of its inputs)"
            )));
        }
        build(&run, name, TaskAction::Script { closure, arity }, ctx.call_position())
    });
    let r = run.clone();
    doc("sleep(name, secs)", "A task that waits `secs` seconds; a cancel ends it.").func("sleep").register_into_engine(
        engine,
        move |ctx: NativeCallContext, name: &str, secs: Dynamic| {
            let seconds = seconds(&secs, "sleep")?;
            build(&upgrade(&r)?, name, TaskAction::Sleep { seconds }, ctx.call_position())
        },
    );
    let r = run.clone();
    doc("noop(name)", "A task that does nothing and succeeds.")
        .func("noop")
        .register_into_engine(engine, move |ctx: NativeCallContext, name: &str| {
            build(&upgrade(&r)?, name, TaskAction::Noop, ctx.call_position())
        });
    let r = run.clone();
    doc(
        "noop(name, opts)",
        "With `#{queue: \"NAME\"}`: a task doing nothing on a worker listening on that queue; it succeeds once \
         one took it, and its result is `#{worker}`, the worker's name.",
    )
    .func("noop")
    .register_into_engine(engine, move |ctx: NativeCallContext, name: &str, opts: Map| {
        let mut action = TaskAction::Noop;
        for (key, value) in &opts {
            match key.as_str() {
                "queue" => {
                    let queue = value
                        .clone()
                        .into_immutable_string()
                        .map_err(|_| bad_argument(format!("noop: `queue` must be the name of a queue, not {value}")))?;
                    if !queue.is_empty() {
                        action = TaskAction::NoopOn { queue: queue.to_string() };
                    }
                }
                other => return Err(bad_argument(format!("noop: unknown option `{other}` (expected queue)"))),
            }
        }
        build(&upgrade(&r)?, name, action, ctx.call_position())
    });
    let r = run.clone();
    doc("send_event(message)", "A task emitting a `workflow_event` with the message.")
        .func("send_event")
        .register_into_engine(engine, move |ctx: NativeCallContext, message: Dynamic| {
            let message = crate::value::display_value(&message);
            build(&upgrade(&r)?, "send_event", TaskAction::Event { message, node_instance: None }, ctx.call_position())
        });
}

/// `shell` and `exec`: tasks that run a process.
fn register_process_constructors(engine: &mut Engine, run: &RunRef) {
    let r = run.clone();
    doc(
        "shell(name, command)",
        "A task running `sh -c command` in its own process group; result `#{code, stdout, stderr}`, a non-zero exit fails it.",
    )
    .func("shell")
    .register_into_engine(engine, move |ctx: NativeCallContext, name: &str, command: &str| {
        let action = TaskAction::Shell { command: command.into(), options: Box::default() };
        build(&upgrade(&r)?, name, action, ctx.call_position())
    });
    let r = run.clone();
    doc(
        "shell(name, command, opts)",
        "As `shell(name, command)`, with options `env` (a map), `cwd`, `timeout` (seconds), `output_limit` (bytes) and `queue` (run on a worker listening there).",
    )
    .func("shell")
    .register_into_engine(engine, move |ctx: NativeCallContext, name: &str, command: &str, opts: Map| {
        let action = TaskAction::Shell { command: command.into(), options: Box::new(process_options(&opts, "shell")?) };
        build(&upgrade(&r)?, name, action, ctx.call_position())
    });
    let r = run.clone();
    doc(
        "exec(name, argv)",
        "A task running the program `argv[0]` with its arguments, no shell; its result is as `shell`'s.",
    )
    .func("exec")
    .register_into_engine(engine, move |ctx: NativeCallContext, name: &str, argv: Array| {
        let action = TaskAction::Exec { argv: argv_of(&argv)?, options: Box::default() };
        build(&upgrade(&r)?, name, action, ctx.call_position())
    });
    let r = run.clone();
    doc("exec(name, argv, opts)", "As `exec(name, argv)`, with the options of `shell`.")
        .func("exec")
        .register_into_engine(engine, move |ctx: NativeCallContext, name: &str, argv: Array, opts: Map| {
            let action = TaskAction::Exec { argv: argv_of(&argv)?, options: Box::new(process_options(&opts, "exec")?) };
            build(&upgrade(&r)?, name, action, ctx.call_position())
        });
}

/// `t.get()` and how a task prints.
fn register_task_methods(engine: &mut Engine, run: &RunRef) {
    let r = run.clone();
    // By value, not `&mut`: a closure that captured the handle must not hold its lock while it
    // waits, or a second closure waiting on the same task sees a data race.
    doc("t.get()", "Waits for the task and returns its result, or throws its error.")
        .func("get")
        .register_into_engine(engine, move |ctx: NativeCallContext, t: TaskHandle| get(&r, &t.0, ctx.call_position()));
    doc("t.to_string()", "`Task(name)` (what `print` and string interpolation show).")
        .func("to_string")
        .register_into_engine(engine, |t: &mut TaskHandle| format!("Task({})", t.0.name));
    doc("t.to_debug()", "`Task(name, state)`.")
        .func("to_debug")
        .register_into_engine(engine, |t: &mut TaskHandle| format!("Task({}, {})", t.0.name, t.0.state().as_str()));
}

/// `t.get()`: waits for the task and returns its result, or throws its error.
fn get(run: &RunRef, cell: &Arc<TaskCell>, position: Position) -> Result<Dynamic> {
    let run = upgrade(run)?;
    let state = cell.state();
    if run.settings.dry_run && state == TaskState::Pending {
        run.dry_results_used.lock().get_or_insert(position);
        return Ok(Dynamic::UNIT);
    }
    if run.is_graph_mode() && !state.is_final() {
        return Err(not_run_in_graph_mode(&run, cell, position));
    }
    run.observe(cell);
    let status =
        ScriptPool::blocking(|| limits::wait_interruptibly(|slice| cell.wait_final_for(slice))).map_err(|mut e| {
            e.set_position(position);
            e
        })?;
    if status.state == TaskState::Succeeded {
        return Ok(status.result);
    }
    // The error keeps its message and kind for `catch`; it also names its task, so that an
    // uncaught one says which task failed and where it was defined.
    let cause = status.error.map_or_else(TaskError::cancelled, |e| *e);
    let mut error = cause.clone();
    error.position = position;
    error.failed_tasks = Arc::new(vec![FailedTask::of(cell, cause)]);
    Err(error.into_rhai())
}

/// `get()` of a graph task that has not finished. Waiting would be waiting for ever when the
/// task runs after the caller (or in no graph at all), so in graph mode a task's value only
/// reaches another task through provides/requires, after the graph ordered them.
fn not_run_in_graph_mode(run: &RunState, cell: &TaskCell, position: Position) -> Box<EvalAltResult> {
    let message = if run.executing() {
        format!(
            "task `{}` has not finished: in graph mode a task cannot wait for another with get(), which would wait for \
             ever when `{}` runs after it or in no graph; pass the value with provides/requires, or order the tasks \
             with add_dependency",
            cell.name, cell.name
        )
    } else {
        format!("task `{}` has not run: in graph mode tasks run when the graph's execute() runs", cell.name)
    };
    TaskError::recoverable(message).at(position).into_rhai()
}

fn optional_closure(value: Dynamic, what: &str) -> Result<Option<FnPtr>> {
    if value.is_unit() {
        return Ok(None);
    }
    value
        .try_cast::<FnPtr>()
        .map(Some)
        .ok_or_else(|| bad_argument(format!("{what} must be a closure, like |t| HandlerResult::cont()")))
}

fn strings(value: &Dynamic, what: &str) -> Result<Vec<String>> {
    if value.is_string() {
        return Ok(vec![crate::value::display_value(value)]);
    }
    let array = value
        .read_lock::<Array>()
        .ok_or_else(|| bad_argument(format!("{what} must be a string or an array of strings")))?;
    Ok(array.iter().map(crate::value::display_value).collect())
}

/// A subgraph runs no code of its own and has no result: a `timeout`, a `revert` or a
/// `provides` on it would be silently ignored, so setting one is refused.
fn refuse_on_subgraph(cell: &TaskCell, setting: &str, value: &Dynamic) -> Result<()> {
    if cell.kind() != TaskKind::Subgraph || value.is_unit() {
        return Ok(());
    }
    let instead = match setting {
        "timeout" => "set it on its tasks",
        "revert" => "give its tasks revert closures; they are reverted when it is retried or the graph fails",
        "provides" => "it has no result; let one of its tasks provide the key",
        _ => return Ok(()),
    };
    Err(bad_argument(format!("a subgraph has no `{setting}`: {instead} (subgraph `{}`)", cell.name)))
}

/// The properties every task-like handle has (section 4).
pub fn register_properties<T: AsTask>(engine: &mut Engine) {
    doc("t.name", "The task's name.").get("name").register_into_engine(engine, |t: &mut T| t.cell().name.to_string());
    doc("t.id", "The id of its current attempt; `()` before it starts.").get("id").register_into_engine(
        engine,
        |t: &mut T| match t.cell().attempt_id() {
            Some(id) => Dynamic::from_int(id as rhai::INT),
            None => Dynamic::UNIT,
        },
    );
    doc("t.state", "`pending`, `started`, `succeeded`, `failed`, `rescheduled` or `cancelled`.")
        .get("state")
        .register_into_engine(engine, |t: &mut T| t.cell().state().as_str().to_string());
    doc("t.result", "Its result once it succeeded, else `()`.")
        .get("result")
        .register_into_engine(engine, |t: &mut T| t.cell().result());
    doc("t.error", "Its `Error` once it failed, else `()`.").get("error").register_into_engine(engine, |t: &mut T| {
        match t.cell().error() {
            Some(e) => Dynamic::from(e),
            None => Dynamic::UNIT,
        }
    });
    doc("t.current_retries", "How many times it was retried so far.")
        .get("current_retries")
        .register_into_engine(engine, |t: &mut T| t.cell().current_retries() as rhai::INT);
    register_retry_settings::<T>(engine);
    register_handlers::<T>(engine);
    register_data_flow::<T>(engine);
}

/// `total_retries`, `retry_interval` and `timeout`: read and write.
fn register_retry_settings<T: AsTask>(engine: &mut Engine) {
    let total_retries = doc("t.total_retries", "Read and write: how many retries it is allowed (`-1`: no limit).");
    total_retries
        .get("total_retries")
        .register_into_engine(engine, |t: &mut T| t.cell().with_settings(|s| s.total_retries));
    total_retries
        .set("total_retries")
        .register_into_engine(engine, |t: &mut T, n: rhai::INT| t.cell().configure(|s| s.total_retries = n));
    let retry_interval = doc("t.retry_interval", "Read and write: seconds between a failure and its retry.");
    retry_interval
        .get("retry_interval")
        .register_into_engine(engine, |t: &mut T| t.cell().with_settings(|s| s.retry_interval));
    retry_interval.set("retry_interval").register_into_engine(engine, |t: &mut T, secs: Dynamic| -> Result<()> {
        let interval = seconds(&secs, "retry_interval")?;
        t.cell().configure(|s| s.retry_interval = interval);
        Ok(())
    });
    let timeout = doc(
        "t.timeout",
        "Read and write: seconds an attempt may take (`()`: no limit); a process task's group is killed.",
    );
    timeout.get("timeout").register_into_engine(engine, |t: &mut T| match t.cell().with_settings(|s| s.timeout) {
        Some(s) => Dynamic::from_float(s),
        None => Dynamic::UNIT,
    });
    timeout.set("timeout").register_into_engine(engine, |t: &mut T, secs: Dynamic| -> Result<()> {
        refuse_on_subgraph(t.cell(), "timeout", &secs)?;
        let timeout = if secs.is_unit() { None } else { Some(seconds(&secs, "timeout")?) };
        t.cell().configure(|s| s.timeout = timeout);
        Ok(())
    });
}

/// `on_success`, `on_failure` and `revert`: closures, read and write.
fn register_handlers<T: AsTask>(engine: &mut Engine) {
    macro_rules! closure_property {
        ($name:literal, $field:ident, $call:literal, $what:literal) => {
            let described = doc($call, $what);
            described.get($name).register_into_engine(engine, |t: &mut T| {
                match t.cell().with_settings(|s| s.$field.clone()) {
                    Some(f) => Dynamic::from(*f),
                    None => Dynamic::UNIT,
                }
            });
            described.set($name).register_into_engine(engine, |t: &mut T, f: Dynamic| -> Result<()> {
                refuse_on_subgraph(t.cell(), $name, &f)?;
                let closure = optional_closure(f, $name)?;
                t.cell().configure(|s| s.$field = closure.map(Box::new));
                Ok(())
            });
        };
    }
    closure_property!(
        "on_success",
        on_success,
        "t.on_success = |t| HandlerResult::cont()",
        "Read and write: a handler called after it succeeded; its verdict may retry it (polling)."
    );
    closure_property!(
        "on_failure",
        on_failure,
        "t.on_failure = |t| HandlerResult::retry()",
        "Read and write: a handler called after a failed attempt; its verdict decides what follows."
    );
    closure_property!(
        "revert",
        revert,
        "t.revert = |result| ...",
        "Read and write: undoes the succeeded task when its graph fails."
    );
}

/// `provides`, `requires` and `inject`: data flow between tasks (TaskFlow's).
fn register_data_flow<T: AsTask>(engine: &mut Engine) {
    let provides = doc("t.provides", "Read and write: the key its result is known by to the tasks that require it.");
    provides.get("provides").register_into_engine(engine, |t: &mut T| {
        match t.cell().with_settings(|s| s.provides().cloned()) {
            Some(p) => Dynamic::from(p),
            None => Dynamic::UNIT,
        }
    });
    provides.set("provides").register_into_engine(engine, |t: &mut T, key: Dynamic| -> Result<()> {
        refuse_on_subgraph(t.cell(), "provides", &key)?;
        let key = if key.is_unit() { None } else { Some(crate::value::display_value(&key)) };
        t.cell().configure(|s| s.data_flow_mut().provides = key);
        Ok(())
    });
    let requires = doc(
        "t.requires",
        "Read and write: the keys (a string or an array) whose values its closure receives in its map.",
    );
    requires.get("requires").register_into_engine(engine, |t: &mut T| {
        let keys: Array = t.cell().with_settings(|s| s.requires().iter().map(|k| Dynamic::from(k.clone())).collect());
        keys
    });
    requires.set("requires").register_into_engine(engine, |t: &mut T, keys: Dynamic| -> Result<()> {
        let keys = strings(&keys, "requires")?;
        t.cell().configure(|s| s.data_flow_mut().requires = keys);
        Ok(())
    });
    let inject = doc(
        "t.inject",
        "Read and write: a map where its required keys are looked up first (before providers and parameters).",
    );
    inject
        .get("inject")
        .register_into_engine(engine, |t: &mut T| t.cell().with_settings(|s| s.inject().cloned().unwrap_or_default()));
    inject.set("inject").register_into_engine(engine, |t: &mut T, values: Map| {
        t.cell().configure(|s| s.data_flow_mut().inject = values)
    });
}
