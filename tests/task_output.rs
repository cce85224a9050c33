//! What shell, exec and operation script tasks print: `task_output` events as lines arrive,
//! bounded per attempt; the console's `task | line`; `executions logs`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command as StdCommand, Stdio};

use assert_cmd::cargo::CommandCargoExt;

use crate::support::{cli, fixtures, Run};

/// `(stream, line)` of every `task_output` event of `task`.
fn lines_of(events: &crate::support::Events, task: &str) -> Vec<(String, String)> {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    events.of_task("task_output", task).map(|e| (text(&e["stream"]), text(&e["line"]))).collect()
}

// A task's output reached nobody until it ended, and then only as the tail in its result.
#[test]
fn shell_and_exec_lines_are_task_output_events_on_both_streams() {
    let out = Run::new("output_lines.rhai").output();
    out.assert_code(0);
    let pairs = |v: &[(&str, &str)]| v.iter().map(|(s, l)| (s.to_string(), l.to_string())).collect::<Vec<_>>();
    let mut build = lines_of(&out.events, "build");
    build.sort_by_key(|(stream, _)| stream.clone());
    assert_eq!(build, pairs(&[("stderr", "warning: unused"), ("stdout", "compiling"), ("stdout", "done")]));
    assert_eq!(lines_of(&out.events, "list"), pairs(&[("stdout", "a"), ("stdout", "b")]));
    let first = out.events.of_task("task_output", "build").next().unwrap();
    let started = out.events.of_task("task_started", "build").next().unwrap();
    for field in ["task_id", "kind", "current_retries", "total_retries"] {
        assert_eq!(first[field], started[field], "{field}: {first}");
    }
    assert!(first.get("truncated").is_none(), "{first}");
    assert_eq!(out.result(), "ok");
}

// Nothing bounded a task's output events: a chatty task flooded the store and the console.
#[test]
fn output_past_the_bound_ends_with_one_truncated_event() {
    let out = Run::new("output_truncated.rhai").output();
    out.assert_code(0);
    let lines: Vec<_> = out.events.of_task("task_output", "chatty").collect();
    assert_eq!(lines.len(), 10_001);
    assert_eq!(lines[9_999]["line"], "10000");
    assert!(lines[..10_000].iter().all(|e| e.get("truncated").is_none()));
    let last = lines.last().unwrap();
    assert_eq!(last["truncated"], true, "{last}");
    assert_eq!(last["stream"], "stdout");
}

// There was no way to read what an execution's tasks printed after the run.
#[test]
fn executions_logs_prints_every_task_s_lines_or_one_task_s_bare() {
    let out = Run::new("output_lines.rhai").output();
    out.assert_code(0);
    let (id, store) = (out.execution_id(), out.store_arg());
    let all = cli(&["executions", "logs", &id, "--store", &store]);
    all.assert_code(0);
    let mut lines: Vec<&str> = all.stdout.lines().collect();
    lines.sort();
    assert_eq!(lines, ["build | compiling", "build | done", "build | warning: unused", "list | a", "list | b"]);
    let one = cli(&["executions", "logs", &id, "--task", "list", "--store", &store]);
    one.assert_code(0);
    assert_eq!(one.stdout, "a\nb\n");
    let unknown = cli(&["executions", "logs", &id, "--task", "nope", "--store", &store]);
    unknown.assert_code(2);
    assert!(unknown.stderr.contains("has no task named `nope`") && unknown.stderr.contains("build, list"));
}

// `executions logs --follow` did not exist: a running task's output could not be watched.
#[test]
fn executions_logs_follow_prints_lines_of_a_running_execution_until_it_ends() {
    let run = Run::new("output_follow.rhai");
    let marker = run.scratch().join("go-on");
    let mut run = run.param("marker", marker.display()).spawn();
    let first = run.wait_for("the first line", |e| e["type"] == "task_output" && e["line"] == "first");
    let id = first["execution_id"].as_str().unwrap().to_string();
    let mut follow = StdCommand::cargo_bin("rhaiflow")
        .unwrap()
        .current_dir(fixtures())
        .args(["executions", "logs", &id, "--follow", "--store", &run.store_arg()])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(follow.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    std::fs::write(&marker, "").unwrap();
    assert_eq!(line, "talker | first\n");
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    assert!(follow.wait().unwrap().success());
    assert_eq!(rest, "talker | second\n");
    let (out, _) = run.finish_within(std::time::Duration::from_secs(60));
    out.assert_code(0);
}

// What tasks printed never showed at the terminal while they ran.
#[test]
fn the_console_shows_output_lines_led_by_the_task_and_quiet_hides_them() {
    let out = Run::new("output_lines.rhai").output();
    out.assert_code(0);
    for line in ["build | compiling", "build | warning: unused", "build | done", "list | a", "list | b"] {
        assert!(out.stderr.lines().any(|l| l == line), "no `{line}` in:\n{}", out.stderr);
    }
    let quiet = Run::new("output_lines.rhai").args(["-q"]).output();
    quiet.assert_code(0);
    assert!(!quiet.stderr.contains(" | "), "{}", quiet.stderr);
}

// An operation's script printed into the void: its lines name the task and its instance.
#[test]
fn an_operation_script_s_lines_carry_its_node_instance() {
    let out = Run::new("output_operation.rhai").args(["--blueprint", "output_operation/blueprint.yaml"]).output();
    out.assert_code(0);
    let line = out.events.of_task("task_output", "lifecycle.configure").next().expect("an output event");
    assert_eq!((&line["node_instance"], &line["line"]), (&"web_1".into(), &"configuring web_1".into()));
    assert!(out.stderr.lines().any(|l| l == "web_1 lifecycle.configure | configuring web_1"), "{}", out.stderr);
    let logs = cli(&["executions", "logs", &out.execution_id(), "--store", &out.store_arg()]);
    assert_eq!(logs.stdout, "web_1 lifecycle.configure | configuring web_1\n");
}

// What a task printed without a newline before its timeout killed it would be lost.
#[test]
fn a_last_line_without_newline_of_a_killed_task_comes_before_its_failure() {
    let out = Run::new("output_timeout.rhai").output();
    out.assert_code(1);
    let line = out.events.of_task("task_output", "hangs").next().expect("the half line");
    assert_eq!(line["line"], "waiting for the lock");
    assert!(line["seq"].as_u64() < out.events.of_task("task_failed", "hangs").next().unwrap()["seq"].as_u64());
}
