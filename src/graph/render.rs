//! Drawing a graph without running it: Graphviz dot, Mermaid, JSON and plain text.

use std::collections::HashMap;
use std::fmt::Write;

use petgraph::stable_graph::NodeIndex;

use super::TaskGraph;
use crate::events::{PlannedGraph, TaskKind};
use crate::task::{TaskAction, TaskCell};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Dot,
    Mermaid,
    Json,
    Text,
}

/// Renders `graphs` (usually one) in `format`.
pub fn render(graphs: &[&TaskGraph], format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Dot => {
            out.push_str("digraph workflow {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n");
            for g in graphs {
                dot_members(g, None, 1, &mut out);
                for (from, to) in edges(g) {
                    let _ = writeln!(out, "  {} -> {};", id(g, from), id(g, to));
                }
            }
            out.push_str("}\n");
        }
        Format::Mermaid => {
            out.push_str("flowchart LR\n");
            for g in graphs {
                mermaid_members(g, None, 1, &mut out);
                for (from, to) in edges(g) {
                    let _ = writeln!(out, "  {} --> {}", id(g, from), id(g, to));
                }
            }
        }
        Format::Json => {
            let tasks: Vec<serde_json::Value> = graphs.iter().flat_map(|g| json_tasks(g)).collect();
            out = serde_json::to_string_pretty(&serde_json::json!({ "tasks": tasks })).unwrap_or_default();
            out.push('\n');
        }
        Format::Text => {
            for g in graphs {
                text_members(g, None, 0, &mut out);
            }
        }
    }
    out
}

/// Edges as (runs first, runs after), in a stable order.
fn edges(g: &TaskGraph) -> Vec<(NodeIndex, NodeIndex)> {
    let mut all: Vec<_> = g.dag.edge_indices().filter_map(|e| g.dag.edge_endpoints(e)).collect();
    all.sort_by_key(|(a, b)| (g.dag[*a].serial, g.dag[*b].serial));
    all
}

fn id(g: &TaskGraph, index: NodeIndex) -> String {
    format!("g{}n{}", g.id, index.index())
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A task as a drawing labels it: `build (shell)`. A task on a node instance is named by what
/// it does to which instance (`lifecycle.configure web_1`, `set_state(started) web_1`): the
/// tasks of twenty instances share their names, and `set_state (operation)` twenty times over
/// says nothing.
fn label(g: &TaskGraph, index: NodeIndex) -> String {
    let cell = &g.dag[index];
    match (short_label(cell), cell.kind()) {
        (label, TaskKind::Operation) => label,
        (label, kind) => format!("{label} ({})", kind.as_str()),
    }
}

/// A task's name, with its instance (and the state it sets) when it acts on one: what
/// `waits for:` names it by.
fn short_label(cell: &TaskCell) -> String {
    let Some(instance) = cell.action.node_instance() else {
        return cell.name.to_string();
    };
    match &cell.action {
        TaskAction::SetState { state, .. } => format!("{}({state}) {instance}", cell.name),
        _ => format!("{} {instance}", cell.name),
    }
}

fn dot_members(g: &TaskGraph, parent: Option<NodeIndex>, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    for cell in g.members(parent) {
        let Some(index) = g.index_of(&cell) else {
            continue;
        };
        if cell.kind() == TaskKind::Subgraph {
            let _ = writeln!(out, "{pad}subgraph cluster_{} {{\n{pad}  label={};", id(g, index), quoted(&cell.name));
            let _ = writeln!(out, "{pad}  {} [label={}, shape=folder];", id(g, index), quoted(&label(g, index)));
            dot_members(g, Some(index), depth + 1, out);
            let _ = writeln!(out, "{pad}}}");
        } else {
            let _ = writeln!(out, "{pad}{} [label={}];", id(g, index), quoted(&label(g, index)));
        }
    }
}

fn mermaid_members(g: &TaskGraph, parent: Option<NodeIndex>, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    for cell in g.members(parent) {
        let Some(index) = g.index_of(&cell) else {
            continue;
        };
        let text = label(g, index).replace('"', "'");
        if cell.kind() == TaskKind::Subgraph {
            let _ = writeln!(out, "{pad}subgraph {} [\"{}\"]", id(g, index), text);
            mermaid_members(g, Some(index), depth + 1, out);
            let _ = writeln!(out, "{pad}end");
        } else {
            let _ = writeln!(out, "{pad}{}[\"{}\"]", id(g, index), text);
        }
    }
}

/// The graph as its `graph_planned` event tells it when it starts: `graph_id`, `nodes`
/// (`task`, `task_id`, `kind`, `subgraph`: its subgraph's `task_id`, `node_instance` where it
/// has one) and `edges` (`[before, after]` by `task_id`), in binary (`PlannedGraph`, which
/// writes the JSON). `reserve` gives each task the `task_id` of its first attempt.
pub fn planned(g: &TaskGraph, reserve: impl FnMut(&TaskCell) -> u64) -> PlannedGraph {
    let tasks = first_attempts(g, reserve);
    // Task ids by node index: a vector, not a map (a hash a task cost ~350 instructions).
    let mut ids = vec![None; petgraph::visit::NodeIndexable::node_bound(&g.dag)];
    for &(index, id) in &tasks {
        ids[index.index()] = Some(id);
    }
    let id_of = |index: NodeIndex| ids[index.index()].unwrap_or_default();
    let mut graph = PlannedGraph::builder(g.id, tasks.len());
    for &(index, id) in &tasks {
        let cell = &g.dag[index];
        let parent = cell.parent().and_then(|p| ids.get(p.index()).copied().flatten());
        graph.node(&cell.name, id, cell.kind(), parent, cell.action.node_instance().as_deref());
    }
    for &(after, after_id) in &tasks {
        for before in g.dependencies(after) {
            graph.edge(id_of(before), after_id);
        }
    }
    graph.finish()
}

/// The graph's tasks in creation order (as `Plan::build` orders them), each with the `task_id`
/// that `reserve` gives its first attempt.
fn first_attempts(g: &TaskGraph, mut reserve: impl FnMut(&TaskCell) -> u64) -> Vec<(NodeIndex, u64)> {
    let mut tasks: Vec<_> = g.dag.node_indices().collect();
    tasks.sort_by_key(|&i| g.dag[i].serial);
    tasks.into_iter().map(|i| (i, reserve(&g.dag[i]))).collect()
}

fn json_tasks(g: &TaskGraph) -> Vec<serde_json::Value> {
    let mut tasks: Vec<_> = g.dag.node_indices().collect();
    tasks.sort_by_key(|&i| g.dag[i].serial);
    tasks
        .into_iter()
        .map(|index| {
            let cell = &g.dag[index];
            let parent = cell.parent();
            let mut waits: Vec<String> = g.dependencies(index).map(|d| id(g, d)).collect();
            waits.sort();
            let mut task = serde_json::json!({
                "id": id(g, index),
                "name": &*cell.name,
                "kind": cell.kind().as_str(),
                "subgraph": parent.map(|p| id(g, p)),
                "waits_for": waits,
            });
            if let Some(instance) = cell.action.node_instance() {
                task["node_instance"] = serde_json::Value::from(&*instance);
            }
            task
        })
        .collect()
}

fn text_members(g: &TaskGraph, parent: Option<NodeIndex>, depth: usize, out: &mut String) {
    let names: HashMap<NodeIndex, String> = g.dag.node_indices().map(|i| (i, short_label(&g.dag[i]))).collect();
    let pad = "  ".repeat(depth);
    for cell in g.members(parent) {
        let Some(index) = g.index_of(&cell) else {
            continue;
        };
        let mut waits: Vec<&str> = g.dependencies(index).map(|d| names[&d].as_str()).collect();
        waits.sort();
        let _ = write!(out, "{pad}{}", label(g, index));
        if !waits.is_empty() {
            let _ = write!(out, "  waits for: {}", waits.join(", "));
        }
        out.push('\n');
        if cell.kind() == TaskKind::Subgraph {
            text_members(g, Some(index), depth + 1, out);
        }
    }
}
