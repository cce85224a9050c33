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
//! the usual diagnostic pointing at the line.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};
use serde_json::Value;

use super::Bundle;
use crate::events::{Event, EventSink, ExecutionLabel};
use crate::exec::{display_value, Mock, Mocks};
use crate::runner::{self, HostExtension, RunOptions, RunReport, StoreChoice};
use crate::value::{from_json, to_json};

/// One test file and how its run ended.
pub struct TestResult {
    pub file: PathBuf,
    pub report: RunReport,
}

/// The bundle's test files, in name order.
pub fn test_files(bundle: &Bundle) -> Vec<PathBuf> {
    super::check::rhai_files(&bundle.dir.join("tests"))
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
            let result = TestResult { report: runner::run(&options, Vec::new()), file };
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
        engine.register_fn("run_workflow", move |name: &str| run_workflow(&b, name, Map::new(), &m.lock()));
        let (b, m) = (bundle.clone(), mocks.clone());
        engine.register_fn("run_workflow", move |name: &str, params: Map| run_workflow(&b, name, params, &m.lock()));
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

/// Runs workflow `name` of the bundle as `rhaiflow run` would (parameters validated, nothing
/// stored) and returns what a test asserts on: `status` ("succeeded", "failed", "cancelled",
/// "invalid"), `result`, `error`, `events`, and for convenience `started` (task names in the
/// order they started), `messages` (of workflow and node events) and `logs`.
fn run_workflow(bundle: &Bundle, name: &str, params: Map, mocks: &Mocks) -> Map {
    let given = match to_json(&Dynamic::from_map(params)) {
        Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    let mut outcome = Map::new();
    let mut options = RunOptions::new(&bundle.dir);
    options.parameters = given;
    if let Err(d) = bundle.prepare(name, &mut options) {
        outcome.insert("status".into(), "invalid".into());
        outcome.insert("error".into(), d.into_message().into());
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
