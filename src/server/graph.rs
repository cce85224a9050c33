//! `GET /api/v1/executions/{id}/graph`: the graphs an execution ran, as their `graph_planned`
//! events told them, each task with its state from the events that followed (a past execution
//! is drawn as well as a running one), laid out left to right in layers.

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
    /// Its place: `x` the layer (left to right), `y` its row in the layer.
    pub x: u32,
    pub y: u32,
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
                node.state = if error.contains("CANCELLED") { "cancelled" } else { "failed" }.into();
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
            x: 0,
            y: 0,
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
    let mut graph = GraphView { graph_id: event["graph_id"].as_u64().unwrap_or_default(), nodes, edges };
    lay_out(&mut graph);
    graph
}

/// Layers left to right: a task's layer is one more than the latest of those it waits for
/// (a subgraph's members come after the subgraph opens, and what waits for the subgraph after
/// its members); rows in a layer in task order.
fn lay_out(graph: &mut GraphView) {
    let count = graph.nodes.len();
    let index: HashMap<u64, usize> = graph.nodes.iter().enumerate().map(|(i, n)| (n.task_id, i)).collect();
    let mut waits: Vec<Vec<usize>> = vec![Vec::new(); count];
    for [before, after] in &graph.edges {
        if let (Some(&b), Some(&a)) = (index.get(before), index.get(after)) {
            waits[a].push(b);
        }
    }
    // What waits for a subgraph (outside it) waits for its members too.
    let mut waiting_for: HashMap<usize, Vec<usize>> = HashMap::new();
    for (after, list) in waits.iter().enumerate() {
        for &before in list {
            waiting_for.entry(before).or_default().push(after);
        }
    }
    for member in 0..count {
        let Some(&sub) = graph.nodes[member].subgraph.and_then(|s| index.get(&s)) else { continue };
        waits[member].push(sub);
        for &after in waiting_for.get(&sub).into_iter().flatten() {
            if graph.nodes[after].subgraph != Some(graph.nodes[sub].task_id) {
                waits[after].push(member);
            }
        }
    }
    // Kahn's order: a task's layer is fixed once those it waits for are.
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); count];
    let mut unfixed: Vec<usize> = waits.iter().map(Vec::len).collect();
    for (after, list) in waits.iter().enumerate() {
        for &before in list {
            dependents[before].push(after);
        }
    }
    let mut layer = vec![0u32; count];
    let mut ready: Vec<usize> = (0..count).filter(|&i| unfixed[i] == 0).collect();
    while let Some(i) = ready.pop() {
        for &after in &dependents[i] {
            layer[after] = layer[after].max(layer[i] + 1);
            unfixed[after] -= 1;
            if unfixed[after] == 0 {
                ready.push(after);
            }
        }
    }
    let mut rows: HashMap<u32, u32> = HashMap::new();
    for (node, layer) in graph.nodes.iter_mut().zip(layer) {
        node.x = layer;
        let row = rows.entry(node.x).or_default();
        node.y = *row;
        *row += 1;
    }
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
        let shown: Vec<(&str, &str, u32, u32)> =
            nodes.iter().map(|n| (n.task.as_str(), n.state.as_str(), n.attempts, n.x)).collect();
        assert_eq!(
            shown,
            [("a", "succeeded", 1, 0), ("sub", "pending", 0, 1), ("b", "pending", 0, 2), ("c", "failed", 2, 3)]
        );
        assert_eq!(nodes[0].result, Some(json!(7)));
        assert_eq!(nodes[3].error.as_deref(), Some("exit 1"));
    }
}
