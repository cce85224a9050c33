//! `rhaiflow repl`: type a line, see its value; build a graph step by step, look at it, run
//! it, look at its events. The session (variables, functions, graphs) lasts from line to
//! line; an error is shown as the same diagnostic `run` shows and never ends the session.
//!
//! `session` holds the scope and the host that runs lines; `input` is the line editor's
//! helper (when input goes on, completion); `progress` shows what a line runs as `run` does;
//! `help` is what `:help` prints. The host API both read is documented where it is
//! registered (`script::reference`).

pub mod help;
pub mod input;
pub mod progress;
pub mod session;

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::Mutex;
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::Editor;
use serde_json::Value;

use crate::diagnostic::render as render_diagnostic;
use crate::diagnostic::{Code, Diagnostic};
use crate::exec::CancelState;
use crate::graph::{render, Format};
use crate::runner::Status;
use crate::script::reference::{self, HostFunction};
use input::InputHelper;
use progress::LineProgress;
use session::{Outcome, Session, SessionSetup};

pub struct ReplOptions {
    pub setup: SessionSetup,
    /// Where the history is kept (none: no history file).
    pub history: Option<PathBuf>,
}

const PROMPT: &str = "rhaiflow> ";
/// Under the prompt while input started on an earlier line goes on (as wide, so that the
/// lines align).
const CONTINUATION: &str = "     ...> ";

/// The cancel of whatever runs now; Ctrl-C while a line runs reaches it as SIGINT (the
/// terminal is not in raw mode then).
type Running = Arc<Mutex<Option<Arc<CancelState>>>>;

pub fn run(options: ReplOptions) -> i32 {
    let mut session = match Session::new(options.setup.clone()) {
        Ok(s) => s,
        Err(d) => {
            print_diagnostic(&d);
            return 2;
        }
    };
    let running: Running = Arc::default();
    watch_interrupts(running.clone());
    let mut editor = match Editor::<InputHelper, DefaultHistory>::new() {
        Ok(editor) => editor,
        Err(e) => {
            say!("rhaiflow: cannot start the line editor: {e}");
            return 2;
        }
    };
    let functions = reference::host_functions();
    let completion = InputHelper::new(&functions);
    let host_words = completion.words.clone();
    editor.set_helper(Some(completion));
    if let Some(path) = &options.history {
        let _ = editor.load_history(path);
    }
    say!(
        "rhaiflow {} — Rhai workflows, one line at a time. :help lists the API, Ctrl-D leaves.",
        env!("CARGO_PKG_VERSION")
    );
    while let Some(line) = read_input(&mut editor, &session) {
        let _ = editor.add_history_entry(line.as_str());
        let keep_going = match line.trim().strip_prefix(':') {
            Some(command) => command_line(command.trim(), &mut session, &options, &running, &functions),
            None => {
                evaluate(&mut session, &running, |s| Some(s.eval("<repl>", &line)));
                true
            }
        };
        if let Some(helper) = editor.helper_mut() {
            helper.words = host_words.iter().cloned().chain(session.variables()).chain(session.functions()).collect();
        }
        if let Some(path) = &options.history {
            save_history(&mut editor, path);
        }
        if !keep_going {
            break;
        }
    }
    0
}

/// The next complete input: lines are read, under the continuation prompt after the first,
/// until the input no longer stops before its end; none at Ctrl-D or when reading fails.
fn read_input(editor: &mut Editor<InputHelper, DefaultHistory>, session: &Session) -> Option<String> {
    let mut pending = String::new();
    loop {
        let prompt = if pending.is_empty() { PROMPT } else { CONTINUATION };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                pending.clear();
                say!("^C (Ctrl-D or :quit leaves)");
                continue;
            }
            Err(ReadlineError::Eof) => return None,
            Err(e) => {
                say!("rhaiflow: cannot read the line: {e}");
                return None;
            }
        };
        if pending.is_empty() && line.trim().is_empty() {
            continue;
        }
        pending.push_str(&line);
        if pending.trim_start().starts_with(':') || !input::incomplete(session.engine(), &pending) {
            return Some(pending);
        }
        pending.push('\n');
    }
}

fn save_history(editor: &mut Editor<InputHelper, DefaultHistory>, path: &PathBuf) {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let _ = editor.save_history(path);
}

/// A `:command`; false to leave.
fn command_line(
    command: &str,
    session: &mut Session,
    options: &ReplOptions,
    running: &Running,
    functions: &[HostFunction],
) -> bool {
    let (name, argument) = command.split_once(char::is_whitespace).map_or((command, ""), |(n, a)| (n, a.trim()));
    match name {
        "quit" | "q" | "exit" => return false,
        "help" | "h" if argument.is_empty() => say_text!(stdout, help::text(functions)),
        "help" | "h" => say_text!(stdout, help::about(functions, argument)),
        "graph" => match session.current_graph() {
            Some(graph) => say_text!(stdout, render(&[&*graph.graph.lock()], Format::Text)),
            None => say!("no graph yet: `let g = graph_mode();` starts one"),
        },
        "run" => evaluate(session, running, |s| {
            let outcome = s.run_graph();
            if outcome.is_none() {
                say!("no graph to run: `let g = graph_mode();` starts one");
            }
            outcome
        }),
        "events" => print_events(session),
        "load" => match std::fs::read_to_string(argument) {
            Ok(text) if !argument.is_empty() => {
                let name = argument.to_string();
                evaluate(session, running, |s| Some(s.eval(&name, &text)));
            }
            Ok(_) => say!(":load needs a file: `:load path/to/script.rhai`"),
            Err(e) => say!("cannot read {argument}: {e}"),
        },
        "reset" => match Session::new(options.setup.clone()) {
            Ok(fresh) => {
                *session = fresh;
                say!("a new session: no variables, no functions, standard mode");
            }
            Err(d) => print_diagnostic(&d),
        },
        other => say!("unknown command :{other} (:help lists them)"),
    }
    true
}

/// Runs `f` with live progress on the console and Ctrl-C cancelling it; shows its outcome
/// line (when it ran tasks), then its value or its diagnostic.
fn evaluate(session: &mut Session, running: &Running, f: impl FnOnce(&mut Session) -> Option<Outcome>) {
    let progress = LineProgress::default();
    *session.log.shown_by.lock() = Some(Box::new(progress.clone()));
    let from = session.log.events.lock().len();
    *running.lock() = Some(session.cancel());
    let outcome = f(session);
    *running.lock() = None;
    *session.log.shown_by.lock() = None;
    progress.finish(status_of(outcome.as_ref()), &session.execution_id);
    if progress.ran_tasks() {
        session.last_run_from = from;
    }
    match outcome {
        Some(Outcome::Value(value)) if !value.is_unit() => say_out!("{}", session.show(&value)),
        Some(Outcome::Failed(d)) => print_diagnostic(&d),
        _ => {}
    }
}

/// How an evaluation ended, in the words of a run's outcome line.
fn status_of(outcome: Option<&Outcome>) -> Status {
    match outcome {
        Some(Outcome::Failed(d)) if d.code == Code::Cancelled => Status::Cancelled,
        Some(Outcome::Failed(d)) if d.code == Code::InvalidGraph => Status::Invalid,
        Some(Outcome::Failed(_)) => Status::Failed,
        _ => Status::Succeeded,
    }
}

fn print_diagnostic(d: &Diagnostic) {
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    say_text!(stderr, render_diagnostic(d, colour));
}

/// `:events`: one line an event of the last run.
fn print_events(session: &Session) {
    let events = session.log.events.lock();
    let last = &events[session.last_run_from.min(events.len())..];
    if last.is_empty() {
        say!("no events yet");
    }
    for e in last {
        let text = |key: &str| e.get(key).and_then(Value::as_str).unwrap_or("");
        let mut line = format!("{:>5}  {:<18}", e["seq"], text("type"));
        for key in ["task", "node_instance", "message", "error"] {
            if !text(key).is_empty() {
                line.push_str("  ");
                line.push_str(text(key));
            }
        }
        if let Some(result) = e.get("result") {
            line.push_str(&format!("  => {result}"));
        }
        say_out!("{}", line.trim_end());
    }
}

/// Ctrl-C while a line runs asks its run to cancel; a second one forces it. The handler is
/// in place before the line editor first starts, so the editor keeps it.
fn watch_interrupts(running: Running) {
    use std::io::IsTerminal;
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    let Ok(mut interrupts) = runtime.block_on(async { signal(SignalKind::interrupt()) }) else { return };
    let _ = std::thread::Builder::new().name("rhaiflow-interrupts".into()).spawn(move || {
        runtime.block_on(async move {
            while interrupts.recv().await.is_some() {
                if let Some(cancel) = running.lock().clone() {
                    let forced = cancel.is_requested();
                    // At a terminal the progress line is drawn without its newline: the
                    // message replaces it rather than being glued to its end (the progress
                    // line comes back below on its next tick).
                    let clear = if std::io::stderr().is_terminal() { "\r\x1b[2K" } else { "" };
                    say!(
                        "{clear}{}",
                        if forced { "^C forcing: stopping running tasks" } else { "^C cancelling (again to force)" }
                    );
                    cancel.request(forced);
                }
            }
        });
    });
}
