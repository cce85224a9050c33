//! Flow patterns (section 6): Cloudmesh flow strings and the `std/flow` module.

use crate::support::Run;

#[test]
fn a_flow_string_builds_its_order_inside_a_subgraph() {
    let out = Run::new("flow_string_nested.rhai").output();
    out.assert_code(0);
    let ev = &out.events;
    assert!(ev.end_seq("a") < ev.start_seq("b"), "{}", ev.summary());
    assert!(ev.overlapped("a", "c"), "{}", ev.summary());
    assert!(ev.end_seq("b") < ev.start_seq("d") && ev.end_seq("c") < ev.start_seq("d"), "{}", ev.summary());
    assert!(ev.end_seq("d") < ev.start_seq("after_flow"), "the flow is one subgraph: {}", ev.summary());
    assert!(ev.started("flow"), "{}", ev.summary());
}

#[test]
fn a_flow_string_mistake_points_into_the_string() {
    let out = Run::new("flow_string_typo.rhai").output();
    out.assert_code(2);
    // A lone `|` was only "unexpected": the user meant `||`.
    assert!(out.stderr.contains("unexpected `|` (did you mean `||`?)"), "{}", out.stderr);
    assert!(out.stderr.contains("build; test |deploy\n") && out.stderr.contains("             ^"), "{}", out.stderr);
    assert!(!out.events.started("build"));
}

/// Tasks in the map but not in the string were silently dropped: they never ran and the run
/// succeeded.
#[test]
fn a_task_handed_to_flow_but_left_out_of_its_string_is_an_error() {
    let out = Run::new("flow_string_task_left_out.rhai").output();
    out.assert_code(2);
    assert!(out.stderr.contains("the flow string never names `lint`, `test`"), "{}", out.stderr);
    assert!(!out.events.started("build"), "{}", out.events.summary());
}

#[test]
fn std_flow_parallel_and_pipeline_compose() {
    let out = Run::new("std_flow_pipeline_parallel.rhai").output();
    out.assert_code(0);
    let ev = &out.events;
    assert!(ev.overlapped("fetch_a", "fetch_b"), "{}", ev.summary());
    assert!(ev.end_seq("fetch_a") < ev.start_seq("merge"), "{}", ev.summary());
    assert!(ev.end_seq("merge") < ev.start_seq("publish"), "{}", ev.summary());
}

// YAML flow files (Cloudmesh style): tasks and their order, run wherever a script runs.

/// A flow file was read as a Rhai script: "does not compile" at its first line.
#[test]
fn a_flow_file_with_after_runs_in_the_order_its_dependencies_give() {
    let out = Run::new("flows/after.yaml").output();
    out.assert_code(0);
    let ev = &out.events;
    assert!(ev.end_seq("fetch") < ev.start_seq("build") && ev.end_seq("fetch") < ev.start_seq("lint"));
    assert!(ev.overlapped("build", "lint"), "{}", ev.summary());
    assert!(ev.end_seq("build") < ev.start_seq("report") && ev.end_seq("lint") < ev.start_seq("report"));
    let built: Vec<_> = ev.of_task("task_succeeded", "build").collect();
    assert_eq!(built[0]["result"]["stdout"], "built 3\n", "params are the command's environment");
    assert_eq!(ev.of_task("task_succeeded", "report").next().unwrap()["result"], "reported");
    assert_eq!(ev.0[0]["workflow"], "after");
}

/// Problems of a flow file were "does not compile" of its first line, one at a time.
#[test]
fn a_flow_files_problems_are_one_diagnostic_pointing_at_their_lines() {
    let out = Run::new("flows/problems.yaml").output();
    out.assert_code(2);
    assert!(out.events.0.is_empty(), "nothing ran: {}", out.events.summary());
    insta::assert_snapshot!("flow_file_problems", out.normalised_stderr());
}

/// A failed task and a cycle pointed into a script nobody wrote, not at the file's tasks.
#[test]
fn a_flow_files_failed_task_and_cycle_point_at_the_tasks_in_the_file() {
    let out = Run::new("flows/failing.yaml").output();
    out.assert_code(1);
    assert_eq!(out.events.attempts("flaky"), 2, "retries: 1 gives a second attempt");
    assert!(out.stderr.contains("failing.yaml:4:11]"), "{}", out.stderr);
    assert!(out.stderr.contains("4 │   - name: flaky"), "{}", out.stderr);
    let out = Run::new("flows/cycle.yaml").output();
    out.assert_code(2);
    assert!(out.stderr.contains("the graph has a cycle"), "{}", out.stderr);
    assert!(out.stderr.contains("5 │   - name: b") && out.stderr.contains("`b` is defined here"), "{}", out.stderr);
}

/// An error inside a task's Rhai expression pointed at a translated script, not the file.
#[test]
fn an_error_in_a_flow_files_expression_points_into_the_file() {
    let out = Run::new("flows/expression_throws.yaml").output();
    out.assert_code(1);
    assert!(out.stderr.contains("expression_throws.yaml:5:11]"), "{}", out.stderr);
    assert!(out.stderr.contains("5 │       x + missing"), "{}", out.stderr);
}

/// `check` and `graph` took a flow file for a script that does not compile.
#[test]
fn check_and_graph_take_a_flow_file() {
    let checked = crate::support::cli(&["check", crate::support::example("release_flow.yaml").to_str().unwrap()]);
    checked.assert_code(0);
    assert!(checked.stderr.contains("compiles; its graphs hold 5 tasks and are valid"), "{}", checked.stderr);
    let path = crate::support::fixtures().join("flows/problems.yaml");
    crate::support::cli(&["check", path.to_str().unwrap()]).assert_code(2);
    let drawn = crate::support::cli(&["graph", crate::support::fixtures().join("flows/after.yaml").to_str().unwrap()]);
    drawn.assert_code(0);
    assert!(drawn.stdout.contains("report (script)  waits for: build, lint"), "{}", drawn.stdout);
}

/// A bundle's plugin.yaml given as the target was read as a script (and then as a flow file).
#[test]
fn a_plugin_yaml_stands_for_its_bundle_not_a_flow_file() {
    let manifest = crate::support::example("bundles/cloudops/plugin.yaml");
    let checked = crate::support::cli(&["check", manifest.to_str().unwrap()]);
    checked.assert_code(0);
    assert!(checked.stderr.contains("bundle cloudops"), "{}", checked.stderr);
}

/// A flow file is resumed as a script is: the file is read (and translated) again, and the
/// tasks that succeeded are replayed.
#[test]
fn a_failed_flow_file_is_resumed_from_its_failed_task() {
    let run = Run::new(crate::support::fixtures().join("flows/wait_for_marker.yaml"));
    let scratch = run.scratch().to_path_buf();
    let first = run.output();
    first.assert_code(1);
    let id = first.execution_id();
    // The marker is looked for in the working folder of the resume.
    std::fs::write(scratch.join("marker"), "").unwrap();
    let events = scratch.join("resumed.jsonl");
    let resumed = crate::support::cli_of(
        crate::support::rhaiflow()
            .current_dir(&scratch)
            .args(["executions", "resume", &id, "--store", &first.store_arg()])
            .args(["--events-json", events.to_str().unwrap()]),
    );
    resumed.assert_code(0);
    let resumed = crate::support::Events::read(&events);
    assert_eq!(resumed.attempts("prepare"), 0, "replayed, not run again: {}", resumed.summary());
    assert_eq!(resumed.outcome("wait_for_marker"), Some("task_succeeded"), "{}", resumed.summary());
}

/// An expression that compiles alone but not as a task's body was shown in the translated
/// script (blank lines where the file has its keys) instead of the file.
#[test]
fn an_expression_that_does_not_compile_as_a_task_is_shown_in_the_file() {
    let path = crate::support::fixtures().join("flows/function_in_expression.yaml");
    let checked = crate::support::cli(&["check", path.to_str().unwrap()]);
    checked.assert_code(2);
    assert!(checked.stderr.contains("Function definitions must"), "{}", checked.stderr);
    assert!(checked.stderr.contains("3 │     rhai: |"), "{}", checked.stderr);
    assert!(checked.stderr.contains("4 │       fn helper() { 1 }"), "{}", checked.stderr);
}
