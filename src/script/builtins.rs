//! Rhai built-ins that would break rhaiflow's limits, registered again in their place
//! (functions registered on the engine are found before Rhai's packages):
//!
//! - the ones that allocate as much as an argument says (`pad`, `blob(len)`) check the memory
//!   limit first: with Rhai's per-value size limits off (`limits::install` says why), nothing
//!   else would stop `blob(1 << 40)` asking the system for a terabyte, or `s.pad(1 << 40, ' ')`
//!   looping inside one call;
//! - `sleep(secs)` gives way to cancel and timeouts, and refuses seconds out of range (Rhai's
//!   panicked on `1e308` and blocked its thread for as long as it was told);
//! - `parse_json(text)` reads any JSON, holds it to the nesting limit of values, and reports
//!   bad JSON at the call (Rhai's reported it at the line and column of the JSON text, as if
//!   they were the script's).

use std::time::{Duration, Instant};

use rhai::{Array, Blob, Dynamic, Engine, EvalAltResult, ImmutableString, Position, FLOAT, INT};

use super::api::doc::doc;
use super::api::seconds;
use super::limits::wait_interruptibly;
use crate::memory;
use crate::task::{LimitReached, TaskError};

type Outcome<T> = Result<T, Box<EvalAltResult>>;

pub fn register(engine: &mut Engine, max_memory: u64) {
    register_sized(engine, max_memory);
    let sleep_doc = doc(
        "sleep(secs)",
        "Blocks the script for `secs` seconds (0 to 365 days); a forced cancel or the task's timeout ends it.",
    );
    sleep_doc.func("sleep").register_into_engine(engine, |secs: INT| sleep(Dynamic::from_int(secs)));
    sleep_doc.func("sleep").register_into_engine(engine, |secs: FLOAT| sleep(Dynamic::from_float(secs)));
    doc(
        "parse_json(text)",
        "Any JSON as a value (`()` for null), at most 64 levels deep; bad JSON is an error at the call.",
    )
    .func("parse_json")
    .register_into_engine(engine, parse_json);
}

/// Blocks the script for `secs` seconds, as Rhai's `sleep` does, but interruptibly.
fn sleep(secs: Dynamic) -> Outcome<()> {
    let until = Instant::now() + crate::seconds::duration(seconds(&secs, "sleep(secs):")?);
    wait_interruptibly(|slice: Duration| {
        let left = until.saturating_duration_since(Instant::now());
        std::thread::sleep(left.min(slice));
        (Instant::now() >= until).then_some(())
    })
}

/// `text` as a value: maps, arrays, strings, numbers, booleans, `()` for null.
fn parse_json(text: &str) -> Outcome<Dynamic> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| TaskError::recoverable(format!("parse_json: the text is not JSON: {e}")).into_rhai())?;
    crate::value::check_json_nesting(&value, || "the JSON given to parse_json".into())
        .map_err(|e| TaskError::recoverable(e.to_string()).into_rhai())?;
    Ok(crate::value::from_json(&value))
}

fn register_sized(engine: &mut Engine, max_memory: u64) {
    let check = move |bytes: u64| -> Outcome<()> {
        match memory::would_exceed(max_memory, bytes) {
            true => Err(LimitReached::Memory { limit: max_memory }.into_rhai(Position::NONE)),
            false => Ok(()),
        }
    };
    doc(
        "array.pad(len, item)",
        "Rhai's: grows the array to `len` with copies of `item`, checked against the memory limit first.",
    )
    .func("pad")
    .register_into_engine(engine, move |array: &mut Array, len: INT, item: Dynamic| -> Outcome<()> {
        let Some(len) = longer(array.len(), len) else { return Ok(()) };
        let each = std::mem::size_of::<Dynamic>() + shallow_bytes(&item);
        check(((len - array.len()) as u64).saturating_mul(each as u64))?;
        array.resize(len, item);
        Ok(())
    });
    doc(
        "blob.pad(len, value)",
        "Rhai's: grows the blob to `len` bytes of `value`, checked against the memory limit first.",
    )
    .func("pad")
    .register_into_engine(engine, move |blob: &mut Blob, len: INT, value: INT| -> Outcome<()> {
        let Some(len) = longer(blob.len(), len) else { return Ok(()) };
        check((len - blob.len()) as u64)?;
        blob.resize(len, value as u8);
        Ok(())
    });
    doc("blob(len)", "Rhai's: `len` zero bytes, checked against the memory limit first.")
        .func("blob")
        .register_into_engine(engine, move |len: INT| -> Outcome<Blob> { filled(&check, len, 0) });
    doc("blob(len, value)", "Rhai's: `len` bytes of `value`, checked against the memory limit first.")
        .func("blob")
        .register_into_engine(engine, move |len: INT, value: INT| -> Outcome<Blob> { filled(&check, len, value) });
    let text_pad = doc(
        "text.pad(len, padding)",
        "Rhai's: pads the string to `len` characters with copies of `padding`, checked against the memory limit first.",
    );
    text_pad.func("pad").register_into_engine(
        engine,
        move |text: &mut ImmutableString, len: INT, padding: char| -> Outcome<()> {
            pad_text(&check, text, len, &padding.to_string())
        },
    );
    text_pad.func("pad").register_into_engine(
        engine,
        move |text: &mut ImmutableString, len: INT, padding: &str| -> Outcome<()> {
            pad_text(&check, text, len, padding)
        },
    );
}

/// `len` as a length, when it is longer than `current`.
fn longer(current: usize, len: INT) -> Option<usize> {
    usize::try_from(len).ok().filter(|&len| len > current)
}

/// What a copy of `item` allocates besides its slot: its own elements, not theirs.
fn shallow_bytes(item: &Dynamic) -> usize {
    if let Some(array) = item.read_lock::<Array>() {
        array.len() * std::mem::size_of::<Dynamic>()
    } else if let Some(map) = item.read_lock::<rhai::Map>() {
        map.len() * (std::mem::size_of::<Dynamic>() + 32)
    } else if let Some(blob) = item.read_lock::<Blob>() {
        blob.len()
    } else {
        0
    }
}

fn filled(check: &impl Fn(u64) -> Outcome<()>, len: INT, value: INT) -> Outcome<Blob> {
    let len = usize::try_from(len).unwrap_or(0);
    check(len as u64)?;
    Ok(vec![value as u8; len])
}

/// Pads `text` to `len` characters with copies of `padding` (the last one cut short).
fn pad_text(check: &impl Fn(u64) -> Outcome<()>, text: &mut ImmutableString, len: INT, padding: &str) -> Outcome<()> {
    let have = text.chars().count();
    let (Some(len), false) = (longer(have, len), padding.is_empty()) else { return Ok(()) };
    let missing = len - have;
    let per_char = padding.len().div_ceil(padding.chars().count());
    check((missing as u64).saturating_mul(per_char as u64))?;
    let grown = text.make_mut();
    grown.extend(padding.chars().cycle().take(missing));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(max_memory: u64) -> Engine {
        let mut engine = Engine::new();
        register(&mut engine, max_memory);
        engine
    }

    #[test]
    fn padding_works_as_rhai_documents_it() {
        let engine = engine(0);
        assert_eq!(engine.eval::<String>(r#"let s = "hello"; s.pad(10, "(!)"); s"#).unwrap(), "hello(!)(!");
        assert_eq!(engine.eval::<String>(r#"let s = "hi"; s.pad(4, '*'); s.pad(1, '-'); s"#).unwrap(), "hi**");
        assert_eq!(engine.eval::<INT>("let a = [1]; a.pad(3, 0); a.len()").unwrap(), 3);
        assert_eq!(engine.eval::<INT>("let b = blob(2, 7); b.pad(5, 1); b[1] + b[4]").unwrap(), 8);
        assert_eq!(engine.eval::<INT>("blob(-3).len()").unwrap(), 0);
    }

    #[test]
    fn parse_json_reads_any_json_and_refuses_the_rest_at_the_call() {
        let engine = engine(0);
        assert_eq!(engine.eval::<INT>(r#"parse_json(`{"a": [1, 2]}`).a[1]"#).unwrap(), 2);
        assert_eq!(engine.eval::<INT>(r#"parse_json("[3]")[0]"#).unwrap(), 3);
        let err = engine.run("let x = 1;\nparse_json(`\n\n {`)").unwrap_err();
        assert!(TaskError::from_rhai(&err).message.contains("parse_json: the text is not JSON"), "{err}");
        assert_eq!(err.position().line(), Some(2), "{err}");
        let deep = format!("parse_json(`{}{}`)", "[".repeat(100), "]".repeat(100));
        let err = engine.run(&deep).unwrap_err();
        assert!(TaskError::from_rhai(&err).message.contains("more than 64 levels deep"), "{err}");
    }

    #[test]
    fn sleep_refuses_seconds_out_of_range_instead_of_panicking() {
        let engine = engine(0);
        engine.run("sleep(0); sleep(0.01)").unwrap();
        for script in ["sleep(1e308)", "sleep(-1.0)", "sleep(-1)"] {
            let err = engine.run(script).unwrap_err();
            assert!(TaskError::from_rhai(&err).message.contains("sleep(secs):"), "{script}: {err}");
        }
    }

    #[test]
    fn a_size_past_the_memory_limit_is_refused_before_it_is_allocated() {
        let engine = engine(memory::in_use() + (64 << 20));
        for script in ["blob(1 << 40)", "let a = []; a.pad(1 << 40, 0)", r#"let s = ""; s.pad(1 << 40, ' ')"#] {
            let err = engine.run(script).unwrap_err();
            let EvalAltResult::ErrorTerminated(value, _) = *err else { panic!("{script}: {err}") };
            assert!(value.read_lock::<LimitReached>().is_some(), "{script}");
        }
    }
}
