//! The PostgreSQL store's tables, created and migrated by whichever process connects first.
//!
//! Migrations are embedded and applied in order, in one transaction under an advisory lock:
//! many workers starting at once against a new database migrate it once, the others wait and
//! find it done. A database migrated by a newer rhaiflow is refused (`OtherVersion`), never
//! read by guesswork. Tables carry a `rhaiflow_` prefix: the database may hold others.

use deadpool_postgres::Object;

use super::connection::describe;
use crate::store::StoreError;

/// The schema, one migration a version; version N is `MIGRATIONS[N - 1]`.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE rhaiflow_executions (
    number bigserial PRIMARY KEY,
    id text NOT NULL UNIQUE,
    workflow text NOT NULL,
    script text NOT NULL,
    parameters text NOT NULL,
    options text NOT NULL,
    status text NOT NULL,
    started_at text NOT NULL,
    ended_at text,
    error text,
    pid bigint NOT NULL,
    resumes bigint NOT NULL DEFAULT 0,
    tasks_total bigint NOT NULL DEFAULT 0,
    tasks_done bigint NOT NULL DEFAULT 0,
    last_seq bigint NOT NULL DEFAULT 0,
    cancel_request smallint NOT NULL DEFAULT 0,
    -- Who runs it, and until when that holds unless renewed: an execution whose lease ran
    -- out crashed, whichever machine ran it.
    owner text NOT NULL DEFAULT '',
    lease_until timestamptz,
    -- The machine (boot and process namespace) the owner runs on: there, a process that is
    -- gone is known to have crashed before its lease runs out.
    machine text NOT NULL DEFAULT '',
    -- The queue its workers take it from (`run --submit`); NULL when run where it started.
    queue text
);
CREATE INDEX rhaiflow_executions_started ON rhaiflow_executions (started_at DESC, number DESC);
CREATE INDEX rhaiflow_executions_owner ON rhaiflow_executions (owner) WHERE status = 'running';
-- Events many to a row (`event_rows`), keyed by the seq of the row's last event.
CREATE TABLE rhaiflow_event_rows (
    execution bigint NOT NULL,
    last_seq bigint NOT NULL,
    first_seq bigint NOT NULL,
    events bytea NOT NULL,
    PRIMARY KEY (execution, last_seq)
);
-- Executions waiting for a worker: a row leaves once a worker takes it, so the table a claim
-- scans holds only what waits.
CREATE TABLE rhaiflow_queue (
    execution_id text PRIMARY KEY,
    queue text NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    -- 1 for what a dead worker left (queued again by the reaper): it goes first, not behind
    -- everything submitted since.
    taken_up smallint NOT NULL DEFAULT 0
);
CREATE INDEX rhaiflow_queue_order ON rhaiflow_queue (queue, taken_up DESC, enqueued_at);
-- What a worker on another machine needs to run a submitted execution: its script's text or
-- its bundle's archive, by checksum (kept once however often it is submitted).
CREATE TABLE rhaiflow_sources (
    checksum text PRIMARY KEY,
    kind text NOT NULL,
    name text NOT NULL,
    content bytea NOT NULL
);
-- Tasks sent to a queue (`queue` on a shell or exec task): waiting rows are taken (and leave)
-- as executions' are; a run row follows the task until its execution read its outcome.
CREATE TABLE rhaiflow_task_queue (
    id bigint PRIMARY KEY,
    queue text NOT NULL,
    job text NOT NULL,
    enqueued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX rhaiflow_task_queue_order ON rhaiflow_task_queue (queue, id);
CREATE SEQUENCE rhaiflow_task_ids;
CREATE TABLE rhaiflow_task_runs (
    id bigint PRIMARY KEY,
    execution_id text NOT NULL,
    queue text NOT NULL,
    job text NOT NULL,
    owner text NOT NULL DEFAULT '',
    lease_until timestamptz,
    cancel smallint NOT NULL DEFAULT 0,
    outcome text
);
-- An execution's look for what settled (`take_settled`), and a worker's heartbeat.
CREATE INDEX rhaiflow_task_runs_done ON rhaiflow_task_runs (execution_id, id) WHERE outcome IS NOT NULL;
CREATE INDEX rhaiflow_task_runs_leased ON rhaiflow_task_runs (execution_id, lease_until)
    WHERE outcome IS NULL AND owner <> '';
CREATE INDEX rhaiflow_task_runs_owner ON rhaiflow_task_runs (owner) WHERE outcome IS NULL;
-- Workers, as `workers list` shows them: alive while they beat.
CREATE TABLE rhaiflow_workers (
    name text PRIMARY KEY,
    queues text[] NOT NULL,
    concurrency integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at timestamptz NOT NULL DEFAULT now(),
    stopping boolean NOT NULL DEFAULT false
);
CREATE TABLE rhaiflow_deployments (
    name text PRIMARY KEY,
    blueprint_path text NOT NULL,
    blueprint_dir text NOT NULL,
    blueprint_text text NOT NULL,
    created_at text NOT NULL,
    counters text NOT NULL DEFAULT '{}',
    -- The blueprint with its scripts (`deploy::packed`): what a machine without its folder
    -- runs from.
    blueprint_files bytea
);
CREATE TABLE rhaiflow_deployment_instances (
    deployment text NOT NULL,
    id text NOT NULL,
    node_id text NOT NULL,
    container text,
    state text NOT NULL,
    runtime_properties text NOT NULL,
    PRIMARY KEY (deployment, id)
);
",
    "
-- Who asked for a cancel, when known.
ALTER TABLE rhaiflow_executions ADD COLUMN cancel_by text;
-- An API request's Idempotency-Key starts one execution, whichever server is asked.
CREATE UNIQUE INDEX rhaiflow_executions_idempotency_key
    ON rhaiflow_executions ((options::jsonb -> 'idempotency' ->> 'key'))
    WHERE options::jsonb -> 'idempotency' ->> 'key' IS NOT NULL;
-- Role tokens of `rhaiflow serve`: the SHA-256 of each secret (hex), never the secret.
CREATE TABLE rhaiflow_tokens (
    id text PRIMARY KEY,
    role text NOT NULL,
    name text NOT NULL,
    created_at text NOT NULL,
    secret_hash text NOT NULL
);
",
    "
-- Events keep their seq and time in binary beside their JSON (`event_rows`); rows written
-- before read as before, so nothing is rewritten: the version only keeps older rhaiflows,
-- which cannot read the new rows, away.
COMMENT ON TABLE rhaiflow_event_rows IS 'rhaiflow events, many to a row (schema 3: seq and time in binary)';
",
    "
-- Events keep their type, and a graph, in binary, a task's fields once for its start and end
-- (`event_rows`, format 7); rows written before read as before: as for 3, the version only
-- keeps older rhaiflows, which cannot read the new rows, away.
COMMENT ON TABLE rhaiflow_event_rows IS 'rhaiflow events, many to a row (schema 4: types and graphs in binary)';
",
];

/// The schema version this rhaiflow reads and writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock key migrations hold ("rhaiflow" in ASCII).
const MIGRATION_LOCK: i64 = 0x7268_6169_666c_6f77;

/// Brings the database to `SCHEMA_VERSION`, or says why it cannot.
pub async fn migrate(client: &mut Object, place: &std::path::Path) -> Result<(), StoreError> {
    let failed = |e: tokio_postgres::Error| StoreError::Open { path: place.to_path_buf(), message: describe(&e) };
    // Every start but the first: one read says it is done, without taking the lock.
    if let Ok(row) = client.query_one("SELECT max(version) FROM rhaiflow_schema", &[]).await {
        if row.get::<_, Option<i64>>(0) == Some(SCHEMA_VERSION) {
            return Ok(());
        }
    }
    let tx = client.transaction().await.map_err(failed)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(failed)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS rhaiflow_schema (version bigint NOT NULL)").await.map_err(failed)?;
    let found: i64 =
        tx.query_one("SELECT coalesce(max(version), 0) FROM rhaiflow_schema", &[]).await.map_err(failed)?.get(0);
    if found > SCHEMA_VERSION {
        return Err(StoreError::OtherVersion { path: place.to_path_buf(), found, reads: SCHEMA_VERSION });
    }
    for (version, migration) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(migration).await.map_err(failed)?;
        tx.execute("INSERT INTO rhaiflow_schema (version) VALUES ($1)", &[&(version as i64 + 1)])
            .await
            .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}
