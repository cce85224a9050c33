//! The host API scripts call: one file per area. Every function reaches its run through a
//! `RunRef`, so it works at the top level, inside functions and inside task closures alike.

mod graph;
mod misc;
mod tasks;

pub use graph::{GraphHandle, GraphShared, SubgraphHandle};
pub use tasks::TaskHandle;

use rhai::Engine;

use super::state::RunRef;

pub fn register(engine: &mut Engine, run: &RunRef) {
    tasks::register(engine, run);
    graph::register(engine, run);
    misc::register(engine, run);
}
