//! How far the store's writer got, as the executor watches it: a task's dependents start once
//! its success is committed, and learn at once when it never will be.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::StoreError;

/// Told of every change of the `CommitState`, on the store's writer thread: it must be quick
/// and never wait for anything the writer does.
pub type CommitListener = Box<dyn Fn(&CommitState) + Send + Sync>;

/// The listeners of one store, shared by the store (which adds them) and its writer.
pub type CommitListeners = Arc<Mutex<Vec<CommitListener>>>;

/// The writer's side: publishes each change to the executor's watch and to the listeners
/// (the event bus, which announces what is committed).
pub struct CommitPublisher {
    watch: watch::Sender<CommitState>,
    listeners: CommitListeners,
}

impl CommitPublisher {
    pub fn new(watch: watch::Sender<CommitState>, listeners: CommitListeners) -> Self {
        CommitPublisher { watch, listeners }
    }

    /// A commit of the events up to `seq` succeeded.
    pub fn advance(&self, seq: u64) {
        self.publish(|c| c.advance(seq));
    }

    /// A commit failed.
    pub fn fail(&self, error: &StoreError) {
        self.publish(|c| c.fail(error));
    }

    /// The writer panicked: nothing more will be committed. The listeners are told unless
    /// the panic came from inside one of them (their lock is held then).
    pub fn stopped(&self) {
        self.watch.send_modify(|c| c.fail(&StoreError::WriterStopped));
        let state = self.watch.borrow().clone();
        if let Some(listeners) = self.listeners.try_lock() {
            listeners.iter().for_each(|listener| listener(&state));
        }
    }

    fn publish(&self, change: impl FnOnce(&mut CommitState)) {
        self.watch.send_modify(change);
        let state = self.watch.borrow().clone();
        for listener in self.listeners.lock().iter() {
            listener(&state);
        }
    }
}

/// Adds `listener` to `listeners` and tells it the state as it is now: from then on, the
/// writer tells it every change (registered first, so that no change falls in between).
pub fn listen(listeners: &CommitListeners, now: &watch::Receiver<CommitState>, listener: CommitListener) {
    let mut listeners = listeners.lock();
    let state = now.borrow().clone();
    listener(&state);
    listeners.push(listener);
}

/// The highest event `seq` committed, and the first write that failed. After a failure `seq`
/// never moves again: nothing queued after the lost write counts as committed, so nothing
/// runs on top of a success that is not on disk, and no wait for it lasts for ever.
#[derive(Clone, Debug, Default)]
pub struct CommitState {
    seq: u64,
    failure: Option<StoreError>,
}

impl CommitState {
    /// `Some(Ok)` once event `seq` is committed, `Some(Err)` once it never will be, `None`
    /// while it may still be.
    pub fn outcome(&self, seq: u64) -> Option<Result<(), StoreError>> {
        if self.seq >= seq {
            return Some(Ok(()));
        }
        self.failure.as_ref().map(|e| Err(e.clone()))
    }

    /// The highest event `seq` committed.
    pub fn committed_seq(&self) -> u64 {
        self.seq
    }

    /// The write that failed, if one did.
    pub fn failure(&self) -> Option<&StoreError> {
        self.failure.as_ref()
    }

    /// A commit of the events up to `seq` succeeded.
    pub fn advance(&mut self, seq: u64) {
        if self.failure.is_none() {
            self.seq = self.seq.max(seq);
        }
    }

    /// A commit failed: the first failure is the one reported.
    pub fn fail(&mut self, error: &StoreError) {
        self.failure.get_or_insert_with(|| error.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A write that failed once advanced the committed seq all the same: dependents ran on top
    // of a success that was never on disk.
    #[test]
    fn nothing_after_a_failed_write_counts_as_committed() {
        let mut state = CommitState::default();
        state.advance(3);
        state.fail(&StoreError::Database("disk full".into()));
        state.advance(9);
        assert!(matches!(state.outcome(3), Some(Ok(()))));
        assert!(matches!(state.outcome(4), Some(Err(StoreError::Database(_)))));
        assert!(matches!(state.outcome(9), Some(Err(_))));
    }

    #[test]
    fn a_later_event_is_pending_until_committed() {
        let mut state = CommitState::default();
        state.advance(2);
        assert!(state.outcome(5).is_none());
        state.advance(5);
        assert!(matches!(state.outcome(5), Some(Ok(()))));
    }
}
