//! The deployments' rows in the SQLite store file, beside the executions: one connection of
//! their own, behind a lock (the callbacks that write instances through come from many
//! threads).

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::{DeploymentRow, DeploymentRows, InstanceRow};
use crate::store::sqlite::{database_error, side_connection};
use crate::store::{Result, StoreError, StoreLocation};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deployments (
    name TEXT PRIMARY KEY,
    blueprint_path TEXT NOT NULL,
    blueprint_dir TEXT NOT NULL,
    blueprint_text TEXT NOT NULL,
    created_at TEXT NOT NULL,
    -- The highest instance number given out per node (JSON): ids are never reused.
    counters TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS deployment_instances (
    deployment TEXT NOT NULL,
    id TEXT NOT NULL,
    node_id TEXT NOT NULL,
    container TEXT,
    state TEXT NOT NULL,
    runtime_properties TEXT NOT NULL,
    PRIMARY KEY (deployment, id)
);";

const DEPLOYMENT_COLUMNS: &str = "name, blueprint_path, blueprint_dir, blueprint_text, created_at, counters";

const WRITE_INSTANCE: &str = "INSERT OR REPLACE INTO deployment_instances
    (deployment, id, node_id, container, state, runtime_properties) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";

pub(super) struct SqliteRows {
    path: PathBuf,
    conn: Mutex<Connection>,
}

impl SqliteRows {
    /// The store file at `path` (`location`), created if needed.
    pub(super) fn open(location: &StoreLocation, path: &Path) -> Result<SqliteRows> {
        let conn = side_connection(location, path, SCHEMA)?;
        Ok(SqliteRows { path: path.to_path_buf(), conn: Mutex::new(conn) })
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        match database_error(&self.path, e) {
            StoreError::Database(message) => StoreError::Database(format!("{}: {message}", self.path.display())),
            other => other,
        }
    }
}

impl DeploymentRows for SqliteRows {
    fn place(&self) -> PathBuf {
        self.path.clone()
    }

    fn insert(&self, deployment: DeploymentRow, instances: Vec<InstanceRow>) -> Result<bool> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let added = tx
            .execute(
                &format!("INSERT OR IGNORE INTO deployments ({DEPLOYMENT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"),
                params![
                    deployment.name,
                    deployment.blueprint_path,
                    deployment.blueprint_dir,
                    deployment.blueprint_text,
                    deployment.created_at,
                    deployment.counters
                ],
            )
            .map_err(|e| self.err(e))?;
        if added == 0 {
            return Ok(false);
        }
        write_instances(&tx, &deployment.name, &instances).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(true)
    }

    fn read(&self, name: &str) -> Result<Option<(DeploymentRow, Vec<InstanceRow>)>> {
        let conn = self.conn.lock();
        let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments WHERE name = ?1");
        let row = conn.query_row(&sql, [name], deployment_row).optional().map_err(|e| self.err(e))?;
        let Some(row) = row else { return Ok(None) };
        let instances = instances(&conn, name).map_err(|e| self.err(e))?;
        Ok(Some((row, instances)))
    }

    fn read_all(&self) -> Result<Vec<(DeploymentRow, Vec<InstanceRow>)>> {
        let conn = self.conn.lock();
        let read = || -> rusqlite::Result<Vec<(DeploymentRow, Vec<InstanceRow>)>> {
            let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM deployments ORDER BY created_at, name");
            let rows: Vec<DeploymentRow> =
                conn.prepare(&sql)?.query_map([], deployment_row)?.collect::<rusqlite::Result<_>>()?;
            rows.into_iter()
                .map(|row| {
                    let instances = instances(&conn, &row.name)?;
                    Ok((row, instances))
                })
                .collect()
        };
        read().map_err(|e| self.err(e))
    }

    fn write_instance(&self, deployment: &str, instance: InstanceRow) -> Result<()> {
        let conn = self.conn.lock();
        write_instance(&conn, deployment, &instance).map_err(|e| self.err(e))
    }

    fn replace_instances(&self, deployment: &str, instances: Vec<InstanceRow>, counters: String) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM deployment_instances WHERE deployment = ?1", [deployment]).map_err(|e| self.err(e))?;
        write_instances(&tx, deployment, &instances).map_err(|e| self.err(e))?;
        tx.execute("UPDATE deployments SET counters = ?2 WHERE name = ?1", params![deployment, counters])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    fn delete(&self, name: &str) -> Result<bool> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let removed = tx.execute("DELETE FROM deployments WHERE name = ?1", [name]).map_err(|e| self.err(e))?;
        if removed == 0 {
            return Ok(false);
        }
        tx.execute("DELETE FROM deployment_instances WHERE deployment = ?1", [name]).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(true)
    }
}

fn deployment_row(r: &Row) -> rusqlite::Result<DeploymentRow> {
    Ok(DeploymentRow {
        name: r.get(0)?,
        blueprint_path: r.get(1)?,
        blueprint_dir: r.get(2)?,
        blueprint_text: r.get(3)?,
        // One machine: the blueprint's folder is always its own.
        blueprint_files: None,
        created_at: r.get(4)?,
        counters: r.get(5)?,
    })
}

fn write_instance(conn: &Connection, deployment: &str, i: &InstanceRow) -> rusqlite::Result<()> {
    let mut insert = conn.prepare_cached(WRITE_INSTANCE)?;
    insert.execute(params![deployment, i.id, i.node_id, i.container, i.state, i.runtime_properties])?;
    Ok(())
}

fn write_instances(tx: &Transaction, deployment: &str, instances: &[InstanceRow]) -> rusqlite::Result<()> {
    instances.iter().try_for_each(|i| write_instance(tx, deployment, i))
}

fn instances(conn: &Connection, name: &str) -> rusqlite::Result<Vec<InstanceRow>> {
    let mut statement = conn.prepare(
        "SELECT id, node_id, container, state, runtime_properties FROM deployment_instances WHERE deployment = ?1",
    )?;
    let rows = statement.query_map([name], |r| {
        Ok(InstanceRow {
            id: r.get(0)?,
            node_id: r.get(1)?,
            container: r.get(2)?,
            state: r.get(3)?,
            runtime_properties: r.get(4)?,
        })
    })?;
    rows.collect()
}
