//! `POST /api/v1/executions/{id}/resume`: takes up a crashed, failed or cancelled execution
//! again, as `executions resume` does (its succeeded tasks are not run again), in this
//! server's process.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};

use super::auth::Caller;
use super::executions::{summary, ExecutionSummary};
use super::problem::Problem;
use super::{blocking, Shared};

/// Resumes the execution.
#[utoipa::path(
    post,
    path = "/api/v1/executions/{id}/resume",
    params(("id" = String, Path, description = "The execution's id")),
    responses(
        (status = 202, description = "Taken up again: the execution", body = ExecutionSummary),
        (status = 404, description = "No such execution", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "It cannot be resumed (it succeeded, or runs), with the reason", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "executions"
)]
pub async fn resume(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ExecutionSummary>), Problem> {
    let (store, known) = (shared.clone(), id.clone());
    let before = blocking(move || store.store.execution(&known)).await?;
    let location = shared.location.clone();
    let resumes = before.resumes;
    let id = before.id.clone();
    let by = Some(caller.describe());
    let run = move || crate::runner::resume_by(&location, &id, Vec::new(), false, by);
    let record = super::runs::start(&shared, &before.id, run, move |now| now.resumes > resumes).await?;
    Ok((StatusCode::ACCEPTED, Json(summary(&record))))
}
