//! Where output goes: the result as JSON on stdout, or the events with `--events-json -`;
//! human lines on stderr, fewer with `-q`; log levels in the events.

use serde_json::json;

use crate::support::{cli, Events, Run};

#[test]
fn the_result_goes_to_stdout_as_json() {
    let out = Run::new("events_and_logs.rhai").output();
    out.assert_code(0);
    assert_eq!(out.stdout, "{\"answer\":42}\n");
    assert!(out.stderr.contains("[info] info line") && out.stderr.contains("[warn] warn line"), "{}", out.stderr);
    assert!(out.stderr.contains("[event] standard mode event"), "{}", out.stderr);
}

#[test]
fn logs_and_events_have_their_levels_and_messages() {
    let out = Run::new("events_and_logs.rhai").output();
    out.assert_code(0);
    let logs: Vec<_> = out.events.of_type("log").map(|e| (e["level"].clone(), e["message"].clone())).collect();
    assert_eq!(
        logs,
        [
            (json!("info"), json!("info line")),
            (json!("debug"), json!("debug line")),
            (json!("warn"), json!("warn line")),
            (json!("error"), json!("error line")),
        ]
    );
    let events: Vec<_> = out.events.of_type("workflow_event").map(|e| e["message"].clone()).collect();
    assert_eq!(events, [json!("standard mode event")]);
    assert_eq!(out.events.of_type("workflow_succeeded").next().unwrap()["result"], json!({"answer": 42}));
}

#[test]
fn events_json_dash_puts_only_the_events_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let out = cli(&["run", "events_and_logs.rhai", "--events-json", "-", "--store", dir.path().to_str().unwrap()]);
    out.assert_code(0);
    let events =
        Events(out.stdout.lines().map(|l| serde_json::from_str(l).expect("every stdout line is an event")).collect());
    events.check_contract();
    assert_eq!(events.final_status(), Some("workflow_succeeded"));
    assert_eq!(events.of_type("task_succeeded").count(), 1);
}

#[test]
fn quiet_keeps_logs_failures_and_the_summary_only() {
    let out = Run::new("retries_exhausted.rhai").args(["-q"]).output();
    out.assert_code(1);
    assert!(!out.stderr.contains("start   hopeless"), "{}", out.stderr);
    assert!(!out.stderr.contains("retry   hopeless"), "{}", out.stderr);
    assert!(out.stderr.contains("FAILED  hopeless"), "{}", out.stderr);
    assert!(out.stderr.contains("workflow failed"), "{}", out.stderr);

    let out = Run::new("events_and_logs.rhai").args(["-q"]).output();
    assert!(out.stderr.contains("[warn] warn line") && !out.stderr.contains("debug line"), "{}", out.stderr);
}

// A quiet console only counts successes, so no event is made for them: the summary still
// counts every task that succeeded (subgraphs left out), as a run that shows each one does.
#[test]
fn a_quiet_run_counts_the_successes_it_does_not_show() {
    let summary = |script: &str, quiet: bool| {
        let mut args = vec!["run", script, "--ephemeral"];
        args.extend(quiet.then_some("-q"));
        let out = cli(&args);
        out.assert_code(0);
        let line = out.stderr.lines().find(|l| l.contains("workflow succeeded")).expect("a summary").to_string();
        line.split(" · ").nth(1).expect("the counts").to_string()
    };
    for (script, counts) in
        [("graph_subgraphs.rhai", "tasks: 5 succeeded"), ("closure_layers.rhai", "tasks: 400 succeeded")]
    {
        assert_eq!(summary(script, true), counts);
        assert_eq!(summary(script, false), counts);
    }
}

// A task that threw "the execution was cancelled" in a run nobody cancelled was told by its
// message: the console said "cancelled impostor" and counted no failure.
#[test]
fn a_task_throwing_the_cancel_message_is_shown_failed_not_cancelled() {
    let out = Run::new("throws_the_cancel_message.rhai").output();
    out.assert_code(1);
    assert!(out.stderr.contains("FAILED  impostor: the execution was cancelled"), "{}", out.stderr);
    assert!(!out.stderr.contains("cancelled impostor"), "{}", out.stderr);
}

#[test]
fn ctx_names_the_execution_and_the_workflow_of_the_events() {
    let out = Run::new("context.rhai").args(["-p", "zone=b"]).output();
    out.assert_code(0);
    let result = out.result();
    let started = out.events.of_type("workflow_started").next().unwrap();
    assert_eq!(result["execution_id"], started["execution_id"]);
    assert_eq!(result["workflow_id"], "context");
    assert_eq!(started["workflow"], "context");
    assert_eq!(result["resume"], false);
    assert_eq!(result["parameters"], json!({"zone": "b"}));
}

// `rhaiflow run … 2>&1 | head -1`: the reader went away and the run hung until SIGKILL (a
// panic in the thread printing the progress), or exited 101.
#[test]
fn a_run_whose_reader_goes_away_ends_quietly() {
    let bin = assert_cmd::cargo::cargo_bin("rhaiflow");
    let store = tempfile::tempdir().unwrap();
    let pipeline = format!(
        "'{}' run output_many_lines.rhai --store '{}' 2>&1 | head -1; echo \"exit=${{PIPESTATUS[0]}}\"",
        bin.display(),
        store.path().display()
    );
    let output = std::process::Command::new("timeout")
        .args(["20", "bash", "-c", &pipeline])
        .current_dir(crate::support::fixtures())
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(printed.starts_with("execution "), "{printed}");
    assert!(printed.contains("exit=0"), "the run ends on its own, successfully: {printed}");
    let db = rusqlite::Connection::open(store.path().join("rhaiflow.db")).unwrap();
    let status: String = db.query_row("SELECT status FROM executions", [], |r| r.get(0)).unwrap();
    assert_eq!(status, "succeeded", "the workflow ran to its end");
}

// In a deployment run every instance's tasks were `start   lifecycle.configure`, and the
// summary's first failure did not say which instance had failed.
#[test]
fn a_deployment_run_names_the_instance_of_each_task() {
    let out = Run::new("install").args(["--blueprint", "deployments/web_on_vm.yaml"]).ephemeral().output();
    out.assert_code(1);
    let stderr = out.normalised_stderr();
    let refused = "`scripts/refuse_to_start.sh` exited with code 1: port 8080 is taken";
    for line in [
        "[T]  start   vm_1 lifecycle.create".to_string(),
        "[T]  ok      vm_1 lifecycle.create ([T])".to_string(),
        "[T]  start   web_1 lifecycle.start".to_string(),
        format!("[T]  FAILED  web_1 lifecycle.start: {refused}"),
        format!("  first failure: task `lifecycle.start` on web_1: {refused}"),
    ] {
        assert!(stderr.lines().any(|l| l == line), "no line `{line}` in:\n{stderr}");
    }
    // The workflow's error (its event, the diagnostic, `executions show`) did not say either.
    let failed = out.events.of_type("workflow_failed").next().unwrap()["error"].as_str().unwrap().to_string();
    assert!(failed.contains("task `lifecycle.start` on web_1 failed"), "{failed}");
    assert!(stderr.contains("× task `lifecycle.start` on web_1 failed"), "{stderr}");
}
