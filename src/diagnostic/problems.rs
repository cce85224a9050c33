//! Problems found in one file (a manifest, a blueprint, a flow file), each with its place,
//! reported together as one diagnostic.

use miette::SourceSpan;

use super::{Code, Diagnostic, Source};

/// Problems found in a file, each with its place; reported together.
#[derive(Default)]
pub struct Problems(Vec<(String, SourceSpan)>);

impl Problems {
    pub fn add(&mut self, message: impl Into<String>, span: SourceSpan) {
        self.0.push((message.into(), span));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One diagnostic: the problems as a list in the message, each also a label in the file.
    pub fn into_diagnostic(self, code: Code, source: &Source) -> Diagnostic {
        let mut d = match self.0.as_slice() {
            [(one, _)] => Diagnostic::plain(code, format!("{}: {one}", source.name)),
            many => Diagnostic::plain(
                code,
                format!(
                    "{} has {} problems:\n{}",
                    source.name,
                    many.len(),
                    many.iter().map(|(m, _)| format!("  - {m}")).collect::<Vec<_>>().join("\n")
                ),
            ),
        };
        d.source = Some(source.named());
        d.labels = self.0.into_iter().map(|(m, span)| (Some(m), span, true)).collect();
        d
    }
}
