//! The hand-off between the threads that emit events and the store's writer thread.
//!
//! Emitters append under one lock: an event is encoded straight into the row it will be stored
//! in (`event_rows`), with no allocation and no channel message of its own; the other writes
//! (an execution's start, its planned task count, its end, a flush) queue in order beside the
//! rows. The writer takes everything queued at once and commits it in one transaction (group
//! commit), and sleeps when nothing is queued. The queue is bounded: when events come faster
//! than the disk takes them, emitters wait instead of the queue growing without limit (a
//! 1M-task run once held 1.3 GB of queued events).
//!
//! Every commit costs an fsync (`synchronous=FULL`), so the writer commits at once only what
//! someone waits for (`Pending::awaited`): an execution's start and end, a flush, a task's
//! success the run waits on (`Payload::is_success_to_record`), a full queue. Other events (a
//! log line, a task's start or output, the workflow's end event, which the execution's end
//! follows) wait up to `LINGER` for such a write to share its commit: a small run makes 3
//! commits instead of 7. Nothing is weakened: what waits for a commit still gets
//! it at once, and the console and `--events-json` still show only committed events.

use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::event_rows::RowBuilder;
use super::{ExecutionRecord, ExecutionStatus, Result};
use crate::events::Event;

/// Bytes of encoded events queued at most (about 40,000 events).
const QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// How long an event that nothing waits for may wait for company in a commit: longer than a
/// small task takes (a shell task's `sh` starts in a few ms), short enough that a person
/// never sees the console lag.
pub const LINGER: Duration = Duration::from_millis(10);

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
    /// Something queued is waited for: the writer commits at once.
    awaited: bool,
    /// When the first write of `batch` was queued: it is committed `LINGER` after at the latest.
    since: Option<Instant>,
}

impl Pending {
    /// Emitters wait for room (unless the writer is gone, and nothing more is kept).
    fn is_full(&self) -> bool {
        self.batch.bytes >= QUEUE_BYTES && !self.closed
    }

    /// Notes that a write was queued; true when the writer must hear of it (it waits for the
    /// queue to fill, or for something awaited): on the first write, and on an awaited one.
    fn queued(&mut self, awaited: bool) -> bool {
        let first = self.since.is_none();
        self.since.get_or_insert_with(Instant::now);
        let news = first || (awaited && !self.awaited) || self.is_full();
        self.awaited |= awaited;
        news
    }

    /// When the writer takes what is queued: now (`None`), or at the instant given.
    fn due(&self, linger: Duration) -> Option<Instant> {
        if self.awaited || self.closed || self.is_full() {
            return None;
        }
        self.since.map(|since| since + linger)
    }
}

pub struct WriteQueue {
    pending: Mutex<Pending>,
    /// Signalled when something is queued (the writer waits on it).
    work: Condvar,
    /// Signalled when the writer took the queue (full emitters wait on it).
    room: Condvar,
    /// `LINGER`, but for the tests.
    linger: Duration,
}

impl Default for WriteQueue {
    fn default() -> Self {
        WriteQueue::lingering(LINGER)
    }
}

impl WriteQueue {
    fn lingering(linger: Duration) -> Self {
        WriteQueue { pending: Mutex::default(), work: Condvar::new(), room: Condvar::new(), linger }
    }

    /// Every op is awaited (a start, an end, a flush) but a planned count, which only
    /// `executions list` reads.
    pub fn push_op(&self, op: WriteOp) {
        let awaited = !matches!(op, WriteOp::Planned { .. });
        let mut pending = self.pending.lock();
        pending.batch.ops.push(op);
        if pending.queued(awaited) {
            self.work.notify_one();
        }
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
        // Not the workflow's end event: the execution's end (`WriteOp::End`), awaited, always
        // follows it at once, and they share a commit instead of making two.
        let awaited = event.payload.is_success_to_record() && !event.payload.ends_workflow();
        let news = pending.queued(awaited);
        drop(pending);
        if news {
            self.work.notify_one();
        }
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

    #[cfg(test)]
    pub fn take(&self) -> Option<Batch> {
        while self.wait_until_due() {
            if let Some(batch) = self.take_now() {
                return Some(batch);
            }
        }
        None
    }

    /// Waits until what is queued is due (`Pending::due`); false once closed and drained.
    /// Takes nothing: a flush may take it first (`take_now`).
    pub fn wait_until_due(&self) -> bool {
        let mut pending = self.pending.lock();
        loop {
            while pending.batch.is_empty() && !pending.closed {
                self.work.wait(&mut pending);
            }
            if pending.batch.is_empty() {
                return false;
            }
            let Some(due) = pending.due(self.linger) else { return true };
            if self.work.wait_until(&mut pending, due).timed_out() && !pending.batch.is_empty() {
                return true;
            }
        }
    }

    /// Takes everything queued, due or not; `None` when nothing is.
    pub fn take_now(&self) -> Option<Batch> {
        let mut pending = self.pending.lock();
        if pending.batch.is_empty() {
            return None;
        }
        let batch = std::mem::take(&mut pending.batch);
        (pending.awaited, pending.since) = (false, None);
        drop(pending);
        self.room.notify_all();
        Some(batch)
    }

    /// Closed: the writer stopped (`abandon`), or its store is gone.
    pub fn is_closed(&self) -> bool {
        self.pending.lock().closed
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

    fn event(seq: u64, payload: crate::events::Payload) -> Event {
        Event { seq, ts: std::time::SystemTime::now(), payload }
    }

    fn log(seq: u64) -> Event {
        event(seq, crate::events::Payload::Log { level: crate::events::LogLevel::Info, message: "a line".into() })
    }

    // Every event was committed as soon as it was queued, one fsync each: a run that logs a
    // line, starts a shell task and ends made 6 commits where 3 do.
    #[test]
    fn an_event_nothing_waits_for_waits_for_company_before_it_is_committed() {
        let queue = WriteQueue::lingering(Duration::from_millis(50));
        let queued = Instant::now();
        queue.push_event(&Arc::from("e"), &log(1));
        let batch = queue.take().expect("the log is committed in the end");
        assert!(queued.elapsed() >= Duration::from_millis(50), "taken after {:?}", queued.elapsed());
        assert_eq!(batch.rows.len(), 1);
    }

    // What a run waits for (a task's success, its end, a flush) must not wait for company: it
    // is taken at once, with whatever waited before it, in the same commit.
    #[test]
    fn what_a_run_waits_for_is_committed_at_once_with_what_waited_before_it() {
        let task = crate::events::TaskInfo::first_attempt("greet", crate::events::TaskKind::Shell);
        let how = crate::events::Success::Done;
        let success = event(2, crate::events::Payload::TaskSucceeded { task, result: None, how });
        taken_at_once("a success the run waits for", |q, id| q.push_event(id, &success));
        let (ack, _answer) = std::sync::mpsc::sync_channel(1);
        taken_at_once("a flush", |q, _| q.push_op(WriteOp::Sync(ack.clone())));
    }

    /// A log line queued, then `push`: both are taken at once (the linger is a minute), the
    /// events in one row.
    fn taken_at_once(what: &str, push: impl Fn(&WriteQueue, &Arc<str>)) {
        let (queue, id) = (WriteQueue::lingering(Duration::from_secs(60)), Arc::from("e"));
        queue.push_event(&id, &log(1));
        push(&queue, &id);
        let taken = Instant::now();
        let batch = queue.take().expect("something is queued");
        assert!(taken.elapsed() < Duration::from_secs(30), "{what} waited for company");
        assert_eq!(batch.rows.len(), 1, "{what}");
    }

    // The workflow's end event was committed on its own, at once, and the execution's end,
    // queued just after it, in a second commit: two fsyncs where one does.
    #[test]
    fn the_workflow_end_event_shares_the_commit_of_the_execution_end() {
        let queue = Arc::new(WriteQueue::lingering(Duration::from_secs(60)));
        let writer = {
            let queue = queue.clone();
            std::thread::spawn(move || std::iter::from_fn(|| queue.take()).collect::<Vec<Batch>>())
        };
        let id: Arc<str> = Arc::from("e");
        queue.push_event(&id, &event(1, crate::events::Payload::WorkflowSucceeded { result: None }));
        // Time for a writer that took the event at once to have taken it.
        std::thread::sleep(Duration::from_millis(50));
        let (execution_id, status, at) = ("e".to_string(), ExecutionStatus::Succeeded, "now".to_string());
        queue.push_op(WriteOp::End { execution_id, status, error: None, at });
        queue.close();
        let batches = writer.join().unwrap();
        assert_eq!(batches.len(), 1, "one commit");
        assert_eq!((batches[0].rows.len(), batches[0].ops.len()), (1, 1));
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
