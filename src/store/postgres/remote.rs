//! Tasks sent to a queue (`queue` on a shell or exec task), through the database: the
//! execution sends a job and looks for its outcome; a worker listening on the queue takes it
//! (`FOR UPDATE SKIP LOCKED`, like executions), runs it, holds a lease on it renewed by its
//! heartbeat, and writes the outcome. A job whose worker died is sent again (at least once,
//! as every task). Rows leave both tables once done: they stay as small as what is running.

use std::sync::Arc;

use super::connection::Pg;
use super::{database, Owner, PgStore};
use crate::store::{RemoteJob, RemoteState, RemoteTasks, Result, StoreError};

pub struct PgRemoteTasks {
    pub pg: Arc<Pg>,
}

impl RemoteTasks for PgRemoteTasks {
    fn send(&self, queue: &str, job: &RemoteJob) -> Result<i64> {
        let (queue, execution) = (queue.to_string(), job.execution_id.clone());
        let job = serde_json::to_string(job).map_err(|e| StoreError::Database(e.to_string()))?;
        self.pg.with(move |client, place| async move {
            // One statement: one round trip and one commit a task sent.
            let row = client
                .query_one(
                    "WITH task AS (SELECT nextval('rhaiflow_task_ids') AS id),
                     run AS (INSERT INTO rhaiflow_task_runs (id, execution_id, queue, job)
                             SELECT id, $1, $2, $3 FROM task),
                     waiting AS (INSERT INTO rhaiflow_task_queue (id, queue, job) SELECT id, $2, $3 FROM task)
                     SELECT id, pg_notify($4, $2) FROM task",
                    &[&execution, &queue, &job, &super::listener::CHANNEL],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(row.get(0))
        })
    }

    fn send_again(&self, id: i64) -> Result<()> {
        self.pg.with(move |client, place| async move {
            client
                .execute(
                    "WITH run AS (UPDATE rhaiflow_task_runs SET owner = '', lease_until = NULL WHERE id = $1
                                  RETURNING id, queue, job)
                     INSERT INTO rhaiflow_task_queue (id, queue, job) SELECT id, queue, job FROM run
                     ON CONFLICT (id) DO NOTHING",
                    &[&id],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            client
                .execute("SELECT pg_notify($1, '')", &[&super::listener::CHANNEL])
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(())
        })
    }

    fn settled(&self, execution_id: &str) -> Result<Vec<(i64, RemoteState)>> {
        let execution_id = execution_id.to_string();
        self.pg.with(move |client, place| async move {
            let rows = client
                .query(
                    "SELECT id, outcome FROM rhaiflow_task_runs
                     WHERE execution_id = $1 AND (outcome IS NOT NULL OR (owner <> '' AND lease_until < now()))",
                    &[&execution_id],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            rows.iter()
                .map(|row| {
                    let id: i64 = row.get(0);
                    let Some(outcome) = row.get::<_, Option<String>>(1) else { return Ok((id, RemoteState::Lost)) };
                    let outcome = serde_json::from_str(&outcome).map_err(|e| StoreError::Corrupt {
                        path: place.clone(),
                        message: format!("the outcome of sent task {id}: {e}"),
                    })?;
                    Ok((id, RemoteState::Done(outcome)))
                })
                .collect()
        })
    }

    fn cancel(&self, id: i64) -> Result<()> {
        self.pg.with(move |client, place| async move {
            client
                .execute("UPDATE rhaiflow_task_runs SET cancel = 2 WHERE id = $1", &[&id])
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(())
        })
    }

    fn forget(&self, id: i64) -> Result<()> {
        self.pg.with(move |client, place| async move {
            client
                .execute(
                    "WITH waiting AS (DELETE FROM rhaiflow_task_queue WHERE id = $1)
                     DELETE FROM rhaiflow_task_runs WHERE id = $1",
                    &[&id],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(())
        })
    }
}

/// A task a worker took from a queue.
pub struct TakenTask {
    pub id: i64,
    pub job: RemoteJob,
}

impl PgStore {
    /// Takes up to `limit` tasks waiting on `queues`, oldest first, for this process.
    pub fn take_tasks(&self, queues: &[String], limit: usize) -> Result<Vec<TakenTask>> {
        let (queues, owner): (Vec<String>, Owner) = (queues.to_vec(), self.owner.clone());
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let lease = self.lease.as_secs_f64();
        self.with(move |client, place| async move {
            let rows = client
                .query(
                    "WITH taken AS (
                       DELETE FROM rhaiflow_task_queue WHERE id IN (
                         SELECT id FROM rhaiflow_task_queue WHERE queue = ANY($1)
                         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
                       RETURNING id)
                     UPDATE rhaiflow_task_runs r
                     SET owner = $3, lease_until = now() + make_interval(secs => $4)
                     FROM taken WHERE r.id = taken.id AND r.outcome IS NULL
                     RETURNING r.id, r.job",
                    &[&queues, &limit, &owner.name, &lease],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            rows.iter()
                .map(|row| {
                    let job: String = row.get(1);
                    let job = serde_json::from_str(&job).map_err(|e| StoreError::Corrupt {
                        path: place.clone(),
                        message: format!("the job of sent task {}: {e}", row.get::<_, i64>(0)),
                    })?;
                    Ok(TakenTask { id: row.get(0), job })
                })
                .collect()
        })
    }

    /// Whether the task `id` this worker runs was cancelled (or taken from it).
    pub fn task_cancelled(&self, id: i64) -> Result<bool> {
        let owner = self.owner.name.clone();
        self.with(move |client, place| async move {
            let row = client
                .query_opt("SELECT cancel > 0 OR owner <> $2 FROM rhaiflow_task_runs WHERE id = $1", &[&id, &owner])
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(row.is_none_or(|r| r.get(0)))
        })
    }

    /// Writes the outcome of the task `id`, if this worker still holds it.
    pub fn task_done(&self, id: i64, outcome: &serde_json::Value) -> Result<bool> {
        let (owner, outcome) = (self.owner.name.clone(), outcome.to_string());
        self.with(move |client, place| async move {
            let written = client
                .execute(
                    "UPDATE rhaiflow_task_runs SET outcome = $3 WHERE id = $1 AND owner = $2 AND outcome IS NULL",
                    &[&id, &owner, &outcome],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(written == 1)
        })
    }
}
