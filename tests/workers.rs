//! Workers on a PostgreSQL store (`run --submit`, `rhaiflow worker`, `workers list`): real
//! worker processes on the throw-away server of `postgres_server`, playing several machines
//! with `RHAIFLOW_MACHINE` and a short lease (`RHAIFLOW_LEASE`). Skipped where PostgreSQL is
//! not installed, unless CI requires it.

use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use tempfile::TempDir;

use crate::postgres_server::{postgres, Postgres, PASSWORD, PASSWORD_ROLE};
use crate::support::rhaiflow;

/// A fresh database of the test server, and a scratch folder for effects and bundles.
struct Cluster {
    pg: &'static Postgres,
    db: String,
    url: String,
    dir: TempDir,
    /// The workers started, killed when the test ends however it ends (a failed assertion
    /// left them running, polling a server that was gone).
    started: std::cell::RefCell<Vec<u32>>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for pid in self.started.borrow().iter() {
            // SAFETY: kill(2) of a worker this test started (gone already: ESRCH, ignored).
            unsafe { libc::kill(*pid as i32, libc::SIGKILL) };
        }
    }
}

impl Cluster {
    fn new(name: &str) -> Option<Cluster> {
        Cluster::connected(name, false)
    }

    /// `tcp`: reached over TCP with a password instead of the socket.
    fn connected(name: &str, tcp: bool) -> Option<Cluster> {
        let pg = postgres()?;
        let db = format!("workers_{name}");
        let owner = if tcp { format!(" OWNER {PASSWORD_ROLE}") } else { String::new() };
        pg.psql("postgres", &format!("CREATE DATABASE {db}{owner}"));
        let dir = tempfile::tempdir().unwrap();
        let url = if tcp { pg.tcp_url(&db) } else { pg.url(&db) };
        let cluster = Cluster { pg, url, db, dir, started: Default::default() };
        // Its tables made now: the tests look at them before any worker or run has started.
        cluster.command(&["executions", "list"]).assert().success();
        Some(cluster)
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `rhaiflow ARGS` on this cluster's store.
    fn command(&self, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = rhaiflow();
        cmd.args(args).env("RHAIFLOW_STORE", &self.url).envs(self.scratch_env());
        cmd
    }

    /// The cluster's bundles, and its temp folder: what its processes unpack or write there
    /// (built-in workflows, blueprints, the three-tier example's folders) goes with the test.
    fn scratch_env(&self) -> [(&'static str, String); 3] {
        [
            ("RHAIFLOW_BUNDLES", self.path("bundles")),
            ("TMPDIR", self.path("")),
            ("RHAIFLOW_EXAMPLE_ROOT", self.path("three-tier")),
        ]
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
        let child = StdCommand::cargo_bin("rhaiflow")
            .unwrap()
            .arg("worker")
            .args(args)
            .env("RHAIFLOW_STORE", &self.url)
            .envs(self.scratch_env())
            .env("RHAIFLOW_MACHINE", machine)
            .env("RHAIFLOW_LEASE", lease)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        self.started.borrow_mut().push(child.id());
        child
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
    let ids: Vec<String> = (0..50).map(|i| c.submit(&format!("w{i}.rhai"), &chain(4, 0.3, &out), &[])).collect();
    // Three workers side by side, on three "machines"; one is killed in the middle of the run.
    let doomed = c.worker("doomed", "2", &["--concurrency", "6"]);
    let others: Vec<Child> = ["b", "c"].iter().map(|m| c.worker(m, "2", &["--concurrency", "6", "--drain"])).collect();
    let its = format!("status = 'running' AND owner LIKE '%:{}'", doomed.id());
    let started = format!("SELECT count(*) > 0 FROM rhaiflow_executions WHERE {its} AND tasks_done > 0");
    c.wait_for(&started, "t", Duration::from_secs(30));
    let held = c.sql(&format!("SELECT string_agg(quote_literal(id), ',') FROM rhaiflow_executions WHERE {its}"));
    kill(&doomed, libc::SIGKILL);
    let killed_at = Instant::now();
    let _ = finish(doomed);
    let held_count = held.split(',').count().to_string();
    let taken_up = format!("SELECT count(*) FROM rhaiflow_executions WHERE id IN ({held}) AND resumes > 0");
    c.wait_for(&taken_up, &held_count, Duration::from_secs(30));
    let recovery = killed_at.elapsed();
    for worker in others {
        let (code, stderr) = finish(worker);
        assert_eq!(code, 0, "{stderr}");
    }
    assert!(recovery <= Duration::from_secs(4), "taken up {recovery:?} after the kill: more than lease + 2 s");
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_executions WHERE status = 'succeeded'"), "50");
    let seen = effects(&out);
    for id in &ids {
        let times = |t: usize| seen.iter().filter(|l| **l == format!("t{t}-{id}")).count();
        assert!((0..4).all(|t| times(t) >= 1), "a task of {id} never ran: {seen:?}");
        let repeated = (0..4).filter(|&t| times(t) > 1).count();
        assert!(repeated <= 1, "{id}: {repeated} tasks ran twice; only the one running at the kill may");
        assert!(
            repeated == 0 || held.contains(id.as_str()),
            "{id} ran a task twice, yet the killed worker never held it"
        );
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
    assert!(said.contains(&format!("✘ failed {id}")), "the paused worker's run did not stop: {said}");
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_event_rows"), rows_before, "the paused worker wrote after");
    // It ran no task after it was told: at most the one it was running ran twice.
    let seen = effects(&out);
    let twice = (0..3).filter(|t| seen.iter().filter(|l| **l == format!("t{t}-{id}")).count() > 1).count();
    assert!(twice <= 1, "the paused worker went on running tasks: {seen:?}");
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
    assert!(String::from_utf8_lossy(&out.stderr).contains("submitting to a queue needs a store that workers share"));
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

/// A blueprint folder (`shop/bp.yaml`) of one node with `instances` instances, whose `create`
/// script appends the instance to `out`: the folder and the blueprint's path.
fn shop_folder(c: &Cluster, out: &str, instances: usize) -> (std::path::PathBuf, String) {
    let folder = c.dir.path().join("shop");
    std::fs::create_dir_all(folder.join("scripts")).unwrap();
    std::fs::write(folder.join("scripts/create.sh"), format!("echo \"$RHAIFLOW_INSTANCE\" >> {out}\n")).unwrap();
    let blueprint = format!(
        "node_templates:\n  vm:\n    type: rhaiflow.nodes.Compute\n    instances: {{deploy: {instances}}}\n    \
         interfaces: {{lifecycle: {{create: scripts/create.sh}}}}\n"
    );
    std::fs::write(folder.join("bp.yaml"), blueprint).unwrap();
    let path = folder.join("bp.yaml").display().to_string();
    (folder, path)
}

// A run submitted with a throw-away deployment (`--blueprint`) ships the blueprint and the
// scripts its operations run: the worker runs them with the folder gone from the disk.
#[test]
fn a_submitted_blueprint_travels_with_its_scripts() {
    let Some(c) = Cluster::new("shipped_blueprint") else { return };
    let out = c.path("effects");
    let (folder, blueprint) = shop_folder(&c, &out, 2);
    let submitted = c.command(&["run", "install", "--blueprint", &blueprint, "--submit"]).output().unwrap();
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    std::fs::remove_dir_all(&folder).unwrap();
    let (code, stderr) = finish(c.worker("elsewhere", "5", &["--drain"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("✔ succeeded"), "{stderr}");
    assert_eq!(effects(&out), ["vm_1", "vm_2"]);
}

// A deployment stored in the shared store keeps its blueprint's scripts: a machine without the
// blueprint's folder (here: the folder is gone) runs its operations from a copy of them.
#[test]
fn a_stored_deployment_s_scripts_run_where_its_folder_is_not() {
    let Some(c) = Cluster::new("stored_scripts") else { return };
    let out = c.path("effects");
    let (folder, blueprint) = shop_folder(&c, &out, 1);
    c.command(&["deployments", "create", "shop", "--blueprint", &blueprint]).assert().success();
    std::fs::remove_dir_all(&folder).unwrap();
    let submitted = c.command(&["run", "install", "--deployment", "shop", "--submit"]).output().unwrap();
    assert!(submitted.status.success(), "{}", String::from_utf8_lossy(&submitted.stderr));
    let (code, stderr) = finish(c.worker("elsewhere", "5", &["--drain"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("✔ succeeded"), "{stderr}");
    assert_eq!(effects(&out), ["vm_1"]);
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
    let ours = "application_name = 'rhaiflow listener' AND datname = current_database()";
    let old = c.sql(&format!("SELECT pid FROM pg_stat_activity WHERE {ours}"));
    c.sql(&format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {ours}"));
    let id = c.submit("after.rhai", &chain(1, 0.0, &out), &[]);
    c.wait_for(
        &format!("SELECT status FROM rhaiflow_executions WHERE id = '{id}'"),
        "succeeded",
        Duration::from_secs(10),
    );
    c.wait_for(listening, "1", Duration::from_secs(10));
    let new = c.sql(&format!("SELECT pid FROM pg_stat_activity WHERE {ours}"));
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
    let listeners = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rhaiflow listener' \
                     AND datname = current_database()";
    assert_eq!(c.sql(listeners), "0", "a poll-only worker listens");
    kill(&worker, libc::SIGTERM);
    let (code, stderr) = finish(worker);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(effects(&out), vec![format!("t0-{id}")]);
}

/// `rhaiflow run SCRIPT` on the cluster's store, started in the background.
fn run_in_background(c: &Cluster, script: &str, file: &str) -> Child {
    let path = c.path(file);
    std::fs::write(&path, script).unwrap();
    StdCommand::cargo_bin("rhaiflow")
        .unwrap()
        .args(["run", &path, "--events-json", &c.path("events.jsonl")])
        .env("RHAIFLOW_STORE", &c.url)
        .envs(c.scratch_env())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

// A shell or exec task with a `queue` runs on a worker listening on that queue (its process is
// the worker's child, not the run's), its result comes back to the script, a failure comes
// back as one (retried as any), and nothing is left in the task tables.
#[test]
fn a_task_with_a_queue_runs_on_a_worker_and_its_result_comes_back() {
    let Some(c) = Cluster::new("dispatch") else { return };
    let tries = c.path("tries");
    let worker = c.worker("far", "5", &["--queue", "far"]);
    let script = format!(
        r#"let g = graph_mode();
let s = g.sequence();
let there = shell("there", "echo $PPID", #{{queue: "far"}});
s.add(there);
let flaky = exec("flaky", ["sh", "-c", "echo try >> {tries}; [ $(wc -l < {tries}) -ge 2 ]"], #{{queue: "far"}});
flaky.total_retries = 2;
flaky.retry_interval = 0.1;
s.add(flaky);
g.execute();
there.get().stdout"#
    );
    let run = run_in_background(&c, &script, "dispatch.rhai");
    let out = run.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let parent: String = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(parent.trim(), worker.id().to_string(), "not run by the worker");
    assert_eq!(std::fs::read_to_string(&tries).unwrap().lines().count(), 2, "the failed try was not retried");
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_task_runs"), "0");
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_task_queue"), "0");
    kill(&worker, libc::SIGTERM);
    let (code, stderr) = finish(worker);
    assert_eq!(code, 0, "{stderr}");
}

// A forced cancel reaches a task running on a worker: its process is killed within about a
// second, and the run ends cancelled.
#[test]
fn a_forced_cancel_reaches_a_task_running_on_a_worker() {
    let Some(c) = Cluster::new("dispatch_cancel") else { return };
    let worker = c.worker("far", "5", &["--queue", "far"]);
    let script = r#"let g = graph_mode(); g.add_task(shell("long", "sleep 37", #{queue: "far"})); g.execute();"#;
    let run = run_in_background(&c, script, "long.rhai");
    c.wait_for("SELECT count(*) FROM rhaiflow_task_runs WHERE owner <> ''", "1", Duration::from_secs(30));
    let sleeping = || !StdCommand::new("pgrep").args(["-f", "^sleep 37$"]).output().unwrap().stdout.is_empty();
    let started = Instant::now();
    while !sleeping() {
        assert!(started.elapsed() < Duration::from_secs(10), "the task's process never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let id = c.sql("SELECT execution_id FROM rhaiflow_task_runs");
    c.command(&["executions", "cancel", &id, "--force"]).assert().success();
    // From the request on record to the process killed on the worker: within a second.
    let asked = Instant::now();
    while sleeping() {
        assert!(asked.elapsed() < Duration::from_secs(1), "the cancel took more than a second to reach the task");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(asked.elapsed() < Duration::from_secs(3), "the run ended {:?} after the cancel", asked.elapsed());
    kill(&worker, libc::SIGTERM);
    let (_, said) = finish(worker);
    assert!(said.contains("✘ cancelled") || said.contains("task long"), "{said}");
}

// A worker that dies while it runs a sent task: the task is sent again once its lease ran
// out, another worker runs it, and the run succeeds (at least once).
#[test]
fn a_task_whose_worker_died_is_run_by_another() {
    let Some(c) = Cluster::new("dispatch_lost") else { return };
    let tries = c.path("tries");
    let doomed = c.worker("doomed", "1", &["--queue", "far"]);
    let script = format!(
        r#"let g = graph_mode(); g.add_task(shell("slow", "echo try >> {tries}; sleep 2", #{{queue: "far"}})); g.execute();"#
    );
    let mut run = StdCommand::cargo_bin("rhaiflow").unwrap();
    std::fs::write(c.path("slow.rhai"), script).unwrap();
    let run = run
        .args(["run", &c.path("slow.rhai")])
        .env("RHAIFLOW_STORE", &c.url)
        .envs(c.scratch_env())
        .env("RHAIFLOW_LEASE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.wait_for("SELECT count(*) FROM rhaiflow_task_runs WHERE owner <> ''", "1", Duration::from_secs(30));
    // Killed once its try began: a worker killed between its claim and the start of the
    // command (a busy machine) left one try, not two.
    let began = Instant::now();
    while std::fs::read_to_string(&tries).map_or(true, |t| t.is_empty()) && began.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(20));
    }
    kill(&doomed, libc::SIGKILL);
    let _ = finish(doomed);
    let other = c.worker("other", "1", &["--queue", "far"]);
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read_to_string(&tries).unwrap().lines().count(), 2);
    kill(&other, libc::SIGTERM);
    let _ = finish(other);
}

// `noop(name, #{queue})` does nothing on a worker of that queue: it succeeds once one took it,
// naming it, and leaves nothing behind in the task tables; a bad option is refused.
#[test]
fn a_noop_on_a_queue_is_answered_by_a_worker_listening_there() {
    let Some(c) = Cluster::new("noop_on_queue") else { return };
    let worker = c.worker("far", "5", &["--queue", "far"]);
    let script = r#"let g = graph_mode();
let pings = [];
for i in 0..200 { pings.push(g.add_task(noop(`ping${i}`, #{queue: "far"}))); }
g.execute();
let names = pings.map(|p| p.get().worker);
names.dedup();
names"#;
    let run = run_in_background(&c, script, "ping.rhai");
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<String> = serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(names.len(), 1, "{names:?}");
    assert!(names[0].ends_with(&format!(":{}", worker.id())), "{names:?}");
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_task_runs"), "0");
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_task_queue"), "0");
    let bad = c.path("bad.rhai");
    std::fs::write(&bad, r#"let g = graph_mode(); g.add_task(noop("x", #{queu: "far"})); g.execute();"#).unwrap();
    let out = c.command(&["run", &bad]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "a script that cannot build its graph is bad input");
    assert!(String::from_utf8_lossy(&out.stderr).contains("noop: unknown option `queu` (expected queue)"));
    kill(&worker, libc::SIGTERM);
    let (code, stderr) = finish(worker);
    assert_eq!(code, 0, "{stderr}");
}

// Without workers (a SQLite store) a task with a queue cannot run: it fails saying why.
#[test]
fn a_task_with_a_queue_on_a_sqlite_store_fails_saying_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.rhai");
    std::fs::write(&path, r#"let g = graph_mode(); g.add_task(shell("far", "true", #{queue: "gpu"})); g.execute();"#)
        .unwrap();
    let store = dir.path().join("runs.db");
    let out = rhaiflow().args(["run"]).arg(&path).arg("--store").arg(&store).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("runs on queue `gpu`, which needs workers sharing a PostgreSQL store"), "{said}");
}

// Sent tasks are taken once each by three workers on one queue: no effect twice, none lost.
#[test]
fn three_workers_run_every_sent_task_exactly_once() {
    let Some(c) = Cluster::new("sent_once") else { return };
    let out = c.path("effects");
    let workers: Vec<Child> = ["a", "b", "c"].iter().map(|m| c.worker(m, "5", &["--queue", "q"])).collect();
    let script = format!(
        "let g = graph_mode();\nfor i in 0..60 {{ g.add_task(shell(`t${{i}}`, `echo t${{i}} >> {out}`, #{{queue: \"q\"}})); }}\n\
         g.execute();\n"
    );
    let run = run_in_background(&c, &script, "fan.rhai");
    let finished = run.wait_with_output().unwrap();
    assert_eq!(finished.status.code(), Some(0), "{}", String::from_utf8_lossy(&finished.stderr));
    let mut want: Vec<String> = (0..60).map(|i| format!("t{i}")).collect();
    want.sort();
    assert_eq!(effects(&out), want);
    for worker in workers {
        kill(&worker, libc::SIGTERM);
        let (code, stderr) = finish(worker);
        assert_eq!(code, 0, "{stderr}");
    }
}

// The tasks an execution sent and never read back (it was killed) were kept for ever: the
// reaper forgets them once the execution ended.
#[test]
fn tasks_of_an_execution_that_ended_are_forgotten() {
    let Some(c) = Cluster::new("sent_forgotten") else { return };
    let script = r#"let g = graph_mode(); g.add_task(shell("never", "true", #{queue: "nobody"})); g.execute();"#;
    let mut run = run_in_background(&c, script, "orphan.rhai");
    c.wait_for("SELECT count(*) FROM rhaiflow_task_queue", "1", Duration::from_secs(30));
    run.kill().unwrap();
    let _ = run.wait();
    c.sql("UPDATE rhaiflow_executions SET status = 'failed'");
    let (code, stderr) = finish(c.worker("m", "5", &["--drain", "--queue", "other"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_task_queue"), "0");
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_task_runs"), "0");
}

// Workers on other machines reach the server over TCP, with a password that no line of theirs
// shows.
#[test]
fn workers_connect_over_tcp_and_never_show_the_password() {
    let Some(c) = Cluster::connected("tcp", true) else { return };
    let out = c.path("effects");
    let id = c.submit("a.rhai", &chain(1, 0.0, &out), &[]);
    let (code, stderr) = finish(c.worker("m", "5", &["--drain"]));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(effects(&out), vec![format!("t0-{id}")]);
    let listed = c.command(&["workers", "list"]).output().unwrap();
    let said =
        format!("{stderr}{}{}", String::from_utf8_lossy(&listed.stdout), String::from_utf8_lossy(&listed.stderr));
    assert!(!said.contains(PASSWORD), "{said}");
}

// A blueprint node names the queue its operations run on (the host's agent): its script
// operations, and those of the nodes contained in it, run on a worker listening there, with
// the instance's runtime properties going there and back; an operation marked
// `central_deployment_agent` stays with the execution, and the script a task option placed
// (`execute_operation(op, kwargs, #{queue})`) goes where it says.
#[test]
fn operations_run_on_the_queue_their_host_names_and_their_runtime_properties_come_back() {
    let Some(c) = Cluster::new("operations") else { return };
    let effects = c.path("effects");
    std::fs::create_dir_all(c.path("scripts")).unwrap();
    let who = format!(
        "echo \"$RHAIFLOW_INSTANCE $RHAIFLOW_OPERATION $PPID\" >> {effects}\n\
         seen=$(cat \"$RHAIFLOW_RUNTIME_PROPERTIES\")\n\
         printf '{{\"by\": %s, \"before\": %s}}' \"$PPID\" \"$seen\" > \"$RHAIFLOW_RUNTIME_PROPERTIES\"\n"
    );
    std::fs::write(c.path("scripts/who.sh"), who).unwrap();
    let blueprint = "node_templates:
  vm:
    type: rhaiflow.nodes.Compute
    queue: vm_agent
    interfaces: {lifecycle: {create: scripts/who.sh}}
  app:
    type: rhaiflow.nodes.Root
    relationships: [{type: rhaiflow.relationships.contained_in, target: vm}]
    interfaces:
      lifecycle:
        create: scripts/who.sh
        configure: {script: scripts/who.sh, executor: central_deployment_agent}
        start: {script: scripts/who.sh, queue: elsewhere}
";
    std::fs::write(c.path("bp.yaml"), blueprint).unwrap();
    c.command(&["deployments", "create", "shop", "--blueprint", &c.path("bp.yaml")]).assert().success();
    let agent = c.worker("vm", "5", &["--queue", "vm_agent"]);
    let elsewhere = c.worker("other", "5", &["--queue", "elsewhere"]);
    let out = c.command(&["run", "install", "--deployment", "shop"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let ran: Vec<(String, String)> = effects_of(&effects);
    let (agent_pid, elsewhere_pid) = (agent.id().to_string(), elsewhere.id().to_string());
    let by = |instance: &str, operation: &str| {
        ran.iter()
            .find(|(what, _)| what.starts_with(instance) && what.ends_with(operation))
            .unwrap_or_else(|| panic!("{instance} {operation} did not run: {ran:?}"))
            .1
            .clone()
    };
    let vm = ran.iter().find(|(what, _)| what.starts_with("vm_")).unwrap().0.split(' ').next().unwrap().to_string();
    let app = ran.iter().find(|(what, _)| what.starts_with("app_")).unwrap().0.split(' ').next().unwrap().to_string();
    assert_eq!(by(&vm, "lifecycle.create"), agent_pid, "the host's own operation");
    assert_eq!(by(&app, "lifecycle.create"), agent_pid, "an operation of a node on the host");
    assert_ne!(by(&app, "lifecycle.configure"), agent_pid, "central_deployment_agent");
    assert_ne!(by(&app, "lifecycle.configure"), elsewhere_pid);
    assert_eq!(by(&app, "lifecycle.start"), elsewhere_pid, "the operation's own queue");
    // What the scripts left came back: the last (start) saw what configure left.
    let shown = c.command(&["deployments", "show", "shop"]).output().unwrap();
    let shown = String::from_utf8_lossy(&shown.stdout).to_string();
    let app_line = shown.lines().find(|l| l.trim_start().starts_with(&app)).unwrap_or_else(|| panic!("{shown}"));
    let properties: serde_json::Value =
        serde_json::from_str(&format!("{{{}", app_line.split_once("  {").unwrap().1)).unwrap();
    assert_eq!(properties["by"].to_string(), elsewhere_pid, "{shown}");
    assert_eq!(properties["before"]["before"]["by"].to_string(), agent_pid, "{shown}");
    assert_eq!(c.sql("SELECT count(*) FROM rhaiflow_task_runs"), "0");
    // A script places an operation itself: on a queue, or ("") with the execution.
    let script = c.path("placed.rhai");
    std::fs::write(
        &script,
        r#"let g = graph_mode();
for node in ctx.nodes {
    let queue = if node.id == "vm" { "elsewhere" } else { "" };
    for i in node.instances {
        g.add_task(i.execute_operation("lifecycle.create", #{}, #{queue: queue}));
    }
}
g.execute();"#,
    )
    .unwrap();
    std::fs::write(&effects, "").unwrap();
    let out = c.command(&["run", &script, "--deployment", "shop"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let ran: Vec<(String, String)> = effects_of(&effects);
    let by = |instance: &str| ran.iter().find(|(what, _)| what.starts_with(instance)).unwrap().1.clone();
    assert_eq!(by(&vm), elsewhere_pid);
    assert_ne!(by(&app), agent_pid);
    assert_ne!(by(&app), elsewhere_pid);
    for worker in [agent, elsewhere] {
        kill(&worker, libc::SIGTERM);
        let (code, stderr) = finish(worker);
        assert_eq!(code, 0, "{stderr}");
    }
}

/// The lines `instance operation pid` as `("instance operation", "pid")`.
fn effects_of(path: &str) -> Vec<(String, String)> {
    effects(path)
        .iter()
        .map(|line| {
            let (what, pid) = line.rsplit_once(' ').unwrap();
            (what.to_string(), pid.to_string())
        })
        .collect()
}

// A submitted execution a worker took but could not run (its shipped script gone from the
// store) was left `running`: the lease ran out, it was queued again, and refused again, for
// ever. It now ends failed, saying why.
#[test]
fn an_execution_a_worker_cannot_run_ends_failed() {
    let Some(c) = Cluster::new("unrunnable") else { return };
    let out = c.path("effects");
    let id = c.submit("gone.rhai", &chain(1, 0.0, &out), &[]);
    std::fs::remove_file(c.path("gone.rhai")).unwrap();
    c.sql("DELETE FROM rhaiflow_sources");
    let (code, stderr) = finish(c.worker("elsewhere", "5", &["--drain"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert_eq!(c.status(&id), "failed");
    let error = c.sql(&format!("SELECT error FROM rhaiflow_executions WHERE id = '{id}'"));
    assert!(!error.is_empty(), "no reason recorded");
}
