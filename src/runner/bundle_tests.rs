//! `rhaiflow bundle test DIR`: runs the bundle's `tests/*.rhai`. A test is a script that runs
//! the bundle's workflows in-process, with some tasks mocked, and asserts on what happened:
//!
//! ```rhai
//! mock("boot_server", #{code: 0, stdout: "booted", stderr: ""});
//! let run = run_workflow("deploy", #{server: "web1"});
//! assert_eq(run.status, "succeeded");
//! assert(run.started.contains("create_volume"), "the volume comes first");
//! ```
//!
//! A test passes when its script returns; a failed assertion (or any error) fails it with
//! the usual diagnostic pointing at the line. What it prints is kept and shown with its result.
//!
//! Workflows of the deployment model run on a blueprint of the bundle (a throw-away
//! deployment for one run), or on a deployment the test built with `deployment(FILE)`, whose
//! instances keep their states from one run to the next (install, then heal):
//!
//! ```rhai
//! let shop = deployment("tests/shop.yaml");
//! assert_eq(run_workflow("install", #{}, shop).status, "succeeded");
//! assert(shop.node_instances.all(|i| i.state == "started"));
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};
use serde_json::Value;

use super::{HostExtension, RunOptions, RunReport, StoreChoice};
use crate::bundle::{builtin, plugins, Bundle};
use crate::deploy::{Blueprint, Deployment};
use crate::events::{Event, EventSink, ExecutionLabel, Payload};
use crate::exec::{Mock, Mocks};
use crate::runner;
use crate::script::api::deployment_nodes;
use crate::script::api::DeploymentHandle;
use crate::value::display_value;
use crate::value::{from_json, to_json};

type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// One test file, how its run ended and what it printed.
pub struct TestResult {
    pub file: PathBuf,
    pub report: RunReport,
    /// The lines the test's own `print` and `debug` gave, in order.
    pub printed: Vec<String>,
}

/// The bundle's test files, in name order.
pub fn test_files(bundle: &Bundle) -> Vec<PathBuf> {
    crate::bundle::check::rhai_files(&bundle.dir.join("tests"))
}

/// Runs every test file of `bundle`, calling `done` after each.
pub fn run_tests(bundle: &Bundle, mut done: impl FnMut(&TestResult)) -> Vec<TestResult> {
    let bundle = Arc::new(bundle.clone());
    test_files(&bundle)
        .into_iter()
        .map(|file| {
            let mut options = RunOptions::new(&file);
            options.modules = vec![bundle.module_root()];
            options.store = StoreChoice::Ephemeral;
            options.extension = Some(harness(bundle.clone()));
            let printed: Arc<Mutex<Vec<String>>> = Arc::default();
            let report = runner::run(&options, vec![Box::new(Printed(printed.clone()))]);
            let printed = std::mem::take(&mut *printed.lock());
            let result = TestResult { report, file, printed };
            done(&result);
            result
        })
        .collect()
}

/// The functions a test script has on top of the host API.
fn harness(bundle: Arc<Bundle>) -> HostExtension {
    HostExtension(Arc::new(move |engine: &mut Engine| {
        let mocks: Arc<Mutex<Mocks>> = Arc::default();
        let (b, m) = (bundle.clone(), mocks.clone());
        engine.register_fn("run_workflow", move |name: &str| run_workflow(&b, name, Map::new(), None, &m.lock()));
        let (b, m) = (bundle.clone(), mocks.clone());
        engine.register_fn("run_workflow", move |name: &str, params: Map| {
            run_workflow(&b, name, params, None, &m.lock())
        });
        let (b, m) = (bundle.clone(), mocks.clone());
        engine.register_fn("run_workflow", move |name: &str, params: Map, on: Dynamic| -> RhaiResult<Map> {
            let deployment = deployment_of(&b, on)?;
            Ok(run_workflow(&b, name, params, Some(deployment), &m.lock()))
        });
        let b = bundle.clone();
        engine.register_fn("deployment", move |blueprint: &str| -> RhaiResult<DeploymentHandle> {
            Ok(DeploymentHandle(throw_away(&b, blueprint)?))
        });
        engine.register_get("node_instances", |d: &mut DeploymentHandle| deployment_nodes(&d.0).1);
        engine.register_get("nodes", |d: &mut DeploymentHandle| deployment_nodes(&d.0).0);
        let m = mocks.clone();
        engine.register_fn("mock", move |task: &str, result: Dynamic| {
            m.lock().0.insert(task.to_string(), Mock::Succeed(to_json(&result)));
        });
        let m = mocks.clone();
        engine.register_fn("mock_failure", move |task: &str, message: &str| {
            m.lock().0.insert(task.to_string(), Mock::Fail(message.to_string()));
        });
        let m = mocks.clone();
        engine.register_fn("clear_mocks", move || m.lock().0.clear());
        engine.register_fn("assert", |ctx: NativeCallContext, ok: bool| {
            check(ok, "assertion failed".into(), ctx.call_position())
        });
        // The message may be any value (`run.error` is `()` when the run succeeded).
        engine.register_fn("assert", |ctx: NativeCallContext, ok: bool, message: Dynamic| {
            check(ok, format!("assertion failed: {}", display_value(&message)), ctx.call_position())
        });
        engine.register_fn("assert_eq", |ctx: NativeCallContext, actual: Dynamic, expected: Dynamic| {
            let (a, e) = (to_json(&actual), to_json(&expected));
            check(a == e, format!("assertion failed: expected {e}, got {a}"), ctx.call_position())
        });
        engine.register_fn(
            "assert_eq",
            |ctx: NativeCallContext, actual: Dynamic, expected: Dynamic, message: Dynamic| {
                let (a, e) = (to_json(&actual), to_json(&expected));
                let message = display_value(&message);
                check(a == e, format!("assertion failed: {message}: expected {e}, got {a}"), ctx.call_position())
            },
        );
    }))
}

fn check(ok: bool, message: String, at: Position) -> Result<(), Box<EvalAltResult>> {
    if ok {
        Ok(())
    } else {
        Err(Box::new(EvalAltResult::ErrorRuntime(message.into(), at)))
    }
}

/// A blueprint of the bundle (`tests/shop.yaml`, relative to its folder, and inside it: a test
/// reads nothing else), as a deployment of its own, named after the file.
fn throw_away(bundle: &Bundle, blueprint: &str) -> RhaiResult<Arc<Deployment>> {
    let fail = |why: String| -> Box<EvalAltResult> { format!("deployment(\"{blueprint}\"): {why}").into() };
    let path = bundle.dir.join(blueprint);
    let real = path.canonicalize().map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    if Path::new(blueprint).is_absolute() || !real.starts_with(&bundle.dir) {
        return Err(fail(
            "a test's blueprint is a file inside its bundle, named relative to the bundle's folder".into(),
        ));
    }
    let loaded = Blueprint::load(&real).map_err(|e| fail(e.to_string()))?;
    let name = real.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "blueprint".into());
    Ok(Arc::new(Deployment::new(&name, loaded)))
}

/// What `run_workflow`'s third argument names: a blueprint of the bundle (a deployment for
/// this one run), or a deployment from `deployment(FILE)` (kept from run to run).
fn deployment_of(bundle: &Bundle, on: Dynamic) -> RhaiResult<Arc<Deployment>> {
    if let Some(handle) = on.clone().try_cast::<DeploymentHandle>() {
        return Ok(handle.0);
    }
    match on.into_immutable_string() {
        Ok(blueprint) => throw_away(bundle, &blueprint),
        Err(kind) => {
            Err(format!("run_workflow: the deployment is a blueprint's file name or a deployment(FILE), not {kind}")
                .into())
        }
    }
}

/// Points `options` at workflow `name` of the bundle, else at the built-in one of that name
/// (`install`, ...), on `deployment` with the bundles its operations call (the bundle under
/// test first, not an installed copy).
fn prepare(
    bundle: &Bundle,
    name: &str,
    deployment: Option<Arc<Deployment>>,
    options: &mut RunOptions,
) -> Result<(), String> {
    let builtin_named = bundle.manifest.workflow(name).is_none() && builtin::WORKFLOWS.contains(&name);
    if builtin_named {
        if deployment.is_none() {
            return Err(format!(
                "`{name}` is a built-in workflow of the deployment model: give it a blueprint or deployment(FILE)"
            ));
        }
        builtin::bundle().and_then(|b| super::entry::prepare(&b, name, options)).map_err(|d| d.into_message())?;
        options.modules.push(bundle.module_root());
    } else {
        super::entry::prepare(bundle, name, options).map_err(|d| d.into_message())?;
    }
    if let Some(deployment) = deployment {
        let roots = plugins::resolve(&deployment.blueprint, &options.modules).map_err(|d| d.into_message())?;
        options.modules.extend(roots);
        options.deployment = Some(deployment);
    }
    Ok(())
}

/// Runs workflow `name` of the bundle (or a built-in one) as `rhaiflow run` would (parameters
/// validated, nothing stored), on `deployment` if given, and returns what a test asserts on:
/// `status` ("succeeded", "failed", "cancelled", "invalid"), `result`, `error`, `events`, and
/// for convenience `started` (task names in the order they started), `messages` (of workflow
/// and node events), `logs` and `deployment` (the one it ran on, or `()`).
fn run_workflow(bundle: &Bundle, name: &str, params: Map, deployment: Option<Arc<Deployment>>, mocks: &Mocks) -> Map {
    let given = match to_json(&Dynamic::from_map(params)) {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let mut outcome = Map::new();
    let shown = deployment.as_ref().map(|d| Dynamic::from(DeploymentHandle(d.clone()))).unwrap_or(Dynamic::UNIT);
    outcome.insert("deployment".into(), shown);
    let mut options = RunOptions::new(&bundle.dir);
    options.parameters = given;
    if let Err(message) = prepare(bundle, name, deployment, &mut options) {
        outcome.insert("status".into(), "invalid".into());
        outcome.insert("error".into(), message.into());
        for key in ["events", "started", "messages", "logs"] {
            outcome.insert(key.into(), Dynamic::from_array(Array::new()));
        }
        return outcome;
    }
    options.mocks = Arc::new(mocks.clone());
    let events: Arc<Mutex<Vec<Value>>> = Arc::default();
    let report = runner::run(&options, vec![Box::new(Collect(events.clone()))]);
    let events = std::mem::take(&mut *events.lock());
    let status = match report.status {
        runner::Status::Succeeded => "succeeded",
        runner::Status::Failed => "failed",
        runner::Status::Invalid => "invalid",
        runner::Status::Cancelled => "cancelled",
    };
    outcome.insert("status".into(), status.into());
    outcome.insert("result".into(), report.result.as_ref().map(from_json).unwrap_or(Dynamic::UNIT));
    outcome.insert("error".into(), report.diagnostic.map(|d| Dynamic::from(d.into_message())).unwrap_or(Dynamic::UNIT));
    let field = |kinds: &[&str], key: &str| -> Dynamic {
        let picked =
            events.iter().filter(|e| kinds.contains(&e["type"].as_str().unwrap_or(""))).map(|e| from_json(&e[key]));
        Dynamic::from_array(picked.collect())
    };
    outcome.insert("started".into(), field(&["task_started"], "task"));
    outcome.insert("messages".into(), field(&["workflow_event", "node_event"], "message"));
    outcome.insert("logs".into(), field(&["log"], "message"));
    outcome.insert("events".into(), Dynamic::from_array(events.iter().map(from_json).collect()));
    outcome
}

/// Keeps what a test prints (its `print` and `debug` log events).
struct Printed(Arc<Mutex<Vec<String>>>);

impl EventSink for Printed {
    fn accept(&mut self, event: &Event, _: &ExecutionLabel) {
        if let Payload::Log { message, .. } = &event.payload {
            self.0.lock().push(message.clone());
        }
    }
}

/// Keeps every event of a run as JSON.
struct Collect(Arc<Mutex<Vec<Value>>>);

impl EventSink for Collect {
    fn accept(&mut self, event: &Event, label: &ExecutionLabel) {
        let mut line = Vec::new();
        event.write_json(label, &mut line);
        if let Ok(value) = serde_json::from_slice(&line) {
            self.0.lock().push(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tests_of_a_new_bundle_pass() {
        let parent = tempfile::tempdir().unwrap();
        let dir = crate::bundle::scaffold::create(parent.path(), "acme").unwrap();
        let bundle = Bundle::load(&dir).unwrap();
        let results = run_tests(&bundle, |_| {});
        assert_eq!(results.len(), 2);
        for result in results {
            let message = result.report.diagnostic.map(|d| d.into_message());
            assert_eq!(result.report.status, crate::Status::Succeeded, "{}: {message:?}", result.file.display());
        }
    }
}
