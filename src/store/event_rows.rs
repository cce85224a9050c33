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
//! `seq` (LEB128) · task serial + 1 (LEB128; 0 when the event is not about a task) · where the
//! label goes in the JSON (one byte) · JSON length (u32, little-endian) · the JSON.

use std::sync::Arc;

use crate::events::TaskKind;
use crate::events::{Event, ExecutionLabel, Failure, Payload, Success};

/// A row is closed once it holds this many bytes: rows stay small enough for a reader
/// following a live execution to read the last one again and again.
pub const ROW_BYTES: usize = 256 * 1024;

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
        RowBuilder { execution_id, first_seq: 0, last_seq: 0, tasks_done: 0, body: Vec::new() }
    }

    pub fn is_full(&self) -> bool {
        self.body.len() >= ROW_BYTES
    }

    /// Appends one event (events come in `seq` order).
    pub fn push(&mut self, event: &Event) {
        if self.body.is_empty() {
            self.first_seq = event.seq;
        }
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
        // The label offset and the length are known once the JSON is written.
        let header = self.body.len();
        self.body.extend_from_slice(&[0; 5]);
        let label_at = event.write_json_unlabelled(&mut self.body);
        let length = self.body.len() - header - 5;
        // The head before the label (`{"type":…,"seq":…,"ts":…`) is under 100 bytes.
        self.body[header] = u8::try_from(label_at).expect("an event's head is short");
        self.body[header + 1..header + 5].copy_from_slice(&(length as u32).to_le_bytes());
    }
}

/// One event read back from a row.
pub struct StoredEvent<'a> {
    pub seq: u64,
    /// The task's creation index, for task events.
    pub serial: Option<u64>,
    label_at: usize,
    /// The event's JSON without the label: valid JSON of its own.
    pub unlabelled: &'a str,
}

impl StoredEvent<'_> {
    /// The event's full JSON line, with `label_fields` (`ExecutionLabel::write_json_fields`).
    pub fn json(&self, label_fields: &str) -> String {
        let mut line = String::with_capacity(self.unlabelled.len() + label_fields.len());
        line.push_str(&self.unlabelled[..self.label_at]);
        line.push_str(label_fields);
        line.push_str(&self.unlabelled[self.label_at..]);
        line
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
    let (&[label_at, l0, l1, l2, l3], rest) = body.split_first_chunk::<5>().ok_or(MalformedRow)?;
    let (json, rest) = rest.split_at_checked(u32::from_le_bytes([l0, l1, l2, l3]) as usize).ok_or(MalformedRow)?;
    let unlabelled = std::str::from_utf8(json).map_err(|_| MalformedRow)?;
    let label_at = usize::from(label_at);
    if !unlabelled.is_char_boundary(label_at) {
        return Err(MalformedRow);
    }
    *body = rest;
    Ok(StoredEvent { seq, serial, label_at, unlabelled })
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
            (200, 205, 1),
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
            serde_json::from_str::<serde_json::Value>(stored.unlabelled).unwrap();
        }
    }

    #[test]
    fn a_damaged_row_is_an_error_not_a_panic() {
        let mut row = RowBuilder::new("e".into());
        row.push(&Event { seq: 1, ts: SystemTime::now(), payload: Payload::WorkflowCancelled { by: None } });
        for cut in 0..row.body.len() {
            let read: Vec<_> = read_row(&row.body[..cut]).collect();
            assert!(read.iter().all(|e| e.is_err()), "cut at {cut}");
        }
        assert!(read_row(&[0xff; 12]).all(|e| e.is_err()));
    }
}
