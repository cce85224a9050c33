//! What `:help` shows (the commands, and the host API by type) and `:help NAME` (one host
//! function's documentation). The API is the engine's own, read from the documentation
//! written beside each registration (`script::reference`), as Tab completion reads it.

use crate::script::reference::{help, sections, HostFunction};

/// The REPL's commands.
pub const COMMANDS: &[(&str, &str)] = &[
    (":help", "this list; `:help NAME` shows one host function"),
    (":graph", "the current graph (the last graph_mode()) as text"),
    (":run", "execute the current graph, with live progress (Ctrl-C cancels it, twice forces)"),
    (":events", "the events of the last run (or of the last line that ran tasks)"),
    (":load FILE", "run a script file in this session"),
    (":reset", "start over: no variables, no functions, standard mode"),
    (":quit", "leave (Ctrl-D too)"),
];

/// Words completed at the start of a word besides the host functions: Rhai's keywords, and
/// `print` and `debug`, which the host receives as events rather than registers.
pub const KEYWORDS: &[&str] = &["debug", "fn", "import", "let", "print", "throw", "try"];

/// The text `:help` prints: the commands, then the host functions' names by type.
pub fn text(functions: &[HostFunction]) -> String {
    let mut out = String::from("Commands:\n");
    for (command, what) in COMMANDS {
        out.push_str(&format!("  {command:<12} {what}\n"));
    }
    out.push_str("\nThe host API (`:help NAME` for one; all of it: docs/REFERENCE.md):\n");
    for section in sections(functions) {
        let title = match section.types.as_slice() {
            [free] if free.is_empty() => "functions".to_string(),
            [map] if map == "map" => "ctx".to_string(),
            types => types.join(", "),
        };
        let mut names: Vec<&str> = section.rows.iter().map(|(call, _)| call.as_str()).collect();
        names.dedup();
        out.push_str(&wrap(&format!("  {title}: "), &names));
    }
    out.push_str(
        "\nInput that stops before its end (an open bracket, brace or string, a trailing operator) goes on\n\
         under `...>`. Tab completes.\n",
    );
    out
}

/// `items` after `lead`, joined with commas, wrapped under the first item at 100 columns.
fn wrap(lead: &str, items: &[&str]) -> String {
    let indent = " ".repeat(lead.chars().count());
    let mut out = String::new();
    let mut line = lead.to_string();
    for (i, item) in items.iter().enumerate() {
        let piece = if i + 1 < items.len() { format!("{item}, ") } else { item.to_string() };
        if line.chars().count() + piece.chars().count() > 100 && line.trim() != lead.trim() {
            out.push_str(line.trim_end());
            out.push('\n');
            line = indent.clone();
        }
        line.push_str(&piece);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// What `:help NAME` prints.
pub fn about(functions: &[HostFunction], name: &str) -> String {
    help(functions, name).unwrap_or_else(|| format!("no host function `{name}` (:help lists them)\n"))
}
