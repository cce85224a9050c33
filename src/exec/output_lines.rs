//! What a shell or exec task prints, as `task_output` events: one per line, emitted as the
//! lines arrive, so that the console, `--events-json` and the store follow a task live.
//!
//! An attempt's output events are bounded (`LINES_AT_MOST` lines, `BYTES_AT_MOST` bytes of
//! text, both streams together): past that one last event says `truncated: true` and the rest
//! is not looked at, so a task printing gigabytes costs the bus and the store a megabyte. The
//! task's result keeps its own tail of each stream (`output_tail`), whatever is cut here.

use std::sync::Arc;

use parking_lot::Mutex;

use crate::events::{EventBus, OutputStream, Payload, TaskInfo};

/// Lines of output one attempt emits as events at most.
pub const LINES_AT_MOST: u32 = 10_000;
/// Bytes of line text one attempt emits as events at most.
pub const BYTES_AT_MOST: usize = 1 << 20;
/// A longer line is emitted in pieces of this size: a stream without newlines must not be
/// held whole waiting for one.
pub const LINE_BYTES_AT_MOST: usize = 16 << 10;

/// One attempt's output, cut into lines and emitted.
pub struct OutputLines {
    bus: Arc<EventBus>,
    task: TaskInfo,
    state: Mutex<LinesState>,
}

struct LinesState {
    /// The line each stream has begun and not ended yet (stdout, stderr).
    partial: [Vec<u8>; 2],
    lines_left: u32,
    bytes_left: usize,
    /// The bound was reached: the `truncated` event was emitted, nothing more is.
    cut: bool,
}

impl OutputLines {
    pub fn new(bus: Arc<EventBus>, task: TaskInfo) -> Self {
        let state = LinesState {
            partial: [Vec::new(), Vec::new()],
            lines_left: LINES_AT_MOST,
            bytes_left: BYTES_AT_MOST,
            cut: false,
        };
        OutputLines { bus, task, state: Mutex::new(state) }
    }

    /// Takes what `stream` printed next: every line it ends is emitted. The lock is held while
    /// emitting so that the `truncated` event is the attempt's last output event.
    pub fn take(&self, stream: OutputStream, bytes: &[u8]) {
        let mut state = self.state.lock();
        let mut rest = bytes;
        while !state.cut && !rest.is_empty() {
            let (piece, ends_line) = match rest.iter().position(|&b| b == b'\n') {
                Some(at) => (&rest[..at], true),
                None => (rest, false),
            };
            rest = &rest[piece.len() + usize::from(ends_line)..];
            state.partial[index(stream)].extend_from_slice(piece);
            // A line of exactly the size, ended here, is one line, not a piece and an empty one.
            let too_long = |len: usize| len > LINE_BYTES_AT_MOST || (len == LINE_BYTES_AT_MOST && !ends_line);
            while !state.cut && too_long(state.partial[index(stream)].len()) {
                let partial = &mut state.partial[index(stream)];
                let line: Vec<u8> = partial.drain(..char_boundary(partial, LINE_BYTES_AT_MOST)).collect();
                self.emit(&mut state, stream, &line);
            }
            if ends_line && !state.cut {
                let line = std::mem::take(&mut state.partial[index(stream)]);
                self.emit(&mut state, stream, line.strip_suffix(b"\r").unwrap_or(&line));
            }
        }
    }

    /// The process ended (or was killed): a last line without its newline is a line too.
    pub fn finish(&self) {
        let mut state = self.state.lock();
        for stream in [OutputStream::Stdout, OutputStream::Stderr] {
            let line = std::mem::take(&mut state.partial[index(stream)]);
            if !line.is_empty() && !state.cut {
                self.emit(&mut state, stream, &line);
            }
        }
    }

    /// Emits `line`, or the `truncated` event when it is past the bound.
    fn emit(&self, state: &mut LinesState, stream: OutputStream, line: &[u8]) {
        let task = self.task.clone();
        if state.lines_left == 0 || line.len() > state.bytes_left {
            state.cut = true;
            state.partial = [Vec::new(), Vec::new()];
            let line = format!(
                "[… more output not shown: a task's output lines stop after {LINES_AT_MOST} lines or {BYTES_AT_MOST} \
                 bytes]"
            );
            self.bus.emit(Payload::TaskOutput { task, stream, line, truncated: true });
            return;
        }
        state.lines_left -= 1;
        state.bytes_left -= line.len();
        let line = String::from_utf8_lossy(line).into_owned();
        self.bus.emit(Payload::TaskOutput { task, stream, line, truncated: false });
    }
}

fn index(stream: OutputStream) -> usize {
    match stream {
        OutputStream::Stdout => 0,
        OutputStream::Stderr => 1,
    }
}

/// Where to cut `bytes` at about `at` without splitting a UTF-8 character (a piece of a long
/// line must read as text); `at` itself when no character starts in the last 3 bytes before it.
fn char_boundary(bytes: &[u8], at: usize) -> usize {
    let is_continuation = |i: usize| bytes.get(i).is_some_and(|b| b & 0xC0 == 0x80);
    (at.saturating_sub(3)..=at).rev().find(|&i| !is_continuation(i)).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::TaskKind;
    use crate::events::{Event, EventSink, ExecutionLabel};

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<(OutputStream, String, bool)>>>);

    impl EventSink for Lines {
        fn accept(&mut self, event: &Event, _: &ExecutionLabel) {
            if let Payload::TaskOutput { stream, line, truncated, .. } = &event.payload {
                self.0.lock().push((*stream, line.clone(), *truncated));
            }
        }
    }

    fn output() -> (OutputLines, Lines) {
        let lines = Lines::default();
        let label = ExecutionLabel { execution_id: "e".into(), workflow: "w".into() };
        let bus = Arc::new(EventBus::new(label, vec![Box::new(lines.clone())]));
        (OutputLines::new(bus, TaskInfo::first_attempt("t", TaskKind::Shell)), lines)
    }

    #[test]
    fn lines_are_cut_where_they_end_whatever_the_chunks() {
        let (output, lines) = output();
        output.take(OutputStream::Stdout, b"one\r\ntw");
        output.take(OutputStream::Stderr, b"err\n");
        output.take(OutputStream::Stdout, b"o\n\nthree");
        output.finish();
        let seen: Vec<_> = lines.0.lock().iter().map(|(s, l, _)| (s.as_str(), l.clone())).collect();
        let expected = [("stdout", "one"), ("stderr", "err"), ("stdout", "two"), ("stdout", ""), ("stdout", "three")];
        assert_eq!(seen, expected.map(|(s, l)| (s, l.to_string())));
    }

    #[test]
    fn a_long_line_comes_in_pieces_on_character_boundaries() {
        let (output, lines) = output();
        let text = "é".repeat(LINE_BYTES_AT_MOST);
        output.take(OutputStream::Stdout, text.as_bytes());
        output.finish();
        let pieces = lines.0.lock();
        assert!(pieces.iter().all(|(_, l, _)| !l.contains('\u{FFFD}') && l.len() <= LINE_BYTES_AT_MOST));
        assert_eq!(pieces.iter().map(|(_, l, _)| l.as_str()).collect::<String>(), text);
    }

    #[test]
    fn past_the_bound_one_truncated_event_and_nothing_more() {
        let (output, lines) = output();
        let many = "x\n".repeat(LINES_AT_MOST as usize + 5);
        output.take(OutputStream::Stderr, many.as_bytes());
        output.take(OutputStream::Stdout, b"later\n");
        output.finish();
        let seen = lines.0.lock();
        assert_eq!(seen.len(), LINES_AT_MOST as usize + 1);
        assert!(seen[..LINES_AT_MOST as usize].iter().all(|(_, l, cut)| l == "x" && !cut));
        assert_eq!(seen.last().map(|(s, _, cut)| (*s, *cut)), Some((OutputStream::Stderr, true)));
    }
}
