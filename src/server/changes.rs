//! `GET /api/v1/events`: a Server-Sent Events stream of executions' changes (one started,
//! its status or progress changed), for a live list. One watcher looks at the store for all
//! the streams (every `LOOK_EVERY`: the newest executions and every unfinished one) and
//! broadcasts what changed, so a thousand open streams cost one look.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::StreamExt;
use tokio::sync::broadcast;

use super::executions::summary;
use super::{blocking, Shared};
use crate::store::{ExecutionQuery, ExecutionRecord, ShownStatus};

const LOOK_EVERY: Duration = Duration::from_millis(50);
/// The newest executions looked at, besides every unfinished one.
const NEWEST: usize = 200;

/// A stream of executions' changes: each `data:` an execution as `/executions` lists it.
#[utoipa::path(
    get,
    path = "/api/v1/events",
    responses((status = 200, description = "Server-Sent Events: an execution (as listed) each time one starts or changes", content_type = "text/event-stream", body = String)),
    tag = "executions"
)]
pub async fn changes(
    State(shared): State<Arc<Shared>>,
) -> Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>> {
    let receive = shared.changes.subscribe();
    let closing = shared.closing.clone();
    let stream = futures_util::stream::unfold(receive, |mut receive| async move {
        loop {
            match receive.recv().await {
                Ok(change) => return Some((Ok(Event::default().data(change.as_str())), receive)),
                // A client too slow for the changes misses some: it reloads the list.
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream.take_until(super::until_closing(closing))).keep_alive(KeepAlive::default())
}

/// Looks at the store every `LOOK_EVERY` while the server runs, and broadcasts each execution
/// that is new or changed since the look before.
pub(super) async fn watch(shared: Arc<Shared>) {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut first = true;
    loop {
        let store = shared.clone();
        let looked = blocking(move || {
            let mut records = store.store.executions(&ExecutionQuery { limit: Some(NEWEST), ..Default::default() })?;
            let unfinished =
                ExecutionQuery { statuses: vec![ShownStatus::Queued, ShownStatus::Running], ..Default::default() };
            records.extend(store.store.executions(&unfinished)?);
            Ok(records)
        })
        .await;
        if let Ok(records) = looked {
            let (now, changed) = changes_since(&seen, &records);
            if !first && shared.changes.receiver_count() > 0 {
                for change in changed {
                    let _ = shared.changes.send(Arc::new(change));
                }
            }
            // Only what this look saw: what the server keeps does not grow with the store.
            seen = now;
            first = false;
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// Each execution of `records` as listed, and those that are new or changed since `seen`.
fn changes_since(
    seen: &HashMap<String, String>,
    records: &[ExecutionRecord],
) -> (HashMap<String, String>, Vec<String>) {
    let mut now = HashMap::with_capacity(records.len());
    let mut changed = Vec::new();
    for record in records {
        let shown = serde_json::to_string(&summary(record)).unwrap_or_default();
        if seen.get(&record.id) != Some(&shown) && !now.contains_key(&record.id) {
            changed.push(shown.clone());
        }
        now.insert(record.id.clone(), shown);
    }
    (now, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ExecutionStatus;

    fn record(id: &str, status: ExecutionStatus) -> ExecutionRecord {
        ExecutionRecord::of_this_process(id, status, "2026-12-01T00:00:00Z")
    }

    // The watcher kept every execution it had ever seen, for as long as the server ran: its
    // memory grew with the store.
    #[test]
    fn only_what_the_last_look_saw_is_kept() {
        let first = vec![record("a", ExecutionStatus::Running), record("b", ExecutionStatus::Running)];
        let (seen, changed) = changes_since(&HashMap::new(), &first);
        assert_eq!(changed.len(), 2);
        let second = vec![record("b", ExecutionStatus::Succeeded)];
        let (seen, changed) = changes_since(&seen, &second);
        assert_eq!(changed.len(), 1);
        assert!(changed[0].contains("succeeded"), "{changed:?}");
        assert_eq!(seen.keys().collect::<Vec<_>>(), ["b"]);
        assert!(changes_since(&seen, &second).1.is_empty());
    }
}
