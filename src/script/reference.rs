//! The host API as the engine knows it: every registered function with the documentation
//! written beside its registration (`api::doc`), recorded as it is registered. The REPL's
//! `:help` and Tab completion, and the generated part of docs/REFERENCE.md, come from here.

/// One registered host function (one overload).
#[derive(Clone, Debug, PartialEq)]
pub struct HostFunction {
    /// As a script names it: `shell`, `total_retries` (a property), `HandlerResult::cont`.
    pub name: String,
    /// The type it is called on (`Task`, `Graph`, ...): methods, properties and operators.
    pub receiver: Option<String>,
    /// How a script calls it, from its doc: `shell(name, command)`, `t.name`.
    pub call: String,
    /// What it does, from its doc; empty when it has none.
    pub what: String,
}

impl HostFunction {
    /// Called as `name(...)` rather than on a value: `graph_mode()`, `HandlerResult::cont()`.
    pub fn is_free(&self) -> bool {
        self.receiver.is_none()
    }

    /// A name Tab completes (not an operator).
    pub fn is_word(&self) -> bool {
        self.name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == ':')
    }
}

/// The functions the host registers, with their docs, in name order: read from an engine
/// built for the purpose while `api::doc` records them.
pub fn host_functions() -> Vec<HostFunction> {
    let mut found = super::api::doc::recording(|| {
        super::build_engine(&std::sync::Weak::new(), &super::Limits::default(), Vec::new());
    });
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// What `:help NAME` shows: each overload's call and what it does.
pub fn help(functions: &[HostFunction], name: &str) -> Option<String> {
    let mut out = String::new();
    let mut seen = Vec::new();
    for f in functions.iter().filter(|f| f.name == name || f.name.rsplit("::").next() == Some(name)) {
        if seen.contains(&(&f.call, &f.what)) {
            continue;
        }
        seen.push((&f.call, &f.what));
        let on = f.receiver.as_ref().map(|r| format!("  ({r})")).unwrap_or_default();
        out.push_str(&format!("{}{on}\n    {}\n", f.call, f.what));
    }
    (!out.is_empty()).then_some(out)
}

/// A group of the reference: the functions of a set of types that share them.
pub struct Section {
    /// The types (`Task`, `Subgraph`); one empty name for the free functions.
    pub types: Vec<String>,
    /// `(call, what)`, in the order of the calls.
    pub rows: Vec<(String, String)>,
}

/// The groups of the reference: free functions, then each set of types that share members
/// (`Task`, `Subgraph`).
pub fn sections(functions: &[HostFunction]) -> Vec<Section> {
    // One row per (call, what): an overload registered for several types (the task properties
    // of `Task` and `Subgraph`) or arities (`s.add(a, b, …)`) is one row, under all its types.
    let mut rows: Vec<(String, String, Vec<String>)> = Vec::new();
    for f in functions {
        let receiver = f.receiver.clone().unwrap_or_default();
        match rows.iter_mut().find(|(call, what, _)| *call == f.call && *what == f.what) {
            Some((_, _, types)) if !types.contains(&receiver) => types.push(receiver),
            Some(_) => {}
            None => rows.push((f.call.clone(), f.what.clone(), vec![receiver])),
        }
    }
    let mut sections: Vec<Section> = Vec::new();
    for (call, what, mut types) in rows {
        types.sort_by_key(|t| type_rank(t));
        match sections.iter_mut().find(|s| s.types == types) {
            Some(section) => section.rows.push((call, what)),
            None => sections.push(Section { types, rows: vec![(call, what)] }),
        }
    }
    sections.sort_by_key(|s| s.types.iter().map(|t| type_rank(t)).collect::<Vec<_>>());
    for section in &mut sections {
        section.rows.sort();
    }
    sections
}

/// The order of the reference: free functions, tasks, graphs, errors, the deployment model.
const TYPE_ORDER: &[&str] = &[
    "",
    "Task",
    "Subgraph",
    "Graph",
    "Sequence",
    "ForkJoin",
    "Error",
    "HandlerResult",
    "Deployment",
    "Modification",
    "Node",
    "NodeInstance",
    "Relationship",
    "map",
];

fn type_rank(name: &str) -> (usize, String) {
    (TYPE_ORDER.iter().position(|t| *t == name).unwrap_or(TYPE_ORDER.len()), name.to_string())
}

/// The generated part of docs/REFERENCE.md: a table for each section (the test that keeps
/// the file in step writes it).
#[cfg(test)]
fn markdown(functions: &[HostFunction]) -> String {
    let mut out = String::new();
    for Section { types, rows } in sections(functions) {
        let heading = match types.as_slice() {
            [free] if free.is_empty() => "Functions".to_string(),
            [map] if map == "map" => "`ctx` (a map)".to_string(),
            _ => types.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", "),
        };
        out.push_str(&format!("\n### {heading}\n\n| call | what it does |\n|---|---|\n"));
        for (call, what) in rows {
            out.push_str(&format!("| `{}` | {} |\n", cell(&call), cell(&what)));
        }
    }
    out
}

/// Text safe inside a Markdown table cell.
#[cfg(test)]
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- generated: host functions -->\n";
    const END: &str = "<!-- end of generated host functions -->";

    // Host functions were documented by hand in three places (docs/REFERENCE.md, the REPL's
    // `:help` and its completion list), which fell behind the registrations.
    #[test]
    fn every_registered_function_has_a_doc() {
        let functions = host_functions();
        assert!(functions.len() > 100, "found only {}", functions.len());
        let undocumented: Vec<_> =
            functions.iter().filter(|f| f.call.is_empty() || f.what.is_empty()).map(|f| &f.name).collect();
        assert!(undocumented.is_empty(), "registered without a doc (api::doc): {undocumented:?}");
    }

    // The docs are recorded by `api::doc`'s registrations only: a function registered around
    // it (a bare `register_fn`) would be missing from the REPL and the reference, unseen.
    #[test]
    fn every_host_function_is_registered_through_its_doc() {
        let bare = [".register_fn(", ".register_get(", ".register_set(", ".register_get_set(", ".register_indexer_"];
        let mut found = Vec::new();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/script");
        let mut folders = vec![root];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    folders.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                    for (i, line) in code.lines().enumerate() {
                        if bare.iter().any(|b| line.contains(b)) || line.contains("FuncRegistration::new") {
                            found.push(format!("{}:{}: {}", path.display(), i + 1, line.trim()));
                        }
                    }
                }
            }
        }
        found.retain(|f| !f.contains("api/doc.rs"));
        assert!(found.is_empty(), "registered without `api::doc::doc(..)`:\n{}", found.join("\n"));
    }

    // docs/REFERENCE.md listed the host functions by hand. It now holds what the registrations
    // say; `RHAIFLOW_WRITE_REFERENCE=1 cargo test --lib reference` rewrites it after a change.
    #[test]
    fn the_reference_is_generated_from_the_registrations() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/REFERENCE.md");
        let text = std::fs::read_to_string(&path).unwrap();
        let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
            panic!("docs/REFERENCE.md has no `{}` … `{END}` section", BEGIN.trim_end())
        };
        let generated = markdown(&host_functions());
        let updated = format!("{}{BEGIN}{generated}\n{}", &text[..begin], &text[end..]);
        if std::env::var_os("RHAIFLOW_WRITE_REFERENCE").is_some() {
            std::fs::write(&path, &updated).unwrap();
        }
        assert!(
            updated == text,
            "docs/REFERENCE.md differs from the host functions' docs: run \
             RHAIFLOW_WRITE_REFERENCE=1 cargo test --lib reference"
        );
    }

    #[test]
    fn help_shows_each_overload_once() {
        let functions = host_functions();
        let shell = help(&functions, "shell").unwrap();
        assert_eq!(shell.lines().filter(|l| l.starts_with("shell(")).count(), 2, "{shell}");
        let cont = help(&functions, "cont").unwrap();
        assert!(cont.starts_with("HandlerResult::cont()"), "{cont}");
        assert!(help(&functions, "no_such_function").is_none());
    }
}
