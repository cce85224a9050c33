//! The host API scripts call: one file per area. Every function reaches its run through a
//! `RunRef`, so it works at the top level, inside functions and inside task closures alike.

mod deployment;
pub(crate) mod doc;
mod graph;
mod misc;
mod tasks;
pub(crate) use tasks::seconds;

pub use deployment::DeploymentHandle;
pub use graph::{GraphHandle, GraphShared};
pub use tasks::TaskHandle;

use rhai::Engine;

use super::state::RunRef;

/// `ctx.nodes` and `ctx.node_instances` of a deployment.
pub use deployment::nodes as deployment_nodes;
pub use deployment::{deployment_handle, instance as instance_handle, node as node_handle};

pub fn register(engine: &mut Engine, run: &RunRef) {
    // Graph types first: the task properties registered for `Subgraph` then carry its name.
    graph::register(engine, run);
    tasks::register(engine, run);
    misc::register(engine, run);
    deployment::register(engine, run);
}
