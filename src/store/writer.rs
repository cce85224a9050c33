//! The store's writer thread, whatever the database: it takes every queued write
//! (`write_queue`), commits them in one transaction (group commit, `BatchWriter`), then
//! publishes the highest committed event `seq` (`CommitState`).

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

use super::commits::{listen, CommitListener, CommitListeners, CommitPublisher, CommitState};
use super::write_queue::{Batch, WriteOp, WriteQueue};
use super::{Result, StoreError};
use crate::events::Event;

/// A store's side of its writer thread: what it queues, and how far the commits got.
pub struct Writes {
    queue: Arc<WriteQueue>,
    committed: watch::Receiver<CommitState>,
    listeners: CommitListeners,
}

impl Writes {
    /// Starts the writer thread committing with `writer`; `place` names the store in errors.
    pub fn start(writer: impl BatchWriter + Send + 'static, place: PathBuf) -> Result<Writes> {
        let queue = Arc::new(WriteQueue::default());
        let (committed_tx, committed) = watch::channel(CommitState::default());
        let listeners = CommitListeners::default();
        let publisher = CommitPublisher::new(committed_tx, listeners.clone());
        let (thread_queue, thread_place) = (queue.clone(), place.clone());
        std::thread::Builder::new()
            .name("rhaiflow-store".into())
            .spawn(move || write_loop(writer, &thread_queue, &publisher, thread_place))
            .map_err(|e| StoreError::Open { path: place, message: e.to_string() })?;
        Ok(Writes { queue, committed, listeners })
    }

    pub fn push_op(&self, op: WriteOp) {
        self.queue.push_op(op);
    }

    pub fn push_event(&self, execution_id: &Arc<str>, event: &Event) {
        self.queue.push_event(execution_id, event);
    }

    /// Blocks until everything queued so far is committed (`Store::flush`).
    pub fn flush(&self) -> Result<()> {
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        self.queue.push_op(WriteOp::Sync(ack));
        // No answer: the writer dropped the request, it is gone.
        done.recv().unwrap_or(Err(StoreError::WriterStopped))
    }

    pub fn committed(&self) -> watch::Receiver<CommitState> {
        self.committed.clone()
    }

    pub fn on_commit(&self, listener: CommitListener) {
        listen(&self.listeners, &self.committed, listener);
    }
}

impl Drop for Writes {
    fn drop(&mut self) {
        // The writer commits what is queued, then stops.
        self.queue.close();
    }
}

/// Commits one batch in one transaction, or none of it.
pub trait BatchWriter {
    /// `Err` (why) when nothing of the batch was committed.
    fn write(&mut self, batch: &Batch) -> std::result::Result<(), String>;
}

/// Takes every write that is queued, commits them together, publishes how far it got. After a
/// failed commit it goes on committing (a passing failure may leave later writes, such as the
/// execution's end, recorded), but the published watermark stays where the failure was.
/// `place` names the store in the error.
fn write_loop(mut writer: impl BatchWriter, queue: &WriteQueue, committed: &CommitPublisher, place: PathBuf) {
    // Also when this thread panics: nobody is left waiting for an answer that never comes.
    let _abandon = AbandonOnExit(queue, committed);
    let mut failure: Option<StoreError> = None;
    while let Some(batch) = queue.take() {
        match writer.write(&batch) {
            Ok(()) if failure.is_none() => {
                if let Some(seq) = batch.rows.iter().map(|row| row.last_seq).max() {
                    committed.advance(seq);
                }
            }
            Ok(()) => {}
            Err(message) => {
                let error = StoreError::Write { path: place.clone(), message };
                committed.fail(&error);
                failure.get_or_insert(error);
            }
        }
        for op in batch.ops {
            if let WriteOp::Sync(ack) = op {
                // A flush that stopped waiting needs no answer.
                let _ = ack.send(failure.clone().map_or(Ok(()), Err));
            }
        }
    }
}

/// Drops the queue when the writer ends, however it ends; when it panicked, says that nothing
/// more will be committed (the executor also learns it from the watch closing, the event bus
/// only from this).
struct AbandonOnExit<'a>(&'a WriteQueue, &'a CommitPublisher);

impl Drop for AbandonOnExit<'_> {
    fn drop(&mut self) {
        self.0.abandon();
        if std::thread::panicking() {
            self.1.stopped();
        }
    }
}
