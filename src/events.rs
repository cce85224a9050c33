//! Events: what happened in an execution, in the order it happened (contract section 2).
//!
//! Every part of the runtime reports through one `EventBus`; it numbers events (`seq`) under
//! one lock so that the order of `seq` is the order of delivery to every sink (the JSON-lines
//! file, the store, the console).

use std::io::Write;
use std::sync::Arc;
use std::time::SystemTime;

use parking_lot::Mutex;
use serde_json::Value;

use crate::graph::TaskKind;

/// Which task an event is about.
#[derive(Clone, Debug)]
pub struct TaskInfo {
    pub name: Arc<str>,
    /// The task's stable identity within the execution (`"<creation index>:<name>"`), for
    /// the store and resume; not part of the event's JSON.
    pub key: Arc<str>,
    pub task_id: u64,
    pub kind: TaskKind,
    pub current_retries: u32,
    pub total_retries: i64,
}

#[derive(Clone, Debug)]
pub enum Payload {
    WorkflowStarted {
        resumed: bool,
        parameters: Value,
    },
    WorkflowSucceeded {
        result: Option<Value>,
    },
    WorkflowFailed {
        error: String,
    },
    WorkflowCancelled,
    TaskStarted(TaskInfo),
    TaskSucceeded(TaskInfo, Option<Value>),
    TaskRescheduled(TaskInfo, String, f64),
    /// `ignored` is true when a handler's `ignore()`/`cont()` let the dependents run anyway.
    TaskFailed(TaskInfo, String, bool),
    WorkflowEvent {
        message: String,
    },
    Log {
        level: LogLevel,
        message: String,
    },
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

impl Payload {
    pub fn type_name(&self) -> &'static str {
        match self {
            Payload::WorkflowStarted { .. } => "workflow_started",
            Payload::WorkflowSucceeded { .. } => "workflow_succeeded",
            Payload::WorkflowFailed { .. } => "workflow_failed",
            Payload::WorkflowCancelled => "workflow_cancelled",
            Payload::TaskStarted(..) => "task_started",
            Payload::TaskSucceeded(..) => "task_succeeded",
            Payload::TaskRescheduled(..) => "task_rescheduled",
            Payload::TaskFailed(..) => "task_failed",
            Payload::WorkflowEvent { .. } => "workflow_event",
            Payload::Log { .. } => "log",
        }
    }

    pub fn task(&self) -> Option<&TaskInfo> {
        match self {
            Payload::TaskStarted(t)
            | Payload::TaskSucceeded(t, _)
            | Payload::TaskRescheduled(t, _, _)
            | Payload::TaskFailed(t, _, _) => Some(t),
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

impl Event {
    /// The event as one JSON object, the shape of section 2.
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
        }
        match &self.payload {
            Payload::WorkflowStarted { resumed, parameters } => {
                m.insert("resumed".into(), (*resumed).into());
                m.insert("parameters".into(), parameters.clone());
            }
            Payload::WorkflowSucceeded { result: Some(r) } | Payload::TaskSucceeded(_, Some(r)) => {
                m.insert("result".into(), r.clone());
            }
            Payload::WorkflowFailed { error } => {
                m.insert("error".into(), error.as_str().into());
            }
            Payload::TaskRescheduled(_, error, after) => {
                m.insert("error".into(), error.as_str().into());
                m.insert("retry_after".into(), (*after).into());
            }
            Payload::TaskFailed(_, error, ignored) => {
                m.insert("error".into(), error.as_str().into());
                if *ignored {
                    m.insert("ignored".into(), true.into());
                }
            }
            Payload::WorkflowEvent { message } => {
                m.insert("message".into(), message.as_str().into());
            }
            Payload::Log { level, message } => {
                m.insert("level".into(), level.as_str().into());
                m.insert("message".into(), message.as_str().into());
            }
            _ => {}
        }
        Value::Object(m)
    }
}

/// Something that receives every event, in order.
pub trait EventSink: Send {
    fn accept(&mut self, event: &Event, label: &ExecutionLabel);
    /// Called once when the execution ended.
    fn close(&mut self) {}
}

/// Numbers events and hands them to the sinks.
pub struct EventBus {
    label: ExecutionLabel,
    inner: Mutex<BusInner>,
}

struct BusInner {
    seq: u64,
    sinks: Vec<Box<dyn EventSink>>,
}

impl EventBus {
    pub fn new(label: ExecutionLabel, sinks: Vec<Box<dyn EventSink>>) -> Self {
        Self::continuing(label, sinks, 0)
    }

    /// A bus whose first event is `last_seq + 1` (a resumed execution goes on numbering).
    pub fn continuing(label: ExecutionLabel, sinks: Vec<Box<dyn EventSink>>, last_seq: u64) -> Self {
        EventBus { label, inner: Mutex::new(BusInner { seq: last_seq, sinks }) }
    }

    pub fn label(&self) -> &ExecutionLabel {
        &self.label
    }

    /// Delivers the event to every sink and returns its `seq`.
    pub fn emit(&self, payload: Payload) -> u64 {
        let mut inner = self.inner.lock();
        inner.seq += 1;
        let event = Event { seq: inner.seq, ts: SystemTime::now(), payload };
        for sink in inner.sinks.iter_mut() {
            sink.accept(&event, &self.label);
        }
        event.seq
    }

    pub fn close(&self) {
        for sink in self.inner.lock().sinks.iter_mut() {
            sink.close();
        }
    }
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
        // Serialising a `Value` we built cannot fail.
        let _ = serde_json::to_writer(&mut self.line, &event.to_json(label));
        self.line.push(b'\n');
        // A reader that went away (a closed pipe) must not stop the workflow.
        let _ = self.out.write_all(&self.line);
        let _ = self.out.flush();
    }
}
