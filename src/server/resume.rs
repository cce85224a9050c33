//! `POST /api/v1/executions/{id}/resume`: takes up a crashed, failed or cancelled execution
//! again, as `executions resume` does (its succeeded tasks are not run again), in this
//! server's process.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::executions::{summary, ExecutionSummary};
use super::problem::Problem;
use super::{blocking, Shared};
use crate::store::ShownStatus;

/// Resumes the execution.
#[utoipa::path(
    post,
    path = "/api/v1/executions/{id}/resume",
    params(("id" = String, Path, description = "The execution's id")),
    responses(
        (status = 202, description = "Taken up again: the execution", body = ExecutionSummary),
        (status = 404, description = "No such execution", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It succeeded, or it is queued or running: nothing to take up", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "It cannot be resumed (what it ran is gone), with the reason", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "executions"
)]
pub async fn resume(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ExecutionSummary>), Problem> {
    let (store, known) = (shared.clone(), id.clone());
    let before = blocking(move || store.store.execution(&known)).await?;
    // Its state, not the request, is what is wrong: a conflict, as for cancel and delete.
    if matches!(before.shown(), ShownStatus::Succeeded | ShownStatus::Queued | ShownStatus::Running) {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!("execution {} is {}: there is nothing to resume", before.id, before.shown_status()),
        ));
    }
    let location = shared.location.clone();
    let resumes = before.resumes;
    let id = before.id.clone();
    let run = move || crate::runner::resume(&location, &id, Vec::new(), false);
    let record = super::runs::start(&shared, &before.id, run, move |now| now.resumes > resumes).await?;
    Ok((StatusCode::ACCEPTED, Json(summary(&record))))
}
