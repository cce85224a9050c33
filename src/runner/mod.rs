//! One run of a workflow script, from source to final event: the public entry point that the
//! CLI, tests and benchmarks use. `resume` takes an execution up again; `entry` calls a
//! bundle's workflow function; `watchers` bring cancel requests in from outside.

pub mod bundle_tests;
mod deployment;
mod entry;
mod host;
mod last_resort;
mod recorded;
mod resume;
mod shipped;
mod store_opening;
mod submit;
mod watchers;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, EvalAltResult, Map, Position, Scope, AST};
use serde_json::Value;

pub use deployment::{attach_deployment, DeploymentSource};
pub use entry::prepare as prepare_bundle_workflow;
pub use resume::{resume, resume_in};
pub use submit::submit;
pub use watchers::nudge;

use crate::deploy::model::NotRecorded;
use crate::deploy::Deployment;
use crate::diagnostic::{Code, Diagnostic, Source};
use crate::events::{EventBus, EventSink, ExecutionLabel, LogLevel, Payload};
use crate::exec::Mocks;
use crate::script::api::GraphShared;
use crate::script::limits::EnginePanicked;
use crate::script::{self, Limits, ModuleRoot, RunSettings, RunState};
use crate::store::{ExecutionRecord, ExecutionStatus, Store, StoreError, StoreLocation, StoreSink};
use crate::task::{innermost, ErrorKind, TaskError};
use crate::value::{from_json, to_json};
use entry::{entry_call, point_at_function};
pub(crate) use host::{Globals, Host, HostBuilder};
use last_resort::LastResort;
use recorded::RecordedOptions;
use resume::ResumeFrom;
pub use store_opening::EarlyStore;
use store_opening::StoreOpening;
use watchers::{watch_signals, CancelWatcher, Signals};

/// Everything a run needs to know, already validated.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The workflow script, or for a bundle workflow the module that holds its function.
    pub script: PathBuf,
    /// A bundle workflow: the function to call, with the parameters passed by name.
    pub workflow: Option<BundleWorkflow>,
    /// Bundles whose modules the script may import (besides the stdlib).
    pub modules: Vec<ModuleRoot>,
    pub parameters: serde_json::Map<String, Value>,
    /// The text of each `-p` value as typed (a bundle parameter declared as a string keeps it).
    pub parameter_texts: std::collections::BTreeMap<String, String>,
    pub task_retries: i64,
    pub retry_interval: f64,
    pub max_concurrency: Option<usize>,
    pub dry_run: bool,
    pub limits: Limits,
    /// The run owns its process (the CLI; not the REPL, tests or benchmarks): SIGINT/SIGTERM
    /// cancel it, a forced cancel that a script thread cannot heed ends the process, and the
    /// store is left quick to open for the next process (`Store::leave`).
    pub owns_process: bool,
    /// Where the execution is recorded.
    pub store: StoreChoice,
    /// Tasks that end as told instead of running (bundle tests).
    pub mocks: Arc<Mocks>,
    /// The deployment `ctx.nodes` describes.
    pub deployment: Option<Arc<Deployment>>,
    /// More host functions for this run's scripts (bundle tests add assertions).
    pub extension: Option<HostExtension>,
    /// The execution's id, when it was told before the run (the HTTP API answers with it);
    /// else a new one.
    pub execution_id: Option<String>,
    /// The API request that started it, when it came with an `Idempotency-Key`: `{key,
    /// request}` (the request's checksum), recorded so that the same request again finds it.
    pub idempotency: Option<Value>,
    /// Who started it, when a server's caller did (`workflow_started`'s `by`).
    pub caller: Option<String>,
}

/// Registers extra host functions on a run's engine.
#[derive(Clone)]
pub struct HostExtension(pub Arc<dyn Fn(&mut rhai::Engine) + Send + Sync>);

impl std::fmt::Debug for HostExtension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HostExtension")
    }
}

/// A workflow of a bundle (docs/BUNDLES.md): `fn <function>(...)` in the module
/// `RunOptions::script`, called with the validated parameters, each by its name.
#[derive(Clone, Debug)]
pub struct BundleWorkflow {
    /// The workflow's name in `plugin.yaml` (the `workflow` of every event).
    pub name: String,
    /// The module's import path inside the bundle (`flows`, `aws/ec2`).
    pub module: String,
    pub function: String,
    pub bundle: ModuleRoot,
}

/// The embedded store in a file, or none (`--ephemeral`: events only go to the sinks).
#[derive(Clone, Debug)]
pub enum StoreChoice {
    Ephemeral,
    /// Recorded in the store there (a SQLite file, or a PostgreSQL server).
    At(StoreLocation),
}

impl RunOptions {
    pub fn new(script: impl Into<PathBuf>) -> Self {
        RunOptions {
            script: script.into(),
            workflow: None,
            modules: Vec::new(),
            parameters: serde_json::Map::new(),
            parameter_texts: Default::default(),
            task_retries: 0,
            retry_interval: 1.0,
            max_concurrency: None,
            dry_run: false,
            limits: Limits::default(),
            owns_process: false,
            store: StoreChoice::Ephemeral,
            mocks: Arc::default(),
            deployment: None,
            extension: None,
            execution_id: None,
            idempotency: None,
            caller: None,
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
    pub diagnostic: Option<Diagnostic>,
    /// The graphs the script built (for `rhaiflow graph`).
    pub graphs: Vec<Arc<GraphShared>>,
    /// In a dry run: where the script first used a result that only a real run has.
    pub dry_result_used_at: Option<Position>,
    /// A dry run that stopped early, at `dry_result_used_at`: the script went on to fail on
    /// the placeholder a dry run gives for a task's result. It succeeds, having checked the
    /// graphs up to there.
    pub dry_run_stopped_early: bool,
    pub elapsed: Duration,
    /// The store, when the execution was recorded (to tell how to resume it).
    pub store: Option<StoreLocation>,
}

impl RunReport {
    fn invalid(execution_id: String, workflow: String, diagnostic: Diagnostic, started: Instant) -> Self {
        RunReport {
            execution_id,
            workflow,
            status: Status::Invalid,
            result: None,
            diagnostic: Some(diagnostic),
            graphs: Vec::new(),
            dry_result_used_at: None,
            dry_run_stopped_early: false,
            elapsed: started.elapsed(),
            store: None,
        }
    }
}

/// The workflow's name: a bundle workflow's, else the script's file name without `.rhai`.
pub fn workflow_name(options: &RunOptions) -> String {
    if let Some(workflow) = &options.workflow {
        return workflow.name.clone();
    }
    options.script.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "workflow".into())
}

/// Runs the script; every event goes to `sinks`, in order, and to the store.
pub fn run(options: &RunOptions, sinks: Vec<Box<dyn EventSink>>) -> RunReport {
    run_with(options, sinks, None)
}

/// `run`, with its store perhaps opening already (`early`): taken if it is the run's store.
pub fn run_with(options: &RunOptions, sinks: Vec<Box<dyn EventSink>>, early: Option<EarlyStore>) -> RunReport {
    let started = Instant::now();
    let (store, location) = match &options.store {
        StoreChoice::Ephemeral => (StoreOpening::Ready(None), None),
        StoreChoice::At(location) => {
            match early.and_then(|early| early.of(location)).map_or_else(|| StoreOpening::start(location), Ok) {
                Ok(opening) => (opening, Some(location.clone())),
                Err(e) => return RunReport::invalid(String::new(), workflow_name(options), e.into(), started),
            }
        }
    };
    run_execution(options, sinks, store, location, None, started)
}

fn run_execution(
    options: &RunOptions,
    sinks: Vec<Box<dyn EventSink>>,
    store: StoreOpening,
    location: Option<StoreLocation>,
    resume: Option<ResumeFrom>,
    started: Instant,
) -> RunReport {
    let execution_id = resume
        .as_ref()
        .map(|r| r.execution_id.clone())
        .or_else(|| options.execution_id.clone())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let workflow = workflow_name(options);
    let prepared = prepare(options, store, resume.as_ref(), &execution_id, &workflow);
    let Prepared { host, script, store, nudged, beginning } = match prepared {
        Ok(prepared) => prepared,
        Err(NotPrepared::Store(e)) => return RunReport::invalid(String::new(), workflow, e.into(), started),
        Err(NotPrepared::Invalid(d)) => return RunReport::invalid(execution_id, workflow, d, started),
    };
    let label =
        ExecutionLabel { execution_id: Arc::from(execution_id.as_str()), workflow: Arc::from(workflow.as_str()) };
    let bus = event_bus(label, sinks, store.as_ref(), resume.as_ref().map(|r| r.last_seq).unwrap_or(0));
    connect(&host, options, &script, &bus, store.as_ref(), resume.as_ref(), &execution_id);
    if let Some(Err(e)) = beginning.map(|store| store.flush()) {
        // Nothing was emitted: the bus closes empty.
        bus.close();
        return RunReport::invalid(execution_id, workflow, not_begun(e), started);
    }
    let watcher = store
        .as_ref()
        .map(|s| CancelWatcher::start(host.runtime().handle(), s.clone(), &execution_id, host.cancel.clone(), nudged));
    let last_resort = LastResort::arm(options.owns_process, &host.cancel, bus.clone(), store.clone(), &execution_id);

    let globals = Globals {
        execution_id: &execution_id,
        workflow: &workflow,
        parameters: &Value::Object(options.parameters.clone()),
        resumed: resume.as_ref().is_some_and(|r| !r.first_run),
        deployment: options.deployment.as_ref(),
    };
    let outcome = evaluate(&host, options, &script, &globals, &bus, resume.as_ref());
    let ending = classify_outcome(outcome, &host, options, &script);
    let (ending, dry_run_stopped_early) = ending.unless_a_dry_run_stopped(options.dry_run, &host.run_state, &bus);
    let ending = ending.unless_unrecorded(store.as_deref(), options.deployment.as_deref());
    let ending = ending.unless_a_bug(host.run_state.env().bug());
    last_resort.claim_end();
    let cancelled_by = host.cancel.asked_by();
    let Ending { status, result, diagnostic } =
        announce_the_end(&bus, ending, store.as_deref(), &execution_id, cancelled_by);
    drop(watcher);
    if let Some(store) = store.as_ref().filter(|_| options.owns_process) {
        store.leave();
    }
    let graphs = host.run_state.graphs.lock().clone();
    let dry_result_used_at = *host.run_state.dry_results_used.lock();
    if options.owns_process {
        // The process ends now: freeing the engine's ~900 functions one by one cost a tenth of
        // an empty run (440,000 instructions) for memory the exit returns anyway. The engine
        // owns nothing with an effect; the runtime is still shut down with the host.
        std::mem::forget(host.engine.clone());
    }
    drop(host);
    RunReport {
        execution_id,
        workflow,
        status,
        result,
        diagnostic,
        graphs,
        dry_result_used_at,
        dry_run_stopped_early,
        elapsed: started.elapsed(),
        store: location.filter(|_| store.is_some()),
    }
}

/// A run ready to evaluate: its host, its compiled script, and its start queued (or, on a
/// stored deployment, recorded).
struct Prepared {
    host: Host,
    script: Compiled,
    /// The store, unless a dry run (which runs nothing, so records nothing either).
    store: Option<Arc<dyn Store>>,
    /// Told when a signal asked for a cancel (the store's cancel watcher looks at once).
    nudged: watchers::Nudged,
    /// The store, when the start is queued but not yet committed: its `flush` says whether
    /// it was, before anything runs. The commit meanwhile overlaps the bus's and the
    /// executor's setup.
    beginning: Option<Arc<dyn Store>>,
}

/// Why a run did not start: its store could not be opened, or its script or options are
/// invalid. Either way nothing ran (exit 2).
enum NotPrepared {
    Store(StoreError),
    Invalid(Diagnostic),
}

/// Everything before the script runs; a failure here means nothing ran (exit 2).
fn prepare(
    options: &RunOptions,
    store: StoreOpening,
    resume: Option<&ResumeFrom>,
    execution_id: &str,
    workflow: &str,
) -> Result<Prepared, NotPrepared> {
    let built = build(options);
    // A store that cannot be opened is reported before the script's errors, as when it was
    // opened before the script was read.
    let store = store.opened().map_err(NotPrepared::Store)?;
    let (host, script, nudged) = built.map_err(NotPrepared::Invalid)?;
    let store = store.filter(|_| !options.dry_run);
    let mut beginning = None;
    if let Some(store) = &store {
        let record = execution_record(options, execution_id, workflow, resume);
        // On a stored deployment, recorded only while no other execution runs on it (Cloudify
        // refuses a second execution on a deployment as well): checked and committed now.
        match options.deployment.as_deref().filter(|d| d.stored.load(std::sync::atomic::Ordering::Relaxed)) {
            Some(deployment) => {
                store.begin_on_deployment(&record, &deployment.name).map_err(|e| NotPrepared::Invalid(not_begun(e)))?
            }
            None => {
                store.begin_queued(&record);
                beginning = Some(store.clone());
            }
        }
    }
    Ok(Prepared { host, script, store, nudged, beginning })
}

/// The run's host (its runtime and engine, signals watched if it owns the process) and its
/// compiled script.
fn build(options: &RunOptions) -> Result<(Host, Compiled, watchers::Nudged), Diagnostic> {
    let (source, shown) = read(options)?;
    let host = HostBuilder::new(RunSettings {
        parameters: from_json(&Value::Object(options.parameters.clone())).cast::<Map>(),
        task_retries: options.task_retries,
        retry_interval: options.retry_interval,
        dry_run: options.dry_run,
        max_tasks: options.limits.max_tasks,
        deployment: options.deployment.clone(),
    })
    .limits(&options.limits)
    .modules(options.modules.clone())
    .extension(options.extension.clone())
    .build()?;
    let (nudge, nudged) = tokio::sync::mpsc::unbounded_channel();
    if let Some(signals) = options.owns_process.then(|| Signals::install(host.runtime())).flatten() {
        host.runtime().spawn(watch_signals(signals, host.cancel.clone(), nudge));
    }
    let script = compile(&host, options, source, shown)?;
    Ok((host, script, nudged))
}

/// The script's source, and how diagnostics show it: a flow file is compiled as the script it
/// translates into, and shown as written; a built-in workflow is shown by its `builtin:` name.
fn read(options: &RunOptions) -> Result<(Source, Source), Diagnostic> {
    let text = std::fs::read_to_string(&options.script)
        .map_err(|e| Diagnostic::plain(Code::NoScript, format!("cannot read {}: {e}", options.script.display())))?;
    let read = crate::flow_file::read(&options.script, text)?;
    let (mut source, mut shown) = (read.script, read.shown);
    source.name = crate::bundle::builtin::shown_name(&options.script);
    shown.name = source.name.clone();
    Ok((source, shown))
}

/// A compiled script, ready to evaluate.
struct Compiled {
    /// What is evaluated: the script, or a bundle workflow's call of its function.
    ast: Arc<AST>,
    /// A bundle workflow's module, where its closures live.
    module: Option<Arc<AST>>,
    /// A bundle workflow's arguments, by name.
    arguments: Vec<(String, Dynamic)>,
    source: Source,
    shown: Source,
}

fn compile(host: &Host, options: &RunOptions, source: Source, shown: Source) -> Result<Compiled, Diagnostic> {
    let ast = script::compile::compile_shown(&host.engine, &source, &shown)?;
    host.run_state.set_arity(script::function_arities(&ast));
    let Some(w) = &options.workflow else {
        return Ok(Compiled { ast: Arc::new(ast), module: None, arguments: Vec::new(), source, shown });
    };
    // A bundle workflow runs a call of its function; its closures live in its module.
    let (call, arguments) = entry_call(&ast, w, &options.parameters, &source)?;
    let call = host
        .engine
        .compile(&call)
        .map_err(|e| Diagnostic::bug(format!("the call of a bundle workflow does not compile: {e}")))?;
    Ok(Compiled { ast: Arc::new(call), module: Some(Arc::new(ast)), arguments, source, shown })
}

/// The execution as its start is recorded.
fn execution_record(
    options: &RunOptions,
    execution_id: &str,
    workflow: &str,
    resume: Option<&ResumeFrom>,
) -> ExecutionRecord {
    ExecutionRecord {
        id: execution_id.to_string(),
        workflow: workflow.to_string(),
        script: recorded_script(&options.script),
        parameters: Value::Object(options.parameters.clone()),
        options: RecordedOptions::of(options).to_json(),
        status: ExecutionStatus::Running,
        started_at: resume.map(|r| r.started_at.clone()).unwrap_or_else(now),
        ended_at: None,
        error: None,
        pid: std::process::id(),
        runner: crate::store::Runner::Process,
        resumes: resume.map(|r| r.resumes).unwrap_or(0),
        tasks_total: 0,
        tasks_done: 0,
        last_seq: 0,
    }
}

/// Wires the executor of a run: closures of the compiled script, the store's commits, what a
/// resume replays, the mocks of a bundle test.
fn connect(
    host: &Host,
    options: &RunOptions,
    script: &Compiled,
    bus: &Arc<EventBus>,
    store: Option<&Arc<dyn Store>>,
    resume: Option<&ResumeFrom>,
    execution_id: &str,
) {
    let bridge = Arc::new(host.script_bridge(&script.ast, script.module.clone()));
    host.connect(bus.clone(), bridge, options.max_concurrency, |env| {
        env.committed = store.and_then(|s| s.committed());
        let remote = store.and_then(|s| s.remote_tasks());
        env.remote = remote.map(|r| crate::exec::remote::SentTasks::new(r, execution_id.to_string()));
        env.replay = resume.map(|r| r.replay.clone());
        env.mocks = options.mocks.clone();
        if let Some(store) = store {
            let (store, id) = (store.clone(), execution_id.to_string());
            env.on_planned = Some(Box::new(move |n| store.planned(&id, n)));
        }
    });
}

type Outcome = Result<Result<Dynamic, Box<EvalAltResult>>, EnginePanicked>;

/// Announces the start and evaluates the script; a script that returned while a task it
/// started failed unnoticed has failed.
fn evaluate(
    host: &Host,
    options: &RunOptions,
    script: &Compiled,
    globals: &Globals,
    bus: &EventBus,
    resume: Option<&ResumeFrom>,
) -> Outcome {
    let by = options.caller.clone();
    bus.emit(Payload::WorkflowStarted { resumed: globals.resumed, parameters: globals.parameters.clone(), by });
    if let Some(killed) = resume.map(|r| &r.left_behind).filter(|pids| !pids.is_empty()) {
        let message = format!("killed what the previous run left running: process(es) {killed:?}");
        bus.emit(Payload::Log { level: LogLevel::Warn, message });
    }
    let mut scope = Scope::new();
    globals.push(&mut scope);
    for (name, value) in &script.arguments {
        scope.push_constant(name.as_str(), value.clone());
    }
    let engine = &host.engine;
    let outcome =
        script::limits::evaluate(&host.cancel, None, || engine.eval_ast_with_scope::<Dynamic>(&mut scope, &script.ast));
    // A bundle workflow's error is about its function: the call rhaiflow wrote adds nothing.
    // Limits stop a script without naming the function: their position is in that call.
    let outcome = match (outcome, &options.workflow) {
        (Ok(Err(err)), Some(w)) => Ok(Err(match *err {
            EvalAltResult::ErrorInFunctionCall(name, _, inner, _) if name.ends_with(&*w.function) => inner,
            mut other => {
                other.set_position(Position::NONE);
                Box::new(other)
            }
        })),
        (outcome, _) => outcome,
    };
    match (outcome, host.run_state.wait_standard_tasks()) {
        (Ok(Ok(_)), Some(error)) => Ok(Err(error.into_rhai())),
        (outcome, _) => outcome,
    }
}

/// How the evaluation ended, as a status, a result and a diagnostic.
fn classify_outcome(outcome: Outcome, host: &Host, options: &RunOptions, script: &Compiled) -> Ending {
    match outcome {
        Ok(Ok(value)) => match crate::value::check_nesting(&value, || "the workflow's result".into()) {
            Ok(()) => Ending {
                status: Status::Succeeded,
                result: (!value.is_unit()).then(|| to_json(&value)),
                diagnostic: None,
            },
            Err(e) => Ending::failed(Diagnostic::plain(Code::ResultTooDeep, e.to_string())),
        },
        Ok(Err(err)) => {
            let mut diagnostic = Diagnostic::runtime(&err, &script.shown, &host.run_state.module_sources);
            if let Some(message) = script::limits::limit_reached(&err, &host.engine) {
                diagnostic.message = message;
            }
            if let (Some(w), true) = (&options.workflow, diagnostic.labels.is_empty()) {
                point_at_function(&mut diagnostic, &script.source, &w.function);
            }
            let nothing_ran = !host.run_state.env().anything_started();
            Ending { status: classify(&err, nothing_ran), result: None, diagnostic: Some(diagnostic) }
        }
        Err(panicked) => Ending::failed(panicked.diagnostic("this script")),
    }
}

/// The script as an execution records it: absolute, or a built-in file by its name
/// (`builtin:lifecycle.rhai`; a resume finds the built-in workflows by their bundle).
fn recorded_script(script: &std::path::Path) -> String {
    let absolute = std::fs::canonicalize(script).unwrap_or_else(|_| script.to_path_buf());
    crate::bundle::builtin::shown_name(&absolute)
}

/// The diagnostic of an execution whose start was not recorded: nothing ran.
pub(super) fn not_begun(error: StoreError) -> Diagnostic {
    error.into()
}

/// Events go to `sinks` and to the store; with a store, `sinks` get each event once the store
/// has committed it (`EventBus::recording`), as its writer tells the bus.
fn event_bus(
    label: ExecutionLabel,
    sinks: Vec<Box<dyn EventSink>>,
    store: Option<&Arc<dyn Store>>,
    last_seq: u64,
) -> Arc<EventBus> {
    let Some(store) = store else { return Arc::new(EventBus::continuing(label, sinks, last_seq)) };
    let bus = EventBus::recording(label, Box::new(StoreSink(store.clone())), sinks, last_seq);
    let feed = bus.commit_feed();
    store.on_commit(Box::new(move |state| feed.update(state.committed_seq(), state.failure().is_some())));
    Arc::new(bus)
}

/// Emits the execution's last event, records the end, and closes the bus. When the store could
/// not record the end, the run has failed after all: it says so last, and the sinks waiting
/// for the store are given only that last end (the bus drops the one it replaces).
fn announce_the_end(
    bus: &EventBus,
    ending: Ending,
    store: Option<&dyn Store>,
    execution_id: &str,
    cancelled_by: Option<String>,
) -> Ending {
    let announced_failure = ending.is_failure();
    bus.emit(ending.event(cancelled_by));
    let ending = match store {
        Some(store) => ending.recorded(store, execution_id),
        None => ending,
    };
    if ending.is_failure() && !announced_failure {
        bus.emit(ending.event(None));
    }
    bus.close();
    ending
}

/// How a run ended, before it is announced and recorded.
struct Ending {
    status: Status,
    result: Option<Value>,
    diagnostic: Option<Diagnostic>,
}

impl Ending {
    fn failed(diagnostic: Diagnostic) -> Self {
        Ending { status: Status::Failed, result: None, diagnostic: Some(diagnostic) }
    }

    fn is_failure(&self) -> bool {
        matches!(self.status, Status::Failed | Status::Invalid)
    }

    /// A dry run gives a placeholder for a task's result: a script that goes on to read a
    /// field of it (`t.get().stdout`) fails there, not because it is wrong. Such a dry run
    /// ends as a success that says where it stopped (with `true`); any other ending stays.
    /// An invalid graph built before is still invalid (`check` and `graph` judge it so).
    fn unless_a_dry_run_stopped(self, dry_run: bool, run: &RunState, bus: &EventBus) -> (Self, bool) {
        let used_at = *run.dry_results_used.lock();
        let tasks: usize = run.graphs.lock().iter().map(|g| g.graph.lock().len()).sum();
        let stopped = match (dry_run, used_at, self.status) {
            (true, Some(_), Status::Failed) => true,
            (true, Some(_), Status::Invalid) => tasks == 0,
            _ => false,
        };
        let (Some(at), true) = (used_at, stopped) else { return (self, false) };
        let why = self.diagnostic.as_ref().map(|d| d.message.clone()).unwrap_or_default();
        let message = format!(
            "dry run stopped at line {}: the script uses a task's result there, which only a real run has ({why})",
            at.line().unwrap_or(0)
        );
        bus.emit(Payload::Log { level: LogLevel::Warn, message });
        (Ending { status: Status::Succeeded, result: None, diagnostic: None }, true)
    }

    /// A store that failed holds less than what ran: the run fails, whatever the script made
    /// of it (it may have caught the task failure the store caused). Looked at without
    /// waiting for what is queued: `recorded` waits.
    fn unless_unrecorded(self, store: Option<&dyn Store>, deployment: Option<&Deployment>) -> Self {
        let failure = store.and_then(|s| s.committed()).and_then(|c| c.borrow().failure().cloned());
        match (failure, deployment.and_then(Deployment::unrecorded)) {
            (Some(error), _) => Ending::failed(store_failed(&error)),
            (None, Some(lost)) => Ending::failed(deployment_not_recorded(&lost)),
            (None, None) => self,
        }
    }

    /// A bug in rhaiflow met while running fails the run, even when the script caught the
    /// task error it caused: what ran after it is not to be trusted.
    fn unless_a_bug(self, bug: Option<&TaskError>) -> Self {
        match bug {
            Some(bug) => Ending::failed(Diagnostic::plain(Code::Bug, bug.message.clone())),
            None => self,
        }
    }

    /// The execution's last event (`cancelled_by`: who asked for a cancel, if it was one).
    fn event(&self, cancelled_by: Option<String>) -> Payload {
        match self.status {
            Status::Succeeded => Payload::WorkflowSucceeded { result: self.result.clone() },
            Status::Cancelled => Payload::WorkflowCancelled { by: cancelled_by },
            Status::Failed | Status::Invalid => Payload::WorkflowFailed {
                error: self.diagnostic.as_ref().map(|d| d.message.clone()).unwrap_or_default(),
            },
        }
    }

    /// Records how the execution ended and waits until everything is on disk; a run whose
    /// store failed to record any of it has failed.
    fn recorded(self, store: &dyn Store, execution_id: &str) -> Self {
        let ended = match self.status {
            Status::Succeeded => ExecutionStatus::Succeeded,
            Status::Cancelled => ExecutionStatus::Cancelled,
            Status::Failed | Status::Invalid => ExecutionStatus::Failed,
        };
        let error = self.diagnostic.as_ref().map(|d| d.message.clone());
        match store.end(execution_id, ended, error).and_then(|()| store.flush()) {
            Ok(()) => self,
            Err(e) => Ending::failed(store_failed(&e)),
        }
    }
}

/// The diagnostic of a run whose store failed.
fn store_failed(error: &StoreError) -> Diagnostic {
    Diagnostic::from(error.clone()).with_help(
        "what ran after the store's last commit is not recorded: once the store can be written again, resuming the \
         execution runs it again",
    )
}

/// The diagnostic of a run that changed its deployment in ways the store did not record.
fn deployment_not_recorded(lost: &NotRecorded) -> Diagnostic {
    Diagnostic::plain(Code::Deployments, lost.to_string())
        .with_help("the stored deployment is as the store last recorded it, not as this run left the instances")
}

/// Exit code of a script that ended with an error (section 1): a cancel is 3; invalid input
/// (a graph that cannot run, a host function given a wrong value, a module that does not
/// compile or is not there) is 2, but only while nothing has run, since exit 2 promises that;
/// anything else the script meets while it runs (an unknown function, the operations or
/// call-depth limit, a throw) is a failure, 1, as is invalid input met once tasks ran.
fn classify(err: &EvalAltResult, nothing_ran: bool) -> Status {
    let invalid_input = match innermost(err) {
        EvalAltResult::ErrorRuntime(value, _) => match value.read_lock::<TaskError>().map(|e| e.kind.clone()) {
            Some(ErrorKind::Cancelled) => return Status::Cancelled,
            Some(ErrorKind::Invalid | ErrorKind::BadArgument) => true,
            _ => false,
        },
        EvalAltResult::ErrorTerminated(value, _)
            if value.read_lock::<TaskError>().is_some_and(|e| e.is_cancelled()) =>
        {
            return Status::Cancelled
        }
        EvalAltResult::ErrorModuleNotFound(..) | EvalAltResult::ErrorParsing(..) => true,
        _ => false,
    };
    if invalid_input && nothing_ran {
        Status::Invalid
    } else {
        Status::Failed
    }
}

fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
