//! The graph a `graph_planned` event tells, kept in binary.
//!
//! As JSON a graph was ~70 bytes a task, made at every `execute()` and stored as it was: with
//! a store, ~700 instructions of a durable no-op task. Kept in binary it is ~11 bytes a chain
//! task, which the store keeps as they are (store format 7); the JSON is written from them
//! only for a reader of it (`--events-json`, a stored event read back), byte for byte the
//! JSON it was.
//!
//! The bytes: the graph's id (LEB128) · how many nodes · each node: its name (length, text),
//! a byte with its kind (`TaskKind::code`) and whether a subgraph and a node instance follow,
//! its `task_id` as the difference from the node's before, its subgraph's `task_id` as the
//! difference from its own, its node instance (length, text) · then, to the end, each edge:
//! `after` as the difference from the edge's before, and `after − before`.

use super::varint::{push_difference, push_varint, read_difference, read_varint};
use super::{push_integer, push_json_string, TaskKind};

/// The flag of a node with a subgraph.
const IN_SUBGRAPH: u8 = 0x10;
/// The flag of a node with a node instance.
const ON_INSTANCE: u8 = 0x20;
/// The bits of the node's byte that hold its kind.
const KIND: u8 = 0x0f;

/// A planned graph: `graph_id`, `nodes` (`task`, `task_id`, `kind`, `subgraph`, `node_instance`
/// where there is one) and `edges` (`[before, after]` by `task_id`), in binary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedGraph {
    bytes: Vec<u8>,
}

/// A `PlannedGraph` being written: nodes first, in the order they are told, then edges.
pub struct PlannedGraphBuilder {
    bytes: Vec<u8>,
    nodes_left: usize,
    last_id: u64,
    last_after: u64,
}

/// Bytes that do not read as a planned graph (a damaged stored event).
#[derive(Debug)]
pub struct MalformedGraph;

impl PlannedGraph {
    /// A graph with `nodes` nodes, which `PlannedGraphBuilder::node` must then be given.
    pub fn builder(graph_id: u64, nodes: usize) -> PlannedGraphBuilder {
        let mut bytes = Vec::with_capacity(16 + nodes * 16);
        push_varint(&mut bytes, graph_id);
        push_varint(&mut bytes, nodes as u64);
        PlannedGraphBuilder { bytes, nodes_left: nodes, last_id: 0, last_after: 0 }
    }

    /// The bytes as the store keeps them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Appends `"graph_id":…,"nodes":[…],"edges":[…]`, the event's fields after its type.
    pub fn write_json_fields(&self, out: &mut Vec<u8>) {
        // Made by `PlannedGraphBuilder` only: the bytes always read.
        let _ = write_json_fields(&self.bytes, out);
    }
}

impl PlannedGraphBuilder {
    pub fn node(&mut self, name: &str, task_id: u64, kind: TaskKind, subgraph: Option<u64>, instance: Option<&str>) {
        debug_assert!(self.nodes_left > 0, "more nodes than the graph was made for");
        self.nodes_left = self.nodes_left.saturating_sub(1);
        let out = &mut self.bytes;
        push_varint(out, name.len() as u64);
        out.extend_from_slice(name.as_bytes());
        let flags = if subgraph.is_some() { IN_SUBGRAPH } else { 0 } | if instance.is_some() { ON_INSTANCE } else { 0 };
        out.push(kind.code() | flags);
        push_difference(out, self.last_id, task_id);
        self.last_id = task_id;
        if let Some(parent) = subgraph {
            push_difference(out, task_id, parent);
        }
        if let Some(instance) = instance {
            push_varint(out, instance.len() as u64);
            out.extend_from_slice(instance.as_bytes());
        }
    }

    /// An edge, once every node was told.
    pub fn edge(&mut self, before: u64, after: u64) {
        debug_assert_eq!(self.nodes_left, 0, "an edge before the last node");
        push_difference(&mut self.bytes, self.last_after, after);
        push_difference(&mut self.bytes, before, after);
        self.last_after = after;
    }

    pub fn finish(self) -> PlannedGraph {
        PlannedGraph { bytes: self.bytes }
    }
}

/// Appends the JSON fields of the planned graph `bytes` (`PlannedGraph::as_bytes`), as
/// `graph::planned` wrote them when they were JSON: numbers past `i64::MAX` as `i64::MAX`.
pub fn write_json_fields(mut bytes: &[u8], out: &mut Vec<u8>) -> Result<(), MalformedGraph> {
    let body = &mut bytes;
    let number = |out: &mut Vec<u8>, n: u64| push_integer(out, i64::try_from(n).unwrap_or(i64::MAX));
    out.extend_from_slice(b"\"graph_id\":");
    number(out, read_varint(body).ok_or(MalformedGraph)?);
    out.extend_from_slice(b",\"nodes\":[");
    let nodes = read_varint(body).ok_or(MalformedGraph)?;
    let mut last_id = 0;
    for n in 0..nodes {
        out.extend_from_slice(if n == 0 { b"{\"task\":" } else { b",{\"task\":" });
        push_json_string(out, read_text(body)?);
        let (&flags, rest) = body.split_first().ok_or(MalformedGraph)?;
        *body = rest;
        let kind = TaskKind::from_code(flags & KIND).ok_or(MalformedGraph)?;
        if flags & !(KIND | IN_SUBGRAPH | ON_INSTANCE) != 0 {
            return Err(MalformedGraph);
        }
        let task_id = read_difference(body, last_id).ok_or(MalformedGraph)?;
        last_id = task_id;
        out.extend_from_slice(b",\"task_id\":");
        number(out, task_id);
        out.extend_from_slice(b",\"kind\":\"");
        out.extend_from_slice(kind.as_str().as_bytes());
        out.extend_from_slice(b"\",\"subgraph\":");
        if flags & IN_SUBGRAPH != 0 {
            number(out, read_difference(body, task_id).ok_or(MalformedGraph)?);
        } else {
            out.extend_from_slice(b"null");
        }
        if flags & ON_INSTANCE != 0 {
            out.extend_from_slice(b",\"node_instance\":");
            push_json_string(out, read_text(body)?);
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"edges\":[");
    let mut last_after = 0;
    let mut first = true;
    while !body.is_empty() {
        let after = read_difference(body, last_after).ok_or(MalformedGraph)?;
        let before = after.wrapping_sub(read_difference(body, 0).ok_or(MalformedGraph)?);
        last_after = after;
        out.extend_from_slice(if first { b"[" } else { b",[" });
        first = false;
        number(out, before);
        out.push(b',');
        number(out, after);
        out.push(b']');
    }
    out.push(b']');
    Ok(())
}

fn read_text<'a>(body: &mut &'a [u8]) -> Result<&'a str, MalformedGraph> {
    let length = usize::try_from(read_varint(body).ok_or(MalformedGraph)?).map_err(|_| MalformedGraph)?;
    let (text, rest) = body.split_at_checked(length).ok_or(MalformedGraph)?;
    *body = rest;
    std::str::from_utf8(text).map_err(|_| MalformedGraph)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node as the builder is told it: name, `task_id`, kind, subgraph, node instance.
    type Node<'a> = (&'a str, u64, TaskKind, Option<u64>, Option<&'a str>);
    /// A graph's id, nodes and edges.
    type Case<'a> = (u64, Vec<Node<'a>>, Vec<(u64, u64)>);

    /// The graph's JSON as `graph::planned` wrote it before it was kept in binary.
    fn as_json_was_written(graph_id: u64, nodes: &[Node], edges: &[(u64, u64)]) -> String {
        let number = |n: u64| i64::try_from(n).unwrap_or(i64::MAX).to_string();
        let nodes: Vec<String> = nodes
            .iter()
            .map(|(name, id, kind, parent, instance)| {
                let mut node = format!(
                    "{{\"task\":{},\"task_id\":{},\"kind\":\"{}\",\"subgraph\":{}",
                    serde_json::to_string(name).unwrap(),
                    number(*id),
                    kind.as_str(),
                    parent.map_or("null".to_string(), number),
                );
                if let Some(instance) = instance {
                    node += &format!(",\"node_instance\":{}", serde_json::to_string(instance).unwrap());
                }
                node + "}"
            })
            .collect();
        let edges: Vec<String> = edges.iter().map(|(b, a)| format!("[{},{}]", number(*b), number(*a))).collect();
        format!("\"graph_id\":{},\"nodes\":[{}],\"edges\":[{}]", number(graph_id), nodes.join(","), edges.join(","))
    }

    #[test]
    fn a_planned_graph_writes_the_json_it_was_written_as() {
        let cases: [Case; 4] = [
            (1, vec![], vec![]),
            (
                2,
                vec![
                    ("t0", 3, TaskKind::Noop, None, None),
                    ("t1", 4, TaskKind::Noop, None, None),
                    ("t2", 5, TaskKind::Noop, None, None),
                ],
                vec![(3, 4), (4, 5)],
            ),
            (
                7,
                vec![
                    ("sub \"g\"", 10, TaskKind::Subgraph, None, None),
                    ("in\nside", 12, TaskKind::Shell, Some(10), Some("db_1")),
                    ("ünïcode", 11, TaskKind::Operation, Some(10), Some("")),
                    ("", 2, TaskKind::Script, None, None),
                ],
                vec![(12, 11), (10, 2), (2, 12), (0, 11)],
            ),
            (
                u64::MAX,
                vec![
                    ("big", u64::MAX, TaskKind::Sleep, Some(0), None),
                    ("zero", 0, TaskKind::Event, Some(u64::MAX), None),
                ],
                vec![(u64::MAX, 0), (0, u64::MAX)],
            ),
        ];
        for (graph_id, nodes, edges) in cases {
            let mut builder = PlannedGraph::builder(graph_id, nodes.len());
            for &(name, id, kind, parent, instance) in &nodes {
                builder.node(name, id, kind, parent, instance);
            }
            for &(before, after) in &edges {
                builder.edge(before, after);
            }
            let graph = builder.finish();
            let mut out = Vec::new();
            graph.write_json_fields(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), as_json_was_written(graph_id, &nodes, &edges));
        }
    }

    #[test]
    fn a_chain_task_takes_a_dozen_bytes() {
        let mut builder = PlannedGraph::builder(1, 1000);
        for i in 0..1000 {
            builder.node(&format!("t{i}"), 100 + i, TaskKind::Noop, None, None);
        }
        for i in 1..1000 {
            builder.edge(99 + i, 100 + i);
        }
        let bytes = builder.finish().as_bytes().len();
        assert!(bytes < 12 * 1000, "{bytes} bytes");
    }

    #[test]
    fn damaged_bytes_are_an_error_not_a_panic() {
        let mut builder = PlannedGraph::builder(1, 2);
        builder.node("a", 1, TaskKind::Noop, None, Some("i"));
        builder.node("b", 2, TaskKind::Subgraph, Some(1), None);
        builder.edge(1, 2);
        let graph = builder.finish();
        let whole = graph.as_bytes();
        assert!(write_json_fields(whole, &mut Vec::new()).is_ok());
        // Cut anywhere in the nodes: a node is missing. (A cut between edges reads as fewer.)
        for cut in 0..whole.len() - 2 {
            assert!(write_json_fields(&whole[..cut], &mut Vec::new()).is_err(), "cut at {cut}");
        }
        let mut bad_kind = whole.to_vec();
        bad_kind[4] = 0x0f;
        assert!(write_json_fields(&bad_kind, &mut Vec::new()).is_err());
        assert!(write_json_fields(&[1, 1, 1, 0xff], &mut Vec::new()).is_err(), "a name that is not UTF-8");
    }
}
