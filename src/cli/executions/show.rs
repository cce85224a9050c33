//! `rhaiflow executions show ID`: one execution, what it ran on, and its tasks as a table.
//! The count in the header is the table's own, so the two never disagree; tasks of a
//! deployment run get an INSTANCE column.

use super::{duration, find, store_error, StoreArg};
use crate::diagnostic::Diagnostic;
use crate::events::TaskKind;
use crate::store::{ExecutionRecord, StoredState, StoredTask};

pub fn show(id: &str, arg: &StoreArg) -> Result<i32, Diagnostic> {
    let (_, store, r) = find(id, arg)?;
    let tasks = store.tasks(&r.id).map_err(store_error)?;
    say_out!("execution   {}", r.id);
    say_out!("workflow    {} ({})", r.workflow, r.script);
    if let Some(deployment) = deployment(&r) {
        say_out!("deployment  {deployment}");
    }
    say_out!("status      {}", r.shown_status());
    say_out!("started     {}", r.started_at);
    if let Some(ended) = &r.ended_at {
        say_out!("ended       {ended} ({})", duration(&r));
    }
    if r.resumes > 0 {
        say_out!("resumed     {} time{}", r.resumes, if r.resumes == 1 { "" } else { "s" });
    }
    say_out!("parameters  {}", r.parameters);
    say_out!("tasks       {}", task_counts(&r, &tasks));
    if let Some(error) = &r.error {
        say_out!("error       {error}");
    }
    if !tasks.is_empty() {
        say_out!();
        table(&tasks);
    }
    Ok(0)
}

/// A stored deployment by its name; a throw-away one also by its blueprint.
fn deployment(r: &ExecutionRecord) -> Option<String> {
    let name = r.deployment()?;
    let blueprint = r.options.get("blueprint").and_then(|b| b.as_str());
    Some(match blueprint {
        Some(file) if !r.deployment_stored() => format!("{name} (blueprint {file})"),
        _ => name.to_string(),
    })
}

/// `4: 2 succeeded, 1 failed, 1 cancelled; 3 more never started`: the rows of the table by
/// state, and the planned tasks that have no row because they never ran.
fn task_counts(r: &ExecutionRecord, tasks: &[StoredTask]) -> String {
    let counts: Vec<String> = StoredState::ALL
        .iter()
        .map(|state| (state, tasks.iter().filter(|t| t.state == *state).count()))
        .filter(|(_, n)| *n > 0)
        .map(|(state, n)| format!("{n} {}", state.as_str()))
        .collect();
    let mut text = format!("{}", tasks.len());
    if !counts.is_empty() {
        text.push_str(&format!(": {}", counts.join(", ")));
    }
    // Subgraphs are rows of the table but not planned tasks of the store's count.
    let ran = tasks.iter().filter(|t| t.kind != TaskKind::Subgraph).count() as u64;
    let never = r.tasks_total.saturating_sub(ran);
    if never > 0 {
        text.push_str(&format!("; {never} more never started"));
    }
    text
}

fn table(tasks: &[StoredTask]) {
    let width = tasks.iter().map(|t| t.name.chars().count()).max().unwrap_or(4).clamp(4, 40);
    let instances = tasks.iter().any(|t| t.node_instance.is_some());
    let inst_width = tasks.iter().filter_map(|t| t.node_instance.as_ref()).map(|i| i.chars().count()).max();
    let inst_width = inst_width.unwrap_or(0).clamp(8, 32);
    let instance =
        |i: Option<&str>| if instances { format!("{:<inst_width$}  ", i.unwrap_or("")) } else { String::new() };
    say_out!(
        "{:<width$}  {}{:<9}  {:<11}  {:>8}  ERROR",
        "TASK",
        instance(Some("INSTANCE")),
        "KIND",
        "STATE",
        "ATTEMPTS"
    );
    for t in tasks {
        let error = t.error.as_deref().unwrap_or("").lines().next().unwrap_or("");
        say_out!(
            "{:<width$}  {}{:<9}  {:<11}  {:>8}  {error}",
            t.name,
            instance(t.node_instance.as_deref()),
            t.kind.as_str(),
            t.state.as_str(),
            t.attempts
        );
    }
}
