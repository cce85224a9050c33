//! Where executions are recorded (contract section 7).
//!
//! `Store` is what the runner and the `executions` commands need from a backend. The
//! embedded default is SQLite (`sqlite.rs`): a file under `./.rhaiflow/`, written by one thread
//! per process in batched transactions (`writer.rs`). A PostgreSQL server (`postgres/`) keeps
//! the same contract for processes on many machines (`location.rs` tells which one a
//! `--store` names). `--ephemeral` runs use no store at all. Task states
//! are folded from the task events when read, so the two never disagree.

mod commits;
pub mod deployments;
mod event_rows;
mod location;
mod postgres;
mod records;
mod sqlite;
pub mod tokens;
mod write_queue;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;

pub use commits::{CommitListener, CommitState};
pub use deployments::DeploymentStore;
pub use location::StoreLocation;
pub use postgres::{PgStore, ShippedSource, TakenTask, Wake};
pub use records::{ExecutionQuery, ExecutionRecord, ExecutionStatus, Runner, ShownStatus, StoredState, StoredTask};
pub use sqlite::SqliteStore;
pub use tokens::{Role, TokenRecord, TokenSet, TokenStore};

use crate::diagnostic::{Code, Diagnostic};
use crate::events::{Event, EventSink, ExecutionLabel};

/// A failure of the store; made a diagnostic where it is shown (`From`, or
/// [`StoreError::into_deployments_diagnostic`] for the commands about deployments).
#[derive(Clone, Debug, thiserror::Error, miette::Diagnostic)]
pub enum StoreError {
    #[diagnostic(code(rhaiflow::store))]
    #[error("cannot open the execution store {path}: {message}")]
    Open { path: PathBuf, message: String },
    #[diagnostic(code(rhaiflow::store))]
    #[error("the execution store {path} is damaged or not a rhaiflow store: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[diagnostic(code(rhaiflow::store))]
    #[error(
        "the execution store {path} was written by another version of rhaiflow (store format {found}; this \
         rhaiflow reads format {reads}): use a new store (--store PATH), or move this one aside"
    )]
    OtherVersion { path: PathBuf, found: i64, reads: i64 },
    /// A SQLite database that some other program made (tables, no rhaiflow format).
    #[diagnostic(code(rhaiflow::store))]
    #[error(
        "{path} is not a rhaiflow store: it is a SQLite database with other tables; choose another store \
         (--store PATH)"
    )]
    Foreign { path: PathBuf },
    #[diagnostic(code(rhaiflow::store))]
    #[error("the execution store failed: {0}")]
    Database(String),
    /// A commit failed: what it held (and what ran on top of it) is not recorded.
    #[diagnostic(code(rhaiflow::store))]
    #[error("the execution store failed: {message}: {path} could not be written")]
    Write { path: PathBuf, message: String },
    /// The writer thread ended with writes still queued (it panicked).
    #[diagnostic(code(rhaiflow::store))]
    #[error(
        "this is a bug in rhaiflow: the execution store's writer stopped before it recorded everything; please \
         report it"
    )]
    WriterStopped,
    #[diagnostic(code(rhaiflow::store))]
    #[error("no execution `{0}` in this store")]
    NoSuchExecution(String),
    #[diagnostic(code(rhaiflow::store))]
    #[error("no deployment named `{0}` in this store (rhaiflow deployments list)")]
    NoSuchDeployment(String),
    /// Another execution is running on the deployment (a crashed one does not count).
    #[diagnostic(code(rhaiflow::deployment_busy))]
    #[error(
        "deployment `{deployment}` is busy: execution {execution} ({workflow}) is running on it, in process {pid}"
    )]
    DeploymentBusy { deployment: String, execution: String, workflow: String, pid: u32 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

impl From<StoreError> for Diagnostic {
    fn from(error: StoreError) -> Diagnostic {
        match &error {
            StoreError::DeploymentBusy { execution, .. } => {
                let help = format!(
                    "one execution at a time runs on a deployment: wait for it to end, or cancel it (rhaiflow \
                     executions cancel {execution})"
                );
                Diagnostic::plain(Code::DeploymentBusy, error.to_string()).with_help(help)
            }
            _ => Diagnostic::plain(Code::Store, error.to_string()),
        }
    }
}

impl StoreError {
    /// The diagnostic of a stored deployment that cannot be read or changed: every failure is
    /// `rhaiflow::deployments`, the code of the commands about deployments.
    pub fn into_deployments_diagnostic(self) -> Diagnostic {
        Diagnostic::plain(Code::Deployments, self.to_string())
    }
}

/// The record of executions: their parameters, events and task states.
pub trait Store: Send + Sync {
    /// Records an execution that starts (or starts again, on resume) in this process.
    fn begin(&self, record: &ExecutionRecord) -> Result<()> {
        self.begin_queued(record);
        self.flush()
    }
    /// `begin`, queued: the next `flush` commits it and says whether it could. Nothing of the
    /// execution may run before.
    fn begin_queued(&self, record: &ExecutionRecord);
    /// `begin` for an execution on the stored deployment `deployment`, refused with
    /// `StoreError::DeploymentBusy` while another execution runs on it (one whose process is
    /// gone, crashed, does not count). The check and the record are one transaction: of two
    /// processes starting on one deployment at once, one is refused.
    fn begin_on_deployment(&self, record: &ExecutionRecord, deployment: &str) -> Result<()>;
    /// Queues one event for writing. It cannot fail here, on the hot path: a write that fails
    /// later is reported through `committed` and `flush`.
    fn append(&self, label: &ExecutionLabel, event: &Event);
    /// `count` more tasks are about to run (for the done/total of `executions list`); queued
    /// as `append` is.
    fn planned(&self, execution_id: &str, count: u64);
    /// Records how the execution ended.
    fn end(&self, execution_id: &str, status: ExecutionStatus, error: Option<String>) -> Result<()>;
    /// Blocks until everything queued so far is committed; `Err` when any write of this store
    /// failed, then or before (what it held is not recorded).
    fn flush(&self) -> Result<()>;
    /// How far the writes got, as a watch: the highest event `seq` committed, or the write
    /// that failed. `None` when writes are durable at once (nothing to wait for).
    fn committed(&self) -> Option<tokio::sync::watch::Receiver<CommitState>>;
    /// Tells `listener` how far the writes got, now and after every change, on the writer's
    /// thread (the event bus announces events once they are committed). Never called when
    /// writes are durable at once.
    fn on_commit(&self, listener: CommitListener);
    /// The process is about to end and writes nothing more to this store: leave it quick to
    /// open for the next process. Everything was committed before (`flush`): this changes
    /// nothing a crash would keep, and it never waits for another process.
    fn leave(&self) {}

    /// The executions `query` picks, newest first.
    fn executions(&self, query: &ExecutionQuery) -> Result<Vec<ExecutionRecord>>;
    /// Removes, with their events, the executions with one of `statuses` that ended (a
    /// crashed one: started) before `before` (RFC 3339 UTC, as the store writes times); never
    /// a running one; with `only`, that execution alone. Returns what it removed.
    fn prune(&self, statuses: &[ShownStatus], before: &str, only: Option<&str>) -> Result<Vec<ExecutionRecord>>;
    fn execution(&self, id: &str) -> Result<ExecutionRecord>;
    fn tasks(&self, id: &str) -> Result<Vec<StoredTask>>;
    /// Events with `seq > after`, as their JSON lines, in order.
    fn events_after(&self, id: &str, after: u64) -> Result<Vec<(u64, String)>>;
    /// Asks a running execution to cancel (forced when `force`), for `by` when known (its
    /// `workflow_cancelled` names the last one who asked).
    fn request_cancel(&self, id: &str, force: bool, by: Option<&str>) -> Result<()>;
    /// The cancel asked for (0 = none, 1 = graceful, 2 = forced) and who asked.
    fn cancel_request(&self, id: &str) -> Result<(u8, Option<String>)>;
    /// Takes an execution over for this process if it is still as `seen` left it (same status
    /// and process): of two processes resuming one crashed execution, only one succeeds. One
    /// on a stored deployment another execution runs on is refused (`DeploymentBusy`).
    fn claim(&self, seen: &ExecutionRecord, pid: u32) -> Result<bool>;
    /// The script or bundle a submitted execution runs from (`run --submit`); `None` where
    /// nothing is submitted (SQLite).
    fn shipped_source(&self, _checksum: &str) -> Result<Option<ShippedSource>> {
        Ok(None)
    }
    /// Where tasks with a `queue` are sent to run on workers; `None` where no worker can take
    /// them (SQLite).
    fn remote_tasks(&self) -> Option<Arc<dyn RemoteTasks>> {
        None
    }
}

/// A process task sent to a queue, as the worker that takes it runs it: a command, or an
/// operation's script with its instance's runtime properties (which come back in the outcome).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RemoteJob {
    pub execution_id: String,
    /// The task's name, as the worker tells what it runs.
    pub task: String,
    pub argv: Vec<String>,
    /// How messages name the command (a shell task's command, cut short).
    pub display: String,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub timeout: Option<f64>,
    pub output_limit: Option<usize>,
    /// Nothing to run: the worker that takes it answers with its name (`noop(name, #{queue})`,
    /// a task that tells a worker listens on the queue).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nothing: bool,
    /// An operation's script: run with `sh` (its `argv` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// The runtime properties (a JSON object's text) the script reads and may rewrite in the
    /// file `RHAIFLOW_RUNTIME_PROPERTIES` names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_properties: Option<String>,
}

/// How a sent task settled.
#[derive(Clone, Debug, PartialEq)]
pub enum RemoteState {
    /// Its worker is gone (its lease ran out): send it again.
    Lost,
    /// Done: its outcome (JSON written by the worker that ran it).
    Done(serde_json::Value),
}

/// Tasks sent to workers through the store, from the execution's side.
pub trait RemoteTasks: Send + Sync {
    /// Sends each job to its queue, in one commit; returns their ids, in the same order.
    fn send(&self, jobs: &[(String, RemoteJob)]) -> Result<Vec<i64>>;
    /// Sends the job `id` again (its worker died).
    fn send_again(&self, id: i64) -> Result<()>;
    /// The tasks `execution_id` sent, up to the id `up_to`, that are done (their outcomes,
    /// which leave the store as they are read) or lost (their worker died): one look for all
    /// the tasks an execution waits for.
    fn take_settled(&self, execution_id: &str, up_to: i64) -> Result<Vec<(i64, RemoteState)>>;
    /// Asks the worker running it to stop it (kill its process group).
    fn cancel(&self, id: i64) -> Result<()>;
    /// Forgets them (nobody waits for them any more).
    fn forget(&self, ids: &[i64]) -> Result<()>;
}

/// Opens the store at `location`: SQLite's file, or a PostgreSQL server (migrated if needed).
pub fn open(location: &StoreLocation) -> Result<Arc<dyn Store>> {
    Ok(match location {
        StoreLocation::Sqlite(path) => Arc::new(SqliteStore::open(path)?),
        StoreLocation::Postgres(url) => Arc::new(PgStore::open(url)?),
    })
}

/// Feeds the event bus into a store.
pub struct StoreSink(pub Arc<dyn Store>);

impl EventSink for StoreSink {
    fn accept(&mut self, event: &Event, label: &ExecutionLabel) {
        self.0.append(label, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_deployment_is_its_own_code_with_what_to_do_and_the_rest_are_store_failures() {
        let busy = StoreError::DeploymentBusy {
            deployment: "web".into(),
            execution: "abc".into(),
            workflow: "install".into(),
            pid: 7,
        };
        let d = Diagnostic::from(busy.clone());
        assert_eq!(d.code, Code::DeploymentBusy);
        assert!(d.help.as_deref().unwrap_or_default().contains("rhaiflow executions cancel abc"));
        assert_eq!(busy.into_deployments_diagnostic().code, Code::Deployments);
        let missing = Diagnostic::from(StoreError::NoSuchExecution("x".into()));
        assert_eq!((missing.code, missing.message.as_str()), (Code::Store, "no execution `x` in this store"));
    }
}
