//! Standard mode (section 4): a task starts when it is built, `get()` waits for it.

use serde_json::json;

use crate::support::Run;

#[test]
fn tasks_start_at_once_and_get_returns_their_results() {
    let out = Run::new("standard_tasks_start_at_once.rhai").output();
    out.assert_code(0);
    assert_eq!(out.result(), json!({"answer": 42, "stdout": "hi\n", "code": 0}));
    let ev = &out.events;
    // Both sleeps started before either ended, and the script went on meanwhile.
    assert!(ev.overlapped("slow_a", "slow_b"), "{}", ev.summary());
    assert!(ev.start_seq("answer") < ev.end_seq("slow_a"), "{}", ev.summary());
    assert!(ev.start_seq("greet") < ev.end_seq("slow_a"), "{}", ev.summary());
}

#[test]
fn get_of_a_failed_task_throws_an_error_the_script_can_catch() {
    let out = Run::new("standard_get_of_failed_task.rhai").output();
    out.assert_code(0);
    assert_eq!(
        out.result(),
        json!({
            "bad": {"message": "the disk is full", "kind": "recoverable"},
            "fatal": {"message": "no such volume", "kind": "non_recoverable"},
            "state": "failed",
        })
    );
    assert_eq!(out.events.outcome("bad"), Some("task_failed"));
}

#[test]
fn get_of_a_failed_task_that_nobody_catches_fails_the_workflow() {
    let out = Run::new("standard_get_uncaught.rhai").output();
    out.assert_code(1);
    assert_eq!(out.events.final_status(), Some("workflow_failed"));
    let failed = out.events.of_type("workflow_failed").next().unwrap();
    assert!(failed["error"].as_str().unwrap().contains("the disk is full"), "{failed}");
    assert!(out.stderr.contains("the disk is full"), "{}", out.stderr);
    assert!(out.stdout.trim().is_empty(), "no result on stdout: {}", out.stdout);
}

#[test]
fn the_run_waits_for_tasks_the_script_started_when_it_returns() {
    let run = Run::new("standard_waits_for_started_tasks.rhai");
    let marker = run.scratch().join("marker");
    let out = run.param("marker", marker.display()).output();
    out.assert_code(0);
    assert_eq!(out.result(), json!("returned"));
    assert!(marker.exists(), "the background task finished before the process ended");
    let succeeded = out.events.end_seq("background");
    let finished = out.events.of_type("workflow_succeeded").next().unwrap()["seq"].as_u64().unwrap();
    assert!(succeeded < finished, "{}", out.events.summary());
}

#[test]
fn graph_mode_after_a_standard_task_ran_throws() {
    let out = Run::new("standard_then_graph_mode.rhai").output();
    out.assert_code(1);
    assert!(out.stderr.contains("graph_mode() must come before any task runs"), "{}", out.stderr);
    assert!(!out.events.started("late"));
}

// A standard-mode task that failed while the script never called get() on it ended the
// workflow "succeeded" (exit 0): an unnoticed failure passed for a success.
#[test]
fn a_failure_nobody_waited_for_fails_the_workflow() {
    let out = Run::new("standard_unnoticed_failure.rhai").output();
    out.assert_code(1);
    assert_eq!(out.events.final_status(), Some("workflow_failed"));
    let failed = out.events.of_type("workflow_failed").next().unwrap();
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("`cleanup`") && error.contains("never waited"), "{error}");
    assert_eq!(out.events.outcome("report"), Some("task_succeeded"));
}

#[test]
fn a_failure_the_script_caught_with_get_does_not_fail_the_workflow() {
    let out = Run::new("standard_get_of_failed_task.rhai").output();
    out.assert_code(0);
}

// Closures that block in get() hold a script thread each; with more of them than threads,
// the pool must start spare threads or the run never ends.
#[test]
fn more_blocked_closures_than_script_threads_still_finish() {
    let out = Run::new("standard_closures_wait_on_a_task.rhai").output();
    out.assert_code(0);
    assert_eq!(out.result(), json!(15));
}

// With --max-concurrency 1 a closure waiting in get() for a task started after it held the
// only place: that task never started, and the run hung until SIGKILL.
#[test]
fn a_closure_waiting_in_get_gives_its_concurrency_place_up() {
    let out = Run::new("standard_get_under_max_concurrency.rhai").args(["--max-concurrency", "1"]).output();
    out.assert_code(0);
    assert_eq!(out.result(), "b\n");
    assert!(out.events.started("b"));
}
