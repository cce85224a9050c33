//! `/api/v1/deployments`: the deployments the store keeps, and one with its instances.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::problem::Problem;
use super::{blocking, Shared};

#[derive(Serialize, ToSchema)]
pub struct DeploymentView {
    pub name: String,
    /// The blueprint it was created from.
    pub blueprint: String,
    pub created_at: String,
    pub instances: usize,
    /// How many instances are in each state (`{"started": 3}`).
    pub states: Value,
}

#[derive(Serialize, ToSchema)]
pub struct DeploymentList {
    pub deployments: Vec<DeploymentView>,
}

#[derive(Serialize, ToSchema)]
pub struct InstanceView {
    pub id: String,
    pub node_id: String,
    /// The instance it is contained in.
    pub container: Option<String>,
    pub state: String,
    pub runtime_properties: Value,
}

#[derive(Serialize, ToSchema)]
pub struct DeploymentDetail {
    pub name: String,
    pub instances: Vec<InstanceView>,
}

/// The deployments, by creation time.
#[utoipa::path(
    get,
    path = "/api/v1/deployments",
    responses((status = 200, description = "The deployments", body = DeploymentList)),
    tag = "deployments"
)]
pub async fn list(State(shared): State<Arc<Shared>>) -> Result<Json<DeploymentList>, Problem> {
    let summaries = blocking(move || shared.deployments.list()).await?;
    let deployments = summaries
        .into_iter()
        .map(|d| DeploymentView {
            name: d.name,
            blueprint: d.blueprint,
            created_at: d.created_at,
            instances: d.instances,
            states: d.states.into_iter().map(|(state, n)| (state, Value::from(n))).collect(),
        })
        .collect();
    Ok(Json(DeploymentList { deployments }))
}

/// One deployment's instances, with their states and runtime properties.
#[utoipa::path(
    get,
    path = "/api/v1/deployments/{name}",
    params(("name" = String, Path, description = "The deployment's name")),
    responses(
        (status = 200, description = "Its instances", body = DeploymentDetail),
        (status = 404, description = "No such deployment", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "deployments"
)]
pub async fn show(
    State(shared): State<Arc<Shared>>,
    Path(name): Path<String>,
) -> Result<Json<DeploymentDetail>, Problem> {
    let known = name.clone();
    let instances = blocking(move || shared.deployments.instances(&known)).await?;
    let instances = instances
        .into_iter()
        .map(|i| InstanceView {
            id: i.id,
            node_id: i.node_id,
            container: i.container,
            state: i.data.state,
            runtime_properties: Value::Object(i.data.runtime_properties),
        })
        .collect();
    Ok(Json(DeploymentDetail { name, instances }))
}
