//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through one writer thread per process, which takes every queued write, commits
//! them in one transaction (group commit), then publishes the highest committed event `seq`;
//! a task's dependents wait on that watch, so nothing runs on top of a success that is not on
//! disk. Reads use their own connection: WAL lets readers and the writer proceed together,
//! and several processes share one file (a busy writer makes the others wait, not fail).

use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use tokio::sync::watch;

use super::{ExecutionRecord, ExecutionStatus, Result, Store, StoreError, StoredTask, TaskRow};
use crate::events::{Event, ExecutionLabel};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS executions (
    id TEXT PRIMARY KEY,
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
    last_seq INTEGER NOT NULL DEFAULT 0,
    cancel_request INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tasks (
    execution_id TEXT NOT NULL,
    key TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    current_retries INTEGER NOT NULL,
    result TEXT,
    error TEXT,
    PRIMARY KEY (execution_id, key)
) WITHOUT ROWID;
";

enum WriteOp {
    Begin(Box<ExecutionRecord>),
    Event { execution_id: String, seq: u64, kind: &'static str, body: String, task: Option<TaskRow> },
    Planned { execution_id: String, count: u64 },
    End { execution_id: String, status: ExecutionStatus, error: Option<String>, at: String },
    Sync(SyncSender<()>),
}

pub struct SqliteStore {
    path: PathBuf,
    reader: Mutex<Connection>,
    writes: Mutex<Sender<WriteOp>>,
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
            conn.execute_batch(&format!("BEGIN IMMEDIATE; {SCHEMA} COMMIT;")).map_err(|e| database_error(path, e))?;
            Ok(conn)
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
        let (tx, rx) = channel();
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
}

/// Takes every write that is queued, commits them together, publishes the committed `seq`.
fn write_loop(mut conn: Connection, rx: Receiver<WriteOp>, committed: watch::Sender<u64>, path: PathBuf) {
    let mut reported = false;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 20_000 {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if let Err(e) = write_batch(&mut conn, &batch) {
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

fn write_batch(conn: &mut Connection, batch: &[WriteOp]) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
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
            }
            WriteOp::Event { execution_id, seq, kind, body, task } => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO events (execution_id, seq, type, body) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![execution_id, seq, kind, body])?;
                if let Some(t) = task {
                    tx.prepare_cached(
                        "INSERT INTO tasks (execution_id, key, name, kind, state, attempts, current_retries, result, error)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                         ON CONFLICT(execution_id, key) DO UPDATE SET state = excluded.state,
                           attempts = tasks.attempts + excluded.attempts, current_retries = excluded.current_retries,
                           result = COALESCE(excluded.result, tasks.result), error = excluded.error",
                    )?
                    .execute(params![
                        execution_id,
                        t.key,
                        t.name,
                        t.kind,
                        t.state,
                        t.attempt,
                        t.current_retries,
                        t.result,
                        t.error
                    ])?;
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
    // One update of each execution's last seq per batch, not one per event.
    let mut last: Vec<(&str, u64)> = Vec::new();
    for op in batch {
        if let WriteOp::Event { execution_id, seq, .. } = op {
            match last.iter_mut().find(|(id, _)| *id == execution_id.as_str()) {
                Some((_, s)) => *s = (*s).max(*seq),
                None => last.push((execution_id, *seq)),
            }
        }
    }
    for (id, seq) in last {
        tx.prepare_cached("UPDATE executions SET last_seq = MAX(last_seq, ?2) WHERE id = ?1")?
            .execute(params![id, seq])?;
    }
    tx.commit()
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

const EXECUTION_COLUMNS: &str = "id, workflow, script, parameters, options, status, started_at, ended_at, error, pid,
    resumes, tasks_total, last_seq,
    (SELECT COUNT(*) FROM tasks t WHERE t.execution_id = e.id AND t.state IN ('succeeded', 'ignored') AND t.kind != 'subgraph')";

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

    fn append(&self, label: &ExecutionLabel, event: &Event, task: Option<TaskRow>) {
        self.send(WriteOp::Event {
            execution_id: label.execution_id.to_string(),
            seq: event.seq,
            kind: event.payload.type_name(),
            body: event.to_json(label).to_string(),
            task,
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
                "SELECT key, name, kind, state, attempts, current_retries, result, error FROM tasks
                 WHERE execution_id = ?1",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([id], |row| {
                let result: Option<String> = row.get(6)?;
                Ok(StoredTask {
                    key: row.get(0)?,
                    name: row.get(1)?,
                    kind: row.get(2)?,
                    state: row.get(3)?,
                    attempts: row.get(4)?,
                    current_retries: row.get(5)?,
                    result: result.and_then(|r| serde_json::from_str(&r).ok()),
                    error: row.get(7)?,
                })
            })
            .map_err(|e| self.err(e))?;
        let mut tasks = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))?;
        tasks.sort_by_key(|t| t.index());
        Ok(tasks)
    }

    fn events_after(&self, id: &str, after: u64) -> Result<Vec<(u64, String)>> {
        let conn = self.reader.lock();
        let mut stmt = conn
            .prepare_cached("SELECT seq, body FROM events WHERE execution_id = ?1 AND seq > ?2 ORDER BY seq")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params![id, after], |row| Ok((row.get(0)?, row.get(1)?))).map_err(|e| self.err(e))?;
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

    fn cancel_request(&self, id: &str) -> Result<u8> {
        let conn = self.reader.lock();
        conn.query_row("SELECT cancel_request FROM executions WHERE id = ?1", [id], |row| row.get(0))
            .optional()
            .map(|v| v.unwrap_or(0))
            .map_err(|e| self.err(e))
    }
}
