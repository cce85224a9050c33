//! Deployments kept in the execution store: the blueprint each was created from, and each
//! instance's state and runtime properties, written through as executions change them so
//! that they survive the process (and the next execution starts from them). A write that
//! fails is returned to what made the change (the run fails); a row that does not read as
//! rhaiflow wrote it is damage (`StoreError::Corrupt`), never read as a default.
//!
//! What a deployment is made of and how its rows are read back and checked lives here, once;
//! the two databases only move rows (`DeploymentRows`): `sqlite` for the store file,
//! `postgres` for a server.

mod postgres;
mod sqlite;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::{Result, StoreError, StoreLocation};
use crate::deploy::model::NotRecorded;
use crate::deploy::{Blueprint, Deployment, InstanceData};

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

/// A deployment's row, as both databases store it.
struct DeploymentRow {
    name: String,
    blueprint_path: String,
    blueprint_dir: String,
    blueprint_text: String,
    /// The blueprint with its scripts (`deploy::packed`), kept where the store is shared: a
    /// machine without the blueprint's folder runs from a copy of them.
    blueprint_files: Option<Vec<u8>>,
    created_at: String,
    /// The highest instance number given out per node, as JSON.
    counters: String,
}

/// An instance's row: its runtime properties as JSON text, read back by `stored_instances`.
struct InstanceRow {
    id: String,
    node_id: String,
    container: Option<String>,
    state: String,
    runtime_properties: String,
}

/// What a database does for the deployments: move rows, each call one transaction. Damage
/// in a value the database itself types (a wrong column type) is its to report.
trait DeploymentRows: Send + Sync {
    /// The store as errors name it.
    fn place(&self) -> PathBuf;
    /// Adds a deployment and its instances; `false` (nothing written) when one of that name
    /// exists already.
    fn insert(&self, deployment: DeploymentRow, instances: Vec<InstanceRow>) -> Result<bool>;
    /// The deployment `name` and its instances, read together.
    fn read(&self, name: &str) -> Result<Option<(DeploymentRow, Vec<InstanceRow>)>>;
    /// Every deployment with its instances, by creation time then name.
    fn read_all(&self) -> Result<Vec<(DeploymentRow, Vec<InstanceRow>)>>;
    /// Writes one instance (added or replaced).
    fn write_instance(&self, deployment: &str, instance: InstanceRow) -> Result<()>;
    /// Replaces the deployment's whole set of instances and its counters.
    fn replace_instances(&self, deployment: &str, instances: Vec<InstanceRow>, counters: String) -> Result<()>;
    /// Forgets the deployment and its instances; `false` when there was none.
    fn delete(&self, name: &str) -> Result<bool>;
}

#[derive(Clone)]
pub struct DeploymentStore {
    rows: Arc<dyn DeploymentRows>,
}

impl DeploymentStore {
    /// Opens the deployments of the execution store at `location` (creating the store if
    /// needed).
    pub fn open(location: &StoreLocation) -> Result<DeploymentStore> {
        let rows: Arc<dyn DeploymentRows> = match location {
            StoreLocation::Sqlite(path) => Arc::new(sqlite::SqliteRows::open(location, path)?),
            StoreLocation::Postgres(url) => Arc::new(postgres::PgRows::open(url)?),
        };
        Ok(DeploymentStore { rows })
    }

    fn corrupt(&self, message: String) -> StoreError {
        StoreError::Corrupt { path: self.rows.place(), message }
    }

    /// Records a new deployment of `blueprint` (read from `blueprint_path`), every instance
    /// `uninitialized`.
    pub fn create(&self, name: &str, blueprint_path: &Path, blueprint: Arc<Blueprint>) -> Result<Arc<Deployment>> {
        let deployment = Arc::new(Deployment::new(name, blueprint.clone()));
        let path = blueprint_path.canonicalize().unwrap_or_else(|_| blueprint_path.to_path_buf());
        let row = DeploymentRow {
            name: name.to_string(),
            blueprint_path: path.display().to_string(),
            blueprint_dir: blueprint.dir.display().to_string(),
            blueprint_text: blueprint.source.text.to_string(),
            blueprint_files: Some(crate::deploy::packed::pack(&blueprint)),
            created_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            counters: counters_json(&deployment)?,
        };
        if !self.rows.insert(row, instance_rows(&deployment))? {
            return Err(StoreError::Database(format!("a deployment named `{name}` exists already")));
        }
        self.watch(&deployment);
        Ok(deployment)
    }

    /// The folder its scripts run from: the blueprint's own, or on a machine that does not
    /// have it, a copy of what the store kept of it.
    fn blueprint_dir(&self, row: &DeploymentRow) -> Result<PathBuf> {
        let dir = PathBuf::from(&row.blueprint_dir);
        let Some(files) = row.blueprint_files.as_ref().filter(|_| !dir.is_dir()) else { return Ok(dir) };
        let copy = crate::deploy::packed::copy_dir(files);
        let unpacked = crate::deploy::packed::unpack(files, &copy).map_err(|e| {
            StoreError::Database(format!(
                "cannot write the blueprint of deployment {} to {}: {e}",
                row.name,
                copy.display()
            ))
        })?;
        Ok(unpacked.parent().map_or(copy, Path::to_path_buf))
    }

    /// The deployment `name` as its last execution left it; changes are written through.
    pub fn load(&self, name: &str) -> Result<Arc<Deployment>> {
        let Some((row, instances)) = self.rows.read(name)? else {
            return Err(StoreError::NoSuchDeployment(name.to_string()));
        };
        let blueprint = Blueprint::parse(&row.blueprint_path, &row.blueprint_text, self.blueprint_dir(&row)?)
            .map_err(|e| self.corrupt(e.to_string()))?;
        let deployment = Arc::new(Deployment::new(name, Arc::new(blueprint)));
        let stored = self.stored_instances(instances)?;
        let counters: BTreeMap<String, usize> = serde_json::from_str(&row.counters)
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
    /// the whole set of instances when a modification ends. The callbacks run on script
    /// threads and the run's tokio workers: both databases' calls block, and may there.
    fn watch(&self, deployment: &Arc<Deployment>) {
        deployment.stored.store(true, std::sync::atomic::Ordering::Relaxed);
        let store = self.clone();
        *deployment.on_modified.lock() = Some(Box::new(move |d: &Deployment| {
            store
                .save(d)
                .map_err(|e| NotRecorded(format!("the instances of deployment {} were not recorded: {e}", d.name)))
        }));
        let rows = self.rows.clone();
        let weak = Arc::downgrade(deployment);
        let name = deployment.name.clone();
        *deployment.on_change.lock() = Some(Box::new(move |id: &str, data: &InstanceData| {
            // Gone (or not an instance): nothing is kept of it to record.
            let Some(deployment) = weak.upgrade() else { return Ok(()) };
            let Some(model) = deployment.instance(id) else { return Ok(()) };
            let row = InstanceRow {
                id: id.to_string(),
                node_id: deployment.nodes[model.node].id.clone(),
                container: model.contained_in,
                state: data.state.clone(),
                runtime_properties: Value::Object(data.runtime_properties.clone()).to_string(),
            };
            rows.write_instance(&name, row)
                .map_err(|e| NotRecorded(format!("the state of {id} in deployment {name} was not recorded: {e}")))
        }));
    }

    /// Writes the deployment's whole set of instances (after a modification added or
    /// removed some).
    pub fn save(&self, deployment: &Deployment) -> Result<()> {
        let counters = counters_json(deployment)?;
        self.rows.replace_instances(&deployment.name, instance_rows(deployment), counters)
    }

    pub fn list(&self) -> Result<Vec<DeploymentSummary>> {
        let mut out = Vec::new();
        for (row, instances) in self.rows.read_all()? {
            let instances = self.stored_instances(instances)?;
            let mut states: Vec<(String, usize)> = Vec::new();
            for i in &instances {
                match states.iter_mut().find(|(s, _)| *s == i.data.state) {
                    Some((_, n)) => *n += 1,
                    None => states.push((i.data.state.clone(), 1)),
                }
            }
            out.push(DeploymentSummary {
                name: row.name,
                blueprint: row.blueprint_path,
                created_at: row.created_at,
                instances: instances.len(),
                states,
            });
        }
        Ok(out)
    }

    pub fn instances(&self, name: &str) -> Result<Vec<StoredInstance>> {
        match self.rows.read(name)? {
            Some((_, instances)) => self.stored_instances(instances),
            None => Err(StoreError::NoSuchDeployment(name.to_string())),
        }
    }

    pub fn delete(&self, name: &str) -> Result<()> {
        match self.rows.delete(name)? {
            true => Ok(()),
            false => Err(StoreError::NoSuchDeployment(name.to_string())),
        }
    }

    /// Instance rows read back, by node, then by number (db_2 before db_10).
    fn stored_instances(&self, rows: Vec<InstanceRow>) -> Result<Vec<StoredInstance>> {
        let mut stored = Vec::with_capacity(rows.len());
        for row in rows {
            let runtime_properties = match serde_json::from_str(&row.runtime_properties) {
                Ok(Value::Object(m)) => m,
                // Read as `{}`, they would be written back so: lost for good.
                Ok(_) => {
                    return Err(self.corrupt(format!("the runtime properties of {} are not a JSON object", row.id)))
                }
                Err(e) => {
                    return Err(self.corrupt(format!("the runtime properties of {} do not read as JSON ({e})", row.id)))
                }
            };
            let data = InstanceData { state: row.state, runtime_properties };
            stored.push(StoredInstance { id: row.id, node_id: row.node_id, container: row.container, data });
        }
        stored.sort_by_key(|i| {
            let (node, n) = i.id.rsplit_once('_').unwrap_or((&i.id, "0"));
            (node.to_string(), n.parse::<u64>().unwrap_or(0))
        });
        Ok(stored)
    }
}

/// The highest instance numbers given out, as stored; written as `{}` on a failure, ids would
/// be given out again.
fn counters_json(deployment: &Deployment) -> Result<String> {
    serde_json::to_string(&deployment.counters()).map_err(|e| StoreError::Database(e.to_string()))
}

/// Every instance of `deployment` as its row.
fn instance_rows(deployment: &Deployment) -> Vec<InstanceRow> {
    let instances = deployment.instances.lock().clone();
    instances
        .into_iter()
        .map(|instance| {
            let data = deployment.data_of(&instance.id);
            InstanceRow {
                node_id: deployment.nodes[instance.node].id.clone(),
                container: instance.contained_in,
                state: data.state,
                runtime_properties: Value::Object(data.runtime_properties).to_string(),
                id: instance.id,
            }
        })
        .collect()
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
