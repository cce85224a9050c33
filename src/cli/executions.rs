//! `rhaiflow executions list | show ID | events ID [--follow] | logs ID [--task NAME] [--follow]
//! | cancel ID [--force] | resume ID | prune`: what the store recorded, and acting on executions
//! from another shell.

mod age;
mod list;
mod logs;
mod prune;
mod show;

use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use super::report;
use super::run::Output;
use crate::diagnostic::{Code, Diagnostic};
use crate::runner::{self, RunReport, Status};
use crate::store::{self, ExecutionRecord, ExecutionStatus, Store, StoreLocation};

#[derive(Args)]
pub struct ExecutionsArgs {
    #[command(subcommand)]
    command: ExecutionsCommand,
}

#[derive(Args)]
struct StoreArg {
    /// Execution store: a folder, a .db file or a PostgreSQL URL (default: $RHAIFLOW_STORE, else
    /// ./.rhaiflow/).
    #[arg(long, value_name = "PATH")]
    store: Option<String>,
}

#[derive(Subcommand)]
enum ExecutionsCommand {
    /// The executions in the store, newest first.
    List(list::ListArgs),
    /// One execution: parameters, tasks with their states and attempts, the error.
    Show {
        /// The execution id (a unique prefix is enough).
        id: String,
        #[command(flatten)]
        store: StoreArg,
    },
    /// The events of an execution.
    Events {
        id: String,
        #[command(flatten)]
        store: StoreArg,
        /// Keep printing events as a running execution produces them, until it ends.
        #[arg(long)]
        follow: bool,
        /// The events as JSON lines, as `run --events-json` writes them.
        #[arg(long)]
        json: bool,
    },
    /// The lines its shell, exec and operation script tasks printed.
    Logs {
        id: String,
        /// Only this task's lines, without the task in front of each.
        #[arg(long, value_name = "NAME")]
        task: Option<String>,
        #[command(flatten)]
        store: StoreArg,
        /// Keep printing lines as a running execution's tasks print them, until it ends.
        #[arg(long)]
        follow: bool,
    },
    /// Ask a running execution (in another process) to cancel.
    Cancel {
        id: String,
        #[command(flatten)]
        store: StoreArg,
        /// Kill running processes and stop running scripts instead of letting them finish.
        #[arg(long)]
        force: bool,
    },
    /// Run a failed, cancelled or crashed execution again: what succeeded is not run again.
    Resume {
        id: String,
        #[command(flatten)]
        store: StoreArg,
        /// Append every event as one JSON object a line ("-" = stdout).
        #[arg(long, value_name = "PATH")]
        events_json: Option<String>,
        /// Only errors, failures and the summary.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove finished executions (their events and task states) older than a duration.
    Prune(prune::PruneArgs),
}

pub fn executions(args: ExecutionsArgs) -> i32 {
    let result = match args.command {
        ExecutionsCommand::List(args) => {
            super::end_quietly_on_closed_pipe();
            list::list(&args)
        }
        ExecutionsCommand::Show { id, store } => {
            super::end_quietly_on_closed_pipe();
            show::show(&id, &store)
        }
        ExecutionsCommand::Events { id, store, follow, json } => {
            super::end_quietly_on_closed_pipe();
            events(&id, &store, follow, json)
        }
        ExecutionsCommand::Logs { id, task, store, follow } => {
            super::end_quietly_on_closed_pipe();
            logs::logs(&id, task.as_deref(), &store, follow)
        }
        ExecutionsCommand::Cancel { id, store, force } => cancel(&id, &store, force),
        ExecutionsCommand::Resume { id, store, events_json, quiet } => {
            return resume(&id, &store, events_json.as_deref(), quiet)
        }
        ExecutionsCommand::Prune(args) => prune::prune(&args),
    };
    match result {
        Ok(code) => code,
        Err(d) => {
            report(&d);
            2
        }
    }
}

/// Tells how to resume an execution that failed or was cancelled.
pub fn resume_hint(report: &RunReport) {
    let (Some(location), Status::Failed | Status::Cancelled) = (&report.store, report.status) else { return };
    let default = StoreLocation::locate(None).ok();
    let store = if default.as_ref() == Some(location) {
        String::new()
    } else {
        format!(" --store {}", shell_word(&location.to_string()))
    };
    say!("  resume with: rhaiflow executions resume {}{store}", report.execution_id);
}

/// `text` as one word of a shell command that can be pasted as printed: quoted when it holds
/// more than letters, digits and `@%+=:,./-_` (a URL's `?` and `&`, a path's spaces).
fn shell_word(text: &str) -> String {
    if !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || "@%+=:,./-_".contains(c)) {
        return text.to_string();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// The store `arg` names, `None` when it is a SQLite file that does not exist (nothing was
/// recorded there: reading must not create it).
fn open_existing(arg: &StoreArg) -> Result<(StoreLocation, Option<std::sync::Arc<dyn Store>>), Diagnostic> {
    let location = StoreLocation::locate(arg.store.as_deref())?;
    if let StoreLocation::Sqlite(path) = &location {
        match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((location, None)),
            // A store that cannot be reached (a parent that is a file) is not one with no
            // executions: saying "none recorded" would hide where they went.
            Err(e) => {
                let message = format!("cannot read the execution store {location}: {e}");
                return Err(Diagnostic::plain(Code::Store, message));
            }
            Ok(_) => {}
        }
    }
    let store = store::open(&location)?;
    Ok((location, Some(store)))
}

fn store_error(e: store::StoreError) -> Diagnostic {
    let help = matches!(e, store::StoreError::NoSuchExecution(_)).then(|| "`rhaiflow executions list` shows them");
    let d = Diagnostic::from(e);
    match help {
        Some(h) => d.with_help(h),
        None => d,
    }
}

fn find(id: &str, arg: &StoreArg) -> Result<(StoreLocation, std::sync::Arc<dyn Store>, ExecutionRecord), Diagnostic> {
    let (location, store) = open_existing(arg)?;
    let Some(store) = store else {
        return Err(Diagnostic::plain(Code::Store, format!("no executions recorded in {location}")));
    };
    let record = store.execution(id).map_err(store_error)?;
    Ok((location, store, record))
}

fn seconds_between(from: &str, to: Option<&str>) -> Option<f64> {
    let from = humantime::parse_rfc3339_weak(from).ok()?;
    let to = match to {
        Some(t) => humantime::parse_rfc3339_weak(t).ok()?,
        None => SystemTime::now(),
    };
    Some(to.duration_since(from).ok()?.as_secs_f64())
}

fn duration(record: &ExecutionRecord) -> String {
    if record.crashed() {
        return "-".into();
    }
    match seconds_between(&record.started_at, record.ended_at.as_deref()) {
        Some(s) if s < 120.0 => format!("{s:.2}s"),
        Some(s) => format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64),
        None => "-".into(),
    }
}

/// One event as a person reads it.
fn human_line(json: &str) -> String {
    let Ok(e) = serde_json::from_str::<serde_json::Value>(json) else { return json.to_string() };
    let text = |k: &str| e.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
    // An instance's tasks share their names: `web_1 lifecycle.configure`, as the console says.
    let mut detail =
        [text("node_instance"), text("task")].iter().filter(|t| !t.is_empty()).cloned().collect::<Vec<_>>().join(" ");
    for key in ["message", "error", "line"] {
        if let Some(v) = e.get(key).and_then(|v| v.as_str()) {
            if !detail.is_empty() {
                detail.push_str(": ");
            }
            detail.push_str(v);
        }
    }
    if let Some(result) = e.get("result") {
        detail.push_str(&format!(" → {result}"));
    }
    let seq = e.get("seq").and_then(|s| s.as_u64()).unwrap_or(0);
    format!("{seq:>6}  {}  {:<19}  {}", text("ts"), text("type"), detail)
}

fn events(id: &str, arg: &StoreArg, follow: bool, json: bool) -> Result<i32, Diagnostic> {
    let (_, store, record) = find(id, arg)?;
    read_events(&*store, &record, follow, |line| {
        if json {
            say_out!("{line}");
        } else {
            say_out!("{}", human_line(line));
        }
    })
}

/// Gives `each` the recorded events of `record` (their JSON lines), and with `follow` the new
/// ones as they are committed, until the execution ends or is found crashed.
fn read_events(
    store: &dyn Store,
    record: &ExecutionRecord,
    follow: bool,
    mut each: impl FnMut(&str),
) -> Result<i32, Diagnostic> {
    let mut after = 0;
    loop {
        for (seq, line) in store.events_after(&record.id, after).map_err(store_error)? {
            after = seq;
            each(&line);
        }
        if !follow {
            return Ok(0);
        }
        let now = store.execution(&record.id).map_err(store_error)?;
        if !matches!(now.status, ExecutionStatus::Running | ExecutionStatus::Queued) || now.crashed() {
            // One more read: the last events are committed with the final status.
            for (_, line) in store.events_after(&record.id, after).map_err(store_error)? {
                each(&line);
            }
            if now.crashed() {
                say!(
                    "execution {} crashed: its {} is gone (`rhaiflow executions resume {}` takes it up again)",
                    now.id,
                    now.runner_shown(),
                    now.id
                );
            }
            return Ok(0);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cancel(id: &str, arg: &StoreArg, force: bool) -> Result<i32, Diagnostic> {
    let (_, store, record) = find(id, arg)?;
    let waiting = record.status == ExecutionStatus::Queued;
    if (record.status != ExecutionStatus::Running && !waiting) || record.crashed() {
        say!("execution {} is not running (it is {})", record.id, record.shown_status());
        return Ok(1);
    }
    store.request_cancel(&record.id, force, the_user().as_deref()).map_err(store_error)?;
    if record.runner == store::Runner::Process {
        crate::runner::nudge(record.pid);
    }
    say!("{} cancel requested for execution {}", if force { "forced" } else { "graceful" }, record.id);
    // Wait a little to report the outcome; a graceful cancel may wait for running tasks.
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = store.execution(&record.id).map_err(store_error)?;
        if !matches!(now.status, ExecutionStatus::Running | ExecutionStatus::Queued) {
            say!("execution {} is {}", now.id, now.shown_status());
            return Ok(0);
        }
    }
    say!("execution {} will stop when its running tasks finish (--force stops them now)", record.id);
    Ok(0)
}

fn resume(id: &str, arg: &StoreArg, events_json: Option<&str>, quiet: bool) -> i32 {
    let location = match StoreLocation::locate(arg.store.as_deref()) {
        Ok(location) => location,
        Err(d) => {
            report(&d);
            return 2;
        }
    };
    if matches!(&location, StoreLocation::Sqlite(path) if !path.exists()) {
        report(&Diagnostic::plain(Code::Store, format!("no executions recorded in {location}")));
        return 2;
    }
    let mut output = match Output::new(quiet, events_json) {
        Ok(o) => o,
        Err(d) => {
            report(&d);
            return 2;
        }
    };
    let report = runner::resume(&location, id, output.sinks(), true, the_user());
    output.finish(&report)
}

/// Who runs this command, as the events that name a caller say it (`by`).
fn the_user() -> Option<String> {
    std::env::var("USER").ok().filter(|u| !u.is_empty()).map(|user| format!("user {user}"))
}
