//! Logging, cancel, error constructors and `HandlerResult` (contract sections 3 and 5).

use rhai::{Dynamic, Engine, EvalAltResult, Module};

use super::doc::doc;
use super::tasks::{bad_argument, seconds};
use crate::events::{LogLevel, Payload};
use crate::exec::HandlerVerdict;
use crate::script::state::{upgrade, RunRef};
use crate::task::{ErrorKind, TaskError};

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

pub fn register(engine: &mut Engine, run: &RunRef) {
    let r = run.clone();
    doc("log(level, message)", "Emits a `log` event; level is \"debug\", \"info\", \"warn\" or \"error\".")
        .func("log")
        .register_into_engine(engine, move |level: &str, message: Dynamic| -> Result<()> {
            let level = LogLevel::parse(level)
                .ok_or_else(|| bad_argument(format!("unknown log level `{level}`: use debug, info, warn or error")))?;
            let run = upgrade(&r)?;
            run.env().bus.emit(Payload::Log { level, message: crate::value::display_value(&message) });
            Ok(())
        });

    let r = run.clone();
    doc("has_cancel_request()", "`true` once a cancel of the execution was asked for.")
        .func("has_cancel_request")
        .register_into_engine(engine, move || -> Result<bool> { Ok(upgrade(&r)?.env().cancel.is_requested()) });
    doc("is_cancelled(err)", "`true` when a caught error is the execution's cancel.")
        .func("is_cancelled")
        .register_into_engine(engine, |err: Dynamic| match err.read_lock::<TaskError>() {
            Some(e) => e.is_cancelled(),
            None => false,
        });
    doc("execution_cancelled()", "An error to `throw` that ends the execution as cancelled (exit 3).")
        .func("execution_cancelled")
        .register_into_engine(engine, TaskError::cancelled);
    doc("non_recoverable(message)", "An error to `throw` that is never retried.")
        .func("non_recoverable")
        .register_into_engine(engine, |message: Dynamic| {
            TaskError::new(ErrorKind::NonRecoverable, crate::value::display_value(&message))
        });
    doc(
        "operation_retry(message, secs)",
        "An error to `throw` that asks to be retried after `secs` seconds, without calling `on_failure`.",
    )
    .func("operation_retry")
    .register_into_engine(engine, |message: Dynamic, secs: Dynamic| -> Result<TaskError> {
        let after = seconds(&secs, "operation_retry's retry_after")?;
        Ok(TaskError::new(ErrorKind::RetryAfter(after), crate::value::display_value(&message)))
    });
    register_error(engine);
    register_verdicts(engine);
}

/// A caught error's members (section 5).
fn register_error(engine: &mut Engine) {
    engine.register_type_with_name::<TaskError>("Error");
    doc("err.message", "What went wrong.")
        .get("message")
        .register_into_engine(engine, |e: &mut TaskError| e.message.clone());
    doc(
        "err.kind",
        "`recoverable`, `non_recoverable`, `operation_retry`, `cancelled`, `invalid`, `bad_argument`, `graph_failed`, …",
    )
    .get("kind").register_into_engine(engine, |e: &mut TaskError| e.kind.as_str().to_string());
    doc("err.value", "What the task threw, or a failed process's result map.")
        .get("value")
        .register_into_engine(engine, |e: &mut TaskError| e.value.clone());
    doc("err.to_string()", "The message (what `print` and string interpolation show).")
        .func("to_string")
        .register_into_engine(engine, |e: &mut TaskError| e.message.clone());
    doc("err.to_debug()", "`Error(kind: message)`.")
        .func("to_debug")
        .register_into_engine(engine, |e: &mut TaskError| format!("Error({}: {})", e.kind.as_str(), e.message));
}

/// `HandlerResult::cont()` and the other verdicts an `on_success` / `on_failure` handler returns.
fn register_verdicts(engine: &mut Engine) {
    engine.register_type_with_name::<HandlerVerdict>("HandlerResult");
    doc("verdict.to_string()", "`HandlerResult::cont()`, … as written.")
        .func("to_string")
        .register_into_engine(engine, |v: &mut HandlerVerdict| format!("HandlerResult::{}()", v.as_str()));
    doc("a == b", "Whether two verdicts are the same.")
        .func("==")
        .register_into_engine(engine, |a: HandlerVerdict, b: HandlerVerdict| a == b);
    let mut verdicts = Module::new();
    for (name, verdict, call, what) in [
        ("cont", HandlerVerdict::Continue, "HandlerResult::cont()", "The task counts as done and its dependents run."),
        (
            "ignore",
            HandlerVerdict::Ignore,
            "HandlerResult::ignore()",
            "The task counts as done and its dependents run (said of a failure).",
        ),
        ("fail", HandlerVerdict::Fail, "HandlerResult::fail()", "The task failed."),
        (
            "retry",
            HandlerVerdict::Retry,
            "HandlerResult::retry()",
            "The task is retried if retries remain (`total_retries`).",
        ),
        (
            "retry_ignoring_limit",
            HandlerVerdict::RetryIgnoringLimit,
            "HandlerResult::retry_ignoring_limit()",
            "The task is retried even past `total_retries`.",
        ),
    ] {
        doc(call, what).func(name).set_into_module(&mut verdicts, "HandlerResult", move || verdict);
    }
    engine.register_static_module("HandlerResult", verdicts.into());
}
