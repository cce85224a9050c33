//! The task graph a script builds: tasks, subgraphs, and "waits for" edges.
//!
//! `TaskGraph` holds every task of one graph, subgraph members included (a member records its
//! subgraph in its `Slot`). An edge `b -> a` means **a waits for b**. `plan` turns a graph into
//! the checked, flat form the executor runs; `render` draws it.

pub mod dataflow;
pub mod flow_spec;
mod index;
mod plan;
mod render;

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::task::{Slot, TaskCell};

pub use index::{Idx, IndexVec, TaskIx, VertexIx};
pub use plan::{Plan, PlanTask, Role};
pub use render::{planned, render, Format};

/// A mistake in how a script builds a graph. Thrown into the script as a recoverable error.
#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("task `{0}` is not in this graph: add it with add_task first")]
    NotInGraph(Arc<str>),
    #[error("task `{task}` is already in {place}; a task belongs to one graph and one subgraph")]
    AlreadyPlaced { task: Arc<str>, place: String },
}

static NEXT_GRAPH_ID: AtomicU64 = AtomicU64::new(1);

pub struct TaskGraph {
    pub id: u64,
    pub dag: StableDiGraph<Arc<TaskCell>, ()>,
    /// The edges as (before, after), to refuse duplicates in O(1): petgraph's `find_edge`
    /// walks a node's edges, which made a 100k fan-in quadratic. Made only once a task gets a
    /// second dependency: a chain or layers of tasks with one each never need it (a set entry
    /// cost a chain task ~150 instructions and 16 bytes or more).
    edges: Option<HashSet<(NodeIndex, NodeIndex), BuildHasherDefault<EdgeHasher>>>,
}

/// Edges are pairs of small integers the script chose, not an attacker: a multiply-rotate hash
/// does for them, at a fraction of SipHash's cost per `add_dependency`.
#[derive(Default)]
pub struct EdgeHasher(u64);

impl Hasher for EdgeHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(n as u64);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl Default for TaskGraph {
    fn default() -> Self {
        TaskGraph { id: NEXT_GRAPH_ID.fetch_add(1, Ordering::Relaxed), dag: StableDiGraph::new(), edges: None }
    }
}

impl TaskGraph {
    /// Where `task` sits in this graph, if it does.
    pub fn index_of(&self, task: &TaskCell) -> Option<NodeIndex> {
        let slot = task.slot()?;
        (slot.graph == self.id).then_some(slot.index)
    }

    fn require(&self, task: &TaskCell) -> Result<NodeIndex, GraphError> {
        self.index_of(task).ok_or_else(|| GraphError::NotInGraph(task.name.clone()))
    }

    /// Adds `task` to this graph, inside the subgraph `parent` if given. Adding a task again to
    /// the same place does nothing; adding it to another place is an error.
    pub fn add(&mut self, task: &Arc<TaskCell>, parent: Option<&Arc<TaskCell>>) -> Result<NodeIndex, GraphError> {
        let parent_index = match parent {
            Some(p) => Some(self.require(p)?),
            None => None,
        };
        let graph = self.id;
        let place = || Slot { graph, index: self.dag.add_node(task.clone()), parent: parent_index };
        let (slot, parent_name) = match task.place(place, parent.map(|p| p.name.clone())) {
            Ok(slot) => return Ok(slot.index),
            Err(placed) => placed,
        };
        if slot.graph == self.id && slot.parent == parent_index {
            return Ok(slot.index);
        }
        let place = match (&parent_name, slot.graph == self.id) {
            (Some(sg), _) => format!("subgraph `{sg}`"),
            (None, true) => "the graph itself, outside any subgraph".to_string(),
            (None, false) => "another graph".to_string(),
        };
        Err(GraphError::AlreadyPlaced { task: task.name.clone(), place })
    }

    /// `a` waits for `b`. A task waiting for itself is ignored.
    pub fn add_dependency(&mut self, a: &TaskCell, b: &TaskCell) -> Result<(), GraphError> {
        let ia = self.require(a)?;
        self.add_dependency_of(ia, b)
    }

    /// The task at `ia` waits for `b`: for a caller that just added it and holds its index
    /// (a sequence), which spares looking it up again.
    pub fn add_dependency_of(&mut self, ia: NodeIndex, b: &TaskCell) -> Result<(), GraphError> {
        let ib = self.require(b)?;
        if ia != ib && self.is_new_edge(ib, ia) {
            self.dag.add_edge(ib, ia, ());
        }
        Ok(())
    }

    /// Whether `before` -> `after` is not an edge yet; records it as one.
    fn is_new_edge(&mut self, before: NodeIndex, after: NodeIndex) -> bool {
        if self.edges.is_none() && self.dag.neighbors_directed(after, Direction::Incoming).next().is_none() {
            return true;
        }
        self.edge_set().insert((before, after))
    }

    /// The set of edges, made from the graph the first time it is needed.
    fn edge_set(&mut self) -> &mut HashSet<(NodeIndex, NodeIndex), BuildHasherDefault<EdgeHasher>> {
        let dag = &self.dag;
        self.edges.get_or_insert_with(|| dag.edge_indices().filter_map(|e| dag.edge_endpoints(e)).collect())
    }

    pub fn remove_dependency(&mut self, a: &TaskCell, b: &TaskCell) -> Result<(), GraphError> {
        let (ia, ib) = (self.require(a)?, self.require(b)?);
        if self.edge_set().remove(&(ib, ia)) {
            if let Some(e) = self.dag.find_edge(ib, ia) {
                self.dag.remove_edge(e);
            }
        }
        Ok(())
    }

    /// Removes a task, or a subgraph with everything in it, and the edges touching them.
    pub fn remove(&mut self, task: &TaskCell) -> Result<(), GraphError> {
        let index = self.require(task)?;
        for member in self.members(Some(index)) {
            self.remove(&member)?;
        }
        let touching: Vec<_> = self
            .dag
            .neighbors_directed(index, Direction::Incoming)
            .map(|n| (n, index))
            .chain(self.dag.neighbors_directed(index, Direction::Outgoing).map(|n| (index, n)))
            .collect();
        if let Some(edges) = &mut self.edges {
            for edge in touching {
                edges.remove(&edge);
            }
        }
        if let Some(cell) = self.dag.remove_node(index) {
            cell.unplace();
        }
        Ok(())
    }

    /// The tasks placed directly in `parent` (or at the top when `None`), in the order added.
    pub fn members(&self, parent: Option<NodeIndex>) -> Vec<Arc<TaskCell>> {
        let mut found: Vec<Arc<TaskCell>> =
            self.dag.node_weights().filter(|cell| cell.slot().map(|s| s.parent) == Some(parent)).cloned().collect();
        found.sort_by_key(|c| c.serial);
        found
    }

    /// The tasks `index` waits for.
    pub fn dependencies(&self, index: NodeIndex) -> impl Iterator<Item = NodeIndex> + '_ {
        self.dag.edges_directed(index, Direction::Incoming).map(|e| e.source())
    }

    pub fn len(&self) -> usize {
        self.dag.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.dag.node_count() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{test_task, TaskAction};

    pub fn noop(name: &str) -> Arc<TaskCell> {
        test_task(name, TaskAction::Noop)
    }

    pub fn subgraph(name: &str) -> Arc<TaskCell> {
        test_task(name, TaskAction::Subgraph)
    }

    #[test]
    fn adding_a_task_twice_to_the_same_place_is_harmless() {
        let mut g = TaskGraph::default();
        let a = noop("a");
        let first = g.add(&a, None).unwrap();
        assert_eq!(g.add(&a, None).unwrap(), first);
        assert_eq!(g.len(), 1);
    }

    #[test]
    fn a_task_cannot_join_a_second_subgraph() {
        let mut g = TaskGraph::default();
        let (sa, sb, t) = (subgraph("a"), subgraph("b"), noop("shared"));
        g.add(&sa, None).unwrap();
        g.add(&sb, None).unwrap();
        g.add(&t, Some(&sa)).unwrap();
        let err = g.add(&t, Some(&sb)).unwrap_err().to_string();
        assert!(err.contains("`shared`") && err.contains("subgraph `a`"), "{err}");
    }

    #[test]
    fn dependencies_need_both_tasks_in_the_graph() {
        let mut g = TaskGraph::default();
        let (a, b) = (noop("a"), noop("b"));
        g.add(&a, None).unwrap();
        let err = g.add_dependency(&a, &b).unwrap_err().to_string();
        assert!(err.contains("`b` is not in this graph"), "{err}");
    }

    #[test]
    fn duplicate_dependencies_make_one_edge_and_removal_removes_it() {
        let mut g = TaskGraph::default();
        let (a, b) = (noop("a"), noop("b"));
        g.add(&a, None).unwrap();
        g.add(&b, None).unwrap();
        g.add_dependency(&a, &b).unwrap();
        g.add_dependency(&a, &b).unwrap();
        g.add_dependency(&a, &a).unwrap();
        assert_eq!(g.dag.edge_count(), 1);
        g.remove_dependency(&a, &b).unwrap();
        assert_eq!(g.dag.edge_count(), 0);
    }

    // The set of edges is made only for a task's second dependency, from the graph as it is
    // then: a duplicate is still refused, also after a removal let an index be used again.
    #[test]
    fn the_edge_set_is_made_from_the_graph_when_first_needed() {
        let mut g = TaskGraph::default();
        let (a, b, c) = (noop("a"), noop("b"), noop("c"));
        for t in [&a, &b, &c] {
            g.add(t, None).unwrap();
        }
        g.add_dependency(&b, &a).unwrap();
        g.add_dependency(&c, &b).unwrap();
        assert!(g.edges.is_none(), "a chain needs no set");
        g.add_dependency(&c, &b).unwrap();
        g.add_dependency(&c, &a).unwrap();
        assert_eq!(g.dag.edge_count(), 3);
        assert!(g.edges.is_some());

        let mut g = TaskGraph::default();
        let (a, b, d) = (noop("a"), noop("b"), noop("d"));
        g.add(&a, None).unwrap();
        g.add(&b, None).unwrap();
        g.add_dependency(&a, &b).unwrap();
        g.remove(&b).unwrap();
        g.add(&d, None).unwrap();
        g.add_dependency(&a, &d).unwrap();
        g.add_dependency(&a, &d).unwrap();
        assert_eq!(g.dag.edge_count(), 1);
        g.remove_dependency(&a, &d).unwrap();
        assert_eq!(g.dag.edge_count(), 0);
    }

    #[test]
    fn removing_a_subgraph_removes_its_members_and_their_edges() {
        let mut g = TaskGraph::default();
        let (sg, inner, outside) = (subgraph("sg"), noop("inner"), noop("outside"));
        g.add(&sg, None).unwrap();
        g.add(&inner, Some(&sg)).unwrap();
        g.add(&outside, None).unwrap();
        g.add_dependency(&outside, &inner).unwrap();
        g.remove(&sg).unwrap();
        assert_eq!(g.len(), 1);
        assert_eq!(g.dag.edge_count(), 0);
        assert!(inner.slot().is_none());
        // The removed task may be added again, anywhere.
        g.add(&inner, None).unwrap();
    }

    #[test]
    fn members_come_in_creation_order() {
        let mut g = TaskGraph::default();
        let (a, b, c) = (noop("a"), noop("b"), noop("c"));
        g.add(&c, None).unwrap();
        g.add(&a, None).unwrap();
        g.add(&b, None).unwrap();
        let names: Vec<_> = g.members(None).iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
