//! Lines for a person that never panic: `say!` writes a line on stderr, `say_out!` on stdout.
//!
//! `eprintln!` and `println!` panic when the reader went away (`rhaiflow run … | head -1`): a
//! panic in the thread that prints the progress, a signal notice or the summary would leave
//! the run hanging or exiting 101. A line nobody reads is simply dropped; the workflow goes on.

use std::fmt::Arguments;
use std::io::Write;

/// `eprintln!` that ignores a closed or failing stderr.
macro_rules! say {
    ($($arg:tt)*) => {{
        $crate::say::line_to(&mut std::io::stderr(), format_args!($($arg)*));
    }};
}

/// `println!` that ignores a closed or failing stdout.
macro_rules! say_out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprint!` / `print!` of text that already ends its lines.
macro_rules! say_text {
    (stderr, $text:expr) => {{
        use std::io::Write as _;
        let _ = std::io::stderr().write_all($text.as_bytes());
    }};
    (stdout, $text:expr) => {{
        use std::io::Write as _;
        let _ = std::io::stdout().write_all($text.as_bytes());
    }};
}

/// Writes `args` and a newline to `out` in one write: stderr has no buffer, and `writeln!`
/// made a system call of each piece of the format (the run's summary took 12).
pub fn line_to(out: &mut impl Write, args: Arguments<'_>) {
    let mut line = std::fmt::format(args);
    line.push('\n');
    let _ = out.write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts the writes it is given.
    #[derive(Default)]
    struct Writes(Vec<Vec<u8>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_of_many_pieces_is_one_write() {
        let mut out = Writes::default();
        let (word, seconds, id) = ("succeeded", 0.04, "e1");
        line_to(&mut out, format_args!("✔ workflow {word} in {seconds:.2}s · tasks: {} · execution {id}", 1));
        assert_eq!(out.0, vec!["✔ workflow succeeded in 0.04s · tasks: 1 · execution e1\n".as_bytes().to_vec()]);
    }
}
