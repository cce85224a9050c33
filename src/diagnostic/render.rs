//! Rendering a diagnostic for a terminal, with long source lines cut (see `long_lines`).

use std::fmt;

use miette::{LabeledSpan, SourceSpan};

use super::{long_lines, Diagnostic};

/// A diagnostic shown with its source's long lines cut (see `long_lines`).
struct WithLongLinesCut<'a> {
    diagnostic: &'a Diagnostic,
    source: long_lines::CutSource,
    spans: Vec<SourceSpan>,
}

impl fmt::Debug for WithLongLinesCut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.diagnostic.fmt(f)
    }
}

impl fmt::Display for WithLongLinesCut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for WithLongLinesCut<'_> {}

impl miette::Diagnostic for WithLongLinesCut<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostic.code()
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostic.help()
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let labels = self.diagnostic.labels.iter().zip(&self.spans);
        Some(Box::new(labels.map(|((text, _, primary), span)| {
            if *primary {
                LabeledSpan::new_primary_with_span(text.clone(), *span)
            } else {
                LabeledSpan::new_with_span(text.clone(), *span)
            }
        })))
    }
}

/// Renders a diagnostic as a person sees it: unicode, colours only at a terminal.
pub fn render(diagnostic: &Diagnostic, colour: bool) -> String {
    use miette::{GraphicalReportHandler, GraphicalTheme};
    let theme = if colour { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
    let handler = GraphicalReportHandler::new_themed(theme).with_width(100).with_links(false);
    let mut out = String::new();
    let spans: Vec<SourceSpan> = diagnostic.labels.iter().map(|(_, span, _)| *span).collect();
    let rendered = match diagnostic.source.as_ref().and_then(|source| long_lines::cut(source, &spans)) {
        Some((source, spans)) => handler.render_report(&mut out, &WithLongLinesCut { diagnostic, source, spans }),
        None => handler.render_report(&mut out, diagnostic),
    };
    if rendered.is_err() {
        return diagnostic.message.clone();
    }
    out
}
