//! One REPL session: what persists from line to line (the scope with its variables, the
//! functions defined so far, the events) and the host that runs them (engine, executor,
//! event bus). A cancelled run leaves the session standing: the host is built anew and the
//! variables stay.

use std::sync::Arc;

use parking_lot::Mutex;
use rhai::{Dynamic, Engine, FnPtr, Scope, AST};
use serde_json::Value;

use crate::deploy::Deployment;
use crate::diagnostic::{Diagnostic, Source};
use crate::events::{Event, EventBus, EventSink, ExecutionLabel};
use crate::exec::{CancelState, ScriptCalls};
use crate::runner::{Globals, Host, HostBuilder};
use crate::script::api::GraphShared;
use crate::script::{self, Limits, ModuleRoot, RunSettings, ScriptBridge};
use crate::task::TaskCell;
use crate::task::TaskError;

/// Where events go: every one is kept (for `:events`), and shown by whichever console the
/// current evaluation set.
#[derive(Clone, Default)]
pub struct EventLog {
    pub events: Arc<Mutex<Vec<Value>>>,
    pub shown_by: Arc<Mutex<Option<Box<dyn EventSink>>>>,
}

impl EventSink for EventLog {
    fn accept(&mut self, event: &Event, label: &ExecutionLabel) {
        let mut line = Vec::new();
        event.write_json(label, &mut line);
        if let Ok(value) = serde_json::from_slice(&line) {
            self.events.lock().push(value);
        }
        if let Some(sink) = self.shown_by.lock().as_mut() {
            sink.accept(event, label);
        }
    }
}

/// Runs closures with the functions defined so far: the session's AST grows line by line.
struct GrowingBridge(Mutex<Arc<ScriptBridge>>);

impl ScriptCalls for GrowingBridge {
    fn call(&self, closure: &FnPtr, args: Vec<Dynamic>, timeout: Option<f64>) -> Result<Dynamic, TaskError> {
        let bridge = self.0.lock().clone();
        bridge.call(closure, args, timeout)
    }

    fn task_handle(&self, task: &Arc<TaskCell>) -> Dynamic {
        let bridge = self.0.lock().clone();
        bridge.task_handle(task)
    }

    fn call_operation(
        &self,
        call: &Arc<crate::deploy::OperationCall>,
        retry_number: u32,
        timeout: Option<f64>,
    ) -> Result<Dynamic, TaskError> {
        let bridge = self.0.lock().clone();
        bridge.call_operation(call, retry_number, timeout)
    }
}

/// What the session is set up with.
#[derive(Clone, Default)]
pub struct SessionSetup {
    pub deployment: Option<Arc<Deployment>>,
    pub modules: Vec<ModuleRoot>,
}

pub struct Session {
    setup: SessionSetup,
    host: LineHost,
    pub scope: Scope<'static>,
    /// Every function defined so far (closures included); no statements between lines.
    ast: AST,
    /// The `import "..." as name;` statements of earlier lines: they run again before each
    /// line, so that a module imported once stays in reach (the resolver keeps it loaded).
    imports: Vec<(String, String)>,
    pub log: EventLog,
    bus: Arc<EventBus>,
    /// Where `:events` starts: the first event of the last line or `:run` that ran tasks.
    pub last_run_from: usize,
    pub execution_id: String,
}

/// How a line ended.
pub enum Outcome {
    Value(Dynamic),
    Failed(Diagnostic),
}

impl Session {
    pub fn new(setup: SessionSetup) -> Result<Session, Diagnostic> {
        let execution_id = uuid::Uuid::new_v4().to_string();
        let log = EventLog::default();
        let label = ExecutionLabel { execution_id: Arc::from(execution_id.as_str()), workflow: Arc::from("repl") };
        let bus = Arc::new(EventBus::new(label, vec![Box::new(log.clone())]));
        let host = LineHost::new(&setup, &bus)?;
        let mut session = Session {
            setup,
            host,
            scope: Scope::new(),
            ast: AST::empty(),
            imports: Vec::new(),
            log,
            bus,
            last_run_from: 0,
            execution_id,
        };
        session.push_context();
        Ok(session)
    }

    fn push_context(&mut self) {
        let globals = Globals {
            execution_id: &self.execution_id,
            workflow: "repl",
            parameters: &Value::Object(Default::default()),
            resumed: false,
            deployment: self.setup.deployment.as_ref(),
        };
        globals.push(&mut self.scope);
    }

    pub fn engine(&self) -> &Engine {
        &self.host.engine
    }

    /// Compiles and runs `text` (named `name` in diagnostics) in the session's scope.
    pub fn eval(&mut self, name: &str, text: &str) -> Outcome {
        let source = Source { name: name.to_string(), text: Arc::from(text) };
        let line = match self.host.engine.compile_with_scope(&self.scope, text) {
            Ok(ast) => ast,
            Err(e) => return Outcome::Failed(Diagnostic::compile(&e, &source)),
        };
        self.host.run_state.add_arity(script::function_arities(&line));
        self.host.run_state.settle_standard_tasks();
        self.ast += line;
        let ast = Arc::new(self.ast.clone());
        *self.host.bridge.0.lock() = Arc::new(self.host.script_bridge(&ast, None));
        let imports: String = self.imports.iter().map(|(_, statement)| format!("{statement}\n")).collect();
        let run = match self.host.engine.compile(&imports) {
            Ok(imports) => imports.merge(&ast),
            Err(_) => (*ast).clone(),
        };
        let outcome = self.guarded(|engine, scope| engine.eval_ast_with_scope::<Dynamic>(scope, &run));
        self.ast.clear_statements();
        if matches!(outcome, Ok(Ok(_))) {
            for (alias, statement) in import_statements(text) {
                self.imports.retain(|(a, _)| *a != alias);
                self.imports.push((alias, statement));
            }
        }
        match outcome {
            Ok(Ok(value)) => Outcome::Value(value),
            Ok(Err(err)) => Outcome::Failed(Diagnostic::runtime(&err, &source, &self.host.run_state.module_sources)),
            Err(d) => Outcome::Failed(d),
        }
    }

    /// Runs `f` with cancel watching, catching a panic inside the engine; a cancel rebuilds
    /// the host so that the next line starts clean.
    fn guarded(
        &mut self,
        f: impl FnOnce(&Engine, &mut Scope<'static>) -> Result<Dynamic, Box<rhai::EvalAltResult>>,
    ) -> Result<Result<Dynamic, Box<rhai::EvalAltResult>>, Diagnostic> {
        let engine = self.host.engine.clone();
        let scope = &mut self.scope;
        let outcome = script::limits::evaluate(&self.host.cancel, None, || f(&engine, scope));
        if self.host.cancel.is_requested() {
            self.rebuild_host();
        }
        outcome.map_err(|panicked| panicked.diagnostic("this line (the session goes on)"))
    }

    fn rebuild_host(&mut self) {
        if let Ok(host) = LineHost::new(&self.setup, &self.bus) {
            host.run_state.add_arity(script::function_arities(&self.ast));
            self.host = host;
        }
    }

    /// The graph `graph_mode()` made last, if any.
    pub fn current_graph(&self) -> Option<Arc<GraphShared>> {
        self.host.run_state.graphs.lock().last().cloned()
    }

    /// Executes the current graph (as `g.execute()` would).
    pub fn run_graph(&mut self) -> Option<Outcome> {
        let graph = self.current_graph()?;
        self.scope.push("__repl_graph", crate::script::api::GraphHandle(graph));
        let source = Source { name: ":run".into(), text: Arc::from("__repl_graph.execute()") };
        let outcome = self.guarded(|engine, scope| engine.eval_with_scope::<Dynamic>(scope, "__repl_graph.execute()"));
        let _ = self.scope.remove::<Dynamic>("__repl_graph");
        Some(match outcome {
            Ok(Ok(value)) => Outcome::Value(value),
            Ok(Err(err)) => {
                // The tasks were defined on earlier lines: a snippet of `:run` would mislead.
                let mut d = Diagnostic::runtime(&err, &source, &self.host.run_state.module_sources);
                d.labels.clear();
                d.source = None;
                Outcome::Failed(d)
            }
            Err(d) => Outcome::Failed(d),
        })
    }

    pub fn cancel(&self) -> Arc<CancelState> {
        self.host.cancel.clone()
    }

    /// Names of the session's variables, for completion.
    pub fn variables(&self) -> Vec<String> {
        self.scope.iter().map(|(name, _, _)| name.to_string()).filter(|n| !n.starts_with("__")).collect()
    }

    /// Names of the functions defined so far, for completion.
    pub fn functions(&self) -> Vec<String> {
        self.ast.iter_functions().map(|f| f.name.to_string()).filter(|n| !n.starts_with("anon$")).collect()
    }
}

/// The part of a session that a cancel throws away: the host as `run` builds it, with the
/// session's deployment and bundles, whose closures run through a bridge that grows.
struct LineHost {
    host: Host,
    bridge: Arc<GrowingBridge>,
}

impl LineHost {
    fn new(setup: &SessionSetup, bus: &Arc<EventBus>) -> Result<LineHost, Diagnostic> {
        let host = HostBuilder::new(RunSettings {
            parameters: rhai::Map::new(),
            task_retries: 0,
            retry_interval: 1.0,
            dry_run: false,
            max_tasks: Limits::default().max_tasks,
            deployment: setup.deployment.clone(),
        })
        .modules(setup.modules.clone())
        .build()?;
        let first = host.script_bridge(&AST::empty(), None);
        let bridge = Arc::new(GrowingBridge(Mutex::new(Arc::new(first))));
        host.connect(bus.clone(), bridge.clone(), None, |_| {});
        Ok(LineHost { host, bridge })
    }
}

impl std::ops::Deref for LineHost {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.host
    }
}

/// The `import "path" as name;` statements of a line, with their names.
fn import_statements(text: &str) -> Vec<(String, String)> {
    text.split(';')
        .filter_map(|part| {
            let statement = part.trim();
            let rest = statement.strip_prefix("import")?.trim_start();
            let (path, alias) = rest.split_once(" as ")?;
            let alias = alias.trim();
            let quoted = path.trim().starts_with('"') && path.trim().ends_with('"');
            let word = !alias.is_empty() && alias.chars().all(|c| c.is_alphanumeric() || c == '_');
            (quoted && word).then(|| (alias.to_string(), format!("{statement};")))
        })
        .collect()
}

impl Session {
    /// A value as the REPL shows it: strings, maps and arrays as JSON; a host value (a task,
    /// a graph, a node instance) as its `to_string` says.
    pub fn show(&self, value: &Dynamic) -> String {
        if value.is::<rhai::ImmutableString>() || value.is::<rhai::Map>() || value.is::<rhai::Array>() {
            return serde_json::to_string(&crate::value::to_json(value)).unwrap_or_else(|_| format!("{value:?}"));
        }
        let mut scope = Scope::new();
        scope.push("shown", value.clone());
        self.host.engine.eval_with_scope::<String>(&mut scope, "to_string(shown)").unwrap_or_else(|_| value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_statements_are_found_with_their_names() {
        let found = import_statements("import \"std/flow\" as flow; let x = 1; import \"demo/ops\" as ops");
        assert_eq!(
            found,
            [
                ("flow".to_string(), "import \"std/flow\" as flow;".to_string()),
                ("ops".to_string(), "import \"demo/ops\" as ops;".to_string())
            ]
        );
        assert!(import_statements("let important = 1;").is_empty());
    }
}
