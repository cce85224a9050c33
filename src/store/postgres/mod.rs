//! The shared store: a PostgreSQL database that processes on many machines use at once.
//!
//! It keeps the contract of the embedded SQLite store (`Store`) with the same pieces: events
//! queue in `write_queue` and one writer thread commits each batch in one transaction (group
//! commit), publishing the highest committed `seq`; events are stored many to a row
//! (`event_rows`). What SQLite learns from a process id, this store learns from a lease: the
//! process that runs an execution holds it, renewed by one heartbeat for all its executions,
//! and an execution whose lease ran out crashed, on whichever machine it ran. Every commit of
//! the writer checks that this process still holds what it writes (fencing): one that lost an
//! execution to another can no longer record anything of it.

mod connection;
mod listener;
mod queue;
mod remote;
mod schema;
mod writer;

pub use listener::Wake;
pub use queue::ShippedSource;
pub use remote::TakenTask;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_postgres::Row;

use self::connection::describe;
pub(crate) use self::connection::Pg;
use super::event_rows::{each_event_after, label_fields, StoredEvent};
use super::records::{json_object, Runner, TaskFold};
use super::write_queue::WriteOp;
use super::writer::Writes;
use super::{
    CommitListener, CommitState, ExecutionQuery, ExecutionRecord, ExecutionStatus, Result, ShownStatus, Store,
    StoreError, StoredTask,
};
use crate::events::{Event, ExecutionLabel};

/// Connections a process opens at most: the writer's, the heartbeat's and readers'.
const CONNECTIONS: usize = 4;

/// How long a lease lasts unless renewed (`RHAIFLOW_LEASE`, in seconds, more than 0 and at
/// most a day; tests shorten it); the heartbeat renews it three times in that time. A value
/// that is not such a number is refused, never passed over (nor, as `inf`, a panic).
fn lease() -> std::result::Result<Duration, String> {
    let Ok(given) = std::env::var("RHAIFLOW_LEASE") else { return Ok(Duration::from_secs(10)) };
    given.trim().parse::<f64>().ok().filter(|s| *s > 0.0 && *s <= 86_400.0).map(Duration::from_secs_f64).ok_or_else(
        || format!("RHAIFLOW_LEASE is `{given}`: it takes a number of seconds, more than 0 and at most 86400"),
    )
}

pub struct PgStore {
    pg: Arc<Pg>,
    /// This process, as leases name it.
    owner: Owner,
    lease: Duration,
    writes: Writes,
}

impl PgStore {
    /// Connects to the server `url` names, migrates its schema if needed, starts the writer
    /// and the heartbeat.
    pub fn open(url: &str) -> Result<PgStore> {
        PgStore::open_pool(url, CONNECTIONS)
    }

    /// `open` with at most `connections` connections, which the store's `sibling`s share.
    pub fn open_pool(url: &str, connections: usize) -> Result<PgStore> {
        // Checked before anything connects: a lease that is no number of seconds is bad input.
        let lease = lease().map_err(|message| StoreError::Open {
            path: super::StoreLocation::Postgres(url.into()).shown(),
            message,
        })?;
        let pg = connect(url, connections)?;
        let owner = Owner::this_process();
        pg.spawn(heartbeat(pg.config(), owner.name.clone(), lease));
        PgStore::with_writer(pg, owner, lease)
    }

    /// Wakes `wake` whenever something is submitted (or queued again), for as long as the
    /// store lives.
    pub fn listen(&self, wake: Arc<Wake>) {
        listener::listen(&self.pg, wake);
    }

    /// Another store on this one's connections, with a writer of its own: what one execution
    /// writes is committed, published and failed apart from another's (a worker runs each
    /// execution on one). The heartbeat of this store renews its leases too.
    pub fn sibling(&self) -> Result<PgStore> {
        PgStore::with_writer(self.pg.clone(), self.owner.clone(), self.lease)
    }

    fn with_writer(pg: Arc<Pg>, owner: Owner, lease: Duration) -> Result<PgStore> {
        let writes = Writes::start(writer::PgWriter::new(pg.clone(), owner.clone(), lease), pg.place().clone())?;
        Ok(PgStore { pg, owner, lease, writes })
    }

    fn place(&self) -> PathBuf {
        self.pg.place().clone()
    }

    /// Runs `job` with a connection of the pool.
    fn with<T: Send + 'static, F>(
        &self,
        job: impl FnOnce(deadpool_postgres::Object, PathBuf) -> F + Send + 'static,
    ) -> Result<T>
    where
        F: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        self.pg.with(job)
    }

    /// The events of execution `id` after `after`, each passed to `each`.
    fn read_events(
        &self,
        id: &str,
        after: u64,
        mut each: impl FnMut(&str, StoredEvent<'_>) -> std::result::Result<(), String>,
    ) -> Result<()> {
        let id = id.to_string();
        let (workflow, rows) = self.with(move |client, place| async move {
            let found = client
                .query_opt("SELECT number, workflow FROM rhaiflow_executions WHERE id = $1", &[&id])
                .await
                .map_err(|e| database(&place, &e))?;
            let Some(found) = found else { return Err(StoreError::NoSuchExecution(id)) };
            let (number, workflow): (i64, String) = (found.get(0), found.get(1));
            let rows = client
                .query(
                    "SELECT events FROM rhaiflow_event_rows WHERE execution = $1 AND last_seq > $2 ORDER BY last_seq",
                    &[&number, &seq_column(after)],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            Ok((label_fields(&id, &workflow), rows))
        })?;
        for row in rows {
            let body: &[u8] = row.get(0);
            each_event_after(body, after, |event| each(&workflow, event)).map_err(|m| self.corrupt(m))?;
        }
        Ok(())
    }

    fn corrupt(&self, message: String) -> StoreError {
        StoreError::Corrupt { path: self.place(), message }
    }
}

/// A pool of at most `connections` connections to the server `url` names, its schema
/// brought to this rhaiflow's version: the executions' and what is kept beside them
/// (`store::deployments`).
pub(crate) fn connect(url: &str, connections: usize) -> Result<Arc<Pg>> {
    let pg = Arc::new(Pg::open(url, connections)?);
    let (pool, place) = (pg.pool(), pg.place().clone());
    pg.run(async move {
        let mut client = Pg::connection(&pool, &place).await?;
        schema::migrate(&mut client, &place).await
    })?;
    Ok(pg)
}

/// Renews the lease of every execution this process runs, all at once, a few times a lease,
/// on a connection of its own: however busy the pool is, the leases hold.
async fn heartbeat(mut config: tokio_postgres::Config, owner: String, lease: Duration) {
    config.application_name("rhaiflow heartbeat");
    let mut client = None;
    loop {
        tokio::time::sleep(lease / 3).await;
        if client.as_ref().is_none_or(|c: &tokio_postgres::Client| c.is_closed()) {
            client = match config.connect(tokio_postgres::NoTls).await {
                Ok((c, connection)) => {
                    tokio::spawn(connection);
                    Some(c)
                }
                Err(_) => None,
            };
        }
        // A beat that fails (the server away a moment) is made up by the next; a lease that
        // ran out meanwhile is the fencing's to handle.
        let Some(c) = &client else { continue };
        let secs = lease.as_secs_f64();
        let _ = c
            .execute(
                "UPDATE rhaiflow_executions SET lease_until = now() + make_interval(secs => $2)
                 WHERE owner = $1 AND status IN ('queued', 'running')",
                &[&owner, &secs],
            )
            .await;
        // A worker's own row (none for a plain run), and the tasks it runs for others: one
        // beat for the worker and all its work.
        let _ = c.execute("UPDATE rhaiflow_workers SET seen_at = now() WHERE name = $1", &[&owner]).await;
        let _ = c
            .execute(
                // Rows being written (their outcomes) are skipped, never waited for: no lock
                // order between the beat and a batch of outcomes can then make a deadlock.
                "UPDATE rhaiflow_task_runs SET lease_until = now() + make_interval(secs => $2)
                 WHERE id IN (SELECT id FROM rhaiflow_task_runs WHERE owner = $1 AND outcome IS NULL
                              FOR NO KEY UPDATE SKIP LOCKED)",
                &[&owner, &secs],
            )
            .await;
    }
}

/// A process that holds executions: `name` (`host:pid`) is shown; `machine` tells whether
/// its pid can be checked from here.
#[derive(Clone, Debug)]
pub struct Owner {
    pub name: String,
    pub machine: String,
}

impl Owner {
    fn this_process() -> Owner {
        let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default();
        let host = Some(read("/proc/sys/kernel/hostname")).filter(|h| !h.is_empty()).unwrap_or("localhost".into());
        // One boot of one machine, one process namespace (containers on a host have their own);
        // `RHAIFLOW_MACHINE` names it instead (tests play several machines on one).
        let namespace = std::fs::read_link("/proc/self/ns/pid").map(|l| l.display().to_string()).unwrap_or_default();
        let machine = std::env::var("RHAIFLOW_MACHINE")
            .unwrap_or_else(|_| format!("{}/{namespace}", read("/proc/sys/kernel/random/boot_id")));
        Owner { name: format!("{host}:{}", std::process::id()), machine }
    }

    /// Whether the process `pid` of `machine` is known to be gone: only a process of this
    /// machine can be looked at.
    fn gone(&self, machine: &str, pid: u32) -> bool {
        machine == self.machine && !super::records::process_alive(pid)
    }
}

/// A failure of the server, named by the store's place.
pub(crate) fn database(place: &std::path::Path, e: &tokio_postgres::Error) -> StoreError {
    StoreError::Database(format!("{}: {}", place.display(), describe(e)))
}

/// Seqs and counts are stored as bigint.
fn seq_column(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

const EXECUTION_COLUMNS: &str = "id, workflow, script, parameters, options, status, started_at, ended_at, error, pid,
    resumes, tasks_total, last_seq, tasks_done, owner, coalesce(lease_until < now(), true), number, machine";

/// An execution's row; a value rhaiflow would not have written is damage (the message). Its
/// runner is gone when its lease ran out, or when it ran on this machine and its process is
/// gone (killed: the lease would only tell later).
fn record(row: &Row, me: &Owner) -> std::result::Result<ExecutionRecord, String> {
    let id: String = row.get(0);
    let status: String = row.get(5);
    let status = ExecutionStatus::parse(&status)
        .ok_or_else(|| format!("execution {id} has the status `{status}`, which rhaiflow never writes"))?;
    let count = |column: usize| {
        u64::try_from(row.get::<_, i64>(column)).map_err(|_| format!("execution {id} has a negative count"))
    };
    let pid = u32::try_from(row.get::<_, i64>(9)).map_err(|_| format!("execution {id} has no valid process id"))?;
    let expired = row.get::<_, bool>(15) || me.gone(row.get(17), pid);
    Ok(ExecutionRecord {
        parameters: json_object(row.get(3), "parameters", &id)?,
        options: json_object(row.get(4), "options", &id)?,
        workflow: row.get(1),
        script: row.get(2),
        status,
        started_at: row.get(6),
        ended_at: row.get(7),
        error: row.get(8),
        pid,
        resumes: u32::try_from(row.get::<_, i64>(10))
            .map_err(|_| format!("execution {id} has a wrong resume count"))?,
        tasks_total: count(11)?,
        last_seq: count(12)?,
        tasks_done: count(13)?,
        runner: Runner::Lease { mine: row.get::<_, &str>(14) == me.name, owner: row.get(14), expired },
        id,
    })
}

/// Reads execution rows, damage reported as such.
fn records(rows: &[Row], place: &std::path::Path, me: &Owner) -> Result<Vec<ExecutionRecord>> {
    rows.iter()
        .map(|row| record(row, me).map_err(|message| StoreError::Corrupt { path: place.to_path_buf(), message }))
        .collect()
}

/// The advisory lock that makes "is another execution running on this deployment?" and the
/// start of one a single step across processes.
const DEPLOYMENT_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended('rhaiflow deployment ' || $1, 0))";

/// Another execution running on the stored deployment `deployment` (as a busy error), if there
/// is one whose runner is there; one that crashed does not count.
async fn running_on(
    tx: &deadpool_postgres::Transaction<'_>,
    deployment: &str,
    own_id: &str,
    me: &Owner,
) -> std::result::Result<Option<StoreError>, tokio_postgres::Error> {
    tx.execute(DEPLOYMENT_LOCK, &[&deployment]).await?;
    let rows = tx
        .query(
            "SELECT id, workflow, pid, machine FROM rhaiflow_executions
             WHERE status = 'running' AND id <> $2 AND lease_until >= now()
               AND options::jsonb ->> 'deployment' = $1 AND options::jsonb -> 'deployment_stored' = 'true'::jsonb
             ORDER BY number",
            &[&deployment, &own_id],
        )
        .await?;
    let running = rows.iter().find_map(|r| {
        let pid = u32::try_from(r.get::<_, i64>(2)).unwrap_or(0);
        (!me.gone(r.get(3), pid)).then(|| StoreError::DeploymentBusy {
            deployment: deployment.to_string(),
            execution: r.get(0),
            workflow: r.get(1),
            pid,
        })
    });
    Ok(running)
}

impl Store for PgStore {
    fn begin_queued(&self, record: &ExecutionRecord) {
        self.writes.push_op(WriteOp::Begin(Box::new(record.clone())));
    }

    fn begin_on_deployment(&self, record: &ExecutionRecord, deployment: &str) -> Result<()> {
        let (record_now, deployment) = (record.clone(), deployment.to_string());
        let (owner, lease) = (self.owner.clone(), self.lease);
        self.with(move |mut client, place| async move {
            let failed = |e: tokio_postgres::Error| database(&place, &e);
            let tx = client.transaction().await.map_err(failed)?;
            if let Some(running) = running_on(&tx, &deployment, &record_now.id, &owner).await.map_err(failed)? {
                return Err(running);
            }
            writer::begin_execution(&tx, &record_now, &owner, lease).await.map_err(failed)?;
            tx.commit().await.map_err(failed)
        })?;
        // The writer records it again (the same row), and learns its number.
        self.begin(record)
    }

    fn append(&self, label: &ExecutionLabel, event: &Event) {
        self.writes.push_event(&label.execution_id, event);
    }

    fn planned(&self, execution_id: &str, count: u64) {
        self.writes.push_op(WriteOp::Planned { execution_id: execution_id.to_string(), count });
    }

    fn end(&self, execution_id: &str, status: ExecutionStatus, error: Option<String>) -> Result<()> {
        let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        self.writes.push_op(WriteOp::End { execution_id: execution_id.to_string(), status, error, at });
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        self.writes.flush()
    }

    fn committed(&self) -> Option<watch::Receiver<CommitState>> {
        Some(self.writes.committed())
    }

    fn on_commit(&self, listener: CommitListener) {
        self.writes.on_commit(listener);
    }

    fn executions(&self, query: &ExecutionQuery) -> Result<Vec<ExecutionRecord>> {
        let me = self.owner.clone();
        let statuses = query.stored_statuses();
        let limit = match query.limit {
            Some(n) if !query.needs_process_check() => Some(i64::try_from(n).unwrap_or(i64::MAX)),
            _ => None,
        };
        let (workflow, since) = (query.workflow.clone(), query.since.clone());
        let (older_started, older_id) = query.older_than.clone().unzip();
        let key = query.idempotency_key.clone();
        let all = self.with(move |client, place| async move {
            let rows = client
                .query(
                    &format!(
                        "SELECT {EXECUTION_COLUMNS} FROM rhaiflow_executions
                         WHERE ($1::text[] IS NULL OR status = ANY($1)) AND ($2::text IS NULL OR workflow = $2)
                           AND ($3::text IS NULL OR started_at >= $3)
                           AND ($5::text IS NULL OR started_at < $5 OR (started_at = $5
                                AND number < COALESCE((SELECT number FROM rhaiflow_executions WHERE id = $6), -1)))
                           AND ($7::text IS NULL OR options::jsonb -> 'idempotency' ->> 'key' = $7)
                         ORDER BY started_at DESC, number DESC LIMIT $4"
                    ),
                    &[&statuses, &workflow, &since, &limit, &older_started, &older_id, &key],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            records(&rows, &place, &me)
        })?;
        let wanted = all.into_iter().filter(|r| query.wants(r));
        Ok(wanted.take(query.limit.unwrap_or(usize::MAX)).collect())
    }

    fn prune(&self, statuses: &[ShownStatus], before: &str, only: Option<&str>) -> Result<Vec<ExecutionRecord>> {
        let me = self.owner.clone();
        let (statuses, before, only) = (statuses.to_vec(), before.to_string(), only.map(str::to_string));
        self.with(move |mut client, place| async move {
            let failed = |e: tokio_postgres::Error| database(&place, &e);
            // The rows stay locked to the end: a resume cannot take one over in between.
            let tx = client.transaction().await.map_err(failed)?;
            let rows = tx
                .query(
                    &format!(
                        "SELECT {EXECUTION_COLUMNS} FROM rhaiflow_executions
                         WHERE coalesce(ended_at, started_at) < $1 AND ($2::text IS NULL OR id = $2)
                         ORDER BY started_at, number FOR UPDATE"
                    ),
                    &[&before, &only],
                )
                .await
                .map_err(failed)?;
            let mut removed = Vec::new();
            for (row, record) in rows.iter().zip(records(&rows, &place, &me)?) {
                if !record.prunable(&statuses, &before) {
                    continue;
                }
                let number: i64 = row.get(16);
                tx.execute("DELETE FROM rhaiflow_event_rows WHERE execution = $1", &[&number]).await.map_err(failed)?;
                tx.execute("DELETE FROM rhaiflow_executions WHERE number = $1", &[&number]).await.map_err(failed)?;
                removed.push(record);
            }
            tx.commit().await.map_err(failed)?;
            Ok(removed)
        })
    }

    fn execution(&self, id: &str) -> Result<ExecutionRecord> {
        let me = self.owner.clone();
        let id = id.to_string();
        self.with(move |client, place| async move {
            // The id, else a unique prefix of it (as with git commits).
            let rows = client
                .query(
                    &format!(
                        "SELECT {EXECUTION_COLUMNS} FROM rhaiflow_executions WHERE id = $1
                         UNION ALL (SELECT {EXECUTION_COLUMNS} FROM rhaiflow_executions
                                    WHERE starts_with(id, $1) AND id <> $1 LIMIT 2)"
                    ),
                    &[&id],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            let found = records(&rows, &place, &me)?;
            match found.as_slice() {
                [first, ..] if first.id == id => Ok(first.clone()),
                [one] if !id.is_empty() => Ok(one.clone()),
                _ => Err(StoreError::NoSuchExecution(id)),
            }
        })
    }

    fn tasks(&self, id: &str) -> Result<Vec<StoredTask>> {
        let mut tasks = TaskFold::default();
        self.read_events(id, 0, |_, event| match event.serial {
            Some(serial) => tasks.apply(serial, &event.json("")),
            None => Ok(()),
        })?;
        Ok(tasks.finish())
    }

    fn events_after(&self, id: &str, after: u64) -> Result<Vec<(u64, String)>> {
        let mut events = Vec::new();
        self.read_events(id, after, |label, event| {
            events.push((event.seq, event.checked_json(label)?));
            Ok(())
        })?;
        Ok(events)
    }

    fn request_cancel(&self, id: &str, force: bool, by: Option<&str>) -> Result<()> {
        let id = id.to_string();
        let by = by.map(str::to_string);
        let level: i16 = if force { 2 } else { 1 };
        let at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
        self.with(move |mut client, place| async move {
            let failed = |e: tokio_postgres::Error| database(&place, &e);
            let tx = client.transaction().await.map_err(failed)?;
            // Still waiting for a worker: cancelled here and now, it never runs.
            let unqueued =
                tx.execute("DELETE FROM rhaiflow_queue WHERE execution_id = $1", &[&id]).await.map_err(failed)?;
            let changed = tx
                .execute(
                    "UPDATE rhaiflow_executions
                     SET cancel_request = greatest(cancel_request, $2), cancel_by = coalesce($5, cancel_by),
                         status = CASE WHEN $3 AND status = 'queued' THEN 'cancelled' ELSE status END,
                         ended_at = CASE WHEN $3 AND status = 'queued' THEN $4 ELSE ended_at END,
                         error = CASE WHEN $3 AND status = 'queued' THEN 'cancelled before a worker took it'
                                 ELSE error END
                     WHERE id = $1",
                    &[&id, &level, &(unqueued == 1), &at, &by],
                )
                .await
                .map_err(failed)?;
            if changed == 0 {
                return Err(StoreError::NoSuchExecution(id));
            }
            tx.commit().await.map_err(failed)
        })
    }

    fn cancel_request(&self, id: &str) -> Result<(u8, Option<String>)> {
        let id = id.to_string();
        self.with(move |client, place| async move {
            let row = client
                .query_opt("SELECT cancel_request, cancel_by FROM rhaiflow_executions WHERE id = $1", &[&id])
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(row.map_or((0, None), |r| (u8::try_from(r.get::<_, i16>(0)).unwrap_or(0), r.get(1))))
        })
    }

    fn shipped_source(&self, checksum: &str) -> Result<Option<ShippedSource>> {
        PgStore::shipped_source(self, checksum).map(Some)
    }

    fn remote_tasks(&self) -> Option<Arc<dyn super::RemoteTasks>> {
        Some(Arc::new(remote::PgRemoteTasks { pg: self.pg.clone() }))
    }

    fn claim(&self, seen: &ExecutionRecord, pid: u32) -> Result<bool> {
        let seen = seen.clone();
        let (owner, lease) = (self.owner.clone(), self.lease);
        self.with(move |mut client, place| async move {
            let failed = |e: tokio_postgres::Error| database(&place, &e);
            let tx = client.transaction().await.map_err(failed)?;
            // An execution on a stored deployment is taken over only while no other runs on
            // it: refused later, it would be left as if running here.
            if let (true, Some(deployment)) = (seen.deployment_stored(), seen.deployment()) {
                if let Some(running) = running_on(&tx, deployment, &seen.id, &owner).await.map_err(failed)? {
                    return Err(running);
                }
            }
            // Still as `seen` left it, and (when running) with its runner gone: its lease ran
            // out, or it ran here and its process is gone. Of two processes taking it over,
            // one changes it and the other finds it changed.
            let gone_here = !super::records::process_alive(seen.pid);
            let changed = tx
                .execute(
                    "UPDATE rhaiflow_executions
                     SET pid = $2, status = 'running', owner = $5, lease_until = now() + make_interval(secs => $6),
                       machine = $8
                     WHERE id = $1 AND pid = $3 AND status = $4 AND resumes = $7
                       AND (status <> 'running' OR coalesce(lease_until < now(), true) OR (machine = $8 AND $9)
                            OR owner = $5)",
                    &[
                        &seen.id,
                        &i64::from(pid),
                        &i64::from(seen.pid),
                        &seen.status.as_str(),
                        &owner.name,
                        &lease.as_secs_f64(),
                        &i64::from(seen.resumes),
                        &owner.machine,
                        &gone_here,
                    ],
                )
                .await
                .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
            Ok(changed == 1)
        })
    }
}
