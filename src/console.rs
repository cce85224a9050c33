//! What a person at the terminal sees while a workflow runs: a live progress line (tasks
//! done, running, failed, and the names of running tasks) at a TTY, plain lines otherwise,
//! and a summary at the end.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;

use crate::events::TaskKind;
use crate::events::{Event, EventSink, ExecutionLabel, Failure, LogLevel, Payload, Success, TaskInfo};
use crate::runner::Status;

#[derive(Default)]
pub struct Tally {
    pub succeeded: u64,
    pub failed: u64,
    pub ignored: u64,
    pub retries: u64,
    pub cancelled: u64,
    /// The first task that failed (as `task_line` names it), with its error.
    pub first_failure: Option<(String, String)>,
}

struct ConsoleState {
    started: Instant,
    quiet: bool,
    bar: Option<ProgressBar>,
    /// Running attempts: task id -> (name, start).
    running: BTreeMap<u64, (Arc<str>, Instant)>,
    tally: Tally,
    /// False when the script never started (it did not compile): no summary then.
    workflow_started: bool,
}

/// The console's view of the run; the sink feeds it and the CLI reads the tally at the end.
#[derive(Clone)]
pub struct Console(Arc<Mutex<ConsoleState>>);

impl Console {
    pub fn new(quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
            bar.set_style(ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("a valid template"));
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        Console(Arc::new(Mutex::new(ConsoleState {
            started: Instant::now(),
            quiet,
            bar,
            running: BTreeMap::new(),
            tally: Tally::default(),
            workflow_started: false,
        })))
    }

    pub fn sink(&self) -> Box<dyn EventSink> {
        Box::new(self.clone())
    }

    /// Clears the progress line and prints the summary of the run.
    pub fn finish(&self, status: Status, elapsed: Duration, execution_id: &str) {
        let mut state = self.0.lock();
        if let Some(bar) = state.bar.take() {
            bar.finish_and_clear();
        }
        if !state.workflow_started {
            return;
        }
        let t = &state.tally;
        let mut counts = vec![format!("{} succeeded", t.succeeded)];
        if t.failed > 0 {
            counts.push(format!("{} failed", t.failed));
        }
        if t.ignored > 0 {
            counts.push(format!("{} failed but ignored", t.ignored));
        }
        if t.cancelled > 0 {
            counts.push(format!("{} cancelled", t.cancelled));
        }
        if t.retries > 0 {
            counts.push(format!("{} {}", t.retries, if t.retries == 1 { "retry" } else { "retries" }));
        }
        let (mark, word) = match status {
            Status::Succeeded => ("✔", "succeeded"),
            Status::Failed => ("✘", "failed"),
            Status::Invalid => ("✘", "stopped: invalid input"),
            Status::Cancelled => ("⊘", "cancelled"),
        };
        say!(
            "{mark} workflow {word} in {:.2}s · tasks: {} · execution {execution_id}",
            elapsed.as_secs_f64(),
            counts.join(", ")
        );
        if let Some((task, error)) = &t.first_failure {
            if status != Status::Succeeded {
                say!("  first failure: {task}: {error}");
            }
        }
    }

    fn line(state: &ConsoleState, text: String) {
        match &state.bar {
            Some(bar) => bar.println(text),
            None => say!("{text}"),
        }
    }
}

impl Console {
    /// A line a task printed, led by the task as `docker compose` leads a service's lines
    /// (`build | text`), so that the output of tasks running side by side stays readable.
    fn output_line(state: &ConsoleState, task: &TaskInfo, line: &str) {
        Console::line(state, format!("{} | {line}", task_line(task)));
    }
}

/// A task as its lines name it: `lifecycle.configure` alone says nothing of which of
/// twenty instances it ran on, so a task on an instance is `web_1 lifecycle.configure`.
fn task_line(t: &TaskInfo) -> String {
    match &t.node_instance {
        Some(instance) => format!("{instance} {}", t.name),
        None => t.name.to_string(),
    }
}

/// The summary's name of a task: `task `greet``, `task `lifecycle.start` on web_1`.
fn task_summary(t: &TaskInfo) -> String {
    match &t.node_instance {
        Some(instance) => format!("task `{}` on {instance}", t.name),
        None => format!("task `{}`", t.name),
    }
}

fn shows_progress(kind: TaskKind) -> bool {
    !matches!(kind, TaskKind::Noop | TaskKind::Event | TaskKind::Subgraph)
}

impl EventSink for Console {
    fn accept(&mut self, event: &Event, label: &ExecutionLabel) {
        let mut state = self.0.lock();
        let state = &mut *state;
        match &event.payload {
            Payload::WorkflowStarted { resumed, .. } => {
                state.workflow_started = true;
                if !state.quiet {
                    let what = if *resumed { "resuming" } else { "execution" };
                    Console::line(state, format!("{what} {} ({})", label.execution_id, label.workflow));
                }
            }
            Payload::Log { level, message } if *level != LogLevel::Debug || !state.quiet => {
                Console::line(state, format!("[{}] {message}", level.as_str()));
            }
            Payload::WorkflowEvent { message, node_instance: None } => {
                Console::line(state, format!("[event] {message}"))
            }
            Payload::WorkflowEvent { message, node_instance: Some(instance) } => {
                Console::line(state, format!("[event {instance}] {message}"))
            }
            Payload::TaskStarted { task: t } => {
                if state.follows(t.kind) {
                    state.running.insert(t.task_id, (task_line(t).into(), Instant::now()));
                }
                if state.bar.is_none() && !state.quiet && shows_progress(t.kind) {
                    Console::line(state, format!("{:>8.3}s  start   {}", state.at(), task_line(t)));
                }
            }
            Payload::TaskSucceeded { task: t, how, .. } => state.succeeded(t, *how),
            Payload::TaskRescheduled { task: t, error, retry_after } => state.rescheduled(t, error, *retry_after),
            Payload::TaskFailed { task: t, error, how } => state.failed(t, error, *how),
            Payload::TaskReverted { task: t } if !state.quiet => {
                Console::line(state, format!("{:>8.3}s  revert  {}: reverted", state.at(), task_line(t)));
            }
            Payload::TaskRevertFailed { task: t, error } => {
                Console::line(state, format!("{:>8.3}s  REVERT FAILED {}: {error}", state.at(), task_line(t)));
            }
            Payload::TaskOutput { task, line, .. } if !state.quiet => Console::output_line(state, task, line),
            _ => {}
        }
        state.show_progress();
    }

    fn reads_graphs(&self) -> bool {
        false
    }

    /// A quiet console shows no task's start, and has no bar to count it in.
    fn reads_task_starts(&self) -> bool {
        !self.0.lock().quiet
    }

    /// No line shows a task's result.
    fn reads_results(&self) -> bool {
        false
    }

    /// A quiet console shows no task's end: it only counts successes.
    fn reads_successes(&self) -> bool {
        !self.0.lock().quiet
    }

    fn count_success(&mut self, task: &TaskInfo, how: Success) {
        self.0.lock().succeeded(task, how);
    }
}

/// What the console does with each kind of task event (beyond a line, the tally and the bar).
impl ConsoleState {
    /// Seconds since the run started, as lines show them (a clock read: only for a line).
    fn at(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    /// Whether a running attempt of a task of `kind` is kept: for the bar's names and the
    /// `ok` line's duration. A quiet console without a bar shows neither, and a no-op task
    /// paid ~1,300 instructions for them under `-q`.
    fn follows(&self, kind: TaskKind) -> bool {
        self.bar.is_some() || (!self.quiet && shows_progress(kind))
    }

    fn succeeded(&mut self, t: &TaskInfo, how: Success) {
        let began = self.running.remove(&t.task_id).map(|(_, s)| s.elapsed().as_secs_f64());
        // A success that on_success sends round again counts once the task ends.
        if t.kind != TaskKind::Subgraph && how == Success::Done {
            self.tally.succeeded += 1;
        }
        if self.bar.is_none() && !self.quiet && shows_progress(t.kind) {
            let took = began.unwrap_or(0.0);
            Console::line(self, format!("{:>8.3}s  ok      {} ({took:.2}s)", self.at(), task_line(t)));
        }
    }

    fn rescheduled(&mut self, t: &TaskInfo, error: &str, after: f64) {
        self.running.remove(&t.task_id);
        self.tally.retries += 1;
        if !self.quiet {
            let limit = if t.total_retries < 0 { "∞".to_string() } else { t.total_retries.to_string() };
            let retry = t.current_retries + 1;
            let at = self.at();
            let line = format!("{at:>8.3}s  retry   {}: {error} (retry {retry} of {limit} in {after}s)", task_line(t));
            Console::line(self, line);
        }
    }

    fn failed(&mut self, t: &TaskInfo, error: &str, how: Failure) {
        self.running.remove(&t.task_id);
        if t.kind != TaskKind::Subgraph {
            match how {
                Failure::Cancelled => self.tally.cancelled += 1,
                Failure::Ignored => self.tally.ignored += 1,
                Failure::Failed => {
                    self.tally.failed += 1;
                    self.tally.first_failure.get_or_insert_with(|| (task_summary(t), error.to_string()));
                }
            }
        }
        // A task a cancel stopped did not fail: shouting FAILED would send a person
        // looking for an error that is not there.
        let line = match how {
            Failure::Ignored => format!("ignored {}: {error}", task_line(t)),
            Failure::Cancelled => format!("cancelled {}", task_line(t)),
            Failure::Failed => format!("FAILED  {}: {error}", task_line(t)),
        };
        Console::line(self, format!("{:>8.3}s  {line}", self.at()));
    }

    /// The progress bar's message: counts, and the first running tasks.
    fn show_progress(&self) {
        let Some(bar) = &self.bar else { return };
        let names: Vec<&str> = self.running.values().take(3).map(|(n, _)| &**n).collect();
        let more = self.running.len().saturating_sub(names.len());
        let mut msg = format!(
            "done {} · running {} · failed {}",
            self.tally.succeeded + self.tally.ignored,
            self.running.len(),
            self.tally.failed
        );
        if !names.is_empty() {
            msg.push_str(" · ");
            msg.push_str(&names.join(", "));
            if more > 0 {
                msg.push_str(&format!(" +{more}"));
            }
        }
        bar.set_message(msg);
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    fn started(kind: TaskKind) -> Event {
        Event {
            seq: 1,
            ts: SystemTime::now(),
            payload: Payload::TaskStarted { task: TaskInfo::first_attempt("t", kind) },
        }
    }

    // Under `-q` every task's start was kept (its line formatted, a clock read, a map insert)
    // for a progress bar and lines that a quiet console never shows: ~1,300 instructions a
    // no-op task.
    #[test]
    fn a_quiet_console_keeps_no_running_attempts() {
        let label = ExecutionLabel { execution_id: "e".into(), workflow: "w".into() };
        let quiet = Console::new(true);
        quiet.sink().accept(&started(TaskKind::Script), &label);
        assert!(quiet.0.lock().running.is_empty());
        // Without `-q` (and without a terminal, so without a bar) a task that has its lines
        // is followed for the duration its `ok` line shows; a no-op task has no lines.
        let plain = Console::new(false);
        plain.sink().accept(&started(TaskKind::Noop), &label);
        assert!(plain.0.lock().running.is_empty());
        plain.sink().accept(&started(TaskKind::Script), &label);
        assert_eq!(plain.0.lock().running.len(), 1);
    }

    // With only the console to tell, every `execute()` still wrote the whole graph out as a
    // `graph_planned` event that nothing read (~1,400 instructions a no-op task).
    #[test]
    fn the_graph_is_written_out_only_for_a_sink_that_reads_it() {
        use crate::events::{EventBus, JsonLinesSink};
        let label = || ExecutionLabel { execution_id: "e".into(), workflow: "w".into() };
        assert!(!EventBus::new(label(), vec![Console::new(true).sink()]).graphs_read());
        let json: Box<dyn EventSink> = Box::new(JsonLinesSink::new(Box::new(std::io::sink())));
        assert!(EventBus::new(label(), vec![Console::new(true).sink(), json]).graphs_read());
    }
}
