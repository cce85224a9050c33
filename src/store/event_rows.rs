//! How the store keeps events: many to a row.
//!
//! Inserting a row costs SQLite a few thousand instructions, more than writing the event
//! itself. So the events of one execution that one commit writes go into one row (up to
//! `ROW_BYTES`), keyed by the `seq` of the row's last event: "the events after seq N" is still
//! one range of the table. An event is kept mostly in binary, and without the execution's id
//! and workflow (`execution_id`, `workflow`), which the execution's row holds; reading writes
//! its JSON back, so a reader gets exactly the line `--events-json` wrote.
//!
//! A row is a sequence of records, one per event (store format 7):
//! `seq` · the task's serial (its creation index) · the head byte · the type (its index in
//! `events::TYPE_NAMES`) · the time in µs since the epoch · the task's fields in binary
//! (`push_task`) · the length of the rest (LEB128) · the rest: the payload's own fields as JSON
//! (`,"result":…`; nothing for most task events), or a `graph_planned`'s graph in binary
//! (`PlannedGraph`). Numbers are LEB128, and `seq`, the serial and the time are differences
//! from the record before (`push_difference`; from 0 for a row's first). The head byte says
//! whether the event has a serial and task fields, and whether those are the last task
//! record's (a task's end after its start): then they are not written again. A chain's no-op
//! task is two records of ~20 and ~6 bytes; in format 6 they were ~60 bytes each, mostly the
//! JSON of the type, and writing them cost SQLite ~5 instructions a byte.
//!
//! Rows of older formats read as they did: in format 6 (the head's top bit set, its 0x20 bit
//! clear) `seq` and the serial + 1 were whole numbers, the type and the payload's fields a
//! JSON text with the head's low bits saying where `seq`, `ts`, the label and the task's
//! fields go; before format 6 (the head's top bit clear) the JSON held all but the label,
//! which went at the offset the head gave.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::events::varint::{add_difference, push_difference, push_varint, read_difference};
use crate::events::{write_planned_graph_json, write_seq_and_ts, Event, ExecutionLabel, Failure, Payload, Success};
use crate::events::{TaskFields, TaskInfo, TaskKind, GRAPH_PLANNED, TYPE_NAMES};

/// A row is closed once it holds this many bytes: rows stay small enough for a reader
/// following a live execution to read the last one again and again.
pub const ROW_BYTES: usize = 256 * 1024;

/// A row's buffer starts at this size (most commits of most executions hold a few events) and
/// then takes a whole row's room at once: doubling up to `ROW_BYTES` copied every byte of a
/// full row once more (~1 instruction a byte: ~100 a task of a durable chain).
const FIRST_BYTES: usize = 4096;

/// Room a full row keeps for its last event, which may take it past `ROW_BYTES`.
const LAST_EVENT_BYTES: usize = 16 * 1024;

/// The events of one execution on their way into one row.
pub struct RowBuilder {
    pub execution_id: Arc<str>,
    pub first_seq: u64,
    pub last_seq: u64,
    /// How many tasks these events finished (for `executions list`'s done/total).
    pub tasks_done: u64,
    pub body: Vec<u8>,
    /// The serial and the time of the record before, which the next one's are written from.
    last_serial: u64,
    last_micros: u64,
    /// The task whose fields the last task record wrote.
    last_task: Option<TaskInfo>,
}

impl RowBuilder {
    pub fn new(execution_id: Arc<str>) -> Self {
        RowBuilder {
            execution_id,
            first_seq: 0,
            last_seq: 0,
            tasks_done: 0,
            body: Vec::with_capacity(FIRST_BYTES),
            last_serial: 0,
            last_micros: 0,
            last_task: None,
        }
    }

    /// Grows the buffer to a whole row once its first room is nearly used.
    fn make_room(&mut self) {
        if self.body.capacity() < ROW_BYTES && self.body.capacity() - self.body.len() < FIRST_BYTES / 4 {
            self.body.reserve_exact(ROW_BYTES + LAST_EVENT_BYTES - self.body.len());
        }
    }

    pub fn is_full(&self) -> bool {
        self.body.len() >= ROW_BYTES
    }

    /// Appends one event (events come in `seq` order).
    pub fn push(&mut self, event: &Event) {
        if self.body.is_empty() {
            self.first_seq = event.seq;
        }
        self.make_room();
        self.tasks_done += u64::from(ends_a_task(&event.payload));
        // Output lines change no task's state: stored without the serial, the fold of task
        // states (`executions show`, resume) does not read them.
        let serial = event.payload.task().filter(|_| !matches!(event.payload, Payload::TaskOutput { .. }));
        let serial = serial.map(|t| t.serial);
        push_difference(&mut self.body, self.last_seq, event.seq);
        self.last_seq = event.seq;
        push_difference(&mut self.body, self.last_serial, serial.unwrap_or(self.last_serial));
        self.last_serial = serial.unwrap_or(self.last_serial);
        let about = event.payload.task();
        let again = about.is_some_and(|task| self.last_task.as_ref().is_some_and(|last| same_task(last, task)));
        let task_bits = match about {
            Some(_) if again => SAME_TASK,
            Some(_) => TASK_FIELDS,
            None => 0,
        };
        self.body.push(COMPACT | FORMAT_7 | task_bits | if serial.is_some() { SERIAL } else { 0 });
        self.body.push(event.payload.type_code());
        let micros = micros_since_epoch(event.ts);
        push_difference(&mut self.body, self.last_micros, micros);
        self.last_micros = micros;
        if let Some(task) = about.filter(|_| !again) {
            push_task(&mut self.body, task);
            self.last_task = Some(task.clone());
        }
        match &event.payload {
            Payload::GraphPlanned { graph } => {
                push_varint(&mut self.body, graph.as_bytes().len() as u64);
                self.body.extend_from_slice(graph.as_bytes());
            }
            _ => self.push_own_fields(event),
        }
    }

    /// The payload's own fields as JSON, their length first: one byte, made room for when
    /// they are long.
    fn push_own_fields(&mut self, event: &Event) {
        let length_at = self.body.len();
        self.body.push(0);
        event.write_own_fields(&mut self.body);
        let length = self.body.len() - length_at - 1;
        if length < 0x80 {
            self.body[length_at] = length as u8;
        } else {
            let mut prefix = Vec::with_capacity(10);
            push_varint(&mut prefix, length as u64);
            self.body.splice(length_at..=length_at, prefix);
        }
    }
}

/// Whether the event ends a task, for `executions list`'s count of tasks done.
fn ends_a_task(payload: &Payload) -> bool {
    match payload {
        // A success that `on_success` sent round again is not the task's end.
        Payload::TaskSucceeded { task, how: Success::Done, .. }
        | Payload::TaskFailed { task, how: Failure::Ignored, .. } => task.kind != TaskKind::Subgraph,
        _ => false,
    }
}

/// Whether `task`'s fields are `last`'s, which the record before wrote.
fn same_task(last: &TaskInfo, task: &TaskInfo) -> bool {
    last.task_id == task.task_id
        && last.current_retries == task.current_retries
        && last.total_retries == task.total_retries
        && last.kind == task.kind
        && (Arc::ptr_eq(&last.name, &task.name) || last.name == task.name)
        && last.node_instance == task.node_instance
}

/// The head byte's flag of a record whose `seq` and `ts` are kept in binary (format 6 on).
const COMPACT: u8 = 0x80;
/// The head byte's flag of a record whose task fields are kept in binary.
const TASK_FIELDS: u8 = 0x40;
/// The head byte's flag of a format-7 record (format 6 had the offset of its fields there,
/// never above 28).
const FORMAT_7: u8 = 0x20;
/// Format 7: the event is about the task the last task record wrote the fields of.
const SAME_TASK: u8 = 0x10;
/// Format 7: the event has a task serial.
const SERIAL: u8 = 0x08;
/// Format 6: the head byte's bits that give where the fields go in the JSON.
const FIELDS_AT: u8 = 0x3f;

/// A task's fields: `task_id`, `current_retries`, `total_retries` (zigzag: -1 is unlimited)
/// and the lengths of the kind, the name and the node instance (+ 1; 0 for none) in LEB128,
/// each text after its length.
fn push_task(out: &mut Vec<u8>, task: &TaskInfo) {
    push_varint(out, task.task_id);
    push_varint(out, u64::from(task.current_retries));
    push_varint(out, ((task.total_retries << 1) ^ (task.total_retries >> 63)) as u64);
    push_text(out, task.kind.as_str());
    push_text(out, &task.name);
    match &task.node_instance {
        Some(instance) => {
            push_varint(out, instance.len() as u64 + 1);
            out.extend_from_slice(instance.as_bytes());
        }
        None => out.push(0),
    }
}

fn push_text(out: &mut Vec<u8>, text: &str) {
    push_varint(out, text.len() as u64);
    out.extend_from_slice(text.as_bytes());
}

fn read_task<'a>(body: &mut &'a [u8]) -> Result<TaskFields<'a>, MalformedRow> {
    let task_id = read_varint(body)?;
    let current_retries = u32::try_from(read_varint(body)?).map_err(|_| MalformedRow)?;
    let zigzag = read_varint(body)?;
    let total_retries = (zigzag >> 1) as i64 ^ -((zigzag & 1) as i64);
    let kind = read_text(body)?;
    let name = read_text(body)?;
    let node_instance = match read_varint(body)? {
        0 => None,
        n => Some(read_bytes(body, n - 1)?),
    };
    Ok(TaskFields { name, task_id, kind, current_retries, total_retries, node_instance })
}

fn read_text<'a>(body: &mut &'a [u8]) -> Result<&'a str, MalformedRow> {
    let length = read_varint(body)?;
    read_bytes(body, length)
}

fn read_bytes<'a>(body: &mut &'a [u8], length: u64) -> Result<&'a str, MalformedRow> {
    let (text, rest) = body.split_at_checked(usize::try_from(length).map_err(|_| MalformedRow)?).ok_or(MalformedRow)?;
    *body = rest;
    std::str::from_utf8(text).map_err(|_| MalformedRow)
}

/// Times before the epoch are written as the epoch, in binary as in text.
fn micros_since_epoch(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

/// One event read back from a row.
pub struct StoredEvent<'a> {
    pub seq: u64,
    /// The task's creation index, for task events.
    pub serial: Option<u64>,
    /// The event's time in µs since the epoch, when kept in binary.
    micros: Option<u64>,
    /// The task's fields, when kept in binary.
    task: Option<TaskFields<'a>>,
    text: EventText<'a>,
}

/// The text of a stored event beside its binary fields.
enum EventText<'a> {
    /// Before format 7: the event's JSON without the label (in format 6 also without `seq`,
    /// `ts` and the task's fields), valid JSON of its own, and where those go in it.
    Bare { json: &'a str, fields_at: usize },
    /// Format 7: the type, and the payload's own fields (a graph's written from its binary).
    Typed { type_name: &'static str, rest: Cow<'a, str> },
}

impl StoredEvent<'_> {
    /// The event's full JSON line, with `label_fields` (`ExecutionLabel::write_json_fields`;
    /// empty for the event without its label).
    pub fn json(&self, label_fields: &str) -> String {
        let (json, fields_at, rest) = match &self.text {
            EventText::Bare { json, fields_at } => (&json[..*fields_at], None, &json[*fields_at..]),
            EventText::Typed { type_name, rest } => (*type_name, Some(()), &rest[..]),
        };
        let mut line = Vec::with_capacity(json.len() + rest.len() + label_fields.len() + 160);
        match fields_at {
            Some(()) => {
                line.extend_from_slice(b"{\"type\":\"");
                line.extend_from_slice(json.as_bytes());
                line.push(b'"');
            }
            None => line.extend_from_slice(json.as_bytes()),
        }
        if let Some(micros) = self.micros {
            write_seq_and_ts(&mut line, self.seq, UNIX_EPOCH + Duration::from_micros(micros));
        }
        line.extend_from_slice(label_fields.as_bytes());
        if let Some(task) = &self.task {
            task.write_json(&mut line);
        }
        line.extend_from_slice(rest.as_bytes());
        if fields_at.is_some() {
            line.push(b'}');
        }
        String::from_utf8(line).expect("JSON text and UTF-8 pieces split at char boundaries")
    }

    /// `json`, checked to read as JSON: a reader must not pass damage on as an event.
    pub fn checked_json(&self, label_fields: &str) -> Result<String, String> {
        let line = self.json(label_fields);
        serde_json::from_str::<serde::de::IgnoredAny>(&line).map_err(|e| format!("does not read as JSON ({e})"))?;
        Ok(line)
    }
}

/// A row that does not read as events: the file was damaged or written by something else.
#[derive(Debug)]
pub struct MalformedRow;

/// The events of a row, in `seq` order.
pub fn read_row(body: &[u8]) -> impl Iterator<Item = Result<StoredEvent<'_>, MalformedRow>> {
    let mut reader = RowReader { body, seq: 0, serial: 0, micros: 0, task: None };
    std::iter::from_fn(move || {
        if reader.body.is_empty() {
            return None;
        }
        let event = reader.read_event();
        if event.is_err() {
            reader.body = &[];
        }
        Some(event)
    })
}

/// Calls `each` with every event of the row `body` with a seq above `after`, in order. `Err`
/// says what is damaged: the row, or an event `each` could not read (its message).
pub fn each_event_after(
    body: &[u8],
    after: u64,
    mut each: impl FnMut(StoredEvent<'_>) -> Result<(), String>,
) -> Result<(), String> {
    for event in read_row(body) {
        let event = event.map_err(|_| "a row of events cannot be read".to_string())?;
        if event.seq <= after {
            continue;
        }
        let seq = event.seq;
        each(event).map_err(|message| format!("event {seq} {message}"))?;
    }
    Ok(())
}

/// The JSON fields the events of an execution share (`ExecutionLabel::write_json_fields`),
/// which rows leave out.
pub fn label_fields(id: &str, workflow: &str) -> String {
    let mut fields = Vec::new();
    ExecutionLabel { execution_id: id.into(), workflow: workflow.into() }.write_json_fields(&mut fields);
    String::from_utf8(fields).expect("JSON is UTF-8")
}

/// A row being read: what is left of it, and what the record before gave, which a format-7
/// record's numbers and task fields are written from.
struct RowReader<'a> {
    body: &'a [u8],
    seq: u64,
    serial: u64,
    micros: u64,
    task: Option<TaskFields<'a>>,
}

impl<'a> RowReader<'a> {
    fn read_event(&mut self) -> Result<StoredEvent<'a>, MalformedRow> {
        let body = &mut self.body;
        let first = read_varint(body)?;
        let second = read_varint(body)?;
        let (&head, rest) = body.split_first().ok_or(MalformedRow)?;
        *body = rest;
        if head & (COMPACT | FORMAT_7) == COMPACT | FORMAT_7 {
            return self.read_format_7(first, second, head);
        }
        let (seq, serial) = (first, second.checked_sub(1));
        let micros = if head & COMPACT != 0 { Some(read_varint(body)?) } else { None };
        let task = if head & (COMPACT | TASK_FIELDS) == COMPACT | TASK_FIELDS { Some(read_task(body)?) } else { None };
        let (&length, rest) = body.split_first_chunk::<4>().ok_or(MalformedRow)?;
        let (json, rest) = rest.split_at_checked(u32::from_le_bytes(length) as usize).ok_or(MalformedRow)?;
        let json = std::str::from_utf8(json).map_err(|_| MalformedRow)?;
        // Before schema 6 the whole byte was the offset.
        let fields_at = usize::from(if head & COMPACT != 0 { head & FIELDS_AT } else { head });
        if !json.is_char_boundary(fields_at) {
            return Err(MalformedRow);
        }
        *body = rest;
        Ok(StoredEvent { seq, serial, micros, task, text: EventText::Bare { json, fields_at } })
    }

    /// The rest of a format-7 record, after its `seq` and serial (`first`, `second`) and its
    /// head byte.
    fn read_format_7(&mut self, first: u64, second: u64, head: u8) -> Result<StoredEvent<'a>, MalformedRow> {
        let known = COMPACT | FORMAT_7 | TASK_FIELDS | SAME_TASK | SERIAL;
        if head & !known != 0 || head & (TASK_FIELDS | SAME_TASK) == TASK_FIELDS | SAME_TASK {
            return Err(MalformedRow);
        }
        let body = &mut self.body;
        self.seq = add_difference(self.seq, first);
        let serial = if head & SERIAL != 0 {
            self.serial = add_difference(self.serial, second);
            Some(self.serial)
        } else if second == 0 {
            None
        } else {
            return Err(MalformedRow);
        };
        let (&code, rest) = body.split_first().ok_or(MalformedRow)?;
        *body = rest;
        let type_name = *TYPE_NAMES.get(usize::from(code)).ok_or(MalformedRow)?;
        self.micros = read_difference(body, self.micros).ok_or(MalformedRow)?;
        let task = if head & TASK_FIELDS != 0 {
            self.task = Some(read_task(body)?);
            self.task
        } else if head & SAME_TASK != 0 {
            Some(self.task.ok_or(MalformedRow)?)
        } else {
            None
        };
        let length = usize::try_from(read_varint(body)?).map_err(|_| MalformedRow)?;
        let (rest, after) = body.split_at_checked(length).ok_or(MalformedRow)?;
        let rest = if code == GRAPH_PLANNED {
            let mut json = b",".to_vec();
            write_planned_graph_json(rest, &mut json).map_err(|_| MalformedRow)?;
            Cow::Owned(String::from_utf8(json).map_err(|_| MalformedRow)?)
        } else {
            Cow::Borrowed(std::str::from_utf8(rest).map_err(|_| MalformedRow)?)
        };
        *body = after;
        let micros = Some(self.micros);
        Ok(StoredEvent { seq: self.seq, serial, micros, task, text: EventText::Typed { type_name, rest } })
    }
}

fn read_varint(body: &mut &[u8]) -> Result<u64, MalformedRow> {
    crate::events::varint::read_varint(body).ok_or(MalformedRow)
}

/// A row as rhaiflow wrote it before schema 6 (`seq` and `ts` as text in each JSON), for
/// the tests that older stores still read.
#[cfg(test)]
pub fn row_before_schema_6(events: &[Event]) -> Vec<u8> {
    let label = ExecutionLabel { execution_id: "e".into(), workflow: "w".into() };
    let fields = label_fields(&label.execution_id, &label.workflow);
    let mut body = Vec::new();
    for event in events {
        let mut line = Vec::new();
        event.write_json(&label, &mut line);
        let line = String::from_utf8(line).expect("JSON is UTF-8");
        let label_at = line.find(&fields).expect("the label is in the line");
        let json = line.replacen(&fields, "", 1);
        push_varint(&mut body, event.seq);
        push_varint(&mut body, event.payload.task().map_or(0, |t| t.serial + 1));
        body.push(u8::try_from(label_at).expect("a short head"));
        body.extend_from_slice(&(json.len() as u32).to_le_bytes());
        body.extend_from_slice(json.as_bytes());
    }
    body
}

/// A row as rhaiflow wrote it in format 6 (`seq`, the time and the task's fields in binary, the
/// rest as JSON with where they go), for the tests that such stores still read.
#[cfg(test)]
pub fn row_of_schema_6(events: &[Event]) -> Vec<u8> {
    let mut body = Vec::new();
    for event in events {
        let task = event.payload.task().filter(|_| !matches!(event.payload, Payload::TaskOutput { .. }));
        push_varint(&mut body, event.seq);
        push_varint(&mut body, task.map_or(0, |t| t.serial + 1));
        let head = body.len();
        body.push(0);
        push_varint(&mut body, micros_since_epoch(event.ts));
        let about = event.payload.task();
        if let Some(task) = about {
            push_task(&mut body, task);
        }
        let length_at = body.len();
        body.extend_from_slice(&[0; 4]);
        let fields_at = u8::try_from(event.write_json_bare(&mut body)).expect("a type is short");
        assert_eq!(fields_at & !FIELDS_AT, 0);
        let length = body.len() - length_at - 4;
        body[head] = COMPACT | if about.is_some() { TASK_FIELDS } else { 0 } | fields_at;
        body[length_at..length_at + 4].copy_from_slice(&(length as u32).to_le_bytes());
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::TaskInfo;

    fn task(serial: u64, kind: TaskKind) -> TaskInfo {
        TaskInfo {
            name: "t\n\"1\"".into(),
            serial,
            task_id: 3,
            kind,
            current_retries: 0,
            total_retries: 2,
            node_instance: Some("db_1".into()),
        }
    }

    fn a_graph() -> crate::events::PlannedGraph {
        let mut graph = crate::events::PlannedGraph::builder(2, 2);
        graph.node("t0", 3, TaskKind::Noop, None, None);
        graph.node("t \"1\"", 4, TaskKind::Operation, Some(3), Some("db_1"));
        graph.edge(3, 4);
        graph.finish()
    }

    /// Events of every shape: with and without a task, a task's fields again after its start,
    /// long and short payloads, a graph, a time going back.
    fn every_shape() -> Vec<Event> {
        let now = SystemTime::now();
        [
            Payload::WorkflowStarted { resumed: false, parameters: serde_json::json!({"n": 1}), by: None },
            Payload::GraphPlanned { graph: Arc::new(a_graph()) },
            Payload::TaskStarted { task: task(0, TaskKind::Noop) },
            Payload::TaskSucceeded { task: task(0, TaskKind::Noop), result: None, how: Success::Done },
            Payload::TaskSucceeded { task: task(0, TaskKind::Noop), result: None, how: Success::Again },
            Payload::TaskFailed {
                task: task(u64::MAX - 1, TaskKind::Subgraph),
                error: "boom".into(),
                how: Failure::Ignored,
            },
            Payload::Log { level: crate::events::LogLevel::Info, message: "ünïcode".into() },
            // Unlimited retries (-1), no node instance, many attempts.
            Payload::TaskStarted {
                task: TaskInfo {
                    total_retries: -1,
                    node_instance: None,
                    current_retries: 70_000,
                    ..task(9, TaskKind::Shell)
                },
            },
            Payload::TaskOutput {
                task: task(9, TaskKind::Shell),
                stream: crate::events::OutputStream::Stdout,
                line: "x".repeat(300),
                truncated: true,
            },
            // The same serial, another attempt: its fields are written again.
            Payload::TaskFailed {
                task: TaskInfo { task_id: 4, ..task(9, TaskKind::Shell) },
                error: "e".into(),
                how: Failure::Failed,
            },
            Payload::TaskSucceeded {
                task: task(3, TaskKind::Script),
                result: Some(serde_json::json!({"long": "y".repeat(20_000)})),
                how: Success::Done,
            },
            Payload::WorkflowCancelled { by: Some("token 1a (operator)".into()) },
        ]
        .into_iter()
        .enumerate()
        .map(|(i, payload)| {
            let ts = if i == 6 { now - Duration::from_secs(5) } else { now + Duration::from_micros(i as u64) };
            Event { seq: 200 + i as u64 * 3, ts, payload }
        })
        .collect()
    }

    fn lines(events: &[Event], label: &ExecutionLabel) -> Vec<String> {
        events
            .iter()
            .map(|event| {
                let mut line = Vec::new();
                event.write_json(label, &mut line);
                String::from_utf8(line).unwrap()
            })
            .collect()
    }

    #[test]
    fn a_row_gives_back_each_event_as_its_full_json_line() {
        let label = ExecutionLabel { execution_id: "e-1".into(), workflow: "flow \"x\"".into() };
        let events = every_shape();
        let mut row = RowBuilder::new(label.execution_id.clone());
        for event in &events {
            row.push(event);
        }
        assert_eq!(
            (row.first_seq, row.last_seq, row.tasks_done),
            (200, 233, 2),
            "a subgraph, a polled attempt are no task done"
        );
        let fields = label_fields(&label.execution_id, &label.workflow);
        let read: Vec<_> = read_row(&row.body).collect::<Result<_, _>>().unwrap();
        assert_eq!(read.len(), events.len());
        let expected = lines(&events, &label);
        for ((stored, event), line) in read.iter().zip(&events).zip(&expected) {
            assert_eq!(&stored.checked_json(&fields).unwrap(), line);
            assert_eq!(stored.seq, event.seq);
            let serial = event.payload.task().filter(|_| !matches!(event.payload, Payload::TaskOutput { .. }));
            assert_eq!(stored.serial, serial.map(|t| t.serial));
        }
        // Read from any of its events on, as a reader after a seq does: the same lines.
        let mut after = Vec::new();
        each_event_after(&row.body, 215, |event| {
            after.push(event.json(&fields));
            Ok(())
        })
        .unwrap();
        assert_eq!(after, expected[6..]);
    }

    // A task's end after its start is written without the task's fields again, and the numbers
    // as differences: a chain's no-op task was ~120 bytes in format 6.
    #[test]
    fn a_chain_task_takes_few_bytes() {
        let mut row = RowBuilder::new("e".into());
        let start = SystemTime::now();
        let at = |n: u64| start + Duration::from_micros(n * 3);
        for i in 0..1000u64 {
            let task = TaskInfo {
                name: format!("t{i}").into(),
                serial: i,
                task_id: 20_000 + i,
                kind: TaskKind::Noop,
                current_retries: 0,
                total_retries: 0,
                node_instance: None,
            };
            row.push(&Event { seq: 2 * i + 5, ts: at(2 * i), payload: Payload::TaskStarted { task: task.clone() } });
            let done = Payload::TaskSucceeded { task, result: None, how: Success::Done };
            row.push(&Event { seq: 2 * i + 6, ts: at(2 * i + 1), payload: done });
        }
        assert!(row.body.len() < 30 * 1000, "{} bytes", row.body.len());
        assert_eq!(read_row(&row.body).count(), 2000);
        assert!(read_row(&row.body).all(|e| e.is_ok()));
    }

    #[test]
    fn a_row_of_format_6_reads_as_before() {
        let label = ExecutionLabel { execution_id: "e-1".into(), workflow: "w".into() };
        let fields = label_fields(&label.execution_id, &label.workflow);
        // Format 6 kept a graph as JSON text, the JSON the event writes.
        let events = every_shape();
        let body = row_of_schema_6(&events);
        let read: Vec<_> = read_row(&body).collect::<Result<_, _>>().unwrap();
        assert_eq!(read.iter().map(|e| e.checked_json(&fields).unwrap()).collect::<Vec<_>>(), lines(&events, &label));
    }

    // Stores of schema 5 keep `seq` and `ts` as text in each event's JSON, and only the label
    // is spliced in: their rows must still read as the same lines.
    #[test]
    fn a_row_written_before_schema_6_reads_as_before() {
        let label = ExecutionLabel { execution_id: "e-1".into(), workflow: "w".into() };
        let fields = label_fields(&label.execution_id, &label.workflow);
        let events = [
            Event { seq: 7, ts: SystemTime::now(), payload: Payload::TaskStarted { task: task(4, TaskKind::Noop) } },
            Event { seq: 300, ts: SystemTime::UNIX_EPOCH, payload: Payload::WorkflowCancelled { by: None } },
        ];
        let lines: Vec<String> = events
            .iter()
            .map(|event| {
                let mut line = Vec::new();
                event.write_json(&label, &mut line);
                String::from_utf8(line).unwrap()
            })
            .collect();
        let body = row_before_schema_6(&events);
        let read: Vec<_> = read_row(&body).collect::<Result<_, _>>().unwrap();
        assert_eq!(read.iter().map(|e| e.json(&fields)).collect::<Vec<_>>(), lines);
        assert_eq!(read.iter().map(|e| (e.seq, e.serial)).collect::<Vec<_>>(), [(7, Some(4)), (300, None)]);
    }

    // The time is kept in µs, as the text has it; a time before the epoch reads as the epoch,
    // as the text writes it.
    #[test]
    fn the_time_kept_in_binary_reads_as_its_text() {
        let label = ExecutionLabel { execution_id: "e".into(), workflow: "w".into() };
        let mut fields = Vec::new();
        label.write_json_fields(&mut fields);
        let fields = String::from_utf8(fields).unwrap();
        let moments = [
            SystemTime::UNIX_EPOCH - std::time::Duration::from_secs(3),
            SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(1_764_650_000_123_456_789),
            SystemTime::now(),
        ];
        for ts in moments {
            let event = Event { seq: u64::from(u32::MAX) + 9, ts, payload: Payload::WorkflowCancelled { by: None } };
            let mut row = RowBuilder::new("e".into());
            row.push(&event);
            let mut line = Vec::new();
            event.write_json(&label, &mut line);
            let stored = read_row(&row.body).next().unwrap().unwrap();
            assert_eq!(stored.json(&fields), String::from_utf8(line).unwrap());
        }
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_panic() {
        let mut row = RowBuilder::new("e".into());
        row.push(&Event { seq: 1, ts: SystemTime::now(), payload: Payload::WorkflowCancelled { by: None } });
        let whole = row.body.len();
        row.push(&Event {
            seq: 2,
            ts: SystemTime::now(),
            payload: Payload::TaskStarted { task: task(0, TaskKind::Noop) },
        });
        let read: Vec<_> = read_row(&row.body[whole..]).collect();
        assert!(read.len() == 1 && read[0].is_ok());
        for cut in whole..row.body.len() {
            let read: Vec<_> = read_row(&row.body[whole..cut]).collect();
            assert!(read.iter().all(|e| e.is_err()), "a task event cut at {cut}");
        }
        row.body.truncate(whole);
        for cut in 0..row.body.len() {
            let read: Vec<_> = read_row(&row.body[..cut]).collect();
            assert!(read.iter().all(|e| e.is_err()), "cut at {cut}");
        }
        assert!(read_row(&[0xff; 12]).all(|e| e.is_err()));
    }
}
