//! The executable form of a graph, checked for cycles.
//!
//! A plain task is one vertex. A subgraph is two: `Open` (it starts; its members may start)
//! and `Close` (all its members are done). With that split, "a waits for b", "members start
//! after their subgraph starts" and "a subgraph ends after its members" are all plain edges,
//! and one in-degree count per vertex drives the whole schedule.

use std::collections::HashMap;
use std::sync::Arc;

use petgraph::graph::DiGraph;
use petgraph::stable_graph::NodeIndex;

use super::index::{IndexVec, TaskIx, VertexIx};
use super::TaskGraph;
use crate::events::TaskKind;
use crate::task::TaskCell;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Run,
    Open,
    Close,
}

pub struct Vertex {
    pub task: TaskIx,
    pub role: Role,
    /// How many vertices must finish before this one is ready.
    pub deps: u32,
}

pub struct PlanTask {
    pub cell: Arc<TaskCell>,
    /// The subgraph holding it.
    pub parent: Option<TaskIx>,
    /// The vertex where it starts (`Run` or `Open`) and the one where it ends (`Run` or `Close`).
    pub entry: VertexIx,
    pub exit: VertexIx,
}

impl PlanTask {
    /// A subgraph is two vertices, a task one.
    pub fn is_subgraph(&self) -> bool {
        self.entry != self.exit
    }
}

pub struct Plan {
    pub tasks: IndexVec<TaskIx, PlanTask>,
    pub vertices: IndexVec<VertexIx, Vertex>,
    /// Every vertex's dependents one after the other, in the order they were linked: those of
    /// vertex `v` are `dependents[v's range]`. Two vectors for the whole plan, where a vector a
    /// vertex cost a task ~450 instructions to make and free, and 56 bytes.
    dependents: Vec<VertexIx>,
    ranges: IndexVec<VertexIx, (u32, u32)>,
}

impl Plan {
    /// The vertices that wait for `v`.
    pub fn dependents(&self, v: VertexIx) -> &[VertexIx] {
        let (from, to) = self.ranges[v];
        &self.dependents[from as usize..to as usize]
    }
}

/// `links` (vertex before, vertex after) grouped by the vertex before, each group in the order
/// of `links`: `Plan`'s `dependents` and `ranges`.
fn group_by_vertex(links: &[(VertexIx, VertexIx)], vertices: usize) -> (Vec<VertexIx>, IndexVec<VertexIx, (u32, u32)>) {
    let mut ranges: IndexVec<VertexIx, (u32, u32)> = IndexVec::filled((0, 0), vertices);
    for &(from, _) in links {
        ranges[from].1 += 1;
    }
    let mut start = 0;
    for range in ranges.iter_mut() {
        let count = range.1;
        *range = (start, start);
        start += count;
    }
    // Each range's end grows as its dependents are placed.
    // Of the right length; every place is written below.
    let mut grouped: Vec<VertexIx> = links.iter().map(|&(_, to)| to).collect();
    for &(from, to) in links {
        let end = &mut ranges[from].1;
        grouped[*end as usize] = to;
        *end += 1;
    }
    (grouped, ranges)
}

/// Tasks that wait for each other in a circle, named in the order they would have to run.
#[derive(Clone)]
pub struct CycleError {
    pub tasks: Vec<Arc<TaskCell>>,
}

impl std::fmt::Debug for CycleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for CycleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.tasks.iter().map(|t| &*t.name).collect();
        if let Some(first) = names.first().copied() {
            names.push(first);
        }
        write!(f, "the graph has a cycle: {} (each must run before the next)", names.join(" → "))
    }
}

/// What a task waiting for `before` really waits for. A member of a subgraph that may run
/// again (retries, handlers) has succeeded for good only once that subgraph has: a task
/// outside it waits for the outermost such subgraph around `before` that does not hold it, so
/// that it never starts on, nor reads the result of, a run that is then reverted (TaskFlow's
/// retried nested flows). Released once per run of the subgraph, it also started early.
fn waited_for(tasks: &IndexVec<TaskIx, PlanTask>, before: TaskIx, after: TaskIx) -> TaskIx {
    let mut target = before;
    let mut at = tasks[before].parent;
    while let Some(subgraph) = at {
        if subgraph == after || holds(tasks, subgraph, after) {
            break;
        }
        if may_run_again(&tasks[subgraph].cell) {
            target = subgraph;
        }
        at = tasks[subgraph].parent;
    }
    target
}

/// True when `task` sits inside `subgraph`, at any depth.
fn holds(tasks: &IndexVec<TaskIx, PlanTask>, subgraph: TaskIx, task: TaskIx) -> bool {
    let mut at = tasks[task].parent;
    while let Some(p) = at {
        if p == subgraph {
            return true;
        }
        at = tasks[p].parent;
    }
    false
}

/// A subgraph with retries, or with a handler (whose verdict may be a retry), may run again.
fn may_run_again(cell: &TaskCell) -> bool {
    cell.with_settings(|s| s.total_retries != 0 || s.on_failure.is_some() || s.on_success.is_some())
}

impl Plan {
    /// True when `task` sits inside `subgraph`, at any depth.
    pub fn holds(&self, subgraph: TaskIx, task: TaskIx) -> bool {
        holds(&self.tasks, subgraph, task)
    }

    pub fn build(graph: &TaskGraph) -> Result<Plan, CycleError> {
        let mut tasks: IndexVec<TaskIx, PlanTask> = IndexVec::with_capacity(graph.len());
        // Node index -> place in `tasks`; a vector, since indices are dense.
        let bound = graph.dag.node_indices().map(|i| i.index() + 1).max().unwrap_or(0);
        let mut position: Vec<Option<TaskIx>> = vec![None; bound];
        let mut ordered: Vec<(NodeIndex, &Arc<TaskCell>)> =
            graph.dag.node_indices().map(|i| (i, &graph.dag[i])).collect();
        // Creation order, so that tasks made earlier are offered to the scheduler first.
        ordered.sort_by_key(|(_, c)| c.serial);
        let mut vertices: IndexVec<VertexIx, Vertex> = IndexVec::with_capacity(graph.len() + 8);
        for (index, cell) in &ordered {
            let id = tasks.next_index();
            position[index.index()] = Some(id);
            let vertex = |role| Vertex { task: id, role, deps: 0 };
            let (entry, exit) = if cell.kind() == TaskKind::Subgraph {
                (vertices.push(vertex(Role::Open)), vertices.push(vertex(Role::Close)))
            } else {
                let run = vertices.push(vertex(Role::Run));
                (run, run)
            };
            tasks.push(PlanTask { cell: (*cell).clone(), parent: None, entry, exit });
        }
        let mut links: Vec<(VertexIx, VertexIx)> = Vec::with_capacity(graph.dag.edge_count() + tasks.len());
        let mut link = |vertices: &mut IndexVec<VertexIx, Vertex>, from: VertexIx, to: VertexIx| {
            links.push((from, to));
            vertices[to].deps += 1;
        };
        for id in tasks.indices() {
            let (entry, exit) = (tasks[id].entry, tasks[id].exit);
            if entry != exit {
                link(&mut vertices, entry, exit);
            }
            let parent = tasks[id].cell.parent();
            if let Some(parent) = parent.and_then(|p| position[p.index()]) {
                tasks[id].parent = Some(parent);
                let (p_entry, p_exit) = (tasks[parent].entry, tasks[parent].exit);
                link(&mut vertices, p_entry, entry);
                link(&mut vertices, exit, p_exit);
            }
        }
        for edge in graph.dag.edge_indices() {
            let (before, after) = graph.dag.edge_endpoints(edge).expect("edge index from this graph");
            let placed = |node: NodeIndex| position[node.index()].expect("every node of the graph has a place");
            let (b, a) = (placed(before), placed(after));
            let b = waited_for(&tasks, b, a);
            link(&mut vertices, tasks[b].exit, tasks[a].entry);
        }
        let (dependents, ranges) = group_by_vertex(&links, vertices.len());
        let plan = Plan { tasks, vertices, dependents, ranges };
        plan.check_acyclic()?;
        Ok(plan)
    }

    /// Kahn's algorithm; when it cannot finish, find a circle among the vertices left over.
    fn check_acyclic(&self) -> Result<(), CycleError> {
        let mut deps: IndexVec<VertexIx, u32> = self.vertices.iter().map(|v| v.deps).collect();
        let mut ready: Vec<VertexIx> = deps.iter_enumerated().filter(|(_, &d)| d == 0).map(|(v, _)| v).collect();
        let mut seen = 0;
        while let Some(v) = ready.pop() {
            seen += 1;
            for &d in self.dependents(v) {
                deps[d] -= 1;
                if deps[d] == 0 {
                    ready.push(d);
                }
            }
        }
        if seen == self.vertices.len() {
            return Ok(());
        }
        Err(CycleError { tasks: self.find_cycle(&deps) })
    }

    fn find_cycle(&self, deps_left: &IndexVec<VertexIx, u32>) -> Vec<Arc<TaskCell>> {
        let stuck: Vec<VertexIx> = deps_left.iter_enumerated().filter(|(_, &d)| d > 0).map(|(v, _)| v).collect();
        let mut local: HashMap<VertexIx, petgraph::graph::NodeIndex> = HashMap::new();
        let mut g: DiGraph<VertexIx, ()> = DiGraph::new();
        for &v in &stuck {
            local.insert(v, g.add_node(v));
        }
        for &v in &stuck {
            for d in self.dependents(v) {
                if let Some(&to) = local.get(d) {
                    g.add_edge(local[&v], to, ());
                }
            }
        }
        let component = petgraph::algo::tarjan_scc(&g).into_iter().find(|c| c.len() > 1).unwrap_or_default();
        // Walk the component from its first vertex back to it along the shortest path.
        let Some(&start) = component.first() else {
            return Vec::new();
        };
        let members: std::collections::HashSet<_> = component.iter().copied().collect();
        let mut came_from: HashMap<petgraph::graph::NodeIndex, petgraph::graph::NodeIndex> = HashMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut path = Vec::new();
        'search: while let Some(v) = queue.pop_front() {
            for next in g.neighbors(v) {
                if !members.contains(&next) {
                    continue;
                }
                if next == start {
                    let mut at = v;
                    path.push(at);
                    while at != start {
                        at = came_from[&at];
                        path.push(at);
                    }
                    path.reverse();
                    break 'search;
                }
                if next != start && !came_from.contains_key(&next) {
                    came_from.insert(next, v);
                    queue.push_back(next);
                }
            }
        }
        let mut names: Vec<Arc<TaskCell>> = Vec::new();
        for v in path {
            let task = &self.tasks[self.vertices[g[v]].task].cell;
            if names.last().map(|l| Arc::ptr_eq(l, task)) != Some(true) {
                names.push(task.clone());
            }
        }
        if names.len() > 1 && Arc::ptr_eq(&names[0], names.last().unwrap()) {
            names.pop();
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::Idx;
    use crate::task::{test_task as task, TaskAction};

    // A vertex's dependents were a vector each (~450 instructions a task to make and free):
    // grouped in two vectors now, each vertex's in the order they were linked.
    #[test]
    fn dependents_are_grouped_by_vertex_in_link_order() {
        let v = |i: usize| VertexIx::new(i);
        let links = [(v(2), v(0)), (v(0), v(3)), (v(2), v(1)), (v(0), v(1))];
        let (dependents, ranges) = group_by_vertex(&links, 4);
        let of = |i: usize| {
            let (from, to) = ranges[v(i)];
            dependents[from as usize..to as usize].to_vec()
        };
        assert_eq!(of(0), [v(3), v(1)]);
        assert!(of(1).is_empty() && of(3).is_empty());
        assert_eq!(of(2), [v(0), v(1)]);
        assert!(group_by_vertex(&[], 2).0.is_empty());
    }

    // `execute` gives first attempts their `task_id`s in the plan's order, which must be the
    // order the script made the tasks in, whatever order they were added to the graph in.
    #[test]
    fn the_plan_holds_tasks_in_creation_order() {
        let made: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| task(n, TaskAction::Noop)).collect();
        let mut g = TaskGraph::default();
        for i in [2, 0, 3, 1] {
            g.add(&made[i], None).unwrap();
        }
        let plan = Plan::build(&g).unwrap();
        let names: Vec<&str> = plan.tasks.iter().map(|t| &*t.cell.name).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
    }

    #[test]
    fn a_subgraph_is_an_open_and_a_close_vertex_around_its_members() {
        let mut g = TaskGraph::default();
        let sg = task("sg", TaskAction::Subgraph);
        let a = task("a", TaskAction::Noop);
        g.add(&sg, None).unwrap();
        g.add(&a, Some(&sg)).unwrap();
        let plan = Plan::build(&g).unwrap();
        assert_eq!(plan.vertices.len(), 3);
        let sg_task = &plan.tasks[TaskIx::new(0)];
        let a_task = &plan.tasks[TaskIx::new(1)];
        assert_eq!(a_task.parent, Some(TaskIx::new(0)));
        // open -> a -> close, and open -> close.
        assert_eq!(plan.vertices[sg_task.entry].deps, 0);
        assert_eq!(plan.vertices[a_task.entry].deps, 1);
        assert_eq!(plan.vertices[sg_task.exit].deps, 2);
    }

    #[test]
    fn a_cycle_is_named_in_running_order() {
        let mut g = TaskGraph::default();
        let (x, y, z) = (task("x", TaskAction::Noop), task("y", TaskAction::Noop), task("z", TaskAction::Noop));
        for t in [&x, &y, &z] {
            g.add(t, None).unwrap();
        }
        g.add_dependency(&y, &x).unwrap();
        g.add_dependency(&z, &y).unwrap();
        g.add_dependency(&x, &z).unwrap();
        let err = Plan::build(&g).err().expect("a cycle");
        let names: Vec<_> = err.tasks.iter().map(|t| t.name.to_string()).collect();
        assert_eq!(names.len(), 3);
        let text = err.to_string();
        assert!(
            text.contains("x → y → z → x") || text.contains("y → z → x → y") || text.contains("z → x → y → z"),
            "{text}"
        );
    }

    // A task outside a retried subgraph waiting for one of its members was released by each
    // run of the subgraph: it started before the subgraph succeeded, on a run later reverted.
    #[test]
    fn a_task_waiting_for_a_member_of_a_retried_subgraph_waits_for_the_subgraph() {
        let mut g = TaskGraph::default();
        let (outer, inner, member) =
            (task("outer", TaskAction::Subgraph), task("inner", TaskAction::Subgraph), task("m", TaskAction::Noop));
        let (beside, outside) = (task("beside", TaskAction::Noop), task("outside", TaskAction::Noop));
        outer.configure(|s| s.total_retries = 1);
        inner.configure(|s| s.total_retries = 1);
        g.add(&outer, None).unwrap();
        g.add(&inner, Some(&outer)).unwrap();
        g.add(&member, Some(&inner)).unwrap();
        g.add(&beside, Some(&outer)).unwrap();
        g.add(&outside, None).unwrap();
        g.add_dependency(&beside, &member).unwrap();
        g.add_dependency(&outside, &member).unwrap();
        let plan = Plan::build(&g).unwrap();
        let index =
            |cell: &Arc<TaskCell>| plan.tasks.iter_enumerated().find(|(_, t)| Arc::ptr_eq(&t.cell, cell)).unwrap().0;
        let waits_for = |after: &Arc<TaskCell>| -> Vec<VertexIx> {
            let entry = plan.tasks[index(after)].entry;
            plan.vertices.indices().filter(|&v| plan.dependents(v).contains(&entry)).collect()
        };
        // Inside `outer`, `beside` waits for `inner` (retried, not holding it); outside, for `outer`.
        assert!(waits_for(&beside).contains(&plan.tasks[index(&inner)].exit));
        assert_eq!(waits_for(&outside), [plan.tasks[index(&outer)].exit]);
    }

    #[test]
    fn a_member_waiting_for_its_own_subgraph_is_a_cycle() {
        let mut g = TaskGraph::default();
        let sg = task("sg", TaskAction::Subgraph);
        let a = task("a", TaskAction::Noop);
        g.add(&sg, None).unwrap();
        g.add(&a, Some(&sg)).unwrap();
        g.add_dependency(&a, &sg).unwrap();
        let err = Plan::build(&g).err().expect("a cycle");
        let names: Vec<_> = err.tasks.iter().map(|t| t.name.to_string()).collect();
        assert!(names.contains(&"a".to_string()) && names.contains(&"sg".to_string()), "{names:?}");
    }
}
