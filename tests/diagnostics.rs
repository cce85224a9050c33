//! What a person sees when something is wrong: miette diagnostics with the file, line and
//! column, the source line underlined, and a plain sentence; snapshotted as rendered text.
//! Each fixture is run by its bare name from the fixtures folder, so the snapshots hold no
//! machine-specific path; execution ids and timings are normalised.

use insta::assert_snapshot;

use crate::support::{cli, cli_of, normalise, rhaiflow, Outcome, Run};

/// Runs a fixture without a store, so the output names no scratch path.
fn run(fixture: &str) -> Outcome {
    Run::new(fixture).ephemeral().output()
}

#[test]
fn compile_error_names_file_line_and_column_and_underlines_the_token() {
    let out = run("compile_error.rhai");
    out.assert_code(2);
    assert!(out.events.0.is_empty(), "nothing runs, not even the workflow");
    assert!(out.stderr.contains("[compile_error.rhai:2:32]"), "{}", out.stderr);
    assert_snapshot!("compile_error", out.normalised_stderr());
}

// An unknown function met while the script runs is a failure (exit 1), not "invalid input,
// nothing ran" (exit 2): it was 2, even after tasks had run and succeeded.
#[test]
fn an_unknown_function_fails_the_run() {
    let out = run("unknown_function.rhai");
    out.assert_code(1);
    assert_eq!(out.events.final_status(), Some("workflow_failed"));
    assert_snapshot!("unknown_function", out.normalised_stderr());
}

#[test]
fn wrong_argument_type_to_a_host_function_is_invalid_input() {
    let out = run("wrong_argument_type.rhai");
    out.assert_code(2);
    assert!(!out.events.started("nap"));
    assert_snapshot!("wrong_argument_type", out.normalised_stderr());
}

// To Rhai a call with arguments of the wrong types is a call of a function that does not
// exist: a failure met at run time, exit 1.
#[test]
fn wrong_argument_types_to_shell_fail_the_run() {
    let out = run("wrong_argument_shell.rhai");
    out.assert_code(1);
    assert_snapshot!("wrong_argument_shell", out.normalised_stderr());
}

#[test]
fn a_throwing_task_closure_names_the_task_the_throw_and_the_definition() {
    let out = run("task_throws.rhai");
    out.assert_code(1);
    assert!(!out.events.started("B"));
    assert!(out.stderr.contains("task `A` is defined here"), "{}", out.stderr);
    assert!(out.stderr.contains(" 5 │     throw \"cannot create volume\";"), "{}", out.stderr);
    assert!(out.stderr.contains("`A` failed here: cannot create volume"), "{}", out.stderr);
    assert_snapshot!("task_throws", out.normalised_stderr());
}

#[test]
fn a_cycle_is_invalid_input_naming_its_tasks_before_anything_runs() {
    let out = run("cycle.rhai");
    out.assert_code(2);
    assert_eq!(out.events.of_type("task_started").count(), 0);
    for task in ["`x`", "`y`", "`z`"] {
        assert!(out.stderr.contains(task), "the diagnostic names {task}:\n{}", out.stderr);
    }
    assert_snapshot!("cycle", out.normalised_stderr());
}

#[test]
fn a_cycle_through_a_subgraph_is_found_too() {
    // Without it, `inside` waits for `after_sg`, which waits for the subgraph holding `inside`:
    // a run that never ends.
    let out = run("cycle_through_subgraph.rhai");
    out.assert_code(2);
    assert_eq!(out.events.of_type("task_started").count(), 0);
    assert_snapshot!("cycle_through_subgraph", out.normalised_stderr());
}

#[test]
fn a_task_added_to_two_subgraphs_fails_the_workflow() {
    let out = run("task_in_two_subgraphs.rhai");
    out.assert_code(1);
    assert!(!out.events.started("shared"));
    assert_eq!(out.events.final_status(), Some("workflow_failed"));
    assert_snapshot!("task_in_two_subgraphs", out.normalised_stderr());
}

#[test]
fn a_dependency_on_a_task_not_in_the_graph_fails_the_workflow() {
    let out = run("dependency_not_in_graph.rhai");
    out.assert_code(1);
    assert!(!out.events.started("a"));
    assert_snapshot!("dependency_not_in_graph", out.normalised_stderr());
}

#[test]
fn the_operations_limit_names_the_loop() {
    let out = Run::new("runaway_loop.rhai").ephemeral().args(["--max-operations", "100000"]).output();
    out.assert_code(1);
    assert_snapshot!("operations_limit", out.normalised_stderr());
}

#[test]
fn an_uncaught_get_of_a_failed_task_points_at_the_script() {
    let out = run("standard_get_uncaught.rhai");
    out.assert_code(1);
    assert_snapshot!("standard_get_uncaught", out.normalised_stderr());
}

#[test]
fn check_accepts_a_good_script_and_runs_nothing() {
    let out = cli(&["check", "check_good.rhai"]);
    out.assert_code(0);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_snapshot!("check_good", normalise(&out.stderr));
}

#[test]
fn check_reports_a_compile_error_with_its_line() {
    let out = cli(&["check", "compile_error.rhai"]);
    out.assert_code(2);
    assert_snapshot!("check_compile_error", normalise(&out.stderr));
}

#[test]
fn check_reports_a_cycle() {
    let out = cli(&["check", "cycle.rhai"]);
    out.assert_code(2);
    assert!(out.stderr.contains("cycle") && out.stderr.contains("`x`"), "{}", out.stderr);
}

#[test]
fn check_reports_an_unknown_function() {
    let out = cli(&["check", "unknown_function.rhai"]);
    out.assert_code(2);
    assert!(out.stderr.contains("create_volume"), "{}", out.stderr);
}

#[test]
fn a_param_without_equals_sign_is_a_bad_command_line() {
    let out = cli(&["run", "check_good.rhai", "--ephemeral", "-p", "region"]);
    out.assert_code(2);
    assert_snapshot!("param_without_equals", normalise(&out.stderr));
}

#[test]
fn a_param_with_an_empty_name_is_a_bad_command_line() {
    let out = cli(&["run", "check_good.rhai", "--ephemeral", "-p", "=3"]);
    out.assert_code(2);
    assert!(out.stderr.contains("the parameter name is empty"), "{}", out.stderr);
}

#[test]
fn a_missing_script_is_invalid_input() {
    let out = cli(&["run", "no_such_script.rhai", "--ephemeral"]);
    out.assert_code(2);
    assert_snapshot!("missing_script", normalise(&out.stderr));
    let out = cli(&["check", "no_such_script.rhai"]);
    out.assert_code(2);
    assert!(out.stderr.contains("no_such_script.rhai"), "{}", out.stderr);
}

#[test]
fn an_unknown_option_is_a_bad_command_line() {
    let out = cli(&["run", "check_good.rhai", "--no-such-option"]);
    out.assert_code(2);
    assert!(out.stderr.contains("--no-such-option"), "{}", out.stderr);
}

#[test]
fn a_negative_retry_interval_is_a_bad_command_line() {
    let out = cli(&["run", "check_good.rhai", "--ephemeral", "--retry-interval", "-1"]);
    out.assert_code(2);
}

// A Rhai error raised inside a native function (here `map`) carries no position; the
// diagnostic then showed only "Data race detected on argument #2 of function 'map'", with no
// file, line or source.
#[test]
fn a_runtime_error_inside_a_map_closure_still_points_at_the_script() {
    let out = run("runtime_error_in_map_closure.rhai");
    out.assert_code(1);
    assert!(out.stderr.contains("runtime_error_in_map_closure.rhai:3:"), "{}", out.stderr);
}

// get() of a failed standard-mode task rethrows the task's error as it was: the diagnostic
// said only "the disk is full", without naming the task or the get() that surfaced it.
#[test]
fn an_uncaught_get_names_the_failed_task() {
    let out = run("standard_get_uncaught.rhai");
    out.assert_code(1);
    let diagnostic = &out.stderr[out.stderr.rfind("rhaiflow::").unwrap()..];
    assert!(diagnostic.contains("`bad`"), "{diagnostic}");
    let failed = out.events.of_type("workflow_failed").next().unwrap();
    assert!(failed["error"].as_str().unwrap().contains("bad"), "{failed}");
}

// The contract allows N ≥ 0 or -1 (unlimited); -2 was taken as unlimited without a word, so
// a typo turned into endless retries.
#[test]
fn task_retries_below_minus_one_is_a_bad_command_line() {
    let out = cli(&["run", "check_good.rhai", "--ephemeral", "--dry-run", "--task-retries", "-2"]);
    out.assert_code(2);
}

// "At most 0 tasks at once" cannot run anything; it was silently taken as 1.
#[test]
fn max_concurrency_zero_is_a_bad_command_line() {
    let out = cli(&["run", "check_good.rhai", "--ephemeral", "--dry-run", "--max-concurrency", "0"]);
    out.assert_code(2);
}

// Rhai names argument types as Rust does (`&str | ImmutableString | String`, `i64`); the
// diagnostic now uses the names a script author knows.
#[test]
fn wrong_argument_types_use_script_type_names() {
    let out = run("wrong_argument_shell.rhai");
    out.assert_code(1);
    assert!(out.stderr.contains("shell (string, int)"), "{}", out.stderr);
    assert!(!out.stderr.contains("ImmutableString") && !out.stderr.contains("i64"), "{}", out.stderr);
}

// Exit 2 promises that nothing ran; a run-time error after a task ran and succeeded said 2,
// "invalid input".
#[test]
fn a_runtime_error_after_a_task_ran_fails_the_run() {
    let out = Run::new("runtime_error_after_a_task.rhai").output();
    out.assert_code(1);
    assert_eq!(out.events.outcome("made"), Some("task_succeeded"));
    assert_eq!(out.events.final_status(), Some("workflow_failed"));
    assert!(out.stderr.contains("[runtime_error_after_a_task.rhai:4:1]"), "{}", out.stderr);
    let status: String = out.store_file().query_row("SELECT status FROM executions", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "failed");
}

// With Rhai's optimiser on, `limits.retries = 5` on a constant map became `3 = 5`, and the
// engine panicked ("this is a bug in rhaiflow") instead of refusing the assignment.
#[test]
fn assigning_into_a_constant_is_refused_where_it_is_written() {
    let out = run("assign_into_a_constant.rhai");
    out.assert_code(1);
    assert!(out.stderr.contains("Cannot modify constant limits"), "{}", out.stderr);
    assert!(out.stderr.contains("[assign_into_a_constant.rhai:3:1]"), "{}", out.stderr);
    assert!(!out.stderr.contains("bug in rhaiflow"), "{}", out.stderr);
}

#[test]
fn an_invalid_graph_once_a_graph_ran_fails_the_run() {
    let out = Run::new("invalid_graph_after_a_graph_ran.rhai").output();
    out.assert_code(1);
    assert!(out.stderr.contains("the graph has a cycle"), "{}", out.stderr);
    assert_eq!(out.events.outcome("first_graph"), Some("task_succeeded"));
}

/// A line that stands for a secret in a file a script must not be able to show.
const SECRET: &str = "SECRET=hunter2-do-not-print";

// `import "/proc/self/environ"` was refused, but the diagnostic read the named file from disk
// and printed its first line: the process's environment, secrets included.
#[test]
fn a_refused_import_never_prints_the_file_it_names() {
    let run = Run::new("import_proc_environ.rhai").ephemeral().env("RHAIFLOW_TEST_SECRET", SECRET).output();
    run.assert_code(2);
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    assert!(run.stderr.contains("[import_proc_environ.rhai:1:8]"), "{}", run.stderr);
    let check = cli_of(rhaiflow().args(["check", "import_proc_environ.rhai"]).env("RHAIFLOW_TEST_SECRET", SECRET));
    check.assert_code(2);
    assert!(!check.stderr.contains("hunter2"), "{}", check.stderr);
    assert_snapshot!("import_proc_environ", normalise(&check.stderr));
}

// A path built at run time (`import `${folder}/secret.txt``) showed the lines of that file
// around the import's line number.
#[test]
fn an_import_built_at_run_time_never_prints_the_file_it_names() {
    let scratch = tempfile::tempdir().unwrap();
    let lines: Vec<String> = (1..=10).map(|n| format!("{SECRET} line {n}")).collect();
    std::fs::write(scratch.path().join("secret.txt"), lines.join("\n")).unwrap();
    let folder = scratch.path().display().to_string();
    let out = Run::new("import_a_file_named_at_run_time.rhai").ephemeral().param("folder", &folder).output();
    out.assert_code(2);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
    assert!(out.stderr.contains("[import_a_file_named_at_run_time.rhai:5:8]"), "{}", out.stderr);
    assert_snapshot!("import_a_file_named_at_run_time", out.normalised_stderr().replace(&folder, "[FOLDER]"));
}

// A syntax error at the end of a generated 9,000-character line echoed the whole line (a
// 1.2 MB one filled the terminal with 1.2 MB).
#[test]
fn a_compile_error_on_a_long_line_shows_only_a_window_of_it() {
    let out = run("compile_error_on_a_long_line.rhai");
    out.assert_code(2);
    let longest = out.stderr.lines().map(|l| l.chars().count()).max().unwrap_or(0);
    assert!(longest < 200, "a line of {longest} characters:\n{}", out.stderr);
    assert!(out.stderr.contains("[compile_error_on_a_long_line.rhai:2:9017]"), "{}", out.stderr);
    assert_snapshot!("compile_error_on_a_long_line", out.normalised_stderr());
}

// The operations limit reached inside a task closure said only "Too many operations"; at the
// top level the diagnostic named the limit and the flag that sets it.
#[test]
fn an_operations_limit_reached_inside_a_task_names_the_limit() {
    let out = Run::new("runaway_closure.rhai").ephemeral().args(["--max-operations", "10000"]).output();
    out.assert_code(1);
    assert!(!out.stderr.contains("Too many operations"), "{}", out.stderr);
    let failed = out.events.of_task("task_failed", "spin").next().unwrap().to_string();
    assert!(failed.contains("limit of 10000 operations (--max-operations)"), "{failed}");
    assert_snapshot!("operations_limit_inside_a_task", out.normalised_stderr());
}

/// Runs `seconds_out_of_range.rhai` with `secs` given at `entry`.
fn seconds_at(entry: &str, secs: &str) -> Outcome {
    Run::new("seconds_out_of_range.rhai").ephemeral().param("entry", entry).param("secs", secs).output()
}

// `sleep("nap", 1e308)` panicked a tokio worker ("cannot convert float seconds to Duration"):
// the run never ended, and ignored Ctrl-C.
#[test]
fn a_sleep_longer_than_a_duration_holds_is_a_bad_argument() {
    let out = seconds_at("sleep", "1e308");
    out.assert_code(2);
    assert!(!out.events.started("nap"));
    assert_snapshot!("sleep_out_of_range", out.normalised_stderr());
}

// Timeouts and retry intervals out of range were taken: 1e308 panicked the executor when it
// fell due, a negative one was a wait of zero (a closure timed out at once).
#[test]
fn timeouts_and_retry_intervals_out_of_range_are_bad_arguments_at_their_line() {
    for (entry, secs, line) in [
        ("shell", "1e308", ":6:"),
        ("exec", "-1", ":7:"),
        ("retry_interval", "1e308", ":8:"),
        ("closure_timeout", "-0.5", ":9:"),
        ("closure_timeout", "1e20", ":9:"),
    ] {
        let out = seconds_at(entry, secs);
        out.assert_code(2);
        assert_eq!(out.events.of_type("task_started").count(), 0, "{entry}");
        assert!(out.stderr.contains("must be from 0 to 31536000 seconds"), "{entry}: {}", out.stderr);
        assert!(out.stderr.contains(&format!("seconds_out_of_range.rhai{line}")), "{entry}: {}", out.stderr);
    }
}

// `operation_retry("not yet", 1e308)` asked for a retry the executor's wait panicked on: the
// scheduler never heard back, and the run hung.
#[test]
fn an_operation_retry_out_of_range_fails_its_task() {
    let out = seconds_at("operation_retry", "1e308");
    out.assert_code(1);
    assert_eq!(out.events.outcome("later"), Some("task_failed"));
    assert_eq!(out.events.of_task("task_rescheduled", "later").count(), 0);
    assert!(out.stderr.contains("operation_retry's retry_after must be from 0 to"), "{}", out.stderr);
}

// `--retry-interval 1e308` was accepted (only negative and infinite ones were refused), and the
// first retry panicked the executor.
#[test]
fn a_retry_interval_option_out_of_range_is_a_bad_command_line() {
    for secs in ["1e308", "NaN", "inf", "-0.5"] {
        let out = cli(&["run", "check_good.rhai", "--ephemeral", &format!("--retry-interval={secs}")]);
        out.assert_code(2);
        assert!(out.stderr.contains("--retry-interval must be from 0 to 31536000 seconds"), "{secs}: {}", out.stderr);
    }
}

/// A script of `lets` statements `let vN = N;`, written into `dir`.
fn script_of_lets(dir: &std::path::Path, lets: usize) -> std::path::PathBuf {
    let path = dir.join("lets.rhai");
    std::fs::write(&path, (0..lets).map(|i| format!("let v{i} = {i};\n")).collect::<String>()).unwrap();
    path
}

// A 10 MB script was read and handed to Rhai's parser whole: it never finished compiling.
#[test]
fn a_script_over_the_size_limit_is_refused_at_once() {
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("huge.rhai");
    std::fs::write(&path, format!("// {}\n1\n", "x".repeat(5 << 20))).unwrap();
    let out = cli(&["run", path.to_str().unwrap(), "--ephemeral"]);
    out.assert_code(2);
    assert!(out.stderr.contains("a script or module may be at most 4 MiB"), "{}", out.stderr);
}

// Rhai's parser checks each `let` against every one before it: 60,000 of them compiled for
// half a minute (600,000: never), with no way to stop `run` or `check` but SIGKILL.
#[test]
fn a_script_whose_compile_runs_past_its_budget_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let path = script_of_lets(scratch.path(), 60_000);
    let started = std::time::Instant::now();
    let out = cli(&["check", path.to_str().unwrap()]);
    out.assert_code(2);
    assert!(started.elapsed() < std::time::Duration::from_secs(20), "took {:?}", started.elapsed());
    assert!(out.stderr.contains("did not compile within 10 s"), "{}", out.stderr);
}
