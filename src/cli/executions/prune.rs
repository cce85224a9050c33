//! `rhaiflow executions prune --older-than DURATION [--status S ...]`: retention. Removes
//! finished executions, with their events and task states, once they have been over for
//! longer than DURATION, and says which.
//!
//! As with Temporal's retention, only closed executions go: a running one never, and a
//! crashed one (recorded as running, its process gone) not unless `--status crashed` asks
//! for it by name, because it is not over: `executions resume` takes it up again. A crashed
//! execution has no end, so its age counts from its start.

use super::{age, open_existing, store_error, StoreArg};
use crate::diagnostic::{Code, Diagnostic};
use crate::store::ShownStatus;

#[derive(clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    store: StoreArg,
    /// Remove executions that ended longer ago than this: 30m, 12h, 7d, 1h 30m.
    #[arg(long, value_name = "DURATION")]
    older_than: String,
    /// Only executions in this status (repeatable; default: succeeded, failed, cancelled).
    /// `crashed` must be named to be pruned; `running` never is.
    #[arg(long, value_name = "S", value_parser = super::list::parse_status, value_delimiter = ',')]
    status: Vec<ShownStatus>,
}

/// The statuses pruned when none is named: every finished one.
const FINISHED: [ShownStatus; 3] = [ShownStatus::Succeeded, ShownStatus::Failed, ShownStatus::Cancelled];

pub fn prune(args: &PruneArgs) -> Result<i32, Diagnostic> {
    let before = age::ago(age::parse_age("--older-than", &args.older_than)?);
    if args.status.contains(&ShownStatus::Running) {
        return Err(Diagnostic::plain(Code::BadOption, "--status running: a running execution is never pruned")
            .with_help("cancel it first (rhaiflow executions cancel ID)"));
    }
    let statuses = if args.status.is_empty() { FINISHED.to_vec() } else { args.status.clone() };
    let (path, store) = open_existing(&args.store)?;
    let removed = match store {
        Some(store) => store.prune(&statuses, &before, None).map_err(store_error)?,
        None => Vec::new(),
    };
    for r in &removed {
        let at = r.ended_at.as_deref().unwrap_or(&r.started_at);
        say_out!("removed {}  {}  {}  {}", r.id, r.workflow, r.shown_status(), at);
    }
    let plural = if removed.len() == 1 { "" } else { "s" };
    say!("pruned {} execution{plural} older than {} from {}", removed.len(), args.older_than, path);
    Ok(0)
}
