//! What the store holds, as plain values.

use serde_json::Value;

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

    /// `None` for a status rhaiflow never writes (a damaged row).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
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

/// Builds task states from a task's events, in `seq` order.
#[derive(Default)]
pub struct TaskFold {
    tasks: Vec<StoredTask>,
    index: std::collections::HashMap<String, usize>,
}

impl TaskFold {
    /// Applies the event `body` (its JSON) of the task created `serial`-th. An event that does
    /// not read as a task event is damage (the message says why): skipped, it would leave
    /// the task looking as if it never got that far, and a resume would run it again.
    pub fn apply(&mut self, serial: u64, body: &str) -> Result<(), String> {
        let event = serde_json::from_str::<Value>(body).map_err(|e| format!("does not read as JSON ({e})"))?;
        let field =
            |k: &str| event.get(k).and_then(Value::as_str).ok_or_else(|| format!("is a task event without `{k}`"));
        let (kind, name, task_kind) = (field("type")?, field("task")?, field("kind")?);
        let text = |k: &str| event.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let key = format!("{serial}:{name}");
        let at = *self.index.entry(key.clone()).or_insert_with(|| {
            self.tasks.push(StoredTask {
                key,
                name: name.to_string(),
                kind: task_kind.to_string(),
                state: String::new(),
                attempts: 0,
                current_retries: 0,
                result: None,
                error: None,
            });
            self.tasks.len() - 1
        });
        let task = &mut self.tasks[at];
        task.current_retries = event
            .get("current_retries")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or("is a task event without `current_retries`")?;
        match kind {
            "task_started" => {
                task.state = "started".into();
                task.attempts += 1;
                task.error = None;
            }
            "task_succeeded" => {
                task.state = "succeeded".into();
                task.result = event.get("result").cloned();
            }
            "task_rescheduled" => {
                task.state = "rescheduled".into();
                task.error = Some(text("error"));
            }
            "task_reverted" => task.state = "reverted".into(),
            "task_revert_failed" => {
                task.state = "revert_failed".into();
                task.error = Some(text("error"));
            }
            "task_failed" => {
                let ignored = event.get("ignored").and_then(Value::as_bool).unwrap_or(false);
                task.state = if ignored { "ignored" } else { "failed" }.into();
                task.error = Some(text("error"));
            }
            _ => {}
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
