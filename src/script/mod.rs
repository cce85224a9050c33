//! The Rhai host: the engine with its limits and the host API, compiling scripts, and
//! running closures for the executor.

pub mod api;
pub mod diagnostics;
pub mod limits;
pub mod modules;
pub mod state;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use rhai::{Dynamic, Engine, FnPtr, OptimizationLevel, AST};

pub use diagnostics::{ScriptDiagnostic, Source};
pub use limits::Limits;
pub use modules::{ModuleRoot, Modules};
pub use state::{RunRef, RunSettings, RunState};

use crate::events::{LogLevel, Payload};
use crate::exec::{CancelState, ErrorKind, ScriptCalls, TaskError};
use crate::graph::TaskCell;

/// Builds the engine for one run: limits always on, the host API, `print`/`debug` as log
/// events, imports from the stdlib and the bundles in `roots`.
pub fn build_engine(run: &RunRef, limits: &Limits, roots: Vec<ModuleRoot>) -> Engine {
    let mut engine = Engine::new();
    // Assigning to a field of a constant map panics inside Rhai when optimising (rhai 1.27).
    engine.set_optimization_level(OptimizationLevel::None);
    limits::install(&mut engine, limits);
    api::register(&mut engine, run);
    let modules = Modules::new(&engine, roots);
    engine.set_module_resolver(modules);
    let r = run.clone();
    engine.on_print(move |text| log(&r, LogLevel::Info, text.to_string()));
    let r = run.clone();
    engine.on_debug(move |text, _, _| log(&r, LogLevel::Debug, unquote(text)));
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

/// Runs closures for the executor, with cancel and timeouts watching them.
pub struct ScriptBridge {
    pub engine: Arc<Engine>,
    pub ast: Arc<AST>,
    /// A bundle workflow's module, where its closures are defined. They are called by name
    /// after the module's top level ran, so that they see the module's imports.
    pub module: Option<Arc<AST>>,
    pub cancel: Arc<CancelState>,
}

impl ScriptBridge {
    fn call_closure(&self, closure: &FnPtr, args: Vec<Dynamic>) -> Result<Dynamic, Box<rhai::EvalAltResult>> {
        match &self.module {
            None => closure.call::<Dynamic>(&self.engine, &self.ast, args),
            Some(module) => {
                // Captured variables are curried in front of the arguments, as FnPtr::call does.
                let all: Vec<Dynamic> = closure.curry().iter().cloned().chain(args).collect();
                let options = rhai::CallFnOptions::new().eval_ast(true);
                self.engine.call_fn_with_options(options, &mut rhai::Scope::new(), module, closure.fn_name(), all)
            }
        }
    }
}

impl ScriptCalls for ScriptBridge {
    fn call(&self, closure: &FnPtr, args: Vec<Dynamic>, timeout: Option<f64>) -> Result<Dynamic, TaskError> {
        limits::guarded(&self.cancel, timeout, || {
            match catch_unwind(AssertUnwindSafe(|| self.call_closure(closure, args))) {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(err)) => Err(TaskError::from_rhai(&err)),
                Err(_) => Err(TaskError::new(
                    ErrorKind::NonRecoverable,
                    "this is a bug in rhaiflow: the script engine panicked while running a closure; please report it with the script",
                )),
            }
        })
    }

    fn task_handle(&self, task: &Arc<TaskCell>) -> Dynamic {
        Dynamic::from(api::TaskHandle(task.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stdlib_module_compiles_and_resolves() {
        let run = std::sync::Weak::new();
        let engine = build_engine(&run, &Limits::default(), Vec::new());
        let imported = engine.run(r#"import "std/flow" as flow;"#);
        assert!(imported.is_ok(), "{imported:?}");
    }
}
