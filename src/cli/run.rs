//! `rhaiflow run SCRIPT`: run a workflow with live progress, events and a summary.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;

use clap::{Args, FromArgMatches};

use super::{report_all, TargetArgs};
use crate::console::Console;
use crate::diagnostic::{Code, Diagnostic};
use crate::events::{EventSink, JsonLinesSink};
use crate::runner::StoreChoice;
use crate::runner::{self, RunOptions, RunReport};
use crate::script::Limits;
use crate::seconds;
use crate::store::StoreLocation;

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Append every event as one JSON object a line ("-" = stdout).
    #[arg(long, value_name = "PATH")]
    events_json: Option<String>,
    /// Default total_retries of tasks (-1 = unlimited).
    #[arg(long, default_value_t = 0, allow_negative_numbers = true, value_name = "N")]
    task_retries: i64,
    /// Default seconds between retries.
    #[arg(long, default_value_t = 1.0, value_name = "SECS")]
    retry_interval: f64,
    /// At most N tasks running at once.
    #[arg(long, value_name = "N")]
    max_concurrency: Option<usize>,
    /// Keep nothing on disk (no resume possible). Not with --deployment: a stored deployment
    /// records its changes, and its executions take turns through the store.
    #[arg(long, conflicts_with_all = ["store", "deployment"])]
    ephemeral: bool,
    /// Build and validate the graph, run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only errors, failures and the summary.
    #[arg(short, long)]
    quiet: bool,
    /// Operations one script evaluation may run before it is stopped (0 = no limit).
    #[arg(long, default_value_t = Limits::default().max_operations, value_name = "N")]
    max_operations: u64,
    /// Heap the run may hold before a running script is stopped, e.g. 4GiB (0 = no limit;
    /// default: half the machine's memory).
    #[arg(long, value_parser = crate::byte_size::parse, value_name = "SIZE")]
    max_memory: Option<u64>,
    /// Tasks one execution may make (0 = no limit).
    #[arg(long, default_value_t = Limits::default().max_tasks, value_name = "N")]
    max_tasks: u64,
    /// Record the execution as queued and print its id, for a worker to run (`rhaiflow
    /// worker`); needs a PostgreSQL store.
    #[arg(long, conflicts_with_all = ["ephemeral", "dry_run", "events_json"])]
    submit: bool,
    /// The queue a submitted execution waits on.
    #[arg(long, default_value = "default", requires = "submit", value_name = "NAME")]
    queue: String,
}

impl RunArgs {
    /// `rhaiflow run …` (`args`, the program's name first) parsed with only `run`'s arguments
    /// built: a full parse builds every subcommand's first (170,000 instructions of a small
    /// run's start, `--version`'s 225,000). `None` for any other command, and for a command
    /// line `run` does not accept (an error, `--help`): the full parse then says what it says
    /// of it, naming the whole program.
    pub(super) fn parse_alone(args: impl IntoIterator<Item = OsString>) -> Option<RunArgs> {
        let mut args = args.into_iter().skip(1).peekable();
        if args.peek()? != "run" {
            return None;
        }
        // The subcommand's name stands where a command's program name does.
        let matches = RunArgs::augment_args(clap::Command::new("run")).try_get_matches_from(args).ok()?;
        RunArgs::from_arg_matches(&matches).ok()
    }
}

/// `early_store`: the store, opening since before the command line was parsed (`early_store`).
pub fn run(args: RunArgs, early_store: Option<runner::EarlyStore>) -> i32 {
    if args.submit {
        return submit(&args);
    }
    match prepare(&args) {
        Ok((options, mut output)) => {
            let report = runner::run_with(&options, output.sinks(), early_store);
            let code = output.finish(&report);
            // The process ends now: freeing the graphs task by task (their names, closures,
            // settings) would cost ~500 instructions a task for memory the exit returns anyway.
            // Everything with an effect (the store, the sinks) was closed inside `run`.
            std::mem::forget(report);
            code
        }
        Err(diagnostics) => report_all(&diagnostics),
    }
}

/// `run --submit`: checked, recorded as queued, its id printed (a worker runs it).
fn submit(args: &RunArgs) -> i32 {
    let submitted = prepare(args).and_then(|(options, _)| {
        let StoreChoice::At(location) = &options.store else { unreachable!("--submit conflicts with --ephemeral") };
        runner::submit(&options, location, &args.queue).map_err(|d| vec![d])
    });
    match submitted {
        Ok(id) => {
            say!("queued execution {id} on queue `{}` (rhaiflow executions events {id} --follow)", args.queue);
            say_out!("{id}");
            0
        }
        Err(diagnostics) => report_all(&diagnostics),
    }
}

/// Where a run's output goes: the console, and the events file if asked for.
pub(super) struct Output {
    console: Console,
    events_json: Option<Box<dyn Write + Send>>,
    json_to_stdout: bool,
}

impl Output {
    pub(super) fn new(quiet: bool, events_json: Option<&str>) -> Result<Output, Diagnostic> {
        let mut json_to_stdout = false;
        let events_json = match events_json {
            None => None,
            Some("-") => {
                json_to_stdout = true;
                Some(Box::new(std::io::stdout()) as Box<dyn Write + Send>)
            }
            Some(path) => {
                let file =
                    OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
                        Diagnostic::plain(Code::EventsJson, format!("cannot open {path} for events: {e}"))
                    })?;
                Some(Box::new(std::io::BufWriter::new(file)) as Box<dyn Write + Send>)
            }
        };
        Ok(Output { console: Console::new(quiet), events_json, json_to_stdout })
    }

    /// The sinks for the event bus (the events file goes to the first run that asks).
    pub(super) fn sinks(&mut self) -> Vec<Box<dyn EventSink>> {
        let mut sinks = vec![self.console.sink()];
        if let Some(out) = self.events_json.take() {
            sinks.push(Box::new(JsonLinesSink::new(out)));
        }
        sinks
    }

    /// The summary, how to resume, the diagnostic and the result; returns the exit code.
    pub(super) fn finish(&self, report: &RunReport) -> i32 {
        self.console.finish(report.status, report.elapsed, &report.execution_id);
        super::executions::resume_hint(report);
        if let Some(d) = &report.diagnostic {
            super::report(d);
        }
        if let (Some(result), false) = (&report.result, self.json_to_stdout) {
            // A reader that went away (`| head`) must not turn a finished run into a panic.
            let _ = writeln!(std::io::stdout(), "{result}");
        }
        report.status.exit_code()
    }
}

fn prepare(args: &RunArgs) -> Result<(RunOptions, Output), Vec<Diagnostic>> {
    let (options, output) = prepare_options(args).map_err(|d| vec![d])?;
    let options = args.target.options(args.target.resolve()?, options)?;
    Ok((options, output))
}

/// Everything but the target: checked before the target is read.
fn prepare_options(args: &RunArgs) -> Result<(RunOptions, Output), Diagnostic> {
    if args.task_retries < -1 {
        return Err(Diagnostic::plain(
            Code::BadOption,
            format!("--task-retries {}: give a number of retries (0 or more), or -1 for unlimited", args.task_retries),
        ));
    }
    if args.max_concurrency == Some(0) {
        return Err(Diagnostic::plain(Code::BadOption, "--max-concurrency must be 1 or more"));
    }
    if let Err(e) = seconds::checked(args.retry_interval) {
        return Err(Diagnostic::plain(Code::BadOption, format!("--retry-interval {e}")));
    }
    let mut options = RunOptions::new(&args.target.target);
    options.task_retries = args.task_retries;
    options.retry_interval = args.retry_interval;
    options.max_concurrency = args.max_concurrency;
    options.dry_run = args.dry_run;
    options.limits.max_operations = args.max_operations;
    options.limits.max_tasks = args.max_tasks;
    if let Some(max_memory) = args.max_memory {
        options.limits.max_memory = max_memory;
    }
    options.owns_process = true;
    options.store = if args.ephemeral {
        StoreChoice::Ephemeral
    } else {
        StoreChoice::At(StoreLocation::locate(args.target.store.as_deref())?)
    };
    Ok((options, Output::new(args.quiet, args.events_json.as_deref())?))
}
