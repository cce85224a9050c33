//! A flow file as the Rhai script that builds its graph with the host API. The script keeps
//! the file's layout: each task's constructor stands at the line and column of the task's
//! `name`, and a Rhai expression at its own place, so that a diagnostic about the script
//! ("task `build` is defined here", an error inside an expression) points into the file.
//! The part that links and runs the graph comes after the file's last line.

use serde_json::Value;

use super::tasks::{Action, Place, TaskSpec};
use super::FlowFile;

/// The script text, written at chosen places.
struct Layout {
    out: String,
    at: Place,
}

impl Layout {
    /// Writes `text` at `place`, or right after what is written when that is past it.
    fn put(&mut self, place: Place, text: &str) {
        while self.at.line < place.line {
            self.out.push('\n');
            self.at = Place { line: self.at.line + 1, column: 1 };
        }
        if self.at.line == place.line && self.at.column < place.column {
            self.out.extend(std::iter::repeat_n(' ', place.column - self.at.column));
            self.at.column = place.column;
        } else if self.at.column > 1 {
            self.write(" ");
        }
        self.write(text);
    }

    fn write(&mut self, text: &str) {
        for c in text.chars() {
            if c == '\n' {
                self.at = Place { line: self.at.line + 1, column: 1 };
            } else {
                self.at.column += 1;
            }
        }
        self.out.push_str(text);
    }
}

/// A Rhai string literal of `text` (JSON's `\b` and `\f` are no Rhai escapes: control
/// characters are written as `\u` escapes).
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A value for the script: parsed from its JSON at run time, so every value keeps its type.
fn value(value: &Value) -> String {
    format!("parse_json({})", literal(&value.to_string()))
}

pub fn translate(flow: &FlowFile, text: &str) -> String {
    let mut layout = Layout { out: String::new(), at: Place { line: 1, column: 1 } };
    // Graph mode first: constructors only build, nothing runs before the graph does.
    layout.put(Place { line: 1, column: 1 }, "let g = graph_mode(); let T = [];");
    for (i, task) in flow.tasks.iter().enumerate() {
        put_task(&mut layout, i, task);
    }
    let end = Place { line: text.lines().count() + 2, column: 1 };
    layout.put(end, "");
    match &flow.flow {
        Some(spec) => {
            let members: Vec<String> =
                flow.tasks.iter().enumerate().map(|(i, t)| format!("{}: T[{i}]", literal(&t.name))).collect();
            layout.write(&format!("g.flow({}, #{{{}}});\n", literal(spec), members.join(", ")));
        }
        None => {
            for i in 0..flow.tasks.len() {
                layout.write(&format!("g.add_task(T[{i}]);\n"));
            }
            for (i, task) in flow.tasks.iter().enumerate() {
                for (before, _) in &task.after {
                    if let Some(j) = flow.tasks.iter().position(|t| t.name == *before) {
                        layout.write(&format!("g.add_dependency(T[{i}], T[{j}]);\n"));
                    }
                }
            }
        }
    }
    layout.write("g.execute();\n");
    layout.out
}

/// `T.push(<constructor>); T[i].<setting> = ...;` with the constructor's name at the task's.
fn put_task(layout: &mut Layout, i: usize, task: &TaskSpec) {
    const PUSH: &str = "T.push(";
    let at = task.name_at;
    let before = Place { line: at.line, column: at.column.saturating_sub(PUSH.len()).max(1) };
    layout.put(before, PUSH);
    let name = literal(&task.name);
    match &task.action {
        Action::Shell(command) => layout.write(&format!("shell({name}, {}{}));", literal(command), env(task))),
        Action::Exec(argv) => {
            let argv: Vec<String> = argv.iter().map(|a| literal(a)).collect();
            layout.write(&format!("exec({name}, [{}]{}));", argv.join(", "), env(task)));
        }
        Action::Rhai { text, lines } => {
            let variables: String = task.params.iter().map(|(k, v)| format!("let {k} = {}; ", value(v))).collect();
            layout.write(&format!("task({name}, || {{ {variables}"));
            match lines {
                Some(places) => {
                    for (line, place) in text.lines().zip(places) {
                        if place.line > 0 {
                            layout.put(*place, line);
                        }
                    }
                }
                None => layout.write(text.trim_end()),
            }
            // A last line that ends in a comment would swallow what follows it.
            layout.write(if text.lines().last().is_some_and(|l| l.contains("//")) { "\n}));" } else { " }));" });
        }
    }
    let mut settings = String::new();
    if let Some(n) = task.retries {
        settings.push_str(&format!(" T[{i}].total_retries = {n};"));
    }
    if let Some(secs) = task.retry_interval {
        settings.push_str(&format!(" T[{i}].retry_interval = {secs:?};"));
    }
    if let Some(secs) = task.timeout {
        settings.push_str(&format!(" T[{i}].timeout = {secs:?};"));
    }
    layout.write(&settings);
}

/// A command's parameters, as its environment variables (text as it is, other values as JSON).
fn env(task: &TaskSpec) -> String {
    if task.params.is_empty() {
        return String::new();
    }
    let vars: Vec<String> = task
        .params
        .iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{k}: {}", literal(&text))
        })
        .collect();
    format!(", #{{env: #{{{}}}}}", vars.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diagnostic::Source;

    fn translated(text: &str) -> String {
        let source = Source { name: "flow.yaml".into(), text: text.into() };
        translate(&FlowFile::parse(&source).unwrap_or_else(|d| panic!("{}", d.into_message())), text)
    }

    #[test]
    fn each_task_is_built_at_its_names_place_and_an_expression_at_its_own() {
        let text =
            "tasks:\n  - name: build\n    shell: make\n  - name: sum\n    rhai: |\n      1 + 2\nflow: build; sum\n";
        let script = translated(text);
        let lines: Vec<&str> = script.lines().collect();
        assert_eq!(lines[1].find("shell(").map(|i| i + 1), Some(11), "{script}");
        assert_eq!(lines[3].find("task(").map(|i| i + 1), Some(11), "{script}");
        assert_eq!(lines[5].find("1 + 2").map(|i| i + 1), Some(7), "{script}");
        assert!(script.ends_with("g.execute();\n"), "{script}");
    }

    #[test]
    fn a_quoted_expression_is_written_after_its_task() {
        let script = translated("tasks:\n  - {name: a, rhai: \"'x' + 1\"}\n");
        assert!(script.lines().nth(1).unwrap().contains("task(\"a\", || { 'x' + 1 }));"), "{script}");
    }
}

#[cfg(test)]
mod literal_tests {
    #[test]
    fn any_text_is_a_rhai_string_literal_of_itself() {
        let text = "a \"quoted\" \\ back\nslash\t\u{8}\u{c}\u{1} ü ${not interpolated}";
        let engine = rhai::Engine::new_raw();
        assert_eq!(engine.eval::<String>(&super::literal(text)).unwrap(), text);
    }
}
