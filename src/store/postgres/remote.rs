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
    fn send(&self, jobs: &[(String, RemoteJob)]) -> Result<Vec<i64>> {
        let Some((_, first)) = jobs.first() else { return Ok(Vec::new()) };
        let execution = first.execution_id.clone();
        let queues: Vec<String> = jobs.iter().map(|(queue, _)| queue.clone()).collect();
        let jobs = jobs
            .iter()
            .map(|(_, job)| serde_json::to_string(job))
            .collect::<std::result::Result<Vec<String>, _>>()
            .map_err(|e| StoreError::Database(e.to_string()))?;
        self.pg.with(move |client, place| async move {
            // One statement for the whole batch: one round trip, one commit, one wake-up a
            // queue. `pg_notify` runs once, as an InitPlan: a CTE that only reads runs when used.
            let rows = client
                .query(
                    "WITH task AS (
                       SELECT nextval('rhaiflow_task_ids') AS id, queue, job, n
                       FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS sent(queue, job, n)),
                     run AS (INSERT INTO rhaiflow_task_runs (id, execution_id, queue, job)
                             SELECT id, $1, queue, job FROM task),
                     waiting AS (INSERT INTO rhaiflow_task_queue (id, queue, job) SELECT id, queue, job FROM task),
                     woken AS (SELECT pg_notify($4, queue) FROM (SELECT DISTINCT queue FROM task) queues)
                     SELECT id, (SELECT count(*) FROM woken) FROM task ORDER BY n",
                    &[&execution, &queues, &jobs, &super::listener::CHANNEL],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
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

    fn take_settled(&self, execution_id: &str, up_to: i64) -> Result<Vec<(i64, RemoteState)>> {
        let execution_id = execution_id.to_string();
        self.pg.with(move |client, place| async move {
            // The outcomes leave as they are read: the table holds only what is under way.
            let rows = client
                .query(
                    "WITH done AS (DELETE FROM rhaiflow_task_runs
                                   WHERE execution_id = $1 AND id <= $2 AND outcome IS NOT NULL
                                   RETURNING id, outcome)
                     SELECT id, outcome FROM done
                     UNION ALL
                     SELECT id, NULL FROM rhaiflow_task_runs
                     WHERE execution_id = $1 AND id <= $2 AND outcome IS NULL AND owner <> ''
                       AND lease_until < now()",
                    &[&execution_id, &up_to],
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

    fn forget(&self, ids: &[i64]) -> Result<()> {
        let ids = ids.to_vec();
        self.pg.with(move |client, place| async move {
            client
                .execute(
                    "WITH waiting AS (DELETE FROM rhaiflow_task_queue WHERE id = ANY($1))
                     DELETE FROM rhaiflow_task_runs WHERE id = ANY($1)",
                    &[&ids],
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

    /// Which of the tasks `ids` this worker runs were cancelled (or taken from it, or
    /// forgotten): one look for all of them.
    pub fn tasks_cancelled(&self, ids: &[i64]) -> Result<Vec<i64>> {
        let (ids, owner) = (ids.to_vec(), self.owner.name.clone());
        self.with(move |client, place| async move {
            let rows = client
                .query(
                    "SELECT w.id FROM unnest($1::bigint[]) AS w(id) LEFT JOIN rhaiflow_task_runs r ON r.id = w.id
                     WHERE r.id IS NULL OR r.cancel > 0 OR r.owner <> $2",
                    &[&ids, &owner],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }

    /// Writes the outcomes of tasks this worker ran, in one commit; returns the ids it still
    /// held (the others were taken over: their outcomes here are not kept).
    pub fn tasks_done(&self, outcomes: &[(i64, serde_json::Value)]) -> Result<Vec<i64>> {
        let owner = self.owner.name.clone();
        let ids: Vec<i64> = outcomes.iter().map(|(id, _)| *id).collect();
        let outcomes: Vec<String> = outcomes.iter().map(|(_, outcome)| outcome.to_string()).collect();
        self.with(move |client, place| async move {
            let rows = client
                .query(
                    "UPDATE rhaiflow_task_runs r SET outcome = done.outcome
                     FROM unnest($1::bigint[], $2::text[]) AS done(id, outcome)
                     WHERE r.id = done.id AND r.owner = $3 AND r.outcome IS NULL
                     RETURNING r.id",
                    &[&ids, &outcomes, &owner],
                )
                .await
                .map_err(|e| database(&place, &e))?;
            Ok(rows.iter().map(|row| row.get(0)).collect())
        })
    }
}
