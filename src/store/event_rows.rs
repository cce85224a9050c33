//! How the store keeps events: many to a row.
//!
//! Inserting a row costs SQLite a few thousand instructions, more than writing the event
//! itself. So the events of one execution that one commit writes go into one row (up to
//! `ROW_BYTES`), keyed by the `seq` of the row's last event: "the events after seq N" is still
//! one range of the table. Each event is kept as its JSON without the execution's id and
//! workflow (`execution_id`, `workflow`), which the execution's row holds; reading puts them
//! back where they were, so a reader gets exactly the line `--events-json` wrote.
//!
//! A row is a sequence of records, one per event:
//! `seq` (LEB128) · task serial + 1 (LEB128; 0 when the event is not about a task) · the head
//! byte · the time in µs since the epoch (LEB128) · for a task event, its task's fields in
//! binary (`push_task`) · JSON length (u32, little-endian) · the rest of the JSON. The head
//! byte's low 6 bits say where `seq`, `ts`, the label and the task's fields go in the JSON,
//! in that order; its top bit is set, and the next one for a task event. The sequence number,
//! the time and the task's fields were two thirds of a task event's bytes as text, and most of
//! the cost of writing it (~1,600 instructions a durable no-op task).
//!
//! Rows written before schema 6 have only the top bit clear: their JSON holds all but the
//! label, which goes at the offset.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::events::{write_seq_and_ts, Event, ExecutionLabel, Failure, Payload, Success};
use crate::events::{TaskFields, TaskInfo, TaskKind};

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
}

impl RowBuilder {
    pub fn new(execution_id: Arc<str>) -> Self {
        RowBuilder { execution_id, first_seq: 0, last_seq: 0, tasks_done: 0, body: Vec::with_capacity(FIRST_BYTES) }
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
        self.last_seq = event.seq;
        // Output lines change no task's state: stored without the task, the fold of task states
        // (`executions show`, resume) does not read them.
        let task = event.payload.task().filter(|_| !matches!(event.payload, Payload::TaskOutput { .. }));
        self.tasks_done += u64::from(match &event.payload {
            // A success that `on_success` sent round again is not the task's end.
            Payload::TaskSucceeded { task, how: Success::Done, .. }
            | Payload::TaskFailed { task, how: Failure::Ignored, .. } => task.kind != TaskKind::Subgraph,
            _ => false,
        });
        push_varint(&mut self.body, event.seq);
        push_varint(&mut self.body, task.map_or(0, |t| t.serial + 1));
        // The head byte and the length are known once the JSON is written.
        let head = self.body.len();
        self.body.push(0);
        push_varint(&mut self.body, micros_since_epoch(event.ts));
        let about = event.payload.task();
        if let Some(task) = about {
            push_task(&mut self.body, task);
        }
        let length_at = self.body.len();
        self.body.extend_from_slice(&[0; 4]);
        let fields_at = event.write_json_bare(&mut self.body);
        let length = self.body.len() - length_at - 4;
        // `{"type":"…"` is under 40 bytes.
        let fields_at = u8::try_from(fields_at).ok().filter(|&at| at & !FIELDS_AT == 0).expect("a type is short");
        self.body[head] = COMPACT | if about.is_some() { TASK_FIELDS } else { 0 } | fields_at;
        self.body[length_at..length_at + 4].copy_from_slice(&(length as u32).to_le_bytes());
    }
}

/// The head byte's flag of a record whose `seq` and `ts` are kept in binary.
const COMPACT: u8 = 0x80;
/// The head byte's flag of a record whose task fields are kept in binary.
const TASK_FIELDS: u8 = 0x40;
/// The head byte's bits that give where the fields go in the JSON.
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
    /// Where `seq` and `ts` (when kept in binary), the label and the task's fields (when kept
    /// in binary) go in `bare`.
    fields_at: usize,
    /// The event's time in µs since the epoch, when kept in binary.
    micros: Option<u64>,
    /// The task's fields, when kept in binary.
    task: Option<TaskFields<'a>>,
    /// The event's JSON without the label (and, in rows since schema 6, without `seq`, `ts`
    /// and the task's fields): valid JSON of its own.
    pub bare: &'a str,
}

impl StoredEvent<'_> {
    /// The event's full JSON line, with `label_fields` (`ExecutionLabel::write_json_fields`;
    /// empty for the event without its label).
    pub fn json(&self, label_fields: &str) -> String {
        let mut line = Vec::with_capacity(self.bare.len() + label_fields.len() + 160);
        line.extend_from_slice(&self.bare.as_bytes()[..self.fields_at]);
        if let Some(micros) = self.micros {
            write_seq_and_ts(&mut line, self.seq, UNIX_EPOCH + Duration::from_micros(micros));
        }
        line.extend_from_slice(label_fields.as_bytes());
        if let Some(task) = &self.task {
            task.write_json(&mut line);
        }
        line.extend_from_slice(&self.bare.as_bytes()[self.fields_at..]);
        String::from_utf8(line).expect("JSON text and UTF-8 pieces split at char boundaries")
    }
}

/// A row that does not read as events: the file was damaged or written by something else.
#[derive(Debug)]
pub struct MalformedRow;

/// The events of a row, in `seq` order.
pub fn read_row(mut body: &[u8]) -> impl Iterator<Item = Result<StoredEvent<'_>, MalformedRow>> {
    std::iter::from_fn(move || {
        if body.is_empty() {
            return None;
        }
        let event = read_event(&mut body);
        if event.is_err() {
            body = &[];
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

fn read_event<'a>(body: &mut &'a [u8]) -> Result<StoredEvent<'a>, MalformedRow> {
    let seq = read_varint(body)?;
    let serial = read_varint(body)?.checked_sub(1);
    let (&head, rest) = body.split_first().ok_or(MalformedRow)?;
    *body = rest;
    let micros = if head & COMPACT != 0 { Some(read_varint(body)?) } else { None };
    let task = if head & (COMPACT | TASK_FIELDS) == COMPACT | TASK_FIELDS { Some(read_task(body)?) } else { None };
    let (&length, rest) = body.split_first_chunk::<4>().ok_or(MalformedRow)?;
    let (json, rest) = rest.split_at_checked(u32::from_le_bytes(length) as usize).ok_or(MalformedRow)?;
    let bare = std::str::from_utf8(json).map_err(|_| MalformedRow)?;
    // Before schema 6 the whole byte was the offset.
    let fields_at = usize::from(if head & COMPACT != 0 { head & FIELDS_AT } else { head });
    if !bare.is_char_boundary(fields_at) {
        return Err(MalformedRow);
    }
    *body = rest;
    Ok(StoredEvent { seq, serial, fields_at, micros, task, bare })
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn read_varint(body: &mut &[u8]) -> Result<u64, MalformedRow> {
    let mut n = 0u64;
    for (i, &byte) in body.iter().enumerate().take(10) {
        n |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *body = &body[i + 1..];
            return Ok(n);
        }
    }
    Err(MalformedRow)
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

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

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

    #[test]
    fn a_row_gives_back_each_event_as_its_full_json_line() {
        let label = ExecutionLabel { execution_id: "e-1".into(), workflow: "flow \"x\"".into() };
        let events = [
            Payload::WorkflowStarted { resumed: false, parameters: serde_json::json!({"n": 1}), by: None },
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
        ]
        .into_iter()
        .enumerate()
        .map(|(i, payload)| Event { seq: 200 + i as u64, ts: SystemTime::now(), payload })
        .collect::<Vec<_>>();
        let mut row = RowBuilder::new(label.execution_id.clone());
        for event in &events {
            row.push(event);
        }
        assert_eq!(
            (row.first_seq, row.last_seq, row.tasks_done),
            (200, 206, 1),
            "a subgraph, a polled attempt are no task done"
        );
        let mut fields = Vec::new();
        label.write_json_fields(&mut fields);
        let fields = String::from_utf8(fields).unwrap();
        let read: Vec<_> = read_row(&row.body).collect::<Result<_, _>>().unwrap();
        assert_eq!(read.len(), events.len());
        for (stored, event) in read.iter().zip(&events) {
            let mut line = Vec::new();
            event.write_json(&label, &mut line);
            assert_eq!(stored.json(&fields), String::from_utf8(line).unwrap());
            assert_eq!(stored.seq, event.seq);
            assert_eq!(stored.serial, event.payload.task().map(|t| t.serial));
            serde_json::from_str::<serde_json::Value>(stored.bare).unwrap();
        }
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
