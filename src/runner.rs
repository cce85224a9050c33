//! One run of a workflow script, from source to final event: the public entry point that the
//! CLI, tests and benchmarks use.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, EvalAltResult, Map, Position, Scope};
use serde_json::Value;

use crate::events::{EventBus, EventSink, ExecutionLabel, Payload};
use crate::exec::{innermost, CancelState, ErrorKind, ExecEnv, TaskError, TERMINATED_BY_CANCEL};
use crate::script::api::GraphShared;
use crate::script::{self, Limits, RunSettings, RunState, ScriptBridge, ScriptDiagnostic, Source};
use crate::value::{from_json, to_json};

/// Everything a run needs to know, already validated.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub script: PathBuf,
    pub parameters: serde_json::Map<String, Value>,
    pub task_retries: i64,
    pub retry_interval: f64,
    pub max_concurrency: Option<usize>,
    pub dry_run: bool,
    pub limits: Limits,
    /// Install SIGINT/SIGTERM handlers (the CLI does; tests and benchmarks don't).
    pub handle_signals: bool,
}

impl RunOptions {
    pub fn new(script: impl Into<PathBuf>) -> Self {
        RunOptions {
            script: script.into(),
            parameters: serde_json::Map::new(),
            task_retries: 0,
            retry_interval: 1.0,
            max_concurrency: None,
            dry_run: false,
            limits: Limits::default(),
            handle_signals: false,
        }
    }
}

/// How an execution ended; each has its exit code (section 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Succeeded,
    Failed,
    Invalid,
    Cancelled,
}

impl Status {
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Succeeded => 0,
            Status::Failed => 1,
            Status::Invalid => 2,
            Status::Cancelled => 3,
        }
    }
}

pub struct RunReport {
    pub execution_id: String,
    pub workflow: String,
    pub status: Status,
    pub result: Option<Value>,
    pub diagnostic: Option<ScriptDiagnostic>,
    /// The graphs the script built (for `rhaiflow graph`).
    pub graphs: Vec<Arc<GraphShared>>,
    /// In a dry run: where the script first used a result that only a real run has.
    pub dry_result_used_at: Option<Position>,
    pub elapsed: Duration,
}

impl RunReport {
    fn invalid(execution_id: String, workflow: String, diagnostic: ScriptDiagnostic, started: Instant) -> Self {
        RunReport {
            execution_id,
            workflow,
            status: Status::Invalid,
            result: None,
            diagnostic: Some(diagnostic),
            graphs: Vec::new(),
            dry_result_used_at: None,
            elapsed: started.elapsed(),
        }
    }
}

/// The workflow's name: the script's file name without `.rhai`.
pub fn workflow_name(options: &RunOptions) -> String {
    options.script.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "workflow".into())
}

/// Runs the script; every event goes to `sinks`, in order.
pub fn run(options: &RunOptions, sinks: Vec<Box<dyn EventSink>>) -> RunReport {
    let started = Instant::now();
    let execution_id = uuid::Uuid::new_v4().to_string();
    let workflow = workflow_name(options);
    let text = match std::fs::read_to_string(&options.script) {
        Ok(text) => text,
        Err(e) => {
            let d = ScriptDiagnostic::plain(
                "rhaiflow::no_script",
                format!("cannot read {}: {e}", options.script.display()),
            );
            return RunReport::invalid(execution_id, workflow, d, started);
        }
    };
    let source = Source { name: options.script.display().to_string(), text: Arc::from(text.as_str()) };
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("rhaiflow-executor").build() {
            Ok(rt) => rt,
            Err(e) => {
                let d = ScriptDiagnostic::plain("rhaiflow::runtime", format!("cannot start the executor: {e}"));
                return RunReport::invalid(execution_id, workflow, d, started);
            }
        };
    let cancel = Arc::new(CancelState::default());
    if options.handle_signals {
        runtime.spawn(watch_signals(cancel.clone()));
    }

    let run_state = RunState::new(RunSettings {
        task_retries: options.task_retries,
        retry_interval: options.retry_interval,
        dry_run: options.dry_run,
    });
    let run_ref = Arc::downgrade(&run_state);
    let engine = script::build_engine(&run_ref, &options.limits);
    let ast = match engine.compile(&*source.text) {
        Ok(ast) => ast,
        Err(e) => return RunReport::invalid(execution_id, workflow, ScriptDiagnostic::compile(&e, &source), started),
    };
    run_state.set_arity(script::function_arities(&ast));
    let (engine, ast) = (Arc::new(engine), Arc::new(ast));
    let label =
        ExecutionLabel { execution_id: Arc::from(execution_id.as_str()), workflow: Arc::from(workflow.as_str()) };
    let bus = Arc::new(EventBus::new(label, sinks));
    let bridge = Arc::new(ScriptBridge { engine: engine.clone(), ast: ast.clone(), cancel: cancel.clone() });
    let env = ExecEnv::new(
        runtime.handle().clone(),
        bus.clone(),
        cancel.clone(),
        bridge,
        options.max_concurrency,
        options.dry_run,
    );
    run_state.set_env(Arc::new(env));

    let parameters = Value::Object(options.parameters.clone());
    bus.emit(Payload::WorkflowStarted { resumed: false, parameters: parameters.clone() });
    let mut scope = Scope::new();
    scope.push_constant("params", from_json(&parameters));
    scope.push_constant("ctx", context(&execution_id, &workflow, &parameters));
    let outcome = script::limits::guarded(&cancel, None, || {
        catch_unwind(AssertUnwindSafe(|| engine.eval_ast_with_scope::<Dynamic>(&mut scope, &ast)))
    });
    run_state.wait_standard_tasks();

    let (status, result, diagnostic) = match outcome {
        Ok(Ok(value)) => {
            let result = (!value.is_unit()).then(|| to_json(&value));
            bus.emit(Payload::WorkflowSucceeded { result: result.clone() });
            (Status::Succeeded, result, None)
        }
        Ok(Err(err)) => {
            let status = classify(&err);
            let diagnostic = ScriptDiagnostic::runtime(&err, &source);
            match status {
                Status::Cancelled => bus.emit(Payload::WorkflowCancelled),
                _ => bus.emit(Payload::WorkflowFailed { error: TaskError::from_rhai(&err).message }),
            }
            (status, None, Some(diagnostic))
        }
        Err(_) => {
            let message = "this is a bug in rhaiflow: the script engine panicked; please report it with the script";
            bus.emit(Payload::WorkflowFailed { error: message.into() });
            (Status::Failed, None, Some(ScriptDiagnostic::plain("rhaiflow::bug", message)))
        }
    };
    bus.close();
    let graphs = run_state.graphs.lock().clone();
    let dry_result_used_at = *run_state.dry_results_used.lock();
    // Closures stopped by a forced cancel may still be unwinding: don't wait for them.
    runtime.shutdown_background();
    RunReport {
        execution_id,
        workflow,
        status,
        result,
        diagnostic,
        graphs,
        dry_result_used_at,
        elapsed: started.elapsed(),
    }
}

/// `ctx` as scripts see it (section 3); the deployment model fills `nodes` later.
fn context(execution_id: &str, workflow: &str, parameters: &Value) -> Dynamic {
    let mut ctx = Map::new();
    ctx.insert("execution_id".into(), execution_id.into());
    ctx.insert("workflow_id".into(), workflow.into());
    ctx.insert("parameters".into(), from_json(parameters));
    ctx.insert("resume".into(), false.into());
    ctx.insert("nodes".into(), Dynamic::from_array(Vec::new()));
    ctx.insert("node_instances".into(), Dynamic::from_array(Vec::new()));
    Dynamic::from_map(ctx)
}

/// Exit code of a script that ended with an error: a wrong script is invalid input (2), a
/// cancel is 3, anything the workflow threw or a failed graph is 1.
fn classify(err: &EvalAltResult) -> Status {
    match innermost(err) {
        EvalAltResult::ErrorRuntime(value, _) => match value.read_lock::<TaskError>().map(|e| e.kind.clone()) {
            Some(ErrorKind::Cancelled) => Status::Cancelled,
            Some(ErrorKind::Invalid | ErrorKind::BadArgument) => Status::Invalid,
            _ => Status::Failed,
        },
        EvalAltResult::ErrorTerminated(value, _) if value.to_string() == TERMINATED_BY_CANCEL => Status::Cancelled,
        EvalAltResult::ErrorTooManyOperations(..)
        | EvalAltResult::ErrorStackOverflow(..)
        | EvalAltResult::ErrorDataTooLarge(..)
        | EvalAltResult::ErrorFunctionNotFound(..)
        | EvalAltResult::ErrorVariableNotFound(..)
        | EvalAltResult::ErrorModuleNotFound(..)
        | EvalAltResult::ErrorParsing(..) => Status::Invalid,
        _ => Status::Failed,
    }
}

/// The first SIGINT/SIGTERM asks for a graceful cancel, the second forces it.
async fn watch_signals(cancel: Arc<CancelState>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        return;
    };
    loop {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        if cancel.is_requested() {
            eprintln!("rhaiflow: forcing the cancel: stopping running tasks");
            cancel.request(true);
        } else {
            eprintln!("rhaiflow: cancelling: running tasks finish, nothing new starts (again to force)");
            cancel.request(false);
        }
    }
}
