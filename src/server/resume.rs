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
use crate::store::ShownStatus;

/// Resumes the execution.
#[utoipa::path(
    post,
    path = "/api/v1/executions/{id}/resume",
    params(("id" = String, Path, description = "The execution's id")),
    responses(
        (status = 202, description = "Taken up again: the execution", body = ExecutionSummary),
        (status = 404, description = "No such execution", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It succeeded, or still runs", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "It cannot be taken up again here (what it ran from is gone, another process took it first), with the reason", body = Problem, content_type = "application/problem+json"),
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
    // What it is now rules a resume out: a conflict with its state, not a bad request.
    let conflict = match before.shown() {
        ShownStatus::Succeeded => Some("it succeeded: nothing to resume"),
        ShownStatus::Queued | ShownStatus::Running => Some("it is still running: cancel it first"),
        _ => None,
    };
    if let Some(why) = conflict {
        return Err(Problem::new(StatusCode::CONFLICT, format!("execution {} cannot be resumed: {why}", before.id)));
    }
    let location = shared.location.clone();
    let resumes = before.resumes;
    let id = before.id.clone();
    let by = Some(caller.describe());
    let run = move || crate::runner::resume(&location, &id, Vec::new(), false, by);
    let record = super::runs::start(&shared, &before.id, run, move |now| now.resumes > resumes).await?;
    Ok((StatusCode::ACCEPTED, Json(summary(&record))))
}
