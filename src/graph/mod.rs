//! The task graph a script builds: tasks, subgraphs, and "waits for" edges.
//!
//! `TaskGraph` holds every task of one graph, subgraph members included (a member records its
//! subgraph in its `Slot`). An edge `b -> a` means **a waits for b**. `plan` turns a graph into
//! the checked, flat form the executor runs; `render` draws it.

mod plan;
mod render;
mod task;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

pub use plan::{CycleError, Plan, PlanTask, Role, Vertex};
pub use render::{render, Format};
pub use task::{ProcessOptions, Slot, TaskAction, TaskCell, TaskInner, TaskKind, TaskSettings, TaskState, TaskStatus};

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
}

impl Default for TaskGraph {
    fn default() -> Self {
        TaskGraph { id: NEXT_GRAPH_ID.fetch_add(1, Ordering::Relaxed), dag: StableDiGraph::new() }
    }
}

impl TaskGraph {
    /// Where `task` sits in this graph, if it does.
    pub fn index_of(&self, task: &TaskCell) -> Option<NodeIndex> {
        let slot = task.inner.lock().slot?;
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
        let mut inner = task.inner.lock();
        if let Some(slot) = inner.slot {
            if slot.graph == self.id && slot.parent == parent_index {
                return Ok(slot.index);
            }
            let place = match (&inner.parent_name, slot.graph == self.id) {
                (Some(sg), _) => format!("subgraph `{sg}`"),
                (None, true) => "the graph itself, outside any subgraph".to_string(),
                (None, false) => "another graph".to_string(),
            };
            return Err(GraphError::AlreadyPlaced { task: task.name.clone(), place });
        }
        let index = self.dag.add_node(task.clone());
        inner.slot = Some(Slot { graph: self.id, index, parent: parent_index });
        inner.parent_name = parent.map(|p| p.name.clone());
        Ok(index)
    }

    /// `a` waits for `b`. A task waiting for itself is ignored.
    pub fn add_dependency(&mut self, a: &TaskCell, b: &TaskCell) -> Result<(), GraphError> {
        let (ia, ib) = (self.require(a)?, self.require(b)?);
        if ia != ib && self.dag.find_edge(ib, ia).is_none() {
            self.dag.add_edge(ib, ia, ());
        }
        Ok(())
    }

    pub fn remove_dependency(&mut self, a: &TaskCell, b: &TaskCell) -> Result<(), GraphError> {
        let (ia, ib) = (self.require(a)?, self.require(b)?);
        if let Some(e) = self.dag.find_edge(ib, ia) {
            self.dag.remove_edge(e);
        }
        Ok(())
    }

    /// Removes a task, or a subgraph with everything in it, and the edges touching them.
    pub fn remove(&mut self, task: &TaskCell) -> Result<(), GraphError> {
        let index = self.require(task)?;
        for member in self.members(Some(index)) {
            self.remove(&member)?;
        }
        if let Some(cell) = self.dag.remove_node(index) {
            let mut inner = cell.inner.lock();
            inner.slot = None;
            inner.parent_name = None;
        }
        Ok(())
    }

    /// The tasks placed directly in `parent` (or at the top when `None`), in the order added.
    pub fn members(&self, parent: Option<NodeIndex>) -> Vec<Arc<TaskCell>> {
        let mut found: Vec<Arc<TaskCell>> = self
            .dag
            .node_weights()
            .filter(|cell| cell.inner.lock().slot.map(|s| s.parent) == Some(parent))
            .cloned()
            .collect();
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
