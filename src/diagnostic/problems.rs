//! Problems found in one file (a manifest, a blueprint, a flow file), each with its place,
//! reported together as one diagnostic.

use miette::SourceSpan;

use super::{Code, Diagnostic, Source};

/// Problems found in a file, each with its place; reported together.
#[derive(Debug, Default)]
pub struct Problems(Vec<(String, SourceSpan)>);

impl Problems {
    pub fn add(&mut self, message: impl Into<String>, span: SourceSpan) {
        self.0.push((message.into(), span));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// What the diagnostic says: the one problem, or how many and each on its line.
    fn summary(&self, name: &str) -> String {
        match self.0.as_slice() {
            [(one, _)] => format!("{name}: {one}"),
            many => format!(
                "{name} has {} problems:\n{}",
                many.len(),
                many.iter().map(|(m, _)| format!("  - {m}")).collect::<Vec<_>>().join("\n")
            ),
        }
    }

    /// One diagnostic: the problems as a list in the message, each also a label in the file.
    pub fn into_diagnostic(self, code: Code, source: &Source) -> Diagnostic {
        let mut d = Diagnostic::plain(code, self.summary(&source.name));
        d.source = Some(source.named());
        d.labels = self.0.into_iter().map(|(m, span)| (Some(m), span, true)).collect();
        d
    }
}

/// A file that did not pass validation, with every problem found in it: what a layer that
/// reads a file (a blueprint, a manifest) returns in its own error, made a diagnostic at the edge.
#[derive(Debug)]
pub struct FileProblems {
    pub source: Source,
    pub problems: Problems,
}

impl FileProblems {
    pub fn into_diagnostic(self, code: Code) -> Diagnostic {
        self.problems.into_diagnostic(code, &self.source)
    }
}

impl std::fmt::Display for FileProblems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.problems.summary(&self.source.name))
    }
}
