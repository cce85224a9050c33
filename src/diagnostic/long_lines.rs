//! Long source lines cut for display: a snippet shows at most [`SHOWN_CHARS`] characters of a
//! line, around what its labels point at, so that a generated or minified script (a 1 MB line)
//! does not fill the terminal. The labels' spans move with the text.

use miette::{MietteError, MietteSpanContents, NamedSource, SourceCode, SourceSpan, SpanContents};

/// The characters of one line a snippet shows.
pub const SHOWN_CHARS: usize = 120;
/// How many characters before the first label a cut line keeps, for context.
const CONTEXT_BEFORE: usize = 40;
const ELLIPSIS: &str = "…";

/// What part of one line of the original is shown, and where it lands in the cut text.
struct ShownLine {
    /// The line's bytes in the original, without its end of line.
    start: usize,
    end: usize,
    /// The part shown, in bytes of the original.
    window: (usize, usize),
    /// Where the line starts in the cut text, and the bytes written before the window there.
    cut_start: usize,
    prefix: usize,
}

/// A source with its long lines cut. It tells miette the columns of the original, so that the
/// `[file:line:column]` above a snippet stays true.
pub struct CutSource {
    name: String,
    text: String,
    lines: Vec<ShownLine>,
    /// The bytes of each line hidden before its window (miette's columns count bytes).
    hidden_before: Vec<usize>,
}

/// `source` with every line longer than [`SHOWN_CHARS`] cut around the spans in `labels`, and
/// the spans moved to match; `None` when no line is that long.
pub fn cut(source: &NamedSource<String>, labels: &[SourceSpan]) -> Option<(CutSource, Vec<SourceSpan>)> {
    let text = source.inner();
    if !text.split('\n').any(|line| line.chars().nth(SHOWN_CHARS).is_some()) {
        return None;
    }
    let (cut_text, lines) = cut_lines(text, labels);
    let spans = labels.iter().map(|span| moved(span, &lines)).collect();
    let hidden_before = lines.iter().map(|l| l.window.0 - l.start).collect();
    Some((CutSource { name: source.name().to_string(), text: cut_text, lines, hidden_before }, spans))
}

impl CutSource {
    #[cfg(test)]
    fn text(&self) -> &str {
        &self.text
    }
}

impl SourceCode for CutSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let read = self.text.read_span(span, before, after)?;
        let (at, len) = (read.span().offset(), read.span().len());
        let mut column = read.column();
        // A read that starts inside a window (the primary label's own line) is shifted by
        // what the cut hid; the ellipsis written in its place is not a column of the original.
        // Only when miette counted the column from our line's start: it also ends lines at a
        // lone `\r`, and a column counted from one inside the window is already true.
        let line = self.lines.iter().rposition(|l| l.cut_start <= at);
        if let Some(i) = line.filter(|&i| {
            let l = &self.lines[i];
            l.prefix > 0 && at >= l.cut_start + l.prefix && column == at - l.cut_start
        }) {
            column = column + self.hidden_before[i] - self.lines[i].prefix;
        }
        let data = &self.text.as_bytes()[at..at + len];
        let contents = MietteSpanContents::new_named(
            self.name.clone(),
            data,
            *read.span(),
            read.line(),
            column,
            read.line_count(),
        );
        Ok(Box::new(contents))
    }
}

fn cut_lines(text: &str, labels: &[SourceSpan]) -> (String, Vec<ShownLine>) {
    let mut cut_text = String::new();
    let mut lines = Vec::new();
    let mut start = 0;
    for piece in text.split_inclusive('\n') {
        let line = piece.strip_suffix('\n').unwrap_or(piece);
        let end = start + line.len();
        let window = window_of(line, start, labels);
        let cut_start = cut_text.len();
        let mut prefix = 0;
        if window.0 > start {
            cut_text.push_str(ELLIPSIS);
            prefix = ELLIPSIS.len();
        }
        cut_text.push_str(&text[window.0..window.1]);
        if window.1 < end {
            cut_text.push_str(ELLIPSIS);
        }
        cut_text.push_str(&piece[line.len()..]);
        lines.push(ShownLine { start, end, window, cut_start, prefix });
        start += piece.len();
    }
    (cut_text, lines)
}

/// The bytes of `line` (starting at `start` in the text) to show: all of a short line; of a
/// long one, [`SHOWN_CHARS`] characters from a little before its first label.
fn window_of(line: &str, start: usize, labels: &[SourceSpan]) -> (usize, usize) {
    if line.chars().nth(SHOWN_CHARS).is_none() {
        return (start, start + line.len());
    }
    let first_label = labels.iter().map(SourceSpan::offset).filter(|o| (start..=start + line.len()).contains(o)).min();
    // Counted, not sliced: a parser's span may end inside a character.
    let label_char = first_label.map_or(0, |o| line.char_indices().take_while(|&(b, _)| b < o - start).count());
    let from_char = label_char.saturating_sub(CONTEXT_BEFORE);
    let byte_at = |n: usize| line.char_indices().nth(n).map_or(line.len(), |(b, _)| b);
    (start + byte_at(from_char), start + byte_at(from_char + SHOWN_CHARS))
}

/// `span` in the cut text: clamped to the window of its line.
fn moved(span: &SourceSpan, lines: &[ShownLine]) -> SourceSpan {
    let at = |offset: usize| {
        let line = lines.iter().find(|l| offset <= l.end).or(lines.last());
        line.map_or(0, |l| {
            let inside = offset.clamp(l.window.0, l.window.1);
            debug_assert!(l.start <= l.window.0);
            l.cut_start + l.prefix + (inside - l.window.0)
        })
    };
    let start = at(span.offset());
    let end = at(span.offset() + span.len()).max(start);
    SourceSpan::new(start.into(), end - start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_line_is_cut_around_its_label_and_the_label_still_covers_its_token() {
        let line = format!("let x = {} + ;", "1 + ".repeat(10_000));
        let text = format!("// first\n{line}\n");
        let at = text.rfind(';').unwrap();
        let source = NamedSource::new("w.rhai", text.clone());
        let (cut_source, spans) = cut(&source, &[SourceSpan::new(at.into(), 1)]).unwrap();
        let shown = cut_source.text();
        assert!(shown.len() < 400, "{shown}");
        assert!(shown.starts_with("// first\n…"), "{shown}");
        assert_eq!(&shown[spans[0].offset()..spans[0].offset() + spans[0].len()], ";");
    }

    #[test]
    fn short_lines_are_left_alone() {
        let source = NamedSource::new("w.rhai", "let a = 1;\n".to_string());
        assert!(cut(&source, &[SourceSpan::new(4.into(), 1)]).is_none());
    }
}
