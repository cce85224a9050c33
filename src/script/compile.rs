//! Compiling a workflow script within bounds. Rhai's parser (1.27) takes time quadratic in the
//! number of `let`s in one block: each `let` scans every variable declared before it
//! (`ParseState::find_var`), so a large generated script (600,000 `let`s) would compile for
//! ever. A script is limited in size, and a compile past its budget is given up with a
//! diagnostic instead of hanging `run` and `check`.

use std::sync::Arc;
use std::time::Duration;

use rhai::{Engine, AST};

use crate::diagnostic::{Code, Diagnostic, Source};

/// The largest script or module rhaiflow compiles.
pub const MAX_SCRIPT_BYTES: usize = 4 << 20;
/// How long compiling one script may take.
pub const COMPILE_BUDGET: Duration = Duration::from_secs(10);

/// Refuses a script or module text over `MAX_SCRIPT_BYTES`.
pub fn check_size(name: &str, text: &str) -> Result<(), Diagnostic> {
    if text.len() <= MAX_SCRIPT_BYTES {
        return Ok(());
    }
    Err(Diagnostic::plain(
        Code::ScriptTooLarge,
        format!(
            "{name} is {:.1} MiB: a script or module may be at most {} MiB",
            text.len() as f64 / (1 << 20) as f64,
            MAX_SCRIPT_BYTES >> 20
        ),
    ))
}

/// Compiles `source` on a thread of its own and waits at most `COMPILE_BUDGET` for it. A
/// compile past the budget cannot be stopped: its thread is left to finish while the caller
/// reports the diagnostic and, as a command, exits.
pub fn compile(engine: &Arc<Engine>, source: &Source) -> Result<AST, Diagnostic> {
    compile_shown(engine, source, source)
}

/// Compiles `source`, and shows an error in `shown`: the file a person wrote, which `source`
/// was translated from keeping its lines and columns (a flow file).
pub fn compile_shown(engine: &Arc<Engine>, source: &Source, shown: &Source) -> Result<AST, Diagnostic> {
    check_size(&source.name, &source.text)?;
    let (done, compiled) = std::sync::mpsc::channel();
    let (engine, text) = (engine.clone(), source.text.clone());
    let spawned = std::thread::Builder::new().name("rhaiflow-compile".into()).spawn(move || {
        let _ = done.send(engine.compile(&*text));
    });
    let outcome = match spawned {
        Ok(_) => compiled.recv_timeout(COMPILE_BUDGET).ok(),
        Err(_) => None,
    };
    match outcome {
        Some(Ok(ast)) => Ok(ast),
        Some(Err(e)) => Err(Diagnostic::compile(&e, shown)),
        None => Err(Diagnostic::plain(
            Code::CompileBudget,
            format!(
                "{} did not compile within {} s: Rhai's parser slows down with very many `let`s in one block \
                 (each is checked against every one before it); split the script into functions or modules",
                source.name,
                COMPILE_BUDGET.as_secs()
            ),
        )),
    }
}
