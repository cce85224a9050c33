//! rhaiflow: workflows written as Rhai scripts, run as task graphs.
//!
//! The flow of one run: `runner` loads the script, `script` hosts it (the host API builds
//! graphs in `graph`), `exec` runs tasks and graphs on tokio, `events` reports what happened,
//! `store` keeps it. `cli` is the command line on top.

#[macro_use]
mod say;

mod blocking;
pub mod bundle;
mod byte_size;
pub mod cli;
mod console;
pub mod deploy;
pub mod diagnostic;
mod embedded;
pub mod events;
pub mod exec;
pub mod flow_file;
pub mod graph;
pub mod memory;
pub mod names;
pub mod repl;
pub mod runner;
pub mod script;
mod seconds;
pub mod store;
pub mod task;
mod timestamp;
pub mod value;
pub mod yaml;

pub use runner::{resume, run, RunOptions, RunReport, Status, StoreChoice};
