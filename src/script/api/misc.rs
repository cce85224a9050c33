//! Logging, cancel, error constructors and `HandlerResult` (contract sections 3 and 5).

use rhai::{Dynamic, Engine, EvalAltResult, Module};

use super::tasks::{bad_argument, seconds};
use crate::events::{LogLevel, Payload};
use crate::exec::HandlerVerdict;
use crate::script::state::{upgrade, RunRef};
use crate::task::{ErrorKind, TaskError};

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

pub fn register(engine: &mut Engine, run: &RunRef) {
    let r = run.clone();
    engine.register_fn("log", move |level: &str, message: Dynamic| -> Result<()> {
        let level = LogLevel::parse(level)
            .ok_or_else(|| bad_argument(format!("unknown log level `{level}`: use debug, info, warn or error")))?;
        let run = upgrade(&r)?;
        run.env().bus.emit(Payload::Log { level, message: crate::value::display_value(&message) });
        Ok(())
    });

    let r = run.clone();
    engine.register_fn("has_cancel_request", move || -> Result<bool> { Ok(upgrade(&r)?.env().cancel.is_requested()) });
    engine.register_fn("is_cancelled", |err: Dynamic| match err.read_lock::<TaskError>() {
        Some(e) => e.is_cancelled(),
        None => false,
    });
    engine.register_fn("execution_cancelled", TaskError::cancelled);
    engine.register_fn("non_recoverable", |message: Dynamic| {
        TaskError::new(ErrorKind::NonRecoverable, crate::value::display_value(&message))
    });
    engine.register_fn("operation_retry", |message: Dynamic, secs: Dynamic| -> Result<TaskError> {
        let after = seconds(&secs, "operation_retry's retry_after")?;
        Ok(TaskError::new(ErrorKind::RetryAfter(after), crate::value::display_value(&message)))
    });

    engine.register_type_with_name::<TaskError>("Error");
    engine.register_get("message", |e: &mut TaskError| e.message.clone());
    engine.register_get("kind", |e: &mut TaskError| e.kind.as_str().to_string());
    engine.register_get("value", |e: &mut TaskError| e.value.clone());
    engine.register_fn("to_string", |e: &mut TaskError| e.message.clone());
    engine.register_fn("to_debug", |e: &mut TaskError| format!("Error({}: {})", e.kind.as_str(), e.message));

    engine.register_type_with_name::<HandlerVerdict>("HandlerResult");
    engine.register_fn("to_string", |v: &mut HandlerVerdict| format!("HandlerResult::{}()", v.as_str()));
    engine.register_fn("==", |a: HandlerVerdict, b: HandlerVerdict| a == b);
    let mut verdicts = Module::new();
    for (name, verdict) in [
        ("cont", HandlerVerdict::Continue),
        ("ignore", HandlerVerdict::Ignore),
        ("fail", HandlerVerdict::Fail),
        ("retry", HandlerVerdict::Retry),
        ("retry_ignoring_limit", HandlerVerdict::RetryIgnoringLimit),
    ] {
        verdicts.set_native_fn(name, move || Ok(verdict));
    }
    engine.register_static_module("HandlerResult", verdicts.into());
}
