//! `/api/v1/executions/{id}/logs`: the lines its shell, exec and operation script tasks
//! printed (`executions logs`), as plain text; `follow=true` streams them as they are
//! committed until the execution ends.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;

use super::events::{stream_of, watch, Watched};
use super::problem::Problem;
use super::{blocking, Shared};
use crate::events::log_line;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// Only this task's lines, bare (else every line led by its task: `build | text`).
    pub task: Option<String>,
    /// Go on with the lines printed from now on, until the execution ends.
    #[serde(default)]
    pub follow: bool,
}

/// What the execution's tasks printed.
#[utoipa::path(
    get,
    path = "/api/v1/executions/{id}/logs",
    params(("id" = String, Path, description = "The execution's id"), LogsQuery),
    responses(
        (status = 200, description = "The lines, one a line", body = String, content_type = "text/plain"),
        (status = 400, description = "A bad `follow` (true or false)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such execution, or (not followed) no such task in it", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "executions"
)]
pub async fn logs(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    query: Result<Query<LogsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(LogsQuery { task, follow }) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let (store, known, named) = (shared.clone(), id.clone(), task.clone());
    let record = blocking(move || {
        let record = store.store.execution(&known)?;
        let tasks = if named.is_some() && !follow { store.store.tasks(&record.id)? } else { Vec::new() };
        Ok((record, tasks))
    })
    .await;
    let (record, tasks) = record?;
    // A task that has not started yet (followed while running) may still come.
    if let Some(task) = task.as_deref().filter(|_| !follow) {
        if !tasks.iter().any(|t| t.name == task) {
            let mut seen = std::collections::HashSet::new();
            let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).filter(|n| seen.insert(*n)).collect();
            let detail =
                format!("execution {} has no task named `{task}` (its tasks: {})", record.id, names.join(", "));
            return Err(Problem::not_found(detail));
        }
    }
    let text = [(header::CONTENT_TYPE, "text/plain; charset=utf-8")];
    if follow {
        let stream = stream_of(watch(shared, record.id, 0), move |watched| match watched {
            Watched::Event(_, json) => {
                log_line(&json, task.as_deref()).map(|line| Ok::<_, std::convert::Infallible>(line + "\n"))
            }
            Watched::End { .. } => None,
        });
        return Ok((text, Body::from_stream(stream)).into_response());
    }
    let id = record.id.clone();
    let lines = blocking(move || shared.store.events_after(&id, 0)).await?;
    let mut body = String::new();
    for line in lines.iter().filter_map(|(_, json)| log_line(json, task.as_deref())) {
        body.push_str(&line);
        body.push('\n');
    }
    Ok((text, body).into_response())
}
