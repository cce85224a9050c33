//! Where each node of a graph is drawn: left to right, a task to the right of those it waits
//! for. Up to `SUGIYAMA_LIMIT` nodes the places come from rust-sugiyama (Sugiyama's layered
//! layout: ranks, fewer crossings, compact rows); beyond, that costs more than a page can
//! wait for, and the nodes go in plain layers (Kahn's order, rows in task order), which the
//! page shows as a table anyway past its own threshold.

use std::collections::HashMap;

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use rust_sugiyama::configure::{Config, CrossingMinimization, RankingType};

use super::GraphView;

/// A node's box on the page, in pixels (the page draws it this size).
pub const NODE_WIDTH: f64 = 150.0;
pub const NODE_HEIGHT: f64 = 36.0;
/// The room between two layers (for the edges) and between two rows.
const LAYER_GAP: f64 = 44.0;
const ROW_GAP: f64 = 14.0;
/// Around the drawing.
const MARGIN: f64 = 16.0;
/// The largest graph laid out by rust-sugiyama; see docs/SERVER.md for the times measured.
pub const SUGIYAMA_LIMIT: usize = 2_500;

/// Sets each node's `x`, `y` (its centre) and the graph's `width`, `height` and `layout`.
pub fn lay_out(graph: &mut GraphView) {
    let waits = waits(graph);
    let places = if graph.nodes.len() <= SUGIYAMA_LIMIT { sugiyama(&waits) } else { None };
    graph.layout = if places.is_some() { "sugiyama" } else { "layers" }.into();
    let places = places.unwrap_or_else(|| layers(&waits));
    let min_x = places.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let min_y = places.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let (mut width, mut height) = (0.0f64, 0.0f64);
    for (node, (x, y)) in graph.nodes.iter_mut().zip(places) {
        node.x = (x - min_x + MARGIN + NODE_WIDTH / 2.0).round();
        node.y = (y - min_y + MARGIN + NODE_HEIGHT / 2.0).round();
        width = width.max(node.x + NODE_WIDTH / 2.0 + MARGIN);
        height = height.max(node.y + NODE_HEIGHT / 2.0 + MARGIN);
    }
    (graph.width, graph.height) = (width, height);
}

/// For each node (by index), the nodes it waits for: its edges, and for a subgraph's members
/// the subgraph (they start once it opened) while what waits for the subgraph from outside
/// waits for its members too (it starts once they are done).
fn waits(graph: &GraphView) -> Vec<Vec<usize>> {
    let count = graph.nodes.len();
    let index: HashMap<u64, usize> = graph.nodes.iter().enumerate().map(|(i, n)| (n.task_id, i)).collect();
    let mut waits: Vec<Vec<usize>> = vec![Vec::new(); count];
    for [before, after] in &graph.edges {
        if let (Some(&b), Some(&a)) = (index.get(before), index.get(after)) {
            waits[a].push(b);
        }
    }
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
    waits
}

/// The centres rust-sugiyama gives, turned to run left to right, the graph's separate pieces
/// one below the other; `None` if it failed (it is not our code: a panic is caught, and the
/// plain layers drawn instead). The pieces are split here, not by the crate, which copies the
/// whole graph for each piece (2,000 loose tasks took seconds).
fn sugiyama(waits: &[Vec<usize>]) -> Option<Vec<(f64, f64)>> {
    let config = Config {
        vertex_spacing: ROW_GAP,
        minimum_length: 1,
        dummy_vertices: true,
        dummy_size: 0.5,
        ranking_type: RankingType::MinimizeEdgeLength,
        c_minimization: CrossingMinimization::Barycenter,
        transpose: false,
    };
    // Its "width" runs along a layer (our rows), its layers go down (our left to right).
    let size = |_, _: &()| (NODE_HEIGHT, NODE_WIDTH + LAYER_GAP - ROW_GAP);
    let mut places = vec![(0.0, 0.0); waits.len()];
    let mut top = 0.0;
    for piece in pieces(waits) {
        if piece.len() == 1 {
            places[piece[0]] = (0.0, top);
            top += NODE_HEIGHT + ROW_GAP;
            continue;
        }
        let mut graph: StableDiGraph<(), ()> = StableDiGraph::with_capacity(piece.len(), piece.len());
        let local: HashMap<usize, NodeIndex> = piece.iter().map(|&n| (n, graph.add_node(()))).collect();
        for &after in &piece {
            for before in &waits[after] {
                graph.add_edge(local[before], local[&after], ());
            }
        }
        let laid = std::panic::catch_unwind(|| rust_sugiyama::from_graph(&graph, &size, &config)).ok()?;
        let centres: Vec<(NodeIndex, (f64, f64))> = laid.into_iter().flat_map(|(l, _, _)| l).collect();
        let low = centres.iter().map(|(_, (along, _))| *along).fold(f64::INFINITY, f64::min);
        let mut bottom = top;
        for (id, (along, down)) in centres {
            let y = top + along - low;
            bottom = f64::max(bottom, y + NODE_HEIGHT + ROW_GAP);
            places[*piece.get(id.index())?] = (down, y);
        }
        top = bottom;
    }
    Some(places)
}

/// The graph's weakly connected pieces, each its nodes in ascending order (so that a piece's
/// `k`-th node is the `k`-th node added to its own graph).
fn pieces(waits: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let mut neighbours: Vec<Vec<usize>> = waits.to_vec();
    for (after, list) in waits.iter().enumerate() {
        for &before in list {
            neighbours[before].push(after);
        }
    }
    let mut seen = vec![false; waits.len()];
    let mut pieces = Vec::new();
    for start in 0..waits.len() {
        if seen[start] {
            continue;
        }
        seen[start] = true;
        let (mut piece, mut stack) = (vec![start], vec![start]);
        while let Some(n) = stack.pop() {
            for &m in &neighbours[n] {
                if !seen[m] {
                    seen[m] = true;
                    piece.push(m);
                    stack.push(m);
                }
            }
        }
        piece.sort_unstable();
        pieces.push(piece);
    }
    pieces
}

/// Plain layers: a node's layer is one more than the latest of those it waits for (Kahn's
/// order); rows in a layer in task order.
fn layers(waits: &[Vec<usize>]) -> Vec<(f64, f64)> {
    let count = waits.len();
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
    layer
        .into_iter()
        .map(|layer| {
            let row = rows.entry(layer).or_default();
            let place = (f64::from(layer) * (NODE_WIDTH + LAYER_GAP), f64::from(*row) * (NODE_HEIGHT + ROW_GAP));
            *row += 1;
            place
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::{GraphView, NodeView};
    use super::*;

    fn node(task_id: u64) -> NodeView {
        NodeView {
            task: format!("t{task_id}"),
            task_id,
            kind: "noop".into(),
            subgraph: None,
            node_instance: None,
            state: "pending".into(),
            attempts: 0,
            result: None,
            error: None,
            x: 0.0,
            y: 0.0,
        }
    }

    fn graph(count: u64, edges: Vec<[u64; 2]>) -> GraphView {
        GraphView {
            graph_id: 1,
            nodes: (1..=count).map(node).collect(),
            edges,
            layout: String::new(),
            width: 0.0,
            height: 0.0,
            node_width: NODE_WIDTH,
            node_height: NODE_HEIGHT,
        }
    }

    /// No two boxes overlap, every edge runs left to right, all inside the drawing.
    fn assert_drawable(graph: &GraphView) {
        let by_id: HashMap<u64, &NodeView> = graph.nodes.iter().map(|n| (n.task_id, n)).collect();
        for [before, after] in &graph.edges {
            assert!(by_id[before].x < by_id[after].x, "{before} -> {after}");
        }
        let mut boxes: Vec<(f64, f64)> = graph.nodes.iter().map(|n| (n.x, n.y)).collect();
        boxes.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for (i, a) in boxes.iter().enumerate() {
            assert!(a.0 >= NODE_WIDTH / 2.0 && a.0 + NODE_WIDTH / 2.0 <= graph.width, "{a:?}");
            assert!(a.1 >= NODE_HEIGHT / 2.0 && a.1 + NODE_HEIGHT / 2.0 <= graph.height, "{a:?}");
            for b in &boxes[i + 1..] {
                let apart = (a.0 - b.0).abs() >= NODE_WIDTH || (a.1 - b.1).abs() >= NODE_HEIGHT;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
    }

    // A diamond and a task on its own: rust-sugiyama lays them out, the loose task below.
    #[test]
    fn a_small_graph_is_laid_out_by_rust_sugiyama_without_overlaps() {
        let mut g = graph(5, vec![[1, 2], [1, 3], [2, 4], [3, 4]]);
        lay_out(&mut g);
        assert_eq!(g.layout, "sugiyama");
        assert_drawable(&g);
        assert_ne!(g.nodes[1].y, g.nodes[2].y, "the diamond's sides share a layer, in two rows");
    }

    // Past the limit, the plain layers: still left to right, no overlaps.
    #[test]
    fn a_graph_past_the_limit_is_laid_out_in_plain_layers() {
        let count = SUGIYAMA_LIMIT as u64 + 1;
        let edges = (1..count).map(|i| [i, i + 1 + i % 7]).filter(|[_, b]| *b <= count).collect();
        let mut g = graph(count, edges);
        lay_out(&mut g);
        assert_eq!(g.layout, "layers");
        assert_drawable(&g);
    }
}
