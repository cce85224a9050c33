//! The command line: one file per subcommand. Each parses its arguments into validated
//! options, calls the library, renders errors as diagnostics and returns the exit code.

mod check;
mod console;
mod executions;
mod graph;
mod params;
mod run;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::script::diagnostics::render;
use crate::script::ScriptDiagnostic;

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
}

/// Parses the command line and runs the subcommand; returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // clap says 2 for usage errors, 0 for --help and --version.
            return e.exit_code();
        }
    };
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check(args) => check::check(args),
        Command::Graph(args) => graph::graph(args),
        Command::Executions(args) => executions::executions(args),
    }
}

/// Prints a diagnostic on stderr, in colour only at a terminal.
pub fn report(diagnostic: &ScriptDiagnostic) {
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    eprint!("{}", render(diagnostic, colour));
}

/// A workflow target must be a script file for now; says what is wrong otherwise.
fn script_target(target: &Path) -> Result<PathBuf, ScriptDiagnostic> {
    if target.is_dir() {
        return Err(ScriptDiagnostic::plain(
            "rhaiflow::bundles_not_built",
            format!("{} is a folder: running bundles is not built yet; give a .rhai script", target.display()),
        ));
    }
    if !target.exists() {
        return Err(ScriptDiagnostic::plain("rhaiflow::no_script", format!("no such script: {}", target.display()))
            .with_help("give the path of a .rhai file; installed bundles and built-in workflows come later"));
    }
    Ok(target.to_path_buf())
}
