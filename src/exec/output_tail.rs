//! What a shell or exec task keeps of what it printed: the last `limit` bytes of a stream,
//! so that memory, the stored result and its event stay flat whatever a process prints.

use std::collections::VecDeque;

use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of each stream (stdout, stderr) a task keeps unless its `output_limit` says.
pub const DEFAULT_OUTPUT_LIMIT: usize = 1 << 20;

/// The end of a stream and how much was dropped before it.
#[derive(Debug, Default)]
pub struct OutputTail {
    kept: VecDeque<u8>,
    cut: u64,
}

impl OutputTail {
    /// Reads `stream` to its end, keeping its last `limit` bytes; `seen` is shown every chunk
    /// as it is read (the task's output events). A read error ends the stream: the process's
    /// exit status says what happened to it.
    pub async fn read(mut stream: impl AsyncRead + Unpin, limit: usize, mut seen: impl FnMut(&[u8])) -> OutputTail {
        let mut tail = OutputTail::default();
        let mut chunk = vec![0u8; 64 << 10];
        while let Ok(read @ 1..) = stream.read(&mut chunk).await {
            seen(&chunk[..read]);
            tail.keep(&chunk[..read], limit);
        }
        tail
    }

    /// `read` of a child's piped stream (`None` only if it was not piped: nothing to read).
    pub async fn read_piped(
        stream: Option<impl AsyncRead + Unpin>,
        limit: usize,
        seen: impl FnMut(&[u8]),
    ) -> OutputTail {
        match stream {
            Some(stream) => OutputTail::read(stream, limit, seen).await,
            None => OutputTail::default(),
        }
    }

    fn keep(&mut self, bytes: &[u8], limit: usize) {
        self.kept.extend(bytes);
        let over = self.kept.len().saturating_sub(limit);
        if over > 0 {
            self.kept.drain(..over);
            self.cut += over as u64;
        }
    }

    pub fn was_cut(&self) -> bool {
        self.cut > 0
    }

    /// The text kept, led by a line that says how much was cut before it, if anything was.
    pub fn text(&self) -> String {
        let (front, back) = self.kept.as_slices();
        let kept = String::from_utf8_lossy(&[front, back].concat()).into_owned();
        match self.cut {
            0 => kept,
            cut => format!("[… {cut} bytes cut …]\n{kept}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_the_last_bytes_are_kept_and_the_cut_is_said() {
        let tail = OutputTail::read(&b"0123456789"[..], 4, |_| {}).await;
        assert!(tail.was_cut());
        assert_eq!(tail.text(), "[… 6 bytes cut …]\n6789");
        let whole = OutputTail::read(&b"0123"[..], 4, |_| {}).await;
        assert_eq!((whole.was_cut(), whole.text()), (false, "0123".to_string()));
    }
}
