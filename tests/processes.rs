//! Shell and exec tasks: environment, folder, exit codes, timeouts, concurrency limits.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{cli, process_is_gone, wait_for_pid, Run};

#[test]
fn shell_and_exec_get_env_and_cwd_and_exec_uses_no_shell() {
    let run = Run::new("process_env_cwd.rhai");
    let dir = run.scratch().canonicalize().unwrap();
    let out = run.param("dir", dir.display()).output();
    out.assert_code(0);
    assert_eq!(
        out.result(),
        json!({
            "shell": format!("hello from {}\n", dir.display()),
            "exec": "two words|$HOME|*|",
            "code": 0,
            "path_kept": 0,
        })
    );
}

#[test]
fn a_non_zero_exit_fails_with_the_result_map_as_the_error_value() {
    let out = Run::new("process_nonzero_exit.rhai").output();
    out.assert_code(0);
    let err = out.result();
    assert_eq!(err["kind"], "recoverable");
    assert_eq!(err["value"], json!({"code": 3, "stdout": "partial\n", "stderr": "disk quota exceeded\n"}));
    let message = err["message"].as_str().unwrap();
    assert!(message.contains("exited with code 3") && message.contains("disk quota exceeded"), "{message}");
}

#[test]
fn a_failing_shell_task_fails_the_workflow_with_its_stderr() {
    let out = Run::new("process_nonzero_uncaught.rhai").output();
    out.assert_code(1);
    let failed = out.events.of_task("task_failed", "migrate").next().unwrap();
    assert!(failed["error"].as_str().unwrap().contains("relation users already exists"), "{failed}");
    assert!(out.stderr.contains("task `migrate` failed"), "{}", out.stderr);
}

#[test]
fn a_timeout_kills_the_whole_process_group_and_is_retried() {
    let run = Run::new("process_timeout.rhai");
    let marker = run.scratch().join("marker");
    let out = run.param("marker", marker.display()).output();
    out.assert_code(0);
    let error = out.result();
    assert!(error.as_str().unwrap().contains("timed out after 0.3s"), "{error}");
    // A timeout is recoverable: retried once, then failed.
    assert_eq!(out.events.attempts("slowpoke"), 2);
    assert_eq!(out.events.of_task("task_rescheduled", "slowpoke").count(), 1);
    // The background child would have written the marker 0.8 s after each attempt started.
    std::thread::sleep(Duration::from_millis(1200));
    assert!(!marker.exists(), "a child of the timed-out shell survived and wrote the marker");
}

#[test]
fn the_timeout_property_works_like_the_option() {
    let out = Run::new("process_timeout_property.rhai").output();
    out.assert_code(1);
    let failed = out.events.of_task("task_failed", "sleeper").next().unwrap();
    assert!(failed["error"].as_str().unwrap().contains("timed out after 0.2s"), "{failed}");
}

#[test]
fn exec_of_a_missing_program_fails_recoverably() {
    let out = Run::new("process_missing_program.rhai").output();
    out.assert_code(1);
    assert_eq!(out.events.attempts("missing"), 3, "retried like any recoverable failure");
    let failed = out.events.of_task("task_failed", "missing").next().unwrap();
    assert!(failed["error"].as_str().unwrap().contains("/nonexistent/rhaiflow-test-program"), "{failed}");
}

#[test]
fn independent_shell_tasks_overlap_without_a_limit() {
    // The control for the next test: without --max-concurrency the jobs do run side by side.
    let out = Run::new("process_concurrency.rhai").output();
    out.assert_code(0);
    assert!(out.events.overlapped("job0", "job1") && out.events.overlapped("job2", "job3"), "{}", out.events.summary());
}

#[test]
fn max_concurrency_one_runs_one_task_at_a_time() {
    let out = Run::new("process_concurrency.rhai").args(["--max-concurrency", "1"]).output();
    out.assert_code(0);
    let mut running = 0;
    for e in &out.events.0 {
        match e["type"].as_str().unwrap() {
            "task_started" => running += 1,
            "task_succeeded" | "task_failed" | "task_rescheduled" => running -= 1,
            _ => {}
        }
        assert!(running <= 1, "two tasks ran at once:\n{}", out.events.summary());
    }
    assert_eq!(out.events.of_type("task_succeeded").count(), 4);
}

#[test]
fn max_concurrency_also_limits_standard_mode_tasks() {
    let out = Run::new("standard_tasks_start_at_once.rhai").args(["--max-concurrency", "1"]).output();
    out.assert_code(0);
    assert!(!out.events.overlapped("slow_a", "slow_b"), "{}", out.events.summary());
}

#[test]
fn a_timeout_stops_a_closure_task_that_never_ends() {
    let out = Run::new("process_closure_timeout.rhai").args(["--max-operations", "0"]).output();
    out.assert_code(1);
    let failed = out.events.of_task("task_failed", "busy").next().unwrap();
    assert!(failed["error"].as_str().unwrap().contains("timed out after 0.3s"), "{failed}");
}

// SIGKILL of rhaiflow left its shell task's `sleep 30` running as an orphan: a resume then ran
// the task again beside it.
#[test]
fn a_task_process_dies_with_a_killed_rhaiflow() {
    let run = Run::new("process_outlived_by_nothing.rhai");
    let pidfile = run.scratch().join("pid");
    let mut run = run.param("pidfile", pidfile.display()).spawn();
    run.wait_for_start("long");
    let pid = wait_for_pid(&pidfile);
    run.signal(libc::SIGKILL);
    let deadline = Instant::now() + Duration::from_secs(2);
    while !process_is_gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if !process_is_gone(pid) {
        // SAFETY: clean up the orphan `sleep` before failing.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        panic!("the shell task's `sleep 30` (pid {pid}) outlived the SIGKILL of rhaiflow");
    }
}

// A task printing 200 MB held ~1 GB of memory, grew the store by ~190 MB and wrote a 191 MB
// event line; `t.get()` then failed "Length of string too large".
#[test]
fn a_task_printing_50_mb_keeps_a_bounded_tail_and_a_small_store() {
    let out = Run::new("process_output_50mb.rhai").param("limit", 4).output();
    out.assert_code(0);
    let result = out.result();
    let len = result["len"].as_u64().unwrap();
    assert!(len > 1 << 20 && len <= (1 << 20) + 64, "kept {len} bytes");
    assert_eq!(result["truncated"], true);
    assert!(result["head"].as_str().unwrap().starts_with("[… 48951424 bytes cut …]"), "{result}");
    assert_eq!(result["small"]["stdout"], "[… 6 bytes cut …]\nghij");
    assert_eq!(result["small"]["stderr"], "err");
    let store = std::fs::read_dir(out.store_arg()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum::<u64>();
    assert!(store < 8 << 20, "the store holds {store} bytes");
    // Its output events are bounded too (50 MB without a newline comes in 16 KiB pieces up
    // to 1 MiB), and the last says where they were cut.
    let big: Vec<_> = out.events.of_task("task_output", "big").collect();
    assert!(big.len() > 1 && big.len() <= 10_001, "{} output events", big.len());
    assert_eq!(big.last().unwrap()["truncated"], true);
    let small: Vec<_> = out.events.of_task("task_output", "small").map(|e| e["line"].clone()).collect();
    assert_eq!(small.len(), 2, "{small:?}");
}

// What a task started in the background outlived the SIGKILL of rhaiflow (PR_SET_PDEATHSIG
// reaches only the task's own process), and a resume ran the task again beside it.
#[test]
fn a_resume_kills_what_the_previous_run_left_running() {
    let run = Run::new("process_left_behind.rhai");
    let pidfile = run.scratch().join("pid");
    let mut run = run.param("pidfile", pidfile.display()).spawn();
    run.wait_for_start("starts_a_daemon");
    let daemon = wait_for_pid(&pidfile);
    let (id, store) = {
        let started = run.wait_for("workflow_started", |e| e["type"] == "workflow_started");
        (started["execution_id"].as_str().unwrap().to_string(), run.store_arg())
    };
    run.kill();
    assert!(!process_is_gone(daemon), "the background `sleep` should have outlived rhaiflow here");
    let resume = cli(&["executions", "resume", &id, "--store", &store]);
    let gone = process_is_gone(daemon);
    if !gone {
        // SAFETY: clean up the orphan `sleep` before failing.
        unsafe { libc::kill(daemon, libc::SIGKILL) };
    }
    resume.assert_code(0);
    assert!(gone, "the previous run's `sleep` (pid {daemon}) still ran after the resume");
    assert!(resume.stderr.contains(&format!("left running: process(es) [{daemon}]")), "{}", resume.stderr);
}
