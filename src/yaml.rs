//! YAML documents as trees whose every node knows where it stands in the file, so manifests
//! and blueprints are validated with diagnostics that point at the offending line.
//!
//! serde-saphyr parses (YAML 1.2: `no` and `on` stay strings); this module only keeps the
//! spans and the order of mapping keys, and turns values into JSON for the rest of rhaiflow.

mod read;

use std::fmt;

use miette::SourceSpan;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;

pub use read::{map_entries, optional_text, parse_or_report, text, unknown_keys};

/// A YAML value with the byte span of its text.
#[derive(Clone, Debug)]
pub struct Node {
    pub value: Yaml,
    pub span: SourceSpan,
}

#[derive(Clone, Debug)]
pub enum Yaml {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    /// Keys in the order written.
    Map(Vec<(Node, Node)>),
}

/// Parses `text`; a syntax error comes back with the span where the parser stopped.
pub fn parse(text: &str) -> Result<Node, (String, Option<SourceSpan>)> {
    match serde_saphyr::from_str_with_options::<Spanned<Yaml>>(text, options()) {
        Ok(root) => Ok(Node { span: span_of(&root.referenced), value: root.value }),
        Err(e) => Err((message_of(&e), e.location().map(|l| span_of(&l)))),
    }
}

/// YAML 1.2: `no`, `on`, `y` are strings, as a person writing a country code means them;
/// `012` stays the string it looks like.
fn options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options.leading_zero_numbers_as_strings = true;
    options
}

/// The parser's error as one sentence for a person: without its own rendering of the source or
/// its position (the diagnostic shows both), its Rust Debug text, or advice meant for the
/// programmer calling it ("set DuplicateKeyPolicy in Options").
fn message_of(error: &serde_saphyr::Error) -> String {
    use serde_saphyr::Error;
    match error.without_snippet() {
        Error::DuplicateMappingKey { key: Some(key), .. } => format!("`{key}` is written twice in the same map"),
        Error::DuplicateMappingKey { key: None, .. } => "a key is written twice in the same map".into(),
        Error::Budget { breach, .. } => breach_sentence(breach),
        plain => {
            let options = serde_saphyr::render_options! {
                formatter: &serde_saphyr::UserMessageFormatter,
                snippets: serde_saphyr::SnippetMode::Off,
            };
            plain_message(&plain.render_with_options(options))
        }
    }
}

/// The limit a YAML file went past, as its writer can act on it.
fn breach_sentence(breach: &serde_saphyr::budget::BudgetBreach) -> String {
    use serde_saphyr::budget::BudgetBreach;
    match breach {
        BudgetBreach::Depth { depth } => {
            format!("the YAML nests lists and maps more than {} levels deep", depth.saturating_sub(1))
        }
        BudgetBreach::Aliases { .. } | BudgetBreach::Anchors { .. } => {
            "the YAML uses too many anchors or aliases (`&name`, `*name`)".into()
        }
        _ => "the YAML is too large or too complex to read".into(),
    }
}

/// The first line of the parser's message, without the position it appends.
fn plain_message(text: &str) -> String {
    let first = text.lines().next().unwrap_or(text);
    let first = match first.strip_prefix("error: line ") {
        Some(rest) => rest.split_once(": ").map(|(_, m)| m).unwrap_or(rest),
        None => first,
    };
    first.split(" at line ").next().unwrap_or(first).to_string()
}

/// Parses a whole YAML (or JSON) document as JSON, with the same rules as [`parse`]; an error
/// is a plain sentence and where the parser stopped.
pub fn parse_json(text: &str) -> Result<Value, (String, Option<SourceSpan>)> {
    serde_saphyr::from_str_with_options::<Value>(text, options())
        .map_err(|e| (message_of(&e), e.location().map(|l| span_of(&l))))
}

fn span_of(at: &serde_saphyr::Location) -> SourceSpan {
    let span = at.span();
    let offset = span.byte_offset().unwrap_or(span.offset()) as usize;
    let len = span.byte_len().unwrap_or(span.len()) as usize;
    SourceSpan::new(offset.into(), len.max(1))
}

impl Node {
    /// The value of `key` when this node is a map.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries().iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
    }

    /// The entries of a map (none for anything else).
    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.value {
            Yaml::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Yaml::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self.value, Yaml::Map(_))
    }

    /// What a person calls this kind of value, for "expected a map, found a list".
    pub fn kind(&self) -> &'static str {
        match self.value {
            Yaml::Null => "nothing",
            Yaml::Bool(_) => "a boolean",
            Yaml::Int(_) | Yaml::Float(_) => "a number",
            Yaml::Str(_) => "a string",
            Yaml::Seq(_) => "a list",
            Yaml::Map(_) => "a map",
        }
    }

    /// The value as JSON (map keys that are not strings are written as their text).
    pub fn to_json(&self) -> Value {
        match &self.value {
            Yaml::Null => Value::Null,
            Yaml::Bool(b) => Value::Bool(*b),
            Yaml::Int(i) => Value::from(*i),
            Yaml::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
            Yaml::Str(s) => Value::String(s.clone()),
            Yaml::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Yaml::Map(entries) => Value::Object(entries.iter().map(|(k, v)| (k.key_text(), v.to_json())).collect()),
        }
    }

    /// A map key as text: a string as it is, any other value as JSON writes it.
    pub fn key_text(&self) -> String {
        match self.to_json() {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }
}

impl<'de> Deserialize<'de> for Yaml {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(YamlVisitor)
    }
}

struct YamlVisitor;

fn node(spanned: Spanned<Yaml>) -> Node {
    Node { span: span_of(&spanned.referenced), value: spanned.value }
}

impl<'de> Visitor<'de> for YamlVisitor {
    type Value = Yaml;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Yaml, E> {
        Ok(Yaml::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Yaml, D::Error> {
        Yaml::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Yaml, E> {
        Ok(Yaml::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Yaml, E> {
        Ok(Yaml::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Yaml, E> {
        Ok(i64::try_from(v).map(Yaml::Int).unwrap_or(Yaml::Float(v as f64)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Yaml, E> {
        Ok(Yaml::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Yaml, E> {
        Ok(Yaml::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Yaml, E> {
        Ok(Yaml::Str(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Yaml, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Yaml>>()? {
            items.push(node(item));
        }
        Ok(Yaml::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Yaml, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Yaml>>()? {
            let value = map.next_value::<Spanned<Yaml>>()?;
            entries.push((node(key), node(value)));
        }
        Ok(Yaml::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text_at<'a>(text: &'a str, node: &Node) -> &'a str {
        &text[node.span.offset()..node.span.offset() + node.span.len()]
    }

    #[test]
    fn every_node_knows_its_place() {
        let text = "plugin: {name: demo, version: 1.0.0}\nworkflows:\n  simple: demo.flows.simple\n  ünï: x.y.z\n";
        let root = parse(text).unwrap();
        let simple = root.get("workflows").unwrap().get("simple").unwrap();
        assert_eq!(text_at(text, simple), "demo.flows.simple");
        let name = root.get("plugin").unwrap().get("name").unwrap();
        assert_eq!(text_at(text, name), "demo");
        let after_unicode = root.get("workflows").unwrap().get("ünï").unwrap();
        assert_eq!(text_at(text, after_unicode), "x.y.z");
    }

    #[test]
    fn keys_keep_their_order_and_values_turn_into_json() {
        let root = parse("b: 1\na: [true, no, 2.5, ~]\n").unwrap();
        let keys: Vec<_> = root.entries().iter().map(|(k, _)| k.as_str().unwrap()).collect();
        assert_eq!(keys, ["b", "a"]);
        assert_eq!(root.to_json(), serde_json::json!({"b": 1, "a": [true, "no", 2.5, null]}));
    }

    #[test]
    fn a_duplicate_key_is_one_plain_sentence() {
        let (message, span) = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(message, "`a` is written twice in the same map");
        assert_eq!(span.unwrap().offset(), 10);
    }

    #[test]
    fn a_syntax_error_has_a_place() {
        let (message, span) = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(!message.is_empty());
        assert!(span.is_some());
    }
}
