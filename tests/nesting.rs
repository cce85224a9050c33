//! Values nested too deep: what rhaiflow converts or stores is held to 64 levels, and what a
//! script builds deeper than that no longer overflows a stack.

use crate::support::{cli, Outcome, Run};

/// The recorded status line of the run's execution (`executions show`).
fn recorded_status(run: &Outcome) -> String {
    let show = cli(&["executions", "show", &run.execution_id(), "--store", &run.store_arg()]);
    show.stdout.lines().find(|l| l.starts_with("status")).unwrap_or_default().to_string()
}

/// `[[…[]…]]`: `levels` levels of JSON arrays.
fn nested_json(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

// A closure returning an array nested 8,000 deep aborted the process (stack overflow, exit
// 134) and left the execution `crashed`; a 100-deep one was converted and stored as it was.
#[test]
fn a_task_result_nested_too_deep_fails_the_task_and_the_run() {
    let out = Run::new("nested_task_result.rhai").param("depth", 100).output();
    out.assert_code(1);
    let failed = out.events.of_task("task_failed", "deep").next().expect("task_failed of `deep`").clone();
    assert!(failed["error"].as_str().unwrap().contains("more than 64 levels deep"), "{failed}");
    assert_eq!(recorded_status(&out), "status      failed");
}

// A result at the limit is still a result.
#[test]
fn a_task_result_at_the_nesting_limit_is_kept() {
    let out = Run::new("nested_task_result.rhai").param("depth", 63).output();
    out.assert_code(0);
}

// The workflow's own value nested too deep was stored as it was, past what any reader of
// the store (JSON parsers stop at 128 levels) can read back.
#[test]
fn a_workflow_result_nested_too_deep_fails_the_run() {
    let out = Run::new("nested_workflow_result.rhai").param("depth", 100).output();
    out.assert_code(1);
    assert!(out.stderr.contains("the workflow's result nests arrays and maps more than 64 levels"), "{}", out.stderr);
    assert_eq!(recorded_status(&out), "status      failed");
}

// A `-p` value nested 100 deep ran the workflow with it; one nested past the JSON parser's
// own limit (128) was silently taken as a string.
#[test]
fn a_parameter_nested_too_deep_is_refused_before_anything_runs() {
    for levels in [100, 300] {
        let out = Run::new("params_echo.rhai").param("layers", nested_json(levels)).output();
        out.assert_code(2);
        assert!(out.stderr.contains("the parameter `layers` nests arrays and maps more than 64"), "{}", out.stderr);
        assert!(out.events.of_type("workflow_started").next().is_none(), "{}", out.events.summary());
    }
}

// Printing, comparing and interpolating an array nested 1,500 deep in a closure (20,000 at
// the top level) overflowed the stack inside Rhai: SIGABRT, exit 134, the execution `crashed`.
#[test]
fn printing_comparing_and_interpolating_a_deep_array_does_not_overflow_the_stack() {
    let out = Run::new("nested_print_compare_interpolate.rhai").param("depth", 1500).output();
    out.assert_code(0);
    assert_eq!(recorded_status(&out), "status      succeeded");
}
