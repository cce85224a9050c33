//! The Rhai host: the engine with its limits and the host API, compiling scripts, and
//! running closures for the executor.

pub mod api;
mod builtins;
pub mod compile;
mod concat;
pub mod diagnostics;
pub mod limits;
pub mod modules;
pub mod reference;
pub mod state;

use std::collections::HashMap;
use std::sync::Arc;

use rhai::{Dynamic, Engine, FnPtr, GlobalRuntimeState, Map, NativeCallContext, OptimizationLevel, Position, AST};

pub use diagnostics::HeldSources;
pub use limits::Limits;
pub use modules::{ModuleRoot, Modules};
pub use state::{RunRef, RunSettings, RunState};

use crate::events::{LogLevel, Payload};
use crate::exec::{CancelState, ScriptCalls};
use crate::task::TaskCell;
use crate::task::{ErrorKind, TaskError};

/// Builds the engine for one run: limits always on, the host API, `print`/`debug` as log
/// events, imports from the stdlib and the bundles in `roots`.
pub fn build_engine(run: &RunRef, limits: &Limits, roots: Vec<ModuleRoot>) -> Engine {
    let mut engine = plain_engine(limits);
    api::register(&mut engine, run);
    let held = run.upgrade().map(|r| r.module_sources.clone()).unwrap_or_default();
    let modules = Modules::new(&engine, roots, held);
    engine.set_module_resolver(modules);
    let r = run.clone();
    engine.on_print(move |text| log(&r, LogLevel::Info, text.to_string()));
    let r = run.clone();
    engine.on_debug(move |text, _, _| log(&r, LogLevel::Debug, unquote(text)));
    engine
}

/// The engine every run starts from, before the host API: its settings and its limits. The
/// floor program (`benches/floor.rs`) measures Rhai's own cost on this same engine.
pub fn plain_engine(limits: &Limits) -> Engine {
    let mut engine = Engine::new();
    // Compiled as written: `compile::compile` optimises a whole script once it has checked that
    // Rhai 1.27's optimiser will not break it (imported modules and the REPL's lines stay so).
    engine.set_optimization_level(OptimizationLevel::None);
    limits::install(&mut engine, limits);
    concat::register(&mut engine);
    // Rhai interns every string an interpolation or a `let` makes; once its filter of
    // one-time strings fills, each new one scans the 256 kept to evict one. Task names are
    // all different, so a loop building tasks paid for the scan and never shared a string.
    engine.set_max_strings_interned(0);
    engine
}

fn log(run: &RunRef, level: LogLevel, message: String) {
    if let Some(run) = run.upgrade() {
        run.env().bus.emit(Payload::Log { level, message });
    }
}

/// `debug("text")` hands over the value's debug form, quotes and all; a person wants the text.
fn unquote(text: &str) -> String {
    if text.len() >= 2 && text.starts_with('"') && text.ends_with('"') {
        if let Ok(s) = serde_json::from_str::<String>(text) {
            return s;
        }
    }
    text.to_string()
}

/// Declared parameter counts of the script's functions (closures included), by name.
pub fn function_arities(ast: &AST) -> HashMap<String, usize> {
    ast.iter_functions().map(|f| (f.name.to_string(), f.params.len())).collect()
}

/// What an operation function gets as `ctx`: its node and instance (for a relationship
/// operation, `source` and `target`, each with `node` and `instance`), the operation's name
/// and retry number, and the deployment's name.
fn operation_context(call: &crate::deploy::OperationCall, retry_number: u32) -> Dynamic {
    let d = &call.deployment;
    let end = |id: &str| -> Map {
        let mut m = Map::new();
        if let Some(model) = d.instance(id) {
            m.insert("node".into(), api::node_handle(d, model.node));
        }
        m.insert("instance".into(), api::instance_handle(d, id));
        m
    };
    // For a relationship operation, `ctx.node` and `ctx.instance` are the end it runs for.
    let mut ctx = end(call.runs_for());
    let mut operation = Map::new();
    operation.insert("name".into(), call.name.clone().into());
    operation.insert("retry_number".into(), (retry_number as i64).into());
    ctx.insert("operation".into(), operation.into());
    ctx.insert("deployment_id".into(), d.name.clone().into());
    if let Some((_, target, _)) = &call.relationship {
        ctx.insert("source".into(), end(&call.instance).into());
        ctx.insert("target".into(), end(target).into());
    }
    Dynamic::from_map(ctx)
}

/// Runs closures for the executor, with cancel and timeouts watching them.
pub struct ScriptBridge {
    engine: Arc<Engine>,
    /// A bundle workflow's module, where its closures are defined. They are called by name
    /// after the module's top level ran, so that they see the module's imports.
    module: Option<Arc<AST>>,
    cancel: Arc<CancelState>,
    /// The state a closure of the script is called from: the one `FnPtr::call` would make
    /// for each call (the engine's defaults, the script's functions), made once. Rhai only
    /// reads it: each call works on a copy of its own, as it did.
    closure_state: GlobalRuntimeState,
    /// The calls of bundle operation functions, compiled once each.
    operations: parking_lot::Mutex<HashMap<String, Arc<AST>>>,
}

impl ScriptBridge {
    /// Runs closures defined in `ast` (for a bundle workflow, in `module`) on `engine`.
    pub fn new(engine: Arc<Engine>, ast: &AST, module: Option<Arc<AST>>, cancel: Arc<CancelState>) -> Self {
        let mut closure_state = engine.new_global_runtime_state();
        closure_state.lib.push(ast.shared_lib().clone());
        ScriptBridge { engine, module, cancel, closure_state, operations: Default::default() }
    }

    fn call_closure(&self, closure: &FnPtr, args: Vec<Dynamic>) -> Result<Dynamic, Box<rhai::EvalAltResult>> {
        match &self.module {
            // What `FnPtr::call` does, from the state made once instead of a new one a call.
            None => {
                let context = NativeCallContext::new_with_all_fields(
                    &self.engine,
                    closure.fn_name(),
                    None,
                    &self.closure_state,
                    Position::NONE,
                );
                closure.call_raw(&context, None, args)
            }
            Some(module) => {
                // Captured variables are curried in front of the arguments, as FnPtr::call does.
                let all: Vec<Dynamic> = closure.curry().iter().cloned().chain(args).collect();
                let options = rhai::CallFnOptions::new().eval_ast(true);
                self.engine.call_fn_with_options(options, &mut rhai::Scope::new(), module, closure.fn_name(), all)
            }
        }
    }
}

/// A closure's or an operation's value as its task's result. One nested past the limit fails
/// the task before anything converts or stores it; never retried, as a retry returns the same.
fn task_result(value: Dynamic) -> Result<Dynamic, TaskError> {
    crate::value::check_nesting(&value, || "the task's result".into())
        .map_err(|e| TaskError::new(ErrorKind::NonRecoverable, e.to_string()))?;
    Ok(value)
}

impl ScriptCalls for ScriptBridge {
    fn call(&self, closure: &FnPtr, args: Vec<Dynamic>, timeout: Option<f64>) -> Result<Dynamic, TaskError> {
        match limits::evaluate(&self.cancel, timeout, || self.call_closure(closure, args)) {
            Ok(Ok(value)) => task_result(value),
            Ok(Err(err)) => Err(limits::task_error(&err, &self.engine)),
            Err(panicked) => Err(panicked.task_error("a closure")),
        }
    }

    fn task_handle(&self, task: &Arc<TaskCell>) -> Dynamic {
        Dynamic::from(api::TaskHandle(task.clone()))
    }

    fn call_operation(
        &self,
        call: &Arc<crate::deploy::OperationCall>,
        retry_number: u32,
        timeout: Option<f64>,
    ) -> Result<Dynamic, TaskError> {
        let Some(crate::deploy::Implementation::Function(path)) = call.operation.as_ref().map(|o| &o.implementation)
        else {
            return Ok(Dynamic::UNIT);
        };
        let crate::names::OperationPath { plugin, module, function } = path;
        let key = format!("{plugin}/{module}::{function}");
        let entry = {
            let mut entries = self.operations.lock();
            match entries.get(&key) {
                Some(ast) => ast.clone(),
                None => {
                    let text = format!(
                        "import \"{plugin}/{module}\" as operation_module;\noperation_module::{function}(ctx, inputs)"
                    );
                    let ast = Arc::new(self.engine.compile(text).map_err(|e| {
                        TaskError::new(ErrorKind::NonRecoverable, format!("this is a bug in rhaiflow: {e}"))
                    })?);
                    entries.insert(key, ast.clone());
                    ast
                }
            }
        };
        let mut scope = rhai::Scope::new();
        scope.push("ctx", operation_context(call, retry_number));
        scope.push("inputs", crate::value::from_json(&serde_json::Value::Object(call.inputs.clone())));
        match limits::evaluate(&self.cancel, timeout, || self.engine.eval_ast_with_scope::<Dynamic>(&mut scope, &entry))
        {
            Ok(Ok(value)) => task_result(value),
            Ok(Err(err)) => Err(limits::task_error(&err, &self.engine)),
            Err(panicked) => Err(panicked.task_error("an operation")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Interning made every new string of a loop scan the interner's 256 entries (a layered
    // graph named with `${}` built a third slower); the text of strings is the same without.
    #[test]
    fn the_engine_interns_no_strings() {
        let engine = plain_engine(&Limits::default());
        assert_eq!(engine.max_strings_interned(), 0);
        assert_eq!(engine.eval::<String>("let i = 3; let s = `t${i}_${i + 1}`; s").unwrap(), "t3_4");
    }

    // A closure is called from a state the bridge made once instead of through
    // `FnPtr::call`: what it returns, how it fails (the error's frames, `exit`, the call-depth
    // limit) and what it captured must be as `FnPtr::call` has them.
    #[test]
    fn a_closure_called_by_the_bridge_does_what_fn_ptr_call_does() {
        // Rhai's deep calls need more than a test thread's stack in a debug build.
        let checks = std::thread::Builder::new().stack_size(256 << 20).spawn(closures_called_both_ways).unwrap();
        checks.join().unwrap();
    }

    fn closures_called_both_ways() {
        let engine = Arc::new(plain_engine(&Limits::default()));
        let ast = engine
            .compile(
                r#"
                fn deep(n) { if n == 0 { 0 } else { 1 + deep(n - 1) } }
                let x = 40;
                let count = 0;
                [|| 1 + 1, || x + 2, || { count += 1; count }, || throw "boom", || exit(5),
                 || undefined_here(), |input| input, || deep(60), || deep(61), || deep(62),
                 || deep(63), Fn("deep").curry(3), Fn("to_string").curry(5)]
                "#,
            )
            .unwrap();
        let closures = engine.eval_ast::<rhai::Array>(&ast).unwrap();
        let bridge = ScriptBridge::new(engine.clone(), &ast, None, Arc::new(CancelState::default()));
        let ours = |closure: &FnPtr, args: Vec<Dynamic>| format!("{:?}", bridge.call_closure(closure, args));
        let theirs =
            |closure: &FnPtr, args: Vec<Dynamic>| format!("{:?}", closure.call::<Dynamic>(&engine, &ast, args));
        let closures: Vec<FnPtr> = closures.into_iter().map(|c| c.cast::<FnPtr>()).collect();
        for (i, closure) in closures.iter().enumerate() {
            match i {
                // The captured `count` is shared: each call, either way, sees the last one's.
                2 => assert_eq!(
                    [ours(closure, vec![]), theirs(closure, vec![]), ours(closure, vec![])],
                    ["Ok(1)", "Ok(2)", "Ok(3)"]
                ),
                6 => {
                    let input = || vec![Dynamic::from(7_i64)];
                    assert_eq!(ours(closure, input()), theirs(closure, input()));
                }
                _ => assert_eq!(ours(closure, vec![]), theirs(closure, vec![]), "closure {i}"),
            }
        }
        // The depth limit is met at the same depth (between the first and the last of these).
        assert!(ours(&closures[7], vec![]).starts_with("Ok"));
        assert!(ours(&closures[10], vec![]).contains("StackOverflow"));
    }

    #[test]
    fn every_stdlib_module_compiles_and_resolves() {
        let run = std::sync::Weak::new();
        let engine = build_engine(&run, &Limits::default(), Vec::new());
        let imported = engine.run(r#"import "std/flow" as flow;"#);
        assert!(imported.is_ok(), "{imported:?}");
    }
}
