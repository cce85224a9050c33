//! Data flow and revert (section 6): provides/requires/inject, validation before anything
//! runs, and reverting succeeded tasks in reverse order after a failure.

use serde_json::json;

use crate::support::{cli, Run};

#[test]
fn requirements_come_from_providers_inject_and_parameters_and_order_the_graph() {
    let out = Run::new("dataflow_boot_instance.rhai").param("region", "eu-west").output();
    out.assert_code(0);
    assert_eq!(out.result(), json!("vm-1 + vol-10 in eu-west"));
    let ev = &out.events;
    assert!(ev.end_seq("create_volume") < ev.start_seq("attach"), "{}", ev.summary());
    assert!(ev.end_seq("create_instance") < ev.start_seq("attach"), "{}", ev.summary());
}

#[test]
fn a_requirement_nothing_gives_is_invalid_input_before_anything_runs() {
    let out = Run::new("dataflow_boot_instance.rhai").output();
    out.assert_code(2);
    assert!(out.stderr.contains("task `attach` requires `region`"), "{}", out.stderr);
    assert!(!out.events.started("create_volume"), "{}", out.events.summary());
}

#[test]
fn two_providers_of_one_key_are_named_with_every_other_problem() {
    let out = Run::new("dataflow_two_providers.rhai").output();
    out.assert_code(2);
    let stderr = &out.stderr;
    assert!(stderr.contains("`primary_volume` and `spare_volume` all provide"), "{stderr}");
    assert!(stderr.contains("requires `instance`"), "{stderr}");
    assert!(!out.events.started("primary_volume"));
}

#[test]
fn after_a_failure_succeeded_tasks_are_reverted_in_reverse_and_a_failed_revert_does_not_stop_the_others() {
    let out = Run::new("revert_one_fails.rhai").output();
    out.assert_code(1);
    let types: Vec<(String, String)> = out
        .events
        .0
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("task_revert"))
        .map(|e| (e["type"].as_str().unwrap().to_string(), e["task"].as_str().unwrap().to_string()))
        .collect();
    let expected: Vec<(String, String)> = [
        ("task_reverting", "create_instance"),
        ("task_revert_failed", "create_instance"),
        ("task_reverting", "create_volume"),
        ("task_reverted", "create_volume"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(types, expected);
    let failed = out.events.0.iter().find(|e| e["type"] == "task_revert_failed").unwrap().clone();
    assert_eq!(failed["error"], "the API is down");
    let logs: Vec<&str> = out.events.of_type("log").map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(logs, ["deleting v-1"]);
    assert_eq!(out.events.final_status(), Some("workflow_failed"));
}

// sg.total_retries: the failed subgraph's succeeded tasks are reverted and the whole subgraph
// runs again from fresh tasks (TaskFlow's Times retry of a flow).
#[test]
fn a_failed_subgraph_with_retries_is_reverted_and_runs_again() {
    let out = Run::new("subgraph_retries.rhai").output();
    out.assert_code(0);
    assert_eq!(out.result(), json!(2));
    let ev = &out.events;
    assert_eq!(ev.attempts("provision"), 2, "{}", ev.summary());
    assert_eq!(ev.attempts("create"), 2, "{}", ev.summary());
    let logs: Vec<&str> = ev.of_type("log").map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(logs, ["destroying vm-1"]);
    let rescheduled = ev.of_task("task_rescheduled", "provision").next().expect("the subgraph was rescheduled");
    assert_eq!(rescheduled["error"], "not reachable yet");
    assert_eq!(ev.outcome("after"), Some("task_succeeded"));
}

#[test]
fn a_subgraph_out_of_retries_fails_and_its_dependents_never_run() {
    let out = Run::new("subgraph_retries_exhausted.rhai").output();
    out.assert_code(1);
    assert_eq!(out.events.attempts("always_fails"), 2, "{}", out.events.summary());
    assert_eq!(out.events.outcome("provision"), Some("task_failed"));
    assert!(!out.events.started("after"));
}

#[test]
fn data_links_that_make_a_cycle_are_invalid_input_naming_the_tasks() {
    let out = Run::new("dataflow_cycle.rhai").output();
    out.assert_code(2);
    assert!(
        out.stderr.contains("cycle") && out.stderr.contains("make_key") && out.stderr.contains("make_cert"),
        "{}",
        out.stderr
    );
    assert!(!out.events.started("make_key"));
}

// A task that required a key it also provided was its own provider: it waited for itself for
// ever (and `check` called the graph valid).
#[test]
fn a_task_never_provides_its_own_requirement() {
    let out = Run::new("dataflow_task_updates_its_own_key.rhai").param("x", 0).output();
    out.assert_code(0);
    assert_eq!(out.result(), json!({"bump": 1, "report": 1}));
    out.events.assert_before("bump", "report");
}

// The same task, with nothing else giving `x`, was not reported as a missing requirement.
#[test]
fn a_requirement_only_the_task_itself_provides_is_missing_before_anything_runs() {
    let out = Run::new("dataflow_task_updates_its_own_key.rhai").output();
    out.assert_code(2);
    assert!(out.stderr.contains("task `bump` requires `x`"), "{}", out.stderr);
    assert!(!out.events.started("bump"), "{}", out.events.summary());
    let check = cli(&["check", "dataflow_task_updates_its_own_key.rhai"]);
    check.assert_code(2);
    assert!(check.stderr.contains("task `bump` requires `x`"), "{}", check.stderr);
}

// Another task providing the key the task requires and provides made "two providers".
#[test]
fn another_provider_of_a_key_the_task_provides_too_is_its_one_provider() {
    let out = Run::new("dataflow_own_key_from_another_provider.rhai").output();
    out.assert_code(0);
    assert_eq!(out.result(), json!(6));
    out.events.assert_before("seed", "bump");
}

// `a` required what `b` provides inside a retried subgraph: it ran right after b's first run
// and kept the value of that run, which was then reverted.
#[test]
fn a_value_from_a_retried_subgraph_is_the_one_of_the_run_that_succeeded() {
    let out = Run::new("subgraph_retried_provider.rhai").output();
    out.assert_code(0);
    assert_eq!(out.result(), json!(20));
    let ev = &out.events;
    assert_eq!(ev.attempts("a"), 1, "{}", ev.summary());
    assert_eq!(ev.attempts("test2"), 2, "{}", ev.summary());
    ev.assert_before("test2", "a");
}

// A dependent of a retried subgraph that also required a value from inside it was released
// once per run of the subgraph: it started before the subgraph's task_succeeded, and the
// executor then panicked (a count of what it waited for went below zero).
#[test]
fn a_dependent_of_a_retried_subgraph_starts_after_the_subgraph_succeeded() {
    let out = Run::new("subgraph_retried_dependent.rhai").output();
    out.assert_code(0);
    assert_eq!(out.result(), json!("vm-2"));
    let ev = &out.events;
    ev.assert_before("provision", "after");
    ev.assert_before("provision", "waits_for_a_member");
    assert_eq!(ev.attempts("after"), 1, "{}", ev.summary());
}
