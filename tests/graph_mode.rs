//! Graph mode (section 6): sequences, fork-joins, dependencies, subgraphs, failures.

use serde_json::json;

use crate::support::Run;

#[test]
fn a_sequence_runs_its_items_one_after_the_other() {
    let out = Run::new("graph_sequence.rhai").output();
    out.assert_code(0);
    let ev = &out.events;
    assert_eq!(ev.start_order(), ["one", "two", "three", "four", "five"]);
    for pair in ["one", "two", "three", "four", "five"].windows(2) {
        ev.assert_before(pair[0], pair[1]);
    }
}

#[test]
fn a_forkjoin_runs_its_members_side_by_side_between_its_neighbours() {
    let out = Run::new("graph_forkjoin.rhai").output();
    out.assert_code(0);
    let ev = &out.events;
    for member in ["left", "middle", "right"] {
        ev.assert_before("first", member);
        ev.assert_before(member, "last");
    }
    assert!(
        ev.overlapped("left", "middle") && ev.overlapped("middle", "right") && ev.overlapped("left", "right"),
        "{}",
        ev.summary()
    );
}

#[test]
fn two_sequences_are_independent_chains() {
    let out = Run::new("graph_two_sequences.rhai").output();
    out.assert_code(0);
    let ev = &out.events;
    ev.assert_before("a1", "a2");
    ev.assert_before("b1", "b2");
    assert!(ev.end_seq("b2") < ev.end_seq("a1"), "b2 does not wait for a1:\n{}", ev.summary());
}

#[test]
fn add_dependency_makes_the_first_task_wait_for_the_second() {
    let out = Run::new("graph_add_dependency.rhai").output();
    out.assert_code(0);
    assert_eq!(out.result(), json!("A"));
    out.events.assert_before("b", "a");
    assert_eq!(out.events.attempts("a"), 1, "a self-dependency is ignored, not a cycle");
}

#[test]
fn remove_dependency_lets_the_task_start_without_waiting() {
    let out = Run::new("graph_remove_dependency.rhai").output();
    out.assert_code(0);
    let ev = &out.events;
    assert!(ev.end_seq("c") < ev.end_seq("b"), "c no longer waits for b:\n{}", ev.summary());
    ev.assert_before("b", "d");
}

#[test]
fn remove_task_drops_the_task_and_its_place_in_the_sequence() {
    let out = Run::new("graph_remove_task.rhai").output();
    out.assert_code(0);
    assert_eq!(
        out.result(),
        json!({"before": ["removed", "kept", "after"], "after": ["kept", "after"], "removed_state": "pending"})
    );
    assert!(!out.events.started("removed"));
    assert!(out.events.started("after"));
}

#[test]
fn subgraphs_start_their_tasks_only_once_they_start_and_nest() {
    let out = Run::new("graph_subgraphs.rhai").output();
    out.assert_code(0);
    assert_eq!(
        out.result(),
        json!({
            "top": ["outer", "empty", "first", "last"],
            "outer": ["inner", "after_inner"],
            "inner": ["in1", "in2"],
            "empty": [],
            "executed": null,
        })
    );
    let ev = &out.events;
    assert_eq!(ev.start_order(), ["first", "outer", "inner", "in1", "in2", "after_inner", "empty", "last"]);
    ev.assert_before("first", "outer");
    assert!(ev.start_seq("outer") < ev.start_seq("inner") && ev.start_seq("inner") < ev.start_seq("in1"));
    ev.assert_before("in1", "in2");
    ev.assert_before("inner", "after_inner");
    assert!(ev.end_seq("in2") < ev.end_seq("inner") && ev.end_seq("after_inner") < ev.end_seq("outer"));
    ev.assert_before("outer", "empty");
    ev.assert_before("empty", "last");
    for sub in ["outer", "inner", "empty"] {
        assert!(ev.of_task("task_started", sub).all(|e| e["kind"] == "subgraph"), "{sub}");
        assert_eq!(ev.outcome(sub), Some("task_succeeded"), "{sub}");
    }
}

#[test]
fn a_failing_task_fails_its_subgraph_and_stops_what_follows_it() {
    let out = Run::new("graph_subgraph_failure.rhai").output();
    out.assert_code(1);
    let ev = &out.events;
    assert_eq!(ev.outcome("install"), Some("task_failed"));
    let deploy = ev.of_task("task_failed", "deploy").next().expect("the subgraph fails");
    assert_eq!(deploy["kind"], "subgraph");
    assert_eq!(deploy["error"], "package not found", "the first error is the one reported");
    assert!(!ev.started("start"), "the rest of the subgraph never starts");
    assert!(!ev.started("after_deploy"), "dependents of the subgraph never start");
    assert_eq!(ev.outcome("independent"), Some("task_succeeded"));
    let failed = ev.of_type("workflow_failed").next().unwrap();
    assert!(failed["error"].as_str().unwrap().contains("install"), "{failed}");
}

#[test]
fn after_a_failure_independent_branches_finish_and_dependents_never_start() {
    let out = Run::new("graph_failure_branches.rhai").param("fail_fast", false).output();
    out.assert_code(1);
    let ev = &out.events;
    assert_eq!(ev.outcome("boom"), Some("task_failed"));
    assert!(!ev.started("after_boom"));
    ev.assert_before("boom", "after_slow");
    assert_eq!(ev.outcome("after_slow"), Some("task_succeeded"));
    assert_eq!(ev.final_status(), Some("workflow_failed"));
    assert!(out.stderr.contains("task `boom` failed: broken"), "{}", out.stderr);
}

#[test]
fn fail_fast_starts_nothing_new_after_the_first_failure() {
    let out = Run::new("graph_failure_branches.rhai").param("fail_fast", true).output();
    out.assert_code(1);
    let ev = &out.events;
    assert_eq!(ev.outcome("boom"), Some("task_failed"));
    // `slow` was already running: it ends; what would follow it never starts.
    assert_eq!(ev.outcome("slow"), Some("task_succeeded"));
    assert!(!ev.started("after_slow"), "{}", ev.summary());
    assert!(!ev.started("after_boom"));
}

#[test]
fn get_in_graph_mode_waits_for_execute() {
    let out = Run::new("graph_get_results.rhai").output();
    out.assert_code(0);
    let result = out.result();
    assert_eq!(result["get"], 42);
    assert_eq!(result["result"], 42);
    assert_eq!(result["state"], "succeeded");
    assert!(result["early"].as_str().unwrap().contains("has not run"), "{result}");
}

#[test]
fn sequence_add_and_forkjoin_take_arrays() {
    let out = Run::new("graph_array_forms.rhai").output();
    out.assert_code(0);
    let ev = &out.events;
    for member in ["member0", "member1", "member2"] {
        ev.assert_before("start", member);
        ev.assert_before(member, "finish");
    }
    assert!(ev.overlapped("member0", "member2"), "{}", ev.summary());
}

// `s.add` borrows its items in place since it was made cheaper per task; a task added twice,
// an empty fork-join and a refused item must still chain exactly as before.
#[test]
fn a_sequence_chains_repeated_tasks_empty_forkjoins_and_stops_at_a_wrong_item() {
    let out = Run::new("graph_sequence_items.rhai").output();
    out.assert_code(0);
    assert_eq!(out.events.start_order(), ["a", "b", "c", "d"]);
    for pair in ["a", "b", "c", "d"].windows(2) {
        out.events.assert_before(pair[0], pair[1]);
    }
    let result = out.result();
    assert_eq!(result["tasks"], 4, "{result}");
    let refused = result["refused"].as_str().unwrap();
    assert!(refused.contains("expected a task, a subgraph or a forkjoin"), "{refused}");
}

#[test]
fn subgraphs_do_not_hold_a_slot_of_max_concurrency() {
    // With one slot, a subgraph that took it would wait forever for its own tasks.
    let out = Run::new("graph_subgraphs.rhai").args(["--max-concurrency", "1"]).output();
    out.assert_code(0);
    assert_eq!(out.events.outcome("outer"), Some("task_succeeded"));
    assert_eq!(out.events.outcome("last"), Some("task_succeeded"));
}

#[test]
fn a_graph_result_of_unit_prints_nothing_on_stdout() {
    let out = Run::new("graph_sequence.rhai").output();
    out.assert_code(0);
    assert_eq!(out.stdout, "");
    assert!(out.events.of_type("workflow_succeeded").next().unwrap().get("result").is_none());
}

// `sg.timeout`, `sg.revert` and `sg.provides` were accepted on a subgraph and ignored: no
// timeout stopped it, no revert ran, and a task requiring its key got ().
#[test]
fn settings_a_subgraph_cannot_honour_are_refused() {
    for setting in ["timeout", "revert", "provides"] {
        let out = Run::new("subgraph_without_code_settings.rhai").param("setting", setting).output();
        out.assert_code(2);
        assert!(out.stderr.contains(&format!("a subgraph has no `{setting}`")), "{setting}: {}", out.stderr);
        assert!(!out.events.started("install"), "{setting}");
    }
}

// A closure that called get() on a task running after it (or on a task it built, which no
// graph runs) waited for ever: no timeout, no signal and no `cancel --force` ended it.
#[test]
fn get_of_a_task_that_runs_later_is_an_error_at_its_line_not_a_deadlock() {
    let out = Run::new("graph_get_of_a_later_task.rhai").output();
    out.assert_code(1);
    assert!(out.stderr.contains("task `later` has not finished"), "{}", out.stderr);
    assert!(out.stderr.contains(" 5 │     later.get();"), "{}", out.stderr);
    assert!(!out.events.started("later"));
}

#[test]
fn get_of_a_task_the_closure_builds_itself_is_an_error_not_a_deadlock() {
    let out = Run::new("graph_get_of_a_task_it_builds.rhai").output();
    out.assert_code(1);
    assert!(out.stderr.contains("task `inner` has not finished"), "{}", out.stderr);
    assert_eq!(out.events.outcome("builder"), Some("task_failed"));
}

// `execute()` tells the graph it starts (`graph_planned`): its tasks with the `task_id` their
// first attempts then carry, their subgraphs, and its edges; a retry gets a new `task_id`.
#[test]
fn graph_planned_tells_the_graph_with_the_task_ids_its_first_attempts_carry() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("planned.rhai");
    let mark = dir.path().join("mark").display().to_string();
    std::fs::write(
        &script,
        format!(
            r#"let g = graph_mode();
let a = g.add_task(task("a", || 1));
let sub = g.subgraph("sub");
sub.add_task(noop("b"));
let flaky = g.add_task(shell("flaky", "test -f {mark} || {{ touch {mark}; exit 1; }}"));
flaky.total_retries = 1;
flaky.retry_interval = 0.0;
g.add_dependency(sub, a);
g.add_dependency(flaky, sub);
g.execute();"#
        ),
    )
    .unwrap();
    let out = Run::new(&script).output();
    out.assert_code(0);
    let planned: Vec<&serde_json::Value> = out.events.0.iter().filter(|e| e["type"] == "graph_planned").collect();
    assert_eq!(planned.len(), 1);
    let graph = planned[0];
    let id_of = |name: &str| {
        graph["nodes"].as_array().unwrap().iter().find(|n| n["task"] == name).unwrap()["task_id"].as_u64().unwrap()
    };
    let b = graph["nodes"].as_array().unwrap().iter().find(|n| n["task"] == "b").unwrap();
    assert_eq!((b["kind"].as_str(), b["subgraph"].as_u64()), (Some("noop"), Some(id_of("sub"))));
    assert_eq!(graph["edges"], json!([[id_of("a"), id_of("sub")], [id_of("sub"), id_of("flaky")]]));
    let started = |name: &str| -> Vec<u64> {
        out.events
            .0
            .iter()
            .filter(|e| e["type"] == "task_started" && e["task"] == name)
            .map(|e| e["task_id"].as_u64().unwrap())
            .collect()
    };
    for name in ["a", "sub", "b"] {
        assert_eq!(started(name), [id_of(name)], "{name}");
    }
    let flaky = started("flaky");
    assert_eq!(flaky.len(), 2);
    assert_eq!(flaky[0], id_of("flaky"));
    assert_ne!(flaky[1], flaky[0], "a retry carries a new task_id");
    let planned_at = graph["seq"].as_u64().unwrap();
    assert!(out
        .events
        .0
        .iter()
        .filter(|e| e["type"] == "task_started")
        .all(|e| e["seq"].as_u64().unwrap() > planned_at));
}
