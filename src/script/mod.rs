//! The Rhai host: the engine with its limits and the host API, compiling scripts, and
//! running closures for the executor.

pub mod api;
pub mod diagnostics;
pub mod limits;
pub mod state;

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use rhai::{Dynamic, Engine, FnPtr, OptimizationLevel, AST};

pub use diagnostics::{ScriptDiagnostic, Source};
pub use limits::Limits;
pub use state::{RunRef, RunSettings, RunState};

use crate::events::{LogLevel, Payload};
use crate::exec::{CancelState, ErrorKind, ScriptCalls, TaskError};
use crate::graph::TaskCell;

/// Builds the engine for one run: limits always on, the host API, `print`/`debug` as log
/// events.
pub fn build_engine(run: &RunRef, limits: &Limits) -> Engine {
    let mut engine = Engine::new();
    // Assigning to a field of a constant map panics inside Rhai when optimising (rhai 1.27).
    engine.set_optimization_level(OptimizationLevel::None);
    limits::install(&mut engine, limits);
    api::register(&mut engine, run);
    engine.set_module_resolver(stdlib(&engine));
    let r = run.clone();
    engine.on_print(move |text| log(&r, LogLevel::Info, text.to_string()));
    let r = run.clone();
    engine.on_debug(move |text, _, _| log(&r, LogLevel::Debug, unquote(text)));
    engine
}

/// The modules scripts import as `"std/..."`, compiled with the host API in place. Only these
/// names resolve: scripts read no module files from disk.
fn stdlib(engine: &Engine) -> rhai::module_resolvers::StaticModuleResolver {
    let mut resolver = rhai::module_resolvers::StaticModuleResolver::new();
    for (name, source) in [("std/flow", include_str!("../../stdlib/flow.rhai"))] {
        let module = engine
            .compile(source)
            .map_err(|e| e.to_string())
            .and_then(|ast| rhai::Module::eval_ast_as_new(rhai::Scope::new(), &ast, engine).map_err(|e| e.to_string()));
        match module {
            Ok(module) => resolver.insert(name, module),
            // Covered by a unit test; if it ever happens, importing it says "not found".
            Err(e) => eprintln!("rhaiflow: this is a bug: the stdlib module {name} does not compile: {e}"),
        }
    }
    resolver
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
    pub cancel: Arc<CancelState>,
}

impl ScriptCalls for ScriptBridge {
    fn call(&self, closure: &FnPtr, args: Vec<Dynamic>, timeout: Option<f64>) -> Result<Dynamic, TaskError> {
        limits::guarded(&self.cancel, timeout, || {
            match catch_unwind(AssertUnwindSafe(|| closure.call::<Dynamic>(&self.engine, &self.ast, args))) {
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
        let engine = build_engine(&run, &Limits::default());
        let ast = engine.compile(r#"import "std/flow" as flow; flow::pipeline"#);
        assert!(ast.is_ok());
        let resolver = stdlib(&engine);
        assert!(resolver.contains_path("std/flow"));
    }
}
