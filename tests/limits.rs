//! The limits an operator sets for a run (memory, tasks) and Rhai built-ins that used to slip
//! past them: each stops the script where it is, with a diagnostic naming the limit.

use std::time::Duration;

use crate::support::Run;

// 40 strings of 32 MiB took 1.35 GB, and nothing but the machine stopped a script that went
// on: Rhai's size limits bound one value, never what a script holds in all.
#[test]
fn a_script_hoarding_strings_stops_at_the_memory_limit() {
    let (out, peak) = Run::new("limit_memory_strings.rhai")
        .param("in_task", false)
        .args(["--max-memory", "256MiB"])
        .ephemeral()
        .spawn()
        .finish_measuring_memory();
    out.assert_code(1);
    assert!(out.stderr.contains("memory limit of 256 MiB (--max-memory)"), "{}", out.stderr);
    assert!(out.stderr.contains("rhaiflow::memory_limit"), "{}", out.stderr);
    // The limit counts what the process asked for; the allocator and the binary come on top.
    assert!(peak < 400 << 20, "peak resident memory {} MiB", peak >> 20);
    eprintln!("peak resident memory: {} MiB", peak >> 20);
}

// Inside a closure task the limit fails the task at once, with no retry.
#[test]
fn a_closure_task_over_the_memory_limit_fails_without_retries() {
    let out = Run::new("limit_memory_strings.rhai")
        .param("in_task", true)
        .args(["--max-memory", "256MiB", "--task-retries", "3", "--retry-interval", "0"])
        .output();
    out.assert_code(1);
    assert_eq!(out.events.attempts("hoard"), 1, "{}", out.events.summary());
    let failed = out.events.of_task("task_failed", "hoard").next().unwrap().clone();
    assert!(failed["error"].as_str().unwrap().contains("memory limit of 256 MiB"), "{failed}");
}

// An endless graph-building loop reached 5.9 GB before the operations limit stopped it.
#[test]
fn an_endless_graph_stops_at_the_task_limit() {
    let (out, peak) = Run::new("limit_endless_graph.rhai")
        .args(["--max-tasks", "50000"])
        .ephemeral()
        .spawn()
        .finish_measuring_memory();
    out.assert_code(1);
    assert!(out.stderr.contains("made 50000 tasks, the limit of one execution (--max-tasks)"), "{}", out.stderr);
    assert!(out.stderr.contains("limit_endless_graph.rhai:5:"), "{}", out.stderr);
    eprintln!("peak resident memory: {} MiB", peak >> 20);
}

// A limit is not an error a script can catch and carry on after.
#[test]
fn a_limit_cannot_be_caught() {
    let out = Run::new("limit_caught.rhai").args(["--max-tasks", "10"]).output();
    out.assert_code(1);
    assert!(!out.stderr.contains("went on") && !out.stderr.contains("caught after"), "{}", out.stderr);
    assert!(out.stderr.contains("made 10 tasks"), "{}", out.stderr);
}

// Rhai's own `sleep(1e308)` panicked inside the engine ("cannot convert float seconds to
// Duration").
#[test]
fn sleep_with_seconds_out_of_range_is_a_bad_argument_at_its_line() {
    for secs in ["1e308", "-1"] {
        let out = Run::new("builtin_sleep.rhai").param("in_task", false).param("secs", secs).output();
        out.assert_code(2);
        assert!(out.stderr.contains("sleep(secs):"), "{}", out.stderr);
        assert!(out.stderr.contains("builtin_sleep.rhai:5:"), "{}", out.stderr);
    }
}

// Rhai's own `sleep(600)` in a closure blocked its thread for ten minutes whatever the cancel.
#[test]
fn a_forced_cancel_ends_a_closure_in_sleep_at_once() {
    let mut run = Run::new("builtin_sleep.rhai").param("in_task", true).spawn();
    run.wait_for("the log `napping`", |e| e["type"] == "log" && e["message"] == "napping");
    run.interrupt();
    std::thread::sleep(Duration::from_millis(200));
    run.interrupt();
    let (out, took) = run.finish_within(Duration::from_secs(20));
    out.assert_code(3);
    assert!(took < Duration::from_millis(500), "took {took:?} after the forced cancel");
    assert!(!out.stderr.contains("did not stop within"), "{}", out.stderr);
}

// parse_json's error pointed at the line and column of the JSON text, shown in the script
// as if they were the script's own (here, line 7 of a 4-line script).
#[test]
fn bad_json_is_reported_at_the_parse_json_call() {
    let out = Run::new("parse_json_bad.rhai").output();
    out.assert_code(1);
    assert!(out.stderr.contains("parse_json: the text is not JSON: key must be a string at line 7"), "{}", out.stderr);
    assert!(out.stderr.contains("parse_json_bad.rhai:3:"), "{}", out.stderr);
}
