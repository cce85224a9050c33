//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through one writer thread per process, which takes every queued write, commits
//! them in one transaction (group commit), then publishes the highest committed event `seq`;
//! a task's dependents wait on that watch, so nothing runs on top of a success that is not on
//! disk. Reads use their own connection: WAL lets readers and the writer proceed together,
//! and several processes share one file (a busy writer makes the others wait, not fail).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use tokio::sync::watch;

use super::records::TaskFold;
use super::{ExecutionRecord, ExecutionStatus, Result, Store, StoreError, StoredTask};
use crate::events::{Event, ExecutionLabel, Payload};
use crate::graph::TaskKind;

/// Task states are not a table of their own: they are folded from the task events when read,
/// so writing a task's progress is one insert per event.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    number INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    workflow TEXT NOT NULL,
    script TEXT NOT NULL,
    parameters TEXT NOT NULL,
    options TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT,
    error TEXT,
    pid INTEGER NOT NULL,
    resumes INTEGER NOT NULL DEFAULT 0,
    tasks_total INTEGER NOT NULL DEFAULT 0,
    tasks_done INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0,
    cancel_request INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    position INTEGER PRIMARY KEY,
    task_key TEXT,
    body TEXT NOT NULL
);
";

/// An event's row id: its execution's number in the high bits, its seq in the low 40. Events
/// of a run are then appended at the end of the table's b-tree, the cheapest insert SQLite
/// has, and an execution's events are one range.
fn position(execution: i64, seq: u64) -> i64 {
    (execution << 40) | (seq as i64 & ((1 << 40) - 1))
}

/// Writes queued for the writer thread at most.
const QUEUE_LIMIT: usize = 50_000;

/// Bumped when the schema changes, so an old file is recognised instead of misread.
const SCHEMA_VERSION: i64 = 3;

enum WriteOp {
    Begin(Box<ExecutionRecord>),
    Event { execution_id: Arc<str>, seq: u64, task_key: Option<String>, body: Vec<u8>, done: bool },
    Planned { execution_id: String, count: u64 },
    End { execution_id: String, status: ExecutionStatus, error: Option<String>, at: String },
    Sync(SyncSender<()>),
}

pub struct SqliteStore {
    path: PathBuf,
    reader: Mutex<Connection>,
    writes: Mutex<SyncSender<WriteOp>>,
    committed: watch::Receiver<u64>,
}

fn database_error(path: &Path, e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt { path: path.to_path_buf(), message: e.to_string() }
        }
        _ => StoreError::Database(e.to_string()),
    }
}

fn connect(path: &Path) -> Result<Connection> {
    let conn =
        Connection::open(path).map_err(|e| StoreError::Open { path: path.to_path_buf(), message: e.to_string() })?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(|e| database_error(path, e))?;
    // WAL: readers never block the writer; FULL: a commit survives a power loss, not only a
    // killed process. Group commit pays the fsync once per batch.
    conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| database_error(path, e))?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(|e| database_error(path, e))?;
    Ok(conn)
}

/// Opens the file and creates the tables. Processes starting together on a new file race to
/// create it: setting WAL mode or the schema can then report "busy" at once, without waiting
/// for the busy timeout, so those steps are retried.
fn initialise(path: &Path) -> Result<Connection> {
    let mut tries = 0;
    loop {
        let attempt = connect(path).and_then(|conn| {
            conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| database_error(path, e))?;
            let created = (|| {
                let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
                let tables: i64 =
                    conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))?;
                if version != SCHEMA_VERSION && tables > 0 {
                    return Ok(Some(version));
                }
                conn.execute_batch(SCHEMA)?;
                conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                Ok(None)
            })();
            let _ = conn.execute_batch(if matches!(created, Ok(None)) { "COMMIT" } else { "ROLLBACK" });
            match created.map_err(|e| database_error(path, e))? {
                None => Ok(conn),
                Some(version) => Err(StoreError::Corrupt {
                    path: path.to_path_buf(),
                    message: format!("it has schema version {version}, this rhaiflow reads version {SCHEMA_VERSION}"),
                }),
            }
        });
        match attempt {
            Err(StoreError::Database(message)) if tries < 100 && message.contains("locked") => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open { path: path.to_path_buf(), message: e.to_string() })?;
        }
        let reader = initialise(path)?;
        let writer = initialise(path)?;
        // Bounded: when events come faster than the disk takes them, emitters wait instead of
        // the queue growing without limit (a 1M-task run held 1.3 GB of queued events).
        let (tx, rx) = sync_channel(QUEUE_LIMIT);
        let (committed_tx, committed) = watch::channel(0);
        let thread_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("rhaiflow-store".into())
            .spawn(move || write_loop(writer, rx, committed_tx, thread_path))
            .map_err(|e| StoreError::Open { path: path.to_path_buf(), message: e.to_string() })?;
        Ok(SqliteStore { path: path.to_path_buf(), reader: Mutex::new(reader), writes: Mutex::new(tx), committed })
    }

    fn send(&self, op: WriteOp) {
        // The writer only stops when the store is dropped.
        let _ = self.writes.lock().send(op);
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        database_error(&self.path, e)
    }

    /// The compact number of execution `id`, which keys its events.
    fn number(&self, conn: &Connection, id: &str) -> Result<i64> {
        conn.query_row("SELECT number FROM executions WHERE id = ?1", [id], |row| row.get(0))
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NoSuchExecution(id.to_string()))
    }
}

/// Takes every write that is queued, commits them together, publishes the committed `seq`.
fn write_loop(mut conn: Connection, rx: Receiver<WriteOp>, committed: watch::Sender<u64>, path: PathBuf) {
    let mut reported = false;
    let mut numbers: HashMap<Arc<str>, i64> = HashMap::new();
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 20_000 {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(e) = write_batch(&mut conn, &batch, &mut numbers) {
            if !reported {
                eprintln!("rhaiflow: cannot write to the execution store {}: {}", path.display(), e);
                reported = true;
            }
        }
        let highest = batch
            .iter()
            .filter_map(|op| match op {
                WriteOp::Event { seq, .. } => Some(*seq),
                _ => None,
            })
            .max();
        if let Some(seq) = highest {
            committed.send_modify(|c| *c = (*c).max(seq));
        }
        for op in batch {
            if let WriteOp::Sync(ack) = op {
                let _ = ack.send(());
            }
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[WriteOp], numbers: &mut HashMap<Arc<str>, i64>) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Prepared once per batch: looking a cached statement up hashes its text, per row.
    let mut insert_event =
        tx.prepare_cached("INSERT OR REPLACE INTO events (position, task_key, body) VALUES (?1, ?2, ?3)")?;
    // Per execution in this batch: its highest seq and how many tasks got done.
    let mut progress: Vec<(i64, u64, u64)> = Vec::new();
    for op in batch {
        match op {
            WriteOp::Begin(r) => {
                tx.prepare_cached(
                    "INSERT INTO executions (id, workflow, script, parameters, options, status, started_at, pid, resumes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT(id) DO UPDATE SET status = excluded.status, pid = excluded.pid,
                       resumes = excluded.resumes, ended_at = NULL, error = NULL, cancel_request = 0",
                )?
                .execute(params![
                    r.id,
                    r.workflow,
                    r.script,
                    r.parameters.to_string(),
                    r.options.to_string(),
                    r.status.as_str(),
                    r.started_at,
                    r.pid,
                    r.resumes
                ])?;
                let number: i64 =
                    tx.query_row("SELECT number FROM executions WHERE id = ?1", [&r.id], |row| row.get(0))?;
                numbers.insert(Arc::from(r.id.as_str()), number);
            }
            WriteOp::Event { execution_id, seq, task_key, body, done } => {
                let Some(&number) = numbers.get(execution_id) else { continue };
                let body = std::str::from_utf8(body).unwrap_or("{}");
                insert_event.execute(params![position(number, *seq), task_key.as_deref(), body])?;
                match progress.iter_mut().find(|(n, _, _)| *n == number) {
                    Some((_, last, count)) => {
                        *last = (*last).max(*seq);
                        *count += *done as u64;
                    }
                    None => progress.push((number, *seq, *done as u64)),
                }
            }
            WriteOp::Planned { execution_id, count } => {
                tx.prepare_cached("UPDATE executions SET tasks_total = tasks_total + ?2 WHERE id = ?1")?
                    .execute(params![execution_id, count])?;
            }
            WriteOp::End { execution_id, status, error, at } => {
                tx.prepare_cached("UPDATE executions SET status = ?2, error = ?3, ended_at = ?4 WHERE id = ?1")?
                    .execute(params![execution_id, status.as_str(), error, at])?;
            }
            WriteOp::Sync(_) => {}
        }
    }
    for (number, seq, done) in progress {
        tx.prepare_cached(
            "UPDATE executions SET last_seq = MAX(last_seq, ?2), tasks_done = tasks_done + ?3 WHERE number = ?1",
        )?
        .execute(params![number, seq, done])?;
    }
    drop(insert_event);
    tx.commit()
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

const EXECUTION_COLUMNS: &str = "id, workflow, script, parameters, options, status, started_at, ended_at, error, pid,
    resumes, tasks_total, last_seq, tasks_done";

fn execution_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    let parameters: String = row.get(3)?;
    let options: String = row.get(4)?;
    let status: String = row.get(5)?;
    Ok(ExecutionRecord {
        id: row.get(0)?,
        workflow: row.get(1)?,
        script: row.get(2)?,
        parameters: serde_json::from_str(&parameters).unwrap_or_default(),
        options: serde_json::from_str(&options).unwrap_or_default(),
        status: ExecutionStatus::parse(&status),
        started_at: row.get(6)?,
        ended_at: row.get(7)?,
        error: row.get(8)?,
        pid: row.get(9)?,
        resumes: row.get(10)?,
        tasks_total: row.get(11)?,
        last_seq: row.get(12)?,
        tasks_done: row.get(13)?,
    })
}

impl Store for SqliteStore {
    fn begin(&self, record: &ExecutionRecord) -> Result<()> {
        self.send(WriteOp::Begin(Box::new(record.clone())));
        self.flush();
        Ok(())
    }

    fn append(&self, label: &ExecutionLabel, event: &Event) {
        let mut body = Vec::with_capacity(256);
        event.write_json(label, &mut body);
        let task = event.payload.task();
        let done = match &event.payload {
            Payload::TaskSucceeded(t, _) | Payload::TaskFailed(t, _, true) => t.kind != TaskKind::Subgraph,
            _ => false,
        };
        self.send(WriteOp::Event {
            execution_id: label.execution_id.clone(),
            seq: event.seq,
            task_key: task.map(|t| {
                let mut key = Vec::with_capacity(t.name.len() + 8);
                crate::events::push_integer(&mut key, t.serial as i64);
                key.push(b':');
                key.extend_from_slice(t.name.as_bytes());
                String::from_utf8(key).unwrap_or_default()
            }),
            body,
            done,
        });
    }

    fn planned(&self, execution_id: &str, count: u64) {
        self.send(WriteOp::Planned { execution_id: execution_id.to_string(), count });
    }

    fn end(&self, execution_id: &str, status: ExecutionStatus, error: Option<String>) {
        self.send(WriteOp::End { execution_id: execution_id.to_string(), status, error, at: now() });
    }

    fn flush(&self) {
        let (ack, done) = sync_channel(1);
        self.send(WriteOp::Sync(ack));
        let _ = done.recv();
    }

    fn committed(&self) -> Option<watch::Receiver<u64>> {
        Some(self.committed.clone())
    }

    fn executions(&self) -> Result<Vec<ExecutionRecord>> {
        let conn = self.reader.lock();
        let mut stmt = conn
            .prepare(&format!("SELECT {EXECUTION_COLUMNS} FROM executions e ORDER BY started_at"))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], execution_from_row).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    fn execution(&self, id: &str) -> Result<ExecutionRecord> {
        let conn = self.reader.lock();
        let found = conn
            .query_row(&format!("SELECT {EXECUTION_COLUMNS} FROM executions e WHERE id = ?1"), [id], execution_from_row)
            .optional()
            .map_err(|e| self.err(e))?;
        if let Some(record) = found {
            return Ok(record);
        }
        // A unique prefix is enough, as with git commits.
        let mut stmt = conn
            .prepare(&format!("SELECT {EXECUTION_COLUMNS} FROM executions e WHERE id LIKE ?1 || '%' LIMIT 2"))
            .map_err(|e| self.err(e))?;
        let matches =
            stmt.query_map([id], execution_from_row).map_err(|e| self.err(e))?.collect::<rusqlite::Result<Vec<_>>>();
        match matches.map_err(|e| self.err(e))?.as_slice() {
            [one] if !id.is_empty() => Ok(one.clone()),
            _ => Err(StoreError::NoSuchExecution(id.to_string())),
        }
    }

    fn tasks(&self, id: &str) -> Result<Vec<StoredTask>> {
        let conn = self.reader.lock();
        let mut stmt = conn
            .prepare(
                "SELECT task_key, body FROM events
                 WHERE position > ?1 AND position < ?2 AND task_key IS NOT NULL ORDER BY position",
            )
            .map_err(|e| self.err(e))?;
        let number = self.number(&conn, id)?;
        let rows = stmt
            .query_map(params![position(number, 0), position(number + 1, 0)], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| self.err(e))?;
        let mut tasks = TaskFold::default();
        for row in rows {
            let (key, body) = row.map_err(|e| self.err(e))?;
            tasks.apply(key, &body);
        }
        Ok(tasks.finish())
    }

    fn events_after(&self, id: &str, after: u64) -> Result<Vec<(u64, String)>> {
        let conn = self.reader.lock();
        let mut stmt = conn
            .prepare_cached("SELECT position, body FROM events WHERE position > ?1 AND position < ?2 ORDER BY position")
            .map_err(|e| self.err(e))?;
        let number = self.number(&conn, id)?;
        let rows = stmt
            .query_map(params![position(number, after), position(number + 1, 0)], |row| {
                let at: i64 = row.get(0)?;
                Ok(((at & ((1 << 40) - 1)) as u64, row.get(1)?))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))
    }

    fn request_cancel(&self, id: &str, force: bool) -> Result<()> {
        let conn = self.reader.lock();
        let changed = conn
            .execute(
                "UPDATE executions SET cancel_request = MAX(cancel_request, ?2) WHERE id = ?1",
                params![id, if force { 2 } else { 1 }],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(StoreError::NoSuchExecution(id.to_string()));
        }
        Ok(())
    }

    fn claim(&self, seen: &ExecutionRecord, pid: u32) -> Result<bool> {
        let conn = self.reader.lock();
        let changed = conn
            .execute(
                "UPDATE executions SET pid = ?2, status = 'running' WHERE id = ?1 AND pid = ?3 AND status = ?4",
                params![seen.id, pid, seen.pid, seen.status.as_str()],
            )
            .map_err(|e| self.err(e))?;
        Ok(changed == 1)
    }

    fn cancel_request(&self, id: &str) -> Result<u8> {
        let conn = self.reader.lock();
        conn.query_row("SELECT cancel_request FROM executions WHERE id = ?1", [id], |row| row.get(0))
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(|e| self.err(e))
    }
}
