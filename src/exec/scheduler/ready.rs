//! The ready set: how many vertices each vertex still waits for, and the vertices that wait
//! for none and have not started.

use std::collections::VecDeque;

use crate::graph::{IndexVec, Plan, VertexIx};

pub(super) struct ReadySet {
    /// Per vertex: how many vertices it still waits for.
    deps: IndexVec<VertexIx, u32>,
    /// Vertices that released their dependents (to count again when a subgraph reruns).
    complete: IndexVec<VertexIx, bool>,
    ready: VecDeque<VertexIx>,
}

impl ReadySet {
    /// Every vertex waits for all its dependencies; those with none are ready.
    pub(super) fn new(plan: &Plan) -> Self {
        let deps: IndexVec<VertexIx, u32> = plan.vertices.iter().map(|v| v.deps).collect();
        let ready = deps.iter_enumerated().filter(|(_, &d)| d == 0).map(|(v, _)| v).collect();
        ReadySet { complete: IndexVec::filled(false, deps.len()), deps, ready }
    }

    /// How many vertices are ready now.
    pub(super) fn len(&self) -> usize {
        self.ready.len()
    }

    /// The next vertex to start, in the order they became ready.
    pub(super) fn pop(&mut self) -> Option<VertexIx> {
        self.ready.pop_front()
    }

    /// `vertex` is done: the vertices waiting for it have one less thing to wait for.
    pub(super) fn release(&mut self, plan: &Plan, vertex: VertexIx) {
        self.complete[vertex] = true;
        for &d in plan.dependents(vertex) {
            self.deps[d] -= 1;
            if self.deps[d] == 0 {
                self.ready.push_back(d);
            }
        }
    }

    /// `vertices` (a rerun subgraph's) wait again, for every vertex not complete (those among
    /// them included).
    pub(super) fn wait_again(&mut self, plan: &Plan, vertices: &[VertexIx]) {
        for &v in vertices {
            self.complete[v] = false;
        }
        let mut waits: IndexVec<VertexIx, u32> = IndexVec::filled(0, plan.vertices.len());
        for from in plan.vertices.indices() {
            if !self.complete[from] {
                for &to in plan.dependents(from) {
                    waits[to] += 1;
                }
            }
        }
        for &v in vertices {
            self.deps[v] = waits[v];
        }
    }
}
