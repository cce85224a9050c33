//! The hand-off between the threads that emit events and the store's writer thread.
//!
//! Emitters append under one lock: an event is encoded straight into the row it will be stored
//! in (`event_rows`), with no allocation and no channel message of its own; the other writes
//! (an execution's start, its planned task count, its end, a flush) queue in order beside the
//! rows. The writer takes everything queued at once and commits it in one transaction (group
//! commit), and sleeps when nothing is queued. The queue is bounded: when events come faster
//! than the disk takes them, emitters wait instead of the queue growing without limit (a
//! 1M-task run once held 1.3 GB of queued events).

use std::sync::mpsc::SyncSender;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use super::event_rows::RowBuilder;
use super::{ExecutionRecord, ExecutionStatus, Result};
use crate::events::Event;

/// Bytes of encoded events queued at most (about 40,000 events).
const QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// A write other than an event.
pub enum WriteOp {
    Begin(Box<ExecutionRecord>),
    Planned {
        execution_id: String,
        count: u64,
    },
    End {
        execution_id: String,
        status: ExecutionStatus,
        error: Option<String>,
        at: String,
    },
    /// Answered once everything queued before it is committed, with the first write of the
    /// store that failed, if any.
    Sync(SyncSender<Result<()>>),
}

/// What one transaction writes.
#[derive(Default)]
pub struct Batch {
    pub ops: Vec<WriteOp>,
    /// Events, in `seq` order per execution.
    pub rows: Vec<RowBuilder>,
    bytes: usize,
}

impl Batch {
    fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.rows.is_empty()
    }
}

#[derive(Default)]
struct Pending {
    batch: Batch,
    closed: bool,
}

impl Pending {
    /// Emitters wait for room (unless the writer is gone, and nothing more is kept).
    fn is_full(&self) -> bool {
        self.batch.bytes >= QUEUE_BYTES && !self.closed
    }
}

#[derive(Default)]
pub struct WriteQueue {
    pending: Mutex<Pending>,
    /// Signalled when something is queued (the writer waits on it).
    work: Condvar,
    /// Signalled when the writer took the queue (full emitters wait on it).
    room: Condvar,
}

impl WriteQueue {
    pub fn push_op(&self, op: WriteOp) {
        self.pending.lock().batch.ops.push(op);
        self.work.notify_one();
    }

    pub fn push_event(&self, execution_id: &Arc<str>, event: &Event) {
        let mut pending = self.pending.lock();
        if pending.is_full() {
            drop(pending);
            pending = self.wait_for_room();
        }
        if pending.closed {
            // The writer is gone (`abandon`): the failure reaches the run through the commit
            // watch; queuing more would only grow without limit.
            return;
        }
        let rows = &mut pending.batch.rows;
        let open = rows.last().is_some_and(|row| Arc::ptr_eq(&row.execution_id, execution_id) && !row.is_full());
        if !open {
            rows.push(RowBuilder::new(execution_id.clone()));
        }
        let row = rows.last_mut().expect("a row was just opened");
        let before = row.body.len();
        row.push(event);
        let added = row.body.len() - before;
        pending.batch.bytes += added;
        drop(pending);
        // Cheap when the writer is busy: only a sleeping writer is woken.
        self.work.notify_one();
    }

    /// Waits for something to write and takes all of it; `None` once closed and drained.
    /// Parks until the writer took the queue (or stopped), without stalling the other tasks
    /// of a tokio worker it may be on (`blocking::park`).
    fn wait_for_room(&self) -> parking_lot::MutexGuard<'_, Pending> {
        let wait = || {
            let mut pending = self.pending.lock();
            while pending.is_full() {
                self.room.wait(&mut pending);
            }
            pending
        };
        crate::blocking::park(wait)
    }

    pub fn take(&self) -> Option<Batch> {
        let mut pending = self.pending.lock();
        while pending.batch.is_empty() && !pending.closed {
            self.work.wait(&mut pending);
        }
        if pending.batch.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut pending.batch);
        drop(pending);
        self.room.notify_all();
        Some(batch)
    }

    /// No more writes: the writer stops once it wrote what is queued.
    pub fn close(&self) {
        self.pending.lock().closed = true;
        self.work.notify_all();
        self.room.notify_all();
    }

    /// The writer stopped for good: what is queued is dropped, so that a `Sync` waiting in it
    /// sees its answer will never come instead of blocking for ever.
    pub fn abandon(&self) {
        let dropped = {
            let mut pending = self.pending.lock();
            pending.closed = true;
            std::mem::take(&mut pending.batch)
        };
        drop(dropped);
        self.work.notify_all();
        self.room.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An event emitted on a tokio worker while the queue was full parked the worker itself:
    // every task queued behind it on that worker waited for the disk too (with one worker,
    // the whole executor stopped until the writer caught up).
    #[test]
    fn a_full_queue_parks_the_emitter_not_the_tokio_worker() {
        let queue = Arc::new(WriteQueue::default());
        let id: Arc<str> = Arc::from("e");
        let message = "x".repeat(4096);
        let mut seq = 0;
        while !queue.pending.lock().is_full() {
            seq += 1;
            let payload =
                crate::events::Payload::Log { level: crate::events::LogLevel::Info, message: message.clone() };
            queue.push_event(&id, &Event { seq, ts: std::time::SystemTime::now(), payload });
        }
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let (emitter, event) = (queue.clone(), id.clone());
        runtime.spawn(async move {
            let payload =
                crate::events::Payload::Log { level: crate::events::LogLevel::Info, message: "one more".into() };
            emitter.push_event(&event, &Event { seq: 0, ts: std::time::SystemTime::now(), payload });
        });
        let (ran, other_task_ran) = std::sync::mpsc::channel();
        runtime.spawn(async move { ran.send(()).unwrap() });
        let ran = other_task_ran.recv_timeout(std::time::Duration::from_secs(20));
        queue.take();
        runtime.shutdown_background();
        assert!(ran.is_ok(), "a task behind the parked emitter never ran");
    }

    // A writer that stopped left a flush waiting for an answer for ever.
    #[test]
    fn an_abandoned_queue_drops_the_flushes_waiting_in_it() {
        let queue = WriteQueue::default();
        let (ack, answer) = std::sync::mpsc::sync_channel(1);
        queue.push_op(WriteOp::Sync(ack));
        queue.abandon();
        assert!(answer.recv().is_err());
        assert!(queue.take().is_none());
    }
}
