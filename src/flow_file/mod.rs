//! YAML flow files (Cloudmesh style): a workflow written as a list of tasks — a shell
//! command, a program with its arguments, or a Rhai expression, with parameters, retries and
//! a timeout — and their order, as a flow string (`a; b || c`) or as each task's `after:`.
//!
//! A flow file runs wherever a script does (`run`, `check`, `graph`, resume): the runner reads
//! it through [`read`], which validates the YAML (every problem in one diagnostic that points
//! at its line) and translates it into the Rhai script that builds the same graph with the
//! host API (`script`). So there is one way a graph is built, validated and run.

mod script;
mod tasks;

use std::path::Path;
use std::sync::Arc;

use miette::SourceSpan;

use crate::diagnostic::Problems;
use crate::diagnostic::{Code, Diagnostic, Source};
use crate::graph::flow_spec::{self, FlowNode};

use crate::yaml::{self, Node};
pub use tasks::TaskSpec;

/// A flow file, read and validated.
pub struct FlowFile {
    pub tasks: Vec<TaskSpec>,
    /// The flow string, if the order is given as one (else each task's `after`).
    pub flow: Option<String>,
}

/// What the runner compiles for a workflow file, and what its diagnostics show.
pub struct WorkflowText {
    /// The Rhai script to compile and run.
    pub script: Source,
    /// The text a person wrote: the script itself, or the flow file the script was made from
    /// (line for line and column for column where the script holds the file's tasks).
    pub shown: Source,
}

/// Is `path` a flow file (`.yaml` or `.yml`) rather than a script?
pub fn is_flow_file(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// A workflow file as the runner compiles it: a script as it is, a flow file translated.
pub fn read(path: &Path, text: String) -> Result<WorkflowText, Diagnostic> {
    let name = path.display().to_string();
    let shown = Source { name: name.clone(), text: Arc::from(text.as_str()) };
    if !is_flow_file(path) {
        return Ok(WorkflowText { script: shown.clone(), shown });
    }
    let flow = FlowFile::parse(&shown)?;
    let script = Source { name, text: Arc::from(script::translate(&flow, &text)) };
    Ok(WorkflowText { script, shown })
}

impl FlowFile {
    /// Reads and validates a flow file; every problem found is in the one diagnostic returned.
    pub fn parse(source: &Source) -> Result<FlowFile, Diagnostic> {
        let mut problems = Problems::default();
        let Some(root) = yaml::parse_or_report(&source.text, &mut problems) else {
            return Err(problems.into_diagnostic(Code::FlowFile, source));
        };
        let flow = read_root(&root, &source.text, &mut problems);
        match flow {
            Some(flow) if problems.is_empty() => Ok(flow),
            _ => Err(problems.into_diagnostic(Code::FlowFile, source)),
        }
    }
}

fn read_root(root: &Node, text: &str, problems: &mut Problems) -> Option<FlowFile> {
    if !root.is_map() {
        problems.add(format!("a flow file is a map with `tasks` (and `flow`), found {}", root.kind()), root.span);
        return None;
    }
    yaml::unknown_keys(root, &["description", "tasks", "flow"], "in a flow file", problems);
    let Some(list) = root.get("tasks") else {
        problems.add("a flow file needs `tasks`: a list of tasks, each with a `name`", root.span);
        return None;
    };
    let tasks = tasks::read_tasks(list, text, problems);
    let flow = match root.get("flow") {
        None => None,
        Some(node) => match node.as_str() {
            Some(spec) => {
                check_flow(spec, node, text, &tasks, problems);
                Some(spec.to_string())
            }
            None => {
                problems
                    .add(format!("`flow` is a flow string such as \"a; b || c\", found {}", node.kind()), node.span);
                None
            }
        },
    };
    if flow.is_some() {
        for task in tasks.iter().filter(|t| !t.after.is_empty()) {
            problems.add(
                format!("task `{}` has `after`, but the order is the `flow` string: give one or the other", task.name),
                task.after_span,
            );
        }
    } else {
        tasks::check_after(&tasks, problems);
    }
    Some(FlowFile { tasks, flow })
}

/// The flow string parses, names only tasks of the file, each once, and names them all.
fn check_flow(spec: &str, node: &Node, text: &str, tasks: &[TaskSpec], problems: &mut Problems) {
    let tree = match flow_spec::parse(spec) {
        Ok(tree) => tree,
        Err(e) => {
            let message = format!("{} in the flow string", e.message);
            problems.add(message, column_span(node, text, spec, e.column));
            return;
        }
    };
    let mut named = Vec::new();
    names_in(&tree, &mut named);
    for (i, name) in named.iter().enumerate() {
        if !tasks.iter().any(|t| t.name == *name) {
            let known: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
            problems.add(
                format!("the flow names `{name}`, which is no task here (tasks: {})", known.join(", ")),
                node.span,
            );
        } else if named[..i].contains(name) {
            problems.add(format!("`{name}` appears twice in the flow string"), node.span);
        }
    }
    let left_out: Vec<String> =
        tasks.iter().filter(|t| !named.contains(&t.name.as_str())).map(|t| format!("`{}`", t.name)).collect();
    if !left_out.is_empty() {
        problems
            .add(format!("the flow never names {}: every task runs somewhere in it", left_out.join(", ")), node.span);
    }
}

fn names_in<'a>(node: &'a FlowNode, out: &mut Vec<&'a str>) {
    match node {
        FlowNode::Task(name) => out.push(name),
        FlowNode::Sequence(items) | FlowNode::Parallel(items) => items.iter().for_each(|i| names_in(i, out)),
    }
}

/// The place of `column` (in characters, from 1) of the flow string `spec`: exact when the
/// YAML holds the string as written, else the whole value.
fn column_span(node: &Node, text: &str, spec: &str, column: usize) -> SourceSpan {
    let start = node.span.offset();
    let raw = text.get(start..start + node.span.len()).unwrap_or("");
    let inner = if raw == spec {
        Some(start)
    } else {
        raw.strip_prefix(['"', '\'']).filter(|r| r.starts_with(spec)).map(|_| start + 1)
    };
    match inner {
        Some(at) => {
            let offset = at + spec.chars().take(column.saturating_sub(1)).map(char::len_utf8).sum::<usize>();
            SourceSpan::new(offset.into(), 1)
        }
        None => node.span,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> String {
        let source = Source { name: "flow.yaml".into(), text: text.into() };
        match FlowFile::parse(&source) {
            Ok(_) => String::new(),
            Err(d) => d.into_message(),
        }
    }

    #[test]
    fn the_flow_names_each_task_of_the_file_once() {
        let tasks = "tasks:\n  - {name: a, shell: x}\n  - {name: b, shell: y}\n  - {name: c, shell: z}\n";
        assert!(problems(&format!("{tasks}flow: a; b")).contains("the flow never names `c`"));
        assert!(problems(&format!("{tasks}flow: a; b; c; d")).contains("the flow names `d`, which is no task here"));
        assert!(problems(&format!("{tasks}flow: a; b || a; c")).contains("`a` appears twice"));
        assert_eq!(problems(&format!("{tasks}flow: a; (b || c)")), "");
    }

    #[test]
    fn after_names_other_tasks_and_goes_with_no_flow() {
        let text = "tasks:\n  - {name: a, shell: x, after: [zz]}\n  - {name: b, shell: y, after: a}\n";
        assert!(problems(text).contains("`zz` is no task here (tasks: a, b)"));
        assert!(problems(&format!("{text}flow: a; b")).contains("task `b` has `after`, but the order is the `flow`"));
    }

    #[test]
    fn a_keyword_is_no_parameter_of_an_expression() {
        let text = "tasks:\n  - {name: a, rhai: x + 1, params: {fn: 1, x: 2}}\n";
        assert!(problems(text).contains("`fn` is a Rhai keyword"), "{}", problems(text));
    }
}
