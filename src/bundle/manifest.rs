//! `plugin.yaml`: the bundle's name, version and workflows with their declared parameters,
//! read from a spanned YAML tree so every problem points at its line.

use std::sync::Arc;

use miette::SourceSpan;
use serde_json::Value;

use super::parameters::{ParamDecl, ParamType};

use crate::diagnostic::{Code, Diagnostic, FileProblems, Problems, Source};
use crate::names::{is_identifier, is_version, OperationPath};
use crate::yaml::{self, Node, Yaml};

/// A validated `plugin.yaml`.
#[derive(Clone, Debug)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub description: String,
    /// In the order written.
    pub workflows: Vec<WorkflowDecl>,
    /// The file's text, for diagnostics that point into it.
    pub source: Source,
}

/// `name: plugin.module.function`, with its parameters.
#[derive(Clone, Debug)]
pub struct WorkflowDecl {
    pub name: String,
    pub description: String,
    pub mapping: Mapping,
    pub parameters: Vec<ParamDecl>,
}

/// Where a workflow's function lives, and where the manifest says so.
#[derive(Clone, Debug)]
pub struct Mapping {
    pub path: OperationPath,
    pub span: SourceSpan,
}

/// Why a `plugin.yaml` cannot be used: made a diagnostic (`rhaiflow::manifest`) where it is shown.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[diagnostic(code(rhaiflow::manifest))]
pub enum ManifestError {
    /// Every problem found in it, each at its line.
    #[error("{0}")]
    Invalid(FileProblems),
}

impl From<ManifestError> for Diagnostic {
    fn from(error: ManifestError) -> Diagnostic {
        match error {
            ManifestError::Invalid(problems) => problems.into_diagnostic(Code::Manifest),
        }
    }
}

impl Manifest {
    /// Parses and validates `text` (the contents of `name`); every problem found is in the one
    /// diagnostic returned.
    pub fn parse(name: &str, text: &str) -> Result<Manifest, ManifestError> {
        let source = Source { name: name.to_string(), text: Arc::from(text) };
        let mut problems = Problems::default();
        let Some(root) = yaml::parse_or_report(text, &mut problems) else {
            return Err(ManifestError::Invalid(FileProblems { source, problems }));
        };
        let manifest = read_manifest(&root, &source, &mut problems);
        match manifest {
            Some(m) if problems.is_empty() => Ok(m),
            _ => Err(ManifestError::Invalid(FileProblems { source, problems })),
        }
    }

    pub fn workflow(&self, name: &str) -> Option<&WorkflowDecl> {
        self.workflows.iter().find(|w| w.name == name)
    }

    /// "greet, simple": for "unknown workflow" messages.
    pub fn workflow_names(&self) -> String {
        self.workflows.iter().map(|w| w.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

fn read_manifest(root: &Node, source: &Source, problems: &mut Problems) -> Option<Manifest> {
    if !root.is_map() {
        problems.add(format!("expected a map with `plugin` and `workflows`, found {}", root.kind()), root.span);
        return None;
    }
    yaml::unknown_keys(root, &["plugin", "workflows"], "at the top of plugin.yaml", problems);
    let Some(plugin) = root.get("plugin") else {
        problems.add("`plugin` is missing: give `plugin: {name: ..., version: ...}`", root.span);
        return None;
    };
    if !plugin.is_map() {
        problems.add(format!("`plugin` must be a map with `name` and `version`, found {}", plugin.kind()), plugin.span);
        return None;
    }
    yaml::unknown_keys(plugin, &["name", "version", "description"], "in `plugin`", problems);
    let name = match plugin.get("name") {
        Some(n) => match n.as_str() {
            Some(s) if is_identifier(s) => Some(s.to_string()),
            _ => {
                problems.add("the plugin's name must be a word of letters, digits and `_` (it is how scripts import its modules)", n.span);
                None
            }
        },
        None => {
            problems.add("`plugin.name` is missing", plugin.span);
            None
        }
    };
    let version = match plugin.get("version") {
        Some(v) => match &v.value {
            Yaml::Str(s) if is_version(s) => Some(s.clone()),
            Yaml::Int(i) => Some(i.to_string()),
            Yaml::Float(_) => {
                problems.add("write the version in quotes (\"1.10\"): as a number YAML reads 1.10 as 1.1", v.span);
                None
            }
            _ => {
                problems.add("the version must look like 1.0.0 (digits, dots, letters and `-`)", v.span);
                None
            }
        },
        None => {
            problems.add("`plugin.version` is missing", plugin.span);
            None
        }
    };
    let description = yaml::optional_text(plugin, "description", problems);
    let mut workflows = Vec::new();
    match root.get("workflows") {
        None => problems.add("`workflows` is missing: map workflow names to `plugin.module.function`", root.span),
        Some(w) if !w.is_map() => {
            problems.add(format!("`workflows` must map names to functions, found {}", w.kind()), w.span)
        }
        Some(w) => {
            for (key, value) in w.entries() {
                let Some(wname) = key.as_str().filter(|k| is_identifier(k)) else {
                    problems.add("a workflow's name must be a word of letters, digits and `_`", key.span);
                    continue;
                };
                if let Some(decl) = read_workflow(wname, value, name.as_deref(), problems) {
                    workflows.push(decl);
                }
            }
        }
    }
    Some(Manifest { name: name?, version: version?, description, workflows, source: source.clone() })
}

fn read_workflow(name: &str, node: &Node, plugin: Option<&str>, problems: &mut Problems) -> Option<WorkflowDecl> {
    let (mapping_node, parameters, description) = match &node.value {
        Yaml::Str(_) => (node, Vec::new(), String::new()),
        Yaml::Map(_) => {
            yaml::unknown_keys(
                node,
                &["mapping", "parameters", "description"],
                &format!("in workflow `{name}`"),
                problems,
            );
            let Some(mapping) = node.get("mapping") else {
                problems.add(format!("workflow `{name}` has no `mapping: plugin.module.function`"), node.span);
                return None;
            };
            let parameters = match node.get("parameters") {
                None => Vec::new(),
                Some(p) if matches!(p.value, Yaml::Null) => Vec::new(),
                Some(p) if !p.is_map() => {
                    problems.add(format!("`parameters` must map names to declarations, found {}", p.kind()), p.span);
                    Vec::new()
                }
                Some(p) => p.entries().iter().filter_map(|(k, v)| read_parameter(name, k, v, problems)).collect(),
            };
            (mapping, parameters, yaml::optional_text(node, "description", problems))
        }
        _ => {
            problems.add(
                format!(
                    "workflow `{name}` must be `plugin.module.function` or a map with `mapping`, found {}",
                    node.kind()
                ),
                node.span,
            );
            return None;
        }
    };
    let mapping = read_mapping(mapping_node, plugin, problems)?;
    Some(WorkflowDecl { name: name.to_string(), description, mapping, parameters })
}

fn read_mapping(node: &Node, plugin: Option<&str>, problems: &mut Problems) -> Option<Mapping> {
    let Some(text) = node.as_str() else {
        problems.add(format!("a mapping is `plugin.module.function`, found {}", node.kind()), node.span);
        return None;
    };
    let Some(path) = OperationPath::parse(text) else {
        problems.add(format!("`{text}` is not `plugin.module.function` (e.g. demo.flows.deploy)"), node.span);
        return None;
    };
    if let Some(plugin) = plugin.filter(|p| *p != path.plugin) {
        problems.add(format!("`{text}` names plugin `{}`, but this bundle is `{plugin}`", path.plugin), node.span);
        return None;
    }
    Some(Mapping { path, span: node.span })
}

fn read_parameter(workflow: &str, key: &Node, node: &Node, problems: &mut Problems) -> Option<ParamDecl> {
    let Some(name) = key.as_str().filter(|k| is_identifier(k)) else {
        problems.add("a parameter's name must be a word of letters, digits and `_`", key.span);
        return None;
    };
    let mut decl = ParamDecl {
        name: name.to_string(),
        description: String::new(),
        default: None,
        kind: None,
        required: true,
        span: key.span,
    };
    match &node.value {
        Yaml::Null => return Some(decl),
        Yaml::Map(_) => {}
        _ => {
            problems.add(
                format!(
                    "parameter `{name}` of `{workflow}` must be a map (description, default, type, required), found {}",
                    node.kind()
                ),
                node.span,
            );
            return None;
        }
    }
    yaml::unknown_keys(
        node,
        &["description", "default", "type", "required"],
        &format!("in parameter `{name}`"),
        problems,
    );
    decl.description = yaml::optional_text(node, "description", problems);
    if let Some(t) = node.get("type") {
        match t.as_str().and_then(ParamType::parse) {
            Some(kind) => decl.kind = Some(kind),
            None => {
                let given = t.to_json();
                problems.add(
                    format!(
                        "`type: {}` is not one of string, integer, float, boolean, list, dict",
                        given.as_str().map(str::to_string).unwrap_or(given.to_string())
                    ),
                    t.span,
                )
            }
        }
    }
    if let Some(r) = node.get("required") {
        match r.value {
            Yaml::Bool(b) => decl.required = b,
            _ => problems.add("`required` must be true or false", r.span),
        }
    }
    if let Some(d) = node.get("default") {
        let value = d.to_json();
        match decl.kind.map(|k| k.convert(&value)) {
            Some(Err(why)) => problems.add(format!("the default of `{name}` {why}"), d.span),
            Some(Ok(converted)) => decl.default = Some(converted),
            None => decl.default = Some(value),
        }
    }
    Some(decl)
}

/// The default values of a workflow's parameters, as JSON, for docs and `bundle check`.
pub fn defaults(workflow: &WorkflowDecl) -> serde_json::Map<String, Value> {
    workflow.parameters.iter().filter_map(|p| Some((p.name.clone(), p.default.clone()?))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEMO: &str = "plugin: {name: demo, version: 1.0.0, description: \"d\"}\nworkflows:\n  simple: demo.flows.simple\n  greet:\n    mapping: demo.flows.greet\n    parameters:\n      target_host: {description: \"who\"}\n      replicas: {type: integer, default: 2}\n      options: {default: {loud: false}}\n";

    #[test]
    fn a_manifest_with_both_kinds_of_mapping() {
        let m = Manifest::parse("plugin.yaml", DEMO).unwrap();
        assert_eq!((m.name.as_str(), m.version.as_str()), ("demo", "1.0.0"));
        assert_eq!(m.workflow_names(), "simple, greet");
        let greet = m.workflow("greet").unwrap();
        assert_eq!((greet.mapping.path.module.as_str(), greet.mapping.path.function.as_str()), ("flows", "greet"));
        let names: Vec<_> = greet.parameters.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["target_host", "replicas", "options"]);
        assert_eq!(defaults(greet)["options"], serde_json::json!({"loud": false}));
    }

    #[test]
    fn every_problem_is_reported_at_its_line() {
        let text = "plugin: {name: demo, version: 1.0.0, colour: red}\nworkflows:\n  a: demo.flows\n  b: other.flows.b\n  c:\n    mapping: demo.x.c\n    parameters:\n      n: {type: integr}\n      m: {type: integer, default: lots}\n";
        let d = Diagnostic::from(Manifest::parse("plugin.yaml", text).unwrap_err());
        assert!(d.message.contains("has 5 problems"), "{}", d.message);
        for expected in ["colour", "demo.flows", "other", "integr", "lots"] {
            assert!(d.message.contains(expected), "{expected} not in {}", d.message);
        }
        assert_eq!(d.labels.len(), 5);
        let first_line_end = text.find('\n').unwrap();
        assert!(d.labels[0].1.offset() < first_line_end);
    }

    #[test]
    fn mappings_with_folders() {
        let text = "plugin: {name: demo, version: 2}\nworkflows:\n  boot: demo.aws.ec2.boot\n";
        let m = Manifest::parse("plugin.yaml", text).unwrap();
        assert_eq!(m.version, "2");
        assert_eq!(m.workflows[0].mapping.path.module, "aws/ec2");
    }

    #[test]
    fn an_unquoted_decimal_version_is_refused() {
        let d = Manifest::parse("plugin.yaml", "plugin: {name: demo, version: 1.10}\nworkflows: {a: demo.f.a}\n")
            .unwrap_err();
        assert!(d.to_string().contains("in quotes"), "{d}");
    }
}
