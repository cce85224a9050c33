//! `rhaiflow executions logs ID [--task NAME] [--follow]`: the lines the execution's shell,
//! exec and operation script tasks printed, as their `task_output` events recorded them; every
//! task's lines led by the task (`build | text`), or one task's lines bare.

use super::{find, read_events, store_error, StoreArg};
use crate::diagnostic::{Code, Diagnostic};

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
        if let Some(line) = crate::events::log_line(json, task) {
            say_out!("{line}");
        }
    })
}
