//! What every area's tests share: running the real binary on a fixture, reading the events
//! it wrote, checking the contract's event invariants, and normalising human output (ids,
//! timings) so that it can be snapshotted.
//!
//! Every run goes through [`Outcome::from_output`], which refuses any output that mentions a
//! panic and checks the events against section 2 of the contract, so each test gets those
//! checks for free.

use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// The folder of the `.rhai` fixtures; commands run there so diagnostics show bare file names.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

pub fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name)
}

/// `rhaiflow` run in the fixtures folder, with no store chosen by the environment.
pub fn rhaiflow() -> Command {
    let mut cmd = Command::cargo_bin("rhaiflow").unwrap();
    cmd.current_dir(fixtures()).env_remove("RHAIFLOW_STORE").env_remove("NO_COLOR");
    cmd
}

/// `rhaiflow run FIXTURE --events-json FILE` with a store in a scratch folder.
pub struct Run {
    script: String,
    args: Vec<String>,
    ephemeral: bool,
    /// `--store`: a folder in the scratch one unless `store_at` chose another.
    store: Option<PathBuf>,
    /// Variables added to the binary's environment.
    env: Vec<(String, String)>,
    scratch: TempDir,
}

impl Run {
    pub fn new(script: impl AsRef<Path>) -> Run {
        Run {
            script: script.as_ref().to_string_lossy().into_owned(),
            args: Vec::new(),
            ephemeral: false,
            store: None,
            env: Vec::new(),
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    pub fn args<I, S>(mut self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn param(self, key: &str, value: impl std::fmt::Display) -> Run {
        self.args(["-p".to_string(), format!("{key}={value}")])
    }

    /// Sets `key` in the environment of the binary.
    pub fn env(mut self, key: &str, value: &str) -> Run {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// No store: the console output carries no "resume with" line naming a scratch path.
    pub fn ephemeral(mut self) -> Run {
        self.ephemeral = true;
        self
    }

    /// Records the run in the store at `path` (a folder or a `.db` file) instead of a fresh one.
    pub fn store_at(mut self, path: impl Into<PathBuf>) -> Run {
        self.store = Some(path.into());
        self
    }

    /// The `--store` of the run.
    pub fn store(&self) -> PathBuf {
        self.store.clone().unwrap_or_else(|| self.scratch.path().join("store"))
    }

    /// A scratch folder that lives as long as the run's outcome (for markers and files).
    /// The run's temp folder (`$TMPDIR`): what it unpacks or spills there goes with the test,
    /// never into the system's temp folder.
    fn temp(&self) -> PathBuf {
        let dir = self.scratch.path().join("tmp");
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    fn events_path(&self) -> PathBuf {
        self.scratch.path().join("events.jsonl")
    }

    fn argv(&self) -> Vec<String> {
        let mut argv = vec!["run".to_string(), self.script.clone()];
        argv.extend(self.args.iter().cloned());
        argv.push("--events-json".into());
        argv.push(self.events_path().display().to_string());
        if self.ephemeral {
            argv.push("--ephemeral".into());
        } else {
            argv.push("--store".into());
            argv.push(self.store().display().to_string());
        }
        argv
    }

    /// Runs to the end (bounded by a generous timeout) and collects what it printed.
    pub fn output(self) -> Outcome {
        let output = rhaiflow()
            .args(self.argv())
            .env("TMPDIR", self.temp())
            .envs(self.env.iter().cloned())
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        let events = Events::read(&self.events_path());
        let store = (!self.ephemeral).then(|| self.store());
        let mut outcome =
            Outcome::from_output(output.status.code(), &output.stdout, &output.stderr, events, self.scratch);
        outcome.store = store;
        outcome
    }

    /// Starts the run in the background, for tests that signal it.
    pub fn spawn(self) -> Background {
        let stdout = std::fs::File::create(self.scratch.path().join("stdout")).unwrap();
        let stderr = std::fs::File::create(self.scratch.path().join("stderr")).unwrap();
        let child = StdCommand::cargo_bin("rhaiflow")
            .unwrap()
            .current_dir(fixtures())
            .env_remove("RHAIFLOW_STORE")
            .env("TMPDIR", self.temp())
            .envs(self.env.iter().cloned())
            .args(self.argv())
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        Background { child, events: self.events_path(), run: self }
    }
}

/// A run in the background.
pub struct Background {
    child: Child,
    events: PathBuf,
    run: Run,
}

impl Background {
    /// Waits (at most 20 s) until the events file holds an event matching `pred`.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(e) = Events::read(&self.events).0.into_iter().find(|e| pred(e)) {
                return e;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the run ended ({status}) before {what}; events: {:#?}", Events::read(&self.events));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("no {what} within 20 s; events so far: {:#?}", Events::read(&self.events));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the `task_started` event of `task`.
    pub fn wait_for_start(&mut self, task: &str) -> Value {
        self.wait_for(&format!("task_started of `{task}`"), |e| e["type"] == "task_started" && e["task"] == task)
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped yet.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill({}, {signal}) failed", self.child.id());
    }

    pub fn interrupt(&self) {
        self.signal(libc::SIGINT);
    }

    /// The names of the run's threads, as the kernel has them.
    pub fn thread_names(&self) -> Vec<String> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).unwrap();
        tasks
            .map(|task| std::fs::read_to_string(task.unwrap().path().join("comm")).unwrap().trim().to_string())
            .collect()
    }

    /// The run's store, as a `--store` argument (for commands from "another shell").
    pub fn store_arg(&self) -> String {
        self.run.store().display().to_string()
    }

    /// Waits (at most `limit`) for the run to end; kills it and fails the test past that.
    pub fn finish_within(mut self, limit: Duration) -> (Outcome, Duration) {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let stderr = std::fs::read_to_string(self.run.scratch().join("stderr")).unwrap_or_default();
                panic!("the run did not end within {limit:?}; stderr:\n{stderr}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let took = start.elapsed();
        let stdout = std::fs::read(self.run.scratch().join("stdout")).unwrap();
        let stderr = std::fs::read(self.run.scratch().join("stderr")).unwrap();
        let events = Events::read(&self.events);
        let store = (!self.run.ephemeral).then(|| self.run.store());
        let mut outcome = Outcome::from_output(status.code(), &stdout, &stderr, events, self.run.scratch);
        outcome.store = store;
        (outcome, took)
    }
}

impl Background {
    /// SIGKILLs the run and reaps it, as a crash of its machine would leave it: no outcome.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Waits for the run to end; its outcome and the most memory it held (peak resident set,
    /// in bytes, as the kernel counted it).
    pub fn finish_measuring_memory(self) -> (Outcome, u64) {
        let pid = self.child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: an all-zero rusage is valid, and wait4 only writes into the two locals.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid, "wait4 failed");
        let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
        let stdout = std::fs::read(self.run.scratch().join("stdout")).unwrap();
        let stderr = std::fs::read(self.run.scratch().join("stderr")).unwrap();
        let events = Events::read(&self.events);
        let outcome = Outcome::from_output(code, &stdout, &stderr, events, self.run.scratch);
        (outcome, usage.ru_maxrss as u64 * 1024)
    }
}

/// What a run printed and the events it wrote.
pub struct Outcome {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub events: Events,
    /// Kept alive so that files the workflow wrote there can be inspected.
    pub scratch: TempDir,
    /// The `--store` of a run the `Run` builder made.
    pub store: Option<PathBuf>,
}

impl Outcome {
    pub fn from_output(code: Option<i32>, stdout: &[u8], stderr: &[u8], events: Events, scratch: TempDir) -> Outcome {
        let outcome = Outcome {
            code,
            stdout: String::from_utf8_lossy(stdout).into_owned(),
            stderr: String::from_utf8_lossy(stderr).into_owned(),
            events,
            scratch,
            store: None,
        };
        assert_no_panic(&outcome.stdout, &outcome.stderr);
        // A run that the last resort of a forced cancel ended (a script thread stuck in a
        // native call) leaves the stuck attempts without an outcome, as a crash would.
        let cut_short = outcome.stderr.contains("did not stop within");
        outcome.events.check_contract_of(if cut_short { Ending::CutShort } else { Ending::Normal });
        outcome
    }

    /// Asserts the exit code, showing what the run printed when it differs.
    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Outcome {
        assert_eq!(
            self.code,
            Some(expected),
            "exit code\n--- stderr:\n{}\n--- stdout:\n{}\n--- events:\n{}",
            self.stderr,
            self.stdout,
            self.events.summary()
        );
        self
    }

    /// The workflow's result, as printed on stdout.
    #[track_caller]
    pub fn result(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}\nstderr:\n{}", self.stdout, self.stderr))
    }

    /// The execution's id, from its first event.
    #[track_caller]
    pub fn execution_id(&self) -> String {
        let first = self.events.0.first().unwrap_or_else(|| panic!("no events; stderr:\n{}", self.stderr));
        first["execution_id"].as_str().unwrap().to_string()
    }

    /// The run's store, as a `--store` argument.
    #[track_caller]
    pub fn store_arg(&self) -> String {
        self.store.as_ref().expect("a run with a store").display().to_string()
    }

    /// The run's store file, opened behind rhaiflow's back (to damage a row, or make a write
    /// fail).
    #[track_caller]
    pub fn store_file(&self) -> rusqlite::Connection {
        let store = self.store.as_ref().expect("a run with a store");
        let file = if store.extension().is_some() { store.clone() } else { store.join("rhaiflow.db") };
        rusqlite::Connection::open(file).unwrap()
    }

    /// Changes the run's store file with `sql`.
    #[track_caller]
    pub fn alter_store(&self, sql: &str) {
        self.store_file().execute_batch(sql).unwrap();
    }

    /// stderr with execution ids, timings and the scratch folder replaced by placeholders.
    pub fn normalised_stderr(&self) -> String {
        normalise(&self.stderr.replace(&self.scratch.path().display().to_string(), "[SCRATCH]"))
    }
}

/// What a `rhaiflow` command other than a run printed.
pub struct Cli {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `rhaiflow ARGS` in the fixtures folder; refuses any output that mentions a panic.
pub fn cli(args: &[&str]) -> Cli {
    cli_of(rhaiflow().args(args))
}

/// Runs a prepared `rhaiflow` command (not a run); refuses any output that mentions a panic.
pub fn cli_of(command: &mut Command) -> Cli {
    // What the command unpacks or spills into the temp folder goes with the test.
    let temp = tempfile::tempdir().unwrap();
    let output = command.env("TMPDIR", temp.path()).timeout(Duration::from_secs(60)).output().unwrap();
    let out = Cli {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert_no_panic(&out.stdout, &out.stderr);
    out
}

impl Cli {
    #[track_caller]
    pub fn assert_code(&self, expected: i32) -> &Cli {
        assert_eq!(self.code, Some(expected), "exit code\n--- stderr:\n{}\n--- stdout:\n{}", self.stderr, self.stdout);
        self
    }
}

#[track_caller]
pub fn assert_no_panic(stdout: &str, stderr: &str) {
    for text in [stdout, stderr] {
        assert!(!text.contains("panicked"), "the binary panicked:\n{text}");
        assert!(!text.contains("RUST_BACKTRACE"), "the binary panicked:\n{text}");
    }
}

/// The events of one run, in the order they were written.
#[derive(Debug)]
pub struct Events(pub Vec<Value>);

impl Events {
    pub fn read(path: &Path) -> Events {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        Events(
            text.lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("an event is not JSON ({e}): {l}")))
                .collect(),
        )
    }

    /// One line per event: seq, type, task, current_retries; for assertion messages.
    pub fn summary(&self) -> String {
        self.0
            .iter()
            .map(|e| {
                format!(
                    "{:>3} {} {} {} {}",
                    e["seq"],
                    e["type"].as_str().unwrap_or("?"),
                    e["task"].as_str().unwrap_or(""),
                    e.get("current_retries").map(|r| r.to_string()).unwrap_or_default(),
                    e.get("error").or_else(|| e.get("message")).map(|r| r.to_string()).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn of_type<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.0.iter().filter(move |e| e["type"] == kind)
    }

    pub fn of_task<'a>(&'a self, kind: &'a str, task: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.of_type(kind).filter(move |e| e["task"] == task)
    }

    pub fn types(&self) -> Vec<&str> {
        self.0.iter().map(|e| e["type"].as_str().unwrap()).collect()
    }

    /// How many attempts of `task` started.
    pub fn attempts(&self, task: &str) -> usize {
        self.of_task("task_started", task).count()
    }

    pub fn started(&self, task: &str) -> bool {
        self.attempts(task) > 0
    }

    /// The seq of the first `task_started` of `task`.
    #[track_caller]
    pub fn start_seq(&self, task: &str) -> u64 {
        self.of_task("task_started", task)
            .next()
            .unwrap_or_else(|| panic!("`{task}` never started:\n{}", self.summary()))["seq"]
            .as_u64()
            .unwrap()
    }

    /// The seq of the last outcome (`task_succeeded` / `task_failed`) of `task`.
    #[track_caller]
    pub fn end_seq(&self, task: &str) -> u64 {
        self.0
            .iter()
            .rfind(|e| e["task"] == task && (e["type"] == "task_succeeded" || e["type"] == "task_failed"))
            .unwrap_or_else(|| panic!("`{task}` never ended:\n{}", self.summary()))["seq"]
            .as_u64()
            .unwrap()
    }

    /// The type of the last outcome event of `task`.
    pub fn outcome(&self, task: &str) -> Option<&str> {
        self.0
            .iter()
            .rfind(|e| {
                e["task"] == task
                    && matches!(e["type"].as_str(), Some("task_succeeded" | "task_failed" | "task_rescheduled"))
            })
            .map(|e| e["type"].as_str().unwrap())
    }

    /// `a` ended before `b` started.
    #[track_caller]
    pub fn assert_before(&self, a: &str, b: &str) {
        assert!(self.end_seq(a) < self.start_seq(b), "`{a}` should end before `{b}` starts:\n{}", self.summary());
    }

    /// `a` and `b` were running at the same time.
    pub fn overlapped(&self, a: &str, b: &str) -> bool {
        self.start_seq(a) < self.end_seq(b) && self.start_seq(b) < self.end_seq(a)
    }

    /// The order in which the named tasks first started.
    pub fn start_order(&self) -> Vec<&str> {
        let mut order = Vec::new();
        for e in self.of_type("task_started") {
            let name = e["task"].as_str().unwrap();
            if !order.contains(&name) {
                order.push(name);
            }
        }
        order
    }

    /// True when an error of the run names a failed store (`StoreError::Write`).
    pub fn store_failed(&self) -> bool {
        self.0.iter().any(|e| e["error"].as_str().is_some_and(|error| error.contains("the execution store failed")))
    }

    /// The last `workflow_*` event's type.
    pub fn final_status(&self) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .map(|e| e["type"].as_str().unwrap())
            .find(|t| t.starts_with("workflow_") && *t != "workflow_event")
    }

    /// Section 2 of the contract, for every run: common fields, `seq` 1, 2, 3…, task fields,
    /// per attempt exactly one `task_started` followed by exactly one outcome (or, polled by
    /// `on_success`, its success then its rescheduling), and one `current_retries`.
    #[track_caller]
    pub fn check_contract(&self) {
        self.check_contract_of(Ending::Normal)
    }

    #[track_caller]
    fn check_contract_of(&self, ending: Ending) {
        if self.0.is_empty() {
            return;
        }
        let dump = self.summary();
        let execution = &self.0[0]["execution_id"];
        // With a store that failed, the events it did not record are announced but its
        // successes (and an end the run replaced): those seqs are missing.
        let gaps_allowed = ending == Ending::CutShort || self.store_failed();
        let mut expected = 1;
        for e in &self.0 {
            let seq = e["seq"].as_u64().unwrap_or(0);
            let in_order = seq == expected || (gaps_allowed && seq > expected);
            assert!(in_order, "seq must be 1, 2, 3… (gaps only after a store failure): {e}\n{dump}");
            expected = seq + 1;
            assert!(e["type"].is_string() && e["workflow"].is_string(), "common fields: {e}");
            assert_eq!(&e["execution_id"], execution, "one execution id: {e}");
            assert!(is_rfc3339(e["ts"].as_str().unwrap_or("")), "ts is RFC 3339: {e}");
            if e["type"].as_str().unwrap().starts_with("task_") {
                for field in ["task", "task_id", "kind", "current_retries", "total_retries"] {
                    assert!(e.get(field).is_some(), "a task event has `{field}`: {e}");
                }
                assert_ne!(e["kind"], "event", "send_event tasks emit only their workflow_event: {e}");
            }
        }
        assert_eq!(self.0[0]["type"], "workflow_started", "the first event:\n{dump}");
        let terminal: Vec<_> = self
            .types()
            .into_iter()
            .filter(|t| matches!(*t, "workflow_succeeded" | "workflow_failed" | "workflow_cancelled"))
            .collect();
        assert!(terminal.len() <= 1, "at most one terminal workflow event:\n{dump}");
        if terminal.len() == 1 {
            let last = self.0.last().unwrap()["type"].as_str().unwrap();
            assert_eq!(last, terminal[0], "the terminal event comes last:\n{dump}");
        }
        let mut attempts: std::collections::BTreeMap<u64, Vec<&str>> = Default::default();
        let mut retries: std::collections::BTreeMap<u64, &Value> = Default::default();
        for e in &self.0 {
            let t = e["type"].as_str().unwrap();
            if matches!(t, "task_started" | "task_succeeded" | "task_rescheduled" | "task_failed") {
                attempts.entry(e["task_id"].as_u64().unwrap()).or_default().push(t);
            }
            if t.starts_with("task_") {
                let first = retries.entry(e["task_id"].as_u64().unwrap()).or_insert(&e["current_retries"]);
                assert_eq!(
                    *first, &e["current_retries"],
                    "every event of one attempt has its current_retries: {e}\n{dump}"
                );
            }
        }
        self.check_output_within_attempts(&dump);
        for (id, seen) in attempts {
            // An attempt that succeeded and that on_success sent round again (a polling loop)
            // tells its success, then its rescheduling.
            let polled = seen == ["task_started", "task_succeeded", "task_rescheduled"];
            let open = ending == Ending::CutShort && seen == ["task_started"];
            assert!(
                polled || open || (seen.len() == 2 && seen[0] == "task_started" && seen[1] != "task_started"),
                "attempt {id} should have one task_started then one outcome, got {seen:?}:\n{dump}"
            );
        }
    }

    /// A `task_output` event comes between its attempt's `task_started` and its outcome, and
    /// an attempt's `truncated` one is its last.
    #[track_caller]
    fn check_output_within_attempts(&self, dump: &str) {
        let mut open = std::collections::BTreeSet::new();
        let mut cut = std::collections::BTreeSet::new();
        for e in &self.0 {
            let id = e["task_id"].as_u64().unwrap_or(0);
            match e["type"].as_str().unwrap() {
                "task_started" => drop(open.insert(id)),
                "task_succeeded" | "task_rescheduled" | "task_failed" => drop(open.remove(&id)),
                "task_output" => {
                    assert!(open.contains(&id), "task_output outside its attempt: {e}\n{dump}");
                    assert!(e["line"].is_string() && e["stream"].is_string(), "stream and line: {e}");
                    assert!(!cut.contains(&id), "task_output after its attempt's truncated one: {e}\n{dump}");
                    if e["truncated"] == true {
                        cut.insert(id);
                    }
                }
                _ => {}
            }
        }
    }
}

/// How a run's events end, for the contract check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ending {
    Normal,
    /// The process ended while a script thread was stuck: attempts may have no outcome.
    CutShort,
}

fn is_rfc3339(ts: &str) -> bool {
    let b = ts.as_bytes();
    b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && (ts.ends_with('Z') || ts[19..].contains('+') || ts[19..].contains('-'))
        && [0..4, 5..7, 8..10, 11..13, 14..16, 17..19].iter().all(|r| ts[r.clone()].bytes().all(|c| c.is_ascii_digit()))
}

/// Replaces what changes from run to run: UUIDs by `[ID]`, the seconds of the progress lines
/// and the summary by `[T]`.
pub fn normalise(text: &str) -> String {
    let text = replace_uuids(text);
    text.lines().map(normalise_line).collect::<Vec<_>>().join("\n") + if text.ends_with('\n') { "\n" } else { "" }
}

fn replace_uuids(text: &str) -> String {
    const SHAPE: [usize; 5] = [8, 4, 4, 4, 12];
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'outer: while i < chars.len() {
        let mut j = i;
        for (k, len) in SHAPE.iter().enumerate() {
            for _ in 0..*len {
                if j >= chars.len() || !chars[j].is_ascii_hexdigit() {
                    out.push(chars[i]);
                    i += 1;
                    continue 'outer;
                }
                j += 1;
            }
            if k < 4 {
                if j >= chars.len() || chars[j] != '-' {
                    out.push(chars[i]);
                    i += 1;
                    continue 'outer;
                }
                j += 1;
            }
        }
        out.push_str("[ID]");
        i = j;
    }
    out
}

/// `   0.007s  start   a` → `[T]  start   a`; `(0.20s)` → `([T])`; `in 0.77s` → `in [T]`.
fn normalise_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let mut line = match seconds_prefix(trimmed) {
        Some(rest) if line.len() > trimmed.len() => format!("[T]{rest}"),
        _ => line.to_string(),
    };
    for (open, close) in [("(", ")"), ("in ", " ")] {
        let mut from = 0;
        while let Some(at) = line[from..].find(open) {
            let start = from + at + open.len();
            match seconds_prefix(&line[start..]) {
                Some(rest) if rest.starts_with(close) => {
                    let end = line.len() - rest.len();
                    line.replace_range(start..end, "[T]");
                    from = start + 3;
                }
                _ => from = start,
            }
        }
    }
    line
}

/// `0.007s rest` → `Some(" rest")` when the text starts with a number of seconds.
fn seconds_prefix(text: &str) -> Option<&str> {
    let digits = text.bytes().take_while(|c| c.is_ascii_digit() || *c == b'.').count();
    if digits == 0 || !text[..digits].contains('.') {
        return None;
    }
    text[digits..].strip_prefix('s')
}

/// A copy of fixture bundle `name` in `into/name`, so that a test may change it.
pub fn copy_bundle(name: &str, into: &Path) -> PathBuf {
    let dest = into.join(name);
    copy_dir(&fixtures().join("bundles").join(name), &dest);
    dest
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A small tmpfs mounted on a scratch folder, unmounted when dropped: a disk that fills up.
pub struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it); `Err` says why this environment
    /// cannot (mounting needs root, or CAP_SYS_ADMIN).
    pub fn mount(size: &str) -> Result<SmallDisk, String> {
        let dir = tempfile::tempdir().unwrap();
        let output = StdCommand::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !output.status.success() {
            return Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&output.stderr).trim()));
        }
        Ok(SmallDisk { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Remounts the disk read-only: a store nobody may write, even root.
    pub fn make_read_only(&self) {
        let status = StdCommand::new("mount").args(["-o", "remount,ro"]).arg(self.dir.path()).status().unwrap();
        assert!(status.success(), "remount,ro failed");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily: a process that still holds a file there must not make the unmount fail.
        let _ = StdCommand::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Says, on the terminal rather than in the captured output, that a test could not run here.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// Waits (at most 10 s) until a shell task has written a pid into `path`.
pub fn wait_for_pid(path: &Path) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(pid) = std::fs::read_to_string(path).ok().and_then(|s| s.trim().parse().ok()) {
            return pid;
        }
        assert!(Instant::now() < deadline, "the shell task never wrote {}", path.display());
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True when process `pid` is gone or a zombie (nobody may reap orphans in a container).
pub fn process_is_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')).unwrap_or(false),
    }
}

#[test]
fn normalise_replaces_ids_and_timings() {
    let text = "execution 0409388e-fd67-4568-9272-d586926880db (hello)\n   0.005s  start   greet\n   0.007s  ok      greet (0.00s)\n✔ workflow succeeded in 0.01s · tasks: 1 succeeded · execution 0409388e-fd67-4568-9272-d586926880db\n";
    assert_eq!(
        normalise(text),
        "execution [ID] (hello)\n[T]  start   greet\n[T]  ok      greet ([T])\n✔ workflow succeeded in [T] · tasks: 1 succeeded · execution [ID]\n"
    );
    assert_eq!(normalise("retry 1 of 2 in 0.2s)"), "retry 1 of 2 in 0.2s)");
}
