//! The embedded store: one SQLite file in WAL mode.
//!
//! Writes go through one writer thread per process, which takes every queued write
//! (`write_queue`), commits them in one transaction (group commit), then publishes the highest
//! committed event `seq` (`CommitState`); a task's dependents wait on that watch, so nothing
//! runs on top of a success that is not on disk. A commit that fails is published as such and
//! the watermark stops there: the run learns it and fails, instead of going on as if it were
//! recorded. Events are stored many to a row (`event_rows`). Reads use their own connection:
//! WAL lets readers and the writer proceed together, and several processes share one file (a
//! busy writer makes the others wait, not fail). A row that does not read as rhaiflow wrote it
//! is reported as damage (`StoreError::Corrupt`), never read as a default.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{MappedMutexGuard, Mutex, MutexGuard};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, TransactionBehavior};
use serde_json::Value;
use tokio::sync::watch;

use super::event_rows::{each_event_after, label_fields, StoredEvent};
use super::records::{Runner, TaskFold};
use super::write_queue::{Batch, WriteOp};
use super::writer::{BatchWriter, Writes};
use super::{
    CommitListener, CommitState, ExecutionQuery, ExecutionRecord, ExecutionStatus, Result, ShownStatus, Store,
    StoreError, StoredTask,
};
use crate::events::{Event, ExecutionLabel};

/// Task states are not a table of their own: they are folded from the task events when read.
/// Events are kept many to a row (`event_rows`): `position` is the execution's number and the
/// seq of the row's last event, `first_seq` the seq of its first.
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
    cancel_request INTEGER NOT NULL DEFAULT 0,
    -- Who asked for the cancel, when known.
    cancel_by TEXT
);
-- An API request's Idempotency-Key starts one execution, whichever process is asked.
CREATE UNIQUE INDEX IF NOT EXISTS executions_idempotency_key ON executions (json_extract(options, '$.idempotency.key'))
    WHERE json_extract(options, '$.idempotency.key') IS NOT NULL;
CREATE TABLE IF NOT EXISTS event_rows (
    position INTEGER PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    events BLOB NOT NULL
);
";

/// An event row's id: its execution's number in the high bits, the seq of its last event in
/// the low 40. Events of a run are then appended at the end of the table's b-tree, the
/// cheapest insert SQLite has; an execution's events are one range, and the rows holding the
/// events after seq N are the rows from `position(execution, N)` on.
fn position(execution: i64, seq: u64) -> i64 {
    (execution << 40) | (seq as i64 & ((1 << 40) - 1))
}

/// Indexes added after their schema version; additive, so a store without them is read
/// the same, only slower: each open makes them where they are missing.
/// - `executions_started`: executions newest first (listings, `rhaiflow serve`'s pages and its
///   watcher) walk it instead of sorting every execution: a page of 100 of 10,000 took 35 ms
///   (p50), 1 ms with the index (docs/PERFORMANCE.md, "rhaiflow serve").
/// - `executions_unfinished`: the few executions queued or running, newest first, without
///   walking the finished ones (`serve`'s watcher looks for them 20 times a second: 5.5 ms a look
///   among 10,000 executions, 0.06 ms with the index).
const INDEXES: &str = "
CREATE INDEX IF NOT EXISTS executions_started ON executions (started_at, number);
CREATE INDEX IF NOT EXISTS executions_unfinished ON executions (started_at, number)
    WHERE status IN ('queued', 'running');";

/// Makes `INDEXES` where they are missing (a look, and a write only then). A store that cannot
/// be written here (a read-only copy) is read without them.
fn add_indexes(conn: &Connection) {
    let present = conn.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index'
         AND name IN ('executions_started', 'executions_unfinished')",
        [],
        |r| r.get::<_, i64>(0),
    );
    if present != Ok(2) {
        let _ = conn.execute_batch(INDEXES);
    }
}

/// The listing of `executions`, newest first. When only unfinished statuses are asked for, the
/// condition is also written out literally: SQLite uses a partial index only for a query that
/// names its condition, never for one that depends on a parameter.
fn listing_sql(unfinished_only: bool) -> String {
    let statuses = if unfinished_only {
        "status IN ('queued', 'running') AND status IN (SELECT value FROM json_each(?1))"
    } else {
        "(?1 IS NULL OR status IN (SELECT value FROM json_each(?1)))"
    };
    format!(
        "SELECT {EXECUTION_COLUMNS} FROM executions e
         WHERE {statuses}
           AND (?2 IS NULL OR workflow = ?2) AND (?3 IS NULL OR started_at >= ?3)
           AND (?5 IS NULL OR started_at < ?5 OR (started_at = ?5
                AND number < COALESCE((SELECT number FROM executions WHERE id = ?6), -1)))
           AND (?7 IS NULL OR json_extract(options, '$.idempotency.key') = ?7)
         ORDER BY started_at DESC, number DESC LIMIT ?4"
    )
}

/// Bumped when the schema changes, so an old file is recognised instead of misread.
/// 4: events many to a row, without the execution's id and workflow in each.
/// 5: who asked for a cancel (`cancel_by`), an Idempotency-Key once; a file of format 4 is
/// brought to it.
/// 6: events keep their `seq` and time in binary beside their JSON (`event_rows`); the rows of
/// a file of format 4 or 5 read as before, so it is only marked.
/// 7: events keep their type, and a graph, in binary, a task's fields once for its start and
/// end (`event_rows`); the rows of a file of format 4 to 6 read as before, so it is only
/// marked.
const SCHEMA_VERSION: i64 = 7;

pub struct SqliteStore {
    path: PathBuf,
    /// Opened at its first read: a short run never reads (its cancel watcher first looks after
    /// 200 ms), and a connection parses the whole schema (~450,000 instructions).
    reader: Mutex<Option<Connection>>,
    writes: Writes,
}

/// A connection of its own to the store file at `path` (`location`), for the tables kept
/// beside the executions (deployments, tokens), with their `schema` made if needed.
pub(super) fn side_connection(location: &super::StoreLocation, path: &Path, schema: &str) -> Result<Connection> {
    // The execution store creates the file and checks its schema version first.
    drop(super::open(location)?);
    let fail = |e: rusqlite::Error| StoreError::Open { path: path.to_path_buf(), message: e.to_string() };
    let conn = Connection::open(path).map_err(fail)?;
    conn.busy_timeout(std::time::Duration::from_secs(30)).map_err(fail)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(fail)?;
    // The execution store's connection, dropped, may have removed the WAL.
    sync_folder_of_new_wal(&conn, path)?;
    conn.execute_batch(schema).map_err(fail)?;
    Ok(conn)
}

pub(super) fn database_error(path: &Path, e: rusqlite::Error) -> StoreError {
    let corrupt = |message: String| StoreError::Corrupt { path: path.to_path_buf(), message };
    match e {
        // A value rhaiflow never writes: read as a default, it would be a guess.
        rusqlite::Error::FromSqlConversionFailure(_, _, reason) => corrupt(reason.to_string()),
        rusqlite::Error::InvalidColumnType(..) | rusqlite::Error::IntegralValueOutOfRange(..) => {
            corrupt(format!("a value of the wrong type: {e}"))
        }
        _ => match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => corrupt(e.to_string()),
            _ => StoreError::Database(e.to_string()),
        },
    }
}

/// A row value that does not read as rhaiflow wrote it; `database_error` reports it as damage.
pub(super) fn damaged(column: usize, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, message.into())
}

/// How long a statement waits for another process's lock before it reports "busy".
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The WAL a process leaves behind at most, in bytes (`leave`).
const WAL_KEPT: u64 = 1 << 20;

fn connect(path: &Path) -> Result<Connection> {
    let conn =
        Connection::open(path).map_err(|e| StoreError::Open { path: path.to_path_buf(), message: e.to_string() })?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| database_error(path, e))?;
    // FULL: a commit survives a power loss, not only a killed process. Group commit pays the
    // fsync once per batch. (WAL comes once the file is known to be ours: `initialise`.)
    conn.pragma_update(None, "synchronous", "FULL").map_err(|e| database_error(path, e))?;
    // The WAL's file is cut back to this when its frames start over (`leave`), not to nothing.
    conn.pragma_update(None, "journal_size_limit", WAL_KEPT as i64).map_err(|e| database_error(path, e))?;
    Ok(conn)
}

/// WAL: readers never block the writer. It changes the file, so only a rhaiflow store gets it.
fn use_wal(conn: Connection, path: &Path) -> Result<Connection> {
    conn.pragma_update(None, "journal_mode", "WAL").map_err(|e| database_error(path, e))?;
    sync_folder_of_new_wal(&conn, path)?;
    Ok(conn)
}

/// The store's WAL file.
fn wal_path(path: &Path) -> PathBuf {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// Makes a new WAL's entry in its folder durable, before anything is committed in it; true
/// when it did. SQLite synced the folder at the first commit of every connection, a fifth of
/// that commit's time, though only a new WAL needs it: it is built not to
/// (`SQLITE_DISABLE_DIRSYNC`, in .cargo/config.toml), and this does it instead. A WAL that
/// holds anything was written after its creator synced the folder here; an empty one may be
/// new. `conn` reads first: a read opens the WAL (creating it when the file was just switched
/// to WAL), and while it is open no other process removes it.
fn sync_folder_of_new_wal(conn: &Connection, path: &Path) -> Result<bool> {
    conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)).map_err(|e| database_error(path, e))?;
    if std::fs::metadata(wal_path(path)).is_ok_and(|m| m.len() > 0) {
        return Ok(false);
    }
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(folder)
        .and_then(|folder| folder.sync_all())
        .map_err(|e| StoreError::Open { path: path.to_path_buf(), message: format!("cannot sync its folder: {e}") })?;
    Ok(true)
}

/// Opens the file and creates the tables. Processes starting together on a new file race to
/// create it: setting WAL mode or the schema can then report "busy" at once, without waiting
/// for the busy timeout, so those steps are retried.
fn initialise(path: &Path) -> Result<Connection> {
    let mut tries = 0;
    loop {
        let attempt = connect(path).and_then(|conn| {
            // Set up already (every start but the first): a read says so, without taking the
            // write lock that many busy writers of one store would make every command wait for.
            let version: i64 =
                conn.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(|e| database_error(path, e))?;
            if version == SCHEMA_VERSION {
                return use_wal(conn, path);
            }
            // A new file is made a WAL database before its tables are created: they are
            // written through the WAL, whose folder entry is synced, not through a rollback
            // journal, whose entry SQLite no longer syncs. (The switch itself writes the
            // empty file's first page through one: a power loss during it can only leave a
            // store with nothing recorded in it.)
            let conn = if std::fs::metadata(path).is_ok_and(|m| m.len() == 0) { use_wal(conn, path)? } else { conn };
            conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| database_error(path, e))?;
            let created = (|| {
                let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
                let tables: i64 =
                    conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0))?;
                if version == SCHEMA_VERSION {
                    // Set up already: writing nothing keeps the commit free of an fsync, on
                    // every start of every process.
                    return Ok(None);
                }
                if version == 4 {
                    conn.execute_batch(
                        "ALTER TABLE executions ADD COLUMN cancel_by TEXT;
                         CREATE UNIQUE INDEX executions_idempotency_key
                             ON executions (json_extract(options, '$.idempotency.key'))
                             WHERE json_extract(options, '$.idempotency.key') IS NOT NULL;",
                    )?;
                }
                if (4..SCHEMA_VERSION).contains(&version) {
                    conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                    return Ok(None);
                }
                if tables > 0 {
                    return Ok(Some((version, is_ours(&conn)?)));
                }
                conn.execute_batch(SCHEMA)?;
                conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
                Ok(None)
            })();
            let commit = matches!(created, Ok(None));
            let ended = conn.execute_batch(if commit { "COMMIT" } else { "ROLLBACK" });
            // A failed COMMIT leaves the schema unwritten; a failed ROLLBACK only follows the
            // error (or the other version) already being reported.
            let created = if commit { ended.map(|()| None) } else { created };
            match created.map_err(|e| database_error(path, e))? {
                None => use_wal(conn, path),
                Some((found, true)) => {
                    Err(StoreError::OtherVersion { path: path.to_path_buf(), found, reads: SCHEMA_VERSION })
                }
                Some((_, false)) => Err(StoreError::Foreign { path: path.to_path_buf() }),
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

/// Whether a database with tables is a rhaiflow store of some format: every format has had a
/// user_version and an `executions` table; a database without is another program's.
fn is_ours(conn: &Connection) -> rusqlite::Result<bool> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let executions: i64 =
        conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'executions'", [], |r| {
            r.get(0)
        })?;
    Ok(version > 0 || executions > 0)
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Open { path: path.to_path_buf(), message: e.to_string() })?;
        }
        let writer = initialise(path)?;
        add_indexes(&writer);
        prepare_commits(&writer);
        let writes = Writes::start(SqliteWriter { conn: writer, numbers: HashMap::new() }, path.to_path_buf())?;
        Ok(SqliteStore { path: path.to_path_buf(), reader: Mutex::new(None), writes })
    }

    /// The reading connection, opened now if this is the first read.
    fn reader(&self) -> Result<MappedMutexGuard<'_, Connection>> {
        let mut reader = self.reader.lock();
        if reader.is_none() {
            *reader = Some(initialise(&self.path)?);
        }
        Ok(MutexGuard::map(reader, |r| r.as_mut().expect("opened above")))
    }

    fn send(&self, op: WriteOp) {
        self.writes.push_op(op);
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        database_error(&self.path, e)
    }

    fn corrupt(&self, message: String) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), message }
    }

    /// The compact number of execution `id`, which keys its events, and the JSON fields its
    /// events share (`ExecutionLabel::write_json_fields`), which their rows leave out.
    fn number_and_label(&self, conn: &Connection, id: &str) -> Result<(i64, String)> {
        let (number, workflow): (i64, String) = conn
            .query_row("SELECT number, workflow FROM executions WHERE id = ?1", [id], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .map_err(|e| self.err(e))?
            .ok_or_else(|| StoreError::NoSuchExecution(id.to_string()))?;
        Ok((number, label_fields(id, &workflow)))
    }

    /// Calls `each` with every stored event of execution `number` after seq `after`, in order;
    /// an event `each` cannot read (its message) is damage.
    fn read_events(
        &self,
        conn: &Connection,
        number: i64,
        after: u64,
        mut each: impl FnMut(StoredEvent<'_>) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let mut stmt = conn
            .prepare_cached("SELECT events FROM event_rows WHERE position > ?1 AND position < ?2 ORDER BY position")
            .map_err(|e| self.err(e))?;
        let mut rows =
            stmt.query(params![position(number, after), position(number + 1, 0)]).map_err(|e| self.err(e))?;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let body = row.get_ref(0).and_then(|v| Ok(v.as_blob()?)).map_err(|e| self.err(e))?;
            each_event_after(body, after, &mut each).map_err(|message| self.corrupt(message))?;
        }
        Ok(())
    }
}

/// Why a commit failed.
#[derive(Debug, thiserror::Error)]
enum WriteFailure {
    #[error("{0}")]
    Database(#[from] rusqlite::Error),
    #[error("this is a bug in rhaiflow: events of execution {0} came before its start was recorded; please report it")]
    UnknownExecution(Arc<str>),
}

/// The SQLite side of the writer: one IMMEDIATE transaction a batch.
struct SqliteWriter {
    conn: Connection,
    numbers: HashMap<Arc<str>, i64>,
}

impl BatchWriter for SqliteWriter {
    fn write(&mut self, batch: &Batch) -> std::result::Result<(), String> {
        write_batch(&mut self.conn, batch, &mut self.numbers).map_err(|e| e.to_string())
    }
}

/// What a commit of the writer runs. Parsed while the store opens (`prepare_commits`), not by
/// the first commit: a small run's start commit is on its path to its first task.
const INSERT_ROW: &str = "INSERT OR REPLACE INTO event_rows (position, first_seq, events) VALUES (?1, ?2, ?3)";
const PLANNED: &str = "UPDATE executions SET tasks_total = tasks_total + ?2 WHERE id = ?1";
const ENDED: &str = "UPDATE executions SET status = ?2, error = ?3, ended_at = ?4 WHERE id = ?1";
const PROGRESS: &str =
    "UPDATE executions SET last_seq = MAX(last_seq, ?2), tasks_done = tasks_done + ?3 WHERE number = ?1";
const BEGUN: &str =
    "INSERT INTO executions (id, workflow, script, parameters, options, status, started_at, pid, resumes)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
     ON CONFLICT(id) DO UPDATE SET status = excluded.status, pid = excluded.pid,
       resumes = excluded.resumes, ended_at = NULL, error = NULL, cancel_request = 0, cancel_by = NULL,
       tasks_total = 0";
const NUMBER: &str = "SELECT number FROM executions WHERE id = ?1";
const COMMITS: [&str; 6] = [INSERT_ROW, PLANNED, ENDED, PROGRESS, BEGUN, NUMBER];

/// Puts the statements of `write_batch` in `conn`'s cache. One that fails is left for the
/// commit that runs it to report.
fn prepare_commits(conn: &Connection) {
    for sql in COMMITS {
        let _ = conn.prepare_cached(sql);
    }
}

fn write_batch(
    conn: &mut Connection,
    batch: &Batch,
    numbers: &mut HashMap<Arc<str>, i64>,
) -> std::result::Result<(), WriteFailure> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // An execution's start comes first: its events are keyed by the number it gets. Known only
    // once committed: rolled back, the number may go to another process's execution.
    let mut begun: HashMap<Arc<str>, i64> = HashMap::new();
    for op in &batch.ops {
        if let WriteOp::Begin(r) = op {
            begun.insert(Arc::from(r.id.as_str()), begin_execution(&tx, r)?);
        }
    }
    // Per execution in this batch: its highest seq and how many tasks got done.
    let mut progress: Vec<(i64, u64, u64)> = Vec::new();
    let mut insert_row = tx.prepare_cached(INSERT_ROW)?;
    for row in &batch.rows {
        // Skipped, these events would be lost while counting as committed.
        let Some(&number) = begun.get(&row.execution_id).or_else(|| numbers.get(&row.execution_id)) else {
            return Err(WriteFailure::UnknownExecution(row.execution_id.clone()));
        };
        insert_row.execute(params![position(number, row.last_seq), row.first_seq, row.body])?;
        match progress.iter_mut().find(|(n, _, _)| *n == number) {
            Some((_, last, done)) => {
                *last = (*last).max(row.last_seq);
                *done += row.tasks_done;
            }
            None => progress.push((number, row.last_seq, row.tasks_done)),
        }
    }
    drop(insert_row);
    for op in &batch.ops {
        match op {
            WriteOp::Planned { execution_id, count } => {
                tx.prepare_cached(PLANNED)?.execute(params![execution_id, count])?;
            }
            WriteOp::End { execution_id, status, error, at } => {
                tx.prepare_cached(ENDED)?.execute(params![execution_id, status.as_str(), error, at])?;
            }
            WriteOp::Begin(_) | WriteOp::Sync(_) => {}
        }
    }
    for (number, seq, done) in progress {
        tx.prepare_cached(PROGRESS)?.execute(params![number, seq, done])?;
    }
    tx.commit()?;
    numbers.extend(begun);
    Ok(())
}

/// Records an execution's start; gives its number.
fn begin_execution(tx: &rusqlite::Transaction<'_>, r: &ExecutionRecord) -> rusqlite::Result<i64> {
    tx.prepare_cached(BEGUN)?.execute(params![
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
    tx.prepare_cached(NUMBER)?.query_row([&r.id], |row| row.get(0))
}

/// Another execution running on the stored deployment `deployment` (as a busy error), if
/// there is one; one whose process is gone crashed and does not count.
fn running_on(tx: &rusqlite::Transaction<'_>, deployment: &str, own_id: &str) -> rusqlite::Result<Option<StoreError>> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, workflow, pid FROM executions WHERE status = ?3 AND id != ?2
           AND json_extract(options, '$.deployment') = ?1 AND json_extract(options, '$.deployment_stored') = 1
         ORDER BY number",
    )?;
    let rows = stmt.query_map(params![deployment, own_id, ExecutionStatus::Running.as_str()], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    for row in rows {
        let (execution, workflow, pid): (String, String, u32) = row?;
        if super::records::process_alive(pid) {
            return Ok(Some(StoreError::DeploymentBusy {
                deployment: deployment.to_string(),
                execution,
                workflow,
                pid,
            }));
        }
    }
    Ok(None)
}

fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

const EXECUTION_COLUMNS: &str = "id, workflow, script, parameters, options, status, started_at, ended_at, error, pid,
    resumes, tasks_total, last_seq, tasks_done";

/// An execution's row; a status, parameters or options rhaiflow would not have written are
/// damage: read as a default, a damaged execution could be taken for a crashed one and resumed.
fn execution_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    let id: String = row.get(0)?;
    let status: String = row.get(5)?;
    let status = ExecutionStatus::parse(&status)
        .ok_or_else(|| damaged(5, format!("execution {id} has the status `{status}`, which rhaiflow never writes")))?;
    Ok(ExecutionRecord {
        parameters: json_object_column(row, 3, "parameters", &id)?,
        options: json_object_column(row, 4, "options", &id)?,
        id,
        workflow: row.get(1)?,
        script: row.get(2)?,
        status,
        started_at: row.get(6)?,
        ended_at: row.get(7)?,
        error: row.get(8)?,
        pid: row.get(9)?,
        runner: Runner::Process,
        resumes: row.get(10)?,
        tasks_total: row.get(11)?,
        last_seq: row.get(12)?,
        tasks_done: row.get(13)?,
    })
}

/// A column holding a JSON object (an execution's parameters or options).
fn json_object_column(row: &rusqlite::Row<'_>, column: usize, what: &str, id: &str) -> rusqlite::Result<Value> {
    let text: String = row.get(column)?;
    super::records::json_object(&text, what, id).map_err(|message| damaged(column, message))
}

impl Store for SqliteStore {
    fn begin_queued(&self, record: &ExecutionRecord) {
        self.send(WriteOp::Begin(Box::new(record.clone())));
    }

    fn begin_on_deployment(&self, record: &ExecutionRecord, deployment: &str) -> Result<()> {
        {
            let mut conn = self.reader()?;
            // IMMEDIATE: the write lock is taken before the check, so no other process can
            // record its start between this one's check and its record.
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
            if let Some(running) = running_on(&tx, deployment, &record.id).map_err(|e| self.err(e))? {
                return Err(running);
            }
            begin_execution(&tx, record).map_err(|e| self.err(e))?;
            tx.commit().map_err(|e| self.err(e))?;
        }
        // The writer records it again (the same row), and learns its number.
        self.begin(record)
    }

    fn append(&self, label: &ExecutionLabel, event: &Event) {
        self.writes.push_event(&label.execution_id, event);
    }

    fn planned(&self, execution_id: &str, count: u64) {
        self.send(WriteOp::Planned { execution_id: execution_id.to_string(), count });
    }

    /// Queued: a failure to write it is reported by the `flush` that follows.
    fn end(&self, execution_id: &str, status: ExecutionStatus, error: Option<String>) -> Result<()> {
        self.send(WriteOp::End { execution_id: execution_id.to_string(), status, error, at: now() });
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.writes.flush()
    }

    /// A WAL past `WAL_KEPT` is copied into the database and started over from its beginning.
    /// A process ends without closing its connections, so the WAL stays, and the next process
    /// to open the file reads and checksums every frame of it (SQLite's recovery), counting them
    /// all as not yet copied. So after the checkpoint a one-page write puts a new header at the
    /// WAL's start, which ends the WAL there for the next reader, and the `journal_size_limit`
    /// cuts the file back to `WAL_KEPT`. The file's blocks stay: the next runs' commits rewrite
    /// them in place, and an fsync of a file whose size did not change is half the cost of one
    /// that grew it (docs/PERFORMANCE.md). The WAL file grows past `WAL_KEPT` only when its
    /// live frames do, which is what its length tells here. A checkpoint costs fsyncs, so not
    /// at every run: about one run in 25 of `hello.rhai` pays it. Without waiting: while
    /// another process uses the file, the WAL stays as it is (busy).
    ///
    /// The writer's connection is never closed: SQLite's close of a file's last connection
    /// copies the whole WAL into the database and removes it (fsyncs at this exit, and a new
    /// WAL with its folder synced at the next start), and it would race the process's exit.
    fn leave(&self) {
        self.writes.keep_writer_open();
        if std::fs::metadata(wal_path(&self.path)).map_or(true, |m| m.len() <= WAL_KEPT) {
            return;
        }
        let Ok(conn) = self.reader() else { return };
        if conn.busy_timeout(Duration::ZERO).is_ok() {
            let busy = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |r| r.get::<_, i64>(0));
            if busy == Ok(0) {
                // The same version again: a write of page 1, which starts the WAL over.
                let _ = conn.pragma_update(None, "user_version", SCHEMA_VERSION);
            }
            let _ = conn.busy_timeout(BUSY_TIMEOUT);
        }
    }

    fn committed(&self) -> Option<watch::Receiver<CommitState>> {
        Some(self.writes.committed())
    }

    fn on_commit(&self, listener: CommitListener) {
        self.writes.on_commit(listener);
    }

    fn executions(&self, query: &ExecutionQuery) -> Result<Vec<ExecutionRecord>> {
        let conn = self.reader()?;
        // Running and crashed are one stored status: told apart (and only then limited) here.
        let limit = match query.limit {
            Some(n) if !query.needs_process_check() => i64::try_from(n).unwrap_or(i64::MAX),
            _ => -1,
        };
        let stored = query.stored_statuses();
        let unfinished_only =
            stored.as_ref().is_some_and(|s| s.iter().all(|status| ["queued", "running"].contains(status)));
        let mut stmt = conn.prepare(&listing_sql(unfinished_only)).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(
                params![
                    stored.map(|s| serde_json::to_string(&s).unwrap_or_default()),
                    query.workflow,
                    query.since,
                    limit,
                    query.older_than.as_ref().map(|(started_at, _)| started_at),
                    query.older_than.as_ref().map(|(_, id)| id),
                    query.idempotency_key,
                ],
                execution_from_row,
            )
            .map_err(|e| self.err(e))?;
        let all = rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))?;
        let wanted = all.into_iter().filter(|r| query.wants(r));
        Ok(wanted.take(query.limit.unwrap_or(usize::MAX)).collect())
    }

    fn prune(&self, statuses: &[ShownStatus], before: &str, only: Option<&str>) -> Result<Vec<ExecutionRecord>> {
        let mut conn = self.reader()?;
        // One transaction that holds the write lock: a resume cannot take an execution over
        // between the look at it and its removal.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
        let candidates: Vec<(i64, ExecutionRecord)> = {
            let mut stmt = tx
                .prepare(&format!(
                    "SELECT {EXECUTION_COLUMNS}, number FROM executions e
                     WHERE COALESCE(ended_at, started_at) < ?1 AND (?2 IS NULL OR id = ?2)
                     ORDER BY started_at, number"
                ))
                .map_err(|e| self.err(e))?;
            let rows = stmt
                .query_map(params![before, only], |row| Ok((row.get(14)?, execution_from_row(row)?)))
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(|e| self.err(e))?
        };
        let mut removed = Vec::new();
        for (number, record) in candidates.into_iter().filter(|(_, r)| r.prunable(statuses, before)) {
            tx.execute(
                "DELETE FROM event_rows WHERE position > ?1 AND position < ?2",
                params![position(number, 0), position(number + 1, 0)],
            )
            .map_err(|e| self.err(e))?;
            tx.execute("DELETE FROM executions WHERE number = ?1", [number]).map_err(|e| self.err(e))?;
            removed.push(record);
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(removed)
    }

    fn execution(&self, id: &str) -> Result<ExecutionRecord> {
        let conn = self.reader()?;
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
        let conn = self.reader()?;
        let (number, _) = self.number_and_label(&conn, id)?;
        let mut tasks = TaskFold::default();
        self.read_events(&conn, number, 0, |event| match event.serial {
            Some(serial) => tasks.apply(serial, &event.json("")),
            None => Ok(()),
        })?;
        Ok(tasks.finish())
    }

    fn events_after(&self, id: &str, after: u64) -> Result<Vec<(u64, String)>> {
        let conn = self.reader()?;
        let (number, label) = self.number_and_label(&conn, id)?;
        let mut events = Vec::new();
        self.read_events(&conn, number, after, |event| {
            // Checked here, as `tasks` reads them: a reader must not pass damage on as an event.
            events.push((event.seq, event.checked_json(&label)?));
            Ok(())
        })?;
        Ok(events)
    }

    fn request_cancel(&self, id: &str, force: bool, by: Option<&str>) -> Result<()> {
        let conn = self.reader()?;
        let changed = conn
            .execute(
                "UPDATE executions SET cancel_request = MAX(cancel_request, ?2), cancel_by = COALESCE(?3, cancel_by)
                 WHERE id = ?1",
                params![id, if force { 2 } else { 1 }, by],
            )
            .map_err(|e| self.err(e))?;
        if changed == 0 {
            return Err(StoreError::NoSuchExecution(id.to_string()));
        }
        Ok(())
    }

    fn claim(&self, seen: &ExecutionRecord, pid: u32) -> Result<bool> {
        let mut conn = self.reader()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| self.err(e))?;
        // An execution on a stored deployment is taken over only while no other runs on it:
        // refused later, it would be left as if running in this process.
        let stored = seen.options["deployment_stored"] == Value::Bool(true);
        if let (true, Some(deployment)) = (stored, seen.options["deployment"].as_str()) {
            if let Some(running) = running_on(&tx, deployment, &seen.id).map_err(|e| self.err(e))? {
                return Err(running);
            }
        }
        let changed = tx
            .execute(
                "UPDATE executions SET pid = ?2, status = ?5 WHERE id = ?1 AND pid = ?3 AND status = ?4",
                params![seen.id, pid, seen.pid, seen.status.as_str(), ExecutionStatus::Running.as_str()],
            )
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(changed == 1)
    }

    fn cancel_request(&self, id: &str) -> Result<(u8, Option<String>)> {
        let conn = self.reader()?;
        conn.query_row("SELECT cancel_request, cancel_by FROM executions WHERE id = ?1", [id], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .map(|v| v.unwrap_or((0, None)))
        .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Payload;
    use crate::store::event_rows::RowBuilder;

    /// Writes execution `e-1` with one row of events `body` (its last seq `last_seq`) into the
    /// store file at `path`, as a rhaiflow of store format `version` would have.
    fn write_old_execution(path: &Path, version: i64, status: &str, last_seq: u64, body: Vec<u8>) {
        let conn = Connection::open(path).unwrap();
        conn.execute(
            "INSERT INTO executions (number, id, workflow, script, parameters, options, status, started_at, pid)
             VALUES (1, 'e-1', 'w', 'w.rhai', '{}', '{}', ?1, '2026-12-01T00:00:00Z', 1)",
            [status],
        )
        .unwrap();
        conn.execute("INSERT INTO event_rows VALUES (?1, 1, ?2)", params![position(1, last_seq), body]).unwrap();
        conn.pragma_update(None, "user_version", version).unwrap();
    }

    /// The lines `--events-json` writes for `events` of execution `e-1` of workflow `w`.
    fn json_lines(events: &[Event]) -> Vec<(u64, String)> {
        let label = crate::events::ExecutionLabel { execution_id: "e-1".into(), workflow: "w".into() };
        let line = |event: &Event| {
            let mut line = Vec::new();
            event.write_json(&label, &mut line);
            String::from_utf8(line).unwrap()
        };
        events.iter().map(|event| (event.seq, line(event))).collect()
    }

    fn user_version(path: &Path) -> i64 {
        Connection::open(path).unwrap().pragma_query_value(None, "user_version", |r| r.get(0)).unwrap()
    }

    // SQLite synced the store's folder at the first commit of every connection (a fifth of a
    // small run's commit time); the store syncs it itself, only for a new WAL.
    #[test]
    fn sqlite_is_built_not_to_sync_the_folder_itself() {
        let conn = Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = stmt.query_map([], |r| r.get(0)).unwrap().map(|o| o.unwrap()).collect();
        assert!(options.iter().any(|o| o == "DISABLE_DIRSYNC"), "{options:?}");
    }

    // A new store's tables were written through a rollback journal, whose folder entry SQLite
    // no longer syncs: they go through the WAL, which `sync_folder_of_new_wal` covers.
    #[test]
    fn a_new_store_writes_its_tables_through_the_wal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let store = SqliteStore::open(&path).unwrap();
        let file = std::fs::metadata(&path).unwrap().len();
        assert_eq!(file, 4096, "the file holds its first page only: the tables are in the WAL");
        assert_eq!(store.executions(&ExecutionQuery::default()).unwrap().len(), 0);
    }

    #[test]
    fn only_a_new_wal_gets_its_folder_synced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        assert!(sync_folder_of_new_wal(&conn, &path).unwrap(), "a new WAL");
        assert!(wal_path(&path).exists(), "the WAL was there when its folder was synced");
        conn.execute_batch("CREATE TABLE t (x)").unwrap();
        assert!(!sync_folder_of_new_wal(&conn, &path).unwrap(), "a WAL with frames");
        std::fs::write(wal_path(&path), b"").unwrap();
        assert!(sync_folder_of_new_wal(&conn, &path).unwrap(), "an empty WAL");
    }

    // Rows of format 5 hold each event's `seq` and `ts` as text; opened by this rhaiflow, the
    // file is marked 6 and those rows still read as the lines they were written as.
    #[test]
    fn a_store_of_format_5_reads_its_events_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        drop(SqliteStore::open(&path).unwrap());
        let events = [
            Event { seq: 1, ts: SystemTime::now(), payload: Payload::WorkflowCancelled { by: Some("user x".into()) } },
            Event { seq: 2, ts: SystemTime::UNIX_EPOCH, payload: Payload::WorkflowCancelled { by: None } },
        ];
        let body = crate::store::event_rows::row_before_schema_6(&events);
        write_old_execution(&path, 5, "cancelled", 2, body);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.events_after("e-1", 0).unwrap(), json_lines(&events));
        assert_eq!(user_version(&path), SCHEMA_VERSION);
    }

    // Rows of format 6 keep each event's type and payload as JSON text beside its binary
    // fields; opened by this rhaiflow, the file is marked 7, those rows read as the lines they
    // were written as and the tasks fold from them as before.
    #[test]
    fn a_store_of_format_6_reads_its_events_as_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        drop(SqliteStore::open(&path).unwrap());
        let task = crate::events::TaskInfo::first_attempt("t \"1\"", crate::events::TaskKind::Noop);
        let mut graph = crate::events::PlannedGraph::builder(1, 1);
        graph.node(&task.name, 1, task.kind, None, None);
        let payloads = [
            Payload::GraphPlanned { graph: Arc::new(graph.finish()) },
            Payload::TaskStarted { task: task.clone() },
            Payload::TaskSucceeded { task, result: Some(serde_json::json!([1])), how: crate::events::Success::Done },
        ];
        let events: Vec<Event> = payloads
            .into_iter()
            .enumerate()
            .map(|(i, payload)| Event { seq: i as u64 + 1, ts: SystemTime::now(), payload })
            .collect();
        let body = crate::store::event_rows::row_of_schema_6(&events);
        write_old_execution(&path, 6, "succeeded", 3, body);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.events_after("e-1", 0).unwrap(), json_lines(&events));
        let tasks = store.tasks("e-1").unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!((tasks[0].name.as_str(), &tasks[0].result), ("t \"1\"", &Some(serde_json::json!([1]))));
        assert_eq!(user_version(&path), SCHEMA_VERSION);
    }

    // A store file of format 4 (before `cancel_by` and the one-execution-a-key index) is
    // brought to format 5 when opened, its executions kept, rather than refused as another
    // version's.
    #[test]
    fn a_store_of_format_4_is_brought_to_5() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        {
            let conn = Connection::open(&path).unwrap();
            // Format 4, as rhaiflow wrote it.
            conn.execute_batch(
                "CREATE TABLE executions (number INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, workflow TEXT NOT NULL,
                    script TEXT NOT NULL, parameters TEXT NOT NULL, options TEXT NOT NULL, status TEXT NOT NULL,
                    started_at TEXT NOT NULL, ended_at TEXT, error TEXT, pid INTEGER NOT NULL,
                    resumes INTEGER NOT NULL DEFAULT 0, tasks_total INTEGER NOT NULL DEFAULT 0,
                    tasks_done INTEGER NOT NULL DEFAULT 0, last_seq INTEGER NOT NULL DEFAULT 0,
                    cancel_request INTEGER NOT NULL DEFAULT 0);
                 CREATE TABLE event_rows (position INTEGER PRIMARY KEY, first_seq INTEGER NOT NULL, events BLOB NOT NULL);",
            )
            .unwrap();
            conn.pragma_update(None, "user_version", 4).unwrap();
            conn.execute(
                "INSERT INTO executions (id, workflow, script, parameters, options, status, started_at, pid)
                 VALUES ('e-1', 'w', 'w.rhai', '{}', '{}', 'running', '2026-12-01T00:00:00Z', 1)",
                [],
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        store.request_cancel("e-1", true, Some("user x")).unwrap();
        assert_eq!(store.cancel_request("e-1").unwrap(), (2, Some("user x".to_string())));
        let conn = Connection::open(&path).unwrap();
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let keyed = |id: &str| {
            conn.execute(
                "INSERT INTO executions (id, workflow, script, parameters, options, status, started_at, pid)
                 VALUES (?1, 'w', 'w.rhai', '{}', '{\"idempotency\": {\"key\": \"k\"}}', 'running', 'now', 1)",
                [id],
            )
        };
        assert!(keyed("e-2").is_ok());
        assert!(keyed("e-3").is_err(), "a key started two executions");
    }

    /// The steps SQLite plans for a listing, on `store`'s reader.
    fn listing_plan(store: &SqliteStore, unfinished_only: bool) -> Vec<String> {
        let conn = store.reader().unwrap();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {}", listing_sql(unfinished_only))).unwrap();
        let mut values = [None::<&str>; 7];
        values[0] = unfinished_only.then_some(r#"["running"]"#);
        let plan = stmt.query_map(rusqlite::params_from_iter(values), |r| r.get::<_, String>(3)).unwrap();
        plan.collect::<rusqlite::Result<_>>().unwrap()
    }

    // A listing sorted every execution to take its newest (a page of 100 of 10,000 took 35 ms
    // in `rhaiflow serve`), and `serve`'s look for unfinished executions walked every finished
    // one (5.5 ms among 10,000, 20 times a second): both walk an index now, also in a store
    // made before the indexes.
    #[test]
    fn executions_are_listed_newest_first_through_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        drop(SqliteStore::open(&path).unwrap());
        Connection::open(&path)
            .unwrap()
            .execute_batch("DROP INDEX executions_started; DROP INDEX executions_unfinished")
            .unwrap();
        let store = SqliteStore::open(&path).unwrap();
        let all = listing_plan(&store, false);
        assert!(all.iter().any(|step| step.contains("executions_started")), "{all:?}");
        let unfinished = listing_plan(&store, true);
        assert!(unfinished.iter().any(|step| step.contains("executions_unfinished")), "{unfinished:?}");
        for plan in [all, unfinished] {
            assert!(!plan.iter().any(|step| step.contains("TEMP B-TREE")), "{plan:?}");
        }
    }

    // A run that never read opened a second connection anyway, parsing the whole schema.
    #[test]
    fn the_reading_connection_is_opened_at_the_first_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        store.begin(&ExecutionRecord::of_this_process("e-1", ExecutionStatus::Running, &now())).unwrap();
        assert!(store.reader.lock().is_none());
        assert_eq!(store.execution("e-1").unwrap().id, "e-1");
        assert!(store.reader.lock().is_some());
    }

    /// Makes `fsync(2)` fail with EPERM on this thread, and only on it (a seccomp filter,
    /// without `SECCOMP_FILTER_FLAG_TSYNC`); `fdatasync(2)` and the rest stay allowed.
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    fn forbid_fsync_on_this_thread() {
        use libc::{sock_filter, sock_fprog};
        let statement = |code: u32, k: u32| sock_filter { code: code as u16, jt: 0, jf: 0, k };
        let mut filter = [
            // The system call's number: `seccomp_data.nr`, at offset 0.
            statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
            sock_filter {
                code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                jt: 0,
                jf: 1,
                k: libc::SYS_fsync as u32,
            },
            statement(
                libc::BPF_RET | libc::BPF_K,
                libc::SECCOMP_RET_ERRNO | (libc::EPERM as u32 & libc::SECCOMP_RET_DATA),
            ),
            statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        ];
        let program = sock_fprog { len: filter.len() as u16, filter: filter.as_mut_ptr() };
        // SAFETY: `program` points at `filter`, alive for the call; the kernel copies it. No
        // new privileges is what an unprivileged filter needs, and only narrows this thread.
        unsafe {
            assert_eq!(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
            let set = libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &program as *const sock_fprog);
            assert_eq!(set, 0, "{}", std::io::Error::last_os_error());
        }
    }

    // A commit's fsync(2) also wrote the WAL's inode (its mtime) to the disk, one more
    // round trip to the device of ~0.3 ms on a virtual machine; fdatasync(2) makes the frames
    // as durable without it (SQLite built with `HAVE_FDATASYNC`, in .cargo/config.toml).
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    #[test]
    fn a_commit_syncs_its_frames_with_fdatasync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.db");
        // Made with fsync allowed (a new WAL's folder is synced with it), and kept open: the
        // last connection's close would remove the WAL.
        let _first = initialise(&path).unwrap();
        let committed = std::thread::spawn(move || {
            forbid_fsync_on_this_thread();
            let mut conn = initialise(&path).unwrap();
            let record = ExecutionRecord::of_this_process("e-1", ExecutionStatus::Running, &now());
            let mut batch = Batch::default();
            batch.ops.push(WriteOp::Begin(Box::new(record)));
            write_batch(&mut conn, &batch, &mut HashMap::new()).map_err(|e| e.to_string())
        });
        assert_eq!(committed.join().unwrap(), Ok(()));
    }

    // Events of an execution whose start this writer never recorded were skipped, and their
    // seq still published as committed: lost while counting as on disk.
    #[test]
    fn events_of_an_execution_never_begun_are_a_failed_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("s.db")).unwrap();
        let label = ExecutionLabel { execution_id: "never-begun".into(), workflow: "w".into() };
        let event = Event { seq: 1, ts: SystemTime::now(), payload: Payload::WorkflowCancelled { by: None } };
        store.append(&label, &event);
        let flushed = store.flush();
        assert!(
            matches!(&flushed, Err(StoreError::Write { message, .. }) if message.contains("never-begun")),
            "{flushed:?}"
        );
        let committed = store.committed().unwrap();
        assert!(matches!(committed.borrow().outcome(1), Some(Err(StoreError::Write { .. }))));
    }

    // The number an execution got in a start that was rolled back was kept, and its later
    // events written under it: a number SQLite may give to another process's execution.
    #[test]
    fn a_start_rolled_back_leaves_no_number_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = initialise(&dir.path().join("s.db")).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER fail_events BEFORE INSERT ON event_rows BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .unwrap();
        let record = ExecutionRecord::of_this_process("e-1", ExecutionStatus::Running, &now());
        let mut row = RowBuilder::new("e-1".into());
        row.push(&Event { seq: 1, ts: SystemTime::now(), payload: Payload::WorkflowCancelled { by: None } });
        let mut batch = Batch::default();
        batch.ops.push(WriteOp::Begin(Box::new(record)));
        batch.rows.push(row);
        let mut numbers = HashMap::new();
        assert!(write_batch(&mut conn, &batch, &mut numbers).is_err());
        assert!(numbers.is_empty(), "the start was rolled back, its number kept: {numbers:?}");
    }

    /// Counts what SQLite compiles on `conn` from now on, but transactions' BEGIN and COMMIT:
    /// it asks the authorizer while it prepares a statement, never while it runs one.
    fn count_statements_compiled(conn: &Connection) -> Box<std::sync::atomic::AtomicUsize> {
        extern "C" fn authorize(
            count: *mut std::ffi::c_void,
            action: std::ffi::c_int,
            _: *const std::ffi::c_char,
            _: *const std::ffi::c_char,
            _: *const std::ffi::c_char,
            _: *const std::ffi::c_char,
        ) -> std::ffi::c_int {
            if action != rusqlite::ffi::SQLITE_TRANSACTION {
                // SAFETY: `count` is the counter boxed below, which outlives the connection's use.
                unsafe { &*(count as *const std::sync::atomic::AtomicUsize) }
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            rusqlite::ffi::SQLITE_OK
        }
        let count = Box::new(std::sync::atomic::AtomicUsize::new(0));
        // SAFETY: the handle is `conn`'s; the counter's box is returned and kept by the caller
        // for as long as `conn` prepares statements.
        unsafe {
            rusqlite::ffi::sqlite3_set_authorizer(conn.handle(), Some(authorize), &*count as *const _ as *mut _);
        }
        count
    }

    // A small run's start commit parsed its SQL (a prepare for each statement it ran), on the
    // run's path to its first task: the store prepares them while it opens.
    #[test]
    fn a_commit_runs_only_statements_prepared_while_the_store_opened() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = initialise(&dir.path().join("s.db")).unwrap();
        // Set first: a new authorizer has SQLite prepare every statement again.
        let compiled = count_statements_compiled(&conn);
        prepare_commits(&conn);
        assert!(compiled.swap(0, std::sync::atomic::Ordering::Relaxed) > 0, "nothing prepared");
        let record = ExecutionRecord::of_this_process("e-1", ExecutionStatus::Running, &now());
        let mut row = RowBuilder::new("e-1".into());
        row.push(&Event { seq: 1, ts: SystemTime::now(), payload: Payload::WorkflowCancelled { by: None } });
        let mut batch = Batch::default();
        batch.ops.push(WriteOp::Begin(Box::new(record)));
        batch.ops.push(WriteOp::Planned { execution_id: "e-1".into(), count: 1 });
        batch.ops.push(WriteOp::End {
            execution_id: "e-1".into(),
            status: ExecutionStatus::Succeeded,
            error: None,
            at: now(),
        });
        batch.rows.push(row);
        let mut numbers = HashMap::new();
        write_batch(&mut conn, &batch, &mut numbers).unwrap();
        assert_eq!(numbers.get("e-1"), Some(&1));
        assert_eq!(compiled.load(std::sync::atomic::Ordering::Relaxed), 0, "the commit compiled statements");
    }
}
