//! The store's writer thread, whatever the database: it takes every queued write
//! (`write_queue`), commits them in one transaction (group commit, `BatchWriter`), then
//! publishes the highest committed event `seq` (`CommitState`). A flush outside the executor
//! commits on its own thread instead (`Writes::flush`).

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::commits::{listen, CommitListener, CommitListeners, CommitPublisher, CommitState};
use super::write_queue::{Batch, WriteOp, WriteQueue};
use super::{Result, StoreError};
use crate::events::Event;

/// A store's side of its writer thread: what it queues, and how far the commits got.
pub struct Writes {
    queue: Arc<WriteQueue>,
    committer: Arc<Mutex<Committer>>,
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
        let committer = Committer { writer: Box::new(writer), publisher, place: place.clone(), failure: None };
        let committer = Arc::new(Mutex::new(committer));
        let (thread_queue, thread_committer) = (queue.clone(), committer.clone());
        std::thread::Builder::new()
            .name("rhaiflow-store".into())
            .spawn(move || write_loop(&thread_committer, &thread_queue))
            .map_err(|e| StoreError::Open { path: place, message: e.to_string() })?;
        Ok(Writes { queue, committer, committed, listeners })
    }

    pub fn push_op(&self, op: WriteOp) {
        self.queue.push_op(op);
    }

    pub fn push_event(&self, execution_id: &Arc<str>, event: &Event) {
        self.queue.push_event(execution_id, event);
    }

    /// Blocks until everything queued so far is committed (`Store::flush`). A thread outside
    /// the executor commits it itself, unless the writer is committing (then it waits for it
    /// and commits what is left): the run's start and end are committed without waking the
    /// writer and being woken by it, two hand-offs between threads each. A tokio worker hands
    /// the commit to the writer, as it must not do the writer's I/O itself.
    pub fn flush(&self) -> Result<()> {
        if tokio::runtime::Handle::try_current().is_ok() {
            return self.flush_through_the_writer();
        }
        let mut committer = self.committer.lock();
        if self.queue.is_closed() {
            return Err(StoreError::WriterStopped);
        }
        if let Some(batch) = self.queue.take_now() {
            let committing = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| committer.commit(batch)));
            if let Err(panic) = committing {
                // As when the writer panics (`AbandonOnExit`): nothing later counts as committed.
                self.queue.abandon();
                committer.publisher.stopped();
                std::panic::resume_unwind(panic);
            }
        }
        committer.failure.clone().map_or(Ok(()), Err)
    }

    /// The writer (its connection) is never dropped, even once the store is: for a process
    /// about to end, where closing it has effects of its own (`SqliteStore::leave`).
    pub fn keep_writer_open(&self) {
        std::mem::forget(self.committer.clone());
    }

    fn flush_through_the_writer(&self) -> Result<()> {
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

/// Commits batches, one at a time and in the order they were taken (each is taken and
/// committed under its lock), and publishes how far it got.
struct Committer {
    writer: Box<dyn BatchWriter + Send>,
    publisher: CommitPublisher,
    /// Names the store in the error.
    place: PathBuf,
    /// The first commit that failed. After it the writer goes on committing (a passing
    /// failure may leave later writes, such as the execution's end, recorded), but the
    /// published watermark stays where the failure was.
    failure: Option<StoreError>,
}

impl Committer {
    fn commit(&mut self, batch: Batch) {
        match self.writer.write(&batch) {
            Ok(()) if self.failure.is_none() => {
                if let Some(seq) = batch.rows.iter().map(|row| row.last_seq).max() {
                    self.publisher.advance(seq);
                }
            }
            Ok(()) => {}
            Err(message) => {
                let error = StoreError::Write { path: self.place.clone(), message };
                self.publisher.fail(&error);
                self.failure.get_or_insert(error);
            }
        }
        for op in batch.ops {
            if let WriteOp::Sync(ack) = op {
                // A flush that stopped waiting needs no answer.
                let _ = ack.send(self.failure.clone().map_or(Ok(()), Err));
            }
        }
    }
}

/// Commits what is queued once it is due (`WriteQueue::wait_until_due`), until the store is
/// gone and everything queued is committed.
fn write_loop(committer: &Mutex<Committer>, queue: &WriteQueue) {
    // Also when this thread panics: nobody is left waiting for an answer that never comes.
    let _abandon = AbandonOnExit(queue, committer);
    while queue.wait_until_due() {
        let mut committer = committer.lock();
        if let Some(batch) = queue.take_now() {
            committer.commit(batch);
        }
    }
}

/// Drops the queue when the writer ends, however it ends; when it panicked, says that nothing
/// more will be committed (the executor also learns it from the watch closing, the event bus
/// only from this).
struct AbandonOnExit<'a>(&'a WriteQueue, &'a Mutex<Committer>);

impl Drop for AbandonOnExit<'_> {
    fn drop(&mut self) {
        self.0.abandon();
        if std::thread::panicking() {
            self.1.lock().publisher.stopped();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Notes the thread that commits each batch.
    struct NotesThreads(Arc<Mutex<Vec<String>>>);

    impl BatchWriter for NotesThreads {
        fn write(&mut self, _: &Batch) -> std::result::Result<(), String> {
            self.0.lock().push(std::thread::current().name().unwrap_or("").to_string());
            Ok(())
        }
    }

    fn planned() -> WriteOp {
        WriteOp::Planned { execution_id: "e".into(), count: 1 }
    }

    // A flush woke the writer thread and waited to be woken by it: two hand-offs between
    // threads for each of a run's start and end, each costly when the other core is idle.
    #[test]
    fn a_flush_outside_the_executor_commits_on_its_own_thread() {
        let threads = Arc::new(Mutex::new(Vec::new()));
        let writes = Writes::start(NotesThreads(threads.clone()), PathBuf::from("test")).unwrap();
        writes.push_op(planned());
        std::thread::Builder::new()
            .name("flusher".into())
            .spawn(move || writes.flush())
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(*threads.lock(), ["flusher"]);
    }

    #[test]
    fn a_flush_on_a_tokio_worker_is_committed_by_the_writer() {
        let threads = Arc::new(Mutex::new(Vec::new()));
        let writes = Arc::new(Writes::start(NotesThreads(threads.clone()), PathBuf::from("test")).unwrap());
        writes.push_op(planned());
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let flushing = writes.clone();
        runtime.block_on(async move { tokio::spawn(async move { flushing.flush() }).await.unwrap() }).unwrap();
        assert_eq!(*threads.lock(), ["rhaiflow-store"]);
    }

    /// Notes when it is dropped (a connection closed).
    struct NotesDrop(Arc<std::sync::atomic::AtomicBool>);

    impl BatchWriter for NotesDrop {
        fn write(&mut self, _: &Batch) -> std::result::Result<(), String> {
            Ok(())
        }
    }

    impl Drop for NotesDrop {
        fn drop(&mut self) {
            self.0.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    }

    // A SQLite store's last connection, closed as the process ended, removed the WAL the next
    // run would have reused (in one run of three on a busy machine).
    #[test]
    fn a_writer_kept_open_outlives_its_store() {
        let start = || {
            let dropped = Arc::new(std::sync::atomic::AtomicBool::new(false));
            (Writes::start(NotesDrop(dropped.clone()), PathBuf::from("test")).unwrap(), dropped)
        };
        let (closed, closed_dropped) = start();
        let (kept, kept_dropped) = start();
        kept.keep_writer_open();
        drop((closed, kept));
        let waiting = std::time::Instant::now();
        while !closed_dropped.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(waiting.elapsed() < std::time::Duration::from_secs(10), "a store's writer is dropped with it");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!kept_dropped.load(std::sync::atomic::Ordering::SeqCst), "the writer kept open is never dropped");
    }
}
