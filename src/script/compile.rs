//! Compiling a workflow script within bounds. Rhai's parser (1.27) takes time quadratic in the
//! number of `let`s in one block: each `let` scans every variable declared before it
//! (`ParseState::find_var`), so a large generated script (600,000 `let`s) would compile for
//! ever. A script is limited in size, and a compile past its budget is given up with a
//! diagnostic instead of hanging `run` and `check`. A script that compiles is then optimised
//! (constant expressions folded, as `|| 1 + 1` returning 2 without evaluating `+`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rhai::{ASTFlags, ASTNode, Engine, Expr, ImmutableString, OptimizationLevel, Scope, Stmt, AST};

use crate::diagnostic::{Code, Diagnostic, Source};

/// The largest script or module rhaiflow compiles.
pub const MAX_SCRIPT_BYTES: usize = 4 << 20;
/// How long compiling one script may take.
pub const COMPILE_BUDGET: Duration = Duration::from_secs(10);
/// A script up to this size compiles on the caller's thread: too small to come near the
/// budget (64 KiB of nothing but `let`s compiles in under 0.2 s), and a thread of its own
/// cost a small run more than the compile.
const COMPILED_IN_PLACE_BYTES: usize = 64 << 10;

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

/// Compiles `source` (past `COMPILED_IN_PLACE_BYTES`, on a thread of its own, waiting at most
/// `COMPILE_BUDGET` for it: a compile past the budget cannot be stopped, so its thread is left
/// to finish while the caller reports the diagnostic and, as a command, exits).
pub fn compile(engine: &Arc<Engine>, source: &Source) -> Result<AST, Diagnostic> {
    compile_shown(engine, source, source)
}

/// Compiles `source`, and shows an error in `shown`: the file a person wrote, which `source`
/// was translated from keeping its lines and columns (a flow file).
pub fn compile_shown(engine: &Arc<Engine>, source: &Source, shown: &Source) -> Result<AST, Diagnostic> {
    check_size(&source.name, &source.text)?;
    if source.text.len() <= COMPILED_IN_PLACE_BYTES {
        // Rhai's parser or optimiser panicking fails the compile, as on a thread of its own.
        let compile = || compiled_and_optimised(engine, &source.text);
        let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(compile))
            .map_err(|_| Diagnostic::bug(format!("Rhai panicked compiling {}", source.name)))?;
        return compiled.map_err(|e| Diagnostic::compile(&e, shown));
    }
    let (done, compiled) = std::sync::mpsc::channel();
    let (engine, text) = (engine.clone(), source.text.clone());
    let spawned = std::thread::Builder::new().name("rhaiflow-compile".into()).spawn(move || {
        let _ = done.send(compiled_and_optimised(&engine, &text));
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

/// What both ways of compiling do: the script compiled, then optimised where that is safe.
fn compiled_and_optimised(engine: &Engine, text: &str) -> Result<AST, rhai::ParseError> {
    engine.compile(text).map(|ast| optimised(engine, ast))
}

/// `ast` with its constant expressions folded, by Rhai's own optimiser at its `Simple` level
/// (which calls no function but the built-in operators). Rhai 1.27 also puts a constant map's
/// field in place of an assignment to it (`const m = #{a: 1}; m.a = 2;` becomes `1 = 2`), which
/// then panics as it runs instead of failing with "Cannot modify constant m": a script that
/// assigns into anything a `const` may name is left as written.
fn optimised(engine: &Engine, ast: AST) -> AST {
    if assigns_into_a_constant(&ast) {
        return ast;
    }
    engine.optimize_ast(&Scope::new(), ast, OptimizationLevel::Simple)
}

/// Whether some assignment, anywhere in the script or its functions, is to a name (or into a
/// value under a name) that some `const` declares. Scopes are not told apart: a `let` of the
/// same name elsewhere only costs that script its optimising.
fn assigns_into_a_constant(ast: &AST) -> bool {
    let mut constants = HashSet::new();
    let mut assigned = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(var, flags, _))) if flags.contains(ASTFlags::CONSTANT) => {
                constants.insert(var.0.name.clone());
            }
            Some(ASTNode::Stmt(Stmt::Assignment(assignment))) => assigned.extend(root_name(&assignment.1.lhs)),
            _ => {}
        }
        true
    });
    assigned.iter().any(|name| constants.contains(name))
}

/// The variable an assignment's target starts from: `m` of `m`, `m.a.b` and `m["a"][0]`.
fn root_name(target: &Expr) -> Option<ImmutableString> {
    match target {
        Expr::Dot(chain, ..) | Expr::Index(chain, ..) => root_name(&chain.lhs),
        Expr::Variable(name, ..) => Some(name.1.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compiled(text: &str) -> AST {
        let engine = Arc::new(crate::script::plain_engine(&crate::script::Limits::default()));
        compile(&engine, &Source { name: "test.rhai".into(), text: text.into() }).unwrap()
    }

    /// How many calls of `+` the script and its functions make as written.
    fn additions(ast: &AST) -> usize {
        let mut count = 0;
        ast.walk(&mut |path: &[ASTNode]| {
            count += match path.last() {
                Some(ASTNode::Expr(Expr::FnCall(call, _)) | ASTNode::Stmt(Stmt::FnCall(call, _))) => call.name == "+",
                _ => false,
            } as usize;
            true
        });
        count
    }

    // Every compile started a thread of its own: ~0.3 ms of a small run (docs/PERFORMANCE.md).
    #[test]
    fn a_small_script_compiles_on_the_callers_thread_and_a_large_one_on_its_own() {
        let compiled_on = |text: String| {
            let mut engine = crate::script::plain_engine(&crate::script::Limits::default());
            let threads = Arc::new(parking_lot::Mutex::new(HashSet::new()));
            let seen = threads.clone();
            // Rhai marks the hook volatile (as deprecated), not going away; a test may use it.
            #[allow(deprecated)]
            engine.on_parse_token(move |token, _, _| {
                seen.lock().insert(std::thread::current().id());
                token
            });
            let source = Source { name: "test.rhai".into(), text: text.into() };
            compile(&Arc::new(engine), &source).expect("it compiles");
            let threads = threads.lock().clone();
            threads
        };
        let here = std::thread::current().id();
        let small = "let a = 1; ".repeat(COMPILED_IN_PLACE_BYTES / 11);
        assert_eq!(compiled_on(small), HashSet::from([here]));
        let large = format!("let a = 1;{}a", " ".repeat(COMPILED_IN_PLACE_BYTES));
        let threads = compiled_on(large);
        assert!(threads.len() == 1 && !threads.contains(&here), "{threads:?}");
    }

    // Constant expressions were evaluated at every run of them: a closure `|| 1 + 1` called
    // `+` each time it ran as a task.
    #[test]
    fn constant_expressions_are_folded() {
        assert_eq!(additions(&compiled("let f = || 1 + 1; let g = |x| x + 1; 2 + 3")), 1);
    }

    // Optimised, `m.a = 2` became `1 = 2`, and Rhai panicked running it.
    #[test]
    fn a_script_assigning_into_a_constant_is_left_as_written() {
        for text in ["const m = #{a: 1}; m.a = 2; 1 + 1", "const m = #{a: 1}; fn f() { m[\"a\"] += 2 } 1 + 1"] {
            assert_eq!(additions(&compiled(text)), 1, "{text}");
        }
        assert!(!assigns_into_a_constant(&compiled("const m = 1; let n = #{}; n.a = m;")));
    }
}
