//! Limits that keep a script from running away, and how cancel and timeouts reach a running
//! script.
//!
//! Rhai's `on_progress` hook is engine-wide, but each thread runs at most one script call at a
//! time: the call's cancel state and deadline sit in a thread-local `Guard` for its duration.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, EvalAltResult, Position};

use crate::exec::CancelState;
use crate::memory;
use crate::task::{innermost, LimitReached, TaskError};

/// Bounds on what a run's scripts may use. The operator sets them; a bundle cannot lift them.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Operations per evaluation (the whole top-level script, or one closure call); 0 = none.
    pub max_operations: u64,
    pub max_call_levels: usize,
    /// Bytes of heap the process may hold before a running script is stopped; 0 = none. It
    /// bounds every string, array and map at once, in constant time (see `crate::memory`).
    pub max_memory: u64,
    /// Tasks one execution may make; 0 = none.
    pub max_tasks: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 100_000_000,
            max_call_levels: 64,
            max_memory: default_max_memory(),
            max_tasks: 10_000_000,
        }
    }
}

/// Half the machine's memory (4 GiB when the system does not say): room for the store, the
/// task processes and anything else on the machine.
pub fn default_max_memory() -> u64 {
    memory::physical().map_or(4 << 30, |bytes| bytes / 2)
}

/// What a person reads when a script reached its operations limit.
pub fn operations_reached(max_operations: u64) -> String {
    format!("the script reached its limit of {max_operations} operations (--max-operations) and was stopped: is there an endless loop?")
}

/// What a person reads when a script called functions as deep as it may.
pub fn call_depth_reached(max_call_levels: usize) -> String {
    format!("the script called functions {max_call_levels} levels deep, its limit, and was stopped: is there an endless recursion?")
}

/// A closure's or an operation's error as its task's: a limit it reached is named with its
/// value, as the top level names it, instead of Rhai's bare "Too many operations".
pub fn task_error(err: &EvalAltResult, engine: &Engine) -> TaskError {
    let mut error = TaskError::from_rhai(err);
    if let Some(message) = limit_reached(err, engine) {
        error.message = message;
    }
    error
}

/// What a person reads when `err` is one of the engine's own limits (operations, call
/// depth), which Rhai reports without its value: the limit and how large `engine` set it.
pub fn limit_reached(err: &EvalAltResult, engine: &Engine) -> Option<String> {
    match innermost(err) {
        EvalAltResult::ErrorTooManyOperations(_) => Some(operations_reached(engine.max_operations())),
        EvalAltResult::ErrorStackOverflow(_) => Some(call_depth_reached(engine.max_call_levels())),
        _ => None,
    }
}

struct Guard {
    cancel: Arc<CancelState>,
    deadline: Option<(Instant, f64)>,
}

thread_local! {
    static GUARD: RefCell<Option<Guard>> = const { RefCell::new(None) };
}

/// Applies `limits` and installs the progress hook on `engine`.
///
/// Rhai's string, array and map size limits stay off: they re-measure a whole value after
/// every change to it (quadratic to build a list), where the memory limit, checked on every
/// operation, costs one load.
pub fn install(engine: &mut Engine, limits: &Limits) {
    engine
        .set_max_operations(limits.max_operations)
        .set_max_call_levels(limits.max_call_levels)
        .set_max_expr_depths(256, 256);
    super::builtins::register(engine, limits.max_memory);
    let max_memory = limits.max_memory;
    // The most the heap may hold before the hook looks closer (no limit: never).
    let ceiling = if max_memory == 0 { u64::MAX } else { max_memory };
    // The hook runs on every operation (~40 a task built), so its common path is one load
    // and two tests; what stops a script is built out of line, where it does not make every
    // call save and restore registers.
    engine.on_progress(move |operations| {
        // Checking a clock on every operation would cost more than the operation.
        if memory::in_use() > ceiling || operations & 0x3ff == 0 {
            return stop_reason(max_memory);
        }
        None
    });
}

/// Why the script must stop, if it must: the memory limit passed, or (looked at every 1,024
/// operations) a forced cancel or a timeout.
#[cold]
#[inline(never)]
fn stop_reason(max_memory: u64) -> Option<Dynamic> {
    if memory::would_exceed(max_memory, 0) {
        return Some(Dynamic::from(LimitReached::Memory { limit: max_memory }));
    }
    interruption()
}

/// Why the script call running on this thread must stop now, as the value `on_progress`
/// terminates a script with: a cancelled `TaskError` for a forced cancel (told by its type,
/// never by its words), the reason for its timeout; `None` while it may go on.
pub fn interruption() -> Option<Dynamic> {
    GUARD.with(|guard| {
        let guard = guard.borrow();
        let guard = guard.as_ref()?;
        if guard.cancel.is_forced() {
            return Some(Dynamic::from(TaskError::cancelled()));
        }
        match guard.deadline {
            Some((at, secs)) if Instant::now() >= at => Some(Dynamic::from(format!("timed out after {secs}s"))),
            _ => None,
        }
    })
}

/// How long a host function that blocks may wait before it looks at `interruption()` again:
/// a forced cancel is seen within this, a timeout exactly when it falls due.
pub fn next_check() -> Duration {
    const AT_MOST: Duration = Duration::from_millis(50);
    GUARD.with(|guard| match guard.borrow().as_ref().and_then(|g| g.deadline) {
        Some((at, _)) => at.saturating_duration_since(Instant::now()).min(AT_MOST),
        None => AT_MOST,
    })
}

/// Waits with `wait(slice)` (which returns `Some` when its wait is over) until it is over or
/// the script call on this thread is interrupted: a host function that blocks (`t.get()`,
/// `g.execute()`) must not outlive a forced cancel or its task's timeout.
pub fn wait_interruptibly<T>(mut wait: impl FnMut(Duration) -> Option<T>) -> Result<T, Box<EvalAltResult>> {
    loop {
        if let Some(value) = wait(next_check()) {
            return Ok(value);
        }
        if let Some(reason) = interruption() {
            return Err(Box::new(EvalAltResult::ErrorTerminated(reason, Position::NONE)));
        }
    }
}

/// A panic inside the script engine, caught by `evaluate`: a bug in rhaiflow, not in the script.
#[derive(Debug)]
pub struct EnginePanicked;

impl EnginePanicked {
    /// The diagnostic of a panic met while evaluating `what` (`this script`, `this line`).
    pub fn diagnostic(self, what: &str) -> crate::diagnostic::Diagnostic {
        crate::diagnostic::Diagnostic::bug(format!("the script engine panicked on {what}"))
    }

    /// The error of a task whose script code (`a closure`, `an operation`) panicked the engine.
    pub fn task_error(self, what: &str) -> TaskError {
        TaskError::new(
            crate::task::ErrorKind::NonRecoverable,
            crate::diagnostic::bug_message(format_args!("the script engine panicked while running {what}")),
        )
    }
}

/// The one guarded evaluation every script evaluation goes through (the top level, a REPL
/// line, a closure, an operation): cancel and an optional timeout watch it, and a panic inside
/// the engine comes back as `EnginePanicked` instead of unwinding through the caller.
pub fn evaluate<T>(
    cancel: &Arc<CancelState>,
    timeout: Option<f64>,
    f: impl FnOnce() -> Result<T, Box<EvalAltResult>>,
) -> Result<Result<T, Box<EvalAltResult>>, EnginePanicked> {
    // A timeout too large for a clock is no deadline at all (it must not panic the thread).
    let deadline = timeout.and_then(|secs| {
        let after = Duration::try_from_secs_f64(secs.max(0.0)).ok()?;
        Some((Instant::now().checked_add(after)?, secs))
    });
    // One look-up of the thread's guard for both its change and its restoring.
    GUARD.with(|guard| {
        let previous = guard.replace(Some(Guard { cancel: cancel.clone(), deadline }));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|_| EnginePanicked);
        *guard.borrow_mut() = previous;
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A panic inside the engine must come back as an error (a bug to report), with the
    // cancel guard of the thread put back, never unwind into the executor or the REPL.
    #[test]
    fn a_panic_inside_an_evaluation_comes_back_as_engine_panicked() {
        let cancel = Arc::new(CancelState::default());
        let outcome = evaluate::<()>(&cancel, Some(5.0), || panic!("inside the engine"));
        assert!(matches!(outcome, Err(EnginePanicked)));
        assert!(GUARD.with(|g| g.borrow().is_none()), "the guard outlived the evaluation");
        let d = EnginePanicked.diagnostic("this script");
        assert_eq!(d.message, "this is a bug in rhaiflow: the script engine panicked on this script; please report it");
    }

    // With Rhai's size limits on, every `push` re-measured the whole array: 100,000
    // `a.push(noop(..))` took 8.3 s, against 0.29 s without (benches/, docs/PERFORMANCE.md).
    #[test]
    fn rhai_re_measuring_values_is_off_and_the_memory_limit_on() {
        let mut engine = Engine::new();
        install(&mut engine, &Limits { max_memory: memory::in_use() + (8 << 20), ..Limits::default() });
        assert_eq!((engine.max_string_size(), engine.max_array_size(), engine.max_map_size()), (0, 0, 0));
        let err = engine.run("let a = []; loop { a.push(`${a.len()} and some more text to fill it`); }").unwrap_err();
        let EvalAltResult::ErrorTerminated(value, _) = *err else { panic!("{err}") };
        assert!(value.read_lock::<LimitReached>().is_some());
    }
}
