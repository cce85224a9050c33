//! The line editor's helper and when input goes on: an unfinished block (an open bracket,
//! brace or string) or expression (a trailing operator) continues on the next line, and Tab
//! completes host functions, methods and properties after a dot (both as their registrations
//! document them), the session's variables and functions, and `:commands`.

use std::borrow::Cow;

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::validate::Validator;
use rustyline::{Context, Helper};

use super::help::{COMMANDS, KEYWORDS};
use crate::script::reference::HostFunction;

#[derive(Default)]
pub struct InputHelper {
    /// Host functions, and the session's variables and functions (refreshed after each line).
    pub words: Vec<String>,
    /// Methods and properties of the host's types, completed after a dot.
    pub members: Vec<String>,
}

impl InputHelper {
    /// Completion from the host's functions: the free ones (and keywords) at the start of a
    /// word, the methods and properties after a dot.
    pub fn new(functions: &[HostFunction]) -> Self {
        let names = |free: bool| {
            let mut names: Vec<String> =
                functions.iter().filter(|f| f.is_word() && f.is_free() == free).map(|f| f.name.clone()).collect();
            if free {
                names.extend(KEYWORDS.iter().map(|k| k.to_string()));
            }
            names.sort();
            names.dedup();
            names
        };
        InputHelper { words: names(true), members: names(false) }
    }
}

impl Helper for InputHelper {}

impl Hinter for InputHelper {
    type Hint = String;
}

impl Highlighter for InputHelper {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(&'s self, prompt: &'p str, _default: bool) -> Cow<'b, str> {
        Cow::Borrowed(prompt)
    }
}

// Enter always hands the line over: the session decides whether it is complete (it asks Rhai's
// parser, which the helper does not have) and reads the rest under a continuation prompt.
impl Validator for InputHelper {}

/// Does `text` stop before its end: an open bracket, brace, string or comment, or what Rhai's
/// parser calls incomplete (a trailing operator, `let x =`)? Then the next line continues it.
pub fn incomplete(engine: &rhai::Engine, text: &str) -> bool {
    unfinished(text)
        || matches!(engine.compile(text), Err(e) if matches!(e.err_type(), rhai::ParseErrorType::UnexpectedEOF))
}

/// Is a bracket, brace or string still open (outside comments)?
pub fn unfinished(text: &str) -> bool {
    let mut depth: i64 = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            '"' | '`' | '\'' => {
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '\\' {
                        chars.next();
                    } else if d == c {
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return true;
                }
            }
            '/' if chars.peek() == Some(&'/') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut closed = false;
                while let Some(d) = chars.next() {
                    if d == '*' && chars.peek() == Some(&'/') {
                        chars.next();
                        closed = true;
                        break;
                    }
                }
                if !closed {
                    return true;
                }
            }
            _ => {}
        }
    }
    depth > 0
}

impl Completer for InputHelper {
    type Candidate = Pair;

    fn complete(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).map_or(0, |i| i + 1);
        let word = &before[start..];
        let after_dot = before[..start].ends_with('.');
        let candidates: Vec<String> = if word.starts_with(':') && start == 0 {
            COMMANDS.iter().map(|(c, _)| c.to_string()).filter(|c| c.starts_with(word)).collect()
        } else if after_dot {
            self.members.iter().filter(|p| p.starts_with(word)).cloned().collect()
        } else if word.is_empty() {
            Vec::new()
        } else {
            let mut all: Vec<String> = self.words.iter().filter(|w| w.starts_with(word)).cloned().collect();
            all.sort();
            all.dedup();
            all
        };
        Ok((start, candidates.into_iter().map(|c| Pair { display: c.clone(), replacement: c }).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_blocks_and_strings_continue() {
        assert!(unfinished("let s = g.sequence(); s.add(a,"));
        assert!(unfinished("fn f() {"));
        assert!(unfinished("let x = \"abc"));
        assert!(unfinished("/* a comment"));
        assert!(!unfinished("let x = \"(\"; // ( in a comment"));
        assert!(!unfinished("fn f() { 1 }"));
        assert!(!unfinished("let x = 1"));
    }

    #[test]
    fn a_trailing_operator_continues_and_a_mistake_does_not() {
        let engine = rhai::Engine::new_raw();
        assert!(incomplete(&engine, "let x = 1 +"));
        assert!(incomplete(&engine, "let total ="));
        assert!(incomplete(&engine, "[1, 2,"));
        assert!(!incomplete(&engine, "let x = 1 +* 2;"));
        assert!(!incomplete(&engine, "let x = 1 + 2"));
    }
}
