//! The host a workflow script runs in, built one way for `run`, `resume` and the REPL: the
//! tokio runtime of the executor, the run state host functions share, the engine with its
//! limits and imports, and the cancel state; then the executor wired to an event bus and to
//! the bridge that runs closures. Dropping it lets go of the runtime without waiting for
//! closures a forced cancel stopped.

use std::sync::Arc;

use rhai::{Dynamic, Engine, Map, Scope, AST};
use serde_json::Value;

use super::HostExtension;
use crate::deploy::Deployment;
use crate::diagnostic::{Code, Diagnostic};
use crate::events::EventBus;
use crate::exec::{CancelState, ExecEnv, ScriptCalls};
use crate::script::{self, Limits, ModuleRoot, RunSettings, RunState, ScriptBridge};
use crate::value::from_json;

/// What the host of a run is built from.
pub struct HostBuilder {
    settings: RunSettings,
    limits: Limits,
    modules: Vec<ModuleRoot>,
    extension: Option<HostExtension>,
}

impl HostBuilder {
    pub fn new(settings: RunSettings) -> Self {
        HostBuilder { settings, limits: Limits::default(), modules: Vec::new(), extension: None }
    }

    /// The limits of the run's scripts (the defaults otherwise).
    pub fn limits(mut self, limits: &Limits) -> Self {
        self.limits = limits.clone();
        self
    }

    /// Bundles whose modules the scripts may import (besides the stdlib).
    pub fn modules(mut self, modules: Vec<ModuleRoot>) -> Self {
        self.modules = modules;
        self
    }

    /// More host functions (bundle tests add assertions).
    pub fn extension(mut self, extension: Option<HostExtension>) -> Self {
        self.extension = extension;
        self
    }

    /// Starts the runtime and builds the engine; the executor is wired later (`connect`),
    /// once what runs closures is known.
    pub fn build(self) -> Result<Host, Diagnostic> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(crate::exec::cores())
            .enable_all()
            .thread_name("rhaiflow-executor")
            .build()
            .map_err(|e| Diagnostic::plain(Code::Runtime, format!("cannot start the executor: {e}")))?;
        let run_state = RunState::new(self.settings);
        let mut engine = script::build_engine(&Arc::downgrade(&run_state), &self.limits, self.modules);
        if let Some(extend) = &self.extension {
            (extend.0)(&mut engine);
        }
        Ok(Host { runtime: Some(runtime), run_state, engine: Arc::new(engine), cancel: Arc::default() })
    }
}

/// A built host: what evaluating a script needs.
pub struct Host {
    /// Always there until the host is dropped.
    runtime: Option<tokio::runtime::Runtime>,
    pub run_state: Arc<RunState>,
    pub engine: Arc<Engine>,
    pub cancel: Arc<CancelState>,
}

impl Host {
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives as long as the host")
    }

    /// Runs closures defined in `ast` (for a bundle workflow, in `module`).
    pub fn script_bridge(&self, ast: &AST, module: Option<Arc<AST>>) -> ScriptBridge {
        ScriptBridge::new(self.engine.clone(), ast, module, self.cancel.clone())
    }

    /// Wires the executor: its events go to `bus`, its closures to `calls`; `configure` adds
    /// what this run has besides (the store's commits, a replay, mocks).
    pub fn connect(
        &self,
        bus: Arc<EventBus>,
        calls: Arc<dyn ScriptCalls>,
        max_concurrency: Option<usize>,
        configure: impl FnOnce(&mut ExecEnv),
    ) {
        let handle = self.runtime().handle().clone();
        let mut env = ExecEnv::new(handle, bus, self.cancel.clone(), calls, max_concurrency);
        configure(&mut env);
        self.run_state.set_env(Arc::new(env));
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        // Closures stopped by a forced cancel may still be unwinding: don't wait for them.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What a script sees of its run, as it sees it (section 3).
pub struct Globals<'a> {
    pub execution_id: &'a str,
    pub workflow: &'a str,
    pub parameters: &'a Value,
    pub resumed: bool,
    pub deployment: Option<&'a Arc<Deployment>>,
}

impl Globals<'_> {
    /// Pushes `params` and `ctx` into `scope`, as constants; the deployment model fills
    /// `ctx.nodes`.
    pub fn push(&self, scope: &mut Scope) {
        let mut ctx = Map::new();
        ctx.insert("execution_id".into(), self.execution_id.into());
        ctx.insert("workflow_id".into(), self.workflow.into());
        ctx.insert("parameters".into(), from_json(self.parameters));
        ctx.insert("resume".into(), self.resumed.into());
        let (nodes, instances) = self.deployment.map(script::api::deployment_nodes).unwrap_or_default();
        ctx.insert("nodes".into(), Dynamic::from_array(nodes));
        ctx.insert("node_instances".into(), Dynamic::from_array(instances));
        if let Some(d) = self.deployment {
            ctx.insert("deployment".into(), script::api::deployment_handle(d));
        }
        scope.push_constant("params", from_json(self.parameters));
        scope.push_constant("ctx", Dynamic::from_map(ctx));
    }
}
