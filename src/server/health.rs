//! `/healthz` (the process answers) and `/readyz` (and its store does).

use std::sync::Arc;

use axum::extract::State;

use super::problem::Problem;
use super::{blocking, Shared};
use crate::store::ExecutionQuery;

/// The server answers.
#[utoipa::path(get, path = "/healthz", responses((status = 200, description = "Alive", body = String)), tag = "health")]
pub async fn healthz() -> &'static str {
    "ok"
}

/// The server answers and its store can be read.
#[utoipa::path(
    get,
    path = "/readyz",
    responses(
        (status = 200, description = "Ready", body = String),
        (status = 503, description = "The store cannot be read", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "health"
)]
pub async fn readyz(State(shared): State<Arc<Shared>>) -> Result<&'static str, Problem> {
    let query = ExecutionQuery { limit: Some(1), ..ExecutionQuery::default() };
    blocking(move || shared.store.executions(&query)).await?;
    Ok("ready")
}
