//! What the store holds, as plain values.

use serde_json::Value;

use crate::events::{Event, Payload};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl ExecutionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Running => "running",
            ExecutionStatus::Succeeded => "succeeded",
            ExecutionStatus::Failed => "failed",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "succeeded" => ExecutionStatus::Succeeded,
            "failed" => ExecutionStatus::Failed,
            "cancelled" => ExecutionStatus::Cancelled,
            _ => ExecutionStatus::Running,
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
    /// The process running it (to tell a crashed execution from a running one).
    pub pid: u32,
    pub resumes: u32,
    pub tasks_total: u64,
    pub tasks_done: u64,
    pub last_seq: u64,
}

impl ExecutionRecord {
    /// `running` with its process gone means it crashed.
    pub fn crashed(&self) -> bool {
        self.status == ExecutionStatus::Running && !process_alive(self.pid)
    }

    pub fn shown_status(&self) -> &'static str {
        if self.crashed() {
            "crashed"
        } else {
            self.status.as_str()
        }
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

/// A task's state as one event implies it.
#[derive(Clone, Debug)]
pub struct TaskRow {
    pub key: String,
    pub name: String,
    pub kind: &'static str,
    pub state: &'static str,
    /// 1 for `task_started`, else 0: added to the stored count.
    pub attempt: u32,
    pub current_retries: u32,
    pub result: Option<String>,
    pub error: Option<String>,
}

impl TaskRow {
    pub fn from_event(event: &Event) -> Option<TaskRow> {
        let info = event.payload.task()?;
        let (state, attempt, result, error) = match &event.payload {
            Payload::TaskStarted(_) => ("started", 1, None, None),
            Payload::TaskSucceeded(_, result) => ("succeeded", 0, result.as_ref().map(Value::to_string), None),
            Payload::TaskRescheduled(_, error, _) => ("rescheduled", 0, None, Some(error.clone())),
            Payload::TaskFailed(_, error, true) => ("ignored", 0, None, Some(error.clone())),
            Payload::TaskFailed(_, error, false) => ("failed", 0, None, Some(error.clone())),
            _ => return None,
        };
        Some(TaskRow {
            key: info.key.to_string(),
            name: info.name.to_string(),
            kind: info.kind.as_str(),
            state,
            attempt,
            current_retries: info.current_retries,
            result,
            error,
        })
    }
}

/// A task as the store has it.
#[derive(Clone, Debug)]
pub struct StoredTask {
    pub key: String,
    pub name: String,
    pub kind: String,
    pub state: String,
    pub attempts: u32,
    pub current_retries: u32,
    pub result: Option<Value>,
    pub error: Option<String>,
}

impl StoredTask {
    /// The creation index in the key `"<index>:<name>"`.
    pub fn index(&self) -> Option<u64> {
        self.key.split_once(':').and_then(|(i, _)| i.parse().ok())
    }
}
