//! `rhaiflow executions logs ID [--task NAME] [--follow]`: the lines the execution's shell,
//! exec and operation script tasks printed, as their `task_output` events recorded them; every
//! task's lines led by the task (`build | text`), or one task's lines bare.

use serde_json::Value;

use super::{find, read_events, store_error, StoreArg};
use crate::diagnostic::{Code, Diagnostic};

/// Every recorded line starts so: events are written with their type first.
const OUTPUT_EVENT: &str = "{\"type\":\"task_output\"";

pub(super) fn logs(id: &str, task: Option<&str>, arg: &StoreArg, follow: bool) -> Result<i32, Diagnostic> {
    let (_, store, record) = find(id, arg)?;
    if let Some(task) = task {
        let tasks = store.tasks(&record.id).map_err(store_error)?;
        // A task that has not started yet (followed while running) may still come.
        if !follow && !tasks.iter().any(|t| t.name == task) {
            let mut seen = std::collections::HashSet::new();
            let names: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).filter(|n| seen.insert(*n)).collect();
            let message = format!("execution {} has no task named `{task}`", record.id);
            let d = Diagnostic::plain(Code::NoSuchTask, message);
            return Err(d.with_help(format!("its tasks: {}", names.join(", "))));
        }
    }
    read_events(&*store, &record, follow, |json| {
        if !json.starts_with(OUTPUT_EVENT) {
            return;
        }
        let Ok(event) = serde_json::from_str::<Value>(json) else { return };
        let text = |key: &str| event.get(key).and_then(Value::as_str).unwrap_or("");
        match (task, event.get("node_instance").and_then(Value::as_str)) {
            (Some(task), _) if text("task") != task => {}
            (Some(_), _) => say_out!("{}", text("line")),
            (None, Some(instance)) => say_out!("{instance} {} | {}", text("task"), text("line")),
            (None, None) => say_out!("{} | {}", text("task"), text("line")),
        }
    })
}
