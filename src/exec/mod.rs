//! The executor: runs tasks and graphs on tokio, judges each attempt (retries, handlers),
//! honours cancel, and reports everything as events.
//!
//! It never calls up into the script layer directly: Rhai closures and handlers are run
//! through the `ScriptCalls` the script host hands it.

mod attempt;
mod cancel;
mod direct_closure;
mod ending;
pub mod left_behind;
mod operation;
mod output_lines;
mod output_tail;
pub mod process;
pub mod remote;
mod replay;
mod runtime_file;
mod scheduler;
mod script_pool;
mod spawn;
mod spawned;
mod verdict;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use rhai::{Dynamic, FnPtr};
use tokio::sync::Semaphore;

pub use attempt::{continue_task, run_task, TaskOutcome};
pub use cancel::CancelState;
pub use replay::{Replay, ReplayedTask};
pub use scheduler::execute_plan;
pub use script_pool::{ScriptPool, SCRIPT_STACK_BYTES};
pub use verdict::HandlerVerdict;

use crate::events::EventBus;
use crate::store::{CommitState, StoreError};
use crate::task::{ErrorKind, TaskCell, TaskError};

/// How the executor runs script code (task closures, handlers) without knowing Rhai's engine.
pub trait ScriptCalls: Send + Sync {
    /// Calls `closure` with `args`; blocks the calling thread. `timeout` bounds its run time.
    fn call(&self, closure: &FnPtr, args: Vec<Dynamic>, timeout: Option<f64>) -> Result<Dynamic, TaskError>;
    /// The script-visible handle of a task, passed to handlers.
    fn task_handle(&self, task: &Arc<TaskCell>) -> Dynamic;
    /// Calls a bundle's operation function `fn op(ctx, inputs)`; blocks the calling thread.
    fn call_operation(
        &self,
        call: &Arc<crate::deploy::OperationCall>,
        retry_number: u32,
        timeout: Option<f64>,
    ) -> Result<Dynamic, TaskError> {
        let _ = (call, retry_number, timeout);
        Err(TaskError::new(ErrorKind::NonRecoverable, "this host runs no operation functions"))
    }
}

/// Canned outcomes for tasks, by task name, that `bundle test` scripts set up: a mocked task
/// does not run its action (no command, no closure, no operation), it just ends this way.
#[derive(Clone, Debug, Default)]
pub struct Mocks(pub std::collections::HashMap<String, Mock>);

#[derive(Clone, Debug)]
pub enum Mock {
    Succeed(serde_json::Value),
    /// Fails recoverably with this message (so retries and handlers are exercised too).
    Fail(String),
}

impl Mock {
    fn outcome(&self) -> Result<Dynamic, TaskError> {
        match self {
            Mock::Succeed(value) => Ok(crate::value::from_json(value)),
            Mock::Fail(message) => Err(TaskError::new(ErrorKind::Recoverable, message.clone())),
        }
    }
}

/// One script thread per core: Rhai calls are CPU work.
fn script_threads() -> usize {
    cores()
}

/// The cores this process may use, as the executor's workers and the script threads are
/// counted. Asked once: in a container the answer reads three cgroup files.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))
}

/// Everything the executor shares for one execution.
pub struct ExecEnv {
    pub runtime: tokio::runtime::Handle,
    pub bus: Arc<EventBus>,
    pub cancel: Arc<CancelState>,
    pub scripts: Arc<dyn ScriptCalls>,
    /// `--max-concurrency`: a permit per running attempt.
    pub limiter: Option<Arc<Semaphore>>,
    /// The threads that run closures and handlers.
    pub scripts_pool: ScriptPool,
    /// How far the store's commits got (or the write that failed); `None` when the store is
    /// in memory.
    pub committed: Option<tokio::sync::watch::Receiver<CommitState>>,
    /// On resume: what the execution did before.
    pub replay: Option<Arc<Replay>>,
    /// Told how many tasks are about to run (a graph's size, or 1 in standard mode).
    pub on_planned: Option<Box<dyn Fn(u64) + Send + Sync>>,
    /// Tasks that do not run but end as told (bundle tests).
    pub mocks: Arc<Mocks>,
    /// Where tasks with a `queue` go to run on workers (a PostgreSQL store).
    pub remote: Option<Arc<remote::SentTasks>>,
    next_task_id: AtomicU64,
    /// Set once a task or graph was handed over to run (see `anything_started`).
    scheduled: AtomicBool,
    /// The first bug in rhaiflow met while running (a panic): the run fails, whatever the
    /// script made of the task error it caused.
    bug: std::sync::OnceLock<TaskError>,
}

impl ExecEnv {
    pub fn new(
        runtime: tokio::runtime::Handle,
        bus: Arc<EventBus>,
        cancel: Arc<CancelState>,
        scripts: Arc<dyn ScriptCalls>,
        max_concurrency: Option<usize>,
    ) -> Self {
        ExecEnv {
            runtime,
            bus,
            cancel,
            scripts,
            limiter: max_concurrency.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            scripts_pool: ScriptPool::new(script_threads()),
            committed: None,
            replay: None,
            on_planned: None,
            mocks: Arc::default(),
            remote: None,
            next_task_id: AtomicU64::new(1),
            scheduled: AtomicBool::new(false),
            bug: std::sync::OnceLock::new(),
        }
    }

    /// The stored result of a task that succeeded before a resume.
    pub fn replayed(&self, cell: &TaskCell) -> Option<rhai::Dynamic> {
        self.replay.as_ref()?.result_of(cell)
    }

    /// Waits until the store has committed the event `seq`: a task's success must be on disk
    /// before anything that depends on it runs. `Err` when it never will be: a write failed,
    /// or the writer stopped.
    pub async fn committed(&self, seq: u64) -> Result<(), TaskError> {
        let Some(committed) = &self.committed else { return Ok(()) };
        let mut committed = committed.clone();
        let outcome = match committed.wait_for(|c| c.outcome(seq).is_some()).await {
            Ok(state) => state.outcome(seq).unwrap_or(Err(StoreError::WriterStopped)),
            Err(_) => Err(StoreError::WriterStopped),
        };
        outcome.map_err(|e| TaskError::unrecorded(&e))
    }

    pub fn planned(&self, tasks: u64) {
        // A task handed to the executor may start at any moment (standard mode spawns it).
        self.scheduled.store(true, Ordering::Relaxed);
        if let Some(on_planned) = &self.on_planned {
            on_planned(tasks);
        }
    }

    /// True once any attempt (or subgraph) has started in this process: from then on an
    /// error is no longer "invalid input, nothing ran".
    pub fn anything_started(&self) -> bool {
        self.scheduled.load(Ordering::Relaxed) || self.next_task_id.load(Ordering::Relaxed) > 1
    }

    /// Remembers a bug in rhaiflow met while running (the first one counts).
    pub fn record_bug(&self, error: &TaskError) {
        let _ = self.bug.set(error.clone());
    }

    /// The first bug in rhaiflow this run met, if any.
    pub fn bug(&self) -> Option<&TaskError> {
        self.bug.get()
    }

    /// A fresh attempt id, unique within the execution.
    pub fn next_task_id(&self) -> u64 {
        self.next_task_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The `task_id` of `cell`'s attempt about to begin: the one its graph's `graph_planned`
    /// told for its first attempt, else a new one.
    pub fn attempt_id(&self, cell: &TaskCell) -> u64 {
        cell.take_reserved_attempt().unwrap_or_else(|| self.next_task_id())
    }
}
