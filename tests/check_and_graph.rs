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

// ---------------------------------------------------------------------------------------
// One set of target options for run, check and graph; --dry-run on every example

/// The `-p`s an example's header gives in its `cargo run --release -- run examples/X ...` line.
fn header_params(file: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("-- run examples/"))
        .unwrap_or_else(|| panic!("{} says in its header how it is run", file.display()));
    let words: Vec<&str> = line.split('#').next().unwrap().split_whitespace().collect();
    words.windows(2).filter(|w| w[0] == "-p").flat_map(|w| ["-p".to_string(), w[1].to_string()]).collect()
}

// `rhaiflow run examples/hello.rhai --dry-run` failed: the script reads `.stdout` of a task's
// result, which a dry run only has as a placeholder.
#[test]
fn every_example_dry_runs() {
    let mut scripts: Vec<_> = std::fs::read_dir(example(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rhai"))
        .collect();
    scripts.sort();
    assert!(scripts.len() >= 6, "{scripts:?}");
    let blueprint = example("three_tier/blueprint.yaml").display().to_string();
    let cloudops = example("bundles/cloudops").display().to_string();
    let tutorial = example("bundles/tutorial").display().to_string();
    let mut runs: Vec<Vec<String>> =
        scripts.iter().map(|s| [vec![s.display().to_string()], header_params(s)].concat()).collect();
    for other in [
        vec!["install", "--blueprint", &blueprint],
        vec!["uninstall", "--blueprint", &blueprint],
        vec!["scale", "--blueprint", &blueprint, "-p", "node_id=web"],
        vec!["heal", "--blueprint", &blueprint, "-p", "node_instance_id=web_1"],
        vec!["execute_operation", "--blueprint", &blueprint, "-p", "operation=lifecycle.configure"],
        vec![&cloudops, "provision", "-p", "name=web1"],
        vec![&cloudops, "rollout", "-p", r#"servers=["a","b","c"]"#],
        vec![&cloudops, "health"],
        vec![&tutorial, "run_operation", "--blueprint", &blueprint, "-p", "operation=lifecycle.configure"],
    ] {
        runs.push(other.into_iter().map(String::from).collect());
    }
    for args in runs {
        let (target, rest) = args.split_first().unwrap();
        let out = Run::new(target).args(rest.iter().cloned()).args(["--dry-run"]).ephemeral().output();
        assert_eq!(out.code, Some(0), "{args:?}:\n{}", out.stderr);
        assert_eq!(out.events.of_type("task_started").count(), 0, "{args:?} ran a task");
        assert_eq!(out.events.final_status(), Some("workflow_succeeded"), "{args:?}");
    }
}

#[test]
fn a_dry_run_that_stops_at_a_tasks_result_says_where() {
    let out = Run::new(example("hello.rhai")).args(["--dry-run"]).ephemeral().output();
    out.assert_code(0);
    assert!(out.stderr.contains("dry run stopped at line 6"), "{}", out.stderr);
    assert!(out.stdout.is_empty(), "no result: {}", out.stdout);
}

// `check` took only the target (no -p, --params, --blueprint, --deployment), so a script that
// needs a parameter or a deployment could not be checked; `graph` had no --params.
#[test]
fn check_and_graph_take_the_target_options_of_run() {
    let boot = example("boot_instance.rhai");
    let boot = boot.to_str().unwrap();
    let bare = cli(&["check", boot]);
    bare.assert_code(2);
    assert!(bare.stderr.contains("requires `instance_name`"), "{}", bare.stderr);
    cli(&["check", boot, "-p", "instance_name=web-1"]).assert_code(0);
    cli(&["check", boot, "--params", "boot_instance_params.yaml"]).assert_code(0);
    cli(&["graph", boot, "--params", "boot_instance_params.yaml"]).assert_code(0);

    let blueprint = example("three_tier/blueprint.yaml");
    let blueprint = blueprint.to_str().unwrap();
    let checked = cli(&["check", "install", "--blueprint", blueprint]);
    checked.assert_code(0);
    assert!(checked.stderr.contains("✔ install compiles; its graphs hold"), "{}", checked.stderr);
    let bad = cli(&["check", "scale", "--blueprint", blueprint, "-p", "delta=many"]);
    bad.assert_code(2);
    assert!(bad.stderr.contains("`delta` must be an integer"), "{}", bad.stderr);

    let store = tempfile::tempdir().unwrap();
    let store = store.path().to_str().unwrap();
    cli(&["deployments", "create", "shop", "--blueprint", blueprint, "--store", store]).assert_code(0);
    let drawn = cli(&["graph", "install", "--deployment", "shop", "--store", store, "--format", "json"]);
    drawn.assert_code(0);
    assert!(drawn.stdout.contains("lifecycle.create"), "{}", drawn.stdout);
    cli(&["check", "install", "--deployment", "shop", "--store", store]).assert_code(0);
    // A bundle's workflow is checked with its parameters, as `run` would take them.
    let greet = cli(&["check", "bundles/good", "greet", "-p", "target=web"]);
    greet.assert_code(0);
    assert!(greet.stderr.contains("✔ bundles/good greet compiles"), "{}", greet.stderr);
    let missing = cli(&["check", "bundles/good", "greet"]);
    missing.assert_code(2);
    assert!(missing.stderr.contains("`target` is mandatory"), "{}", missing.stderr);
    for command in ["check", "graph"] {
        let out = cli(&[command, "install"]);
        out.assert_code(2);
        assert!(out.stderr.contains("it needs a deployment to work on"), "{command}: {}", out.stderr);
    }
}
