//! The PostgreSQL store (`--store postgres://…`), driven as a user drives it: runs recorded
//! and read back as on SQLite, cancelled and followed from another process, killed and
//! resumed, crashed on another machine (its lease ran out), taken over under a running
//! process (fencing), migrated by many processes at once, pruned, and reached over TCP with a
//! password that no output shows. Each test has a database of its own on the test process's
//! throw-away server (`postgres_server`), and skips where there is none (never in CI).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use tempfile::TempDir;

use crate::postgres_server::{postgres, Postgres, PASSWORD, PASSWORD_ROLE};
use crate::store;
use crate::support::{cli, cli_of, normalise, rhaiflow, Background, Cli, Run};

/// A database of one test's own.
struct Db {
    server: &'static Postgres,
    name: String,
    url: String,
}

/// A fresh database for `test`; `None` (the test skips) where no PostgreSQL is installed.
fn database(test: &str) -> Option<Db> {
    let Some(server) = postgres() else {
        crate::support::skip(test, "no PostgreSQL installed");
        return None;
    };
    let name = server.fresh_database(test, None);
    Some(Db { server, url: server.url(&name), name })
}

impl Db {
    fn psql(&self, sql: &str) -> String {
        self.server.psql(&self.name, sql)
    }

    /// `rhaiflow executions ARGS… --store URL`.
    fn executions(&self, args: &[&str]) -> Cli {
        let mut all = vec!["executions"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--store", &self.url]);
        cli(&all)
    }

    /// The status `executions list` shows for execution `id`.
    #[track_caller]
    fn listed_status(&self, id: &str) -> String {
        let list = self.executions(&["list"]);
        list.assert_code(0);
        let line = list.stdout.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("{}", list.stdout));
        line.split_whitespace().nth(2).unwrap().to_string()
    }

    /// How many event rows execution `id` has.
    fn event_rows(&self, id: &str) -> i64 {
        self.psql(&format!(
            "SELECT count(*) FROM rhaiflow_event_rows r JOIN rhaiflow_executions e ON r.execution = e.number
             WHERE e.id = '{id}'"
        ))
        .parse()
        .unwrap()
    }

    /// A run of `script` recorded in this database.
    fn run(&self, script: impl AsRef<Path>) -> Run {
        Run::new(script).store_at(&self.url)
    }
}

/// `postgres_gate.rhai` running in the background, held at its `wait` task until `open`.
struct Gated {
    run: Background,
    id: String,
    /// Where its tasks count their runs, and the file that lets `wait` go on.
    out: PathBuf,
    gate: PathBuf,
    _files: TempDir,
}

impl Gated {
    fn start(db: &Db, env: &[(&str, &str)]) -> Gated {
        let files = tempfile::tempdir().unwrap();
        let (out, gate) = (files.path().join("out"), files.path().join("gate"));
        let mut run = db.run("postgres_gate.rhai").param("out", out.display()).param("gate", gate.display());
        for (key, value) in env {
            run = run.env(key, value);
        }
        let mut run = run.spawn();
        let started = run.wait_for_start("wait");
        let id = started["execution_id"].as_str().unwrap().to_string();
        Gated { run, id, out, gate, _files: files }
    }

    fn open(&self) {
        std::fs::write(&self.gate, "").unwrap();
    }

    /// How many times each task ran so far.
    fn runs(&self) -> HashMap<String, usize> {
        runs_in(&self.out)
    }

    /// Waits (at most 30 s) for the run to end: its outcome, and how many times each task ran.
    fn finish(self) -> (crate::support::Outcome, HashMap<String, usize>) {
        let Gated { run, out, _files, .. } = self;
        let (outcome, _) = run.finish_within(Duration::from_secs(30));
        (outcome, runs_in(&out))
    }
}

/// How many times each task ran (its lines in `out`).
fn runs_in(out: &Path) -> HashMap<String, usize> {
    let mut runs = HashMap::new();
    for line in std::fs::read_to_string(out).unwrap_or_default().lines() {
        *runs.entry(line.to_string()).or_default() += 1;
    }
    runs
}

#[track_caller]
fn assert_each_ran_once(runs: &HashMap<String, usize>) {
    for task in ["first", "second", "wait", "last"] {
        assert_eq!(runs.get(task), Some(&1), "`{task}` ran once: {runs:?}");
    }
}

/// Waits (at most 20 s) until `done` holds.
#[track_caller]
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "not within 20 s: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Read back as on SQLite

/// Output with what differs from run to run masked: ids, times, durations.
fn masked(text: &str) -> String {
    let mask = |word: &str| {
        let digit_first = word.starts_with(|c: char| c.is_ascii_digit());
        let is_date = word.len() == 10 && word.as_bytes()[4] == b'-' && word.as_bytes()[7] == b'-';
        let is_duration = word.ends_with('s') && word.trim_end_matches('s').parse::<f64>().is_ok();
        if digit_first && (word.contains(':') || is_date) {
            "[TIME]".to_string()
        } else if is_duration {
            "[T]".to_string()
        } else {
            word.to_string()
        }
    };
    normalise(text).lines().map(|l| l.split(' ').map(mask).collect::<Vec<_>>().join(" ")).collect::<Vec<_>>().join("\n")
}

/// What `executions list/show/events/logs` say of a failed run and of one with output, in the
/// store `store`, masked.
fn read_back(store: &str) -> Vec<String> {
    let failed = Run::new("store_fails_once.rhai").param("fail", true).store_at(store).output();
    failed.assert_code(1);
    let with_output = Run::new("output_lines.rhai").store_at(store).output();
    with_output.assert_code(0);
    let (failed, with_output) = (failed.execution_id(), with_output.execution_id());
    let read = |args: &[&str]| {
        let mut all = vec!["executions"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--store", store]);
        let out = cli(&all);
        out.assert_code(0);
        out.stdout
    };
    let json_events: Vec<serde_json::Value> = read(&["events", &failed, "--json"])
        .lines()
        .map(|l| {
            let mut e: serde_json::Value = serde_json::from_str(l).unwrap();
            e.as_object_mut().unwrap().remove("ts");
            e
        })
        .collect();
    // The two tasks of `output_lines` run at once: their lines interleave either way.
    let mut logs: Vec<String> = read(&["logs", &with_output]).lines().map(String::from).collect();
    logs.sort();
    vec![
        masked(&read(&["list"])),
        masked(&read(&["show", &failed])),
        masked(&read(&["events", &failed])),
        masked(&serde_json::to_string_pretty(&json_events).unwrap()),
        logs.join("\n"),
    ]
}

// The PostgreSQL store is read back as the SQLite store is: the same list, show, events (as
// text and JSON) and logs of the same runs, but for ids and times.
#[test]
fn list_show_events_and_logs_read_as_on_sqlite() {
    let Some(db) = database("postgres_store::list_show_events_and_logs_read_as_on_sqlite") else { return };
    let sqlite = tempfile::tempdir().unwrap();
    let on_sqlite = read_back(&sqlite.path().join("store.db").display().to_string());
    let on_postgres = read_back(&db.url);
    for (sqlite, postgres) in on_sqlite.iter().zip(&on_postgres) {
        assert_eq!(postgres, sqlite, "PostgreSQL (left) reads back as SQLite (right)");
    }
    assert!(on_postgres[1].contains("deploy  script     failed"), "{}", on_postgres[1]);
    assert!(on_postgres[4].contains("build | compiling"), "{}", on_postgres[4]);
}

// ---------------------------------------------------------------------------------------------
// From another process

// `executions events --follow` of a running execution streams from another process and
// returns once the execution ends.
#[test]
fn events_follow_from_another_process_ends_when_the_execution_ends() {
    let Some(db) = database("postgres_store::events_follow_from_another_process_ends_when_the_execution_ends") else {
        return;
    };
    let gated = Gated::start(&db, &[]);
    let follow = StdCommand::cargo_bin("rhaiflow")
        .unwrap()
        .args(["executions", "events", &gated.id, "--follow", "--json", "--store", &db.url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Still following while the run waits.
    std::thread::sleep(Duration::from_millis(500));
    gated.open();
    let (run, _) = gated.run.finish_within(Duration::from_secs(30));
    run.assert_code(0);
    let followed = follow.wait_with_output().unwrap();
    assert_eq!(followed.status.code(), Some(0));
    let types: Vec<String> = String::from_utf8_lossy(&followed.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["type"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(types.first().map(String::as_str), Some("workflow_started"));
    assert_eq!(types.last().map(String::as_str), Some("workflow_succeeded"), "{types:?}");
    assert_eq!(types.iter().filter(|t| *t == "task_succeeded").count(), 4, "{types:?}");
}

// `executions cancel` from another process reaches the run through the store alone (no
// signal is sent for a PostgreSQL store: the run's watcher reads the request).
#[test]
fn cancel_from_another_process_stops_the_run_within_a_second() {
    let Some(db) = database("postgres_store::cancel_from_another_process_stops_the_run_within_a_second") else {
        return;
    };
    let gated = Gated::start(&db, &[]);
    let asked = Instant::now();
    let cancel = StdCommand::cargo_bin("rhaiflow")
        .unwrap()
        .args(["executions", "cancel", &gated.id, "--force", "--store", &db.url])
        .env("USER", "bob")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (run, _) = gated.run.finish_within(Duration::from_secs(20));
    let took = asked.elapsed();
    run.assert_code(3);
    assert!(run.stderr.contains("cancel requested from another shell by user bob"), "{}", run.stderr);
    assert!(!run.events.started("last"), "{}", run.events.summary());
    let cancel = cancel.wait_with_output().unwrap();
    assert_eq!(cancel.status.code(), Some(0), "{}", String::from_utf8_lossy(&cancel.stderr));
    assert!(String::from_utf8_lossy(&cancel.stderr).contains("is cancelled"), "{:?}", cancel);
    assert_eq!(db.listed_status(&gated.id), "cancelled");
    // The SQLite store's bound (which a nudge makes easy there): polling alone meets it.
    assert!(took < Duration::from_secs(3), "the run ended {took:?} after the cancel was asked");
}

// ---------------------------------------------------------------------------------------------
// Crashes and leases

// A run killed on this machine shows crashed at once (its process is gone: no need to wait
// for its lease), and a resume takes it up without running what succeeded again.
#[test]
fn a_killed_run_is_crashed_at_once_and_resumed_without_running_its_successes_again() {
    let Some(db) =
        database("postgres_store::a_killed_run_is_crashed_at_once_and_resumed_without_running_its_successes_again")
    else {
        return;
    };
    // A lease far longer than the test: only the process check can tell it crashed.
    let mut gated = Gated::start(&db, &[("RHAIFLOW_LEASE", "600")]);
    assert_eq!(db.listed_status(&gated.id), "running");
    gated.run.kill();
    assert_eq!(db.listed_status(&gated.id), "crashed");
    let show = db.executions(&["show", &gated.id]);
    assert!(show.stdout.contains("status      crashed"), "{}", show.stdout);

    gated.open();
    let resumed = db.executions(&["resume", &gated.id, "-q"]);
    resumed.assert_code(0);
    assert_each_ran_once(&gated.runs());
    assert_eq!(db.listed_status(&gated.id), "succeeded");
}

// Another machine's crash: its process cannot be looked at from here, so the execution shows
// running, and a resume is refused, until its lease runs out; then it is crashed and resumed.
#[test]
fn a_run_of_another_machine_is_crashed_once_its_lease_runs_out() {
    let Some(db) = database("postgres_store::a_run_of_another_machine_is_crashed_once_its_lease_runs_out") else {
        return;
    };
    // Short, with room for a heartbeat late on a busy machine.
    let mut gated = Gated::start(&db, &[("RHAIFLOW_LEASE", "2")]);
    db.psql(&format!("UPDATE rhaiflow_executions SET machine = 'elsewhere' WHERE id = '{}'", gated.id));
    // Alive, it renews its lease: still running well past one lease.
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(db.listed_status(&gated.id), "running", "the heartbeat renews the lease");
    gated.run.kill();
    // The lease its last heartbeat gave it, made long enough to look at it meanwhile.
    db.psql(&format!(
        "UPDATE rhaiflow_executions SET lease_until = now() + interval '5 seconds' WHERE id = '{}'",
        gated.id
    ));
    assert_eq!(db.listed_status(&gated.id), "running");
    let refused = db.executions(&["resume", &gated.id, "-q"]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("running"), "{}", refused.stderr);

    wait_until("the lease runs out", || db.listed_status(&gated.id) == "crashed");
    gated.open();
    db.executions(&["resume", &gated.id, "-q"]).assert_code(0);
    assert_each_ran_once(&gated.runs());
    assert_eq!(db.listed_status(&gated.id), "succeeded");
}

// Fencing: a run whose execution another process took over (its lease ran out, say, while
// the machine was frozen) fails naming the lost lease, and records nothing more of it.
#[test]
fn a_run_that_lost_its_lease_fails_and_writes_nothing_more() {
    let Some(db) = database("postgres_store::a_run_that_lost_its_lease_fails_and_writes_nothing_more") else {
        return;
    };
    let gated = Gated::start(&db, &[]);
    db.psql(&format!("UPDATE rhaiflow_executions SET owner = 'someone:1' WHERE id = '{}'", gated.id));
    let (rows, row) = (
        db.event_rows(&gated.id),
        db.psql(&format!("SELECT status, last_seq, tasks_done FROM rhaiflow_executions WHERE id = '{}'", gated.id)),
    );
    gated.open();
    let (run, _) = gated.run.finish_within(Duration::from_secs(30));
    run.assert_code(1);
    assert!(run.stderr.contains("lost execution") && run.stderr.contains("someone:1"), "{}", run.stderr);
    assert!(run.stderr.contains("its lease ran out"), "{}", run.stderr);
    assert_eq!(db.event_rows(&gated.id), rows, "no event was recorded once the lease was lost");
    let after =
        db.psql(&format!("SELECT status, last_seq, tasks_done FROM rhaiflow_executions WHERE id = '{}'", gated.id));
    assert_eq!(after, row, "the execution's row is as the new owner left it");
    assert!(!run.events.started("last"), "{}", run.events.summary());
}

// The server closed the connection the writer kept (a restart, a proxy's idle timeout) while
// a task ran: the next commit failed with "connection closed" and the whole run with it, on
// a batch that never reached the server.
#[test]
fn a_connection_the_server_closed_while_a_task_ran_is_replaced() {
    let Some(db) = database("postgres_store::a_connection_the_server_closed_while_a_task_ran_is_replaced") else {
        return;
    };
    let gated = Gated::start(&db, &[]);
    let closed = db.psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = '{}' AND application_name = 'rhaiflow'",
        db.name
    ));
    assert_ne!(closed, "0", "the run's connections were closed");
    // Long enough for the run to see its connections closed.
    std::thread::sleep(Duration::from_millis(1000));
    gated.open();
    let id = gated.id.clone();
    let (run, runs) = gated.finish();
    run.assert_code(0);
    assert_each_ran_once(&runs);
    assert_eq!(db.listed_status(&id), "succeeded");
}

// Killed with SIGKILL at several moments and resumed each time (the SQLite store's test, on
// PostgreSQL): every line is written, every success recorded exactly once, and seq only grows.
#[test]
fn killed_again_and_again_then_resumed_loses_nothing() {
    let Some(db) = database("postgres_store::killed_again_and_again_then_resumed_loses_nothing") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (out, ev) = (dir.path().join("lines.txt"), dir.path().join("events.jsonl"));
    let script = crate::support::fixtures().join("append_lines.rhai").display().to_string();
    let param = format!("out={}", out.display());
    let ev_s = ev.display().to_string();
    let child = store::spawn(&["run", &script, "-p", &param, "--store", &db.url, "--events-json", &ev_s, "-q"]);
    let id =
        store::wait_for_event(&ev, |e| e["type"] == "workflow_started")["execution_id"].as_str().unwrap().to_string();
    assert_eq!(store::kill_and_resume(child, &id, &db.url, 7, 4), Some(0), "the last resume finishes the workflow");

    let written = std::fs::read_to_string(&out).unwrap();
    let lines: std::collections::HashSet<&str> = written.lines().collect();
    assert!((0..300).all(|n| lines.contains(n.to_string().as_str())), "a line is missing");
    let recorded = store::each_success_recorded_once(Path::new(&db.url), &id, 300);
    let seqs: Vec<u64> = recorded.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "seq keeps increasing across resumes");
    assert_eq!(db.psql(&format!("SELECT resumes FROM rhaiflow_executions WHERE id = '{id}'")), "4");
}

// Two processes resuming one crashed execution at once: one takes it over, the other is
// refused (exit 2) instead of running the same tasks twice.
#[test]
fn two_resumes_of_one_crashed_execution_do_not_both_run() {
    let Some(db) = database("postgres_store::two_resumes_of_one_crashed_execution_do_not_both_run") else { return };
    let mut gated = Gated::start(&db, &[]);
    gated.run.kill();
    let resumes: Vec<_> = (0..2)
        .map(|_| {
            StdCommand::cargo_bin("rhaiflow")
                .unwrap()
                .args(["executions", "resume", &gated.id, "--store", &db.url, "-q"])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // The winner waits at the gate: open it once the loser has answered.
    std::thread::sleep(Duration::from_millis(1500));
    gated.open();
    let outcomes: Vec<_> = resumes.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let codes: Vec<Option<i32>> = outcomes.iter().map(|o| o.status.code()).collect();
    let said: Vec<_> = outcomes.iter().map(|o| String::from_utf8_lossy(&o.stderr).into_owned()).collect();
    assert!(codes.contains(&Some(2)) && codes.contains(&Some(0)), "one resume is refused: {codes:?} {said:?}");
    assert_each_ran_once(&gated.runs());
}

// A process frozen longer than its lease (SIGSTOP, as a paused VM would be) shows crashed, and
// another process resumes the execution; thawed, the first records nothing more of it and its
// run fails, while the resume ends it.
#[test]
fn a_frozen_run_whose_execution_was_resumed_elsewhere_fails_on_thawing() {
    let Some(db) = database("postgres_store::a_frozen_run_whose_execution_was_resumed_elsewhere_fails_on_thawing")
    else {
        return;
    };
    let mut gated = Gated::start(&db, &[("RHAIFLOW_LEASE", "1")]);
    gated.run.signal(libc::SIGSTOP);
    let events = gated._files.path().join("resumed.jsonl");
    let mut resume = None;
    // Whatever fails meanwhile, no process is left frozen or waiting at the gate.
    let resumed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until("the frozen run's lease runs out", || db.listed_status(&gated.id) == "crashed");
        resume = Some(
            StdCommand::cargo_bin("rhaiflow")
                .unwrap()
                .args(["executions", "resume", &gated.id, "-q", "--store", &db.url])
                .args(["--events-json", &events.display().to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        store::wait_for_event(&events, |e| e["type"] == "task_started" && e["task"] == "wait");
    }));
    if let Err(failure) = resumed {
        gated.run.kill();
        if let Some(child) = resume.as_mut() {
            let _ = child.kill();
        }
        std::panic::resume_unwind(failure);
    }
    gated.run.signal(libc::SIGCONT);
    gated.open();
    // The gate's folder stays while the resume waits at it.
    let (first, _) = gated.run.finish_within(Duration::from_secs(30));
    first.assert_code(1);
    assert!(first.stderr.contains("lost execution"), "{}", first.stderr);
    let resume = resume.unwrap().wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&resume.stderr);
    assert_eq!(resume.status.code(), Some(0), "the resume ends the execution: {said}");
    let id = gated.id;
    assert_eq!(db.listed_status(&id), "succeeded");
    let stored = db.executions(&["events", &id, "--json"]);
    let successes_of_last =
        stored.stdout.lines().filter(|l| l.contains("task_succeeded") && l.contains("\"task\":\"last\"")).count();
    assert_eq!(successes_of_last, 1, "{}", stored.stdout);
}

/// Holds the commit of every task's success for 3 s, in the writer's transaction, after its
/// fencing check: the time for the test to play another process that takes the execution
/// over meanwhile. (Such a commit counts the task done; the event's type is kept in binary,
/// so it is not looked for in the rows.)
const SLOW_SUCCESS_COMMITS: &str = "
    CREATE FUNCTION slow_success() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_sleep(3);
        RETURN NEW;
    END $$;
    CREATE TRIGGER slow_success BEFORE UPDATE OF tasks_done ON rhaiflow_executions
    FOR EACH ROW WHEN (NEW.tasks_done > OLD.tasks_done) EXECUTE FUNCTION slow_success();";

// Fencing checked the owner without holding the row: a commit under way when another process
// took the execution over still committed after the takeover, writing events beside (or
// over: same keys) the new owner's.
#[test]
fn a_commit_under_way_when_the_execution_is_taken_over_lands_before_the_takeover() {
    let Some(db) =
        database("postgres_store::a_commit_under_way_when_the_execution_is_taken_over_lands_before_the_takeover")
    else {
        return;
    };
    let gated = Gated::start(&db, &[]);
    db.psql(SLOW_SUCCESS_COMMITS);
    gated.open();
    let sleeping =
        format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' AND wait_event = 'PgSleep'", db.name);
    wait_until("the commit of `wait`'s success is under way", || db.psql(&sleeping) != "0");
    // Another process takes the execution over (its lease ran out here, say).
    db.psql(&format!("UPDATE rhaiflow_executions SET owner = 'someone:1' WHERE id = '{}'", gated.id));
    let rows_at_takeover = db.event_rows(&gated.id);
    let (run, _) = gated.run.finish_within(Duration::from_secs(30));
    run.assert_code(1);
    assert!(run.stderr.contains("lost execution"), "{}", run.stderr);
    assert_eq!(db.event_rows(&gated.id), rows_at_takeover, "events were committed after the takeover");
}

/// Holds every resume's start (its insert of the execution) for 3 s, the time for the test to
/// play another process that takes the execution over meanwhile.
const SLOW_RESUMED_STARTS: &str = "
    CREATE FUNCTION slow_resumed_start() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.resumes > 0 THEN PERFORM pg_sleep(3); END IF; RETURN NEW; END $$;
    CREATE TRIGGER slow_resumed_start BEFORE INSERT ON rhaiflow_executions
    FOR EACH ROW EXECUTE FUNCTION slow_resumed_start();";

// Fencing of a resume's start: a resume that lost the execution between taking it over and
// recording its start (frozen longer than its lease, and another took it over) recorded its
// start all the same, taking the execution back from the new owner, and ran it beside it.
#[test]
fn a_resume_that_lost_the_execution_before_its_start_was_recorded_does_not_run_it() {
    let Some(db) =
        database("postgres_store::a_resume_that_lost_the_execution_before_its_start_was_recorded_does_not_run_it")
    else {
        return;
    };
    let mut gated = Gated::start(&db, &[]);
    gated.run.kill();
    gated.open();
    db.psql(SLOW_RESUMED_STARTS);
    let owner_of = || db.psql(&format!("SELECT owner FROM rhaiflow_executions WHERE id = '{}'", gated.id));
    let killed_owner = owner_of();
    let resume = StdCommand::cargo_bin("rhaiflow")
        .unwrap()
        .args(["executions", "resume", &gated.id, "--store", &db.url, "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until("the resume takes the execution over", || owner_of() != killed_owner);
    // Another process takes it over while the resume's start waits.
    db.psql(&format!("UPDATE rhaiflow_executions SET owner = 'someone:1' WHERE id = '{}'", gated.id));
    let out = resume.wait_with_output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "refused before anything ran: {said}");
    assert!(said.contains("lost execution") && said.contains("someone:1"), "{said}");
    assert_eq!(owner_of(), "someone:1", "the new owner keeps the execution");
    assert_eq!(gated.runs().get("last"), None, "the resume ran the execution: {:?}", gated.runs());
}

// `RHAIFLOW_LEASE=inf` (or 1e300) made rhaiflow panic converting it to a duration, and a
// value that is not a number of seconds was passed over silently: both are refused before
// anything runs.
#[test]
fn a_lease_that_is_not_a_number_of_seconds_is_refused() {
    let Some(db) = database("postgres_store::a_lease_that_is_not_a_number_of_seconds_is_refused") else { return };
    let hello = crate::support::example("hello.rhai").display().to_string();
    for lease in ["inf", "1e300", "NaN", "soon", "0", "-1", "100000"] {
        let mut command = rhaiflow();
        command.args(["run", &hello, "--store", &db.url]).env("RHAIFLOW_LEASE", lease);
        let out = cli_of(&mut command);
        out.assert_code(2);
        assert!(out.stderr.contains(&format!("RHAIFLOW_LEASE is `{lease}`")), "{}", out.stderr);
    }
    let tables = "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'rhaiflow%'";
    assert_eq!(db.psql(tables), "0", "refused before the database was touched");
    let mut command = rhaiflow();
    command.args(["run", &hello, "--store", &db.url]).env("RHAIFLOW_LEASE", "2.5");
    cli_of(&mut command).assert_code(0);
    assert_eq!(db.psql("SELECT count(*) FROM rhaiflow_executions WHERE status = 'succeeded'"), "1");
}

// The resume hint printed `--store postgres://…?host=/socket&port=N` as it is: pasted into a
// shell, `&` sent the command to the background and it looked for the server on another port.
#[test]
fn the_resume_hint_of_a_socket_url_runs_as_printed() {
    let Some(db) = database("postgres_store::the_resume_hint_of_a_socket_url_runs_as_printed") else { return };
    let failed = db.run("store_fails_once.rhai").param("fail", true).output();
    failed.assert_code(1);
    let hint = failed.stderr.lines().find_map(|l| l.trim().strip_prefix("resume with: ")).unwrap().to_string();
    let binary = assert_cmd::cargo::cargo_bin("rhaiflow");
    let path = format!("{}:{}", binary.parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
    let resumed = StdCommand::new("sh")
        .args(["-c", &hint])
        .current_dir(crate::support::fixtures())
        .env("PATH", path)
        .env_remove("RHAIFLOW_STORE")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&resumed.stderr);
    // It fails again (`fail` is still true), having found the execution in the store.
    assert_eq!(resumed.status.code(), Some(1), "`{hint}`: {said}");
    assert!(said.contains(&format!("resuming {}", failed.execution_id())), "`{hint}`: {said}");
}

// Several processes write one database at once, each committing many small batches: none
// fails, and each execution's tasks are all counted.
#[test]
fn several_processes_write_one_database_at_once() {
    let Some(db) = database("postgres_store::several_processes_write_one_database_at_once") else { return };
    let script = crate::support::fixtures().join("store_many_small_tasks.rhai").display().to_string();
    let children: Vec<_> = (0..4)
        .map(|_| {
            StdCommand::cargo_bin("rhaiflow")
                .unwrap()
                .args(["run", &script, "-q", "--store", &db.url])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let list = db.executions(&["list"]);
    assert_eq!(list.stdout.matches("succeeded").count(), 4, "{}", list.stdout);
    assert_eq!(list.stdout.matches("200/200").count(), 4, "{}", list.stdout);
}

// ---------------------------------------------------------------------------------------------
// The schema

// Many processes starting at once against a new database migrate it once: none fails on a
// table another is creating, and the version is recorded once.
#[test]
fn processes_starting_at_once_on_a_new_database_migrate_it_once() {
    let Some(db) = database("postgres_store::processes_starting_at_once_on_a_new_database_migrate_it_once") else {
        return;
    };
    let hello = crate::support::example("hello.rhai");
    let children: Vec<_> = (0..8)
        .map(|_| {
            StdCommand::cargo_bin("rhaiflow")
                .unwrap()
                .args(["run", &hello.display().to_string(), "-q", "--store", &db.url])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Four migrations: the store, role tokens, events' seq and time in binary, then their type
    // and graphs in binary (format 7).
    assert_eq!(db.psql("SELECT count(*), max(version) FROM rhaiflow_schema"), "4|4");
    assert_eq!(db.psql("SELECT count(*) FROM rhaiflow_executions WHERE status = 'succeeded'"), "8");
}

// A database a newer rhaiflow migrated is refused before anything runs (exit 2), naming
// the format, and never read by guesswork.
#[test]
fn a_database_of_a_newer_format_is_refused() {
    let Some(db) = database("postgres_store::a_database_of_a_newer_format_is_refused") else { return };
    db.run(crate::support::example("hello.rhai")).output().assert_code(0);
    db.psql("INSERT INTO rhaiflow_schema VALUES (99)");
    // Made by hand: a schema table and nothing else.
    let bare = db.server.fresh_database("postgres_store::a_database_of_a_newer_format_is_refused", None);
    db.server
        .psql(&bare, "CREATE TABLE rhaiflow_schema (version bigint NOT NULL); INSERT INTO rhaiflow_schema VALUES (99)");
    let hello = crate::support::example("hello.rhai").display().to_string();
    for url in [db.url.clone(), db.server.url(&bare)] {
        for args in [vec!["run", &hello, "--store", &url], vec!["executions", "list", "--store", &url]] {
            let out = cli(&args);
            out.assert_code(2);
            assert!(
                out.stderr.contains("another version of rhaiflow") && out.stderr.contains("store format 99"),
                "{}",
                out.stderr
            );
        }
    }
    assert_eq!(db.psql("SELECT count(*) FROM rhaiflow_executions"), "1", "nothing more was recorded");
    assert_eq!(db.server.psql(&bare, "SELECT count(*) FROM pg_tables WHERE tablename LIKE 'rhaiflow_%'"), "1");
}

// ---------------------------------------------------------------------------------------------
// Pruning

/// The RFC 3339 time `ago` (an interval) before now, as the store writes times.
fn time_ago(ago: &str) -> String {
    format!("to_char((now() - interval '{ago}') AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
}

// `executions prune` on PostgreSQL removes finished executions older than the duration with
// their events, a crashed one only when named, and never a running one (its lease is held).
#[test]
fn prune_removes_old_finished_executions_and_never_a_running_one() {
    let Some(db) = database("postgres_store::prune_removes_old_finished_executions_and_never_a_running_one") else {
        return;
    };
    let hello = crate::support::example("hello.rhai");
    let ids: Vec<String> = (0..4)
        .map(|_| {
            let run = db.run(&hello).output();
            run.assert_code(0);
            run.execution_id()
        })
        .collect();
    let [old, new, running, crashed] = [&ids[0], &ids[1], &ids[2], &ids[3]];
    for (id, ago) in [(old, "10 days"), (new, "1 minute"), (running, "10 days"), (crashed, "11 days")] {
        db.psql(&format!(
            "UPDATE rhaiflow_executions SET started_at = {}, ended_at = {} WHERE id = '{id}'",
            time_ago(ago),
            time_ago(ago)
        ));
    }
    // Running elsewhere, its lease held; and one whose lease ran out.
    for (id, lease) in [(running, "now() + interval '1 hour'"), (crashed, "now() - interval '1 second'")] {
        db.psql(&format!(
            "UPDATE rhaiflow_executions SET status = 'running', ended_at = NULL, owner = 'elsewhere:7',
               machine = 'elsewhere', lease_until = {lease} WHERE id = '{id}'"
        ));
    }
    assert_eq!(db.listed_status(running), "running");
    assert_eq!(db.listed_status(crashed), "crashed");
    assert!(db.event_rows(old) > 0);
    // Picked as on SQLite; `running` and `crashed` are told apart by the lease.
    for (args, expected) in [
        (&["--status", "crashed"][..], vec![crashed]),
        (&["--status", "running"], vec![running]),
        (&["--since", "2h"], vec![new]),
        (&["--limit", "2"], vec![new, running]),
        (&["--status", "running,crashed", "--limit", "1"], vec![running]),
    ] {
        let mut all = vec!["list"];
        all.extend_from_slice(args);
        let list = db.executions(&all);
        list.assert_code(0);
        let ids: Vec<&str> = list.stdout.lines().skip(1).map(|l| l.split_whitespace().next().unwrap()).collect();
        assert_eq!(ids, expected.iter().map(|id| id.as_str()).collect::<Vec<_>>(), "list {args:?}");
    }

    let pruned = db.executions(&["prune", "--older-than", "1h"]);
    pruned.assert_code(0);
    let removed: Vec<&str> = pruned.stdout.lines().map(|l| l.split_whitespace().nth(1).unwrap()).collect();
    assert_eq!(removed, [old.as_str()], "{}", pruned.stdout);
    assert_eq!(db.event_rows(old), 0, "the events of a pruned execution are gone");
    db.executions(&["events", old]).assert_code(2);

    let pruned = db.executions(&["prune", "--older-than", "1d", "--status", "crashed"]);
    pruned.assert_code(0);
    assert!(pruned.stdout.contains(crashed.as_str()) && pruned.stdout.lines().count() == 1, "{}", pruned.stdout);
    let left = db.psql("SELECT id FROM rhaiflow_executions ORDER BY number");
    assert_eq!(left.lines().collect::<Vec<_>>(), [new.as_str(), running.as_str()]);
    assert!(db.event_rows(new) > 0 && db.event_rows(running) > 0);
}

// ---------------------------------------------------------------------------------------------
// Over TCP, with a password

/// Runs `rhaiflow ARGS…` with `env` added; asserts that the password shows nowhere in what
/// it printed, and returns it.
#[track_caller]
fn never_showing(password: &str, args: &[&str], env: &[(&str, &str)]) -> Cli {
    let mut command = rhaiflow();
    command.args(args).envs(env.iter().copied());
    let out = cli_of(&mut command);
    assert!(!out.stdout.contains(password) && !out.stderr.contains(password), "{}{}", out.stdout, out.stderr);
    out
}

// rhaiflow reaches a server over TCP as a role that needs a password, given in the URL or
// in PGPASSWORD, and never shows it: not on success, nor a wrong password, nor a server that
// is not there, nor in `executions list` or the hint to resume.
#[test]
fn a_password_in_the_url_or_pgpassword_connects_over_tcp_and_is_never_shown() {
    let Some(server) = postgres() else {
        return crate::support::skip("postgres_store::a_password_…", "no PostgreSQL installed");
    };
    let db = server.fresh_database("postgres_store::password", Some(PASSWORD_ROLE));
    let url = server.tcp_url(&db);
    let script = crate::support::fixtures().join("store_fails_once.rhai").display().to_string();
    let failed = never_showing(PASSWORD, &["run", &script, "-p", "fail=true", "--store", &url], &[]);
    failed.assert_code(1);
    let hint = format!("--store 'postgres://{PASSWORD_ROLE}:***@127.0.0.1:{}/{db}'", server.port);
    assert!(failed.stderr.contains(&hint), "the resume hint names the store: {}", failed.stderr);
    never_showing(PASSWORD, &["run", &script, "--store", &url], &[]).assert_code(0);
    let list = never_showing(PASSWORD, &["executions", "list", "--store", &url], &[]);
    list.assert_code(0);
    assert_eq!(list.stdout.lines().count(), 3, "{}", list.stdout);

    // The password from the environment, as libpq takes it.
    let bare = format!("postgres://{PASSWORD_ROLE}@127.0.0.1:{}/{db}", server.port);
    never_showing(PASSWORD, &["executions", "list", "--store", &bare], &[("PGPASSWORD", PASSWORD)]).assert_code(0);
    // The URL from the environment.
    let listed = never_showing(PASSWORD, &["executions", "list"], &[("RHAIFLOW_STORE", &url)]);
    assert_eq!(listed.stdout, list.stdout);

    let wrong = url.replace(PASSWORD, "not-the-pw-31");
    let refused = never_showing("not-the-pw-31", &["executions", "list", "--store", &wrong], &[]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("password authentication failed"), "{}", refused.stderr);
    let unreachable = url.replace(&format!(":{}/", server.port), &format!(":{}/", crate::postgres_server::free_port()));
    let refused = never_showing(PASSWORD, &["run", &script, "--store", &unreachable], &[]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("cannot open the execution store"), "{}", refused.stderr);
}

// A password with `/`, `?` or `#` in it, not percent-encoded, is read by the client as the
// password all the same; it was shown in full in every message that named the store.
#[test]
fn a_password_with_a_slash_or_a_question_mark_is_never_shown() {
    let Some(server) = postgres() else {
        return crate::support::skip("postgres_store::a_password_with_a_slash…", "no PostgreSQL installed");
    };
    let db = server.fresh_database("postgres_store::slash_password", Some(PASSWORD_ROLE));
    for password in ["pw/with?odd#chars", "pw?odd/chars"] {
        let url = format!("postgres://{PASSWORD_ROLE}:{password}@127.0.0.1:{}/{db}", server.port);
        let refused = never_showing(password, &["executions", "list", "--store", &url], &[]);
        refused.assert_code(2);
        assert!(refused.stderr.contains("password authentication failed"), "{}", refused.stderr);
    }
}
