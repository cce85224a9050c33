//! Workers on a PostgreSQL store (`run --submit`, `rhaiflow worker`, `workers list`): real
//! worker processes on the throw-away server of `postgres_server`, playing several machines
//! with `RHAIFLOW_MACHINE` and a short lease (`RHAIFLOW_LEASE`). Skipped where PostgreSQL is
//! not installed, unless CI requires it.

use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use tempfile::TempDir;

use crate::postgres_server::{postgres, Postgres};
use crate::support::rhaiflow;

/// A fresh database of the test server, and a scratch folder for effects and bundles.
struct Cluster {
    pg: &'static Postgres,
    db: String,
    url: String,
    dir: TempDir,
}

impl Cluster {
    fn new(name: &str) -> Option<Cluster> {
        let pg = postgres()?;
        let db = format!("workers_{name}");
        pg.psql("postgres", &format!("CREATE DATABASE {db}"));
        Some(Cluster { pg, url: pg.url(&db), db, dir: tempfile::tempdir().unwrap() })
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `rhaiflow ARGS` on this cluster's store.
    fn command(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = rhaiflow();
        cmd.args(args).env("RHAIFLOW_STORE", &self.url).env("RHAIFLOW_BUNDLES", self.path("bundles"));
        cmd
    }

    /// Writes `script` and submits it; returns the execution id.
    fn submit(&self, file: &str, script: &str, extra: &[&str]) -> String {
        let path = self.path(file);
        std::fs::write(&path, script).unwrap();
        let mut args = vec!["run", &path, "--submit"];
        args.extend_from_slice(extra);
        let out = self.command(&args).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// A worker process, as machine `machine`, with a lease of `lease` seconds.
    fn worker(&self, machine: &str, lease: &str, args: &[&str]) -> Child {
        StdCommand::cargo_bin("rhaiflow")
            .unwrap()
            .arg("worker")
            .args(args)
            .env("RHAIFLOW_STORE", &self.url)
            .env("RHAIFLOW_BUNDLES", self.path("bundles"))
            .env("RHAIFLOW_MACHINE", machine)
            .env("RHAIFLOW_LEASE", lease)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn sql(&self, sql: &str) -> String {
        self.pg.psql(&self.db, sql)
    }

    fn status(&self, id: &str) -> String {
        self.sql(&format!("SELECT status FROM rhaiflow_executions WHERE id = '{id}'"))
    }

    /// Waits (at most `limit`) until `sql` gives `want`.
    fn wait_for(&self, sql: &str, want: &str, limit: Duration) {
        let start = Instant::now();
        while self.sql(sql) != want {
            assert!(start.elapsed() < limit, "`{sql}` never gave {want} (gives {})", self.sql(sql));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The lines of the effects file, sorted.
fn effects(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    lines.sort();
    lines
}

/// A workflow of `tasks` shell tasks in a row, each appending `t<n>-<execution>` to `effects`
/// and sleeping `sleep` seconds.
fn chain(tasks: usize, sleep: f64, effects: &str) -> String {
    let mut script = String::from("let g = graph_mode();\nlet s = g.sequence();\n");
    for t in 0..tasks {
        script.push_str(&format!(
            "s.add(shell(\"t{t}\", `echo t{t}-${{ctx.execution_id}} >> {effects}; sleep {sleep}`));\n"
        ));
    }
    script.push_str("g.execute();\n");
    script
}

/// Waits for a worker to end: its exit code and what it said.
fn finish(mut child: Child) -> (i32, String) {
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    (status.code().unwrap_or(-1), stderr)
}

fn kill(child: &Child, signal: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, signal) };
}

// Without failures every submitted execution ran exactly once, whichever of three workers
// took it: no task ran twice, none was skipped.
#[test]
fn three_workers_run_every_submitted_execution_exactly_once() {
    let Some(c) = Cluster::new("exactly_once") else { return };
    let out = c.path("effects");
    let ids: Vec<String> = (0..24).map(|i| c.submit(&format!("w{i}.rhai"), &chain(3, 0.0, &out), &[])).collect();
    let workers: Vec<Child> = ["a", "b", "c"].iter().map(|m| c.worker(m, "5", &["--drain"])).collect();
    for worker in workers {
        let (code, stderr) = finish(worker);
        assert_eq!(code, 0, "{stderr}");
    }
    let mut want: Vec<String> = ids.iter().flat_map(|id| (0..3).map(move |t| format!("t{t}-{id}"))).collect();
    want.sort();
    assert_eq!(effects(&out), want);
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_executions WHERE status = 'succeeded'"), "24");
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_queue"), "0", "taken rows leave the queue");
}

// A worker killed with SIGKILL on another machine: its executions stayed `running` until
// someone resumed them by hand. Now the others take them up once its lease runs out, resume
// them (succeeded tasks are not run again), and only its running tasks run twice.
#[test]
fn a_killed_worker_s_executions_are_taken_up_by_the_others_within_the_lease() {
    let Some(c) = Cluster::new("killed") else { return };
    let out = c.path("effects");
    let ids: Vec<String> = (0..12).map(|i| c.submit(&format!("w{i}.rhai"), &chain(4, 0.3, &out), &[])).collect();
    let doomed = c.worker("doomed", "2", &["--concurrency", "6"]);
    let started = "SELECT count(*) > 0 FROM rhaiflow_executions WHERE status = 'running' AND tasks_done > 0";
    c.wait_for(started, "t", Duration::from_secs(30));
    kill(&doomed, libc::SIGKILL);
    let killed_at = Instant::now();
    // Only the doomed worker ran anything so far: what runs is what it held.
    let held = c.sql("SELECT count(*) FROM rhaiflow_executions WHERE status = 'running'");
    let _ = finish(doomed);
    let others: Vec<Child> = ["b", "c"].iter().map(|m| c.worker(m, "2", &["--drain"])).collect();
    c.wait_for("SELECT count(*) FROM rhaiflow_executions WHERE resumes > 0", &held, Duration::from_secs(30));
    let recovery = killed_at.elapsed();
    for worker in others {
        let (code, stderr) = finish(worker);
        assert_eq!(code, 0, "{stderr}");
    }
    assert!(recovery <= Duration::from_secs(4), "taken up {recovery:?} after the kill: more than lease + 2 s");
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_executions WHERE status = 'succeeded'"), "12");
    let seen = effects(&out);
    for id in &ids {
        let times = |t: usize| seen.iter().filter(|l| **l == format!("t{t}-{id}")).count();
        assert!((0..4).all(|t| times(t) >= 1), "a task of {id} never ran: {seen:?}");
        let repeated = (0..4).filter(|&t| times(t) > 1).count();
        assert!(repeated <= 1, "{id}: {repeated} tasks ran twice; only the one running at the kill may");
    }
}

// A worker paused past its lease (SIGSTOP) came back and went on writing an execution that
// another worker had taken over: two writers of one execution. Its commits are refused now.
#[test]
fn a_worker_paused_past_its_lease_cannot_write_what_another_took_over() {
    let Some(c) = Cluster::new("fenced") else { return };
    let out = c.path("effects");
    let id = c.submit("w.rhai", &chain(3, 1.0, &out), &[]);
    let paused = c.worker("paused", "1", &[]);
    let progressed = format!("SELECT tasks_done > 0 FROM rhaiflow_executions WHERE id = '{id}'");
    c.wait_for(&progressed, "t", Duration::from_secs(30));
    kill(&paused, libc::SIGSTOP);
    let (code, stderr) = finish(c.worker("taker", "1", &["--drain"]));
    assert_eq!(code, 0, "{stderr}");
    let rows_before = c.sql("SELECT count(*) FROM rhaiflow_event_rows");
    kill(&paused, libc::SIGCONT);
    std::thread::sleep(Duration::from_secs(3));
    kill(&paused, libc::SIGKILL);
    let (_, said) = finish(paused);
    assert!(said.contains("lost execution"), "the paused worker was not told: {said}");
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_event_rows"), rows_before, "the paused worker wrote after");
    assert_eq!(c.status(&id), "succeeded");
}

// A submission is checked as a run is: a script that does not compile is refused (exit 2)
// and nothing is queued; a SQLite store cannot be submitted to (no worker shares it).
#[test]
fn bad_submissions_are_refused_before_anything_is_queued() {
    let Some(c) = Cluster::new("refused") else { return };
    let path = c.path("bad.rhai");
    std::fs::write(&path, "let x = ;").unwrap();
    let out = c.command(&["run", &path, "--submit"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let listed = c.command(&["executions", "list"]).output().unwrap();
    assert!(listed.status.success() && listed.stdout.is_empty(), "{}", String::from_utf8_lossy(&listed.stdout));
    let good = c.path("good.rhai");
    std::fs::write(&good, "42").unwrap();
    let sqlite = c.path("runs.db");
    let out = c.command(&["run", &good, "--submit", "--store", &sqlite]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--submit needs a store that workers share"));
}

// A worker on another machine has no copy of the script: the script travels in the store.
#[test]
fn a_worker_runs_a_submitted_script_that_is_not_on_its_disk() {
    let Some(c) = Cluster::new("shipped") else { return };
    let out = c.path("effects");
    let id = c.submit("gone.rhai", &chain(1, 0.0, &out), &[]);
    std::fs::remove_file(c.path("gone.rhai")).unwrap();
    let (code, stderr) = finish(c.worker("elsewhere", "5", &["--drain"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(effects(&out), vec![format!("t0-{id}")]);
}

// A queued execution that is cancelled never runs; a worker only takes its own queues.
#[test]
fn a_cancelled_queued_execution_never_runs_and_queues_are_kept_apart() {
    let Some(c) = Cluster::new("queues") else { return };
    let out = c.path("effects");
    let cancelled = c.submit("a.rhai", &chain(1, 0.0, &out), &[]);
    let elsewhere = c.submit("b.rhai", &chain(1, 0.0, &out), &["--queue", "gpu"]);
    let kept = c.submit("c.rhai", &chain(1, 0.0, &out), &[]);
    c.command(&["executions", "cancel", &cancelled]).assert().success();
    let (code, stderr) = finish(c.worker("m", "5", &["--drain", "--queue", "default"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(effects(&out), vec![format!("t0-{kept}")]);
    assert_eq!((c.status(&cancelled), c.status(&elsewhere)), ("cancelled".into(), "queued".into()));
}

// SIGTERM stops a worker gracefully: it finishes what it runs, takes nothing more, and is
// listed by `workers list` while alive with what it runs.
#[test]
fn a_worker_is_listed_with_its_work_and_sigterm_lets_it_finish() {
    let Some(c) = Cluster::new("graceful") else { return };
    let out = c.path("effects");
    let running = c.submit("slow.rhai", &chain(1, 2.0, &out), &[]);
    let worker = c.worker("m", "5", &[]);
    let status = format!("SELECT status FROM rhaiflow_executions WHERE id = '{running}'");
    c.wait_for(&status, "running", Duration::from_secs(30));
    let listed = c.command(&["workers", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    assert!(listed.contains("\talive\tdefault\t4\t") && listed.contains(&running), "{listed}");
    kill(&worker, libc::SIGTERM);
    let later = c.submit("later.rhai", &chain(1, 0.0, &out), &[]);
    let (code, stderr) = finish(worker);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!((c.status(&running), c.status(&later)), ("succeeded".into(), "queued".into()));
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_workers"), "0", "a stopped worker leaves the list");
}

// The LISTEN connection of a worker was terminated (a server restart, a proxy): work goes on,
// and the worker listens again on a new connection.
#[test]
fn work_goes_on_when_the_listening_connection_is_lost() {
    let Some(c) = Cluster::new("listener") else { return };
    let out = c.path("effects");
    let worker = c.worker("m", "5", &[]);
    let listening = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rhaiflow listener' \
                     AND query LIKE 'LISTEN%' AND datname = current_database()";
    c.wait_for(listening, "1", Duration::from_secs(30));
    let old = c.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'rhaiflow listener'");
    c.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rhaiflow listener'");
    let id = c.submit("after.rhai", &chain(1, 0.0, &out), &[]);
    c.wait_for(
        &format!("SELECT status FROM rhaiflow_executions WHERE id = '{id}'"),
        "succeeded",
        Duration::from_secs(10),
    );
    c.wait_for(listening, "1", Duration::from_secs(10));
    let new = c.sql("SELECT pid FROM pg_stat_activity WHERE application_name = 'rhaiflow listener'");
    assert_ne!(old, new, "the listener is the same connection");
    kill(&worker, libc::SIGTERM);
    let (code, stderr) = finish(worker);
    assert_eq!(code, 0, "{stderr}");
}

// Behind a pooler in transaction mode LISTEN does not hold: `--poll-only` workers find work
// by looking every --poll-interval.
#[test]
fn a_poll_only_worker_finds_submitted_work() {
    let Some(c) = Cluster::new("poll_only") else { return };
    let out = c.path("effects");
    let id = c.submit("a.rhai", &chain(1, 0.0, &out), &[]);
    let worker = c.worker("m", "5", &["--poll-only", "--poll-interval", "0.05"]);
    let status = format!("SELECT status FROM rhaiflow_executions WHERE id = '{id}'");
    c.wait_for(&status, "succeeded", Duration::from_secs(10));
    let listeners = c.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rhaiflow listener'");
    assert_eq!(listeners, "0", "a poll-only worker listens");
    kill(&worker, libc::SIGTERM);
    let (code, stderr) = finish(worker);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(effects(&out), vec![format!("t0-{id}")]);
}
