//! Events: what happened in an execution, in the order it happened (contract section 2).
//!
//! Every part of the runtime reports through one `EventBus` (`bus`); it numbers events
//! (`seq`) under one lock so that the order of `seq` is the order of delivery to every sink
//! (the JSON-lines file, the store, the console). With a durable store the other sinks get an
//! event once the store committed it (`held`).

mod bus;
mod held;
mod log_line;
mod planned;
pub mod varint;

pub use log_line::log_line;
pub use planned::{write_json_fields as write_planned_graph_json, PlannedGraph};

use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value;

/// What kind of work a task does; shown as `kind` in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskKind {
    Script,
    Shell,
    Event,
    Noop,
    Sleep,
    Operation,
    Subgraph,
}

impl TaskKind {
    const ALL: [TaskKind; 7] = [
        TaskKind::Script,
        TaskKind::Shell,
        TaskKind::Event,
        TaskKind::Noop,
        TaskKind::Sleep,
        TaskKind::Operation,
        TaskKind::Subgraph,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Script => "script",
            TaskKind::Shell => "shell",
            TaskKind::Event => "event",
            TaskKind::Noop => "noop",
            TaskKind::Sleep => "sleep",
            TaskKind::Operation => "operation",
            TaskKind::Subgraph => "subgraph",
        }
    }

    /// `None` for a kind rhaiflow never writes (a damaged stored event).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s)
    }

    /// The kind as a number below 16, as the store keeps it in binary.
    pub fn code(self) -> u8 {
        self as u8
    }

    /// `None` for a number no kind has (a damaged stored event).
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code)).copied()
    }

    /// Tasks whose success must be on disk before it counts: before their dependents run and
    /// before it is announced (an operation, or an instance's state, changes an instance). A
    /// no-op, a sleep or an event changes nothing outside: running one again after a crash is
    /// harmless. A subgraph's success is its members'.
    pub fn has_effects(self) -> bool {
        matches!(self, TaskKind::Script | TaskKind::Shell | TaskKind::Operation)
    }
}

pub use bus::EventBus;

/// The error of a task a cancel stopped, as its `task_failed` event says it. The event's JSON
/// has no other mark of a cancel: `executions show`, which reads stored events, tells a
/// cancelled task from a failed one by it (the live sinks read `Failure::Cancelled`).
pub const CANCELLED: &str = "the execution was cancelled";

/// Which task an event is about.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    pub name: Arc<str>,
    /// The task's creation index: with its name, its stable identity within the execution,
    /// for the store and resume; not part of the event's JSON.
    pub serial: u64,
    pub task_id: u64,
    pub kind: TaskKind,
    pub current_retries: u32,
    pub total_retries: i64,
    /// The node instance an operation task runs on (deployment model).
    pub node_instance: Option<Arc<str>>,
}

#[cfg(test)]
impl TaskInfo {
    /// A first attempt (task id 1) of task `name`, for the tests of the bus and its queue.
    pub fn first_attempt(name: &str, kind: TaskKind) -> Self {
        TaskInfo {
            name: name.into(),
            serial: 1,
            task_id: 1,
            kind,
            current_retries: 0,
            total_retries: 0,
            node_instance: None,
        }
    }
}

#[derive(Clone, Debug)]
pub enum Payload {
    WorkflowStarted {
        resumed: bool,
        parameters: Value,
        /// Who started (or resumed) it, when a server's caller did: `token ID NAME (ROLE)`.
        by: Option<String>,
    },
    WorkflowSucceeded {
        result: Option<Value>,
    },
    WorkflowFailed {
        error: String,
    },
    WorkflowCancelled {
        /// Who asked for the cancel, when it is known (the HTTP API's caller, the CLI's user).
        by: Option<String>,
    },
    TaskStarted {
        task: TaskInfo,
    },
    TaskSucceeded {
        task: TaskInfo,
        result: Option<Value>,
        how: Success,
    },
    /// An attempt that did not end the task: another follows in `retry_after` seconds.
    TaskRescheduled {
        task: TaskInfo,
        error: String,
        retry_after: f64,
    },
    TaskFailed {
        task: TaskInfo,
        error: String,
        how: Failure,
    },
    /// After a graph failed, a succeeded task's `revert` closure starts / ended / threw.
    TaskReverting {
        task: TaskInfo,
    },
    TaskReverted {
        task: TaskInfo,
    },
    TaskRevertFailed {
        task: TaskInfo,
        error: String,
    },
    /// `send_event(msg)`: a `workflow_event`; `instance.send_event(msg)`: a `node_event`.
    WorkflowEvent {
        message: String,
        node_instance: Option<Arc<str>>,
    },
    Log {
        level: LogLevel,
        message: String,
    },
    /// A line a shell or exec task (or an operation's script) printed; `truncated` on the last
    /// one an attempt emits, where its output events were cut (`exec::output_lines`).
    TaskOutput {
        task: TaskInfo,
        stream: OutputStream,
        line: String,
        truncated: bool,
    },
    /// `execute()` starts a graph: its `graph_id`, `nodes` and `edges` (`graph::planned`),
    /// so that it can be drawn, also later; held in binary (a graph of 100,000 tasks is one
    /// buffer, not a tree of values), which the store keeps as it is and the JSON is written
    /// from.
    GraphPlanned {
        graph: Arc<PlannedGraph>,
    },
}

/// What a `task_succeeded` means for its task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Success {
    /// The task is done.
    Done,
    /// The attempt succeeded but `on_success` sent the task round again (a polling loop): its
    /// `task_rescheduled` follows, and the task is not done yet.
    Again,
}

/// How a task's failure counts, as its `task_failed` event says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// It failed: what depends on it does not run.
    Failed,
    /// A handler's `ignore()`/`cont()` let its dependents run anyway: `"ignored": true`.
    Ignored,
    /// A cancel stopped it (its error is `CANCELLED`): it did not fail, the execution ended.
    Cancelled,
}

/// Which of a process's streams a line of `task_output` came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputStream {
    Stdout,
    Stderr,
}

impl OutputStream {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputStream::Stdout => "stdout",
            OutputStream::Stderr => "stderr",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "debug" => Some(LogLevel::Debug),
            "info" => Some(LogLevel::Info),
            "warn" | "warning" => Some(LogLevel::Warn),
            "error" => Some(LogLevel::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// Every event type's name, by `Payload::type_code`: the store keeps an event's type as its
/// number (store format 7), so a number once given keeps its name.
pub const TYPE_NAMES: [&str; 16] = [
    "workflow_started",
    "workflow_succeeded",
    "workflow_failed",
    "workflow_cancelled",
    "task_started",
    "task_succeeded",
    "task_rescheduled",
    "task_failed",
    "task_reverting",
    "task_reverted",
    "task_revert_failed",
    "workflow_event",
    "node_event",
    "log",
    "task_output",
    "graph_planned",
];

/// `graph_planned`'s number in `TYPE_NAMES`.
pub const GRAPH_PLANNED: u8 = 15;

impl Payload {
    pub fn type_name(&self) -> &'static str {
        TYPE_NAMES[usize::from(self.type_code())]
    }

    /// The event's type as its index in `TYPE_NAMES`.
    pub fn type_code(&self) -> u8 {
        match self {
            Payload::WorkflowStarted { .. } => 0,
            Payload::WorkflowSucceeded { .. } => 1,
            Payload::WorkflowFailed { .. } => 2,
            Payload::WorkflowCancelled { .. } => 3,
            Payload::TaskStarted { .. } => 4,
            Payload::TaskSucceeded { .. } => 5,
            Payload::TaskRescheduled { .. } => 6,
            Payload::TaskFailed { .. } => 7,
            Payload::TaskReverting { .. } => 8,
            Payload::TaskReverted { .. } => 9,
            Payload::TaskRevertFailed { .. } => 10,
            Payload::WorkflowEvent { node_instance: None, .. } => 11,
            Payload::WorkflowEvent { node_instance: Some(_), .. } => 12,
            Payload::Log { .. } => 13,
            Payload::TaskOutput { .. } => 14,
            Payload::GraphPlanned { .. } => GRAPH_PLANNED,
        }
    }

    /// `workflow_succeeded`, `workflow_failed`, `workflow_cancelled`: the execution's last word.
    pub fn ends_workflow(&self) -> bool {
        matches!(
            self,
            Payload::WorkflowSucceeded { .. } | Payload::WorkflowFailed { .. } | Payload::WorkflowCancelled { .. }
        )
    }

    /// A success that counts only once the store recorded it: a task's with effects
    /// (`TaskKind::has_effects`, whose dependents wait for the commit), or the workflow's.
    pub fn is_success_to_record(&self) -> bool {
        match self {
            Payload::TaskSucceeded { task, .. } => task.kind.has_effects(),
            Payload::WorkflowSucceeded { .. } => true,
            _ => false,
        }
    }

    pub fn task(&self) -> Option<&TaskInfo> {
        match self {
            Payload::TaskStarted { task }
            | Payload::TaskSucceeded { task, .. }
            | Payload::TaskRescheduled { task, .. }
            | Payload::TaskFailed { task, .. }
            | Payload::TaskReverting { task }
            | Payload::TaskReverted { task }
            | Payload::TaskRevertFailed { task, .. }
            | Payload::TaskOutput { task, .. } => Some(task),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Event {
    pub seq: u64,
    pub ts: SystemTime,
    pub payload: Payload,
}

/// What every event of one execution shares.
#[derive(Clone, Debug)]
pub struct ExecutionLabel {
    pub execution_id: Arc<str>,
    pub workflow: Arc<str>,
}

#[cfg(test)]
impl Event {
    /// The event as a `Value`, built field by field: the reference `write_json` is tested
    /// against.
    pub fn to_json(&self, label: &ExecutionLabel) -> Value {
        let mut m = serde_json::Map::new();
        m.insert("type".into(), self.payload.type_name().into());
        m.insert("seq".into(), self.seq.into());
        m.insert("ts".into(), humantime::format_rfc3339_micros(self.ts).to_string().into());
        m.insert("execution_id".into(), (*label.execution_id).into());
        m.insert("workflow".into(), (*label.workflow).into());
        if let Some(t) = self.payload.task() {
            m.insert("task".into(), (*t.name).into());
            m.insert("task_id".into(), t.task_id.into());
            m.insert("kind".into(), t.kind.as_str().into());
            m.insert("current_retries".into(), t.current_retries.into());
            m.insert("total_retries".into(), t.total_retries.into());
            if let Some(instance) = &t.node_instance {
                m.insert("node_instance".into(), (**instance).into());
            }
        }
        match &self.payload {
            Payload::WorkflowStarted { resumed, parameters, by } => {
                m.insert("resumed".into(), (*resumed).into());
                m.insert("parameters".into(), parameters.clone());
                if let Some(by) = by {
                    m.insert("by".into(), by.as_str().into());
                }
            }
            Payload::WorkflowCancelled { by: Some(by) } => {
                m.insert("by".into(), by.as_str().into());
            }
            Payload::WorkflowSucceeded { result: Some(r) } | Payload::TaskSucceeded { result: Some(r), .. } => {
                m.insert("result".into(), r.clone());
            }
            Payload::WorkflowFailed { error } | Payload::TaskRevertFailed { error, .. } => {
                m.insert("error".into(), error.as_str().into());
            }
            Payload::TaskRescheduled { error, retry_after, .. } => {
                m.insert("error".into(), error.as_str().into());
                m.insert("retry_after".into(), (*retry_after).into());
            }
            Payload::TaskFailed { error, how, .. } => {
                m.insert("error".into(), error.as_str().into());
                if *how == Failure::Ignored {
                    m.insert("ignored".into(), true.into());
                }
            }
            Payload::WorkflowEvent { message, node_instance } => {
                m.insert("message".into(), message.as_str().into());
                if let Some(instance) = node_instance {
                    m.insert("node_instance".into(), (**instance).into());
                }
            }
            Payload::Log { level, message } => {
                m.insert("level".into(), level.as_str().into());
                m.insert("message".into(), message.as_str().into());
            }
            Payload::TaskOutput { stream, line, truncated, .. } => {
                m.insert("stream".into(), stream.as_str().into());
                m.insert("line".into(), line.as_str().into());
                if *truncated {
                    m.insert("truncated".into(), true.into());
                }
            }
            Payload::GraphPlanned { graph } => {
                let mut fields = b"{".to_vec();
                graph.write_json_fields(&mut fields);
                fields.push(b'}');
                if let Ok(Value::Object(fields)) = serde_json::from_slice(&fields) {
                    m.extend(fields);
                }
            }
            _ => {}
        }
        Value::Object(m)
    }
}

impl TaskInfo {
    /// `,"task":…,"task_id":…,"kind":…,"current_retries":…,"total_retries":…` and the node
    /// instance where there is one: the fields of every task event, after the label.
    pub fn write_json_fields(&self, out: &mut Vec<u8>) {
        TaskFields {
            name: &self.name,
            task_id: self.task_id,
            kind: self.kind.as_str(),
            current_retries: self.current_retries,
            total_retries: self.total_retries,
            node_instance: self.node_instance.as_deref(),
        }
        .write_json(out);
    }
}

/// A task event's task fields as text, as the store reads them back (a kind it does not know
/// is kept, for the reader to report).
#[derive(Clone, Copy)]
pub struct TaskFields<'a> {
    pub name: &'a str,
    pub task_id: u64,
    pub kind: &'a str,
    pub current_retries: u32,
    pub total_retries: i64,
    pub node_instance: Option<&'a str>,
}

impl TaskFields<'_> {
    /// See `TaskInfo::write_json_fields`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"task\":");
        push_json_string(out, self.name);
        out.extend_from_slice(b",\"task_id\":");
        push_integer(out, self.task_id as i64);
        out.extend_from_slice(b",\"kind\":");
        push_json_string(out, self.kind);
        out.extend_from_slice(b",\"current_retries\":");
        push_integer(out, i64::from(self.current_retries));
        out.extend_from_slice(b",\"total_retries\":");
        push_integer(out, self.total_retries);
        if let Some(instance) = self.node_instance {
            out.extend_from_slice(b",\"node_instance\":");
            push_json_string(out, instance);
        }
    }
}

impl ExecutionLabel {
    /// Appends `,"execution_id":…,"workflow":…`: the fields every event of the execution
    /// shares, which `Event::write_json_bare` leaves out.
    pub fn write_json_fields(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b",\"execution_id\":");
        push_json_string(out, &self.execution_id);
        out.extend_from_slice(b",\"workflow\":");
        push_json_string(out, &self.workflow);
    }
}

/// Appends `,"seq":…,"ts":"…"`, the fields after an event's type.
pub fn write_seq_and_ts(out: &mut Vec<u8>, seq: u64, ts: SystemTime) {
    out.extend_from_slice(b",\"seq\":");
    push_integer(out, seq as i64);
    out.extend_from_slice(b",\"ts\":\"");
    crate::timestamp::push_rfc3339_micros(out, ts);
    out.push(b'"');
}

/// Appends `s` as a JSON string, as serde_json writes it. Most strings (task names) need no
/// escape: they are copied between quotes at once (serde_json's own writer cost a task
/// ~360 instructions).
pub fn push_json_string(out: &mut Vec<u8>, s: &str) {
    // serde_json escapes exactly these: control characters, the quote and the backslash.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing a string into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

impl Event {
    /// Appends the event as one line of JSON (the shape of `to_json`, fields in a fixed
    /// order) without building a `Value` first: this runs for every event of every run.
    pub fn write_json(&self, label: &ExecutionLabel, out: &mut Vec<u8>) {
        self.write_head(out);
        label.write_json_fields(out);
        self.write_tail(out);
    }

    /// Appends the event's JSON without its `seq`, `ts`, label and task fields, and returns
    /// the offset, from where it started writing, at which they belong (`write_seq_and_ts`,
    /// the label's fields, `TaskInfo::write_json_fields`). The store keeps the sequence number,
    /// the time and the task in binary beside it: as text they were two thirds of a task
    /// event's bytes and most of the cost of writing it.
    pub fn write_json_bare(&self, out: &mut Vec<u8>) -> usize {
        let start = out.len();
        self.write_type(out);
        let head_at = out.len() - start;
        self.write_payload_fields(out);
        head_at
    }

    /// `{"type":"…"`: what comes before the sequence number.
    fn write_type(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(self.payload.type_name().as_bytes());
        out.push(b'"');
    }

    /// `{"type":…,"seq":…,"ts":…`: what comes before the label.
    fn write_head(&self, out: &mut Vec<u8>) {
        self.write_type(out);
        write_seq_and_ts(out, self.seq, self.ts);
    }

    /// The task's fields and the payload's, and the closing brace.
    fn write_tail(&self, out: &mut Vec<u8>) {
        if let Some(t) = self.payload.task() {
            t.write_json_fields(out);
        }
        self.write_payload_fields(out);
    }

    /// The payload's own fields and the closing brace.
    fn write_payload_fields(&self, out: &mut Vec<u8>) {
        self.write_own_fields(out);
        out.push(b'}');
    }

    /// The payload's own fields (`,"result":…`; nothing for most task events), without the
    /// closing brace.
    pub fn write_own_fields(&self, out: &mut Vec<u8>) {
        let string = push_json_string;
        let field = |out: &mut Vec<u8>, name: &str| {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
        };
        match &self.payload {
            Payload::WorkflowStarted { resumed, parameters, by } => {
                let _ = write!(out, ",\"resumed\":{resumed}");
                field(out, "parameters");
                let _ = serde_json::to_writer(&mut *out, parameters);
                if let Some(by) = by {
                    field(out, "by");
                    string(out, by);
                }
            }
            Payload::WorkflowCancelled { by: Some(by) } => {
                field(out, "by");
                string(out, by);
            }
            Payload::WorkflowSucceeded { result: Some(r) } | Payload::TaskSucceeded { result: Some(r), .. } => {
                field(out, "result");
                let _ = serde_json::to_writer(&mut *out, r);
            }
            Payload::WorkflowFailed { error } | Payload::TaskRevertFailed { error, .. } => {
                field(out, "error");
                string(out, error);
            }
            Payload::TaskRescheduled { error, retry_after, .. } => {
                field(out, "error");
                string(out, error);
                field(out, "retry_after");
                let _ = serde_json::to_writer(&mut *out, retry_after);
            }
            Payload::TaskFailed { error, how, .. } => {
                field(out, "error");
                string(out, error);
                if *how == Failure::Ignored {
                    out.extend_from_slice(b",\"ignored\":true");
                }
            }
            Payload::WorkflowEvent { message, node_instance } => {
                field(out, "message");
                string(out, message);
                if let Some(instance) = node_instance {
                    field(out, "node_instance");
                    string(out, instance);
                }
            }
            Payload::Log { level, message } => {
                field(out, "level");
                string(out, level.as_str());
                field(out, "message");
                string(out, message);
            }
            Payload::TaskOutput { stream, line, truncated, .. } => {
                field(out, "stream");
                string(out, stream.as_str());
                field(out, "line");
                string(out, line);
                if *truncated {
                    out.extend_from_slice(b",\"truncated\":true");
                }
            }
            Payload::GraphPlanned { graph } => {
                out.push(b',');
                graph.write_json_fields(out);
            }
            _ => {}
        }
    }
}

/// Appends `n` in decimal; cheaper than going through `fmt` for every number of every event
/// (itoa writes two digits a step: a digit at a time cost a task ~950 instructions).
pub fn push_integer(out: &mut Vec<u8>, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Something that receives every event, in order.
pub trait EventSink: Send {
    fn accept(&mut self, event: &Event, label: &ExecutionLabel);
    /// Whether this sink reads `graph_planned`, the whole graph written out at each
    /// `execute()`: a sink that keeps or passes on events does. When none does, the event is
    /// not made (for a no-op task, its share was ~1,400 instructions).
    fn reads_graphs(&self) -> bool {
        true
    }
    /// Whether the sink does anything with `task_started`: when none does, the event only
    /// takes its number (a quiet console's run, where it was a tenth of a no-op task).
    fn reads_task_starts(&self) -> bool {
        true
    }
    /// Whether the sink reads a success's `result`: when none does, the result is not turned
    /// into JSON (a quiet console's run: it only counts successes).
    fn reads_results(&self) -> bool {
        true
    }
    /// Whether the sink does more with `task_succeeded` than count it: when none does, a
    /// success only takes its number and is counted (`count_success`), and no event is made
    /// (a quiet console's run, where the event was ~190 instructions of a closure task).
    fn reads_successes(&self) -> bool {
        true
    }
    /// A success that no sink reads more of than its count (`reads_successes`).
    fn count_success(&mut self, _task: &TaskInfo, _how: Success) {}
    /// Called once when the execution ended.
    fn close(&mut self) {}
}

/// `--events-json PATH`: one JSON object a line, flushed as it happens so that another
/// program can follow the file.
pub struct JsonLinesSink {
    out: Box<dyn Write + Send>,
    line: Vec<u8>,
}

impl JsonLinesSink {
    pub fn new(out: Box<dyn Write + Send>) -> Self {
        JsonLinesSink { out, line: Vec::with_capacity(256) }
    }
}

impl EventSink for JsonLinesSink {
    fn accept(&mut self, event: &Event, label: &ExecutionLabel) {
        self.line.clear();
        event.write_json(label, &mut self.line);
        self.line.push(b'\n');
        // A reader that went away (a closed pipe) must not stop the workflow.
        let _ = self.out.write_all(&self.line);
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Strings and numbers are written by hand for speed: each must read exactly as
    // serde_json writes it, whatever it holds.
    #[test]
    fn strings_and_integers_are_written_as_serde_json_writes_them() {
        let strings = [
            "",
            "t1",
            "a \"quoted\" name",
            "back\\slash",
            "line\nbreak",
            "tab\t",
            "\u{1}\u{1f}",
            "\u{7f}",
            "é ☃ 🦀",
            " ",
        ];
        for s in strings {
            let mut out = Vec::new();
            push_json_string(&mut out, s);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(s).unwrap(), "{s:?}");
        }
        for n in [0, 1, -1, 9, 10, 99, 100, 12_345, -12_345, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_integer(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    fn label() -> ExecutionLabel {
        ExecutionLabel { execution_id: "e1".into(), workflow: "w \"quoted\"".into() }
    }

    fn task() -> TaskInfo {
        TaskInfo {
            name: "t\n1".into(),
            serial: 1,
            task_id: 7,
            kind: TaskKind::Shell,
            current_retries: 1,
            total_retries: -1,
            node_instance: Some("db_1".into()),
        }
    }

    #[test]
    fn integers_are_written_in_decimal() {
        for n in [0, 7, -1, 10, 1234567890, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_integer(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn written_json_is_the_same_object_as_the_value() {
        let payloads = vec![
            Payload::WorkflowStarted {
                resumed: true,
                parameters: serde_json::json!({"a": [1, "x"]}),
                by: Some("token 1a (operator)".into()),
            },
            Payload::WorkflowSucceeded { result: Some(serde_json::json!({"k": 1.5})) },
            Payload::WorkflowSucceeded { result: None },
            Payload::WorkflowFailed { error: "bad \"thing\"".into() },
            Payload::WorkflowCancelled { by: None },
            Payload::TaskStarted { task: task() },
            Payload::TaskSucceeded { task: task(), result: Some(serde_json::json!("out")), how: Success::Done },
            Payload::TaskSucceeded { task: task(), result: None, how: Success::Again },
            Payload::TaskRescheduled { task: task(), error: "later".into(), retry_after: 0.25 },
            Payload::TaskFailed { task: task(), error: "boom".into(), how: Failure::Ignored },
            Payload::TaskFailed { task: task(), error: "boom".into(), how: Failure::Failed },
            Payload::TaskFailed { task: task(), error: CANCELLED.into(), how: Failure::Cancelled },
            Payload::TaskReverting { task: task() },
            Payload::TaskReverted { task: task() },
            Payload::TaskRevertFailed { task: task(), error: "cleanup failed".into() },
            Payload::WorkflowEvent { message: "deployed".into(), node_instance: None },
            Payload::WorkflowEvent { message: "db is up".into(), node_instance: Some("db_1".into()) },
            Payload::Log { level: LogLevel::Warn, message: "careful".into() },
            Payload::TaskOutput {
                task: task(),
                stream: OutputStream::Stderr,
                line: "a \"line\"".into(),
                truncated: false,
            },
            Payload::TaskOutput { task: task(), stream: OutputStream::Stdout, line: "[cut]".into(), truncated: true },
        ];
        for (i, payload) in payloads.into_iter().enumerate() {
            let event = Event { seq: i as u64 + 1, ts: SystemTime::UNIX_EPOCH, payload };
            let mut written = Vec::new();
            event.write_json(&label(), &mut written);
            let parsed: Value = serde_json::from_slice(&written).unwrap();
            assert_eq!(parsed, event.to_json(&label()), "{}", String::from_utf8_lossy(&written));
        }
    }

    // The event format is a contract: how a failure or a success counts shows only as
    // `"ignored":true` on an ignored failure, never as a field of its own.
    #[test]
    fn task_events_are_written_in_the_contract_s_words() {
        let line = |payload| {
            let mut out = Vec::new();
            Event { seq: 3, ts: SystemTime::UNIX_EPOCH, payload }.write_json(&label(), &mut out);
            let text = String::from_utf8(out).unwrap();
            text[text.find(",\"task\"").unwrap()..].replace(r#","task":"t\n1","task_id":7,"kind":"shell","current_retries":1,"total_retries":-1,"node_instance":"db_1""#, "")
        };
        let failed = |how| Payload::TaskFailed { task: task(), error: "boom".into(), how };
        assert_eq!(line(failed(Failure::Failed)), r#","error":"boom"}"#);
        assert_eq!(line(failed(Failure::Cancelled)), r#","error":"boom"}"#);
        assert_eq!(line(failed(Failure::Ignored)), r#","error":"boom","ignored":true}"#);
        let succeeded = |how| Payload::TaskSucceeded { task: task(), result: Some(1.into()), how };
        assert_eq!(line(succeeded(Success::Done)), r#","result":1}"#);
        assert_eq!(line(succeeded(Success::Again)), r#","result":1}"#);
        let rescheduled = Payload::TaskRescheduled { task: task(), error: "later".into(), retry_after: 0.5 };
        assert_eq!(line(rescheduled), r#","error":"later","retry_after":0.5}"#);
    }

    #[test]
    fn seq_ts_label_and_task_spliced_into_bare_json_give_the_full_line() {
        let payloads = [
            Payload::WorkflowStarted { resumed: false, parameters: serde_json::json!({}), by: None },
            Payload::TaskSucceeded { task: task(), result: Some(serde_json::json!([1, 2])), how: Success::Again },
        ];
        for payload in payloads {
            let event = Event { seq: 12, ts: SystemTime::now(), payload };
            let mut full = Vec::new();
            event.write_json(&label(), &mut full);
            let mut bare = b"prefix".to_vec();
            let at = event.write_json_bare(&mut bare) + b"prefix".len();
            serde_json::from_slice::<Value>(&bare[b"prefix".len()..]).unwrap();
            let mut fields = Vec::new();
            write_seq_and_ts(&mut fields, event.seq, event.ts);
            label().write_json_fields(&mut fields);
            if let Some(task) = event.payload.task() {
                task.write_json_fields(&mut fields);
            }
            bare.splice(at..at, fields);
            assert_eq!(&bare[b"prefix".len()..], &full[..]);
        }
    }
}
