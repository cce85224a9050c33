//! rhaiflow: workflows written as Rhai scripts, run as task graphs.
//!
//! The flow of one run: `runner` loads the script, `script` hosts it (the host API builds
//! graphs in `graph`), `exec` runs tasks and graphs on tokio, `events` reports what happened,
//! `store` keeps it. `cli` is the command line on top.

#[macro_use]
mod say;

mod blocking;
mod bundle;
mod byte_size;
mod cli;
mod console;
mod deploy;
pub mod diagnostic;
mod embedded;
mod events;
mod exec;
mod flow_file;
#[doc(hidden)]
pub mod fuzzing;
mod graph;
mod memory;
mod names;
mod repl;
mod runner;
mod script;
mod seconds;
mod server;
mod store;
mod task;
mod timestamp;
mod value;
mod yaml;

pub use cli::{exit, main};
pub use runner::{resume, run, RunOptions, RunReport, Status, StoreChoice};
/// For the floor program in `benches/`: Rhai's own cost, on the engine a run starts from.
#[doc(hidden)]
pub use script::plain_engine;
pub use script::Limits;
pub use store::StoreLocation;
