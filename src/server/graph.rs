//! `GET /api/v1/executions/{id}/graph`: the graphs an execution ran, as their `graph_planned`
//! events told them, each task with its state from the events that followed (a past execution
//! is drawn as well as a running one), laid out left to right (`layout`).

mod layout;

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::problem::Problem;
use super::{blocking, Shared};

#[derive(Serialize, ToSchema)]
pub struct GraphsView {
    /// In the order `execute()` started them.
    pub graphs: Vec<GraphView>,
}

#[derive(Serialize, ToSchema)]
pub struct GraphView {
    pub graph_id: u64,
    pub nodes: Vec<NodeView>,
    /// `[before, after]` by `task_id`.
    pub edges: Vec<[u64; 2]>,
    /// How it was laid out: `sugiyama` (rust-sugiyama's layered layout), or `layers` (plain
    /// layers, rows in task order) for a graph too large for it.
    pub layout: String,
    /// The drawing's width in pixels.
    pub width: f64,
    /// The drawing's height in pixels.
    pub height: f64,
    /// Each node is a box this wide (pixels), centred on its `x`, `y`.
    pub node_width: f64,
    /// Each node's box is this high (pixels).
    pub node_height: f64,
}

#[derive(Serialize, ToSchema, Clone)]
pub struct NodeView {
    pub task: String,
    /// The `task_id` of its first attempt.
    pub task_id: u64,
    pub kind: String,
    /// Its subgraph's `task_id`.
    pub subgraph: Option<u64>,
    pub node_instance: Option<String>,
    /// pending, running, succeeded, failed, rescheduled, cancelled, reverted or revert_failed.
    pub state: String,
    pub attempts: u32,
    /// Its last attempt's result, or error.
    pub result: Option<Value>,
    pub error: Option<String>,
    /// Its place: the centre of its box in pixels, left to right (a task right of those it
    /// waits for), top to bottom.
    pub x: f64,
    /// The centre's distance from the top, in pixels.
    pub y: f64,
}

/// The execution's graphs with their tasks' states.
#[utoipa::path(
    get,
    path = "/api/v1/executions/{id}/graph",
    params(("id" = String, Path, description = "The execution's id")),
    responses(
        (status = 200, description = "Its graphs", body = GraphsView),
        (status = 404, description = "No such execution", body = Problem, content_type = "application/problem+json"),
    ),
    tag = "executions"
)]
pub async fn graph(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Result<Json<GraphsView>, Problem> {
    let lines = blocking(move || {
        let record = shared.store.execution(&id)?;
        shared.store.events_after(&record.id, 0)
    })
    .await?;
    let events = lines.iter().filter_map(|(_, line)| serde_json::from_str::<Value>(line).ok());
    Ok(Json(GraphsView { graphs: graphs_of(events) }))
}

/// The graphs `events` planned, with their tasks' states.
fn graphs_of(events: impl Iterator<Item = Value>) -> Vec<GraphView> {
    let mut graphs: Vec<GraphView> = Vec::new();
    // A task's events by task_id; a retry's new task_id by the task's name and instance.
    let mut by_id: HashMap<u64, (usize, usize)> = HashMap::new();
    let mut by_name: HashMap<(String, Option<String>), (usize, usize)> = HashMap::new();
    for event in events {
        let kind = event["type"].as_str().unwrap_or_default();
        if kind == "graph_planned" {
            graphs.push(planned(&event, graphs.len(), &mut by_id, &mut by_name));
            continue;
        }
        let Some(task_id) = event["task_id"].as_u64() else { continue };
        let name =
            (event["task"].as_str().unwrap_or_default().to_string(), event["node_instance"].as_str().map(String::from));
        let Some(&(g, n)) = by_id.get(&task_id).or_else(|| by_name.get(&name)) else { continue };
        by_id.insert(task_id, (g, n));
        let node = &mut graphs[g].nodes[n];
        match kind {
            "task_started" => {
                node.state = "running".into();
                node.attempts += 1;
            }
            "task_succeeded" => {
                node.state = "succeeded".into();
                node.result = event.get("result").cloned();
            }
            "task_rescheduled" => node.state = "rescheduled".into(),
            "task_failed" => {
                let error = event["error"].as_str().unwrap_or_default();
                node.state = if error == crate::events::CANCELLED { "cancelled" } else { "failed" }.into();
                node.error = Some(error.to_string());
            }
            "task_reverted" => node.state = "reverted".into(),
            "task_revert_failed" => node.state = "revert_failed".into(),
            _ => {}
        }
    }
    graphs
}

fn planned(
    event: &Value,
    g: usize,
    by_id: &mut HashMap<u64, (usize, usize)>,
    by_name: &mut HashMap<(String, Option<String>), (usize, usize)>,
) -> GraphView {
    let nodes: Vec<NodeView> = event["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| NodeView {
            task: n["task"].as_str().unwrap_or_default().to_string(),
            task_id: n["task_id"].as_u64().unwrap_or_default(),
            kind: n["kind"].as_str().unwrap_or_default().to_string(),
            subgraph: n["subgraph"].as_u64(),
            node_instance: n["node_instance"].as_str().map(String::from),
            state: "pending".into(),
            attempts: 0,
            result: None,
            error: None,
            x: 0.0,
            y: 0.0,
        })
        .collect();
    let edges: Vec<[u64; 2]> = event["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| Some([e[0].as_u64()?, e[1].as_u64()?]))
        .collect();
    for (n, node) in nodes.iter().enumerate() {
        by_id.insert(node.task_id, (g, n));
        by_name.insert((node.task.clone(), node.node_instance.clone()), (g, n));
    }
    let mut graph = GraphView {
        graph_id: event["graph_id"].as_u64().unwrap_or_default(),
        nodes,
        edges,
        layout: String::new(),
        width: 0.0,
        height: 0.0,
        node_width: layout::NODE_WIDTH,
        node_height: layout::NODE_HEIGHT,
    };
    layout::lay_out(&mut graph);
    graph
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn states_follow_the_events_and_layers_follow_the_edges() {
        let planned = json!({"type": "graph_planned", "graph_id": 1, "edges": [[1, 2], [2, 4]], "nodes": [
            {"task": "a", "task_id": 1, "kind": "script", "subgraph": null},
            {"task": "sub", "task_id": 2, "kind": "subgraph", "subgraph": null},
            {"task": "b", "task_id": 3, "kind": "noop", "subgraph": 2},
            {"task": "c", "task_id": 4, "kind": "shell", "subgraph": null}]});
        let events = vec![
            planned,
            json!({"type": "task_started", "task": "a", "task_id": 1}),
            json!({"type": "task_succeeded", "task": "a", "task_id": 1, "result": 7}),
            json!({"type": "task_started", "task": "c", "task_id": 4}),
            json!({"type": "task_rescheduled", "task": "c", "task_id": 4}),
            json!({"type": "task_started", "task": "c", "task_id": 9}),
            json!({"type": "task_failed", "task": "c", "task_id": 9, "error": "exit 1"}),
        ];
        let graphs = graphs_of(events.into_iter());
        let nodes = &graphs[0].nodes;
        let shown: Vec<(&str, &str, u32)> =
            nodes.iter().map(|n| (n.task.as_str(), n.state.as_str(), n.attempts)).collect();
        assert_eq!(shown, [("a", "succeeded", 1), ("sub", "pending", 0), ("b", "pending", 0), ("c", "failed", 2)]);
        // a, then the subgraph, its member, and what waits for the subgraph: left to right.
        let xs: Vec<f64> = nodes.iter().map(|n| n.x).collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
        assert_eq!(graphs[0].layout, "sugiyama");
        assert_eq!(nodes[0].result, Some(json!(7)));
        assert_eq!(nodes[3].error.as_deref(), Some("exit 1"));
    }

    // A task the cancel stopped is cancelled, not failed: its error was looked for as
    // "CANCELLED", which the cancel's error ("the execution was cancelled") never contains.
    #[test]
    fn a_task_stopped_by_a_cancel_is_cancelled() {
        let planned = json!({"type": "graph_planned", "graph_id": 1, "edges": [], "nodes": [
            {"task": "wait", "task_id": 1, "kind": "sleep", "subgraph": null}]});
        let events = vec![
            planned,
            json!({"type": "task_started", "task": "wait", "task_id": 1}),
            json!({"type": "task_failed", "task": "wait", "task_id": 1, "error": crate::events::CANCELLED}),
        ];
        assert_eq!(graphs_of(events.into_iter())[0].nodes[0].state, "cancelled");
    }
}
