//! Data flow (contract section 6, TaskFlow's provides/requires): each key a task requires is
//! looked up in its `inject`, then among the other tasks of the graph that provide it (which adds
//! the dependency), then in the workflow parameters. Checked before anything runs. A provider
//! inside a subgraph that may run again is waited for through that subgraph (`plan`), so a
//! consumer outside it reads the result of the run that succeeded.

use std::collections::HashMap;
use std::sync::Arc;

use rhai::Map;

use super::TaskGraph;
use crate::task::{InputSource, TaskCell};

/// What is wrong with a graph's data links: every problem, not just the first.
#[derive(Default)]
pub struct DataFlowError {
    pub problems: Vec<String>,
    /// The tasks the problems are about, to point at where they were defined.
    pub tasks: Vec<Arc<TaskCell>>,
}

impl std::fmt::Debug for DataFlowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

impl std::fmt::Display for DataFlowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.problems.join("; "))
    }
}

/// Resolves every task's requirements, adds "waits for its provider" edges, and records in
/// each task where its inputs come from.
pub fn link(graph: &mut TaskGraph, parameters: &Map) -> Result<(), DataFlowError> {
    // Most tasks have no part in data flow, most graphs none at all: only those that do are
    // looked at (three locks, a copy and a sort a task cost a no-op chain ~200 instructions).
    let cells: Vec<Arc<TaskCell>> = graph.dag.node_weights().filter(|c| c.has_data_flow()).cloned().collect();
    if cells.is_empty() {
        return Ok(());
    }
    let mut providers: HashMap<String, Vec<Arc<TaskCell>>> = HashMap::new();
    for cell in &cells {
        if let Some(key) = cell.with_settings(|s| s.provides().cloned()) {
            providers.entry(key).or_default().push(cell.clone());
        }
    }
    let mut error = DataFlowError::default();
    let mut ordered = cells.clone();
    ordered.sort_by_key(|c| c.serial);
    for cell in &ordered {
        let requires = cell.with_settings(|s| s.requires().to_vec());
        let mut inputs = Vec::with_capacity(requires.len());
        for key in requires {
            let provided = providers.get(&key).map(Vec::as_slice).unwrap_or_default();
            let Some(source) = source_of(cell, &key, provided, parameters, &mut error) else { continue };
            if let InputSource::Provider(provider) = &source {
                let _ = graph.add_dependency(cell, provider);
            }
            inputs.push((key, source));
        }
        cell.set_inputs(inputs);
    }
    if error.problems.is_empty() {
        Ok(())
    } else {
        Err(error)
    }
}

/// Where `cell`'s required `key` comes from: its `inject`, the one task (other than itself)
/// providing it, or the parameters; `None` with the problem recorded in `error`.
fn source_of(
    cell: &Arc<TaskCell>,
    key: &str,
    provided: &[Arc<TaskCell>],
    parameters: &Map,
    error: &mut DataFlowError,
) -> Option<InputSource> {
    if let Some(value) = cell.with_settings(|s| s.inject()?.get(key).cloned()) {
        return Some(InputSource::Injected(value));
    }
    // A task's own result never feeds it (TaskFlow lets a task update a value it requires):
    // counting it as its own provider made it wait for itself.
    let own = provided.iter().any(|p| Arc::ptr_eq(p, cell));
    let others: Vec<&Arc<TaskCell>> = provided.iter().filter(|p| !Arc::ptr_eq(p, cell)).collect();
    match others.as_slice() {
        [provider] => return Some(InputSource::Provider((*provider).clone())),
        [_, _, ..] => {
            let names: Vec<String> = others.iter().map(|p| format!("`{}`", p.name)).collect();
            error.problems.push(format!(
                "task `{}` requires `{key}`, which {} all provide: a key needs exactly one provider",
                cell.name,
                names.join(" and ")
            ));
            error.tasks.push(cell.clone());
            error.tasks.extend(others.iter().map(|p| (*p).clone()));
            return None;
        }
        [] => {}
    }
    if let Some(value) = parameters.get(key) {
        return Some(InputSource::Parameter(value.clone()));
    }
    let nobody = if own { "no other task provides (its own result never feeds it)" } else { "no task provides" };
    error
        .problems
        .push(format!("task `{}` requires `{key}`, which {nobody}, nothing injects and no parameter gives", cell.name));
    error.tasks.push(cell.clone());
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{test_task, TaskAction};

    fn task(name: &str, provides: Option<&str>, requires: &[&str]) -> Arc<TaskCell> {
        let t = test_task(name, TaskAction::Noop);
        t.configure(|s| {
            s.data_flow_mut().provides = provides.map(String::from);
            s.data_flow_mut().requires = requires.iter().map(|s| s.to_string()).collect();
        });
        t
    }

    #[test]
    fn a_provider_becomes_a_dependency_and_a_parameter_fills_the_rest() {
        let mut g = TaskGraph::default();
        let (consumer, provider) = (task("attach", None, &["volume", "region"]), task("create", Some("volume"), &[]));
        g.add(&consumer, None).unwrap();
        g.add(&provider, None).unwrap();
        let mut params = Map::new();
        params.insert("region".into(), "eu".into());
        link(&mut g, &params).unwrap();
        assert_eq!(g.dag.edge_count(), 1);
        provider.set_result(rhai::Dynamic::from_int(7));
        let inputs = consumer.inputs();
        assert_eq!(inputs["volume"].as_int().unwrap(), 7);
        assert_eq!(inputs["region"].to_string(), "eu");
    }

    #[test]
    fn missing_and_doubly_provided_keys_are_all_reported() {
        let mut g = TaskGraph::default();
        for t in [task("a", Some("x"), &[]), task("b", Some("x"), &[]), task("c", None, &["x", "y"])] {
            g.add(&t, None).unwrap();
        }
        let err = link(&mut g, &Map::new()).unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
        assert!(err.problems[0].contains("`a` and `b`"), "{err}");
        assert!(err.problems[1].contains("requires `y`"), "{err}");
    }
}
