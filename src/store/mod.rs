//! Where executions are recorded.
//!
//! For now the only backend keeps events in memory for the life of the process; the durable
//! embedded store (SQLite) comes behind the same trait. `--store` and `--ephemeral` are
//! accepted already so that command lines written today keep working.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::events::{Event, EventSink, ExecutionLabel};

/// The record of executions: their events, in order.
pub trait Store: Send + Sync {
    fn append(&self, label: &ExecutionLabel, event: &Event);
    /// Every event recorded for the execution, in `seq` order.
    fn events(&self, execution_id: &str) -> Vec<Event>;
}

/// Keeps everything in memory; nothing survives the process.
#[derive(Default)]
pub struct MemoryStore {
    executions: Mutex<Vec<(Arc<str>, Vec<Event>)>>,
}

impl Store for MemoryStore {
    fn append(&self, label: &ExecutionLabel, event: &Event) {
        let mut executions = self.executions.lock();
        match executions.iter_mut().rev().find(|(id, _)| *id == label.execution_id) {
            Some((_, events)) => events.push(event.clone()),
            None => executions.push((label.execution_id.clone(), vec![event.clone()])),
        }
    }

    fn events(&self, execution_id: &str) -> Vec<Event> {
        let executions = self.executions.lock();
        executions.iter().find(|(id, _)| &**id == execution_id).map(|(_, e)| e.clone()).unwrap_or_default()
    }
}

/// Feeds the event bus into a store.
pub struct StoreSink(pub Arc<dyn Store>);

impl EventSink for StoreSink {
    fn accept(&mut self, event: &Event, label: &ExecutionLabel) {
        self.0.append(label, event);
    }
}
