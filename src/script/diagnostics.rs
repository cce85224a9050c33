//! Rhai errors as miette diagnostics: the file, the line and column, the source line
//! underlined, and a plain sentence.
//!
//! One converter turns Rhai positions (1-based line and column, in characters) into spans;
//! the innermost error is the primary label, the call frames around it are further labels.

use std::collections::HashMap;
use std::sync::Arc;

use miette::SourceSpan;
use rhai::{EvalAltResult, ParseError, Position};

use crate::diagnostic::{Code, Diagnostic, Source};
use crate::task::{innermost, ErrorKind, LimitReached, TaskError};

/// The byte span of the token at `position`, if the position is in this source.
fn span(source: &Source, position: Position) -> Option<SourceSpan> {
    let (line, column) = (position.line()?, position.position().unwrap_or(1).max(1));
    let mut offset = 0;
    for (i, text) in source.text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            let start = offset + text.char_indices().nth(column - 1).map(|(b, _)| b).unwrap_or(0);
            let rest = &source.text[start..];
            let word = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').map(char::len_utf8).sum::<usize>();
            let len = if word > 0 { word } else { string_literal_len(rest).unwrap_or_else(|| first_char_len(rest)) };
            return Some(SourceSpan::new(start.into(), len));
        }
        offset += text.len();
    }
    None
}

/// The module files the resolver accepted and read, by the name their errors carry. A
/// diagnostic shows a module's lines only from here: a name in an error is whatever the script
/// wrote after `import`, and reading it from disk would print any file the user can read.
#[derive(Clone, Debug, Default)]
pub struct HeldSources(Arc<parking_lot::Mutex<HashMap<String, Arc<str>>>>);

impl HeldSources {
    /// Keeps `text`, read from the module file `name`, for diagnostics about it.
    pub fn hold(&self, name: &str, text: Arc<str>) {
        self.0.lock().insert(name.to_string(), text);
    }

    fn get(&self, name: &str) -> Option<Source> {
        self.0.lock().get(name).map(|text| Source { name: name.to_string(), text: text.clone() })
    }
}

/// The length of the string literal `text` starts with, quotes included, if it does and it
/// ends on the same line (an `import "..."` refused is underlined whole).
fn string_literal_len(text: &str) -> Option<usize> {
    let body = text.strip_prefix('"')?;
    let end = body.find(['"', '\n'])?;
    body[end..].starts_with('"').then_some(end + 2)
}

fn first_char_len(text: &str) -> usize {
    text.chars().next().map(char::len_utf8).unwrap_or(0)
}

impl Diagnostic {
    fn label(&mut self, source: &Source, position: Position, text: Option<String>, primary: bool) {
        if let Some(span) = span(source, position) {
            if !self.labels.iter().any(|(_, s, _)| *s == span) {
                self.labels.push((text, span, primary));
            }
        }
    }

    /// The script does not parse.
    pub fn compile(err: &ParseError, source: &Source) -> Self {
        let mut d = Diagnostic::plain(Code::Compile, format!("{} does not compile: {}", source.name, err.err_type()));
        d.source = Some(source.named());
        d.label(source, err.position(), Some(err.err_type().to_string()), true);
        d
    }

    /// An error raised while the script ran. An error inside an imported module's function
    /// is shown in that module's file, as `modules` holds it.
    pub fn runtime(err: &EvalAltResult, source: &Source, modules: &HeldSources) -> Self {
        let (err, module_source) = inside_module(err, source, modules);
        let source = module_source.as_ref().unwrap_or(source);
        let inner = innermost(err);
        let (code, message, help) = describe(inner);
        let mut d = Diagnostic::plain(code, message);
        d.help = help;
        d.source = Some(source.named());
        let primary_text = match inner {
            EvalAltResult::ErrorRuntime(v, _) if v.is::<TaskError>() => None,
            _ => Some("here".to_string()),
        };
        // Some errors (a data race inside `map`) carry no position: point at the nearest call.
        let mut position = inner.position();
        let mut frame = err;
        while position.is_none() {
            match frame {
                EvalAltResult::ErrorInFunctionCall(_, _, next, pos) | EvalAltResult::ErrorInModule(_, next, pos) => {
                    position = *pos;
                    frame = next;
                }
                _ => break,
            }
        }
        if position.is_none() {
            position = err.position();
        }
        if position.is_none() {
            if let Some(span) = named_call_site(&d.message, source) {
                d.labels.push((Some("the error comes from this call".into()), span, true));
            }
        }
        d.label(source, position, primary_text, true);
        if let EvalAltResult::ErrorRuntime(value, _) = inner {
            if let Some(e) = value.read_lock::<TaskError>() {
                d.task_labels(&e, source);
            }
        }
        let mut frame = err;
        while let EvalAltResult::ErrorInFunctionCall(name, _, inner, pos) = frame {
            let what =
                if name.starts_with("anon$") { "in this closure".to_string() } else { format!("in call to `{name}`") };
            d.label(source, *pos, Some(what), false);
            frame = inner;
        }
        d
    }

    /// For a graph's error: where each failed task threw, and where it was defined.
    fn task_labels(&mut self, error: &TaskError, source: &Source) {
        for failed in error.failed_tasks.iter().take(5) {
            if error.kind == ErrorKind::Invalid {
                self.label(source, failed.defined_at, Some(format!("`{}` is defined here", failed.name)), false);
                continue;
            }
            if !failed.error.position.is_none() {
                let text = format!("{} failed here: {}", failed.shown(), failed.error.message);
                self.label(source, failed.error.position, Some(text), false);
            }
            self.label(source, failed.defined_at, Some(format!("task `{}` is defined here", failed.name)), false);
        }
    }
}

/// The part of `err` that happened in another file than `main` (a function of an imported
/// module, or a module that does not compile), with that file; `err` itself otherwise. Only a
/// file the resolver read counts: an import it refused names a path it never opened.
fn inside_module<'a>(
    err: &'a EvalAltResult,
    main: &Source,
    modules: &HeldSources,
) -> (&'a EvalAltResult, Option<Source>) {
    let mut switch: Option<(&EvalAltResult, Source)> = None;
    let mut frame = err;
    loop {
        let (file, next) = match frame {
            EvalAltResult::ErrorInFunctionCall(_, file, next, _) => (file.as_str(), next),
            EvalAltResult::ErrorInModule(file, next, _) => (file.as_str(), next),
            _ => break,
        };
        if file != main.name {
            if let Some(held) = modules.get(file) {
                switch = Some((next, held));
            }
        }
        frame = next;
    }
    match switch {
        Some((inner, held)) => (inner, Some(held)),
        None => (err, None),
    }
}

/// Rhai raises some errors inside native functions without a position (a data race in
/// `map`'s closure); when the message names the function and the script calls it in exactly
/// one place, that call is where to look.
fn named_call_site(message: &str, source: &Source) -> Option<SourceSpan> {
    let name =
        message.split('\'').nth(1).filter(|n| !n.is_empty() && n.chars().all(|c| c.is_alphanumeric() || c == '_'))?;
    let pattern = format!("{name}(");
    let mut found = source.text.match_indices(&pattern).filter(|(at, _)| {
        let before = &source.text[..*at];
        let line = &before[before.rfind('\n').map_or(0, |i| i + 1)..];
        let starts_a_word = before.chars().last().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        starts_a_word && !line.contains("//")
    });
    let (at, _) = found.next()?;
    if found.next().is_some() {
        return None;
    }
    Some(SourceSpan::new(at.into(), name.len()))
}

/// Rhai names argument types as Rust does; a script author knows them as Rhai's.
fn script_type_names(text: &str) -> String {
    text.replace("&str | ImmutableString | String", "string")
        .replace("ImmutableString", "string")
        .replace("i64", "int")
        .replace("f64", "float")
        .replace("rhai::Map", "map")
        .replace("rhai::Array", "array")
}

/// The diagnostic's code, sentence and help for one Rhai error.
fn describe(err: &EvalAltResult) -> (Code, String, Option<String>) {
    let mut text = err.to_string();
    // Rhai appends the position; the diagnostic shows it in the snippet instead.
    if let Some(at) = text.rfind(" (line ") {
        text.truncate(at);
    }
    match err {
        EvalAltResult::ErrorRuntime(value, _) => match value.read_lock::<TaskError>() {
            Some(e) => {
                let code = match e.kind {
                    ErrorKind::Cancelled => Code::Cancelled,
                    ErrorKind::Invalid => Code::InvalidGraph,
                    ErrorKind::BadArgument => Code::BadArgument,
                    ErrorKind::GraphFailed => Code::TaskFailed,
                    _ => Code::Error,
                };
                let message = match e.failed_tasks.as_slice() {
                    [one] if !matches!(e.kind, ErrorKind::GraphFailed | ErrorKind::Invalid | ErrorKind::Cancelled) => {
                        format!("task {} failed: {}", one.shown(), e.message)
                    }
                    _ => e.message.clone(),
                };
                (code, message, None)
            }
            None => (Code::Thrown, format!("the script threw: {}", crate::value::display_value(value)), None),
        },
        EvalAltResult::ErrorFunctionNotFound(..) => (
            Code::UnknownFunction,
            script_type_names(&text),
            Some("no function of this name takes arguments of these types: check the name, the number and the types of the arguments".into()),
        ),
        EvalAltResult::ErrorVariableNotFound(..) => (
            Code::UnknownVariable,
            text,
            Some("functions do not see the script's variables: pass them as arguments (or use `params`/`ctx` at the top level)".into()),
        ),
        EvalAltResult::ErrorTooManyOperations(..) => (
            Code::OperationsLimit,
            "the script ran too many operations and was stopped (is there an endless loop?)".into(),
            Some("raise the limit with --max-operations N (0 = no limit) if the work is legitimate".into()),
        ),
        EvalAltResult::ErrorStackOverflow(..) => (
            Code::CallDepth,
            "the script called functions too deeply and was stopped (endless recursion?)".into(),
            None,
        ),
        EvalAltResult::ErrorDataTooLarge(..) => (Code::SizeLimit, text, None),
        EvalAltResult::ErrorTerminated(value, _) => match value.read_lock::<LimitReached>() {
            Some(limit) => (limit.code(), limit.message(), Some(limit.help().into())),
            None => (Code::Cancelled, TaskError::cancelled().message, None),
        },
        _ => (Code::ScriptError, text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source {
        Source { name: "w.rhai".into(), text: Arc::from(text) }
    }

    #[test]
    fn a_span_covers_the_word_at_the_position() {
        let s = source("let a = 1;\nlet g = graph_mode();\n");
        let span = span(&s, Position::new(2, 9)).unwrap();
        assert_eq!(&s.text[span.offset()..span.offset() + span.len()], "graph_mode");
    }

    #[test]
    fn a_span_on_punctuation_is_one_character_and_columns_count_characters() {
        let s = source("let é = 1 +* 3;\n");
        let span = span(&s, Position::new(1, 12)).unwrap();
        assert_eq!(&s.text[span.offset()..span.offset() + span.len()], "*");
    }

    #[test]
    fn positions_outside_the_source_have_no_span() {
        assert!(span(&source("x"), Position::new(5, 1)).is_none());
        assert!(span(&source("x"), Position::NONE).is_none());
    }
}

#[cfg(test)]
mod every_position {
    use super::*;

    #[test]
    fn a_label_past_the_end_of_its_source_is_left_out() {
        let mut d = Diagnostic::plain(Code::Error, "m");
        d.source = Some(miette::NamedSource::new("w.rhai", "let a = 1;".to_string()));
        d.labels.push((Some("far away".into()), SourceSpan::new(200.into(), 3), true));
        let shown = crate::diagnostic::render(&d, false);
        assert!(!shown.contains("Failed to read") && !shown.contains("far away"), "{shown}");
    }

    // Every position of sources with CRLF, lone CR, multi-byte characters, long lines, no
    // final newline, labelled and rendered: none shows miette's "Failed to read contents".
    #[test]
    fn every_label_renders_its_source() {
        let long = "x".repeat(300);
        let texts = [
            "let a = 1;\r\nlet b = 2;\r\n".to_string(),
            "a\rb\rc".to_string(),
            format!("let s = \"{long}\";\nlet t = 1;"),
            format!("{long}\r{long}\n\n"),
            "é€😀 = 1\n\n\n".to_string(),
            format!("let x = `{long}\n{long}`;"),
            "\n\n\n".to_string(),
            "\"unterminated\n".to_string(),
            format!("\"{}", "é".repeat(200)),
        ];
        for text in texts {
            let src = Source { name: "w.rhai".into(), text: Arc::from(text.as_str()) };
            let lines = text.split('\n').count() + 1;
            for line in 1..=lines {
                for column in 1..=320 {
                    let mut d = Diagnostic::plain(Code::Error, "m");
                    d.source = Some(src.named());
                    d.label(&src, Position::new(line as u16, column as u16), Some("here".into()), true);
                    d.label(&src, Position::new(1, 1), Some("there".into()), false);
                    let out = crate::diagnostic::render(&d, false);
                    assert!(!out.contains("Failed to read"), "{text:?} {line}:{column}\n{out}");
                }
            }
        }
    }
}
