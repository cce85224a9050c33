//! `rhaiflow run SCRIPT`: run a workflow with live progress, events and a summary.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::console::Console;
use super::{params, report, script_target};
use crate::events::{EventSink, JsonLinesSink};
use crate::runner::{self, RunOptions};
use crate::script::{Limits, ScriptDiagnostic};
use crate::store::{MemoryStore, StoreSink};

#[derive(Args)]
pub struct RunArgs {
    /// The workflow script (.rhai).
    target: PathBuf,
    /// The workflow of a bundle to run (bundles are not built yet).
    workflow: Option<String>,
    /// A workflow parameter; VALUE is JSON when it parses as JSON, else a string.
    #[arg(short = 'p', long = "param", value_name = "KEY=VALUE")]
    params: Vec<String>,
    /// Parameters from a YAML or JSON file (-p wins over it).
    #[arg(long = "params", value_name = "FILE")]
    params_file: Option<PathBuf>,
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
    /// Deployment model for ctx.nodes (not built yet).
    #[arg(long, value_name = "FILE")]
    blueprint: Option<PathBuf>,
    /// Execution store (events are kept in memory until the durable store exists).
    #[arg(long, value_name = "PATH")]
    store: Option<String>,
    /// Keep nothing on disk.
    #[arg(long, conflicts_with = "store")]
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
}

pub fn run(args: RunArgs) -> i32 {
    match prepare(&args) {
        Ok((options, sinks, console, json_to_stdout)) => {
            let report = runner::run(&options, sinks);
            console.finish(report.status, report.elapsed, &report.execution_id);
            if let Some(d) = &report.diagnostic {
                super::report(d);
            }
            if let (Some(result), false) = (&report.result, json_to_stdout) {
                println!("{result}");
            }
            report.status.exit_code()
        }
        Err(d) => {
            report(&d);
            2
        }
    }
}

type Prepared = (RunOptions, Vec<Box<dyn EventSink>>, Console, bool);

fn prepare(args: &RunArgs) -> Result<Prepared, ScriptDiagnostic> {
    if args.blueprint.is_some() {
        return Err(ScriptDiagnostic::plain(
            "rhaiflow::not_built",
            "--blueprint: the deployment model is not built yet",
        ));
    }
    if args.workflow.is_some() {
        return Err(ScriptDiagnostic::plain(
            "rhaiflow::not_built",
            "a WORKFLOW name is for bundles, which are not built yet",
        ));
    }
    if args.retry_interval < 0.0 || !args.retry_interval.is_finite() {
        return Err(ScriptDiagnostic::plain("rhaiflow::bad_option", "--retry-interval must be zero or more seconds"));
    }
    let script = script_target(&args.target)?;
    let mut options = RunOptions::new(script);
    options.parameters = params::collect(&args.params, args.params_file.as_deref())?;
    options.task_retries = args.task_retries;
    options.retry_interval = args.retry_interval;
    options.max_concurrency = args.max_concurrency;
    options.dry_run = args.dry_run;
    options.limits.max_operations = args.max_operations;
    options.handle_signals = true;

    let console = Console::new(args.quiet);
    let mut sinks: Vec<Box<dyn EventSink>> = vec![console.sink()];
    let mut json_to_stdout = false;
    if let Some(path) = &args.events_json {
        let out: Box<dyn Write + Send> = if path == "-" {
            json_to_stdout = true;
            Box::new(std::io::stdout())
        } else {
            let file = OpenOptions::new().create(true).append(true).open(path).map_err(|e| {
                ScriptDiagnostic::plain("rhaiflow::events_json", format!("cannot open {path} for events: {e}"))
            })?;
            Box::new(std::io::BufWriter::new(file))
        };
        sinks.push(Box::new(JsonLinesSink::new(out)));
    }
    if !args.ephemeral {
        sinks.push(Box::new(StoreSink(std::sync::Arc::new(MemoryStore::default()))));
    }
    Ok((options, sinks, console, json_to_stdout))
}
