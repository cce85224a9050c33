//! `POST /api/v1/executions/{id}/cancel`: asks a queued or running execution to stop, as
//! `executions cancel` does: through the store, which its run (on any machine) reads five
//! times a second; a run on this machine is nudged to read it at once.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::executions::{summary, ExecutionSummary};
use super::problem::Problem;
use super::{blocking, Shared};
use crate::store::{Runner, ShownStatus};

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    /// Kill running tasks now (their process groups), rather than let them finish.
    #[serde(default)]
    pub force: bool,
}

/// Asks the execution to stop: gracefully (running tasks finish), or with `force`.
#[utoipa::path(
    post,
    path = "/api/v1/executions/{id}/cancel",
    params(("id" = String, Path, description = "The execution's id")),
    request_body(content = Option<CancelRequest>, description = "`{\"force\": true}` kills running tasks; no body: graceful"),
    responses(
        (status = 202, description = "Asked: the execution as it was when asked", body = ExecutionSummary),
        (status = 400, description = "A body that is not a cancel request (not JSON, unknown fields)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such execution", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is not running (it ended, or crashed: resume it)", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "executions"
)]
pub async fn cancel(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<(StatusCode, Json<ExecutionSummary>), Problem> {
    let force = match body {
        // No body (and so no JSON content type): a graceful cancel.
        Err(JsonRejection::MissingJsonContentType(_)) => false,
        // `null`, as the document allows, is no request: graceful too.
        body => Problem::object_body::<CancelRequest>(body)?.is_some_and(|r| r.force),
    };
    let (record, stoppable) = blocking(move || {
        let record = shared.store.execution(&id)?;
        let stoppable = matches!(record.shown(), ShownStatus::Queued | ShownStatus::Running);
        if stoppable {
            shared.store.request_cancel(&record.id, force, Some(&caller.describe()))?;
        }
        Ok((record, stoppable))
    })
    .await?;
    if !stoppable {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            format!("execution {} is not running (it is {})", record.id, record.shown_status()),
        ));
    }
    if record.runner == Runner::Process {
        crate::runner::nudge(record.pid);
    }
    Ok((StatusCode::ACCEPTED, Json(summary(&record))))
}

/// `executions cancel` (and `cancel` above) nudge the process that runs an execution with
/// SIGUSR1, whose default would end it: this server runs executions, so it takes nudges in. Its
/// runs read the store's requests five times a second anyway.
pub(super) fn take_nudges() -> std::io::Result<()> {
    let mut nudged = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    tokio::spawn(async move { while nudged.recv().await.is_some() {} });
    Ok(())
}
