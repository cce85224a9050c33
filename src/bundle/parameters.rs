//! A bundle workflow's declared parameters, and the values given to a run checked against
//! them (docs/BUNDLES.md): every problem is found before anything runs and reported
//! in one diagnostic.

use miette::SourceSpan;
use serde_json::{Map, Value};

use super::manifest::WorkflowDecl;
use crate::diagnostic::{Code, Diagnostic, Source};

/// One parameter as `plugin.yaml` declares it.
#[derive(Clone, Debug)]
pub struct ParamDecl {
    pub name: String,
    pub description: String,
    pub default: Option<Value>,
    pub kind: Option<ParamType>,
    /// `required: false` without a default: the workflow gets `()` when it is not given.
    pub required: bool,
    /// Where the declaration is, in `plugin.yaml`.
    pub span: SourceSpan,
}

impl ParamDecl {
    /// Must the run be given this parameter?
    pub fn mandatory(&self) -> bool {
        self.required && self.default.is_none()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Float,
    Boolean,
    List,
    Dict,
}

impl ParamType {
    pub fn parse(s: &str) -> Option<ParamType> {
        Some(match s {
            "string" => ParamType::String,
            "integer" => ParamType::Integer,
            "float" => ParamType::Float,
            "boolean" => ParamType::Boolean,
            "list" => ParamType::List,
            "dict" => ParamType::Dict,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Float => "float",
            ParamType::Boolean => "boolean",
            ParamType::List => "list",
            ParamType::Dict => "dict",
        }
    }

    /// The value as this type: the strings "7", "5.0", "TRUE", "[1]" convert (they come from
    /// `-p` and from YAML written by hand); anything else of the wrong kind is refused with
    /// the reason, worded to follow "`name` ...".
    pub fn convert(self, value: &Value) -> Result<Value, String> {
        let text = value.as_str().map(str::trim);
        let converted = match (self, value) {
            (ParamType::String, Value::String(_)) => Some(value.clone()),
            (ParamType::String, Value::Number(_) | Value::Bool(_)) => Some(Value::String(value.to_string())),
            (ParamType::Integer, Value::Number(n)) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9e15).map(|f| f as i64))
                .map(Value::from),
            (ParamType::Integer, Value::String(_)) => text.and_then(|t| t.parse::<i64>().ok()).map(Value::from),
            (ParamType::Float, Value::Number(n)) => n.as_f64().map(Value::from),
            (ParamType::Float, Value::String(_)) => {
                text.and_then(|t| t.parse::<f64>().ok()).filter(|f| f.is_finite()).map(Value::from)
            }
            (ParamType::Boolean, Value::Bool(_)) => Some(value.clone()),
            (ParamType::Boolean, Value::String(_)) => match text.map(str::to_ascii_lowercase).as_deref() {
                Some("true") => Some(Value::Bool(true)),
                Some("false") => Some(Value::Bool(false)),
                _ => None,
            },
            (ParamType::List, Value::Array(_)) | (ParamType::Dict, Value::Object(_)) => Some(value.clone()),
            (ParamType::List, Value::String(_)) => {
                text.and_then(|t| serde_json::from_str::<Value>(t).ok()).filter(Value::is_array)
            }
            (ParamType::Dict, Value::String(_)) => {
                text.and_then(|t| serde_json::from_str::<Value>(t).ok()).filter(Value::is_object)
            }
            _ => None,
        };
        converted.ok_or_else(|| format!("must be {} {}, not {}", article(self.name()), self.name(), shown(value)))
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// A value as a person recognises it in a message: `"lots"`, `[1,2]`.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text
    }
}

/// The parameters `workflow` runs with: `given` (from `--params` and `-p`) checked against the
/// declarations and laid over the defaults (maps merged key by key, so nested defaults stay).
/// Every problem is in the one diagnostic returned, which points into `manifest`.
pub fn resolve(
    workflow: &WorkflowDecl,
    given: &Map<String, Value>,
    texts: &std::collections::BTreeMap<String, String>,
    manifest: &Source,
) -> Result<Map<String, Value>, Diagnostic> {
    let mut problems: Vec<(String, Option<SourceSpan>)> = Vec::new();
    let declared: Vec<&str> = workflow.parameters.iter().map(|p| p.name.as_str()).collect();
    for name in given.keys().filter(|k| !declared.contains(&k.as_str())) {
        let takes = if declared.is_empty() {
            "it takes no parameters".to_string()
        } else {
            format!("it takes {}", declared.join(", "))
        };
        problems.push((format!("`{name}` is not a parameter of `{}` ({takes})", workflow.name), None));
    }
    let mut resolved = Map::new();
    for decl in &workflow.parameters {
        let value = match (given.get(&decl.name), &decl.default) {
            (Some(value), default) => {
                // `-p v=1.10` for a string: the text as typed, not the number re-printed.
                let typed = match (decl.kind, texts.get(&decl.name)) {
                    (Some(ParamType::String), Some(text)) if value.is_number() || value.is_boolean() => {
                        Value::String(text.clone())
                    }
                    _ => value.clone(),
                };
                let value = &typed;
                let value = match decl.kind.map(|k| k.convert(value)) {
                    Some(Err(why)) => {
                        problems.push((format!("`{}` {why}", decl.name), Some(decl.span)));
                        continue;
                    }
                    Some(Ok(v)) => v,
                    None => value.clone(),
                };
                match default {
                    Some(default) => merged(default, value),
                    None => value,
                }
            }
            (None, Some(default)) => default.clone(),
            (None, None) if !decl.required => Value::Null,
            (None, None) => {
                problems.push((format!("`{}` is mandatory and was not given", decl.name), Some(decl.span)));
                continue;
            }
        };
        resolved.insert(decl.name.clone(), value);
    }
    if problems.is_empty() {
        return Ok(resolved);
    }
    let list = problems.iter().map(|(m, _)| format!("  - {m}")).collect::<Vec<_>>().join("\n");
    let mut d = Diagnostic::plain(
        Code::Parameters,
        format!("workflow `{}` was given wrong parameters; nothing ran:\n{list}", workflow.name),
    )
    .with_help("give parameters with -p NAME=VALUE (repeatable) or --params FILE; `rhaiflow bundle check` lists them");
    d.source = Some(manifest.named());
    d.labels = problems.into_iter().filter_map(|(m, span)| Some((Some(m), span?, true))).collect();
    Err(d)
}

/// `value` laid over `default`: maps key by key (recursively), anything else replaced.
fn merged(default: &Value, value: Value) -> Value {
    match (default, value) {
        (Value::Object(d), Value::Object(v)) => {
            let mut out = d.clone();
            for (k, v) in v {
                let merged = match out.get(&k) {
                    Some(existing) => merged(existing, v),
                    None => v,
                };
                out.insert(k, merged);
            }
            Value::Object(out)
        }
        (_, value) => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::Manifest;
    use serde_json::json;

    const MANIFEST: &str = "plugin: {name: demo, version: 1.0.0}\nworkflows:\n  greet:\n    mapping: demo.flows.greet\n    parameters:\n      target_host: {description: who}\n      greeting: {default: Hello}\n      replicas: {type: integer, default: 2}\n      ratio: {type: float, required: false}\n      verbose: {type: boolean, default: false}\n      options: {default: {loud: false, suffix: \"!\", deep: {a: 1, b: 2}}}\n";

    fn run(given: Value) -> Result<Map<String, Value>, Diagnostic> {
        let m = Manifest::parse("plugin.yaml", MANIFEST).unwrap();
        resolve(m.workflow("greet").unwrap(), given.as_object().unwrap(), &Default::default(), &m.source)
    }

    #[test]
    fn defaults_fill_in_and_nested_maps_merge() {
        let p = run(json!({"target_host": "db1", "options": {"loud": true, "deep": {"b": 3}}})).unwrap();
        assert_eq!(p["greeting"], json!("Hello"));
        assert_eq!(p["replicas"], json!(2));
        assert_eq!(p["ratio"], Value::Null);
        assert_eq!(p["options"], json!({"loud": true, "suffix": "!", "deep": {"a": 1, "b": 3}}));
    }

    #[test]
    fn strings_convert_to_the_declared_type() {
        let p = run(json!({"target_host": "x", "replicas": "7", "ratio": "5.0", "verbose": "TRUE"})).unwrap();
        assert_eq!((&p["replicas"], &p["ratio"], &p["verbose"]), (&json!(7), &json!(5.0), &json!(true)));
    }

    #[test]
    fn missing_undeclared_and_mistyped_are_reported_together() {
        let d = run(json!({"replicas": "lots", "colour": "red", "verbose": 3})).unwrap_err();
        for expected in [
            "`colour` is not a parameter",
            "`target_host` is mandatory",
            "`replicas` must be an integer, not \"lots\"",
            "`verbose` must be a boolean",
        ] {
            assert!(d.message.contains(expected), "{expected} not in {}", d.message);
        }
        assert_eq!(d.labels.len(), 3, "the declared ones point at plugin.yaml");
    }

    #[test]
    fn conversions() {
        assert_eq!(ParamType::String.convert(&json!(42)), Ok(json!("42")));
        assert_eq!(ParamType::List.convert(&json!("[1, 2]")), Ok(json!([1, 2])));
        assert_eq!(ParamType::Dict.convert(&json!("{\"a\": 1}")), Ok(json!({"a": 1})));
        assert!(ParamType::Integer.convert(&json!(2.5)).is_err());
        assert!(ParamType::Dict.convert(&json!([1])).is_err());
    }
}
