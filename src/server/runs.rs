//! The runs the server starts (a submission, a resume): each on a thread of its own in this
//! process, answered once the store shows it began, or with the reason it could not.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;

use super::problem::Problem;
use super::Shared;
use crate::diagnostic::Diagnostic;
use crate::runner::RunReport;
use crate::store::{ExecutionRecord, StoreError};

/// How long a request waits for its run to begin (or be refused) before it answers.
const BEGUN_WITHIN: Duration = Duration::from_secs(30);

/// Runs `run` (the execution `id`) on a thread of its own; returns the execution once its
/// record says `begun`, or a 422 with the diagnostic of a run that ended without beginning.
pub(super) async fn start(
    shared: &Arc<Shared>,
    id: &str,
    run: impl FnOnce() -> RunReport + Send + 'static,
    begun: impl Fn(&ExecutionRecord) -> bool,
) -> Result<ExecutionRecord, Problem> {
    let (told, mut report) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("rhaiflow-served-run".into())
        .stack_size(crate::exec::SCRIPT_STACK_BYTES)
        .spawn(move || {
            let _ = told.send(run());
        })
        .map_err(|e| Problem::new(StatusCode::SERVICE_UNAVAILABLE, format!("cannot start a run: {e}")))?;
    let since = Instant::now();
    loop {
        let (store, known) = (shared.clone(), id.to_string());
        match tokio::task::spawn_blocking(move || store.store.execution(&known)).await {
            Ok(Ok(record)) if begun(&record) => return Ok(record),
            Ok(Ok(_) | Err(StoreError::NoSuchExecution(_))) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(e) => return Err(Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())),
        }
        if let Ok(report) = report.try_recv() {
            if let Some(d) = report.diagnostic.filter(|_| report.status == crate::runner::Status::Invalid) {
                return Err(Problem::new(StatusCode::UNPROCESSABLE_ENTITY, shown(&d)));
            }
            // It ran to its end already: what the store says now.
            let (store, known) = (shared.clone(), id.to_string());
            let ended = tokio::task::spawn_blocking(move || store.store.execution(&known)).await;
            return ended
                .map_err(|e| Problem::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
                .map_err(Problem::from);
        }
        if since.elapsed() > BEGUN_WITHIN {
            return Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, format!("execution {id} did not begin in time")));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A diagnostic as one text: its message, and its help.
pub(super) fn shown(d: &Diagnostic) -> String {
    match &d.help {
        Some(help) => format!("{}: {help}", d.message),
        None => d.message.clone(),
    }
}
