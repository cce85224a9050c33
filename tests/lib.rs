//! The integration suite: one test binary driving the real `rhaiflow` binary, a module per
//! area. Fixtures are real files under `tests/fixtures/`; diagnostics and drawings are insta
//! snapshots under `tests/snapshots/`.

mod support;

mod bundles;
mod cancel;
mod check_and_graph;
mod console_and_events;
mod dataflow;
mod deployments;
mod diagnostics;
mod docs;
mod examples;
mod flows;
mod graph_mode;
mod layers;
mod limits;
mod nesting;
mod params;
mod postgres_deployments;
mod postgres_server;
mod postgres_store;
mod processes;
mod repl;
mod retries;
mod server;
mod standard_mode;
mod start;
mod store;
mod task_output;
mod workers;
