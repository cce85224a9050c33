//! The PostgreSQL side of the store's writer thread: one transaction a batch, which first
//! checks that this process still holds every execution it writes (fencing).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object, Transaction};

use super::connection::{describe, Pg};
use super::Owner;
use crate::store::write_queue::{Batch, WriteOp};
use crate::store::writer::BatchWriter;
use crate::store::ExecutionRecord;

pub struct PgWriter {
    pg: Arc<Pg>,
    owner: Owner,
    lease: Duration,
    /// The numbers of the executions this writer began, which key their events.
    numbers: HashMap<Arc<str>, i64>,
}

impl PgWriter {
    pub fn new(pg: Arc<Pg>, owner: Owner, lease: Duration) -> PgWriter {
        PgWriter { pg, owner, lease, numbers: HashMap::new() }
    }
}

impl BatchWriter for PgWriter {
    fn write(&mut self, batch: &Batch) -> Result<(), String> {
        let pg = self.pg.clone();
        // A connection of the pool for this batch only: an idle writer (a worker may hold one
        // per execution it runs) holds none, and one the server closed since (a restart, an
        // idle timeout) is not handed out again.
        // The writer is a thread of its own, never a runtime's: it may block on the store's.
        let written = pg.block_on(async {
            let mut client = Pg::connection(&pg.pool(), pg.place()).await.map_err(|e| e.to_string())?;
            if batch.ops.is_empty() {
                return write_rows(&mut client, batch, &self.owner, &self.numbers).await.map(|()| HashMap::new());
            }
            write_batch(&mut client, batch, &self.owner, self.lease, &self.numbers).await
        });
        self.numbers.extend(written?);
        Ok(())
    }
}

/// Commits a batch of events only (most batches: a run's tasks starting and ending) in one
/// statement, so one round trip and one commit: the fencing check, the rows, the executions'
/// progress. Nothing is written when an execution was lost; the error says to whom.
async fn write_rows(
    client: &mut Object,
    batch: &Batch,
    owner: &Owner,
    numbers: &HashMap<Arc<str>, i64>,
) -> Result<(), String> {
    let mut executions = Vec::with_capacity(batch.rows.len());
    let (mut lasts, mut firsts, mut bodies, mut done) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for row in &batch.rows {
        let Some(&number) = numbers.get(&row.execution_id) else { return Err(unknown(&row.execution_id)) };
        executions.push(number);
        lasts.push(super::seq_column(row.last_seq));
        firsts.push(super::seq_column(row.first_seq));
        bodies.push(row.body.as_slice());
        done.push(super::seq_column(row.tasks_done));
    }
    let statement = client
        .prepare_cached(
            "WITH rows AS (
               SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bytea[], $5::bigint[])
                 AS r(execution, last_seq, first_seq, events, done)),
             -- Locked to the commit: a takeover waits for it, and one that came first is seen.
             held AS (
               SELECT id, owner FROM rhaiflow_executions WHERE number IN (SELECT execution FROM rows)
               ORDER BY number FOR NO KEY UPDATE),
             lost AS (SELECT id, owner FROM held WHERE owner <> $6 LIMIT 1),
             written AS (
               INSERT INTO rhaiflow_event_rows (execution, last_seq, first_seq, events)
               SELECT execution, last_seq, first_seq, events FROM rows WHERE NOT EXISTS (SELECT 1 FROM lost)
               ON CONFLICT (execution, last_seq) DO UPDATE
                 SET first_seq = excluded.first_seq, events = excluded.events),
             progressed AS (
               UPDATE rhaiflow_executions e
               SET last_seq = greatest(e.last_seq, p.seq), tasks_done = e.tasks_done + p.done
               FROM (SELECT execution, max(last_seq) AS seq, sum(done)::bigint AS done FROM rows GROUP BY execution) p
               WHERE e.number = p.execution AND NOT EXISTS (SELECT 1 FROM lost))
             SELECT id, owner FROM lost",
        )
        .await
        .map_err(|e| describe(&e))?;
    let taken = client
        .query_opt(&statement, &[&executions, &lasts, &firsts, &bodies, &done, &owner.name])
        .await
        .map_err(|e| describe(&e))?;
    match taken {
        Some(row) => Err(lost(owner, row.get(0), row.get(1))),
        None => Ok(()),
    }
}

fn unknown(execution_id: &str) -> String {
    format!(
        "this is a bug in rhaiflow: events of execution {execution_id} came before its start was recorded; please \
         report it"
    )
}

/// Commits `batch`, or nothing of it; returns the numbers of the executions it began.
async fn write_batch(
    client: &mut Object,
    batch: &Batch,
    owner: &Owner,
    lease: Duration,
    numbers: &HashMap<Arc<str>, i64>,
) -> Result<HashMap<Arc<str>, i64>, String> {
    let failed = |e: tokio_postgres::Error| describe(&e);
    let tx = client.transaction().await.map_err(failed)?;
    // An execution's start comes first: its events are keyed by the number it gets. Known only
    // once committed: rolled back, the number may go to another process's execution.
    let mut begun: HashMap<Arc<str>, i64> = HashMap::new();
    for op in &batch.ops {
        if let WriteOp::Begin(r) = op {
            let Some(number) = begin_execution(&tx, r, owner, lease).await.map_err(failed)? else {
                let holder = tx.query_one("SELECT owner FROM rhaiflow_executions WHERE id = $1", &[&r.id]).await;
                return Err(lost(owner, &r.id, &holder.map_err(failed)?.get::<_, String>(0)));
            };
            begun.insert(Arc::from(r.id.as_str()), number);
        }
    }
    // Fencing: every execution this batch writes must still be this process's. One another
    // process took over (its lease ran out here) is not written, and the run learns it.
    let mut touched: Vec<String> = batch.rows.iter().map(|r| r.execution_id.to_string()).collect();
    touched.extend(batch.ops.iter().filter_map(|op| match op {
        WriteOp::Planned { execution_id, .. } | WriteOp::End { execution_id, .. } => Some(execution_id.clone()),
        WriteOp::Begin(_) | WriteOp::Sync(_) => None,
    }));
    touched.sort_unstable();
    touched.dedup();
    if !touched.is_empty() {
        // The rows stay locked to the commit: a takeover waits for this batch, or this batch
        // sees it. Checked without the lock, a batch under way committed after a takeover.
        let held = tx
            .query(
                "SELECT id, owner FROM rhaiflow_executions WHERE id = ANY($1) ORDER BY number FOR NO KEY UPDATE",
                &[&touched],
            )
            .await
            .map_err(failed)?;
        if let Some(lost) = held.iter().find(|row| row.get::<_, &str>(1) != owner.name) {
            return Err(self::lost(owner, lost.get(0), lost.get(1)));
        }
    }
    // Per execution in this batch: its highest seq and how many tasks got done.
    let mut progress: Vec<(i64, i64, i64)> = Vec::new();
    let insert = tx
        .prepare_cached(
            "INSERT INTO rhaiflow_event_rows (execution, last_seq, first_seq, events) VALUES ($1, $2, $3, $4)
             ON CONFLICT (execution, last_seq) DO UPDATE SET first_seq = excluded.first_seq, events = excluded.events",
        )
        .await
        .map_err(failed)?;
    for row in &batch.rows {
        // Skipped, these events would be lost while counting as committed.
        let Some(&number) = begun.get(&row.execution_id).or_else(|| numbers.get(&row.execution_id)) else {
            return Err(unknown(&row.execution_id));
        };
        let (last, first) = (super::seq_column(row.last_seq), super::seq_column(row.first_seq));
        tx.execute(&insert, &[&number, &last, &first, &row.body]).await.map_err(failed)?;
        let done = super::seq_column(row.tasks_done);
        match progress.iter_mut().find(|(n, _, _)| *n == number) {
            Some((_, seq, count)) => {
                *seq = (*seq).max(last);
                *count += done;
            }
            None => progress.push((number, last, done)),
        }
    }
    for op in &batch.ops {
        match op {
            WriteOp::Planned { execution_id, count } => {
                tx.execute(
                    "UPDATE rhaiflow_executions SET tasks_total = tasks_total + $2 WHERE id = $1",
                    &[execution_id, &super::seq_column(*count)],
                )
                .await
                .map_err(failed)?;
            }
            WriteOp::End { execution_id, status, error, at } => {
                tx.execute(
                    "UPDATE rhaiflow_executions SET status = $2, error = $3, ended_at = $4 WHERE id = $1",
                    &[execution_id, &status.as_str(), error, at],
                )
                .await
                .map_err(failed)?;
            }
            WriteOp::Begin(_) | WriteOp::Sync(_) => {}
        }
    }
    for (number, seq, done) in progress {
        tx.execute(
            "UPDATE rhaiflow_executions SET last_seq = greatest(last_seq, $2), tasks_done = tasks_done + $3
             WHERE number = $1",
            &[&number, &seq, &done],
        )
        .await
        .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)?;
    Ok(begun)
}

/// What a run is told when another process took over an execution it writes.
fn lost(owner: &Owner, id: &str, holder: &str) -> String {
    format!(
        "this process ({}) lost execution {id} to {holder}: its lease ran out, and another took it over",
        owner.name
    )
}

/// Records an execution's start, held by `owner`; gives its number. `None` when another
/// process holds it (a resume that took it over, then lost it before its start was recorded):
/// the start of a resume is fenced as its other writes are.
pub async fn begin_execution(
    tx: &Transaction<'_>,
    r: &ExecutionRecord,
    owner: &Owner,
    lease: Duration,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = tx
        .query_opt(
            "INSERT INTO rhaiflow_executions
               (id, workflow, script, parameters, options, status, started_at, pid, resumes, owner, lease_until,
                machine)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + make_interval(secs => $11), $12)
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, pid = excluded.pid,
               resumes = excluded.resumes, ended_at = NULL, error = NULL, tasks_total = 0,
               -- A cancel asked for while it waited in the queue holds for its first run.
               cancel_request = CASE WHEN rhaiflow_executions.status = 'queued'
                                     THEN rhaiflow_executions.cancel_request ELSE 0 END,
               cancel_by = CASE WHEN rhaiflow_executions.status = 'queued'
                                THEN rhaiflow_executions.cancel_by END,
               owner = excluded.owner, lease_until = excluded.lease_until, machine = excluded.machine
             WHERE rhaiflow_executions.owner = excluded.owner
             RETURNING number",
            &[
                &r.id,
                &r.workflow,
                &r.script,
                &r.parameters.to_string(),
                &r.options.to_string(),
                &r.status.as_str(),
                &r.started_at,
                &i64::from(r.pid),
                &i64::from(r.resumes),
                &owner.name,
                &lease.as_secs_f64(),
                &owner.machine,
            ],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}
