//! Closure tasks that succeeded on the direct path wait here until the store committed their
//! success: nothing runs on top of a success that is not on disk.

use rhai::Dynamic;
use tokio::sync::watch;

use crate::graph::TaskIx;
use crate::store::{CommitState, StoreError};

pub(super) struct Commits {
    /// Successes not yet on disk: the `seq` of their event, the task, its result.
    awaiting: Vec<(u64, TaskIx, Dynamic)>,
    /// How far the store's commits got; `None` in memory (nothing to wait for).
    committed: Option<watch::Receiver<CommitState>>,
    /// The store's writer is gone: what it has not committed, it never will.
    writer_stopped: bool,
}

impl Commits {
    pub(super) fn new(committed: Option<watch::Receiver<CommitState>>) -> Self {
        Commits { awaiting: Vec::new(), committed, writer_stopped: false }
    }

    /// Whether the event `seq` is on disk: `None` while it may still be.
    pub(super) fn outcome(&self, seq: u64) -> Option<Result<(), StoreError>> {
        let Some(committed) = &self.committed else { return Some(Ok(())) };
        let outcome = committed.borrow().outcome(seq);
        match outcome {
            None if self.writer_stopped => Some(Err(StoreError::WriterStopped)),
            outcome => outcome,
        }
    }

    /// The task's success (event `seq`) waits for its commit.
    pub(super) fn wait(&mut self, seq: u64, task: TaskIx, result: Dynamic) {
        self.awaiting.push((seq, task, result));
    }

    /// The successes waiting, to be looked at again after `changed`.
    pub(super) fn take(&mut self) -> Vec<(u64, TaskIx, Dynamic)> {
        std::mem::take(&mut self.awaiting)
    }

    /// True when a success waits for a commit that may still come.
    pub(super) fn pending(&self) -> bool {
        !self.awaiting.is_empty() && !self.writer_stopped
    }

    /// Waits until the store's commits move on, or its writer stops (nothing more will be
    /// committed, and waiting on must not hold the run); never returns when there is no store.
    pub(super) async fn changed(&mut self) {
        let open = match &mut self.committed {
            Some(receiver) => receiver.changed().await.is_ok(),
            None => std::future::pending().await,
        };
        self.writer_stopped = !open;
    }
}
