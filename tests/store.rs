//! The durable store: executions recorded, inspected, cancelled and resumed across processes.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use assert_cmd::Command;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn rhaiflow() -> Command {
    Command::cargo_bin("rhaiflow").unwrap()
}

fn spawn(args: &[&str]) -> Child {
    StdCommand::cargo_bin("rhaiflow").unwrap().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

fn events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Waits (bounded) until `path` holds an event matching `pred`.
fn wait_for_event(path: &Path, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(e) = events(path).into_iter().find(|e| pred(e)) {
            return e;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no matching event in {} within 20 s", path.display());
}

fn store_events(store: &Path, id: &str) -> Vec<serde_json::Value> {
    let out =
        rhaiflow().args(["executions", "events", id, "--json", "--store", store.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A small deterministic generator: the "random" kill moments are the same on every run.
fn delays(seed: u64, count: usize) -> Vec<Duration> {
    let mut x = seed;
    (0..count)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            Duration::from_millis(60 + (x >> 33) % 200)
        })
        .collect()
}

/// Kills `child` (a run of execution `id`) after each of `kills` moments drawn from `seed`,
/// resuming it each time, and returns the last resume's exit code.
fn kill_and_resume(mut child: Child, id: &str, store: &str, seed: u64, kills: usize) -> Option<i32> {
    for delay in delays(seed, kills) {
        std::thread::sleep(delay);
        child.kill().unwrap();
        child.wait().unwrap();
        child = spawn(&["executions", "resume", id, "--store", store, "-q"]);
    }
    child.wait().unwrap().code()
}

/// The stored events of `id`, checked to record `tasks` successes, each once, and to end
/// with the workflow's success.
fn each_success_recorded_once(store: &Path, id: &str, tasks: usize) -> Vec<serde_json::Value> {
    let mut successes: HashMap<String, usize> = HashMap::new();
    let recorded = store_events(store, id);
    for e in recorded.iter().filter(|e| e["type"] == "task_succeeded") {
        *successes.entry(e["task"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert_eq!(successes.len(), tasks, "every task's success is recorded");
    assert!(successes.values().all(|&n| n == 1), "no success is recorded twice: {successes:?}");
    assert_eq!(recorded.last().unwrap()["type"], "workflow_succeeded");
    recorded
}

// Killed with SIGKILL at several moments and resumed each time, the workflow ends with every
// line written at least once, every task's success recorded exactly once, and success.
#[test]
fn killed_again_and_again_then_resumed_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, out, ev) = (dir.path().join("store"), dir.path().join("lines.txt"), dir.path().join("events.jsonl"));
    let (store_s, out_s, ev_s) = (store.to_str().unwrap(), out.to_str().unwrap(), ev.to_str().unwrap());
    let script = fixture("append_lines.rhai");
    let param = format!("out={out_s}");
    let child = spawn(&["run", &script, "-p", &param, "--store", store_s, "--events-json", ev_s, "-q"]);
    let id = wait_for_event(&ev, |e| e["type"] == "workflow_started")["execution_id"].as_str().unwrap().to_string();
    assert_eq!(kill_and_resume(child, &id, store_s, 7, 4), Some(0), "the last resume finishes the workflow");

    let written = std::fs::read_to_string(&out).unwrap();
    let lines: std::collections::HashSet<&str> = written.lines().collect();
    for n in 0..300 {
        assert!(lines.contains(n.to_string().as_str()), "line {n} is missing");
    }
    let recorded = each_success_recorded_once(&store, &id, 300);
    let seqs: Vec<u64> = recorded.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq keeps increasing across resumes");
}

// The same with closure tasks, whose first attempt runs straight on a script thread and
// whose success the scheduler finishes only once it is committed: after SIGKILLs and
// resumes, every success is recorded exactly once and the workflow ends.
#[test]
fn killed_closure_tasks_resume_with_every_success_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ev) = (dir.path().join("store"), dir.path().join("events.jsonl"));
    let (store_s, ev_s) = (store.to_str().unwrap(), ev.to_str().unwrap());
    let child = spawn(&["run", &fixture("closure_layers.rhai"), "--store", store_s, "--events-json", ev_s, "-q"]);
    let id = wait_for_event(&ev, |e| e["type"] == "workflow_started")["execution_id"].as_str().unwrap().to_string();
    assert_eq!(kill_and_resume(child, &id, store_s, 11, 3), Some(0), "the last resume finishes the workflow");
    each_success_recorded_once(&store, &id, 400);
}

// `executions cancel ID` from another process reaches the run through the store.
#[test]
fn cancel_from_another_shell_stops_the_run_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ev) = (dir.path().join("store"), dir.path().join("events.jsonl"));
    let mut child = spawn(&[
        "run",
        &fixture("store_long_sleep.rhai"),
        "--store",
        store.to_str().unwrap(),
        "--events-json",
        ev.to_str().unwrap(),
    ]);
    let started = wait_for_event(&ev, |e| e["type"] == "task_started" && e["task"] == "long");
    let id = started["execution_id"].as_str().unwrap();
    let asked = Instant::now();
    rhaiflow().args(["executions", "cancel", id, "--store", store.to_str().unwrap()]).assert().success();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(asked.elapsed() < Duration::from_secs(3), "took {:?}", asked.elapsed());
    let all = events(&ev);
    assert!(all.iter().any(|e| e["type"] == "workflow_cancelled"));
    assert!(!all.iter().any(|e| e["type"] == "task_started" && e["task"] == "after"));
}

// list and show tell what ran; a failed execution can be resumed, and a changed script is
// refused with exit code 2 and says what differs.
#[test]
fn list_show_and_a_changed_script_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("s.db");
    let store_s = store.to_str().unwrap();
    let script = dir.path().join("flow.rhai");
    std::fs::write(&script, std::fs::read_to_string(fixture("store_fails_once.rhai")).unwrap()).unwrap();
    let out = rhaiflow()
        .args(["run", script.to_str().unwrap(), "--store", store_s, "-p", "fail=true"])
        .assert()
        .code(1)
        .get_output()
        .clone();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("resume with: rhaiflow executions resume"), "{stderr}");

    let list = rhaiflow().args(["executions", "list", "--store", store_s]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(list.contains("flow") && list.contains("failed") && list.contains("1/3"), "{list}");
    let id = list.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_string();

    let show = rhaiflow().args(["executions", "show", &id[..8], "--store", store_s]).output().unwrap();
    let show = String::from_utf8_lossy(&show.stdout).to_string();
    assert!(show.contains("{\"fail\":true}") && show.contains("deploy") && show.contains("failed"), "{show}");

    // The script changes the name of the second task: resume refuses it.
    let changed = std::fs::read_to_string(&script).unwrap().replace("\"deploy\"", "\"deploy_v2\"");
    std::fs::write(&script, changed).unwrap();
    let refused =
        rhaiflow().args(["executions", "resume", &id, "--store", store_s]).assert().code(2).get_output().clone();
    let text = String::from_utf8_lossy(&refused.stderr);
    assert!(text.contains("different graph") && text.contains("deploy_v2"), "{text}");
}

// A store file that is not a database gives a clear error, never a panic.
#[test]
fn a_corrupt_store_is_reported_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("broken.db");
    std::fs::write(&store, b"this is not a sqlite database, just some bytes".repeat(100)).unwrap();
    for args in [
        vec!["run".to_string(), fixture("store_fails_once.rhai"), "--store".into(), store.display().to_string()],
        vec!["executions".into(), "list".into(), "--store".into(), store.display().to_string()],
    ] {
        let out = rhaiflow().args(&args).assert().code(2).get_output().clone();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("damaged or not a rhaiflow store") || text.contains("not a database"), "{text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}

// A store written by rhaiflow before events were kept many to a row (schema 3) is refused
// with exit code 2 and says why, instead of being misread.
#[test]
fn a_store_of_an_older_format_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("old.db");
    std::fs::copy(fixture("store_schema_v3.db"), &store).unwrap();
    for args in [
        vec!["run".to_string(), fixture("store_fails_once.rhai"), "--store".into(), store.display().to_string()],
        vec!["executions".into(), "list".into(), "--store".into(), store.display().to_string()],
    ] {
        let out = rhaiflow().args(&args).assert().code(2).get_output().clone();
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains("another version of rhaiflow") && text.contains("format 3"), "{text}");
    }
}

// Several processes share one store file at once; none fails on a locked database.
#[test]
fn several_processes_write_one_store_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let script = fixture("store_many_small_tasks.rhai");
    let children: Vec<_> = (0..4)
        .map(|_| {
            StdCommand::cargo_bin("rhaiflow")
                .unwrap()
                .args(["run", &script, "-q", "--store", store.to_str().unwrap()])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("locked"), "{stderr}");
    }
    let list = rhaiflow().args(["executions", "list", "--store", store.to_str().unwrap()]).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout).to_string();
    assert_eq!(list.matches("succeeded").count(), 4, "{list}");
    assert_eq!(list.matches("200/200").count(), 4, "{list}");
}

// `executions events ID --follow` streams a running execution's events from another process
// and returns when it ends.
#[test]
fn events_follow_streams_until_the_execution_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ev) = (dir.path().join("store"), dir.path().join("events.jsonl"));
    let store_s = store.to_str().unwrap().to_string();
    let mut run =
        spawn(&["run", &fixture("store_follow.rhai"), "--store", &store_s, "--events-json", ev.to_str().unwrap()]);
    let id = wait_for_event(&ev, |e| e["type"] == "workflow_started")["execution_id"].as_str().unwrap().to_string();
    let follow = StdCommand::cargo_bin("rhaiflow")
        .unwrap()
        .args(["executions", "events", &id, "--follow", "--json", "--store", &store_s])
        .output()
        .unwrap();
    assert_eq!(run.wait().unwrap().code(), Some(0));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&follow.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let types: Vec<&str> = lines.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"workflow_started"));
    assert_eq!(types.last(), Some(&"workflow_succeeded"), "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "task_succeeded").count(), 3, "{types:?}");
}

// Two processes resuming one crashed execution at once: only one takes it over; the other
// is refused with exit code 2 instead of running the same tasks twice.
#[test]
fn two_resumes_of_one_execution_do_not_both_run() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ev) = (dir.path().join("store"), dir.path().join("events.jsonl"));
    let store_s = store.to_str().unwrap().to_string();
    let mut first =
        spawn(&["run", &fixture("store_long_sleep.rhai"), "--store", &store_s, "--events-json", ev.to_str().unwrap()]);
    let id = wait_for_event(&ev, |e| e["type"] == "task_started")["execution_id"].as_str().unwrap().to_string();
    first.kill().unwrap();
    first.wait().unwrap();
    let resumes: Vec<_> = (0..2)
        .map(|_| {
            StdCommand::cargo_bin("rhaiflow")
                .unwrap()
                .args(["executions", "resume", &id, "--store", &store_s, "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // The winner sleeps 20 s: cancel it once the loser has answered.
    std::thread::sleep(Duration::from_millis(1500));
    rhaiflow().args(["executions", "cancel", &id, "--force", "--store", &store_s]).assert().success();
    let codes: Vec<Option<i32>> = resumes.into_iter().map(|c| c.wait_with_output().unwrap().status.code()).collect();
    assert!(codes.contains(&Some(2)), "one resume is refused: {codes:?}");
    assert!(codes.contains(&Some(3)), "the other ran until cancelled: {codes:?}");
}
