//! Failures, retries and handlers (section 5).

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{cli, Events, Run};

/// The `current_retries` and `task_id` of each attempt of `task`.
fn attempts(ev: &Events, task: &str) -> (Vec<u64>, Vec<u64>) {
    let started: Vec<&Value> = ev.of_task("task_started", task).collect();
    let retries = started.iter().map(|e| e["current_retries"].as_u64().unwrap()).collect();
    let ids = started.iter().map(|e| e["task_id"].as_u64().unwrap()).collect();
    (retries, ids)
}

fn distinct(ids: &[u64]) -> usize {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    ids.len()
}

#[test]
fn a_flaky_task_succeeds_within_total_retries_each_attempt_a_new_task_id() {
    let out = Run::new("retries_flaky.rhai").output();
    out.assert_code(0);
    assert_eq!(out.result(), json!({"instance_name": "mynode", "calls": 3}));
    let (retries, ids) = attempts(&out.events, "create_instance");
    assert_eq!(retries, [0, 1, 2]);
    assert_eq!(distinct(&ids), 3);
    let rescheduled: Vec<_> = out.events.of_task("task_rescheduled", "create_instance").collect();
    assert_eq!(rescheduled.len(), 2);
    assert_eq!(rescheduled[0]["error"], "the API is down (call 1)");
    assert_eq!(rescheduled[0]["retry_after"], 0.0);
    assert!(out.events.of_task("task_started", "create_instance").all(|e| e["total_retries"] == 3));
}

#[test]
fn a_task_that_keeps_failing_stops_after_total_retries() {
    let out = Run::new("retries_exhausted.rhai").output();
    out.assert_code(1);
    let (retries, _) = attempts(&out.events, "hopeless");
    assert_eq!(retries, [0, 1, 2]);
    assert_eq!(out.events.outcome("hopeless"), Some("task_failed"));
    assert!(!out.events.started("never"));
}

#[test]
fn retry_interval_spaces_the_attempts() {
    let out = Run::new("retries_interval.rhai").output();
    out.assert_code(0);
    let rescheduled = out.events.of_task("task_rescheduled", "wait_between").next().unwrap();
    assert_eq!(rescheduled["retry_after"], 0.4);
    let second = out.events.of_task("task_started", "wait_between").nth(1).unwrap();
    let gap = seconds_between(rescheduled["ts"].as_str().unwrap(), second["ts"].as_str().unwrap());
    assert!(gap >= 0.35, "the second attempt started {gap}s after the first failed");
}

/// Seconds from `a` to `b`, two RFC 3339 timestamps of the same day.
fn seconds_between(a: &str, b: &str) -> f64 {
    let secs = |ts: &str| {
        let time = &ts[11..ts.len() - 1];
        let parts: Vec<f64> = time.split(':').map(|p| p.parse().unwrap()).collect();
        parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
    };
    let gap = secs(b) - secs(a);
    if gap < 0.0 {
        gap + 86400.0
    } else {
        gap
    }
}

#[test]
fn task_retries_option_is_the_default_for_standard_mode_tasks() {
    let out = Run::new("retries_run_defaults.rhai").args(["--task-retries", "3", "--retry-interval", "0.05"]).output();
    out.assert_code(0);
    assert_eq!(out.result(), json!(4));
    let (retries, ids) = attempts(&out.events, "flaky");
    assert_eq!(retries, [0, 1, 2, 3]);
    assert_eq!(distinct(&ids), 4);
    assert!(out.events.of_task("task_rescheduled", "flaky").all(|e| e["retry_after"] == 0.05));
    assert!(out.events.of_task("task_started", "flaky").all(|e| e["total_retries"] == 3));
}

#[test]
fn without_task_retries_a_failing_task_is_not_retried() {
    let out = Run::new("retries_run_defaults.rhai").output();
    out.assert_code(1);
    assert_eq!(out.events.attempts("flaky"), 1);
    assert!(out.stderr.contains("attempt 1 failed"), "{}", out.stderr);
}

#[test]
fn task_retries_minus_one_retries_until_success() {
    let out = Run::new("retries_run_defaults.rhai").args(["--task-retries", "-1", "--retry-interval", "0"]).output();
    out.assert_code(0);
    assert_eq!(out.result(), json!(4));
    assert_eq!(out.events.attempts("flaky"), 4);
    assert!(out.events.of_task("task_started", "flaky").all(|e| e["total_retries"] == -1));
}

#[test]
fn task_retries_option_is_the_default_for_graph_tasks_until_the_script_sets_its_own() {
    let out =
        Run::new("retries_graph_defaults.rhai").args(["--task-retries", "2", "--retry-interval", "0.05"]).output();
    out.assert_code(0);
    assert_eq!(out.result(), json!({"defaults": {"total_retries": 2, "retry_interval": 0.05}, "own": 7, "result": 3}));
    assert_eq!(out.events.attempts("flaky"), 3);
    assert_eq!(out.events.of_task("task_started", "own").next().unwrap()["total_retries"], 7);
}

#[test]
fn by_default_tasks_are_not_retried() {
    let out = Run::new("retries_graph_defaults.rhai").output();
    out.assert_code(1);
    assert_eq!(out.events.attempts("flaky"), 1);
    assert_eq!(out.events.of_task("task_failed", "flaky").next().unwrap()["total_retries"], 0);
}

#[test]
fn the_default_retry_interval_is_one_second() {
    let out = Run::new("retries_graph_defaults.rhai").args(["--task-retries", "1"]).output();
    out.assert_code(1);
    assert_eq!(out.events.attempts("flaky"), 2);
    assert_eq!(out.events.of_task("task_rescheduled", "flaky").next().unwrap()["retry_after"], 1.0);
}

#[test]
fn total_retries_minus_one_on_a_task_retries_until_success() {
    let out = Run::new("retries_unlimited.rhai").output();
    out.assert_code(0);
    assert_eq!(out.result(), json!("done"));
    let (retries, _) = attempts(&out.events, "eventually");
    assert_eq!(retries, [0, 1, 2, 3]);
}

#[test]
fn operation_retry_waits_its_seconds_and_skips_on_failure() {
    let out = Run::new("retries_operation_retry.rhai").param("total_retries", 5).output();
    out.assert_code(0);
    assert_eq!(out.result(), json!({"outcome": "succeeded", "calls": 3, "handler_calls": 0}));
    let rescheduled: Vec<_> = out.events.of_task("task_rescheduled", "poll_api").collect();
    assert_eq!(rescheduled.len(), 2);
    assert!(rescheduled.iter().all(|e| e["retry_after"] == 0.2), "its own seconds, not retry_interval");
    assert_eq!(rescheduled[0]["error"], "the API says: try later");
}

#[test]
fn operation_retry_still_counts_against_total_retries() {
    let out = Run::new("retries_operation_retry.rhai").param("total_retries", 1).output();
    out.assert_code(0);
    let result = out.result();
    assert_eq!(result["calls"], 2);
    assert_eq!(result["handler_calls"], 0, "on_failure is not called for operation_retry");
    assert!(result["outcome"].as_str().unwrap().contains("try later"), "{result}");
    assert_eq!(out.events.outcome("poll_api"), Some("task_failed"));
}

#[test]
fn non_recoverable_is_never_retried() {
    let out = Run::new("retries_non_recoverable.rhai").output();
    out.assert_code(1);
    assert_eq!(out.events.attempts("fatal"), 1);
    assert_eq!(out.events.of_task("task_rescheduled", "fatal").count(), 0);
    let failed = out.events.of_task("task_failed", "fatal").next().unwrap();
    assert_eq!(failed["error"], "the volume is gone");
    assert_eq!(failed["total_retries"], 5);
}

/// Runs the verdicts fixture with `verdict`; returns the outcome's result and events.
fn verdict(name: &str) -> (Value, Events) {
    let out = Run::new("retries_verdicts.rhai").param("verdict", name).output();
    out.assert_code(0);
    (out.result(), out.events)
}

#[test]
fn on_failure_cont_and_ignore_let_dependents_run() {
    for name in ["cont", "ignore"] {
        let (result, ev) = verdict(name);
        assert_eq!(result, json!({"seen": [0], "outcome": "succeeded"}), "{name}");
        let failed = ev.of_task("task_failed", "flaky").next().unwrap();
        assert_eq!(failed["ignored"], true, "{name}");
        assert_eq!(ev.attempts("flaky"), 1, "{name}: not retried");
        ev.assert_before("flaky", "dependent");
    }
}

#[test]
fn on_failure_fail_fails_at_once_despite_retries_left() {
    let (result, ev) = verdict("fail");
    assert_eq!(result["seen"], json!([0]));
    assert!(result["outcome"].as_str().unwrap().contains("task `flaky` failed: nope"), "{result}");
    assert_eq!(ev.attempts("flaky"), 1);
    assert!(ev.of_task("task_failed", "flaky").all(|e| e.get("ignored").is_none_or(|i| i == false)));
    assert!(!ev.started("dependent"));
}

#[test]
fn on_failure_retry_retries_while_retries_remain() {
    let (result, ev) = verdict("retry");
    assert_eq!(result["seen"], json!([0, 1, 2]));
    assert_eq!(ev.attempts("flaky"), 3);
    assert_eq!(ev.outcome("flaky"), Some("task_failed"));
    assert!(!ev.started("dependent"));
}

#[test]
fn on_failure_retry_ignoring_limit_retries_past_total_retries() {
    let (result, ev) = verdict("retry_ignoring_limit");
    // The handler says fail() from current_retries 4 on: five attempts against total_retries 2.
    assert_eq!(result["seen"], json!([0, 1, 2, 3, 4]));
    let (retries, ids) = attempts(&ev, "flaky");
    assert_eq!(retries, [0, 1, 2, 3, 4]);
    assert_eq!(distinct(&ids), 5);
}

#[test]
fn on_failure_returning_nothing_keeps_the_default_rules() {
    let (result, ev) = verdict("none");
    assert_eq!(result["seen"], json!([0, 1, 2]));
    assert_eq!(ev.attempts("flaky"), 3);
}

#[test]
fn an_on_failure_handler_that_throws_fails_the_task() {
    let (result, ev) = verdict("throw");
    assert_eq!(result["seen"], json!([0]));
    assert_eq!(ev.attempts("flaky"), 1, "a throwing handler is fail(), not retry()");
    let failed = ev.of_task("task_failed", "flaky").next().unwrap();
    assert!(failed["error"].as_str().unwrap().contains("the handler broke"), "{failed}");
    assert!(!ev.started("dependent"));
}

#[test]
fn on_success_retry_is_a_polling_loop() {
    let out = Run::new("retries_on_success_polling.rhai").output();
    out.assert_code(0);
    assert_eq!(out.result(), json!(3));
    let (retries, ids) = attempts(&out.events, "poll");
    assert_eq!(retries, [0, 1, 2]);
    assert_eq!(distinct(&ids), 3);
    assert_eq!(out.events.of_task("task_rescheduled", "poll").count(), 2);
    assert_eq!(out.events.outcome("poll"), Some("task_succeeded"));
    out.events.assert_before("poll", "after_poll");
}

#[test]
fn an_on_success_handler_that_throws_fails_the_task() {
    let out = Run::new("retries_on_success_throws.rhai").output();
    out.assert_code(1);
    assert_eq!(out.events.outcome("checked"), Some("task_failed"));
    let failed = out.events.of_task("task_failed", "checked").next().unwrap();
    assert!(failed["error"].as_str().unwrap().contains("the result looks wrong"), "{failed}");
    assert!(!out.events.started("after_checked"));
}

/// For each attempt (`task_id`) of `task`, the `current_retries` of each of its events.
fn retries_by_attempt(ev: &Events, task: &str) -> Vec<Vec<u64>> {
    let mut by_attempt: Vec<(u64, Vec<u64>)> = Vec::new();
    for e in ev.0.iter().filter(|e| e["task"] == task) {
        let (id, retries) = (e["task_id"].as_u64().unwrap(), e["current_retries"].as_u64().unwrap());
        match by_attempt.iter_mut().find(|(i, _)| *i == id) {
            Some((_, seen)) => seen.push(retries),
            None => by_attempt.push((id, vec![retries])),
        }
    }
    by_attempt.into_iter().map(|(_, seen)| seen).collect()
}

// The second run of a retried subgraph said current_retries 1 in its task_started and 0 in
// its task_succeeded.
#[test]
fn every_event_of_a_subgraph_run_carries_that_run_s_current_retries() {
    let out = Run::new("subgraph_retries.rhai").output();
    out.assert_code(0);
    assert_eq!(retries_by_attempt(&out.events, "provision"), [vec![0, 0], vec![1, 1]]);
    let out = Run::new("subgraph_retries_exhausted.rhai").output();
    out.assert_code(1);
    assert_eq!(retries_by_attempt(&out.events, "provision"), [vec![0, 0], vec![1, 1]]);
}

// A subgraph ran again at once ("retry in 0s"), whatever its retry_interval.
#[test]
fn a_subgraph_waits_its_retry_interval_before_running_again() {
    let out = Run::new("subgraph_retry_interval.rhai").param("interval", 0.4).output();
    out.assert_code(0);
    let rescheduled = out.events.of_task("task_rescheduled", "provision").next().unwrap();
    assert_eq!(rescheduled["retry_after"], 0.4);
    let second = out.events.of_task("task_started", "provision").nth(1).unwrap();
    let gap = seconds_between(rescheduled["ts"].as_str().unwrap(), second["ts"].as_str().unwrap());
    assert!(gap >= 0.35, "the second run started {gap}s after the first failed");
}

// --retry-interval was ignored by subgraphs too.
#[test]
fn retry_interval_option_is_the_default_for_subgraphs() {
    let out = Run::new("subgraph_retry_interval.rhai").args(["--retry-interval", "0.3"]).output();
    out.assert_code(0);
    assert_eq!(out.result(), json!(2));
    let rescheduled = out.events.of_task("task_rescheduled", "provision").next().unwrap();
    assert_eq!(rescheduled["retry_after"], 0.3);
}

/// Runs the subgraph verdicts fixture with `verdict`; returns the outcome's result and events.
fn subgraph_verdict(name: &str) -> (Value, Events) {
    let out = Run::new("subgraph_verdicts.rhai").param("verdict", name).output();
    out.assert_code(0);
    (out.result(), out.events)
}

// A subgraph's on_failure was accepted and never called.
#[test]
fn a_subgraph_s_on_failure_cont_and_ignore_let_its_dependents_run() {
    for name in ["cont", "ignore"] {
        let (result, ev) = subgraph_verdict(name);
        assert_eq!(result, json!({"seen": [0], "outcome": "succeeded"}), "{name}");
        let failed = ev.of_task("task_failed", "deploy").next().unwrap();
        assert_eq!(failed["ignored"], true, "{name}");
        assert_eq!(ev.attempts("deploy"), 1, "{name}: not retried");
        ev.assert_before("deploy", "dependent");
    }
}

#[test]
fn a_subgraph_s_on_failure_fail_fails_it_at_once_despite_retries_left() {
    let (result, ev) = subgraph_verdict("fail");
    assert_eq!(result["seen"], json!([0]));
    assert!(result["outcome"].as_str().unwrap().contains("task `install` failed: nope"), "{result}");
    assert_eq!(ev.attempts("deploy"), 1);
    assert!(!ev.started("dependent"));
}

#[test]
fn a_subgraph_s_on_failure_retry_runs_it_again_while_retries_remain() {
    let (result, ev) = subgraph_verdict("retry");
    assert_eq!(result["seen"], json!([0, 1, 2]));
    assert_eq!(ev.attempts("deploy"), 3);
    assert_eq!(ev.attempts("install"), 3);
    assert_eq!(ev.outcome("deploy"), Some("task_failed"));
    assert!(!ev.started("dependent"));
}

#[test]
fn a_subgraph_s_on_failure_retry_ignoring_limit_runs_it_past_total_retries() {
    let (result, ev) = subgraph_verdict("retry_ignoring_limit");
    assert_eq!(result["seen"], json!([0, 1, 2, 3, 4]));
    let (retries, ids) = attempts(&ev, "deploy");
    assert_eq!(retries, [0, 1, 2, 3, 4]);
    assert_eq!(distinct(&ids), 5);
}

#[test]
fn a_subgraph_s_on_failure_returning_nothing_keeps_the_default_rules() {
    let (result, ev) = subgraph_verdict("none");
    assert_eq!(result["seen"], json!([0, 1, 2]));
    assert_eq!(ev.attempts("deploy"), 3);
}

#[test]
fn a_subgraph_s_on_failure_that_throws_fails_it() {
    let (result, ev) = subgraph_verdict("throw");
    assert_eq!(result["seen"], json!([0]));
    assert_eq!(ev.attempts("deploy"), 1, "a throwing handler is fail(), not retry()");
    let failed = ev.of_task("task_failed", "deploy").next().unwrap();
    assert!(failed["error"].as_str().unwrap().contains("the handler broke"), "{failed}");
    assert!(!ev.started("dependent"));
}

// A subgraph's on_success was accepted and never called: it could not poll.
#[test]
fn a_subgraph_s_on_success_retry_runs_it_again() {
    let out = Run::new("subgraph_on_success_polling.rhai").output();
    out.assert_code(0);
    assert_eq!(out.result(), json!(3));
    let ev = &out.events;
    let (retries, _) = attempts(ev, "status");
    assert_eq!(retries, [0, 1, 2]);
    assert_eq!(ev.attempts("check"), 3);
    assert_eq!(ev.of_task("task_rescheduled", "status").count(), 2);
    ev.assert_before("status", "after");
    assert_eq!(ev.attempts("after"), 1);
}

// An attempt that succeeded and that on_success sent round again emitted only its
// task_rescheduled: the success (contract section 2, "an attempt succeeded") was never told.
#[test]
fn each_polling_attempt_that_succeeded_says_so_before_its_rescheduling() {
    let out = Run::new("retries_on_success_polling.rhai").output();
    out.assert_code(0);
    let mut shapes: Vec<(u64, Vec<&str>)> = Vec::new();
    for e in out.events.0.iter().filter(|e| e["task"] == "poll") {
        let (id, kind) = (e["task_id"].as_u64().unwrap(), e["type"].as_str().unwrap());
        match shapes.iter_mut().find(|(i, _)| *i == id) {
            Some((_, seen)) => seen.push(kind),
            None => shapes.push((id, vec![kind])),
        }
    }
    let shapes: Vec<Vec<&str>> = shapes.into_iter().map(|(_, s)| s).collect();
    let polled = vec!["task_started", "task_succeeded", "task_rescheduled"];
    assert_eq!(shapes, [polled.clone(), polled, vec!["task_started", "task_succeeded"]]);
    let results: Vec<&Value> = out.events.of_task("task_succeeded", "poll").map(|e| &e["result"]).collect();
    assert_eq!(results, [&json!(1), &json!(2), &json!(3)]);
}

// With those successes told, the console and the store must still count `poll` once.
#[test]
fn a_polling_task_counts_as_one_task_done() {
    let out = Run::new("retries_on_success_polling.rhai").output();
    out.assert_code(0);
    assert!(out.stderr.contains("tasks: 2 succeeded, 2 retries"), "{}", out.stderr);
    let id = out.events.0[0]["execution_id"].as_str().unwrap().to_string();
    let store = out.scratch.path().join("store");
    let show = cli(&["executions", "show", &id, "--store", store.to_str().unwrap()]);
    show.assert_code(0);
    assert!(show.stdout.contains("tasks       2: 2 succeeded\n"), "{}", show.stdout);
}

// Its success now told before its rescheduling, a polled task must still not pass for done:
// resumed, it runs again instead of replaying that success.
#[test]
fn a_polled_task_whose_wait_was_cancelled_runs_again_on_resume() {
    let mut run = Run::new("retries_polling_cancelled.rhai").spawn();
    let rescheduled =
        run.wait_for("the rescheduling of `poll`", |e| e["type"] == "task_rescheduled" && e["task"] == "poll");
    run.interrupt();
    let (out, _) = run.finish_within(Duration::from_secs(10));
    out.assert_code(3);
    let id = rescheduled["execution_id"].as_str().unwrap();
    let (store, events) = (out.scratch.path().join("store"), out.scratch.path().join("resumed.jsonl"));
    let resumed = cli(&[
        "executions",
        "resume",
        id,
        "--store",
        store.to_str().unwrap(),
        "--events-json",
        events.to_str().unwrap(),
    ]);
    resumed.assert_code(0);
    let events = Events::read(&events);
    assert_eq!(events.attempts("poll"), 1, "{}", events.summary());
    assert_eq!(events.outcome("poll"), Some("task_succeeded"));
}
