//! `--ephemeral`: the store that keeps everything in memory for the life of the process.

use std::collections::BTreeMap;

use parking_lot::Mutex;

use super::{ExecutionRecord, ExecutionStatus, Result, Store, StoreError, StoredTask, TaskRow};
use crate::events::{Event, ExecutionLabel};

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    executions: BTreeMap<String, ExecutionRecord>,
    events: BTreeMap<String, Vec<(u64, String)>>,
    tasks: BTreeMap<String, BTreeMap<String, StoredTask>>,
}

impl Store for MemoryStore {
    fn begin(&self, record: &ExecutionRecord) -> Result<()> {
        self.inner.lock().executions.insert(record.id.clone(), record.clone());
        Ok(())
    }

    fn append(&self, label: &ExecutionLabel, event: &Event, task: Option<TaskRow>) {
        let mut inner = self.inner.lock();
        let id = label.execution_id.to_string();
        if let Some(row) = task {
            let tasks = inner.tasks.entry(id.clone()).or_default();
            let entry = tasks.entry(row.key.clone()).or_insert_with(|| StoredTask {
                key: row.key.clone(),
                name: row.name.clone(),
                kind: row.kind.to_string(),
                state: String::new(),
                attempts: 0,
                current_retries: 0,
                result: None,
                error: None,
            });
            entry.state = row.state.to_string();
            entry.attempts += row.attempt;
            entry.current_retries = row.current_retries;
            if let Some(r) = &row.result {
                entry.result = serde_json::from_str(r).ok();
            }
            entry.error = row.error.clone();
        }
        let line = event.to_json(label).to_string();
        inner.events.entry(id.clone()).or_default().push((event.seq, line));
        if let Some(e) = inner.executions.get_mut(&id) {
            e.last_seq = event.seq;
        }
    }

    fn planned(&self, execution_id: &str, count: u64) {
        if let Some(e) = self.inner.lock().executions.get_mut(execution_id) {
            e.tasks_total += count;
        }
    }

    fn end(&self, execution_id: &str, status: ExecutionStatus, error: Option<String>) {
        if let Some(e) = self.inner.lock().executions.get_mut(execution_id) {
            e.status = status;
            e.error = error;
            e.ended_at = Some(humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string());
        }
    }

    fn flush(&self) {}

    fn committed(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    fn executions(&self) -> Result<Vec<ExecutionRecord>> {
        Ok(self.inner.lock().executions.values().cloned().collect())
    }

    fn execution(&self, id: &str) -> Result<ExecutionRecord> {
        let inner = self.inner.lock();
        let mut record =
            inner.executions.get(id).cloned().ok_or_else(|| StoreError::NoSuchExecution(id.to_string()))?;
        record.tasks_done = inner
            .tasks
            .get(id)
            .map(|t| t.values().filter(|t| t.state == "succeeded" || t.state == "ignored").count() as u64)
            .unwrap_or(0);
        Ok(record)
    }

    fn tasks(&self, id: &str) -> Result<Vec<StoredTask>> {
        let inner = self.inner.lock();
        let mut tasks: Vec<StoredTask> = inner.tasks.get(id).map(|t| t.values().cloned().collect()).unwrap_or_default();
        tasks.sort_by_key(|t| t.index());
        Ok(tasks)
    }

    fn events_after(&self, id: &str, after: u64) -> Result<Vec<(u64, String)>> {
        let inner = self.inner.lock();
        Ok(inner.events.get(id).map(|e| e.iter().filter(|(s, _)| *s > after).cloned().collect()).unwrap_or_default())
    }

    fn request_cancel(&self, id: &str, _force: bool) -> Result<()> {
        Err(StoreError::NoSuchExecution(id.to_string()))
    }

    fn cancel_request(&self, _id: &str) -> Result<u8> {
        Ok(0)
    }
}
