//! The event bus: numbers events and hands them to the sinks.
//!
//! Without a store (or without other sinks), every sink gets each event as it is emitted, under
//! the lock that numbers it. With a durable store, only the store gets it then; the others
//! (the console, `--events-json`: the announcing sinks) get it from a deliverer thread once
//! the store has committed it (`HeldEvents`), in the same order and once each, so that nothing
//! is announced as done that the store did not record. The store's writer tells the bus how
//! far it got (`CommitFeed`) after each commit, and the deliverer wakes once per commit, not
//! per event; an emitter only moves its event into the queue.

use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::{Condvar, Mutex, MutexGuard};

use super::held::HeldEvents;
use super::{Event, EventSink, ExecutionLabel, Payload, Success, TaskInfo};

/// Events held for the announcing sinks at most: past that, emitters wait for the deliverer
/// (a sink slower than the run must not let the queue grow without limit).
const HELD_AT_MOST: usize = 1 << 17;

/// Events the deliverer takes at most at a time: it holds them while the sinks write them,
/// and a whole commit's worth (tens of thousands) would stay allocated once taken.
const DUE_AT_MOST: usize = 1024;

/// Numbers events and hands them to the sinks.
pub struct EventBus {
    label: ExecutionLabel,
    /// Some sink reads a success's result (`EventSink::reads_results`); the sinks are all
    /// known when the bus is made.
    results_read: bool,
    /// Some sink reads `task_started` (`EventSink::reads_task_starts`).
    task_starts_read: bool,
    /// Some sink reads more of `task_succeeded` than its count (`EventSink::reads_successes`).
    successes_read: bool,
    shared: Arc<Shared>,
    deliverer: Mutex<Option<JoinHandle<()>>>,
}

struct Shared {
    state: Mutex<BusState>,
    /// Signalled when the deliverer took events (room in the queue) and when it is done.
    progress: Condvar,
    /// What the deliverer is told, under its own lock: the store's writer tells it of a commit
    /// without taking the bus's lock, which an emitter may hold while it waits for room in the
    /// store's queue, room that only the writer makes.
    tidings: Mutex<Tidings>,
    /// Signalled when there is news for the deliverer.
    news: Condvar,
    /// The sinks that wait for the store's commits; only the deliverer gives them events.
    announcing: Mutex<Vec<Box<dyn EventSink>>>,
}

struct BusState {
    seq: u64,
    /// The sinks that get each event as it is emitted: every sink without a store; with one,
    /// the store's.
    sinks: Vec<Box<dyn EventSink>>,
    /// With a store and announcing sinks: what they have not been given yet.
    held: Option<HeldEvents>,
    /// The run ended (`close`): nothing more is held.
    ending: bool,
    /// The deliverer is done: everything held was announced, or dropped.
    delivered: bool,
}

#[derive(Clone, Copy, Default)]
struct Tidings {
    committed: u64,
    no_more_commits: bool,
    ending: bool,
    /// Something changed since the deliverer last looked.
    news: bool,
}

impl Shared {
    fn tell(&self, change: impl FnOnce(&mut Tidings)) {
        let mut tidings = self.tidings.lock();
        change(&mut tidings);
        tidings.news = true;
        self.news.notify_one();
    }
}

/// How the store's writer tells the bus how far it got, after each commit.
#[derive(Clone)]
pub struct CommitFeed(Weak<Shared>);

impl CommitFeed {
    /// Every event up to `committed` is on disk; `no_more_commits` once the store will commit
    /// nothing more (a write failed, or its writer stopped).
    pub fn update(&self, committed: u64, no_more_commits: bool) {
        let Some(shared) = self.0.upgrade() else { return };
        shared.tell(|t| {
            t.committed = t.committed.max(committed);
            t.no_more_commits |= no_more_commits;
        });
    }
}

impl EventBus {
    /// A bus that hands every event to every sink as it is emitted.
    pub fn new(label: ExecutionLabel, sinks: Vec<Box<dyn EventSink>>) -> Self {
        Self::continuing(label, sinks, 0)
    }

    /// A bus whose first event is `last_seq + 1` (a resumed execution goes on numbering).
    pub fn continuing(label: ExecutionLabel, sinks: Vec<Box<dyn EventSink>>, last_seq: u64) -> Self {
        let task_starts_read = sinks.iter().any(|sink| sink.reads_task_starts());
        let results_read = sinks.iter().any(|sink| sink.reads_results());
        let successes_read = sinks.iter().any(|sink| sink.reads_successes());
        let state = BusState { seq: last_seq, sinks, held: None, ending: false, delivered: false };
        EventBus {
            label,
            results_read,
            task_starts_read,
            successes_read,
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                progress: Condvar::new(),
                tidings: Mutex::new(Tidings::default()),
                news: Condvar::new(),
                announcing: Mutex::new(Vec::new()),
            }),
            deliverer: Mutex::new(None),
        }
    }

    /// A bus whose `recorder` (the store) gets each event as it is emitted, and the `others`
    /// once the recorder committed it, as told through `commit_feed`.
    pub fn recording(
        label: ExecutionLabel,
        recorder: Box<dyn EventSink>,
        others: Vec<Box<dyn EventSink>>,
        last_seq: u64,
    ) -> Self {
        let mut bus = Self::continuing(label, vec![recorder], last_seq);
        bus.results_read |= others.iter().any(|sink| sink.reads_results());
        if others.is_empty() {
            return bus;
        }
        *bus.shared.announcing.lock() = others;
        bus.shared.state.lock().held = Some(HeldEvents::default());
        let (shared, label) = (bus.shared.clone(), bus.label.clone());
        let spawned =
            std::thread::Builder::new().name("rhaiflow-announce".into()).spawn(move || deliver(&shared, &label));
        match spawned {
            Ok(deliverer) => *bus.deliverer.lock() = Some(deliverer),
            // Without a deliverer the others are told at once, as without a store, rather
            // than never.
            Err(_) => {
                let others = std::mem::take(&mut *bus.shared.announcing.lock());
                bus.task_starts_read |= others.iter().any(|sink| sink.reads_task_starts());
                bus.successes_read |= others.iter().any(|sink| sink.reads_successes());
                let mut state = bus.shared.state.lock();
                state.held = None;
                state.sinks.extend(others);
            }
        }
        bus
    }

    /// Where the store's writer reports its commits to this bus.
    pub fn commit_feed(&self) -> CommitFeed {
        CommitFeed(Arc::downgrade(&self.shared))
    }

    pub fn label(&self) -> &ExecutionLabel {
        &self.label
    }

    /// A success's `result` for its event: its JSON when some sink reads it, else nothing
    /// (turning it into JSON cost a closure task returning `1 + 1` ~80 instructions).
    pub fn result_json(&self, value: &rhai::Dynamic) -> Option<serde_json::Value> {
        if self.results_read {
            crate::value::result_json(value)
        } else {
            None
        }
    }

    /// Whether any sink reads `graph_planned` (`EventSink::reads_graphs`).
    pub fn graphs_read(&self) -> bool {
        let reads = |sinks: &[Box<dyn EventSink>]| sinks.iter().any(|sink| sink.reads_graphs());
        reads(&self.shared.state.lock().sinks) || reads(&self.shared.announcing.lock())
    }

    /// `task_started` of the attempt `task`, copied into an event only when some sink reads
    /// it; else it only takes its number.
    pub fn emit_task_started(&self, task: &TaskInfo) -> u64 {
        if self.task_starts_read {
            return self.emit(Payload::TaskStarted { task: task.clone() });
        }
        let mut state = self.shared.state.lock();
        state.seq += 1;
        state.seq
    }

    /// `task_succeeded` of the attempt `task`, with `value` as its result: an event when some
    /// sink reads more of it than its count; else it only takes its number and is counted.
    pub fn emit_success(&self, task: TaskInfo, value: Option<&rhai::Dynamic>, how: Success) -> u64 {
        if !self.successes_read {
            let mut state = self.shared.state.lock();
            // Held events go to sinks that read them, in order: a count may not pass them.
            if state.held.is_none() {
                state.seq += 1;
                for sink in state.sinks.iter_mut() {
                    sink.count_success(&task, how);
                }
                return state.seq;
            }
        }
        let result = value.and_then(|value| self.result_json(value));
        self.emit(Payload::TaskSucceeded { task, result, how })
    }

    /// Numbers the event, hands it to the sinks (or holds it for them) and returns its `seq`.
    pub fn emit(&self, payload: Payload) -> u64 {
        let mut state = self.shared.state.lock();
        if !self.task_starts_read && matches!(payload, Payload::TaskStarted { .. }) {
            state.seq += 1;
            return state.seq;
        }
        if state.held.as_ref().is_some_and(|held| held.len() >= HELD_AT_MOST) {
            // Waits for the store's commits: never with a tokio worker's other tasks behind it.
            crate::blocking::park(|| self.wait_for_room(&mut state));
        }
        state.seq += 1;
        let seq = state.seq;
        let event = Event { seq, ts: SystemTime::now(), payload };
        let BusState { sinks, held, ending, .. } = &mut *state;
        match held {
            Some(held) if !*ending => {
                // Held before the store has it: the commit that makes it due cannot be told
                // before it is in the queue.
                held.push(event);
                let event = held.last().expect("an event was just held");
                for sink in sinks.iter_mut() {
                    sink.accept(event, &self.label);
                }
                // Once the store commits nothing more, events are announced as they come.
                if !held.waits_for_commits() {
                    self.shared.tell(|_| {});
                }
            }
            _ => {
                for sink in sinks.iter_mut() {
                    sink.accept(&event, &self.label);
                }
            }
        }
        seq
    }

    fn wait_for_room(&self, state: &mut MutexGuard<'_, BusState>) {
        while !state.ending && state.held.as_ref().is_some_and(|held| held.len() >= HELD_AT_MOST) {
            self.shared.progress.wait(state);
        }
    }

    /// The run ended: waits until the announcing sinks have had every event (the runner
    /// flushed the store first, so each is committed or never will be), then closes every
    /// sink.
    pub fn close(&self) {
        let mut state = self.shared.state.lock();
        if std::mem::replace(&mut state.ending, true) {
            return;
        }
        self.shared.progress.notify_all();
        self.shared.tell(|t| t.ending = true);
        while state.held.is_some() && !state.delivered {
            self.shared.progress.wait(&mut state);
        }
        for sink in state.sinks.iter_mut() {
            sink.close();
        }
        drop(state);
        if let Some(deliverer) = self.deliverer.lock().take() {
            let _ = deliverer.join();
        }
        for sink in self.shared.announcing.lock().iter_mut() {
            sink.close();
        }
    }

    /// The process is about to end without the run's own end (the last resort of a forced
    /// cancel): the announcing sinks get what is held without waiting for the store any
    /// longer (but no success it did not record). Waits at most `limit`, since a sink or the
    /// bus itself may be what is stuck; true when everything was announced.
    pub fn close_within(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let Some(mut state) = self.shared.state.try_lock_until(deadline) else { return false };
        state.ending = true;
        self.shared.progress.notify_all();
        self.shared.tell(|t| {
            t.ending = true;
            t.no_more_commits = true;
        });
        while state.held.is_some() && !state.delivered {
            if self.shared.progress.wait_until(&mut state, deadline).timed_out() {
                return state.delivered;
            }
        }
        true
    }
}

impl Drop for EventBus {
    /// Dropped without `close` (a caller that stopped early): the deliverer announces what is
    /// held without waiting for the store any longer, and stops.
    fn drop(&mut self) {
        let mut state = self.shared.state.lock();
        if !std::mem::replace(&mut state.ending, true) {
            self.shared.progress.notify_all();
            self.shared.tell(|t| {
                t.ending = true;
                t.no_more_commits = true;
            });
        }
    }
}

/// The deliverer's thread: after each piece of news, announces what became due, until the
/// run's end is announced.
fn deliver(shared: &Shared, label: &ExecutionLabel) {
    let mut due = Vec::with_capacity(DUE_AT_MOST);
    loop {
        let tidings = take_news(shared);
        if take_due(shared, &tidings, &mut due) {
            shared.progress.notify_all();
            return;
        }
        if due.is_empty() {
            wait_for_news(shared);
            continue;
        }
        shared.progress.notify_all();
        let mut sinks = shared.announcing.lock();
        for event in due.drain(..) {
            for sink in sinks.iter_mut() {
                sink.accept(&event, label);
            }
        }
    }
}

/// What the deliverer was told, as of now; the news is taken.
fn take_news(shared: &Shared) -> Tidings {
    let mut tidings = shared.tidings.lock();
    tidings.news = false;
    Tidings { news: false, ..*tidings }
}

fn wait_for_news(shared: &Shared) {
    let mut tidings = shared.tidings.lock();
    while !tidings.news {
        shared.news.wait(&mut tidings);
    }
}

/// Moves what is due to `due`; true once everything was announced at the run's end.
fn take_due(shared: &Shared, tidings: &Tidings, due: &mut Vec<Event>) -> bool {
    let mut state = shared.state.lock();
    let Some(held) = state.held.as_mut() else { return true };
    held.committed(tidings.committed);
    if tidings.no_more_commits {
        held.stop_waiting();
    }
    held.take_due(due, tidings.ending, DUE_AT_MOST);
    let finished = tidings.ending && due.is_empty() && held.is_empty();
    state.delivered |= finished;
    finished
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::events::LogLevel;
    use crate::events::TaskKind;

    fn label() -> ExecutionLabel {
        ExecutionLabel { execution_id: "e".into(), workflow: "w".into() }
    }

    /// A sink that keeps the seq of what it got and checks each was committed by then.
    #[derive(Clone, Default)]
    struct Announced {
        seqs: Arc<Mutex<Vec<u64>>>,
        /// What the fake store had committed (set before it tells the bus).
        committed: Arc<AtomicU64>,
        /// Events it got that were not committed yet.
        early: Arc<Mutex<Vec<u64>>>,
    }

    impl EventSink for Announced {
        fn accept(&mut self, event: &Event, _: &ExecutionLabel) {
            if event.seq > self.committed.load(Ordering::SeqCst) {
                self.early.lock().push(event.seq);
            }
            self.seqs.lock().push(event.seq);
        }
    }

    /// The store: it takes every event at once.
    struct Recorder(Arc<Mutex<Vec<u64>>>);

    impl EventSink for Recorder {
        fn accept(&mut self, event: &Event, _: &ExecutionLabel) {
            self.0.lock().push(event.seq);
        }
    }

    fn succeeded(name: &str, kind: TaskKind) -> Payload {
        let info = TaskInfo::first_attempt(name, kind);
        Payload::TaskSucceeded { task: info, result: None, how: Success::Done }
    }

    fn log(message: &str) -> Payload {
        Payload::Log { level: LogLevel::Info, message: message.into() }
    }

    // A task's event emitted on a tokio worker while the bus held as many events as it may
    // (the store was behind) parked the worker: the tasks queued on it waited for the disk.
    #[test]
    fn a_full_bus_parks_the_emitter_not_the_tokio_worker() {
        let shown = Announced::default();
        let recorder = Box::new(Recorder(Arc::default()));
        let bus = Arc::new(EventBus::recording(label(), recorder, vec![Box::new(shown.clone())], 0));
        let feed = bus.commit_feed();
        for _ in 0..HELD_AT_MOST {
            bus.emit(log("held until the store commits it"));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).build().unwrap();
        let emitter = bus.clone();
        runtime.spawn(async move { emitter.emit(log("one more")) });
        let (ran, other_task_ran) = std::sync::mpsc::channel();
        runtime.spawn(async move { ran.send(()).unwrap() });
        let ran = other_task_ran.recv_timeout(Duration::from_secs(20));
        shown.committed.store(u64::MAX, Ordering::SeqCst);
        feed.update(u64::MAX, false);
        runtime.shutdown_background();
        assert!(ran.is_ok(), "a task behind the parked emitter never ran");
    }

    /// Waits (bounded) until `sink` got `n` events.
    fn wait_for(sink: &Announced, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while sink.seqs.lock().len() < n {
            assert!(Instant::now() < deadline, "only {:?} were announced", sink.seqs.lock());
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn commit(feed: &CommitFeed, sink: &Announced, seq: u64) {
        sink.committed.store(seq, Ordering::SeqCst);
        feed.update(seq, false);
    }

    // The console and the events file said "succeeded" before the store had committed it;
    // when the commit then failed, the success was reported but never recorded.
    #[test]
    fn the_other_sinks_get_an_event_only_once_the_store_committed_it() {
        let (recorded, sink) = (Arc::new(Mutex::new(Vec::new())), Announced::default());
        let bus = EventBus::recording(label(), Box::new(Recorder(recorded.clone())), vec![Box::new(sink.clone())], 0);
        let feed = bus.commit_feed();
        for i in 0..5 {
            bus.emit(succeeded(&format!("t{i}"), TaskKind::Shell));
        }
        assert_eq!(*recorded.lock(), [1, 2, 3, 4, 5], "the store has each at once");
        std::thread::sleep(Duration::from_millis(20));
        assert!(sink.seqs.lock().is_empty(), "announced before any commit");
        commit(&feed, &sink, 3);
        wait_for(&sink, 3);
        bus.emit(Payload::WorkflowSucceeded { result: None });
        commit(&feed, &sink, 6);
        wait_for(&sink, 5);
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(*sink.seqs.lock(), [1, 2, 3, 4, 5], "the end waits for the run's end");
        bus.close();
        assert_eq!(*sink.seqs.lock(), [1, 2, 3, 4, 5, 6]);
        assert!(sink.early.lock().is_empty(), "announced before committed: {:?}", sink.early.lock());
    }

    #[test]
    fn many_events_from_many_threads_are_announced_in_order_each_once() {
        let sink = Announced::default();
        let bus =
            Arc::new(EventBus::recording(label(), Box::new(Recorder(Arc::default())), vec![Box::new(sink.clone())], 0));
        let feed = bus.commit_feed();
        let emitters: Vec<_> = (0..4)
            .map(|_| {
                let bus = bus.clone();
                std::thread::spawn(move || (0..2000).map(|_| bus.emit(log("x"))).max().unwrap())
            })
            .collect();
        // A store that commits in batches while the emitters run.
        let mut committed = 0;
        while committed < 8000 {
            committed = (committed + 700).min(bus.shared.state.lock().seq);
            commit(&feed, &sink, committed);
            std::thread::sleep(Duration::from_millis(1));
        }
        for emitter in emitters {
            emitter.join().unwrap();
        }
        bus.close();
        assert_eq!(*sink.seqs.lock(), (1..=8000).collect::<Vec<u64>>());
        assert!(sink.early.lock().is_empty());
    }

    // When the store failed, what it had not committed (the failure, the logs, the end) never
    // reached the console, or reached it as successes; now everything but the unrecorded
    // successes with effects is announced as it comes.
    #[test]
    fn after_the_store_failed_events_are_announced_as_they_come_but_unrecorded_successes() {
        let sink = Announced::default();
        let bus = EventBus::recording(label(), Box::new(Recorder(Arc::default())), vec![Box::new(sink.clone())], 0);
        let feed = bus.commit_feed();
        bus.emit(log("committed"));
        bus.emit(succeeded("lost", TaskKind::Script));
        bus.emit(succeeded("noop", TaskKind::Noop));
        feed.update(1, true);
        wait_for(&sink, 2);
        bus.emit(log("after the failure"));
        wait_for(&sink, 3);
        bus.emit(Payload::WorkflowSucceeded { result: None });
        bus.emit(Payload::WorkflowFailed { error: "the execution store failed".into() });
        bus.close();
        assert_eq!(*sink.seqs.lock(), [1, 3, 4, 6]);
    }

    // The last resort of a forced cancel ended the process while the cancel waited for a
    // store that was stuck: the events file never got it.
    #[test]
    fn closing_within_a_limit_announces_without_waiting_for_the_store() {
        let sink = Announced::default();
        let bus = EventBus::recording(label(), Box::new(Recorder(Arc::default())), vec![Box::new(sink.clone())], 0);
        bus.emit(succeeded("unrecorded", TaskKind::Shell));
        bus.emit(Payload::WorkflowCancelled { by: None });
        assert!(bus.close_within(Duration::from_secs(5)));
        assert_eq!(*sink.seqs.lock(), [2]);
    }

    /// A sink that shows no task's start, as a quiet console.
    struct NoStarts(Announced);

    impl EventSink for NoStarts {
        fn accept(&mut self, event: &Event, label: &ExecutionLabel) {
            assert!(!matches!(event.payload, Payload::TaskStarted { .. }), "given a start it does not read");
            self.0.accept(event, label);
        }

        fn reads_task_starts(&self) -> bool {
            false
        }
    }

    // A `task_started` no sink reads only takes its number; with a sink that reads it, every
    // sink gets it.
    #[test]
    fn a_task_start_that_no_sink_reads_is_only_numbered() {
        let started = || Payload::TaskStarted { task: TaskInfo::first_attempt("t", TaskKind::Noop) };
        let quiet = Announced::default();
        let bus = EventBus::new(label(), vec![Box::new(NoStarts(quiet.clone()))]);
        assert_eq!((bus.emit(started()), bus.emit(succeeded("t", TaskKind::Noop))), (1, 2));
        let info = TaskInfo::first_attempt("t", TaskKind::Noop);
        assert_eq!(bus.emit_task_started(&info), 3);
        assert_eq!(*quiet.seqs.lock(), [2]);
        let reader = Announced::default();
        let bus = EventBus::new(label(), vec![Box::new(reader.clone())]);
        bus.emit(started());
        assert_eq!(bus.emit_task_started(&info), 2);
        assert_eq!(*reader.seqs.lock(), [1, 2]);
        // The store reads starts, whatever the others do.
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let bus = EventBus::recording(label(), Box::new(Recorder(recorded.clone())), Vec::new(), 0);
        assert_eq!(bus.emit_task_started(&info), 1);
        assert_eq!(*recorded.lock(), [1]);
    }

    /// A sink that only counts successes, as a quiet console: the successes it was told of.
    #[derive(Clone, Default)]
    struct CountsSuccesses {
        seqs: Arc<Mutex<Vec<u64>>>,
        counted: Arc<Mutex<Vec<(String, Success)>>>,
    }

    impl EventSink for CountsSuccesses {
        fn accept(&mut self, event: &Event, _: &ExecutionLabel) {
            self.seqs.lock().push(event.seq);
        }

        fn reads_successes(&self) -> bool {
            false
        }

        fn count_success(&mut self, task: &TaskInfo, how: Success) {
            self.counted.lock().push((task.name.to_string(), how));
        }
    }

    // A success that no sink reads more of than its count takes its number and is counted, in
    // its place among the events; with a sink that reads it, or a store, every sink gets it.
    #[test]
    fn a_success_that_no_sink_reads_is_only_numbered_and_counted() {
        let info = || TaskInfo::first_attempt("t", TaskKind::Noop);
        let quiet = CountsSuccesses::default();
        let bus = EventBus::new(label(), vec![Box::new(quiet.clone())]);
        bus.emit(log("before"));
        assert_eq!(bus.emit_success(info(), Some(&rhai::Dynamic::from(2_i64)), Success::Done), 2);
        assert_eq!(bus.emit_success(info(), None, Success::Again), 3);
        assert_eq!(bus.emit(log("after")), 4);
        assert_eq!(*quiet.seqs.lock(), [1, 4]);
        assert_eq!(*quiet.counted.lock(), [("t".to_string(), Success::Done), ("t".to_string(), Success::Again)]);

        let (quiet, reader) = (CountsSuccesses::default(), Announced::default());
        let bus = EventBus::new(label(), vec![Box::new(reader.clone())]);
        assert_eq!(bus.emit_success(info(), None, Success::Done), 1);
        assert_eq!(*reader.seqs.lock(), [1]);
        let bus = EventBus::new(label(), vec![Box::new(quiet.clone()), Box::new(reader.clone())]);
        assert_eq!(bus.emit_success(info(), None, Success::Done), 1);
        assert!(quiet.counted.lock().is_empty(), "a sink that reads it makes the event");
        assert_eq!(*reader.seqs.lock(), [1, 1]);

        // The store reads successes, whatever the others (told once it committed) do.
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let bus = EventBus::recording(label(), Box::new(Recorder(recorded.clone())), vec![Box::new(quiet.clone())], 0);
        assert_eq!(bus.emit_success(info(), None, Success::Done), 1);
        assert_eq!(*recorded.lock(), [1]);
        assert!(quiet.counted.lock().is_empty());
    }

    /// A sink that reads no result, as a console.
    struct NoResults;

    impl EventSink for NoResults {
        fn accept(&mut self, _: &Event, _: &ExecutionLabel) {}

        fn reads_results(&self) -> bool {
            false
        }
    }

    // A result no sink reads is not made into JSON; any sink that reads results, as it is
    // emitted or once the store committed it, gets it.
    #[test]
    fn a_result_is_made_into_json_only_when_some_sink_reads_it() {
        let two = rhai::Dynamic::from(2_i64);
        let bus = EventBus::new(label(), vec![Box::new(NoResults)]);
        assert_eq!(bus.result_json(&two), None);
        let bus = EventBus::new(label(), vec![Box::new(NoResults), Box::new(Announced::default())]);
        assert_eq!(bus.result_json(&two), Some(serde_json::json!(2)));
        let bus = EventBus::recording(label(), Box::new(NoResults), vec![Box::new(Announced::default())], 0);
        assert_eq!(bus.result_json(&two), Some(serde_json::json!(2)));
        bus.close();
        let bus = EventBus::recording(label(), Box::new(Recorder(Arc::default())), vec![Box::new(NoResults)], 0);
        assert_eq!(bus.result_json(&two), Some(serde_json::json!(2)));
        assert_eq!(bus.result_json(&rhai::Dynamic::UNIT), None);
        bus.close();
    }

    #[test]
    fn without_other_sinks_or_a_store_every_sink_gets_each_event_at_once() {
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let bus = EventBus::recording(label(), Box::new(Recorder(recorded.clone())), Vec::new(), 0);
        bus.emit(log("a"));
        assert_eq!(*recorded.lock(), [1]);
        assert!(bus.deliverer.lock().is_none());
        let sink = Announced::default();
        let bus = EventBus::continuing(label(), vec![Box::new(sink.clone())], 7);
        bus.emit(Payload::WorkflowSucceeded { result: None });
        assert_eq!(*sink.seqs.lock(), [8]);
    }
}
