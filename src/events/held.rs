//! The events that wait for the store before the other sinks may have them.
//!
//! With a durable store, a sink other than the store (the console, `--events-json`) is given
//! an event only once the store has committed it, so that nothing is announced that a failed
//! write could take back. `HeldEvents` is that queue, in `seq` order, with how far the store
//! got; it says which events are due. Once the store commits nothing more (a write failed),
//! what it did not commit is announced all the same, since the person must see the failure,
//! the logs and the end; but not a success the store did not record: that one is dropped, and
//! the executor announces the attempt as failed instead.

use std::collections::VecDeque;

use super::Event;

#[derive(Default)]
pub(super) struct HeldEvents {
    events: VecDeque<Event>,
    /// Every event up to this `seq` is committed.
    committed: u64,
    /// The store commits nothing more (a write failed, its writer stopped, or the process
    /// ends without waiting for it): held events are due, committed or not.
    no_more_commits: bool,
}

impl HeldEvents {
    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Holds `event`, which comes after every event held (the bus numbers them in order).
    pub fn push(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// The most recently held event.
    pub fn last(&self) -> Option<&Event> {
        self.events.back()
    }

    /// Everything up to `seq` is committed.
    pub fn committed(&mut self, seq: u64) {
        self.committed = self.committed.max(seq);
    }

    /// The store will commit nothing more: from now on every event is due as it comes.
    pub fn stop_waiting(&mut self) {
        self.no_more_commits = true;
    }

    /// True while events wait for the store's commits (then the deliverer wakes per commit,
    /// not per event).
    pub fn waits_for_commits(&self) -> bool {
        !self.no_more_commits
    }

    /// Moves the events that may be announced now to `due` (`at_most` of them), in `seq`
    /// order, and drops those that never may. The workflow's end waits for `ending` (the run's
    /// own end): until then a store that could not record it may make the run announce its
    /// failure after it, and of several ends only the last is announced, so that the stream
    /// ends as the run did.
    pub fn take_due(&mut self, due: &mut Vec<Event>, ending: bool, at_most: usize) {
        while let Some(front) = self.events.front().filter(|_| due.len() < at_most) {
            let committed = front.seq <= self.committed;
            if !committed && self.waits_for_commits() {
                break;
            }
            if front.payload.ends_workflow() && !ending {
                break;
            }
            let event = self.events.pop_front().expect("there is a front event");
            if self.announces(&event, committed) {
                due.push(event);
            }
        }
    }

    /// Whether `event`, just taken off the front, is announced: not a success the store did
    /// not record, and not an end a later end replaced.
    fn announces(&self, event: &Event, committed: bool) -> bool {
        if event.payload.ends_workflow() && self.events.iter().any(|later| later.payload.ends_workflow()) {
            return false;
        }
        committed || !event.payload.is_success_to_record()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::events::TaskKind;
    use crate::events::{Failure, LogLevel, Payload, Success, TaskInfo};

    fn task(name: &str, kind: TaskKind) -> TaskInfo {
        TaskInfo::first_attempt(name, kind)
    }

    fn held(payloads: Vec<Payload>) -> HeldEvents {
        let mut held = HeldEvents::default();
        for (i, payload) in payloads.into_iter().enumerate() {
            held.push(Event { seq: i as u64 + 1, ts: SystemTime::UNIX_EPOCH, payload });
        }
        held
    }

    fn succeeded(name: &str, kind: TaskKind, how: Success) -> Payload {
        Payload::TaskSucceeded { task: task(name, kind), result: None, how }
    }

    fn log(message: &str) -> Payload {
        Payload::Log { level: LogLevel::Info, message: message.into() }
    }

    fn seqs(due: &[Event]) -> Vec<u64> {
        due.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn only_committed_events_are_due_in_order_and_each_once() {
        let mut held = held((0..6).map(|i| log(&i.to_string())).collect());
        let mut due = Vec::new();
        held.take_due(&mut due, false, usize::MAX);
        assert!(due.is_empty(), "nothing is committed yet");
        held.committed(2);
        held.take_due(&mut due, false, 1);
        assert_eq!(seqs(&due), [1]);
        held.take_due(&mut due, false, usize::MAX);
        held.take_due(&mut due, false, usize::MAX);
        assert_eq!(seqs(&due), [1, 2]);
        held.committed(1);
        held.committed(5);
        held.take_due(&mut due, false, usize::MAX);
        assert_eq!(seqs(&due), [1, 2, 3, 4, 5]);
        assert_eq!(held.len(), 1);
    }

    // When the store failed, the console and the events file said "succeeded" for a task whose
    // success was never recorded.
    #[test]
    fn after_a_failure_everything_is_due_but_unrecorded_successes_with_effects() {
        let mut held = held(vec![
            succeeded("recorded", TaskKind::Shell, Success::Done),
            succeeded("lost", TaskKind::Script, Success::Done),
            succeeded("polled", TaskKind::Operation, Success::Again),
            succeeded("noop", TaskKind::Noop, Success::Done),
            log("after the failure"),
            Payload::TaskFailed {
                task: task("lost", TaskKind::Script),
                error: "the execution store failed".into(),
                how: Failure::Failed,
            },
        ]);
        held.committed(1);
        held.stop_waiting();
        let mut due = Vec::new();
        held.take_due(&mut due, false, usize::MAX);
        assert_eq!(seqs(&due), [1, 4, 5, 6]);
        assert!(held.is_empty());
    }

    #[test]
    fn the_end_waits_for_the_run_s_end_and_only_the_last_end_is_announced() {
        let mut held = held(vec![
            log("before"),
            Payload::WorkflowSucceeded { result: None },
            log("after"),
            Payload::WorkflowFailed { error: "the execution store failed".into() },
        ]);
        held.committed(4);
        let mut due = Vec::new();
        held.take_due(&mut due, false, usize::MAX);
        assert_eq!(seqs(&due), [1], "the end and what follows it wait for the run's end");
        held.take_due(&mut due, true, usize::MAX);
        assert_eq!(seqs(&due), [1, 3, 4], "the first end was replaced");
    }

    // The run's end was announced as a success though the store never recorded it.
    #[test]
    fn an_unrecorded_workflow_success_is_not_announced() {
        let mut held = held(vec![log("before"), Payload::WorkflowSucceeded { result: None }]);
        held.committed(1);
        held.stop_waiting();
        let mut due = Vec::new();
        held.take_due(&mut due, true, usize::MAX);
        assert_eq!(seqs(&due), [1]);
    }
}
