//! The command line: one file per subcommand. Each parses its arguments into validated
//! options, calls the library, renders errors as diagnostics and returns the exit code.

mod bundle;
mod check;
mod deployments;
mod early_store;
mod executions;
mod graph;
mod params;
mod repl;
mod run;
mod serve;
mod target;
mod tokens;
mod worker;

use std::io::IsTerminal;

use clap::{Parser, Subcommand};

use crate::diagnostic::render;
use crate::diagnostic::Diagnostic;
use target::{DeploymentArgs, Target, TargetArgs};

#[derive(Parser)]
#[command(name = "rhaiflow", version, about = "Workflows written as Rhai scripts, run as task graphs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workflow script.
    Run(run::RunArgs),
    /// Compile and validate a script without running any task.
    Check(check::CheckArgs),
    /// Draw the graph a script builds, without running any task.
    Graph(graph::GraphArgs),
    /// Inspect, follow, cancel and resume recorded executions.
    Executions(executions::ExecutionsArgs),
    /// Make, check, test, pack, install and remove bundles of workflows.
    Bundle(bundle::BundleArgs),
    /// Create, list, show and delete deployments of blueprints.
    Deployments(deployments::DeploymentsArgs),
    /// Build and run workflows interactively, a line at a time.
    Repl(repl::ReplArgs),
    /// Run submitted executions (`run --submit`) from a PostgreSQL store's queues.
    Worker(worker::WorkerArgs),
    /// The workers of a PostgreSQL store: who is alive, what they run.
    Workers(worker::WorkersArgs),
    /// Serve the HTTP API on the execution store.
    Serve(serve::ServeArgs),
    /// Make, list and revoke the role tokens `rhaiflow serve` asks for.
    Tokens(tokens::TokensArgs),
}

/// Parses the command line and runs the subcommand; ends the process with its exit code
/// (`exit`), or returns the code when no thread could be started for it.
pub fn main() -> i32 {
    std::panic::set_hook(Box::new(report_bug));
    // Top-level scripts (runs, the REPL, bundle tests) are evaluated on the command's thread:
    // it needs the stack of a script thread, which the main thread's 8 MiB is not. That
    // thread ends the process itself: joined, its 256 MiB stack went back to the kernel first
    // (an madvise and an munmap of all of it, each a TLB flush on every core).
    let command = std::thread::Builder::new()
        .name("rhaiflow-main".into())
        .stack_size(crate::exec::SCRIPT_STACK_BYTES)
        .spawn(|| exit(run_command()));
    match command.map(|thread| thread.join()) {
        Ok(Ok(())) => unreachable!("`exit` ends the process"),
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(_) => run_command(),
    }
}

/// Ends the process with `code` once stdout is flushed, skipping what `std::process::exit`
/// adds: the C library's exit handlers, among them the heap's, which hands its free pages back
/// to the kernel one `madvise` at a time (0.2-0.3 ms of a small run) just before the kernel
/// frees them all. Everything with an effect was already closed or waited for by the command
/// (the store's commits, the console's and the events' output), as it must be for
/// `std::process::exit`, which runs no destructor either.
pub fn exit(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    // SAFETY: _exit(2) ends the process; nothing after it runs.
    unsafe { libc::_exit(code) }
}

fn run_command() -> i32 {
    let early_store = early_store::open(std::env::args_os());
    let command = match run::RunArgs::parse_alone(std::env::args_os()) {
        Some(run) => Command::Run(run),
        None => match Cli::try_parse() {
            Ok(cli) => cli.command,
            Err(e) => {
                let _ = e.print();
                // clap says 2 for usage errors, 0 for --help and --version.
                return e.exit_code();
            }
        },
    };
    match command {
        Command::Run(args) => run::run(args, early_store),
        Command::Check(args) => check::check(args),
        Command::Graph(args) => {
            end_quietly_on_closed_pipe();
            graph::graph(args)
        }
        Command::Executions(args) => executions::executions(args),
        Command::Bundle(args) => bundle::bundle(args),
        Command::Deployments(args) => deployments::deployments(args),
        Command::Repl(args) => repl::repl(args),
        Command::Worker(args) => worker::worker(args),
        Command::Workers(args) => worker::workers(args),
        Command::Serve(args) => serve::serve(args),
        Command::Tokens(args) => tokens::tokens(args),
    }
}

/// What a panic prints, on whichever thread: one plain line saying it is rhaiflow's bug, in
/// place of Rust's message and backtrace hint. What the panic then does is up to the code
/// around it: a task's runner ends the task as failed, a script thread's job is caught.
fn report_bug(info: &std::panic::PanicHookInfo<'_>) {
    let message = match (info.payload().downcast_ref::<&str>(), info.payload().downcast_ref::<String>()) {
        (Some(text), _) => text.to_string(),
        (None, Some(text)) => text.clone(),
        (None, None) => "no message".to_string(),
    };
    let at = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
    let message = message.replace('\n', " ");
    say!("rhaiflow: {}", crate::diagnostic::bug_message(format!("it panicked{at}: {message}")));
}

/// For commands that only print (`executions events ID | head`): a reader that goes away
/// ends the process as it ends other Unix tools, instead of a panic in `println!`. Runs keep
/// Rust's default (a closed pipe is an error they ignore), so a workflow never dies of it.
fn end_quietly_on_closed_pipe() {
    // SAFETY: setting a signal's disposition to its default has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Prints a diagnostic on stderr, in colour only at a terminal.
pub fn report(diagnostic: &Diagnostic) {
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    say_text!(stderr, render(diagnostic, colour));
}

/// Reports every diagnostic; returns exit code 2 (invalid input).
fn report_all(diagnostics: &[Diagnostic]) -> i32 {
    diagnostics.iter().for_each(report);
    2
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;

    use super::*;
    use run::RunArgs;

    fn args(line: &str) -> Vec<OsString> {
        std::iter::once("rhaiflow").chain(line.split(' ').filter(|a| !a.is_empty())).map(OsString::from).collect()
    }

    /// What the whole command line's parse makes of `line`'s `run` arguments.
    fn fully_parsed(line: &str) -> Option<String> {
        match Cli::try_parse_from(args(line)) {
            Ok(Cli { command: Command::Run(run) }) => Some(format!("{run:?}")),
            _ => None,
        }
    }

    // Every run built the arguments of every subcommand before parsing its own: a run's
    // command line is parsed with `run`'s alone, to the same arguments.
    #[test]
    fn a_run_parsed_alone_gets_the_arguments_the_whole_parse_gives() {
        for line in [
            "run hello.rhai",
            "run -q hello.rhai --store s.db",
            "run b.tar.gz deploy -p a=1 --param b=[1,2] --params p.yaml --events-json - --task-retries -1",
            "run install --blueprint bp.yaml --max-memory 4GiB --max-concurrency 3 --retry-interval 0.5",
            "run w.rhai --ephemeral --dry-run --max-operations 0 --max-tasks 10",
            "run w.rhai --submit --queue builders --store postgres://x/y",
            "run --store=s.db w.rhai -- --dashed",
        ] {
            let alone = RunArgs::parse_alone(args(line)).map(|run| format!("{run:?}"));
            assert!(alone.is_some(), "{line}");
            assert_eq!(alone, fully_parsed(line), "{line}");
        }
    }

    // What `run` refuses, its help, and every other command get the whole parse, whose
    // messages and help name the whole program.
    #[test]
    fn what_a_run_alone_does_not_accept_is_left_to_the_whole_parse() {
        for line in [
            "run",
            "run --help",
            "run -h",
            "run --version",
            "run w.rhai --bogus",
            "run w.rhai --ephemeral --store s",
            "run w.rhai --queue q",
            "run w.rhai --max-memory lots",
            "check w.rhai",
            "--version",
            "runs w.rhai",
        ] {
            assert!(RunArgs::parse_alone(args(line)).is_none(), "{line}");
        }
    }
}
