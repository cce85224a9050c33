//! Lines for a person that never panic: `say!` writes a line on stderr, `say_out!` on stdout.
//!
//! `eprintln!` and `println!` panic when the reader went away (`rhaiflow run … | head -1`): a
//! panic in the thread that prints the progress, a signal notice or the summary would leave
//! the run hanging or exiting 101. A line nobody reads is simply dropped; the workflow goes on.

/// `eprintln!` that ignores a closed or failing stderr.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
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
