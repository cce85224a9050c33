//! The store's writer thread, whatever the database: it takes every queued write
//! (`write_queue`), commits them in one transaction (group commit, `BatchWriter`), then
//! publishes the highest committed event `seq` (`CommitState`).

use std::path::PathBuf;

use super::commits::CommitPublisher;
use super::write_queue::{Batch, WriteOp, WriteQueue};
use super::StoreError;

/// Commits one batch in one transaction, or none of it.
pub trait BatchWriter {
    /// `Err` (why) when nothing of the batch was committed.
    fn write(&mut self, batch: &Batch) -> Result<(), String>;
}

/// Takes every write that is queued, commits them together, publishes how far it got. After a
/// failed commit it goes on committing (a passing failure may leave later writes, such as the
/// execution's end, recorded), but the published watermark stays where the failure was.
/// `place` names the store in the error.
pub fn write_loop(mut writer: impl BatchWriter, queue: &WriteQueue, committed: &CommitPublisher, place: PathBuf) {
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
