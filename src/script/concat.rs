//! `+` of a string and a number or a bool, registered natively: scripts name their tasks
//! `"t" + i` in every loop, and Rhai's own `+` for a string and any value looks up and calls
//! `to_string` for the value on each use (about 2,800 instructions, against a few hundred
//! here). The text is exactly Rhai's: integers and bools as Rust prints them, floats as
//! Rhai's `FloatWrapper` does (`1.0`, `1e20`, `NaN`). A string and a char Rhai adds natively
//! already. `to_string` of an integer (what `${i}` calls) likewise: Rhai has none for integers
//! and printed them through its catch-all for any value.

use std::fmt::{Display, Write};

use rhai::{Engine, FloatWrapper, ImmutableString, FLOAT, INT};

use super::api::doc::doc;

/// Registers `string + value` and `value + string` for integers, floats and bools, and
/// `to_string` of an integer.
pub fn register(engine: &mut Engine) {
    let plus = doc(
        "text + value",
        "Rhai's: the string and the integer, float or bool (either order) joined, as `to_string` prints the value; native, for speed.",
    );
    plus.func("+").register_into_engine(engine, |text: &str, n: INT| joined(text, itoa::Buffer::new().format(n)));
    plus.func("+").register_into_engine(engine, |n: INT, text: &str| joined(itoa::Buffer::new().format(n), text));
    plus.func("+").register_into_engine(engine, |text: &str, x: FLOAT| append(text, FloatWrapper::new(x)));
    plus.func("+").register_into_engine(engine, |x: FLOAT, text: &str| prepend(FloatWrapper::new(x), text));
    plus.func("+").register_into_engine(engine, |text: &str, b: bool| joined(text, if b { "true" } else { "false" }));
    plus.func("+").register_into_engine(engine, |b: bool, text: &str| joined(if b { "true" } else { "false" }, text));
    // By reference: `${n}` hands Rhai's `to_string` the value as a reference, and a function
    // taking it by value made Rhai copy the value first (~150 instructions each `${n}`).
    doc("n.to_string()", "Rhai's: the integer as text (what `${n}` writes); native, for speed.")
        .func("to_string")
        .register_into_engine(engine, |n: &mut INT| joined("", itoa::Buffer::new().format(*n)));
}

/// The longest text a Rhai string holds without a heap buffer of its own (smartstring's
/// inline capacity on a 64-bit machine).
const INLINE: usize = 23;

/// `head` then `tail`, in one allocation while the result fits inline. Integers are written
/// by itoa, not `fmt` (~280 of the ~470 instructions of `"t" + i`); a short result is put
/// together on the stack and made a string once, where two `push_str`s onto Rhai's string
/// each checked and moved its inline form (~150 of the ~250 left).
fn joined(head: &str, tail: &str) -> ImmutableString {
    let len = head.len() + tail.len();
    if len <= INLINE {
        let mut buf = [0u8; INLINE];
        buf[..head.len()].copy_from_slice(head.as_bytes());
        buf[head.len()..len].copy_from_slice(tail.as_bytes());
        // SAFETY: `buf[..len]` is two whole `str`s one after the other, which is UTF-8 (checking
        // it again cost a quarter of the join).
        return ImmutableString::from(unsafe { std::str::from_utf8_unchecked(&buf[..len]) });
    }
    let mut joined = ImmutableString::new();
    let buf = joined.make_mut();
    buf.push_str(head);
    buf.push_str(tail);
    joined
}

/// `text` then `tail`, in one allocation while the result fits inline.
fn append(text: &str, tail: impl Display) -> ImmutableString {
    let mut joined = ImmutableString::new();
    let buf = joined.make_mut();
    buf.push_str(text);
    // Writing into a string cannot fail.
    let _ = write!(buf, "{tail}");
    joined
}

fn prepend(head: impl Display, text: &str) -> ImmutableString {
    let mut joined = ImmutableString::new();
    let buf = joined.make_mut();
    let _ = write!(buf, "{head}");
    buf.push_str(text);
    joined
}

#[cfg(test)]
mod tests {
    use super::*;
    use rhai::Dynamic;

    /// Values whose text could differ: signs, zero, extremes, floats Rust and Rhai print
    /// differently (`1.0`, `1e20`, `1e-7`), NaN and the infinities.
    const VALUES: &[&str] = &[
        "0",
        "7",
        "-42",
        "9223372036854775807",
        "-9223372036854775807 - 1",
        "1.0",
        "0.1 + 0.2",
        "-0.0",
        "0.0",
        "1e20",
        "1e15",
        "1e16",
        "123456789012345.0",
        "1e-7",
        "0.0001",
        "-2.5e-300",
        "1.7976931348623157e308",
        "5e-324",
        "0.0 / 0.0",
        "1.0 / 0.0",
        "-1.0 / 0.0",
        "true",
        "false",
        "'x'",
        "'é'",
        "()",
    ];

    fn texts(engine: &Engine, script_of: impl Fn(&str) -> String) -> Vec<String> {
        VALUES
            .iter()
            .map(|v| {
                let script = script_of(v);
                engine.eval::<Dynamic>(&script).map(|d| d.to_string()).unwrap_or_else(|e| format!("{script}: {e}"))
            })
            .collect()
    }

    // Rhai's `+` printed the value with `to_string`; the native one must print exactly that,
    // in both orders, on an engine without Rhai's packages (so the native functions alone
    // are what answers; without them, `"t" + 1` is not even defined there).
    #[test]
    fn native_string_plus_prints_every_value_as_rhai_does() {
        let rhai = Engine::new();
        let mut native = Engine::new_raw();
        register(&mut native);
        // `()` and chars Rhai adds natively in every engine.
        let ours = |v: &&str| !v.starts_with('\'') && *v != "()";
        for script_of in [|v: &str| format!(r#""t" + ({v})"#), |v: &str| format!(r#"({v}) + "·t""#)] {
            let expected = texts(&rhai, script_of);
            let got = texts(&native, script_of);
            for ((v, e), g) in VALUES.iter().zip(&expected).zip(&got).filter(|((v, _), _)| ours(v)) {
                assert_eq!(g, e, "{}", script_of(v));
            }
        }
        // `${i}` and `i.to_string()` of an integer.
        let integers = &VALUES[..5];
        let to_string = |engine: &Engine| -> Vec<String> {
            integers.iter().map(|v| engine.eval::<String>(&format!("({v}).to_string()")).unwrap_or_default()).collect()
        };
        assert_eq!(to_string(&native), to_string(&rhai));
        let mut full = crate::script::plain_engine(&crate::script::Limits::default());
        full.set_max_operations(0);
        for script_of in [
            |v: &str| format!(r#""t" + ({v})"#),
            |v: &str| format!(r#"({v}) + "·t""#),
            |v: &str| format!(r#"`t${{{v}}}`"#),
        ] {
            assert_eq!(texts(&full, script_of), texts(&rhai, script_of));
        }
    }

    // A short result is put together on the stack, a long one in Rhai's string: both must
    // hold exactly the two texts, on each side of the inline capacity, multibyte ones too.
    #[test]
    fn joined_texts_are_whole_on_both_sides_of_the_inline_capacity() {
        for head_len in 0..=INLINE + 2 {
            for tail in ["", "7", "-42", "é", "9223372036854775807", "·t"] {
                let head: String = "ab".repeat(head_len).chars().take(head_len).collect();
                assert_eq!(joined(&head, tail).as_str(), format!("{head}{tail}"));
                assert_eq!(joined(tail, &head).as_str(), format!("{tail}{head}"));
            }
        }
    }

    /// A registered type with no `to_string` of its own, as a task handle is to Rhai.
    #[derive(Clone)]
    struct Handle;

    /// Every kind of value a script interpolates: the numbers above, strings, arrays, maps,
    /// a constant, and a registered type.
    const MORE_VALUES: &[&str] =
        &["\"text\"", "\"\"", "[1, \"a\", 2.5, ()]", "[]", "#{a: 1, b: [true]}", "#{}", "X", "h", "[h]"];

    fn with_handle(mut engine: Engine) -> Engine {
        engine.register_type_with_name::<Handle>("Task").register_fn("handle", || Handle);
        engine
    }

    // `${n}` calls the integer's native `to_string`, now taking it by reference: a constant,
    // an integer inside an array or a map, and every other value must still print exactly
    // as a plain Rhai engine prints them, in every form a script writes them.
    #[test]
    fn every_value_prints_as_rhai_prints_it_in_every_form() {
        let rhai = with_handle(Engine::new());
        let mut ours = with_handle(crate::script::plain_engine(&crate::script::Limits::default()));
        ours.set_max_operations(0);
        let forms: [fn(&str) -> String; 6] = [
            |v| format!("`${{{v}}}`"),
            |v| format!("`t${{{v}}}_${{{v}}}`"),
            |v| format!("({v}).to_string()"),
            |v| format!("to_string({v})"),
            |v| format!(r#""t" + {v}"#),
            |v| format!(r#"{v} + "t""#),
        ];
        for value in VALUES.iter().chain(MORE_VALUES) {
            for form in forms {
                let script = format!("const X = -9223372036854775807 - 1; let h = handle(); {}", form(value));
                let text =
                    |engine: &Engine| engine.eval::<Dynamic>(&script).map(|d| d.to_string()).map_err(|e| e.to_string());
                assert_eq!(text(&ours), text(&rhai), "{script}");
            }
        }
    }
}
