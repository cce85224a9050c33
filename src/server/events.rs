//! `/api/v1/executions/{id}/events`: an execution's events after a seq, as JSON, or followed
//! as Server-Sent Events (`Accept: text/event-stream`): each event's `id:` is its seq, so a
//! client that reconnects with `Last-Event-ID` goes on without a gap or a duplicate; comments
//! keep the connection alive; a last `end` event says how the execution ended.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use utoipa::{IntoParams, ToSchema};

use super::problem::Problem;
use super::{blocking, Shared};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Only events with a greater seq (0: all). A `Last-Event-ID` header takes precedence.
    #[param(minimum = 0)]
    pub after: Option<i64>,
}

/// Events after a seq, oldest first.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    /// Each as the store recorded it (`type`, `seq`, `ts`, ... as `--events-json` writes them).
    pub events: Vec<Value>,
}

/// The execution's events: JSON, or a stream of them as they are committed.
#[utoipa::path(
    get,
    path = "/api/v1/executions/{id}/events",
    params(("id" = String, Path, description = "The execution's id"), EventsQuery),
    responses(
        (status = 200, description = "The events after `after`, or (Accept: text/event-stream) a stream of them, each with its seq as id, ending with an `end` event", body = EventPage),
        (status = 400, description = "A bad `after` or `Last-Event-ID` (not a seq)", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such execution", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "executions"
)]
pub async fn events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, Problem> {
    let Query(query) = query.map_err(|e| Problem::bad_request(e.body_text()))?;
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::trim);
    let after = match last_event_id {
        Some(seq) => seq.parse().map_err(|_| Problem::bad_request(format!("Last-Event-ID `{seq}` is not a seq")))?,
        // A seq is an int64, as the document says: a negative one is no seq.
        None => u64::try_from(query.after.unwrap_or(0))
            .map_err(|_| Problem::bad_request("`after` must be a seq, 0 or more"))?,
    };
    let (store, known) = (shared.clone(), id.clone());
    blocking(move || store.store.execution(&known)).await?;
    let streamed =
        headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|a| a.contains("text/event-stream"));
    if streamed {
        return Ok(follow(shared, id, after).into_response());
    }
    let lines = blocking(move || shared.store.events_after(&id, after)).await?;
    let events = lines.iter().map(|(_, line)| serde_json::from_str(line).unwrap_or(Value::Null)).collect();
    Ok(Json(EventPage { events }).into_response())
}

/// What a watch of an execution sees: each event (its seq and JSON line) as it is committed,
/// then how it ended.
#[derive(Clone)]
pub(super) enum Watched {
    Event(u64, String),
    End { status: &'static str, last_seq: u64 },
}

pub(super) use super::watches::watch;

/// A stream of what `receive` gets, each made an item by `item` (`None`: skipped).
pub(super) fn stream_of<T>(
    receive: mpsc::Receiver<Watched>,
    item: impl Fn(Watched) -> Option<T> + Send + 'static,
) -> impl futures_util::Stream<Item = T> {
    futures_util::stream::unfold((receive, item), |(mut receive, item)| async move {
        loop {
            let watched = receive.recv().await?;
            if let Some(made) = item(watched) {
                return Some((made, (receive, item)));
            }
        }
    })
}

/// The events of `id` after `after` as they are committed, then `end`.
fn follow(
    shared: Arc<Shared>,
    id: String,
    after: u64,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let stream = stream_of(watch(shared, id, after), |watched| {
        Some(Ok(match watched {
            Watched::Event(seq, line) => Event::default().id(seq.to_string()).data(line),
            Watched::End { status, last_seq } => {
                let end = serde_json::json!({ "status": status, "last_seq": last_seq });
                Event::default().event("end").data(end.to_string())
            }
        }))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
