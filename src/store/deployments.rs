//! Deployments kept in the execution store: the blueprint each was created from, and each
//! instance's state and runtime properties, written through as executions change them so
//! that they survive the process (and the next execution starts from them). A write that
//! fails is returned to what made the change (the run fails); a row that does not read as
//! rhaiflow wrote it is damage (`StoreError::Corrupt`), never read as a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use super::sqlite::{damaged, database_error};
use super::{Result, StoreError};
use crate::deploy::model::NotRecorded;
use crate::deploy::{Blueprint, Deployment, InstanceData};

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

/// A deployment as `deployments list` shows it.
#[derive(Debug)]
pub struct DeploymentSummary {
    pub name: String,
    pub blueprint: String,
    pub created_at: String,
    pub instances: usize,
    /// How many instances are in each state, e.g. `started: 3`.
    pub states: Vec<(String, usize)>,
}

/// A stored instance as `deployments show` shows it.
#[derive(Debug)]
pub struct StoredInstance {
    pub id: String,
    pub node_id: String,
    pub container: Option<String>,
    pub data: InstanceData,
}

pub struct DeploymentStore {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl DeploymentStore {
    /// Opens the deployments of the execution store at `location` (creating the store if
    /// needed).
    pub fn open(location: &super::StoreLocation) -> Result<DeploymentStore> {
        let path = match location {
            super::StoreLocation::Sqlite(path) => path.as_path(),
            super::StoreLocation::Postgres(_) => {
                return Err(StoreError::Open {
                    path: location.shown(),
                    message: "deployments are not kept in PostgreSQL yet".into(),
                })
            }
        };
        // The execution store creates the file and checks its schema version first.
        drop(super::open(location)?);
        let fail = |e: rusqlite::Error| StoreError::Open { path: path.to_path_buf(), message: e.to_string() };
        let conn = Connection::open(path).map_err(fail)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(fail)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(fail)?;
        conn.execute_batch(SCHEMA).map_err(fail)?;
        Ok(DeploymentStore { path: path.to_path_buf(), conn: Arc::new(Mutex::new(conn)) })
    }

    fn err(&self, e: rusqlite::Error) -> StoreError {
        match database_error(&self.path, e) {
            StoreError::Database(message) => StoreError::Database(format!("{}: {message}", self.path.display())),
            other => other,
        }
    }

    fn corrupt(&self, message: String) -> StoreError {
        StoreError::Corrupt { path: self.path.clone(), message }
    }

    /// Records a new deployment of `blueprint` (read from `blueprint_path`), every instance
    /// `uninitialized`.
    pub fn create(&self, name: &str, blueprint_path: &Path, blueprint: Arc<Blueprint>) -> Result<Arc<Deployment>> {
        let deployment = Arc::new(Deployment::new(name, blueprint.clone()));
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let exists: Option<String> = tx
            .query_row("SELECT name FROM deployments WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        if exists.is_some() {
            return Err(StoreError::Database(format!("a deployment named `{name}` exists already")));
        }
        let path = blueprint_path.canonicalize().unwrap_or_else(|_| blueprint_path.to_path_buf());
        tx.execute(
            "INSERT INTO deployments (name, blueprint_path, blueprint_dir, blueprint_text, created_at, counters) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                name,
                path.display().to_string(),
                blueprint.dir.display().to_string(),
                &*blueprint.source.text,
                humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                counters_json(&deployment)?
            ],
        )
        .map_err(|e| self.err(e))?;
        write_instances(&tx, &deployment).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        drop(conn);
        self.watch(&deployment);
        Ok(deployment)
    }

    /// The deployment `name` as its last execution left it; changes are written through.
    pub fn load(&self, name: &str) -> Result<Arc<Deployment>> {
        let conn = self.conn.lock();
        let row: Option<(String, String, String, String)> = conn
            .query_row(
                "SELECT blueprint_path, blueprint_dir, blueprint_text, counters FROM deployments WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some((path, dir, text, counters)) = row else {
            return Err(StoreError::NoSuchDeployment(name.to_string()));
        };
        let blueprint = Blueprint::parse(&path, &text, PathBuf::from(dir))
            .map_err(|e| StoreError::Corrupt { path: self.path.clone(), message: e.to_string() })?;
        let deployment = Arc::new(Deployment::new(name, Arc::new(blueprint)));
        let stored = instances(&conn, name).map_err(|e| self.err(e))?;
        drop(conn);
        let counters: BTreeMap<String, usize> = serde_json::from_str(&counters)
            .map_err(|e| self.corrupt(format!("the instance numbers of deployment {name} do not read ({e})")))?;
        for instance in &stored {
            check_instance(&deployment, instance).map_err(|why| self.corrupt(format!("deployment {name}: {why}")))?;
        }
        deployment.restore(stored.into_iter().map(|i| (i.id, i.node_id, i.container, i.data)).collect());
        deployment.raise_counters(&counters);
        self.watch(&deployment);
        Ok(deployment)
    }

    /// Writes every change of an instance's state or runtime properties as it happens, and
    /// the whole set of instances when a modification ends.
    fn watch(&self, deployment: &Arc<Deployment>) {
        deployment.stored.store(true, std::sync::atomic::Ordering::Relaxed);
        let store = DeploymentStore { path: self.path.clone(), conn: self.conn.clone() };
        *deployment.on_modified.lock() = Some(Box::new(move |d: &Deployment| {
            store
                .save(d)
                .map_err(|e| NotRecorded(format!("the instances of deployment {} were not recorded: {e}", d.name)))
        }));
        let conn = self.conn.clone();
        let weak = Arc::downgrade(deployment);
        let name = deployment.name.clone();
        let path = self.path.clone();
        *deployment.on_change.lock() = Some(Box::new(move |id: &str, data: &InstanceData| {
            // Gone (or not an instance): nothing is kept of it to record.
            let Some(deployment) = weak.upgrade() else { return Ok(()) };
            let Some(model) = deployment.instance(id) else { return Ok(()) };
            let node = deployment.nodes[model.node].id.clone();
            let conn = conn.lock();
            let written = conn.execute(
                "INSERT OR REPLACE INTO deployment_instances (deployment, id, node_id, container, state, runtime_properties) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![name, id, node, model.contained_in, data.state, Value::Object(data.runtime_properties.clone()).to_string()],
            );
            written.map(drop).map_err(|e| {
                let e = StoreError::Database(format!("{}: {e}", path.display()));
                NotRecorded(format!("the state of {id} in deployment {name} was not recorded: {e}"))
            })
        }));
    }

    /// Writes the deployment's whole set of instances (after a modification added or
    /// removed some).
    pub fn save(&self, deployment: &Deployment) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM deployment_instances WHERE deployment = ?1", [&deployment.name])
            .map_err(|e| self.err(e))?;
        write_instances(&tx, deployment).map_err(|e| self.err(e))?;
        let counters = counters_json(deployment)?;
        tx.execute("UPDATE deployments SET counters = ?2 WHERE name = ?1", params![deployment.name, counters])
            .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    pub fn list(&self) -> Result<Vec<DeploymentSummary>> {
        let conn = self.conn.lock();
        let mut statement = conn
            .prepare("SELECT name, blueprint_path, created_at FROM deployments ORDER BY created_at, name")
            .map_err(|e| self.err(e))?;
        let rows: Vec<(String, String, String)> = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for (name, blueprint, created_at) in rows {
            let instances = instances(&conn, &name).map_err(|e| self.err(e))?;
            let mut states: Vec<(String, usize)> = Vec::new();
            for i in &instances {
                match states.iter_mut().find(|(s, _)| *s == i.data.state) {
                    Some((_, n)) => *n += 1,
                    None => states.push((i.data.state.clone(), 1)),
                }
            }
            out.push(DeploymentSummary { name, blueprint, created_at, instances: instances.len(), states });
        }
        Ok(out)
    }

    pub fn instances(&self, name: &str) -> Result<Vec<StoredInstance>> {
        let conn = self.conn.lock();
        let known: Option<String> = conn
            .query_row("SELECT name FROM deployments WHERE name = ?1", [name], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))?;
        if known.is_none() {
            return Err(StoreError::NoSuchDeployment(name.to_string()));
        }
        instances(&conn, name).map_err(|e| self.err(e))
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        let mut conn = self.conn.lock();
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        let removed = tx.execute("DELETE FROM deployments WHERE name = ?1", [name]).map_err(|e| self.err(e))?;
        if removed == 0 {
            return Err(StoreError::NoSuchDeployment(name.to_string()));
        }
        tx.execute("DELETE FROM deployment_instances WHERE deployment = ?1", [name]).map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }
}

/// The highest instance numbers given out, as stored; written as `{}` on a failure, ids would
/// be given out again.
fn counters_json(deployment: &Deployment) -> Result<String> {
    serde_json::to_string(&deployment.counters()).map_err(|e| StoreError::Database(e.to_string()))
}

/// A stored instance that its deployment's blueprint could have made: `<node>_<number>` of one
/// of its nodes. Any other is damage: restored, it would be dropped or numbered again.
fn check_instance(deployment: &Deployment, instance: &StoredInstance) -> std::result::Result<(), String> {
    if deployment.node_index(&instance.node_id).is_none() {
        return Err(format!(
            "instance {} is of node `{}`, which its blueprint does not have",
            instance.id, instance.node_id
        ));
    }
    let number = instance.id.strip_prefix(instance.node_id.as_str()).and_then(|n| n.strip_prefix('_'));
    match number.map(str::parse::<usize>) {
        Some(Ok(_)) => Ok(()),
        _ => Err(format!("instance `{}` is not named `{}_<number>`", instance.id, instance.node_id)),
    }
}

fn write_instances(tx: &rusqlite::Transaction, deployment: &Deployment) -> rusqlite::Result<()> {
    let instances = deployment.instances.lock().clone();
    let mut insert = tx.prepare(
        "INSERT OR REPLACE INTO deployment_instances (deployment, id, node_id, container, state, runtime_properties) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for instance in instances {
        let data = deployment.data_of(&instance.id);
        insert.execute(params![
            deployment.name,
            instance.id,
            deployment.nodes[instance.node].id,
            instance.contained_in,
            data.state,
            Value::Object(data.runtime_properties).to_string()
        ])?;
    }
    Ok(())
}

fn instances(conn: &Connection, name: &str) -> rusqlite::Result<Vec<StoredInstance>> {
    let mut statement = conn.prepare(
        "SELECT id, node_id, container, state, runtime_properties FROM deployment_instances WHERE deployment = ?1",
    )?;
    let mut rows: Vec<StoredInstance> = statement
        .query_map([name], |r| {
            let (id, properties): (String, String) = (r.get(0)?, r.get(4)?);
            let runtime_properties = match serde_json::from_str(&properties) {
                Ok(Value::Object(m)) => m,
                // Read as `{}`, they would be written back so: lost for good.
                Ok(_) => return Err(damaged(4, format!("the runtime properties of {id} are not a JSON object"))),
                Err(e) => return Err(damaged(4, format!("the runtime properties of {id} do not read as JSON ({e})"))),
            };
            Ok(StoredInstance {
                id,
                node_id: r.get(1)?,
                container: r.get(2)?,
                data: InstanceData { state: r.get(3)?, runtime_properties },
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    // By node, then by number (db_2 before db_10).
    rows.sort_by_key(|i| {
        let (node, n) = i.id.rsplit_once('_').unwrap_or((&i.id, "0"));
        (node.to_string(), n.parse::<u64>().unwrap_or(0))
    });
    Ok(rows)
}
