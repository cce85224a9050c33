//! `rhaiflow executions list`: the recorded executions, newest first, picked by status,
//! workflow and age, as a table or (`--json`) one JSON array for scripts.

use serde_json::{json, Value};

use super::{age, duration, open_existing, store_error, StoreArg};
use crate::diagnostic::Diagnostic;
use crate::store::{ExecutionQuery, ExecutionRecord, ShownStatus};

/// What `executions list` was asked for, as typed on the command line.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    store: StoreArg,
    /// Only executions in this status (repeatable): running, succeeded, failed, cancelled,
    /// crashed.
    #[arg(long, value_name = "S", value_parser = parse_status, value_delimiter = ',')]
    status: Vec<ShownStatus>,
    /// Only executions of this workflow.
    #[arg(long, value_name = "W")]
    workflow: Option<String>,
    /// At most N executions (the newest).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Only executions started since T: a duration back from now (30m, 2h, 7d) or an RFC 3339
    /// time.
    #[arg(long, value_name = "T")]
    since: Option<String>,
    /// One JSON array of objects (id, workflow, status, started_at, ended_at, ...).
    #[arg(long)]
    json: bool,
}

/// `--status S`, checked by clap (a wrong one is a usage error, exit 2).
pub fn parse_status(text: &str) -> Result<ShownStatus, String> {
    ShownStatus::parse(text).ok_or_else(|| {
        let all: Vec<&str> = ShownStatus::ALL.iter().map(|s| s.as_str()).collect();
        format!("not a status; one of {}", all.join(", "))
    })
}

pub fn list(args: &ListArgs) -> Result<i32, Diagnostic> {
    let query = ExecutionQuery {
        statuses: args.status.clone(),
        workflow: args.workflow.clone(),
        since: args.since.as_deref().map(age::parse_since).transpose()?,
        older_than: None,
        idempotency_key: None,
        limit: args.limit,
    };
    let (path, store) = open_existing(&args.store)?;
    let records = match store {
        Some(store) => store.executions(&query).map_err(store_error)?,
        None => Vec::new(),
    };
    if args.json {
        let all: Vec<Value> = records.iter().map(as_json).collect();
        say_out!("{}", serde_json::to_string_pretty(&all).unwrap_or_default());
        return Ok(0);
    }
    if records.is_empty() {
        let picked =
            if args.status.is_empty() && args.workflow.is_none() && args.since.is_none() { "" } else { "such " };
        say!("no {picked}executions recorded in {path}");
        return Ok(0);
    }
    say_out!("{:<36}  {:<20}  {:<10}  {:<23}  {:>9}  TASKS", "ID", "WORKFLOW", "STATUS", "STARTED", "DURATION");
    for r in &records {
        say_out!(
            "{:<36}  {:<20}  {:<10}  {:<23}  {:>9}  {}/{}",
            r.id,
            r.workflow,
            r.shown_status(),
            r.started_at.replace('T', " ").trim_end_matches('Z'),
            duration(r),
            r.tasks_done,
            r.tasks_total
        );
    }
    Ok(0)
}

/// One execution for `--json`: its fields as the store has them, the status as shown.
fn as_json(r: &ExecutionRecord) -> Value {
    json!({
        "id": r.id,
        "workflow": r.workflow,
        "status": r.shown_status(),
        "started_at": r.started_at,
        "ended_at": r.ended_at,
        "error": r.error,
        "tasks_done": r.tasks_done,
        "tasks_total": r.tasks_total,
        "resumes": r.resumes,
        "deployment": r.deployment(),
        "script": r.script,
        "parameters": r.parameters,
    })
}
