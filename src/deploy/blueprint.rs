//! A blueprint (docs/DEPLOYMENTS.md): node types with their hierarchy, properties and
//! interfaces, relationship types, and node templates; read from a spanned YAML tree and
//! validated, every problem pointing at its line.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::SourceSpan;
use serde_json::{Map, Value};

use crate::diagnostic::{Code, Diagnostic, FileProblems, Problems, Source};
use crate::names::{is_identifier, OperationPath};

use crate::yaml::{self, Node, Yaml};

pub const ROOT: &str = "rhaiflow.nodes.Root";
pub const COMPUTE: &str = "rhaiflow.nodes.Compute";
pub const DEPENDS_ON: &str = "rhaiflow.relationships.depends_on";
pub const CONTAINED_IN: &str = "rhaiflow.relationships.contained_in";
pub const CONNECTED_TO: &str = "rhaiflow.relationships.connected_to";

/// What an operation runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Implementation {
    /// Declared without an implementation: a no-op.
    Nothing,
    /// `script: path`, run with `sh` in the blueprint's folder.
    Script(String),
    /// `plugin.module.function` of a bundle: `fn function(ctx, inputs)`.
    Function(OperationPath),
}

/// Where an operation runs (Cloudify's `executor`).
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Executor {
    /// On the queue its host names (a `queue` on the node or a node it is contained in, as
    /// Cloudify's agent on the host), else with the execution.
    #[default]
    HostAgent,
    /// With the execution, whatever its host names (`central_deployment_agent`).
    Central,
    /// On this queue (`queue: NAME`).
    Queue(String),
}

#[derive(Clone, Debug)]
pub struct Operation {
    pub implementation: Implementation,
    pub inputs: Map<String, Value>,
    pub executor: Executor,
    pub span: SourceSpan,
}

/// Operations by `interface.operation` (`lifecycle.create`).
pub type Operations = BTreeMap<String, Operation>;

#[derive(Clone, Debug)]
pub struct NodeType {
    pub derived_from: Option<String>,
    /// Where `derived_from` is written (else the type's own place).
    pub derived_span: SourceSpan,
    /// Property defaults (a property without a default is required).
    pub properties: Vec<(String, Option<Value>)>,
    pub operations: Operations,
    pub span: SourceSpan,
}

#[derive(Clone, Debug)]
pub struct RelationshipType {
    pub derived_from: Option<String>,
    pub source_operations: Operations,
    pub target_operations: Operations,
    pub span: SourceSpan,
}

#[derive(Clone, Debug)]
pub struct RelationshipDecl {
    pub type_name: String,
    pub target: String,
    pub span: SourceSpan,
}

#[derive(Clone, Debug)]
pub struct NodeTemplate {
    pub id: String,
    pub type_name: String,
    /// Where the type is written.
    pub type_span: SourceSpan,
    pub properties: Map<String, Value>,
    pub deploy: usize,
    pub relationships: Vec<RelationshipDecl>,
    pub operations: Operations,
    /// The queue its operations, and those of the nodes contained in it, run on (`queue`:
    /// the host's agent).
    pub queue: Option<String>,
    pub span: SourceSpan,
}

/// A validated blueprint.
#[derive(Clone, Debug)]
pub struct Blueprint {
    /// The folder scripts run in and are found from.
    pub dir: PathBuf,
    pub source: Source,
    pub node_types: HashMap<String, NodeType>,
    pub relationship_types: HashMap<String, RelationshipType>,
    /// In the order written.
    pub templates: Vec<NodeTemplate>,
}

/// Why a blueprint cannot be used: made a diagnostic (`rhaiflow::blueprint`) where it is shown.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[diagnostic(code(rhaiflow::blueprint))]
pub enum BlueprintError {
    #[error("cannot read the blueprint {}: {error}", path.display())]
    Read { path: PathBuf, error: std::io::Error },
    /// Every problem found in it, each at its line.
    #[error("{0}")]
    Invalid(FileProblems),
}

impl From<BlueprintError> for Diagnostic {
    fn from(error: BlueprintError) -> Diagnostic {
        match error {
            BlueprintError::Read { .. } => Diagnostic::plain(Code::Blueprint, error.to_string()),
            BlueprintError::Invalid(problems) => problems.into_diagnostic(Code::Blueprint),
        }
    }
}

fn no_span() -> SourceSpan {
    SourceSpan::new(0.into(), 0)
}

impl Blueprint {
    /// Reads and validates the blueprint at `path`.
    pub fn load(path: &Path) -> Result<Arc<Blueprint>, BlueprintError> {
        let text =
            std::fs::read_to_string(path).map_err(|error| BlueprintError::Read { path: path.to_path_buf(), error })?;
        // A bare file name (`blueprint.yaml`) has the empty parent: its folder is the current one.
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        Blueprint::parse(&path.display().to_string(), &text, dir).map(Arc::new)
    }

    pub fn parse(name: &str, text: &str, dir: PathBuf) -> Result<Blueprint, BlueprintError> {
        let source = Source { name: name.to_string(), text: Arc::from(text) };
        let mut problems = Problems::default();
        let Some(root) = yaml::parse_or_report(text, &mut problems) else {
            return Err(BlueprintError::Invalid(FileProblems { source, problems }));
        };
        let mut blueprint = Blueprint {
            dir,
            source: source.clone(),
            node_types: builtin_node_types(),
            relationship_types: builtin_relationship_types(),
            templates: Vec::new(),
        };
        if !root.is_map() {
            problems.add(format!("a blueprint is a map with node_templates, found {}", root.kind()), root.span);
            return Err(BlueprintError::Invalid(FileProblems { source, problems }));
        }
        yaml::unknown_keys(
            &root,
            &[
                "node_types",
                "node_templates",
                "relationships",
                "description",
                "inputs",
                "tosca_definitions_version",
                "imports",
            ],
            "at the top of the blueprint",
            &mut problems,
        );
        for (key, node) in yaml::map_entries(root.get("node_types"), "node_types", &mut problems) {
            if let Some(t) = read_node_type(node, &mut problems) {
                blueprint.node_types.insert(key, t);
            }
        }
        for (key, node) in yaml::map_entries(root.get("relationships"), "relationships", &mut problems) {
            if let Some(t) = read_relationship_type(node, &mut problems) {
                blueprint.relationship_types.insert(key, t);
            }
        }
        match root.get("node_templates") {
            None => problems.add("the blueprint has no node_templates", root.span),
            Some(_) => {
                for (key, node) in yaml::map_entries(root.get("node_templates"), "node_templates", &mut problems) {
                    if let Some(t) = read_template(&key, node, &mut problems) {
                        blueprint.templates.push(t);
                    }
                }
            }
        }
        blueprint.validate(&mut problems);
        if problems.is_empty() {
            Ok(blueprint)
        } else {
            Err(BlueprintError::Invalid(FileProblems { source, problems }))
        }
    }

    /// Types and targets exist, hierarchies and containment have no cycles, each node is
    /// contained in at most one other.
    fn validate(&self, problems: &mut Problems) {
        self.check_type_derivations(problems);
        let ids: HashSet<&str> = self.templates.iter().map(|t| t.id.as_str()).collect();
        for template in &self.templates {
            self.check_template(template, &ids, problems);
        }
        for template in &self.templates {
            self.check_containment(template, problems);
        }
    }

    /// Node and relationship types derive from defined types, in no cycle; reported in the
    /// order written, whatever order the maps keep.
    fn check_type_derivations(&self, problems: &mut Problems) {
        let mut node_types: Vec<Derivation> = self
            .node_types
            .iter()
            .map(|(n, t)| (n.as_str(), t.derived_from.as_deref(), t.derived_span, t.span))
            .collect();
        node_types.sort_by_key(|(name, _, _, span)| (span.offset(), name.to_string()));
        check_derivations(
            problems,
            "node type",
            &node_types,
            |p| self.node_types.contains_key(p),
            |n| self.node_hierarchy(n).is_some(),
        );
        let mut relationship_types: Vec<Derivation> = self
            .relationship_types
            .iter()
            .map(|(n, t)| (n.as_str(), t.derived_from.as_deref(), t.span, t.span))
            .collect();
        relationship_types.sort_by_key(|(name, _, _, span)| (span.offset(), name.to_string()));
        check_derivations(
            problems,
            "relationship type",
            &relationship_types,
            |p| self.relationship_types.contains_key(p),
            |n| self.relationship_hierarchy(n).is_some(),
        );
    }

    /// A node's type and its relationships' types and targets exist; it is contained in one
    /// node at most.
    fn check_template(&self, template: &NodeTemplate, ids: &HashSet<&str>, problems: &mut Problems) {
        if !self.node_types.contains_key(&template.type_name) {
            problems.add(
                format!("node `{}` has type `{}`, which is not defined", template.id, template.type_name),
                template.span,
            );
        }
        let mut containers = 0;
        for r in &template.relationships {
            if !ids.contains(r.target.as_str()) {
                problems.add(
                    format!("node `{}` relates to `{}`, which is not a node template", template.id, r.target),
                    r.span,
                );
            }
            match self.relationship_hierarchy(&r.type_name) {
                None if !self.relationship_types.contains_key(&r.type_name) => problems.add(
                    format!("relationship type `{}` is not defined (built in: {DEPENDS_ON}, {CONTAINED_IN}, {CONNECTED_TO})", r.type_name),
                    r.span,
                ),
                Some(h) if h.iter().any(|t| t == CONTAINED_IN) => containers += 1,
                _ => {}
            }
            if r.target == template.id {
                problems.add(format!("node `{}` relates to itself", template.id), r.span);
            }
        }
        if containers > 1 {
            problems.add(format!("node `{}` is contained in more than one node", template.id), template.span);
        }
    }

    /// Following `contained_in` from `template` never comes back to a node it passed.
    fn check_containment(&self, template: &NodeTemplate, problems: &mut Problems) {
        let mut seen = vec![template.id.as_str()];
        let mut at = template.id.as_str();
        while let Some(container) = self.container_of(at) {
            if seen.contains(&container) {
                problems.add(format!("contained_in makes a cycle: {} → {container}", seen.join(" → ")), template.span);
                break;
            }
            seen.push(container);
            at = container;
        }
    }

    /// The scripts its operations run (paths in its folder), each once.
    pub fn script_paths(&self) -> std::collections::BTreeSet<String> {
        let types = self.node_types.values().map(|t| &t.operations);
        let relationships = self.relationship_types.values().flat_map(|r| [&r.source_operations, &r.target_operations]);
        let templates = self.templates.iter().map(|t| &t.operations);
        types
            .chain(relationships)
            .chain(templates)
            .flat_map(|operations| operations.values())
            .filter_map(|operation| match &operation.implementation {
                Implementation::Script(path) => Some(path.clone()),
                _ => None,
            })
            .collect()
    }

    /// The queue a node's operations run on by default: its own `queue`, else that of the
    /// nearest node it is contained in (its host's agent).
    pub fn host_queue(&self, id: &str) -> Option<&str> {
        let mut at = id;
        // Containment has no cycle in a valid blueprint; the bound keeps a broken one finite.
        for _ in 0..=self.templates.len() {
            let template = self.templates.iter().find(|t| t.id == at)?;
            if let Some(queue) = &template.queue {
                return Some(queue);
            }
            at = self.container_of(at)?;
        }
        None
    }

    /// The node `id` is contained in, if any.
    pub fn container_of(&self, id: &str) -> Option<&str> {
        let template = self.templates.iter().find(|t| t.id == id)?;
        template.relationships.iter().find(|r| self.is_contained_in(&r.type_name)).map(|r| r.target.as_str())
    }

    pub fn is_contained_in(&self, relationship_type: &str) -> bool {
        self.relationship_hierarchy(relationship_type).is_some_and(|h| h.iter().any(|t| t == CONTAINED_IN))
    }

    /// `[Root, ..., name]`; `None` for an unknown type or a cycle.
    pub fn node_hierarchy(&self, name: &str) -> Option<Vec<String>> {
        hierarchy(name, |n| self.node_types.get(n).map(|t| t.derived_from.clone()))
    }

    pub fn relationship_hierarchy(&self, name: &str) -> Option<Vec<String>> {
        hierarchy(name, |n| self.relationship_types.get(n).map(|t| t.derived_from.clone()))
    }

    /// A node's property defaults and operations, its type's ancestors first, then its own.
    pub fn resolved_node(&self, template: &NodeTemplate) -> (Map<String, Value>, Operations) {
        let mut properties = Map::new();
        let mut operations = Operations::new();
        for name in self.node_hierarchy(&template.type_name).unwrap_or_default() {
            let t = &self.node_types[&name];
            for (key, default) in &t.properties {
                if let Some(default) = default {
                    properties.insert(key.clone(), default.clone());
                }
            }
            operations.extend(t.operations.clone());
        }
        properties.extend(template.properties.clone());
        operations.extend(template.operations.clone());
        (properties, operations)
    }

    /// A relationship type's source and target operations, ancestors first.
    pub fn resolved_relationship(&self, type_name: &str) -> (Operations, Operations) {
        let (mut source, mut target) = (Operations::new(), Operations::new());
        for name in self.relationship_hierarchy(type_name).unwrap_or_default() {
            let t = &self.relationship_types[&name];
            source.extend(t.source_operations.clone());
            target.extend(t.target_operations.clone());
        }
        (source, target)
    }

    /// Every `plugin.module.function` an operation maps to, with where it is written.
    pub fn functions(&self) -> Vec<(&Implementation, SourceSpan)> {
        let types = self.node_types.values().flat_map(|t| t.operations.values());
        let rels = self
            .relationship_types
            .values()
            .flat_map(|t| t.source_operations.values().chain(t.target_operations.values()));
        let templates = self.templates.iter().flat_map(|t| t.operations.values());
        types
            .chain(rels)
            .chain(templates)
            .filter(|o| matches!(o.implementation, Implementation::Function(_)))
            .map(|o| (&o.implementation, o.span))
            .collect()
    }
}

/// A type's name, its parent, where the parent is written, and where the type is.
type Derivation<'a> = (&'a str, Option<&'a str>, SourceSpan, SourceSpan);

/// Every parent exists, and no type derives from itself through its parents.
fn check_derivations(
    problems: &mut Problems,
    what: &str,
    types: &[Derivation],
    exists: impl Fn(&str) -> bool,
    acyclic: impl Fn(&str) -> bool,
) {
    for (name, parent, parent_span, span) in types {
        let Some(parent) = parent else { continue };
        if !exists(parent) {
            problems.add(format!("{what} `{name}` derives from `{parent}`, which is not defined"), *parent_span);
        } else if !acyclic(name) {
            problems.add(format!("{what} `{name}` is part of a cycle of derived_from"), *span);
        }
    }
}

fn hierarchy(name: &str, parent: impl Fn(&str) -> Option<Option<String>>) -> Option<Vec<String>> {
    let mut chain = vec![name.to_string()];
    let mut at = name.to_string();
    while let Some(next) = parent(&at)? {
        if chain.contains(&next) {
            return None;
        }
        chain.push(next.clone());
        at = next;
    }
    chain.reverse();
    Some(chain)
}

fn builtin_node_types() -> HashMap<String, NodeType> {
    let lifecycle: Operations = ["create", "configure", "start", "stop", "delete"]
        .iter()
        .map(|op| {
            (
                format!("lifecycle.{op}"),
                Operation {
                    implementation: Implementation::Nothing,
                    inputs: Map::new(),
                    executor: Executor::default(),
                    span: no_span(),
                },
            )
        })
        .collect();
    let root = NodeType {
        derived_from: None,
        derived_span: no_span(),
        properties: Vec::new(),
        operations: lifecycle,
        span: no_span(),
    };
    let compute = NodeType {
        derived_from: Some(ROOT.into()),
        derived_span: no_span(),
        properties: Vec::new(),
        operations: Operations::new(),
        span: no_span(),
    };
    HashMap::from([(ROOT.to_string(), root), (COMPUTE.to_string(), compute)])
}

fn builtin_relationship_types() -> HashMap<String, RelationshipType> {
    let t = |parent: Option<&str>| RelationshipType {
        derived_from: parent.map(str::to_string),
        source_operations: Operations::new(),
        target_operations: Operations::new(),
        span: no_span(),
    };
    HashMap::from([
        (DEPENDS_ON.to_string(), t(None)),
        (CONTAINED_IN.to_string(), t(Some(DEPENDS_ON))),
        (CONNECTED_TO.to_string(), t(Some(DEPENDS_ON))),
    ])
}

fn read_node_type(node: &Node, problems: &mut Problems) -> Option<NodeType> {
    if !node.is_map() {
        problems.add(
            format!("a node type is a map (derived_from, properties, interfaces), found {}", node.kind()),
            node.span,
        );
        return None;
    }
    yaml::unknown_keys(node, &["derived_from", "properties", "interfaces", "description"], "in a node type", problems);
    let properties = yaml::map_entries(node.get("properties"), "properties", problems)
        .into_iter()
        .map(|(name, p)| {
            let default = match &p.value {
                Yaml::Map(_) => p.get("default").map(Node::to_json),
                // `port: 8080` is taken as a default too.
                _ => Some(p.to_json()),
            };
            (name, default)
        })
        .collect();
    Some(NodeType {
        derived_from: yaml::text(node.get("derived_from"), "derived_from", problems),
        derived_span: node.get("derived_from").map_or(node.span, |d| d.span),
        properties,
        operations: read_interfaces(node.get("interfaces"), problems),
        span: node.span,
    })
}

fn read_relationship_type(node: &Node, problems: &mut Problems) -> Option<RelationshipType> {
    if !node.is_map() {
        problems.add(format!("a relationship type is a map, found {}", node.kind()), node.span);
        return None;
    }
    yaml::unknown_keys(
        node,
        &["derived_from", "source_interfaces", "target_interfaces", "properties", "description"],
        "in a relationship type",
        problems,
    );
    Some(RelationshipType {
        derived_from: yaml::text(node.get("derived_from"), "derived_from", problems),
        source_operations: read_interfaces(node.get("source_interfaces"), problems),
        target_operations: read_interfaces(node.get("target_interfaces"), problems),
        span: node.span,
    })
}

fn read_template(id: &str, node: &Node, problems: &mut Problems) -> Option<NodeTemplate> {
    if !is_identifier(id) {
        problems.add(format!("`{id}` cannot name a node: use letters, digits and `_`"), node.span);
        return None;
    }
    if !node.is_map() {
        problems.add(format!("node `{id}` must be a map with a `type`, found {}", node.kind()), node.span);
        return None;
    }
    yaml::unknown_keys(
        node,
        &["type", "properties", "instances", "relationships", "interfaces", "capabilities", "queue"],
        &format!("in node `{id}`"),
        problems,
    );
    let Some(type_name) = yaml::text(node.get("type"), "type", problems) else {
        problems.add(format!("node `{id}` has no `type`"), node.span);
        return None;
    };
    let type_span = node.get("type").map_or(node.span, |t| t.span);
    let properties = match node.get("properties") {
        None => Map::new(),
        Some(p) => match p.to_json() {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => {
                problems.add("`properties` must be a map", p.span);
                Map::new()
            }
        },
    };
    let mut deploy = 1;
    if let Some(instances) = node.get("instances") {
        match instances.get("deploy").map(|d| &d.value) {
            Some(Yaml::Int(n)) if *n >= 0 => deploy = *n as usize,
            _ => problems.add("`instances` must be `{deploy: N}` with N ≥ 0", instances.span),
        }
    }
    let mut relationships = Vec::new();
    if let Some(rels) = node.get("relationships") {
        match &rels.value {
            Yaml::Seq(items) => {
                for item in items {
                    let type_name = yaml::text(item.get("type"), "type", problems);
                    let target = yaml::text(item.get("target"), "target", problems);
                    match (type_name, target) {
                        (Some(type_name), Some(target)) => {
                            relationships.push(RelationshipDecl { type_name, target, span: item.span })
                        }
                        _ => problems.add("a relationship is `{type: ..., target: ...}`", item.span),
                    }
                }
            }
            _ => problems.add("`relationships` must be a list of `{type, target}`", rels.span),
        }
    }
    Some(NodeTemplate {
        id: id.to_string(),
        type_name,
        type_span,
        properties,
        deploy,
        relationships,
        operations: read_interfaces(node.get("interfaces"), problems),
        queue: read_queue(node, problems),
        span: node.span,
    })
}

/// A `queue: NAME` (a non-empty string), if any.
fn read_queue(node: &Node, problems: &mut Problems) -> Option<String> {
    let queue = yaml::text(node.get("queue"), "queue", problems)?;
    if queue.trim().is_empty() {
        problems.add("`queue` names a queue: it cannot be empty", node.get("queue").map_or(node.span, |q| q.span));
        return None;
    }
    Some(queue)
}

/// `executor: host_agent | central_deployment_agent` and `queue: NAME` of an operation.
fn read_executor(node: &Node, problems: &mut Problems) -> Executor {
    let executor = yaml::text(node.get("executor"), "executor", problems);
    let queue = read_queue(node, problems);
    match (executor.as_deref(), queue) {
        (Some("central_deployment_agent"), Some(_)) => {
            problems.add(
                "an operation runs either on a `queue` or with the execution (`central_deployment_agent`), not both",
                node.span,
            );
            Executor::Central
        }
        (Some("central_deployment_agent"), None) => Executor::Central,
        (Some("host_agent") | None, Some(queue)) => Executor::Queue(queue),
        (Some("host_agent") | None, None) => Executor::HostAgent,
        (Some(other), _) => {
            problems.add(
                format!("`executor` is `host_agent` or `central_deployment_agent`, found `{other}`"),
                node.get("executor").map_or(node.span, |e| e.span),
            );
            Executor::HostAgent
        }
    }
}

/// `interfaces: {lifecycle: {create: ..., configure: ...}}` as `lifecycle.create`, ...
fn read_interfaces(node: Option<&Node>, problems: &mut Problems) -> Operations {
    let mut operations = Operations::new();
    for (interface, ops) in yaml::map_entries(node, "interfaces", problems) {
        for (op, mapping) in yaml::map_entries(Some(ops), &interface, problems) {
            if let Some(operation) = read_operation(mapping, problems) {
                operations.insert(format!("{interface}.{op}"), operation);
            }
        }
    }
    operations
}

/// `demo.ops.create`, `scripts/x.sh`, `{script: .., inputs: ..}` or
/// `{implementation: .., inputs: ..}`.
fn read_operation(node: &Node, problems: &mut Problems) -> Option<Operation> {
    let (implementation, inputs, executor) = match &node.value {
        Yaml::Null => (Implementation::Nothing, Map::new(), Executor::default()),
        Yaml::Str(s) => (implementation_of(s, false, node.span, problems)?, Map::new(), Executor::default()),
        Yaml::Map(_) => {
            yaml::unknown_keys(
                node,
                &["script", "implementation", "inputs", "max_retries", "retry_interval", "executor", "queue"],
                "in an operation",
                problems,
            );
            let implementation = match (node.get("script"), node.get("implementation")) {
                (Some(s), None) => implementation_of(s.as_str()?, true, s.span, problems)?,
                (None, Some(i)) => implementation_of(i.as_str()?, false, i.span, problems)?,
                (None, None) => Implementation::Nothing,
                (Some(_), Some(_)) => {
                    problems.add("an operation has either `script` or `implementation`, not both", node.span);
                    return None;
                }
            };
            let inputs = match node.get("inputs").map(Node::to_json) {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m,
                Some(_) => {
                    problems.add("`inputs` must be a map", node.span);
                    Map::new()
                }
            };
            (implementation, inputs, read_executor(node, problems))
        }
        _ => {
            problems.add(
                format!("an operation is `plugin.module.function`, a script path, or a map; found {}", node.kind()),
                node.span,
            );
            return None;
        }
    };
    Some(Operation { implementation, inputs, executor, span: node.span })
}

fn implementation_of(text: &str, script: bool, span: SourceSpan, problems: &mut Problems) -> Option<Implementation> {
    if script || text.contains('/') || text.ends_with(".sh") {
        if text.starts_with('/') || text.split('/').any(|p| p == "..") {
            problems.add(format!("script `{text}` must be a path inside the blueprint's folder"), span);
            return None;
        }
        return Some(Implementation::Script(text.to_string()));
    }
    match OperationPath::parse(text) {
        Some(path) => Some(Implementation::Function(path)),
        None => {
            problems.add(format!("`{text}` is neither `plugin.module.function` nor a script path"), span);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Blueprint, Diagnostic> {
        Ok(Blueprint::parse("bp.yaml", text, PathBuf::from("/tmp"))?)
    }

    #[test]
    fn hierarchy_properties_and_operations_are_inherited() {
        let bp = parse(
            "node_types:\n  my.Db:\n    derived_from: rhaiflow.nodes.Root\n    properties: {port: {default: 5432}, name: {}}\n    interfaces:\n      lifecycle:\n        configure: {script: scripts/c.sh, inputs: {mode: fast}}\nnode_templates:\n  vm: {type: rhaiflow.nodes.Compute}\n  db:\n    type: my.Db\n    properties: {name: main}\n    instances: {deploy: 2}\n    relationships: [{type: rhaiflow.relationships.contained_in, target: vm}]\n    interfaces: {lifecycle: {start: demo.ops.start}}\n",
        )
        .unwrap();
        assert_eq!(bp.node_hierarchy("my.Db").unwrap(), [ROOT, "my.Db"]);
        let db = &bp.templates[1];
        let (props, ops) = bp.resolved_node(db);
        assert_eq!(Value::Object(props), serde_json::json!({"port": 5432, "name": "main"}));
        assert_eq!(ops["lifecycle.configure"].implementation, Implementation::Script("scripts/c.sh".into()));
        assert_eq!(ops["lifecycle.create"].implementation, Implementation::Nothing);
        assert!(matches!(ops["lifecycle.start"].implementation, Implementation::Function(_)));
        assert_eq!(bp.container_of("db"), Some("vm"));
        assert_eq!(db.deploy, 2);
    }

    #[test]
    fn unknown_types_targets_and_containment_cycles_are_reported_together() {
        let d = parse(
            "node_templates:\n  a:\n    type: nope.Type\n  b:\n    type: rhaiflow.nodes.Root\n    relationships: [{type: rhaiflow.relationships.contained_in, target: c}, {type: rhaiflow.relationships.connected_to, target: ghost}]\n  c:\n    type: rhaiflow.nodes.Root\n    relationships: [{type: rhaiflow.relationships.contained_in, target: b}]\n",
        )
        .unwrap_err();
        for expected in ["`nope.Type`", "`ghost`", "cycle"] {
            assert!(d.message.contains(expected), "{expected} not in {}", d.message);
        }
    }

    // A node's queue is its operations' and those of the nodes on it (the host's agent); an
    // operation says otherwise with its own queue or `executor`.
    #[test]
    fn a_node_s_queue_reaches_the_nodes_contained_in_it_and_operations_can_say_otherwise() {
        let bp = parse(
            "node_templates:\n  vm: {type: rhaiflow.nodes.Compute, queue: vm_agent}\n  db:\n    type: rhaiflow.nodes.Root\n    relationships: [{type: rhaiflow.relationships.contained_in, target: vm}]\n    interfaces:\n      lifecycle:\n        create: {script: c.sh, executor: central_deployment_agent}\n        start: {script: s.sh, queue: gpu}\n        stop: {script: s.sh, executor: host_agent}\n  lone: {type: rhaiflow.nodes.Root}\n",
        )
        .unwrap();
        assert_eq!(
            (bp.host_queue("vm"), bp.host_queue("db"), bp.host_queue("lone")),
            (Some("vm_agent"), Some("vm_agent"), None)
        );
        let (_, ops) = bp.resolved_node(&bp.templates[1]);
        assert_eq!(ops["lifecycle.create"].executor, Executor::Central);
        assert_eq!(ops["lifecycle.start"].executor, Executor::Queue("gpu".into()));
        assert_eq!(ops["lifecycle.stop"].executor, Executor::HostAgent);
    }

    #[test]
    fn a_queue_or_executor_that_cannot_be_is_refused_at_its_line() {
        let d = parse(
            "node_templates:\n  vm:\n    type: rhaiflow.nodes.Compute\n    queue: ''\n    interfaces:\n      lifecycle:\n        create: {script: c.sh, executor: elsewhere}\n        start: {script: s.sh, queue: gpu, executor: central_deployment_agent}\n",
        )
        .unwrap_err();
        for expected in [
            "`queue` names a queue: it cannot be empty",
            "`executor` is `host_agent` or `central_deployment_agent`, found `elsewhere`",
            "either on a `queue` or with the execution",
        ] {
            assert!(d.message.contains(expected), "{expected} not in {}", d.message);
        }
    }

    // An unknown key that is not text was shown as `?` here, as written in manifests.
    #[test]
    fn an_unknown_key_that_is_not_text_is_named_as_written() {
        let d = parse("node_templates:\n  vm: {type: rhaiflow.nodes.Compute}\n7: x\n").unwrap_err();
        assert!(d.message.contains("unknown key `7` at the top"), "{}", d.message);
    }

    #[test]
    fn a_blueprint_that_cannot_be_read_says_which_file() {
        let error = Blueprint::load(Path::new("/nonexistent/bp.yaml")).unwrap_err();
        assert!(matches!(error, BlueprintError::Read { .. }));
        let d = Diagnostic::from(error);
        assert_eq!(d.code, Code::Blueprint);
        assert!(d.message.starts_with("cannot read the blueprint /nonexistent/bp.yaml: "), "{}", d.message);
    }
}
