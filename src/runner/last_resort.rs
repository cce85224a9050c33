//! The last resort of a forced cancel: whatever the script threads are doing (a native call
//! that no cancel reaches, a read that never returns), the process ends within a second of a
//! forced cancel, with the execution recorded as cancelled.
//!
//! Everything that can heed a forced cancel does (scripts stop at their next operation,
//! `get()` stops waiting, processes are killed), so the run normally ends on its own well
//! inside the grace period; this is for what cannot. Only a run that owns its process (the
//! CLI) arms it: a library caller decides for itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::events::{EventBus, Payload};
use crate::exec::CancelState;
use crate::store::{ExecutionStatus, Store};

/// How long a forced run may take to end on its own.
const GRACE: Duration = Duration::from_millis(500);
/// How long recording the cancel may take before the process ends anyway (the store or the
/// event sinks may be what is stuck).
const RECORD_AT_MOST: Duration = Duration::from_millis(300);
/// How long the sinks other than the store (the console, `--events-json`) may take to be given
/// what they wait for, the cancel among it, before the process ends anyway.
const ANNOUNCE_AT_MOST: Duration = Duration::from_millis(100);

/// Exit code of a cancelled execution (section 1).
const EXIT_CANCELLED: i32 = 3;

pub(super) struct LastResort {
    /// Set by whoever ends the execution first: the run itself, or the last resort.
    ended: Arc<AtomicBool>,
}

struct Record {
    bus: Arc<EventBus>,
    store: Option<Arc<dyn Store>>,
    execution_id: String,
    /// Who asked for the cancel. Weak: the cancel state holds this record in its hook.
    cancel: std::sync::Weak<CancelState>,
}

impl LastResort {
    /// Arms the last resort when `owns_process`; otherwise it never fires.
    pub(super) fn arm(
        owns_process: bool,
        cancel: &Arc<CancelState>,
        bus: Arc<EventBus>,
        store: Option<Arc<dyn Store>>,
        execution_id: &str,
    ) -> Self {
        let ended = Arc::new(AtomicBool::new(false));
        if owns_process {
            let record =
                Arc::new(Record { bus, store, execution_id: execution_id.to_string(), cancel: Arc::downgrade(cancel) });
            let ended = ended.clone();
            cancel.on_forced(Box::new(move || {
                let (ended, record) = (ended.clone(), record.clone());
                let _ = std::thread::Builder::new()
                    .name("rhaiflow-last-resort".into())
                    .spawn(move || end_if_still_running(&ended, record));
            }));
        }
        LastResort { ended }
    }

    /// The run is about to announce and record its end. When the last resort got there first
    /// it is ending the process: this thread waits for that instead of ending twice.
    pub(super) fn claim_end(&self) {
        if self.ended.swap(true, Ordering::AcqRel) {
            loop {
                std::thread::park();
            }
        }
    }
}

fn end_if_still_running(ended: &AtomicBool, record: Arc<Record>) {
    std::thread::sleep(GRACE);
    if ended.swap(true, Ordering::AcqRel) {
        return;
    }
    let (done_tx, done) = std::sync::mpsc::channel();
    let recorder = record.clone();
    let _ = std::thread::Builder::new().name("rhaiflow-last-record".into()).spawn(move || {
        let _ = done_tx.send(recorder.record_cancelled());
    });
    let recorded = matches!(done.recv_timeout(RECORD_AT_MOST), Ok(true));
    // The other sinks wait for the store's commits: they are given what is held now, committed
    // or not (but no success the store did not record).
    record.bus.close_within(ANNOUNCE_AT_MOST);
    let how = if recorded { "recorded as cancelled" } else { "the store could not record it in time" };
    say!(
        "rhaiflow: a script thread did not stop within {}s of the forced cancel: ending the process ({how}; \
         `rhaiflow executions resume {}` takes it up again)",
        GRACE.as_secs_f64(),
        record.execution_id
    );
    std::process::exit(EXIT_CANCELLED);
}

impl Record {
    /// The execution's end, as the run would have recorded it; true once it is on disk.
    fn record_cancelled(&self) -> bool {
        let by = self.cancel.upgrade().and_then(|cancel| cancel.asked_by());
        self.bus.emit(Payload::WorkflowCancelled { by });
        let Some(store) = &self.store else { return true };
        let why = "cancelled by force while a script thread was still busy".to_string();
        store.end(&self.execution_id, ExecutionStatus::Cancelled, Some(why)).and_then(|()| store.flush()).is_ok()
    }
}
