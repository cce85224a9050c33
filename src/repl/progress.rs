//! What a line or `:run` shows while it runs tasks: the console `rhaiflow run` uses (its
//! progress line at a terminal, its task lines, its outcome line), but only once something
//! happens. A line that runs no task (`let x = 1;`) draws no progress line and prints no
//! outcome, so the prompt comes back on a clean line.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use parking_lot::Mutex;

use crate::console::Console;
use crate::events::{Event, EventSink, ExecutionLabel, Payload};
use crate::runner::Status;

/// The console of one evaluation, made when its first event arrives.
#[derive(Clone, Default)]
pub struct LineProgress(Arc<Mutex<Shown>>);

#[derive(Default)]
struct Shown {
    console: Option<(Console, Instant)>,
    ran_tasks: bool,
}

impl LineProgress {
    /// Clears the progress line and, when tasks ran, prints the outcome line as `run` does.
    pub fn finish(&self, status: Status, execution_id: &str) {
        if let Some((console, started)) = self.0.lock().console.take() {
            console.finish(status, started.elapsed(), execution_id);
        }
    }

    pub fn ran_tasks(&self) -> bool {
        self.0.lock().ran_tasks
    }
}

fn is_task_event(payload: &Payload) -> bool {
    matches!(
        payload,
        Payload::TaskStarted { .. }
            | Payload::TaskSucceeded { .. }
            | Payload::TaskRescheduled { .. }
            | Payload::TaskFailed { .. }
            | Payload::TaskReverting { .. }
            | Payload::TaskReverted { .. }
            | Payload::TaskRevertFailed { .. }
    )
}

impl EventSink for LineProgress {
    fn accept(&mut self, event: &Event, label: &ExecutionLabel) {
        let mut shown = self.0.lock();
        let Shown { console, ran_tasks } = &mut *shown;
        let (console, _) = console.get_or_insert_with(|| (Console::new(false), Instant::now()));
        let mut sink = console.sink();
        if is_task_event(&event.payload) && !*ran_tasks {
            // The session is one execution with no start of its own: each evaluation that
            // runs tasks starts as a run does, so the console counts and sums it up.
            let parameters = serde_json::Value::Object(Default::default());
            let start = Event {
                seq: 0,
                ts: SystemTime::now(),
                payload: Payload::WorkflowStarted { resumed: false, parameters, by: None },
            };
            sink.accept(&start, label);
            *ran_tasks = true;
        }
        sink.accept(event, label);
    }
}
