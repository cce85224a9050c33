//! The durable store: executions recorded, inspected, cancelled and resumed across processes.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use assert_cmd::Command;

use crate::support::{cli, Cli, Outcome, Run, SmallDisk};

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn rhaiflow() -> Command {
    Command::cargo_bin("rhaiflow").unwrap()
}

pub(crate) fn spawn(args: &[&str]) -> Child {
    StdCommand::cargo_bin("rhaiflow").unwrap().args(args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
}

fn events(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

/// Waits (bounded) until `path` holds an event matching `pred`.
pub(crate) fn wait_for_event(path: &Path, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
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
/// resuming it each time (with `more` arguments), and returns the last resume's exit code. A
/// run that ended before its moment came (a fast machine) is not killed or resumed again: its
/// own exit code is returned, 0 when it ended as the kill landed.
pub(crate) fn kill_and_resume(child: Child, id: &str, store: &str, seed: u64, kills: usize) -> Option<i32> {
    kill_and_resume_with(child, id, store, seed, kills, &[])
}

fn kill_and_resume_with(
    mut child: Child,
    id: &str,
    store: &str,
    seed: u64,
    kills: usize,
    more: &[&str],
) -> Option<i32> {
    for (resumes, delay) in delays(seed, kills).into_iter().enumerate() {
        std::thread::sleep(delay);
        if let Some(ended) = child.try_wait().unwrap() {
            return ended.code();
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if status_of(id, store) == "succeeded" {
            return Some(0);
        }
        let mut args = vec!["executions", "resume", id, "--store", store, "-q"];
        args.extend_from_slice(more);
        child = spawn(&args);
        wait_until_resumed(id, store, resumes + 1);
    }
    child.wait().unwrap().code()
}

/// What `executions show` says of execution `id`.
fn shown(id: &str, store: &str) -> String {
    let out = rhaiflow().args(["executions", "show", id, "--store", store]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The status `executions show` gives execution `id`.
fn status_of(id: &str, store: &str) -> String {
    let shown = shown(id, store);
    let status = shown.lines().find_map(|line| line.strip_prefix("status")).expect("a status line");
    status.trim().to_string()
}

/// Waits (bounded) until execution `id` was resumed `times`: a resume killed before it recorded
/// its start (a slow start on a busy machine) would not count as one.
fn wait_until_resumed(id: &str, store: &str, times: usize) {
    let want = format!("resumed     {times} time");
    let start = Instant::now();
    loop {
        if shown(id, store).contains(&want) {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the resume never recorded its start ({want})");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The stored events of `id`, checked to record `tasks` successes, each once, and to end
/// with the workflow's success.
pub(crate) fn each_success_recorded_once(store: &Path, id: &str, tasks: usize) -> Vec<serde_json::Value> {
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

// A run's process ends without checkpointing, so the WAL it left grew to ~4 MB, and the next
// process to open the store read and checksummed all of it (half of `executions list`). A WAL
// past 1 MiB is now copied into the database and started over: the file is cut back to 1 MiB,
// not to nothing, and the next runs' commits rewrite its blocks in place (an fsync that does
// not grow the file), while the next process reads only the frames written since.
#[test]
fn a_run_leaves_no_large_wal_for_the_next_process_to_read() {
    const RUNS_AFTER: usize = 4;
    let outcome = Run::new(fixture("many_long_lines.rhai")).args(["-q"]).output();
    outcome.assert_code(0);
    let wal = outcome.store.as_ref().unwrap().join("rhaiflow.db-wal");
    let wal_length = || std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(wal_length(), 1 << 20, "the WAL's file is cut back to 1 MiB");

    // Each run's process ends with the WAL left as it is: closing the last connection would
    // copy it into the database and remove it (it did, in one run of three, on a busy machine).
    for _ in 0..RUNS_AFTER {
        let next = Run::new(crate::support::example("hello.rhai"))
            .store_at(outcome.store.clone().unwrap())
            .args(["-q"])
            .output();
        next.assert_code(0);
        assert_eq!(wal_length(), 1 << 20, "the next run's commits rewrote the WAL's blocks, the file did not grow");
    }
    // Opening the file recovers the WAL: a checkpoint then counts the frames it found.
    let store = outcome.store_file();
    let (busy, frames): (i64, i64) =
        store.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
    assert_eq!(busy, 0);
    assert!(
        (2..40 * RUNS_AFTER as i64).contains(&frames),
        "the next process reads the frames written since, not 1 MiB: {frames}"
    );

    let logged: i64 =
        store.query_row("SELECT COUNT(*) FROM executions WHERE status = 'succeeded'", [], |r| r.get(0)).unwrap();
    assert_eq!(logged, 1 + RUNS_AFTER as i64, "every execution is recorded as it ended");
    let events = cli(&["executions", "events", &outcome.execution_id(), "--store", &outcome.store_arg()]);
    let printed = events.stdout.lines().filter(|l| l.contains(" log ") && l.contains("xxxx")).count();
    assert_eq!(printed, 1500, "every printed line is in the store");
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

// What `--events-json` showed a reader was contradicted after a SIGKILL: successes announced
// before their commit ran again on resume, under seq numbers the reader had already seen (637
// seq numbers reused in 100 kills). One events file across the run and its resumes must read
// as one history: seq only grows, and no task succeeds twice.
#[test]
fn what_a_reader_saw_is_never_contradicted_across_kills_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (store, out, ev) = (dir.path().join("store"), dir.path().join("lines.txt"), dir.path().join("events.jsonl"));
    let (store_s, out_s, ev_s) = (store.to_str().unwrap(), out.to_str().unwrap(), ev.to_str().unwrap());
    let param = format!("out={out_s}");
    let script = fixture("append_lines.rhai");
    let child = spawn(&["run", &script, "-p", &param, "--store", store_s, "--events-json", ev_s, "-q"]);
    let id = wait_for_event(&ev, |e| e["type"] == "workflow_started")["execution_id"].as_str().unwrap().to_string();
    let resumed = kill_and_resume_with(child, &id, store_s, 23, 5, &["--events-json", ev_s]);
    assert_eq!(resumed, Some(0), "the last resume finishes the workflow");

    let seen = events(&ev);
    let seqs: Vec<u64> = seen.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "a seq a reader saw is never used again: {seqs:?}");
    let mut successes: HashMap<&str, usize> = HashMap::new();
    for e in seen.iter().filter(|e| e["type"] == "task_succeeded") {
        *successes.entry(e["task"].as_str().unwrap()).or_default() += 1;
    }
    assert!(successes.values().all(|&n| n == 1), "a success a reader saw never runs again: {successes:?}");
    assert_eq!(seen.last().unwrap()["type"], "workflow_succeeded");
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

// `executions events ID --follow` of a run whose process died ended without a word, as if
// the run had finished.
#[test]
fn following_a_run_whose_process_died_says_it_crashed() {
    let dir = tempfile::tempdir().unwrap();
    let (store, ev) = (dir.path().join("store"), dir.path().join("events.jsonl"));
    let (store_s, ev_s) = (store.to_str().unwrap(), ev.to_str().unwrap());
    let mut child = spawn(&["run", &fixture("store_long_sleep.rhai"), "--store", store_s, "--events-json", ev_s]);
    let started = wait_for_event(&ev, |e| e["type"] == "task_started" && e["task"] == "long");
    child.kill().unwrap();
    child.wait().unwrap();
    let id = started["execution_id"].as_str().unwrap();
    let out = cli(&["executions", "events", id, "--follow", "--store", store_s]);
    out.assert_code(0);
    assert!(out.stdout.contains("long"), "the events so far are shown: {}", out.stdout);
    assert!(out.stderr.contains("crashed: its process"), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("rhaiflow executions resume {id}")), "{}", out.stderr);
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
    rhaiflow()
        .args(["executions", "cancel", id, "--store", store.to_str().unwrap()])
        .env("USER", "alice")
        .assert()
        .success();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3));
    assert!(asked.elapsed() < Duration::from_secs(3), "took {:?}", asked.elapsed());
    let all = events(&ev);
    // Who asked is named in the end.
    assert!(all.iter().any(|e| e["type"] == "workflow_cancelled" && e["by"] == "user alice"), "{all:?}");
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

// The store opens on a thread while the script compiles: a store that cannot be opened is
// still what a run reports, before the script's own errors, as when it was opened first.
#[test]
fn a_store_that_cannot_be_opened_is_reported_before_the_scripts_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("broken.db");
    std::fs::write(&store, b"this is not a sqlite database, just some bytes".repeat(100)).unwrap();
    let out = rhaiflow()
        .args(["run", &fixture("compile_error.rhai"), "--store", store.to_str().unwrap()])
        .assert()
        .code(2)
        .get_output()
        .clone();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("damaged or not a rhaiflow store") || text.contains("not a database"), "{text}");
    assert!(!text.contains("compile_error.rhai:"), "the script's error comes second: {text}");
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

// ---------------------------------------------------------------------------------------------
// A store that cannot write, and a store whose rows are damaged

/// `rhaiflow executions ARGS… --store STORE` of a run's store.
fn executions(run: &Outcome, args: &[&str]) -> Cli {
    let store = run.store_arg();
    let mut all = vec!["executions"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--store", &store]);
    cli(&all)
}

/// A run whose store could not record the success of `record_me`: it failed, said why, and
/// started nothing on top of that success.
#[track_caller]
fn assert_failed_on_the_store(run: &Outcome, store_error: &str) {
    run.assert_code(1);
    assert!(
        unwrapped(&run.stderr).contains(&format!("the execution store failed: {store_error}")),
        "the diagnostic names the store error:\n{}",
        run.stderr
    );
    assert!(!run.events.started("after"), "`after` ran on top of a success not on disk:\n{}", run.events.summary());
    assert_eq!(run.events.final_status(), Some("workflow_failed"), "{}", run.events.summary());
    assert!(!run.stderr.contains("workflow succeeded"), "{}", run.stderr);
}

/// Fails, inside SQLite, every commit that records a task's success, as a failing disk would.
/// (Such a commit counts the task done; the event's type is kept in binary, so it is not
/// looked for in the rows.)
const FAIL_SUCCESS_COMMITS: &str = "
    CREATE TRIGGER fail_success_commits BEFORE UPDATE OF tasks_done ON executions
    WHEN NEW.tasks_done > OLD.tasks_done
    BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END;";

// A commit that failed was printed once and then treated as done: `after` ran on top of a
// success that was not on disk, and the run ended "succeeded" with nothing recorded.
#[test]
fn a_failed_store_write_fails_the_run() {
    for closure in [true, false] {
        let first = Run::new("store_success_then_dependent.rhai").param("command", "exit 0").output();
        first.assert_code(0);
        first.alter_store(FAIL_SUCCESS_COMMITS);
        let run = Run::new("store_success_then_dependent.rhai")
            .store_at(first.store.clone().unwrap())
            .param("closure", closure)
            .param("command", "exit 0")
            .output();
        assert_failed_on_the_store(&run, "disk I/O error (injected)");

        // The record holds no success of `record_me`, and the execution is not `succeeded`.
        let id = run.execution_id();
        let show = executions(&run, &["show", &id]);
        show.assert_code(0);
        assert!(show.stdout.contains("status      failed"), "{}", show.stdout);
        assert!(!show.stdout.lines().any(|l| l.starts_with("record_me") && l.contains("succeeded")), "{}", show.stdout);
        assert!(!show.stdout.lines().any(|l| l.starts_with("after")), "{}", show.stdout);

        // Once the store writes again, a resume runs what was not recorded.
        run.alter_store("DROP TRIGGER fail_success_commits;");
        let resumed = executions(&run, &["resume", &id, "-q"]);
        resumed.assert_code(0);
        let show = executions(&run, &["show", &id]);
        assert!(show.stdout.contains("status      succeeded"), "{}", show.stdout);
    }
}

// The store could not record the success of `record_me`, yet the events file said
// `task_succeeded` and the console counted it ("tasks: 1 succeeded") while the run exited 1.
#[test]
fn a_success_the_store_did_not_record_is_not_reported() {
    for closure in [true, false] {
        let first = Run::new("store_success_then_dependent.rhai").param("command", "exit 0").output();
        first.alter_store(FAIL_SUCCESS_COMMITS);
        let run = Run::new("store_success_then_dependent.rhai")
            .store_at(first.store.clone().unwrap())
            .param("closure", closure)
            .param("command", "exit 0")
            .output();
        assert_failed_on_the_store(&run, "disk I/O error (injected)");
        let events = &run.events;
        assert_eq!(events.of_task("task_succeeded", "record_me").count(), 0, "{}", events.summary());
        let failed =
            events.of_task("task_failed", "record_me").next().unwrap_or_else(|| panic!("{}", events.summary()));
        let error = failed["error"].as_str().unwrap();
        assert!(error.contains("the execution store failed: disk I/O error (injected)"), "{error}");
        assert_eq!(events.0.last().unwrap()["type"], "workflow_failed", "{}", events.summary());
        let said = unwrapped(&run.stderr);
        assert!(said.contains("tasks: 0 succeeded, 1 failed"), "{}", run.stderr);
    }
}

// The start of an execution is committed while the run sets up its bus and executor: one
// that the store refuses still runs nothing, exits 2 and leaves nothing announced.
#[test]
fn a_start_the_store_refuses_runs_nothing() {
    let first = Run::new("store_success_then_dependent.rhai").param("command", "exit 0").output();
    first.assert_code(0);
    first.alter_store(
        "CREATE TRIGGER refuse_starts BEFORE INSERT ON executions
         BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END;",
    );
    let touched = first.scratch.path().join("touched");
    let run = Run::new("store_success_then_dependent.rhai")
        .store_at(first.store.clone().unwrap())
        .param("command", format!("touch {}", touched.display()))
        .output();
    run.assert_code(2);
    assert!(unwrapped(&run.stderr).contains("disk I/O error (injected)"), "{}", run.stderr);
    assert!(!touched.exists(), "a task ran on a start that was not recorded");
    assert!(run.events.0.is_empty(), "{}", run.events.summary());
    let listed = cli(&["executions", "list", "--store", &run.store_arg()]);
    assert_eq!(
        listed.stdout.lines().filter(|l| l.contains("store_success_then_dependent")).count(),
        1,
        "{}",
        listed.stdout
    );
}

/// Makes every commit that records a task's success take a while, as a slow disk would: long
/// enough for a reader of the events file to look in the store before the commit ends.
const SLOW_SUCCESS_COMMITS: &str = "
    CREATE TABLE slow (x);
    INSERT INTO slow WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 2500) SELECT x FROM n;
    CREATE TRIGGER slow_success_commits BEFORE UPDATE OF tasks_done ON executions
    WHEN NEW.tasks_done > OLD.tasks_done
    BEGIN SELECT count(*) FROM slow a, slow b WHERE a.x * b.x % 7 = 3; END;";

/// Whether the store holds, committed, the `task_succeeded` event `success` of its execution:
/// what another process reads from it (a reader sees only what is committed).
fn stored(store: &Path, success: &serde_json::Value) -> bool {
    let id = success["execution_id"].as_str().unwrap();
    store_events(store, id).iter().any(|e| e["type"] == "task_succeeded" && e["seq"] == success["seq"])
}

// The events file said `task_succeeded` as soon as the task ended, before the store had
// committed it: a reader saw a success that a failed commit could still take back.
#[test]
fn a_success_is_announced_only_once_the_store_committed_it() {
    for closure in [true, false] {
        let first = Run::new("store_success_then_dependent.rhai").param("command", "exit 0").output();
        first.alter_store(SLOW_SUCCESS_COMMITS);
        let mut run = Run::new("store_success_then_dependent.rhai")
            .store_at(first.store.clone().unwrap())
            .param("closure", closure)
            .param("command", "exit 0")
            .spawn();
        let store = first.store.clone().unwrap();
        for task in ["record_me", "after"] {
            let success = run
                .wait_for(&format!("the success of `{task}`"), |e| e["type"] == "task_succeeded" && e["task"] == task);
            assert!(stored(&store, &success), "announced before the store committed it: {success}");
        }
        let (out, _) = run.finish_within(Duration::from_secs(60));
        out.assert_code(0);
    }
}

// The end of the run (its status, its last events) failed to be written and the run still
// exited 0 as succeeded, while the store kept it `running`. Then it exited 1, but the events
// file still ended with `workflow_succeeded`.
#[test]
fn a_run_whose_end_cannot_be_recorded_fails() {
    let first = Run::new("store_success_then_dependent.rhai").param("command", "exit 0").output();
    first.assert_code(0);
    first.alter_store(
        "CREATE TRIGGER fail_ends BEFORE UPDATE OF status ON executions WHEN NEW.status != 'running'
         BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END;",
    );
    let run = Run::new("store_success_then_dependent.rhai")
        .store_at(first.store.clone().unwrap())
        .param("command", "exit 0")
        .output();
    run.assert_code(1);
    let said = unwrapped(&run.stderr);
    assert!(said.contains("the execution store failed: disk I/O error (injected)"), "{}", run.stderr);
    assert!(said.contains("✘ workflow failed"), "{}", run.stderr);
    assert_eq!(run.events.0.last().unwrap()["type"], "workflow_failed", "{}", run.events.summary());
    let list = executions(&run, &["list"]);
    let line = list.stdout.lines().find(|l| l.starts_with(&run.execution_id())).unwrap().to_string();
    assert!(!line.contains("succeeded"), "{line}");
}

// The same on a real full disk: the workflow's first task fills the small disk the store is
// on, so the commit of its success fails with SQLite's "database or disk is full".
#[test]
fn a_full_disk_fails_the_run() {
    let disk = match SmallDisk::mount("2m") {
        Ok(disk) => disk,
        Err(why) => return crate::support::skip("store::a_full_disk_fails_the_run", &why),
    };
    let fill = format!("head -c 100000000 /dev/zero > {}/filler; true", disk.path().display());
    let run = Run::new("store_success_then_dependent.rhai")
        .store_at(disk.path().join("store.db"))
        .param("command", fill)
        .output();
    assert_failed_on_the_store(&run, "database or disk is full");
}

// An unwritable store was not noticed until the end: the run went on, recorded nothing and
// exited 0. (Root ignores file modes, so the store is on a read-only filesystem here.)
#[test]
fn an_unwritable_store_is_refused_before_any_task_runs() {
    let disk = match SmallDisk::mount("4m") {
        Ok(disk) => disk,
        Err(why) => return crate::support::skip("store::an_unwritable_store_is_refused_before_any_task_runs", &why),
    };
    let store = disk.path().join("store.db");
    Run::new("store_success_then_dependent.rhai").store_at(&store).param("command", "exit 0").output().assert_code(0);
    disk.make_read_only();
    for store in [store.clone(), disk.path().join("new.db")] {
        let scratch = tempfile::tempdir().unwrap();
        let marker = scratch.path().join("ran");
        let run = Run::new("store_success_then_dependent.rhai")
            .store_at(&store)
            .param("command", format!("touch {}", marker.display()))
            .output();
        run.assert_code(2);
        assert!(!marker.exists(), "a task ran on a store that cannot record it");
        assert!(run.stderr.contains("rhaiflow::store"), "{}", run.stderr);
    }
}

/// A failed execution of `store_fails_once.rhai` (`build` succeeded, `deploy` failed) in a
/// store of its own, for a test to damage.
fn failed_execution() -> (Outcome, String) {
    let run = Run::new("store_fails_once.rhai").param("fail", true).output();
    run.assert_code(1);
    let id = run.execution_id();
    (run, id)
}

/// Every command that reads the execution says its store is damaged (exit 2); none guesses.
#[track_caller]
fn assert_reported_as_damaged(run: &Outcome, id: &str, commands: &[&[&str]], why: &str) {
    for command in commands {
        let mut args = command.to_vec();
        if args[0] != "list" {
            args.push(id);
        }
        let out = executions(run, &args);
        out.assert_code(2);
        let said = unwrapped(&out.stderr);
        assert!(said.contains("is damaged or not a rhaiflow store"), "{command:?}:\n{}", out.stderr);
        assert!(said.contains(why), "{command:?} says why:\n{}", out.stderr);
    }
}

/// A diagnostic's text as one line, without the frame miette wraps it in.
fn unwrapped(diagnostic: &str) -> String {
    diagnostic.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ")
}

const READERS: [&[&str]; 4] = [&["list"], &["show"], &["events"], &["resume"]];

// A status rhaiflow never writes read as `running`: with its process gone the execution
// showed as crashed, and `executions resume` ran it again.
#[test]
fn a_damaged_status_is_reported_not_resumed() {
    let (run, id) = failed_execution();
    run.alter_store("UPDATE executions SET status = 'paused'");
    assert_reported_as_damaged(&run, &id, &READERS, "has the status `paused`, which rhaiflow never writes");
    let resumes: i64 = run.store_file().query_row("SELECT resumes FROM executions", [], |r| r.get(0)).unwrap();
    assert_eq!(resumes, 0, "the damaged execution was resumed");
}

// Parameters (or options) that do not read as a JSON object were read as `{}`: a resume ran
// the workflow with none of its parameters (here without `fail`, so it "succeeded").
#[test]
fn unreadable_parameters_are_reported() {
    for (column, value, why) in [
        ("parameters", "{\"fail\": tru", "the parameters of execution"),
        ("options", "[1, 2]", "the options of execution"),
    ] {
        let (run, id) = failed_execution();
        run.store_file().execute(&format!("UPDATE executions SET {column} = ?1"), [value]).unwrap();
        assert_reported_as_damaged(&run, &id, &READERS, why);
    }
}

// Options of the wrong shape were read key by key with defaults: a resume ran with no
// retries (`task_retries` "three" read as 0) instead of saying the record was damaged.
#[test]
fn options_of_the_wrong_type_are_reported_on_resume() {
    let (run, id) = failed_execution();
    run.store_file()
        .execute("UPDATE executions SET options = json_set(options, '$.task_retries', 'three')", [])
        .unwrap();
    assert_reported_as_damaged(&run, &id, &[&["resume"]], "the options of execution");
}

// A stored event that did not parse was skipped: `build`'s success was forgotten, `show` did
// not say so, and a resume ran `build` again as if the process had crashed before it.
#[test]
fn an_unparseable_event_is_reported() {
    let (run, id) = failed_execution();
    let conn = run.store_file();
    let (position, mut events): (i64, Vec<u8>) = conn
        .query_row("SELECT position, events FROM event_rows WHERE instr(events, ?1) > 0", [&b"\"result\":"[..]], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    // Same length, so the row's framing still reads: only the event's JSON is broken. (An
    // event's type is kept in binary, its payload's fields as JSON: the first result is
    // `build`'s.)
    let at = events.windows(9).position(|w| w == b"\"result\":").unwrap();
    events[at + 8] = b';';
    conn.execute("UPDATE event_rows SET events = ?2 WHERE position = ?1", rusqlite::params![position, events]).unwrap();
    assert_reported_as_damaged(&run, &id, &[&["show"], &["events"], &["resume"]], "does not read as JSON");
}

// A stored task kind rhaiflow never writes was kept as text: `show` listed the damaged task as
// a task of kind `shelx`, and a resume compared kinds as strings and went on.
#[test]
fn a_task_event_of_an_unknown_kind_is_reported() {
    let (run, id) = failed_execution();
    let conn = run.store_file();
    let (position, mut events): (i64, Vec<u8>) = conn
        .query_row("SELECT position, events FROM event_rows WHERE instr(events, ?1) > 0", [&b"\x05shell"[..]], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    // Same length, so the row's framing and the JSON still read: only the kind is unknown. A
    // task event keeps its kind in binary, its length first (the graph's `graph_planned`
    // names kinds too, as JSON text).
    let at = events.windows(6).position(|w| w == b"\x05shell").unwrap();
    events[at + 5] = b'x';
    conn.execute("UPDATE event_rows SET events = ?2 WHERE position = ?1", rusqlite::params![position, events]).unwrap();
    assert_reported_as_damaged(
        &run,
        &id,
        &[&["show"], &["resume"]],
        "of the kind `shelx`, which rhaiflow never writes",
    );
}

// Setting up a new store ignored a COMMIT that failed: the store opened without its tables, and
// the command failed later with "no such table: executions" instead of the real cause.
#[test]
fn a_store_that_cannot_be_set_up_says_why() {
    let disk = match SmallDisk::mount("1m") {
        Ok(disk) => disk,
        Err(why) => return crate::support::skip("store::a_store_that_cannot_be_set_up_says_why", &why),
    };
    // An empty database kept open, so that its WAL and shared memory exist: on the full disk,
    // only the commit of rhaiflow's tables has no room left.
    let file = disk.path().join("store.db");
    let holder = rusqlite::Connection::open(&file).unwrap();
    holder.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE scratch (x); DROP TABLE scratch;").unwrap();
    let _ = std::fs::write(disk.path().join("filler"), vec![0u8; 4 << 20]);
    let out = cli(&["executions", "list", "--store", file.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("database or disk is full"), "{}", out.stderr);
    drop(holder);
}

// A store path whose parent is a file said "no executions recorded" with exit 0, as for a
// store not made yet: the executions were there, only unreachable.
#[test]
fn executions_list_on_a_store_it_cannot_reach_says_so() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("a_file");
    std::fs::write(&file, "not a folder").unwrap();
    let store = file.join("store").display().to_string();
    let out = cli(&["executions", "list", "--store", &store]);
    out.assert_code(2);
    assert!(out.stderr.contains("cannot read the execution store"), "{}", out.stderr);
}

// A SQLite database of another program was reported as "written by another version of
// rhaiflow (store format 0)", which sends the user looking for an older rhaiflow.
#[test]
fn executions_list_on_a_foreign_sqlite_file_says_it_is_not_a_rhaiflow_store() {
    let scratch = tempfile::tempdir().unwrap();
    let foreign = scratch.path().join("contacts.db");
    rusqlite::Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE people (name TEXT);").unwrap();
    let out = cli(&["executions", "list", "--store", foreign.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("is not a rhaiflow store"), "{}", out.stderr);
    assert!(!out.stderr.contains("another version"), "{}", out.stderr);
}

// Opening another program's database switched it to WAL mode before finding it was not a
// rhaiflow store: refusing a file must leave it as it was.
#[test]
fn a_foreign_sqlite_file_is_left_as_it_was() {
    let scratch = tempfile::tempdir().unwrap();
    let foreign = scratch.path().join("contacts.db");
    rusqlite::Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE people (name TEXT);").unwrap();
    cli(&["executions", "list", "--store", foreign.to_str().unwrap()]).assert_code(2);
    let mode: String =
        rusqlite::Connection::open(&foreign).unwrap().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "delete", "the file's journal mode is untouched");
}

// ---------------------------------------------------------------------------------------------
// Listing and pruning executions

/// Three executions in one store, started 10 days, 3 hours and 1 minute ago: `hello`
/// (succeeded), `store_fails_once` (failed), `store_fails_once` (succeeded). Their ids, oldest
/// first, and the store.
fn three_executions() -> (Outcome, [String; 3]) {
    let first = Run::new(crate::support::example("hello.rhai")).output();
    first.assert_code(0);
    let store = first.store.clone().unwrap();
    let second = Run::new("store_fails_once.rhai").param("fail", true).store_at(&store).output();
    second.assert_code(1);
    let third = Run::new("store_fails_once.rhai").store_at(&store).output();
    third.assert_code(0);
    let ids = [first.execution_id(), second.execution_id(), third.execution_id()];
    for (id, ago) in ids.iter().zip(["-10 days", "-3 hours", "-1 minutes"]) {
        first
            .store_file()
            .execute(
                "UPDATE executions SET started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?2),
                   ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?2, '+1 seconds') WHERE id = ?1",
                [id.as_str(), ago],
            )
            .unwrap();
    }
    (first, ids)
}

/// The ids `executions list ARGS…` shows, in its order.
#[track_caller]
fn listed(run: &Outcome, args: &[&str]) -> Vec<String> {
    let mut all = vec!["list"];
    all.extend_from_slice(args);
    let out = executions(run, &all);
    out.assert_code(0);
    out.stdout.lines().skip(1).map(|l| l.split_whitespace().next().unwrap().to_string()).collect()
}

// `executions list` showed the oldest first, with no way to pick the failed ones, one
// workflow's, the last few, the recent ones, or to read them from a script.
#[test]
fn executions_list_is_newest_first_and_picks_by_status_workflow_limit_and_age() {
    let (run, [old, failed, new]) = three_executions();
    let (old, failed, new) = (old.as_str(), failed.as_str(), new.as_str());
    assert_eq!(listed(&run, &[]), [new, failed, old]);
    assert_eq!(listed(&run, &["--status", "failed"]), [failed]);
    assert_eq!(listed(&run, &["--status", "failed", "--status", "succeeded"]), [new, failed, old]);
    assert_eq!(listed(&run, &["--workflow", "hello"]), [old]);
    assert_eq!(listed(&run, &["--workflow", "store_fails_once", "--limit", "1"]), [new]);
    assert_eq!(listed(&run, &["--since", "2h"]), [new]);
    assert_eq!(listed(&run, &["--since", "1d"]), [new, failed]);
    // Five days ago, written with an offset east of UTC.
    let five_days_ago = run
        .store_file()
        .query_row("SELECT strftime('%Y-%m-%dT%H:%M:%S+02:00', 'now', '-5 days', '+2 hours')", [], |r| {
            r.get::<_, String>(0)
        })
        .unwrap();
    assert_eq!(listed(&run, &["--since", &five_days_ago]), [new, failed]);
    let none = executions(&run, &["list", "--status", "cancelled"]);
    none.assert_code(0);
    assert!(none.stdout.is_empty() && none.stderr.contains("no such executions"), "{}", none.stderr);

    let json = executions(&run, &["list", "--json"]);
    json.assert_code(0);
    let all: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let all = all.as_array().unwrap();
    assert_eq!(all.iter().map(|e| e["id"].as_str().unwrap()).collect::<Vec<_>>(), [new, failed, old]);
    assert_eq!(all[1]["status"], "failed");
    assert_eq!(all[1]["workflow"], "store_fails_once");
    assert_eq!(all[1]["error"].as_str().map(|e| e.contains("the target is unreachable")), Some(true));
    assert!(all[2]["started_at"].as_str().unwrap() < all[2]["ended_at"].as_str().unwrap());
    assert_eq!((all[1]["tasks_done"].as_u64(), all[1]["tasks_total"].as_u64()), (Some(1), Some(3)));

    for bad in [&["--status", "paused"][..], &["--since", "last week"], &["--limit", "many"]] {
        let mut args = vec!["list"];
        args.extend_from_slice(bad);
        executions(&run, &args).assert_code(2);
    }
}

/// The number of event rows of execution `id` in the run's store.
fn event_rows_of(run: &Outcome, number: i64) -> i64 {
    run.store_file()
        .query_row("SELECT count(*) FROM event_rows WHERE position >> 40 = ?1", [number], |r| r.get(0))
        .unwrap()
}

// There was no way to remove old executions: the store only grew.
#[test]
fn prune_removes_finished_executions_older_than_the_duration_and_never_a_running_one() {
    let (run, [old, failed, new]) = three_executions();
    // Two more, started 10 and 11 days ago and recorded as running: one whose process is this
    // test (running), one whose process is gone (crashed).
    let running = Run::new(crate::support::example("hello.rhai")).store_at(run.store.clone().unwrap()).output();
    let crashed = Run::new(crate::support::example("hello.rhai")).store_at(run.store.clone().unwrap()).output();
    let (running, crashed) = (running.execution_id(), crashed.execution_id());
    let (old, failed, new) = (old.as_str(), failed.as_str(), new.as_str());
    let (running, crashed) = (running.as_str(), crashed.as_str());
    for (id, pid, ago) in [(running, std::process::id(), "-10 days"), (crashed, 0, "-11 days")] {
        run.store_file()
            .execute(
                "UPDATE executions SET status = 'running', pid = ?2, ended_at = NULL,
                   started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?3) WHERE id = ?1",
                rusqlite::params![id, pid, ago],
            )
            .unwrap();
    }
    let number = |id: &str| -> i64 {
        run.store_file().query_row("SELECT number FROM executions WHERE id = ?1", [id], |r| r.get(0)).unwrap()
    };
    let (old_number, new_number) = (number(old), number(new));
    assert!(event_rows_of(&run, old_number) > 0);

    let pruned = executions(&run, &["prune", "--older-than", "1h"]);
    pruned.assert_code(0);
    let removed: Vec<&str> = pruned.stdout.lines().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(removed, [old, failed], "{}", pruned.stdout);
    assert!(pruned.stderr.contains("pruned 2 executions older than 1h"), "{}", pruned.stderr);
    assert_eq!(listed(&run, &[]), [new, running, crashed]);
    assert_eq!(event_rows_of(&run, old_number), 0, "the events of a pruned execution are gone");
    assert!(event_rows_of(&run, new_number) > 0);
    executions(&run, &["events", old]).assert_code(2);

    // A crashed execution can be resumed: it goes only when named.
    let pruned = executions(&run, &["prune", "--older-than", "1d", "--status", "crashed"]);
    pruned.assert_code(0);
    assert_eq!(pruned.stdout.lines().count(), 1, "{}", pruned.stdout);
    assert!(pruned.stdout.contains(crashed) && pruned.stdout.contains("crashed"), "{}", pruned.stdout);
    assert_eq!(listed(&run, &[]), [new, running]);

    executions(&run, &["prune", "--older-than", "1d", "--status", "running"]).assert_code(2);
    executions(&run, &["prune", "--older-than", "soon"]).assert_code(2);
    let nothing = executions(&run, &["prune", "--older-than", "1d"]);
    nothing.assert_code(0);
    assert!(nothing.stdout.is_empty() && nothing.stderr.contains("pruned 0 executions"), "{}", nothing.stderr);
}

// `executions show` said "2 of 3 succeeded" above a table of other rows (subgraphs in the
// table, not in the count), and a task a cancel stopped was `failed` there and FAILED in the
// console, as if it had an error of its own.
#[test]
fn show_counts_its_own_table_and_a_cancelled_task_is_cancelled() {
    let mut background = Run::new("cancel_sleep_then_later.rhai").spawn();
    background.wait_for_start("wait");
    background.interrupt();
    let (run, _) = background.finish_within(Duration::from_secs(10));
    run.assert_code(3);
    assert!(run.stderr.contains("cancelled wait"), "{}", run.stderr);
    assert!(!run.stderr.contains("FAILED"), "{}", run.stderr);

    let show = executions(&run, &["show", &run.execution_id()]);
    show.assert_code(0);
    let tasks_line = show.stdout.lines().find(|l| l.starts_with("tasks ")).unwrap();
    assert_eq!(tasks_line, "tasks       1: 1 cancelled; 1 more never started", "{}", show.stdout);
    let rows: Vec<&str> = show.stdout.lines().skip_while(|l| !l.starts_with("TASK")).skip(1).collect();
    assert_eq!(rows.len(), 1, "{}", show.stdout);
    assert_eq!(rows[0].split_whitespace().take(3).collect::<Vec<_>>(), ["wait", "sleep", "cancelled"]);

    let nested = Run::new("graph_subgraphs.rhai").output();
    nested.assert_code(0);
    let show = executions(&nested, &["show", &nested.execution_id()]);
    let rows = show.stdout.lines().skip_while(|l| !l.starts_with("TASK")).skip(1).count();
    let tasks_line = show.stdout.lines().find(|l| l.starts_with("tasks ")).unwrap();
    assert_eq!(tasks_line, format!("tasks       {rows}: {rows} succeeded"), "{}", show.stdout);
}

// A time `--since` cannot read, or asking to prune running executions, must say what is
// wrong and what would do, before the store is even opened.
#[test]
fn listing_and_pruning_options_that_do_not_read_are_reported() {
    let since = cli(&["executions", "list", "--since", "last week", "--store", "/nonexistent/store"]);
    since.assert_code(2);
    let running = cli(&["executions", "prune", "--older-than", "1d", "--status", "running", "--store", "/nonexistent"]);
    running.assert_code(2);
    insta::assert_snapshot!("listing_options_that_do_not_read", format!("{}{}", since.stderr, running.stderr));
}

// Read as a path, `--store postgres://user:password@host/db` made folders named after the
// password and recorded the run there, exit 0. A URL is refused before anything runs, and
// shown without its password.
#[test]
fn an_unreachable_postgres_store_is_refused_before_anything_runs_and_its_password_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let url = "postgres://ops:s3cret@db.example/flows";
    let hello = format!("{}/examples/hello.rhai", env!("CARGO_MANIFEST_DIR"));
    let runs = [
        rhaiflow().current_dir(dir.path()).args(["run", &hello, "--store", url]).output().unwrap(),
        rhaiflow().current_dir(dir.path()).args(["executions", "list", "--store", url]).output().unwrap(),
        rhaiflow().current_dir(dir.path()).env("RHAIFLOW_STORE", url).args(["deployments", "list"]).output().unwrap(),
    ];
    for out in runs {
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
        assert!(stderr.contains("postgres://ops:***@db.example/flows"), "{stderr}");
        assert!(!stdout.contains("s3cret") && !stderr.contains("s3cret"), "{stdout}{stderr}");
    }
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "nothing is created for a URL: {left:?}");
}
