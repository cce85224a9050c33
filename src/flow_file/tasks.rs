//! The tasks of a flow file: each read from its YAML map into a typed `TaskSpec`, with the
//! places (line, column) the translated script puts them at.

use miette::SourceSpan;
use serde_json::Value;

use crate::diagnostic::Problems;
use crate::names::is_identifier;
use crate::yaml::{self, Node, Yaml};

const TASK_KEYS: &[&str] =
    &["name", "description", "shell", "exec", "rhai", "params", "retries", "retry_interval", "timeout", "after"];

/// A place in the file: line and column, from 1, the column in characters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Place {
    pub line: usize,
    pub column: usize,
}

impl Place {
    pub fn of(text: &str, offset: usize) -> Place {
        let before = &text[..offset.min(text.len())];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Place { line: before.matches('\n').count() + 1, column: before[line_start..].chars().count() + 1 }
    }
}

/// What a task runs.
pub enum Action {
    Shell(String),
    Exec(Vec<String>),
    /// A Rhai expression (or statements); its value is the task's result. `lines` are where
    /// its lines stand in the file, when each is written there as it is (not quoted or folded).
    Rhai {
        text: String,
        lines: Option<Vec<Place>>,
    },
}

pub struct TaskSpec {
    pub name: String,
    /// Where the name is written: the translated script defines the task there.
    pub name_at: Place,
    pub action: Action,
    /// For a Rhai expression, variables; for a command, environment variables.
    pub params: Vec<(String, Value)>,
    pub retries: Option<i64>,
    pub retry_interval: Option<f64>,
    pub timeout: Option<f64>,
    pub after: Vec<(String, SourceSpan)>,
    pub after_span: SourceSpan,
}

/// A name a flow string can hold: letters, digits, `_`, `-` and `.`.
fn is_task_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

pub fn read_tasks(list: &Node, text: &str, problems: &mut Problems) -> Vec<TaskSpec> {
    let Yaml::Seq(items) = &list.value else {
        problems.add(format!("`tasks` is a list of tasks, found {}", list.kind()), list.span);
        return Vec::new();
    };
    if items.is_empty() {
        problems.add("`tasks` is empty: a flow needs at least one task", list.span);
    }
    let mut tasks: Vec<TaskSpec> = Vec::new();
    for item in items {
        if let Some(task) = read_task(item, text, problems) {
            if tasks.iter().any(|t| t.name == task.name) {
                problems.add(
                    format!("two tasks are named `{}`", task.name),
                    item.get("name").map_or(item.span, |n| n.span),
                );
            }
            tasks.push(task);
        }
    }
    tasks
}

fn read_task(item: &Node, text: &str, problems: &mut Problems) -> Option<TaskSpec> {
    if !item.is_map() {
        problems.add(
            format!("a task is a map with a `name` and a `shell`, `exec` or `rhai`, found {}", item.kind()),
            item.span,
        );
        return None;
    }
    yaml::unknown_keys(item, TASK_KEYS, "in a task", problems);
    let Some(name_node) = item.get("name") else {
        problems.add("this task has no `name`", item.span);
        return None;
    };
    let name = match name_node.as_str() {
        Some(n) if is_task_name(n) => n.to_string(),
        _ => {
            problems
                .add("a task's `name` is letters, digits, `_`, `-` and `.` (a flow string names it)", name_node.span);
            return None;
        }
    };
    let action = read_action(item, &name, text, problems)?;
    let after_node = item.get("after");
    Some(TaskSpec {
        name_at: Place::of(text, name_node.span.offset()),
        params: read_params(item, &action, problems),
        retries: read_number(item, "retries", problems).map(|n| n as i64),
        retry_interval: read_seconds(item, "retry_interval", problems),
        timeout: read_seconds(item, "timeout", problems),
        after: after_node.map(|n| read_names(n, problems)).unwrap_or_default(),
        after_span: after_node.map_or(item.span, |n| n.span),
        action,
        name,
    })
}

fn read_action(item: &Node, name: &str, text: &str, problems: &mut Problems) -> Option<Action> {
    let given: Vec<(&str, &Node)> =
        ["shell", "exec", "rhai"].iter().filter_map(|k| item.get(k).map(|v| (*k, v))).collect();
    let (kind, node) = match given.as_slice() {
        [one] => *one,
        [] => {
            problems.add(
                format!("task `{name}` runs nothing: give it a `shell` command, an `exec` argv or a `rhai` expression"),
                item.span,
            );
            return None;
        }
        [_, second, ..] => {
            problems.add(format!("task `{name}` has more than one of `shell`, `exec` and `rhai`"), second.1.span);
            return None;
        }
    };
    match (kind, &node.value) {
        ("shell", Yaml::Str(command)) => Some(Action::Shell(command.clone())),
        ("exec", Yaml::Seq(argv)) if !argv.is_empty() && argv.iter().all(|a| a.as_str().is_some()) => {
            Some(Action::Exec(argv.iter().filter_map(|a| a.as_str().map(str::to_string)).collect()))
        }
        ("rhai", Yaml::Str(expression)) => {
            let lines = expression_places(node, expression, text);
            check_expression(expression, lines.as_deref(), node.span, text, problems);
            Some(Action::Rhai { text: expression.clone(), lines })
        }
        ("exec", _) => {
            problems.add("`exec` is the program and its arguments, a list of strings: [echo, hello]", node.span);
            None
        }
        _ => {
            problems.add(format!("`{kind}` is text, found {}", node.kind()), node.span);
            None
        }
    }
}

/// Where each line of a Rhai expression stands in the file, if each is written there as it is.
fn expression_places(node: &Node, expression: &str, text: &str) -> Option<Vec<Place>> {
    let start = node.span.offset();
    // A plain scalar on one line, written as it is.
    if !expression.contains('\n') && text.get(start..start + expression.len()) == Some(expression) {
        return Some(vec![Place::of(text, start)]);
    }
    // A block scalar (`rhai: |`): its lines follow, indented.
    let mut places = Vec::new();
    let mut offset = start;
    for line in expression.lines() {
        if line.trim().is_empty() {
            places.push(Place { line: 0, column: 0 });
            continue;
        }
        let found = text[offset..].find(line).map(|i| offset + i)?;
        let line_start = text[..found].rfind('\n').map_or(0, |i| i + 1);
        if !text[line_start..found].chars().all(|c| c == ' ') {
            return None;
        }
        places.push(Place::of(text, found));
        offset = found + line.len();
    }
    Some(places)
}

/// A Rhai expression that does not compile is a problem of the file, at its place.
fn check_expression(expression: &str, lines: Option<&[Place]>, span: SourceSpan, text: &str, problems: &mut Problems) {
    let Err(e) = rhai::Engine::new_raw().compile(expression) else { return };
    let position = e.position();
    let at = match (lines, position.line()) {
        (Some(lines), Some(line)) => lines.get(line - 1).filter(|p| p.line > 0).map(|p| {
            let line_start: usize = text.split_inclusive('\n').take(p.line - 1).map(str::len).sum();
            let column = p.column + position.position().unwrap_or(1) - 1;
            let offset = line_start + text[line_start..].chars().take(column - 1).map(char::len_utf8).sum::<usize>();
            SourceSpan::new(offset.into(), 1)
        }),
        _ => None,
    };
    problems.add(format!("the Rhai expression does not compile: {}", e.err_type()), at.unwrap_or(span));
}

fn read_params(item: &Node, action: &Action, problems: &mut Problems) -> Vec<(String, Value)> {
    let Some(node) = item.get("params") else { return Vec::new() };
    if !node.is_map() {
        problems.add(format!("`params` is a map of names to values, found {}", node.kind()), node.span);
        return Vec::new();
    }
    let mut params = Vec::new();
    for (key, value) in node.entries() {
        let name = key.as_str().unwrap_or("");
        let variable = is_identifier(name);
        let rhai = matches!(action, Action::Rhai { .. });
        if !variable {
            let what = if rhai { "a variable" } else { "an environment variable" };
            problems.add(format!("a parameter's name becomes {what}: letters, digits and `_`"), key.span);
            continue;
        }
        // `let fn = ..` would not compile: a keyword is no variable.
        if rhai && rhai::Engine::new_raw().compile(format!("let {name} = ();")).is_err() {
            problems.add(format!("`{name}` is a Rhai keyword: a parameter of an expression is a variable"), key.span);
            continue;
        }
        params.push((name.to_string(), value.to_json()));
    }
    params
}

fn read_number(item: &Node, key: &str, problems: &mut Problems) -> Option<f64> {
    let node = item.get(key)?;
    match node.value {
        Yaml::Int(n) if key != "retries" || n >= -1 => Some(n as f64),
        Yaml::Float(f) if key != "retries" => Some(f),
        _ if key == "retries" => {
            problems.add("`retries` is a whole number of retries (-1: no limit)", node.span);
            None
        }
        _ => {
            problems.add(format!("`{key}` is a number of seconds, found {}", node.kind()), node.span);
            None
        }
    }
}

fn read_seconds(item: &Node, key: &str, problems: &mut Problems) -> Option<f64> {
    let secs = read_number(item, key, problems)?;
    match crate::seconds::checked(secs) {
        Ok(secs) => Some(secs),
        Err(e) => {
            problems.add(format!("`{key}`: {e}"), item.get(key).map_or(item.span, |n| n.span));
            None
        }
    }
}

fn read_names(node: &Node, problems: &mut Problems) -> Vec<(String, SourceSpan)> {
    let items = match &node.value {
        Yaml::Seq(items) => items.iter().collect::<Vec<_>>(),
        Yaml::Str(_) => vec![node],
        _ => Vec::new(),
    };
    let names: Vec<(String, SourceSpan)> =
        items.iter().filter_map(|n| n.as_str().map(|s| (s.to_string(), n.span))).collect();
    if names.len() != items.len() || items.is_empty() {
        problems.add("`after` is the names of the tasks this one waits for: [a, b]", node.span);
    }
    names
}

/// Every name in an `after` is another task of the file.
pub fn check_after(tasks: &[TaskSpec], problems: &mut Problems) {
    for task in tasks {
        for (name, span) in &task.after {
            if *name == task.name {
                problems.add(format!("task `{name}` cannot wait for itself"), *span);
            } else if !tasks.iter().any(|t| t.name == *name) {
                let known: Vec<&str> = tasks.iter().map(|t| t.name.as_str()).collect();
                problems.add(format!("`{name}` is no task here (tasks: {})", known.join(", ")), *span);
            }
        }
    }
}
