//! Cancellation (sections 1, 3, 6): the first SIGINT/SIGTERM is graceful, the second forces;
//! runaway scripts are stopped.

use std::time::Duration;

use crate::support::{cli, copy_bundle, process_is_gone, wait_for_pid, Background, Outcome, Run};

#[test]
fn sigint_during_a_sleep_cancels_and_later_tasks_never_start() {
    let mut run = Run::new("cancel_sleep_then_later.rhai").spawn();
    run.wait_for_start("wait");
    std::thread::sleep(Duration::from_millis(200));
    run.interrupt();
    let (out, took) = run.finish_within(Duration::from_secs(10));
    out.assert_code(3);
    assert!(took < Duration::from_secs(5), "a sleep ends at once on cancel, took {took:?}");
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
    assert!(!out.events.started("later"));
    assert!(out.stderr.contains("the execution was cancelled"), "{}", out.stderr);
}

// A run started a thread of its own to look in the store for `executions cancel`, on the way
// to its first task. It is a task of the run's runtime, and the request still reaches the run.
#[test]
fn a_cancel_from_another_shell_reaches_a_run_without_a_watcher_thread() {
    let mut run = Run::new("cancel_sleep_then_later.rhai").spawn();
    let started = run.wait_for_start("wait");
    let threads = run.thread_names();
    assert!(threads.iter().any(|t| t.starts_with("rhaiflow-exec")), "{threads:?}");
    assert!(!threads.iter().any(|t| t.starts_with("rhaiflow-cancel")), "{threads:?}");
    let (id, store) = (started["execution_id"].as_str().unwrap().to_string(), run.store_arg());
    cli(&["executions", "cancel", &id, "--store", &store]).assert_code(0);
    let (out, took) = run.finish_within(Duration::from_secs(10));
    out.assert_code(3);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
    assert!(!out.events.started("later"));
}

#[test]
fn sigterm_cancels_like_sigint() {
    let mut run = Run::new("cancel_sleep_then_later.rhai").spawn();
    run.wait_for_start("wait");
    run.signal(libc::SIGTERM);
    let (out, _) = run.finish_within(Duration::from_secs(10));
    out.assert_code(3);
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
    assert!(!out.events.started("later"));
}

#[test]
fn a_graceful_cancel_lets_the_running_shell_task_finish() {
    let mut run = Run::new("cancel_graceful_shell.rhai").spawn();
    run.wait_for_start("finishing");
    std::thread::sleep(Duration::from_millis(100));
    run.interrupt();
    let (out, _) = run.finish_within(Duration::from_secs(10));
    out.assert_code(3);
    assert_eq!(out.events.outcome("finishing"), Some("task_succeeded"), "{}", out.events.summary());
    assert!(!out.events.started("after"));
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
}

#[test]
fn two_signals_kill_a_long_shell_task_and_its_children_promptly() {
    let run = Run::new("cancel_long_shell.rhai");
    let pidfile = run.scratch().join("pid");
    let mut run = run.param("pidfile", pidfile.display()).spawn();
    run.wait_for_start("long");
    let pid = wait_for_pid(&pidfile);
    run.interrupt();
    std::thread::sleep(Duration::from_millis(200));
    run.interrupt();
    let (out, took) = run.finish_within(Duration::from_secs(20));
    out.assert_code(3);
    assert!(took < Duration::from_secs(5), "a forced cancel stops `sleep 30` promptly, took {took:?}");
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
    assert_eq!(out.events.outcome("long"), Some("task_failed"));
    // The shell's child is in the task's process group: it is killed too.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !process_is_gone(pid) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !process_is_gone(pid) {
        // SAFETY: clean up the leftover `sleep` before failing.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("the shell task's child `sleep 30` (pid {pid}) survived the forced cancel");
    }
}

#[test]
fn a_loop_polling_has_cancel_request_ends_as_cancelled() {
    let mut run = Run::new("cancel_polling_loop.rhai").spawn();
    run.wait_for("the log `tick 2`", |e| e["type"] == "log" && e["message"] == "tick 2");
    run.interrupt();
    let (out, took) = run.finish_within(Duration::from_secs(10));
    out.assert_code(3);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
    let ticks = out.events.of_type("log").filter(|e| e["message"].as_str().unwrap().starts_with("tick")).count();
    assert!((3..50).contains(&ticks), "the loop stopped soon after the signal: {ticks} ticks");
}

#[test]
fn a_script_may_catch_the_cancel_clean_up_and_rethrow_it() {
    let mut run = Run::new("cancel_caught_and_rethrown.rhai").spawn();
    run.wait_for_start("wait");
    run.interrupt();
    let (out, _) = run.finish_within(Duration::from_secs(10));
    out.assert_code(3);
    assert!(
        out.events.of_type("log").any(|e| e["message"] == "cleaning up after the cancel"),
        "{}",
        out.events.summary()
    );
    assert!(!out.events.of_type("log").any(|e| e["message"] == "not a cancel"));
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
}

#[test]
fn a_runaway_script_is_stopped_by_max_operations() {
    let out = Run::new("runaway_loop.rhai").args(["--max-operations", "100000"]).output();
    out.assert_code(1);
    assert!(out.stderr.contains("limit of 100000 operations (--max-operations)"), "{}", out.stderr);
    assert!(out.stderr.contains("runaway_loop.rhai:4:"), "{}", out.stderr);
}

#[test]
fn a_runaway_script_is_stopped_by_two_sigints() {
    let mut run = Run::new("runaway_loop.rhai").args(["--max-operations", "0"]).spawn();
    run.wait_for("the log `spinning`", |e| e["type"] == "log" && e["message"] == "spinning");
    run.interrupt();
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (out, took) = run.finish_within(Duration::from_secs(10));
    out.assert_code(3);
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
}

#[test]
fn a_runaway_task_closure_is_stopped_by_two_sigints() {
    let mut run = Run::new("runaway_closure.rhai").args(["--max-operations", "0"]).spawn();
    run.wait_for_start("spin");
    let (out, took) = force_with_signals(run);
    out.assert_code(3);
    assert!(took < FORCED_CANCEL_BOUND, "an endless loop stops within a second of the forced cancel, took {took:?}");
    assert_eq!(out.events.outcome("spin"), Some("task_failed"));
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
}

#[test]
fn a_runaway_task_closure_fails_its_task_at_max_operations() {
    let out = Run::new("runaway_closure.rhai").args(["--max-operations", "10000"]).output();
    out.assert_code(1);
    assert_eq!(out.events.outcome("spin"), Some("task_failed"));
}

#[test]
fn a_cancel_ends_the_wait_before_a_retry() {
    let mut run = Run::new("retries_cancel_during_wait.rhai").spawn();
    run.wait_for("the first failure of `flaky`", |e| e["type"] == "task_rescheduled" && e["task"] == "flaky");
    run.interrupt();
    let (out, took) = run.finish_within(Duration::from_secs(20));
    out.assert_code(3);
    assert!(took < Duration::from_secs(5), "the 30 s retry wait ends at once on cancel, took {took:?}");
    assert_eq!(out.events.attempts("flaky"), 1, "no retry starts after the cancel");
    assert!(!out.events.started("after"));
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
}

// A cancel that came while the script's end waited for a task it never waited for with get()
// ended the execution "succeeded" (exit 0), the task failed with "the execution was cancelled".
#[test]
fn a_cancel_while_the_script_s_end_waits_for_its_tasks_ends_the_execution_cancelled() {
    let mut run = Run::new("cancel_while_the_end_waits.rhai").spawn();
    run.wait_for_start("background");
    run.interrupt();
    let (out, took) = run.finish_within(Duration::from_secs(10));
    out.assert_code(3);
    assert!(took < Duration::from_secs(5), "a sleep ends at once on cancel, took {took:?}");
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
    assert!(out.stdout.trim().is_empty(), "no result on stdout: {}", out.stdout);
}

// A standard-mode task whose retry wait a cancel ended kept the error of its last attempt:
// get() threw that error, and the execution ended "failed" (exit 1), not cancelled.
#[test]
fn a_cancel_during_a_standard_mode_retry_wait_ends_the_execution_cancelled() {
    let mut run = Run::new("cancel_during_a_standard_retry_wait.rhai")
        .args(["--task-retries", "5", "--retry-interval", "30"])
        .spawn();
    run.wait_for("the first failure of `flaky`", |e| e["type"] == "task_rescheduled" && e["task"] == "flaky");
    run.interrupt();
    let (out, took) = run.finish_within(Duration::from_secs(10));
    out.assert_code(3);
    assert!(took < Duration::from_secs(5), "the 30 s retry wait ends at once on cancel, took {took:?}");
    assert_eq!(out.events.attempts("flaky"), 1, "no retry starts after the cancel");
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
}

// A subgraph ran again at once after failing, so no cancel could come during its wait; now
// that it waits its retry_interval, a cancel must end that wait at once and rerun nothing.
#[test]
fn a_cancel_ends_the_wait_before_a_subgraph_runs_again() {
    let mut run = Run::new("subgraph_retry_cancel_during_wait.rhai").spawn();
    run.wait_for("the first failure of `provision`", |e| e["type"] == "task_rescheduled" && e["task"] == "provision");
    run.interrupt();
    let (out, took) = run.finish_within(Duration::from_secs(20));
    out.assert_code(3);
    assert!(took < Duration::from_secs(5), "the 30 s retry wait ends at once on cancel, took {took:?}");
    assert_eq!(out.events.attempts("provision"), 1, "no run starts after the cancel");
    assert_eq!(out.events.attempts("check"), 1);
    assert!(!out.events.started("after"));
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"));
}

// The hang guarantee: whatever the script threads are doing, a forced cancel ends the process
// within a second and the execution is recorded as cancelled.

/// How soon after a forced cancel the process must be gone.
const FORCED_CANCEL_BOUND: Duration = Duration::from_secs(1);

/// Asks for a graceful cancel, then forces it; how long the process took to end after that.
fn force_with_signals(run: Background) -> (Outcome, Duration) {
    run.interrupt();
    std::thread::sleep(Duration::from_millis(200));
    run.interrupt();
    run.finish_within(Duration::from_secs(20))
}

#[track_caller]
fn assert_recorded_cancelled(out: &Outcome) {
    let status: String = out.store_file().query_row("SELECT status FROM executions", [], |row| row.get(0)).unwrap();
    assert_eq!(status, "cancelled", "{}", out.stderr);
}

/// A copy of the `stuck_reader` bundle whose module `pipe` is a named pipe nobody writes: a
/// closure that imports it is stuck in a read that no cancel or timeout can interrupt.
fn stuck_reader(into: &std::path::Path) -> std::path::PathBuf {
    let bundle = copy_bundle("stuck_reader", into);
    let fifo = std::ffi::CString::new(bundle.join("pipe.rhai").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path and a plain mode.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0, "mkfifo failed");
    bundle
}

// Two closures waiting for each other with get(), and the script waiting for one of them:
// before, get() waited on a condition variable that no cancel reached, and the process
// ignored every signal until SIGKILL.
#[test]
fn a_forced_cancel_ends_closures_deadlocked_in_get_within_a_second() {
    let mut run = Run::new("hang_closures_wait_for_each_other.rhai").spawn();
    run.wait_for_start("first");
    run.wait_for_start("second");
    let (out, took) = force_with_signals(run);
    out.assert_code(3);
    assert!(took < FORCED_CANCEL_BOUND, "took {took:?} after the forced cancel");
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"), "{}", out.events.summary());
    assert_eq!(out.events.outcome("first"), Some("task_failed"));
    assert_recorded_cancelled(&out);
}

// A closure stuck in a read that never returns cannot be stopped at all: the process ends
// anyway, the execution recorded as cancelled.
#[test]
fn a_forced_cancel_ends_a_closure_stuck_in_a_native_call_within_a_second() {
    let scratch = tempfile::tempdir().unwrap();
    let mut run = Run::new(stuck_reader(scratch.path())).args(["stuck"]).spawn();
    run.wait_for_start("reads_a_pipe");
    let (out, took) = force_with_signals(run);
    out.assert_code(3);
    assert!(took < FORCED_CANCEL_BOUND, "took {took:?} after the forced cancel");
    assert!(out.stderr.contains("did not stop within"), "{}", out.stderr);
    assert_eq!(out.events.final_status(), Some("workflow_cancelled"), "{}", out.events.summary());
    assert_recorded_cancelled(&out);
}

// `executions cancel --force` from another shell reached the run, but a stuck closure kept it
// alive for good.
#[test]
fn cancel_force_from_another_shell_ends_a_stuck_closure_within_a_second() {
    let scratch = tempfile::tempdir().unwrap();
    let mut run = Run::new(stuck_reader(scratch.path())).args(["stuck"]).spawn();
    let started = run.wait_for_start("reads_a_pipe");
    let (id, store) = (started["execution_id"].as_str().unwrap().to_string(), run.store_arg());
    cli(&["executions", "cancel", &id, "--force", "--store", &store]).assert_code(0);
    let (out, took) = run.finish_within(Duration::from_secs(20));
    out.assert_code(3);
    assert!(took < FORCED_CANCEL_BOUND, "took {took:?} after `executions cancel --force`");
    assert_recorded_cancelled(&out);
}

// A closure's timeout fired only at the script's next operation: stuck in a native call, the
// task ran past it for ever.
#[test]
fn a_timeout_fires_for_a_closure_stuck_in_a_native_call() {
    let scratch = tempfile::tempdir().unwrap();
    let run = Run::new(stuck_reader(scratch.path())).args(["stuck_with_timeout"]).spawn();
    let (out, took) = run.finish_within(Duration::from_secs(20));
    out.assert_code(1);
    assert!(took < Duration::from_secs(5), "the 0.5 s timeout fired after {took:?}");
    let failed = out.events.of_task("task_failed", "reads_a_pipe").next().expect("the task failed");
    assert!(failed["error"].as_str().unwrap().contains("timed out after 0.5s"), "{failed}");
}
