//! `rhaiflow graph` in each format, and `--dry-run`: the graph is built, nothing runs.

use insta::assert_snapshot;
use serde_json::Value;

use crate::support::{cli, example, Run};

#[test]
fn graph_as_dot() {
    let out = cli(&["graph", "graph_drawing.rhai", "--format", "dot"]);
    out.assert_code(0);
    assert_snapshot!("graph_dot", out.stdout);
}

#[test]
fn graph_as_mermaid() {
    let out = cli(&["graph", "graph_drawing.rhai", "--format", "mermaid"]);
    out.assert_code(0);
    assert_snapshot!("graph_mermaid", out.stdout);
}

#[test]
fn graph_as_json() {
    let out = cli(&["graph", "graph_drawing.rhai", "--format", "json"]);
    out.assert_code(0);
    assert_snapshot!("graph_json", out.stdout);
}

#[test]
fn graph_as_text() {
    let out = cli(&["graph", "graph_drawing.rhai", "--format", "text"]);
    out.assert_code(0);
    assert_snapshot!("graph_text", out.stdout);
}

// The snapshots trim trailing whitespace; the output must still end its last line.
#[test]
fn every_graph_format_ends_with_a_newline() {
    for format in ["dot", "mermaid", "json", "text"] {
        let out = cli(&["graph", "graph_drawing.rhai", "--format", format]);
        assert!(out.stdout.ends_with('\n'), "--format {format} ends without a newline: {:?}", out.stdout);
    }
}

#[test]
fn graph_json_holds_the_dependencies_and_the_subgraphs() {
    let out = cli(&["graph", "graph_drawing.rhai", "--format", "json"]);
    out.assert_code(0);
    let graph: Value = serde_json::from_str(&out.stdout).unwrap();
    let tasks = graph["tasks"].as_array().unwrap();
    let by_name = |name: &str| tasks.iter().find(|t| t["name"] == name).unwrap_or_else(|| panic!("{name}"));
    let id = |name: &str| by_name(name)["id"].clone();
    let waits = |name: &str| by_name(name)["waits_for"].as_array().unwrap().clone();
    assert_eq!(tasks.len(), 10);
    assert_eq!(waits("build"), [id("prepare")]);
    assert!(waits("deploy").contains(&id("build")) && waits("deploy").contains(&id("lint")));
    assert_eq!(waits("report"), [id("deploy")], "add_dependency(report, deploy): report waits");
    assert_eq!(waits("migrate"), [id("create_db")]);
    assert_eq!(by_name("migrate")["subgraph"], id("database"));
    assert_eq!(by_name("database")["subgraph"], id("deploy"));
    assert_eq!(by_name("start_app")["kind"], "shell");
    assert_eq!(by_name("send_event")["kind"], "event");
}

#[test]
fn graph_of_a_cycle_is_invalid_input() {
    let out = cli(&["graph", "cycle.rhai", "--format", "dot"]);
    out.assert_code(2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("the graph has a cycle"), "{}", out.stderr);
}

#[test]
fn graph_of_the_deploy_example() {
    let script = example("deploy_app.rhai");
    let out = cli(&["graph", script.to_str().unwrap(), "--format", "text"]);
    out.assert_code(0);
    assert_snapshot!("graph_deploy_app_text", out.stdout);
}

#[test]
fn check_accepts_both_examples() {
    for name in ["hello.rhai", "deploy_app.rhai"] {
        let script = example(name);
        cli(&["check", script.to_str().unwrap()]).assert_code(0);
    }
}

#[test]
fn dry_run_builds_the_graph_and_runs_no_task() {
    let run = Run::new("dry_run.rhai");
    let marker = run.scratch().join("marker");
    let out = run.param("marker", marker.display()).args(["--dry-run"]).output();
    out.assert_code(0);
    assert_eq!(out.events.of_type("task_started").count(), 0, "{}", out.events.summary());
    assert!(!marker.exists(), "the shell task ran in a dry run");
    assert_eq!(out.events.final_status(), Some("workflow_succeeded"));
}

#[test]
fn dry_run_still_reports_a_cycle() {
    let out = Run::new("cycle.rhai").args(["--dry-run"]).output();
    out.assert_code(2);
}

#[test]
fn dry_run_of_the_deploy_example_runs_nothing() {
    let out = Run::new(example("deploy_app.rhai")).args(["--dry-run"]).output();
    out.assert_code(0);
    assert_eq!(out.events.of_type("task_started").count(), 0, "{}", out.events.summary());
    assert_eq!(out.events.of_type("workflow_event").count(), 0);
}

// Operation tasks were drawn as `set_state (operation)` and `lifecycle.configure (operation)`,
// the same for every instance: a drawing of a deployment's workflow could not be read.
#[test]
fn graph_labels_operations_by_operation_and_instance() {
    let args = ["graph", "deployments/operations_graph.rhai", "--blueprint", "deployments/web_on_vm.yaml"];
    let out = cli(&[&args[..], &["--format", "text"]].concat());
    out.assert_code(0);
    assert_snapshot!("graph_operations_text", out.stdout);
    let out = cli(&[&args[..], &["--format", "json"]].concat());
    let graph: Value = serde_json::from_str(&out.stdout).unwrap();
    let on: Vec<(&str, &str)> = graph["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| Some((t["name"].as_str()?, t.get("node_instance")?.as_str()?)))
        .collect();
    assert!(on.contains(&("lifecycle.configure", "web_1")) && on.contains(&("set_state", "vm_1")), "{on:?}");
}
