//! `DELETE /api/v1/executions/{id}`: removes a finished execution and its events, as
//! `executions prune` does; one that is queued, running or crashed (resumable) is a conflict.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::problem::Problem;
use super::{blocking, Shared};
use crate::store::ShownStatus;

/// Removes a finished execution with its events.
#[utoipa::path(
    delete,
    path = "/api/v1/executions/{id}",
    params(("id" = String, Path, description = "The execution's id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such execution", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It has not finished (queued, running, or crashed: resumable)", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "executions"
)]
pub async fn delete(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Result<StatusCode, Problem> {
    let (record, removed) = blocking(move || {
        let record = shared.store.execution(&id)?;
        let finished = [ShownStatus::Succeeded, ShownStatus::Failed, ShownStatus::Cancelled];
        // Removed only if it is still finished when the store looks, in one transaction.
        let removed = shared.store.prune(&finished, "9999-12-31T23:59:59.999Z", Some(&record.id))?;
        Ok((record, !removed.is_empty()))
    })
    .await?;
    if !removed {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!(
                "execution {} has not finished (it is {}): cancel it, or resume it",
                record.id,
                record.shown_status()
            ),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
