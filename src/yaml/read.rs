//! Reading a spanned YAML tree into typed values the way every YAML file of rhaiflow is read
//! (manifests, blueprints, flow files): what is wrong becomes a problem at its line, and
//! reading goes on, so one diagnostic lists everything to fix.

use miette::SourceSpan;

use super::{Node, Yaml};
use crate::diagnostic::Problems;

/// The document's tree; a syntax error is the one problem, where the parser stopped.
pub fn parse_or_report(text: &str, problems: &mut Problems) -> Option<Node> {
    match super::parse(text) {
        Ok(root) => Some(root),
        Err((message, span)) => {
            problems.add(format!("not valid YAML: {message}"), span.unwrap_or(SourceSpan::new(0.into(), 0)));
            None
        }
    }
}

/// Every key of the map `node` that is not one of `known` is a problem; `place` says where
/// (`in a task`, `at the top of plugin.yaml`).
pub fn unknown_keys(node: &Node, known: &[&str], place: &str, problems: &mut Problems) {
    for (key, _) in node.entries() {
        let text = key.key_text();
        if !known.contains(&text.as_str()) {
            problems.add(format!("unknown key `{text}` {place} (known: {})", known.join(", ")), key.span);
        }
    }
}

/// The text of a field that must be text when given (`what` names it in the problem).
pub fn text(node: Option<&Node>, what: &str, problems: &mut Problems) -> Option<String> {
    let node = node?;
    match node.as_str() {
        Some(s) => Some(s.to_string()),
        None => {
            problems.add(format!("`{what}` must be text, found {}", node.kind()), node.span);
            None
        }
    }
}

/// The text of an optional field of the map `node` (a description): absent or empty is "".
pub fn optional_text(node: &Node, key: &str, problems: &mut Problems) -> String {
    match node.get(key) {
        Some(v) if !matches!(v.value, Yaml::Null) => text(Some(v), key, problems).unwrap_or_default(),
        _ => String::new(),
    }
}

/// The entries of an optional map section (`node_types`, `interfaces`), keys as text.
pub fn map_entries<'a>(node: Option<&'a Node>, what: &str, problems: &mut Problems) -> Vec<(String, &'a Node)> {
    let Some(node) = node else { return Vec::new() };
    if matches!(node.value, Yaml::Null) {
        return Vec::new();
    }
    if !node.is_map() {
        problems.add(format!("`{what}` must be a map, found {}", node.kind()), node.span);
        return Vec::new();
    }
    node.entries()
        .iter()
        .filter_map(|(k, v)| match k.as_str() {
            Some(key) => Some((key.to_string(), v)),
            None => {
                problems.add(format!("a name in `{what}` must be text"), k.span);
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(text: &str, known: &[&str]) -> Vec<String> {
        let mut problems = Problems::default();
        let root = parse_or_report(text, &mut problems).unwrap();
        unknown_keys(&root, known, "here", &mut problems);
        let source = crate::diagnostic::Source { name: "f.yaml".into(), text: text.into() };
        let d = problems.into_diagnostic(crate::diagnostic::Code::Blueprint, &source);
        d.labels.iter().filter_map(|(m, _, _)| m.clone()).collect()
    }

    // A blueprint showed an unknown key that is not text as `?`; now every file shows it as written.
    #[test]
    fn an_unknown_key_that_is_not_text_is_shown_as_written() {
        assert_eq!(problems_of("a: 1\n7: 2\n", &["a"]), ["unknown key `7` here (known: a)"]);
    }

    #[test]
    fn a_description_may_be_absent_or_empty_but_not_a_list() {
        let mut problems = Problems::default();
        let root = parse_or_report("a: ~\nb: [1]\nc: hi\n", &mut problems).unwrap();
        let read: Vec<String> = ["a", "b", "c", "d"].iter().map(|k| optional_text(&root, k, &mut problems)).collect();
        assert_eq!(read, ["", "", "hi", ""]);
        assert!(!problems.is_empty());
    }
}
