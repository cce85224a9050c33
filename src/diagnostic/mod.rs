//! Diagnostics: the errors a person reads, each with a code, a plain sentence, and where
//! it can, the file and the line underlined. Every layer reports through them; this module
//! imports nothing of the crate, so any layer can.

mod code;
mod long_lines;
mod problems;
mod render;

use std::fmt;
use std::sync::Arc;

use miette::{LabeledSpan, NamedSource, SourceSpan};

pub use code::Code;
pub use problems::{FileProblems, Problems};
pub use render::render;

/// A script's text and the name to show for it.
#[derive(Clone, Debug)]
pub struct Source {
    pub name: String,
    pub text: Arc<str>,
}

impl Source {
    pub fn named(&self) -> NamedSource<String> {
        NamedSource::new(&self.name, self.text.to_string())
    }
}

/// An error a person reads. Boxed, so that a `Result` carrying one stays a pointer wide.
#[derive(Debug)]
pub struct Diagnostic(Box<DiagnosticParts>);

/// What a diagnostic says and where it points.
#[derive(Debug)]
pub struct DiagnosticParts {
    pub code: Code,
    pub message: String,
    pub help: Option<String>,
    pub source: Option<NamedSource<String>>,
    pub labels: Vec<(Option<String>, SourceSpan, bool)>,
}

impl std::ops::Deref for Diagnostic {
    type Target = DiagnosticParts;

    fn deref(&self) -> &DiagnosticParts {
        &self.0
    }
}

impl std::ops::DerefMut for Diagnostic {
    fn deref_mut(&mut self) -> &mut DiagnosticParts {
        &mut self.0
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|h| Box::new(h.as_str()) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            return None;
        }
        // A span past the end of the source would render as miette's "[Failed to read
        // contents for label …]": a label in the wrong file is better left out.
        let size = self.source.as_ref().map_or(0, |s| s.inner().len());
        let inside = move |span: &SourceSpan| span.offset() + span.len() <= size;
        Some(Box::new(self.labels.iter().filter(move |(_, span, _)| inside(span)).map(|(text, span, primary)| {
            if *primary {
                LabeledSpan::new_primary_with_span(text.clone(), *span)
            } else {
                LabeledSpan::new_with_span(text.clone(), *span)
            }
        })))
    }
}

impl Diagnostic {
    /// Its plain sentence, for where only text goes (an event, a test's outcome).
    pub fn into_message(self) -> String {
        self.0.message
    }

    pub fn plain(code: Code, message: impl Into<String>) -> Self {
        Diagnostic(Box::new(DiagnosticParts {
            code,
            message: message.into(),
            help: None,
            source: None,
            labels: Vec::new(),
        }))
    }

    /// Something in rhaiflow itself went wrong: one wording for every such place.
    pub fn bug(what: impl fmt::Display) -> Self {
        Diagnostic::plain(Code::Bug, bug_message(what))
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// The sentence of a bug in rhaiflow, for a diagnostic, a task's error or a panic's report.
pub fn bug_message(what: impl fmt::Display) -> String {
    format!("this is a bug in rhaiflow: {what}; please report it")
}
