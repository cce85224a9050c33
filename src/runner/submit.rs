//! `run --submit`: an execution recorded as queued, for a worker to run (`rhaiflow worker`).
//! Checked as a run is before anything runs (the script compiles, the parameters are right):
//! bad input is refused here, not found later on some worker.

use std::sync::atomic::Ordering;

use super::{build, execution_record, shipped, workflow_name, RunOptions};
use crate::diagnostic::{Code, Diagnostic};
use crate::store::{ExecutionStatus, PgStore, StoreLocation};

/// Records the run `options` describe as queued on `queue` in the store at `location` (under
/// `options.execution_id` when given); returns its id.
pub fn submit(options: &RunOptions, location: &StoreLocation, queue: &str) -> Result<String, Diagnostic> {
    let StoreLocation::Postgres(url) = location else {
        return Err(Diagnostic::plain(
            Code::Store,
            format!("submitting to a queue needs a store that workers share, and {location} is a SQLite file"),
        )
        .with_help("submit to a PostgreSQL store: --store postgres://user@host/db (docs/SCALE_OUT.md)"));
    };
    let id = options.execution_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let workflow = workflow_name(options);
    drop(build(options)?);
    let mut record = execution_record(options, &id, &workflow, None);
    record.status = ExecutionStatus::Queued;
    let mut sources = Vec::new();
    if let Some(recorded) = record.options.as_object_mut() {
        if let Some(source) = shipped::of(options)? {
            recorded.insert("source".into(), serde_json::json!({ "checksum": source.checksum }));
            sources.push(source);
        }
        // A throw-away deployment's blueprint travels with its scripts (a stored one is in the
        // store already).
        if let Some(deployment) = options.deployment.as_ref().filter(|d| !d.stored.load(Ordering::Relaxed)) {
            let source = shipped::of_blueprint(&deployment.blueprint);
            recorded.insert("blueprint_source".into(), serde_json::json!({ "checksum": source.checksum }));
            sources.push(source);
        }
    }
    let store = PgStore::open(url)?;
    store.submit(&record, queue, sources)?;
    Ok(id)
}
