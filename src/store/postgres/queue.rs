//! Executions submitted to a queue (`run --submit`) and the workers that take them.
//!
//! A submitted execution is recorded `queued` with a row in `rhaiflow_queue`. A worker takes
//! rows with `FOR UPDATE SKIP LOCKED` (many at once, and never two workers the same row) and,
//! in the same statement, becomes the execution's owner with a fresh lease: a worker that
//! dies right after is like one that dies later, its lease runs out. The reaper (one worker at
//! a time, under an advisory lock) queues again every submitted execution whose owner's lease
//! ran out; the worker that takes it resumes it (its succeeded tasks are not run again).

use super::{database, PgStore};
use crate::store::{Result, StoreError};

/// What a worker on another machine needs to run a submitted execution.
#[derive(Clone, Debug)]
pub struct ShippedSource {
    pub checksum: String,
    /// `script` (a script's text) or `bundle` (a bundle's `.tar.gz`).
    pub kind: String,
    /// The script's file name, or the bundle's name.
    pub name: String,
    pub content: Vec<u8>,
}

/// A worker as `workers list` shows it.
#[derive(Clone, Debug)]
pub struct WorkerRow {
    pub name: String,
    pub queues: Vec<String>,
    pub concurrency: i32,
    pub started_at: String,
    /// Seconds since its last beat.
    pub silent_for: f64,
    pub alive: bool,
    pub stopping: bool,
    /// The executions it runs.
    pub running: Vec<String>,
}

/// The advisory lock the reaper holds ("reap" in ASCII).
const REAPER_LOCK: i64 = 0x7265_6170;

impl PgStore {
    /// Records `record` as queued on `queue`, with the source it runs from.
    pub fn submit(
        &self,
        record: &crate::store::ExecutionRecord,
        queue: &str,
        sources: Vec<ShippedSource>,
    ) -> Result<()> {
        let (record, queue) = (record.clone(), queue.to_string());
        self.with(move |mut client, place| async move {
            let failed = |e: tokio_postgres::Error| database(&place, &e);
            let tx = client.transaction().await.map_err(failed)?;
            for s in &sources {
                tx.execute(
                    "INSERT INTO rhaiflow_sources (checksum, kind, name, content) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (checksum) DO NOTHING",
                    &[&s.checksum, &s.kind, &s.name, &s.content],
                )
                .await
                .map_err(failed)?;
            }
            tx.execute(
                "INSERT INTO rhaiflow_executions (id, workflow, script, parameters, options, status, started_at, pid,
                   queue)
                 VALUES ($1, $2, $3, $4, $5, 'queued', $6, 0, $7)",
                &[
                    &record.id,
                    &record.workflow,
                    &record.script,
                    &record.parameters.to_string(),
                    &record.options.to_string(),
                    &record.started_at,
                    &queue,
                ],
            )
            .await
            .map_err(failed)?;
            tx.execute("INSERT INTO rhaiflow_queue (execution_id, queue) VALUES ($1, $2)", &[&record.id, &queue])
                .await
                .map_err(failed)?;
            tx.execute("SELECT pg_notify($1, $2)", &[&super::listener::CHANNEL, &queue]).await.map_err(failed)?;
            tx.commit().await.map_err(failed)
        })
    }

    /// Takes up to `limit` executions waiting on `queues`, for this process: those a dead
    /// worker left first, then the oldest;
    /// each with how long it waited, in milliseconds.
    pub fn take(&self, queues: &[String], limit: usize) -> Result<Vec<(String, f64)>> {
        let (queues, owner) = (queues.to_vec(), self.owner.clone());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease = self.lease.as_secs_f64();
        self.with(move |client, place| async move {
            let rows = client
                .query(
                    "WITH taken AS (
                       DELETE FROM rhaiflow_queue WHERE execution_id IN (
                         SELECT execution_id FROM rhaiflow_queue WHERE queue = ANY($1)
                         ORDER BY taken_up DESC, enqueued_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                       RETURNING execution_id, enqueued_at)
                     UPDATE rhaiflow_executions e
                     SET owner = $3, machine = $4, lease_until = now() + make_interval(secs => $5), pid = $6
                     FROM taken
                     WHERE e.id = taken.execution_id AND e.status IN ('queued', 'running')
                       AND (e.owner = '' OR coalesce(e.lease_until < now(), true))
                     RETURNING e.id, (extract(epoch FROM clock_timestamp() - taken.enqueued_at) * 1000)::float8",
                    &[&queues, &limit, &owner.name, &owner.machine, &lease, &i64::from(std::process::id())],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }

    /// Queues again the submitted executions whose owner is gone, if no other worker is
    /// reaping now; returns how many. An owner is gone when its lease ran out, or when it ran
    /// on this machine and its process is gone (its lease is then ended at once). With `sweep`
    /// it also forgets the tasks of executions that ended (a look at the whole task tables:
    /// made seldom).
    pub fn reap(&self, sweep: bool) -> Result<u64> {
        let me = self.owner.clone();
        self.with(move |mut client, place| async move {
            let failed = |e: tokio_postgres::Error| database(&place, &e);
            let tx = client.transaction().await.map_err(failed)?;
            let ours: bool =
                tx.query_one("SELECT pg_try_advisory_xact_lock($1)", &[&REAPER_LOCK]).await.map_err(failed)?.get(0);
            if !ours {
                return Ok(0);
            }
            let here = tx
                .query(
                    "SELECT id, pid FROM rhaiflow_executions
                     WHERE status IN ('queued', 'running') AND queue IS NOT NULL AND owner <> '' AND machine = $1
                       AND lease_until >= now()",
                    &[&me.machine],
                )
                .await
                .map_err(failed)?;
            let gone: Vec<String> = here
                .iter()
                .filter(|r| u32::try_from(r.get::<_, i64>(1)).map_or(true, |pid| me.gone(&me.machine, pid)))
                .map(|r| r.get(0))
                .collect();
            if !gone.is_empty() {
                tx.execute(
                    "UPDATE rhaiflow_executions SET lease_until = now() - interval '1 second' WHERE id = ANY($1)",
                    &[&gone],
                )
                .await
                .map_err(failed)?;
            }
            let queued = tx
                .execute(
                    "INSERT INTO rhaiflow_queue (execution_id, queue, taken_up)
                     SELECT id, queue, 1 FROM rhaiflow_executions
                     WHERE status IN ('queued', 'running') AND queue IS NOT NULL AND owner <> ''
                       AND lease_until < now()
                     ON CONFLICT (execution_id) DO NOTHING",
                    &[],
                )
                .await
                .map_err(failed)?;
            if queued > 0 {
                tx.execute("SELECT pg_notify($1, '')", &[&super::listener::CHANNEL]).await.map_err(failed)?;
            }
            if !sweep {
                tx.commit().await.map_err(failed)?;
                return Ok(queued);
            }
            // Tasks sent by executions that ended (or were removed) without reading their
            // outcome: nobody will, and the tables stay as small as what runs.
            tx.execute(
                "DELETE FROM rhaiflow_task_queue q WHERE NOT EXISTS (SELECT 1 FROM rhaiflow_executions e
                   JOIN rhaiflow_task_runs r ON r.execution_id = e.id
                   WHERE r.id = q.id AND e.status IN ('queued', 'running'))",
                &[],
            )
            .await
            .map_err(failed)?;
            tx.execute(
                "DELETE FROM rhaiflow_task_runs r WHERE NOT EXISTS (SELECT 1 FROM rhaiflow_executions e
                   WHERE e.id = r.execution_id AND e.status IN ('queued', 'running'))",
                &[],
            )
            .await
            .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
            Ok(queued)
        })
    }

    /// How many executions submitted to `queues` are not finished (waiting or running).
    pub fn unfinished(&self, queues: &[String]) -> Result<i64> {
        let queues = queues.to_vec();
        self.with(move |client, place| async move {
            let row = client
                .query_one(
                    "SELECT count(*) FROM rhaiflow_executions WHERE queue = ANY($1) AND status IN ('queued', 'running')",
                    &[&queues],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(row.get(0))
        })
    }

    /// The source `checksum` names.
    pub fn shipped_source(&self, checksum: &str) -> Result<ShippedSource> {
        let checksum = checksum.to_string();
        self.with(move |client, place| async move {
            let row = client
                .query_opt("SELECT kind, name, content FROM rhaiflow_sources WHERE checksum = $1", &[&checksum])
                .await
                .map_err(|e| database(&place, &e))?;
            let Some(row) = row else {
                return Err(StoreError::Corrupt {
                    path: place,
                    message: format!("no source with checksum {checksum}"),
                });
            };
            Ok(ShippedSource { checksum, kind: row.get(0), name: row.get(1), content: row.get(2) })
        })
    }

    /// Says this process is a worker taking from `queues` (its beats keep it alive).
    pub fn register_worker(&self, queues: &[String], concurrency: usize) -> Result<String> {
        let (queues, name) = (queues.to_vec(), self.owner.name.clone());
        let concurrency = i32::try_from(concurrency).unwrap_or(i32::MAX);
        self.with(move |client, place| async move {
            client
                .execute(
                    "INSERT INTO rhaiflow_workers (name, queues, concurrency) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET queues = excluded.queues, concurrency = excluded.concurrency,
                       started_at = now(), seen_at = now(), stopping = false",
                    &[&name, &queues, &concurrency],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(name)
        })
    }

    /// Marks this worker stopping (it claims nothing more), or removes it once stopped.
    pub fn worker_stopping(&self, gone: bool) -> Result<()> {
        let name = self.owner.name.clone();
        self.with(move |client, place| async move {
            let sql = if gone {
                "DELETE FROM rhaiflow_workers WHERE name = $1"
            } else {
                "UPDATE rhaiflow_workers SET stopping = true WHERE name = $1"
            };
            client.execute(sql, &[&name]).await.map_err(|e| database(&place, &e))?;
            Ok(())
        })
    }

    /// The workers that beat within `forget` seconds, and what they run.
    pub fn workers(&self) -> Result<Vec<WorkerRow>> {
        let lease = self.lease.as_secs_f64();
        self.with(move |client, place| async move {
            let rows = client
                .query(
                    "SELECT w.name, w.queues, w.concurrency, to_char(w.started_at AT TIME ZONE 'UTC',
                       'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), extract(epoch FROM now() - w.seen_at)::float8, w.stopping,
                       coalesce(array_agg(e.id ORDER BY e.number) FILTER (WHERE e.id IS NOT NULL), '{}')
                     FROM rhaiflow_workers w
                     LEFT JOIN rhaiflow_executions e ON e.owner = w.name AND e.status IN ('queued', 'running')
                     GROUP BY w.name ORDER BY w.started_at, w.name",
                    &[],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(rows
                .iter()
                .map(|r| {
                    let silent_for: f64 = r.get(4);
                    WorkerRow {
                        name: r.get(0),
                        queues: r.get(1),
                        concurrency: r.get(2),
                        started_at: r.get(3),
                        silent_for,
                        alive: silent_for < lease,
                        stopping: r.get(5),
                        running: r.get(6),
                    }
                })
                .collect())
        })
    }
}
