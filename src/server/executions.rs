//! `/api/v1/executions`: the executions a store holds, newest first, and one with its tasks.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::problem::Problem;
use super::{blocking, Shared};
use crate::store::{ExecutionQuery, ExecutionRecord, ShownStatus, StoredTask};

/// How many executions a page holds unless `limit` says otherwise, and at most.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

/// An execution as a listing shows it.
#[derive(Serialize, ToSchema)]
pub struct ExecutionSummary {
    pub id: String,
    pub workflow: String,
    /// queued, running, succeeded, failed, cancelled, or crashed (recorded as running, what ran
    /// it gone: resumable).
    pub status: String,
    /// RFC 3339.
    pub started_at: String,
    pub ended_at: Option<String>,
    pub error: Option<String>,
    /// How many times it was taken up again.
    pub resumes: u32,
    pub tasks_total: u64,
    pub tasks_done: u64,
}

/// An execution with its parameters and its tasks.
#[derive(Serialize, ToSchema)]
pub struct ExecutionDetail {
    #[serde(flatten)]
    pub summary: ExecutionSummary,
    pub parameters: Value,
    /// The deployment it ran on, if any.
    pub deployment: Option<String>,
    /// The seq of its last event (`/events?after=SEQ` reads on from there).
    pub last_seq: u64,
    pub tasks: Vec<TaskView>,
}

/// A task as the execution's events left it.
#[derive(Serialize, ToSchema)]
pub struct TaskView {
    pub name: String,
    /// script, shell, event, noop, sleep, operation or subgraph.
    pub kind: String,
    /// succeeded, failed, cancelled, ignored, rescheduled, started, reverted or revert_failed.
    pub state: String,
    pub attempts: u32,
    pub result: Option<Value>,
    pub error: Option<String>,
    pub node_instance: Option<String>,
}

/// A page of executions, newest first.
#[derive(Serialize, ToSchema)]
pub struct ExecutionPage {
    pub executions: Vec<ExecutionSummary>,
    /// Where the next page starts (`cursor=`), when this one is full.
    pub next_cursor: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only these statuses, comma-separated (queued, running, succeeded, failed, cancelled, crashed).
    #[param(
        pattern = r"^\s*(queued|running|succeeded|failed|cancelled|crashed)?\s*(,\s*(queued|running|succeeded|failed|cancelled|crashed)?\s*)*$"
    )]
    pub status: Option<String>,
    /// Only executions of this workflow.
    pub workflow: Option<String>,
    /// At most this many (1 to 1000; 100 unless given).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the page before (opaque).
    pub cursor: Option<String>,
}

/// A cursor: the place after the last execution of a page (its start time and id), opaque to
/// clients (hex of a JSON pair), so that its form can change.
fn cursor_of(record: &ExecutionRecord) -> String {
    let place = serde_json::json!([record.started_at, record.id]).to_string();
    place.bytes().map(|b| format!("{b:02x}")).collect()
}

fn place_of(cursor: &str) -> Option<(String, String)> {
    let bytes: Option<Vec<u8>> = (0..cursor.len())
        .step_by(2)
        .map(|i| cursor.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    serde_json::from_slice(&bytes?).ok()
}

pub(super) fn summary(record: &ExecutionRecord) -> ExecutionSummary {
    ExecutionSummary {
        id: record.id.clone(),
        workflow: record.workflow.clone(),
        status: record.shown_status().to_string(),
        started_at: record.started_at.clone(),
        ended_at: record.ended_at.clone(),
        error: record.error.clone(),
        resumes: record.resumes,
        tasks_total: record.tasks_total,
        tasks_done: record.tasks_done,
    }
}

fn task(task: StoredTask) -> TaskView {
    TaskView {
        name: task.name,
        kind: task.kind.as_str().to_string(),
        state: task.state.as_str().to_string(),
        attempts: task.attempts,
        result: task.result,
        error: task.error,
        node_instance: task.node_instance,
    }
}

/// The query a listing's parameters make, or what is wrong with them.
fn execution_query(query: ListQuery) -> Result<ExecutionQuery, Problem> {
    let mut statuses = Vec::new();
    for name in query.status.iter().flat_map(|s| s.split(',')).map(str::trim).filter(|s| !s.is_empty()) {
        let status = ShownStatus::parse(name).ok_or_else(|| {
            let known: Vec<&str> = ShownStatus::ALL.iter().map(|s| s.as_str()).collect();
            Problem::bad_request(format!("unknown status `{name}`: expected one of {}", known.join(", ")))
        })?;
        statuses.push(status);
    }
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(Problem::bad_request(format!("limit must be 1 to {MAX_LIMIT}, not {limit}")));
    }
    // An empty cursor is none, as an empty status is no filter.
    let older_than = match query.cursor.as_ref().filter(|c| !c.is_empty()) {
        Some(cursor) => {
            Some(place_of(cursor).ok_or_else(|| Problem::bad_request(format!("`{cursor}` is not a cursor")))?)
        }
        None => None,
    };
    Ok(ExecutionQuery {
        statuses,
        workflow: query.workflow,
        older_than,
        limit: Some(limit),
        ..ExecutionQuery::default()
    })
}

/// The executions, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/executions",
    params(ListQuery),
    responses(
        (status = 200, description = "The executions, newest first", body = ExecutionPage),
        (status = 400, description = "A bad filter or limit", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "executions"
)]
pub async fn list(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ExecutionPage>, Problem> {
    let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let query = execution_query(query)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let records = blocking(move || shared.store.executions(&query)).await?;
    let next_cursor = records.last().filter(|_| records.len() == limit).map(cursor_of);
    Ok(Json(ExecutionPage { executions: records.iter().map(summary).collect(), next_cursor }))
}

/// One execution, with its parameters and tasks.
#[utoipa::path(
    get,
    path = "/api/v1/executions/{id}",
    params(("id" = String, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "The execution", body = ExecutionDetail),
        (status = 404, description = "No such execution", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "executions"
)]
pub async fn show(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Result<Json<ExecutionDetail>, Problem> {
    let (record, tasks) = blocking(move || {
        let record = shared.store.execution(&id)?;
        let tasks = shared.store.tasks(&id)?;
        Ok((record, tasks))
    })
    .await?;
    Ok(Json(ExecutionDetail {
        summary: summary(&record),
        parameters: record.parameters.clone(),
        deployment: record.deployment().map(str::to_string),
        last_seq: record.last_seq,
        tasks: tasks.into_iter().map(task).collect(),
    }))
}
