//! Workflow parameters from `-p KEY=VALUE` and `--params FILE` (YAML or JSON); `-p` wins.

use std::path::Path;

use crate::diagnostic::{Code, Diagnostic};
use serde_json::{Map, Value};

/// A `-p` value: JSON when it parses as JSON (42, true, [1,2], {"a":1}), else the string.
pub fn parse_value(raw: &str) -> Value {
    serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_string()))
}

/// A parameter nested past the limit is refused before anything runs: a workflow would
/// overflow its stack printing or comparing it. JSON deeper than the parser's own limit (128)
/// is not parsed at all, so it is recognised by the parser's complaint, not taken as a string.
fn check_nesting(key: &str, value: &Value, raw: Option<&str>) -> Result<(), Diagnostic> {
    let what = || format!("the parameter `{key}`");
    let too_deep_for_the_parser = raw.is_some_and(|raw| {
        serde_json::from_str::<Value>(raw).is_err_and(|e| e.to_string().starts_with("recursion limit exceeded"))
    });
    let checked = match too_deep_for_the_parser {
        true => Err(crate::value::NestedTooDeep { what: what() }),
        false => crate::value::check_json_nesting(value, what),
    };
    checked.map_err(|e| Diagnostic::plain(Code::ParamTooDeep, e.to_string()))
}

/// The text of each `-p KEY=VALUE` as typed: a parameter declared as a string keeps it
/// (`-p version=1.10` is "1.10", not the number 1.1).
pub fn texts(pairs: &[String]) -> std::collections::BTreeMap<String, String> {
    pairs.iter().filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A parameters file that does not parse, pointing where the parser stopped.
fn unreadable_params(file: &Path, text: &str, why: &str, span: Option<miette::SourceSpan>) -> Diagnostic {
    let name = file.display().to_string();
    let mut d = Diagnostic::plain(Code::ParamsFile, format!("cannot read the parameters in {name}: {why}"));
    if let Some(span) = span {
        d.source = Some(miette::NamedSource::new(name, text.to_string()));
        d.labels.push((None, span, true));
    }
    d
}

pub fn collect(pairs: &[String], file: Option<&Path>) -> Result<Map<String, Value>, Diagnostic> {
    let mut params = Map::new();
    if let Some(file) = file {
        let text = std::fs::read_to_string(file).map_err(|e| {
            Diagnostic::plain(Code::ParamsFile, format!("cannot read the parameters file {}: {e}", file.display()))
        })?;
        let value = crate::yaml::parse_json(&text).map_err(|(why, span)| unreadable_params(file, &text, &why, span))?;
        match value {
            Value::Object(map) => params = map,
            Value::Null => {}
            _ => {
                return Err(Diagnostic::plain(
                    Code::ParamsFile,
                    format!("{} must hold a map of parameter names to values", file.display()),
                ))
            }
        }
    }
    for pair in pairs {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(Diagnostic::plain(Code::Param, format!("-p {pair}: expected KEY=VALUE"))
                .with_help("for example: -p region=eu-west -p replicas=3 -p 'tags=[\"a\",\"b\"]'"));
        };
        if key.is_empty() {
            return Err(Diagnostic::plain(Code::Param, format!("-p {pair}: the parameter name is empty")));
        }
        let parsed = parse_value(value);
        check_nesting(key, &parsed, parsed.is_string().then_some(value))?;
        params.insert(key.to_string(), parsed);
    }
    for (key, value) in &params {
        check_nesting(key, value, None)?;
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_json_when_they_parse_and_strings_otherwise() {
        assert_eq!(parse_value("42"), Value::from(42));
        assert_eq!(parse_value("true"), Value::from(true));
        assert_eq!(parse_value("[1,2]"), serde_json::json!([1, 2]));
        assert_eq!(parse_value("{\"a\":1}"), serde_json::json!({"a": 1}));
        assert_eq!(parse_value("eu-west"), Value::from("eu-west"));
        assert_eq!(parse_value(""), Value::from(""));
    }

    #[test]
    fn command_line_pairs_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.yaml");
        std::fs::write(&file, "region: us\nreplicas: 2\nnested: {a: 1}\n").unwrap();
        let params = collect(&["region=eu".to_string()], Some(&file)).unwrap();
        assert_eq!(params["region"], Value::from("eu"));
        assert_eq!(params["replicas"], Value::from(2));
        assert_eq!(params["nested"], serde_json::json!({"a": 1}));
    }

    #[test]
    fn a_pair_without_equals_sign_is_refused() {
        let err = collect(&["region".to_string()], None).unwrap_err();
        assert!(err.message.contains("expected KEY=VALUE"), "{}", err.message);
    }
}
