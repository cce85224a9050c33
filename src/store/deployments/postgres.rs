//! The deployments' rows in a PostgreSQL store, beside the executions
//! (`rhaiflow_deployments`, `rhaiflow_deployment_instances`, made by the store's migrations).
//! Every call runs on the pool's own runtime and waits for it (`Pg::with`): the callbacks
//! that write instances through come from script threads and the run's tokio workers, where
//! blocking on a runtime would panic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::{IsolationLevel, Row};

use super::{DeploymentRow, DeploymentRows, InstanceRow};
use crate::store::postgres::{connect, database, Pg};
use crate::store::{Result, StoreError};

/// Connections at most: the callbacks take turns (a deployment records one change at a
/// time), a command reads while nothing else does.
const CONNECTIONS: usize = 2;

const DEPLOYMENT_COLUMNS: &str =
    "name, blueprint_path, blueprint_dir, blueprint_text, created_at, counters, blueprint_files";

const INSTANCE_COLUMNS: &str = "id, node_id, container, state, runtime_properties";

const WRITE_INSTANCE: &str = "INSERT INTO rhaiflow_deployment_instances
    (deployment, id, node_id, container, state, runtime_properties) VALUES ($1, $2, $3, $4, $5, $6)
    ON CONFLICT (deployment, id) DO UPDATE SET node_id = EXCLUDED.node_id, container = EXCLUDED.container,
    state = EXCLUDED.state, runtime_properties = EXCLUDED.runtime_properties";

pub(super) struct PgRows {
    pg: Arc<Pg>,
}

impl PgRows {
    /// The server `url` names, its schema migrated if needed.
    pub(super) fn open(url: &str) -> Result<PgRows> {
        Ok(PgRows { pg: connect(url, CONNECTIONS)? })
    }
}

impl DeploymentRows for PgRows {
    fn place(&self) -> PathBuf {
        self.pg.place().clone()
    }

    fn insert(&self, deployment: DeploymentRow, instances: Vec<InstanceRow>) -> Result<bool> {
        self.pg.with(move |mut client, place| async move {
            let failed = |e: tokio_postgres::Error| database(&place, &e);
            let tx = client.transaction().await.map_err(failed)?;
            let d = &deployment;
            let added = tx
                .execute(
                    &format!(
                        "INSERT INTO rhaiflow_deployments ({DEPLOYMENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
                         ON CONFLICT (name) DO NOTHING"
                    ),
                    &[
                        &d.name,
                        &d.blueprint_path,
                        &d.blueprint_dir,
                        &d.blueprint_text,
                        &d.created_at,
                        &d.counters,
                        &d.blueprint_files,
                    ],
                )
                .await
                .map_err(failed)?;
            if added == 0 {
                return Ok(false);
            }
            write_instances(&tx, &d.name, &instances).await.map_err(failed)?;
            tx.commit().await.map_err(failed)?;
            Ok(true)
        })
    }

    fn read(&self, name: &str) -> Result<Option<(DeploymentRow, Vec<InstanceRow>)>> {
        let name = name.to_string();
        self.pg.with(move |mut client, place| async move {
            let failed = |e: tokio_postgres::Error| database(&place, &e);
            let tx = reading(&mut client).await.map_err(failed)?;
            let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM rhaiflow_deployments WHERE name = $1");
            let Some(row) = tx.query_opt(&sql, &[&name]).await.map_err(failed)? else { return Ok(None) };
            let sql = format!("SELECT {INSTANCE_COLUMNS} FROM rhaiflow_deployment_instances WHERE deployment = $1");
            let instances = tx.query(&sql, &[&name]).await.map_err(failed)?;
            let instances = instances.iter().map(|r| instance_row(r, 0)).collect::<std::result::Result<_, _>>();
            Ok(Some((deployment_row(&row).map_err(damaged(&place))?, instances.map_err(damaged(&place))?)))
        })
    }

    fn read_all(&self) -> Result<Vec<(DeploymentRow, Vec<InstanceRow>)>> {
        self.pg.with(move |mut client, place| async move {
            let failed = |e: tokio_postgres::Error| database(&place, &e);
            let tx = reading(&mut client).await.map_err(failed)?;
            let sql = format!("SELECT {DEPLOYMENT_COLUMNS} FROM rhaiflow_deployments ORDER BY created_at, name");
            let deployments = tx.query(&sql, &[]).await.map_err(failed)?;
            let sql = format!("SELECT deployment, {INSTANCE_COLUMNS} FROM rhaiflow_deployment_instances");
            let mut instances: BTreeMap<String, Vec<InstanceRow>> = BTreeMap::new();
            for row in tx.query(&sql, &[]).await.map_err(failed)? {
                let deployment: String = row.try_get(0).map_err(|e| damaged(&place)(e.to_string()))?;
                let instance = instance_row(&row, 1).map_err(damaged(&place))?;
                instances.entry(deployment).or_default().push(instance);
            }
            deployments
                .iter()
                .map(|row| {
                    let row = deployment_row(row).map_err(damaged(&place))?;
                    let of_it = instances.remove(&row.name).unwrap_or_default();
                    Ok((row, of_it))
                })
                .collect()
        })
    }

    fn write_instance(&self, deployment: &str, instance: InstanceRow) -> Result<()> {
        let deployment = deployment.to_string();
        self.pg.with(move |client, place| async move {
            write_instance(&client, &deployment, &instance).await.map_err(|e| database(&place, &e))
        })
    }

    fn replace_instances(&self, deployment: &str, instances: Vec<InstanceRow>, counters: String) -> Result<()> {
        let deployment = deployment.to_string();
        self.pg.with(move |mut client, place| async move {
            let failed = |e: tokio_postgres::Error| database(&place, &e);
            let tx = client.transaction().await.map_err(failed)?;
            tx.execute("DELETE FROM rhaiflow_deployment_instances WHERE deployment = $1", &[&deployment])
                .await
                .map_err(failed)?;
            write_instances(&tx, &deployment, &instances).await.map_err(failed)?;
            tx.execute("UPDATE rhaiflow_deployments SET counters = $2 WHERE name = $1", &[&deployment, &counters])
                .await
                .map_err(failed)?;
            tx.commit().await.map_err(failed)
        })
    }

    fn delete(&self, name: &str) -> Result<bool> {
        let name = name.to_string();
        self.pg.with(move |mut client, place| async move {
            let failed = |e: tokio_postgres::Error| database(&place, &e);
            let tx = client.transaction().await.map_err(failed)?;
            let removed =
                tx.execute("DELETE FROM rhaiflow_deployments WHERE name = $1", &[&name]).await.map_err(failed)?;
            if removed == 0 {
                return Ok(false);
            }
            tx.execute("DELETE FROM rhaiflow_deployment_instances WHERE deployment = $1", &[&name])
                .await
                .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
            Ok(true)
        })
    }
}

/// A read-only transaction that sees one moment: a deployment and its instances as one
/// modification left them, not half of one.
async fn reading(
    client: &mut deadpool_postgres::Object,
) -> std::result::Result<Transaction<'_>, tokio_postgres::Error> {
    client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await
}

async fn write_instance(
    client: &impl GenericClient,
    deployment: &str,
    i: &InstanceRow,
) -> std::result::Result<(), tokio_postgres::Error> {
    client
        .execute(WRITE_INSTANCE, &[&deployment, &i.id, &i.node_id, &i.container, &i.state, &i.runtime_properties])
        .await
        .map(drop)
}

async fn write_instances(
    tx: &Transaction<'_>,
    deployment: &str,
    instances: &[InstanceRow],
) -> std::result::Result<(), tokio_postgres::Error> {
    for instance in instances {
        write_instance(tx, deployment, instance).await?;
    }
    Ok(())
}

/// A value of a row that does not read as rhaiflow wrote it (a column of another type).
fn damaged(place: &Path) -> impl Fn(String) -> StoreError + '_ {
    move |message| StoreError::Corrupt { path: place.to_path_buf(), message }
}

fn deployment_row(row: &Row) -> std::result::Result<DeploymentRow, String> {
    let text = |i: usize| row.try_get::<_, String>(i).map_err(|e| e.to_string());
    Ok(DeploymentRow {
        name: text(0)?,
        blueprint_path: text(1)?,
        blueprint_dir: text(2)?,
        blueprint_text: text(3)?,
        created_at: text(4)?,
        counters: text(5)?,
        blueprint_files: row.try_get(6).map_err(|e| e.to_string())?,
    })
}

/// The instance columns of `row`, from column `first` on.
fn instance_row(row: &Row, first: usize) -> std::result::Result<InstanceRow, String> {
    let text = |i: usize| row.try_get::<_, String>(first + i).map_err(|e| e.to_string());
    Ok(InstanceRow {
        id: text(0)?,
        node_id: text(1)?,
        container: row.try_get(first + 2).map_err(|e| e.to_string())?,
        state: text(3)?,
        runtime_properties: text(4)?,
    })
}
