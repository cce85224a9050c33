//! What the store holds, as plain values.

use serde_json::Value;

use crate::events::{TaskKind, CANCELLED};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutionStatus {
    /// Submitted, waiting for a worker (a PostgreSQL store only).
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Queued => "queued",
            ExecutionStatus::Running => "running",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }

    /// `None` for a status rhaiflow never writes (a damaged row).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(ExecutionStatus::Queued),
            "running" => Some(ExecutionStatus::Running),
            "succeeded" => Some(ExecutionStatus::Succeeded),
            "failed" => Some(ExecutionStatus::Failed),
            "cancelled" => Some(ExecutionStatus::Cancelled),
            _ => None,
        }
    }
}

/// One execution: what ran, with what, and how it went.
#[derive(Clone, Debug)]
pub struct ExecutionRecord {
    pub id: String,
    pub workflow: String,
    /// The script's absolute path, to run it again on resume.
    pub script: String,
    pub parameters: Value,
    /// The run options that shape the graph (`task_retries`, `retry_interval`, ...).
    pub options: Value,
    pub status: ExecutionStatus,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: Option<String>,
    pub error: Option<String>,
    /// The process running it.
    pub pid: u32,
    /// How to tell whether what runs it is still there.
    pub runner: Runner,
    pub resumes: u32,
    pub tasks_total: u64,
    pub tasks_done: u64,
    pub last_seq: u64,
}

impl ExecutionRecord {
    /// An execution of workflow `w` run by this process, for tests.
    #[cfg(test)]
    pub fn of_this_process(id: &str, status: ExecutionStatus, started_at: &str) -> Self {
        ExecutionRecord {
            id: id.into(),
            workflow: "w".into(),
            script: "w.rhai".into(),
            parameters: serde_json::json!({}),
            options: serde_json::json!({}),
            status,
            started_at: started_at.into(),
            ended_at: None,
            error: None,
            pid: std::process::id(),
            runner: Runner::Process,
            resumes: 0,
            tasks_total: 0,
            tasks_done: 0,
            last_seq: 0,
        }
    }

    /// `running` with what ran it gone means it crashed.
    pub fn crashed(&self) -> bool {
        self.status == ExecutionStatus::Running
            && match &self.runner {
                Runner::Process => !process_alive(self.pid),
                Runner::Lease { expired, .. } => *expired,
            }
    }

    /// Taken by this process from the queue of submitted executions, to run now.
    pub fn taken_here(&self) -> bool {
        matches!(self.runner, Runner::Lease { mine: true, .. })
    }

    /// What runs it, as a person is told: `process 123`, or `process 123 on host-1` (a store
    /// that many machines share).
    pub fn runner_shown(&self) -> String {
        match &self.runner {
            Runner::Process => format!("process {}", self.pid),
            Runner::Lease { owner, .. } => match owner.rsplit_once(':') {
                Some((host, pid)) => format!("process {pid} on {host}"),
                None => owner.clone(),
            },
        }
    }

    /// Its status as a person is told it: `crashed` when `running` with its process gone.
    pub fn shown(&self) -> ShownStatus {
        match self.status {
            ExecutionStatus::Queued => ShownStatus::Queued,
            ExecutionStatus::Running if self.crashed() => ShownStatus::Crashed,
            ExecutionStatus::Running => ShownStatus::Running,
            ExecutionStatus::Succeeded => ShownStatus::Succeeded,
            ExecutionStatus::Failed => ShownStatus::Failed,
            ExecutionStatus::Cancelled => ShownStatus::Cancelled,
        }
    }

    pub fn shown_status(&self) -> &'static str {
        self.shown().as_str()
    }

    /// The deployment it ran on, as its options recorded it.
    pub fn deployment(&self) -> Option<&str> {
        self.options.get("deployment").and_then(Value::as_str)
    }

    /// True when it ran on a deployment kept in the store (not a throw-away one of a blueprint).
    pub fn deployment_stored(&self) -> bool {
        self.options.get("deployment_stored").and_then(Value::as_bool).unwrap_or(false)
    }

    /// When it ended, else when it started (an execution that crashed has no end).
    fn last_time(&self) -> &str {
        self.ended_at.as_deref().unwrap_or(&self.started_at)
    }

    /// Whether `prune` may remove it: finished (or crashed, when asked for by name), one of
    /// `statuses`, and over before `before`. A running one never is.
    pub fn prunable(&self, statuses: &[ShownStatus], before: &str) -> bool {
        let shown = self.shown();
        !matches!(shown, ShownStatus::Running | ShownStatus::Queued)
            && statuses.contains(&shown)
            && self.last_time() < before
    }
}

/// Who runs an execution, as far as its store can tell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Runner {
    /// A process of this machine (a SQLite store): alive while its pid is.
    Process,
    /// The holder of a lease (a PostgreSQL store, shared by many machines): alive while it
    /// renews the lease. `owner` names it (`host:pid`); `mine` when it is this process (a
    /// worker took it from the queue for itself).
    Lease { owner: String, expired: bool, mine: bool },
}

/// A column holding a JSON object (an execution's parameters or options); anything else is
/// damage (the message says what): read as a default, a damaged execution could be taken for
/// a crashed one and resumed.
pub fn json_object(text: &str, what: &str, id: &str) -> Result<Value, String> {
    match serde_json::from_str(text) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(_) => Err(format!("the {what} of execution {id} are not a JSON object")),
        Err(e) => Err(format!("the {what} of execution {id} do not read as JSON ({e})")),
    }
}

/// An execution's status as `executions list` shows it and `--status` picks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShownStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    /// Recorded as running, its process gone: resumable, not finished.
    Crashed,
}

impl ShownStatus {
    pub const ALL: [ShownStatus; 6] = [
        ShownStatus::Queued,
        ShownStatus::Running,
        ShownStatus::Succeeded,
        ShownStatus::Failed,
        ShownStatus::Cancelled,
        ShownStatus::Crashed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ShownStatus::Queued => "queued",
            ShownStatus::Running => "running",
            ShownStatus::Succeeded => "succeeded",
            ShownStatus::Failed => "failed",
            ShownStatus::Cancelled => "cancelled",
            ShownStatus::Crashed => "crashed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// The status the store holds for it (a crashed execution is recorded as running).
    fn stored(self) -> ExecutionStatus {
        match self {
            ShownStatus::Queued => ExecutionStatus::Queued,
            ShownStatus::Running | ShownStatus::Crashed => ExecutionStatus::Running,
            ShownStatus::Succeeded => ExecutionStatus::Succeeded,
            ShownStatus::Failed => ExecutionStatus::Failed,
            ShownStatus::Cancelled => ExecutionStatus::Cancelled,
        }
    }
}

/// Which executions `executions list` wants, newest first.
#[derive(Clone, Debug, Default)]
pub struct ExecutionQuery {
    /// Any of these; all when empty.
    pub statuses: Vec<ShownStatus>,
    pub workflow: Option<String>,
    /// Started at or after this time (RFC 3339 UTC with milliseconds, as the store writes it).
    pub since: Option<String>,
    /// Only executions listed after this one (older; a page's cursor): its start time and id.
    /// An execution removed since still marks the place by its start time.
    pub older_than: Option<(String, String)>,
    /// Only the execution an API request with this `Idempotency-Key` started.
    pub idempotency_key: Option<String>,
    pub limit: Option<usize>,
}

impl ExecutionQuery {
    /// The stored statuses to read; `None` for all.
    pub(super) fn stored_statuses(&self) -> Option<Vec<&'static str>> {
        let stored: Vec<&str> = self.statuses.iter().map(|s| s.stored().as_str()).collect();
        (!stored.is_empty()).then_some(stored)
    }

    /// Whether a row read with `stored_statuses` must still be told running from crashed.
    pub(super) fn needs_process_check(&self) -> bool {
        self.statuses.iter().any(|s| s.stored() == ExecutionStatus::Running)
    }

    pub(super) fn wants(&self, record: &ExecutionRecord) -> bool {
        self.statuses.is_empty() || self.statuses.contains(&record.shown())
    }
}

pub fn process_alive(pid: u32) -> bool {
    if pid == 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists.
    let r = unsafe { libc::kill(pid as i32, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// What a task's last event says of it, as `executions show` shows it and resume reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredState {
    Succeeded,
    Failed,
    /// Stopped by a cancel (its `task_failed` says `CANCELLED`).
    Cancelled,
    /// Failed, and a handler let its dependents run anyway.
    Ignored,
    Rescheduled,
    Started,
    Reverted,
    RevertFailed,
}

impl StoredState {
    /// In the order `executions show` counts them.
    pub const ALL: [StoredState; 8] = [
        StoredState::Succeeded,
        StoredState::Failed,
        StoredState::Cancelled,
        StoredState::Ignored,
        StoredState::Rescheduled,
        StoredState::Started,
        StoredState::Reverted,
        StoredState::RevertFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StoredState::Succeeded => "succeeded",
            StoredState::Failed => "failed",
            StoredState::Cancelled => "cancelled",
            StoredState::Ignored => "ignored",
            StoredState::Rescheduled => "rescheduled",
            StoredState::Started => "started",
            StoredState::Reverted => "reverted",
            StoredState::RevertFailed => "revert_failed",
        }
    }

    /// Done for good: a resume gives its stored result instead of running it again (an
    /// ignored failure counts as done, as it did for its dependents).
    pub fn is_done(self) -> bool {
        matches!(self, StoredState::Succeeded | StoredState::Ignored)
    }

    /// The state a task event of type `kind` leaves its task in; `Ok(None)` for one that
    /// changes nothing shown (a revert starting, a line of output).
    fn after(kind: &str, event: &Value) -> Result<Option<Self>, String> {
        Ok(Some(match kind {
            "task_started" => StoredState::Started,
            "task_succeeded" => StoredState::Succeeded,
            "task_rescheduled" => StoredState::Rescheduled,
            "task_reverted" => StoredState::Reverted,
            "task_revert_failed" => StoredState::RevertFailed,
            "task_failed" => {
                // A task a cancel stopped did not fail: it is shown as what happened to it.
                // Its event says so only by its error (the event format has no other mark).
                let ignored = event.get("ignored").and_then(Value::as_bool).unwrap_or(false);
                let cancelled = event.get("error").and_then(Value::as_str) == Some(CANCELLED);
                match (ignored, cancelled) {
                    (true, _) => StoredState::Ignored,
                    (false, true) => StoredState::Cancelled,
                    (false, false) => StoredState::Failed,
                }
            }
            "task_reverting" | "task_output" => return Ok(None),
            other => return Err(format!("is a task event of the type `{other}`, which rhaiflow never writes")),
        }))
    }
}

/// Builds task states from a task's events, in `seq` order.
#[derive(Default)]
pub struct TaskFold {
    tasks: Vec<StoredTask>,
    index: std::collections::HashMap<String, usize>,
}

impl TaskFold {
    /// Applies the event `body` (its JSON) of the task created `serial`-th. An event that does
    /// not read as a task event rhaiflow writes is damage (the message says why): skipped, it
    /// would leave the task looking as if it never got that far, and a resume would run it
    /// again.
    pub fn apply(&mut self, serial: u64, body: &str) -> Result<(), String> {
        let event = serde_json::from_str::<Value>(body).map_err(|e| format!("does not read as JSON ({e})"))?;
        let field =
            |k: &str| event.get(k).and_then(Value::as_str).ok_or_else(|| format!("is a task event without `{k}`"));
        let (kind, name, task_kind) = (field("type")?, field("task")?, field("kind")?);
        let task_kind = TaskKind::parse(task_kind)
            .ok_or_else(|| format!("is a task event of the kind `{task_kind}`, which rhaiflow never writes"))?;
        let current_retries = event
            .get("current_retries")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("is a task event without `current_retries`")?;
        let Some(state) = StoredState::after(kind, &event)? else { return Ok(()) };
        let key = format!("{serial}:{name}");
        let at = *self.index.entry(key.clone()).or_insert_with(|| {
            self.tasks.push(StoredTask {
                key,
                name: name.to_string(),
                kind: task_kind,
                state,
                attempts: 0,
                current_retries,
                result: None,
                error: None,
                node_instance: event.get("node_instance").and_then(Value::as_str).map(str::to_string),
            });
            self.tasks.len() - 1
        });
        let task = &mut self.tasks[at];
        task.current_retries = current_retries;
        task.state = state;
        let error = || Some(event.get("error").and_then(Value::as_str).unwrap_or("").to_string());
        match state {
            StoredState::Started => {
                task.attempts += 1;
                task.error = None;
            }
            StoredState::Succeeded => task.result = event.get("result").cloned(),
            StoredState::Rescheduled
            | StoredState::RevertFailed
            | StoredState::Failed
            | StoredState::Ignored
            | StoredState::Cancelled => task.error = error(),
            StoredState::Reverted => {}
        }
        Ok(())
    }

    /// The tasks in creation order.
    pub fn finish(mut self) -> Vec<StoredTask> {
        self.tasks.sort_by_key(|t| t.index());
        self.tasks
    }
}

/// A task as the store has it.
#[derive(Clone, Debug)]
pub struct StoredTask {
    pub key: String,
    pub name: String,
    pub kind: TaskKind,
    pub state: StoredState,
    pub attempts: u32,
    pub current_retries: u32,
    pub result: Option<Value>,
    pub error: Option<String>,
    /// The node instance it ran on (an operation, an instance's state or event).
    pub node_instance: Option<String>,
}

impl StoredTask {
    /// The creation index in the key `"<index>:<name>"`.
    pub fn index(&self) -> Option<u64> {
        self.key.split_once(':').and_then(|(i, _)| i.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(events: &[&str]) -> Result<Vec<StoredTask>, String> {
        let mut fold = TaskFold::default();
        for event in events {
            fold.apply(1, event)?;
        }
        Ok(fold.finish())
    }

    const STARTED: &str = r#"{"type":"task_started","task":"a","kind":"shell","current_retries":0}"#;

    #[test]
    fn a_task_s_events_fold_into_its_state() {
        let failed = r#"{"type":"task_failed","task":"a","kind":"shell","current_retries":0,"error":"boom"}"#;
        let tasks = fold(&[STARTED, failed]).unwrap();
        assert_eq!((tasks[0].kind, tasks[0].state, tasks[0].attempts), (TaskKind::Shell, StoredState::Failed, 1));
        assert_eq!(tasks[0].error.as_deref(), Some("boom"));
        let cancelled = failed.replace("boom", CANCELLED);
        assert_eq!(fold(&[STARTED, &cancelled]).unwrap()[0].state, StoredState::Cancelled);
        let ignored = failed.replace("}", r#","ignored":true}"#);
        assert_eq!(fold(&[STARTED, &ignored]).unwrap()[0].state, StoredState::Ignored);
    }

    // A stored kind or event type rhaiflow never writes was kept as text: `executions show`
    // listed the damaged task as if it were fine, and the unknown type left its state as it was.
    #[test]
    fn a_task_event_of_an_unknown_kind_or_type_is_damage() {
        let kind = STARTED.replace("shell", "shelx");
        assert_eq!(fold(&[&kind]).unwrap_err(), "is a task event of the kind `shelx`, which rhaiflow never writes");
        let done = STARTED.replace("task_started", "task_finished");
        let said = fold(&[STARTED, &done]).unwrap_err();
        assert_eq!(said, "is a task event of the type `task_finished`, which rhaiflow never writes");
    }
}
