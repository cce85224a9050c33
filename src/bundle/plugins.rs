//! The bundles a blueprint's operations call (`create: demo.ops.create`): each must be the
//! bundle being run or an installed one, and define the function in the module named.

use crate::diagnostic::Problems;
use crate::diagnostic::{Code, Diagnostic};
use crate::script::ModuleRoot;

use super::registry;
use crate::deploy::{Blueprint, Implementation};
use crate::names::OperationPath;

/// The module roots the blueprint's operation functions need, besides `known`; every
/// missing bundle, module or function is a problem pointing at the blueprint's line.
pub fn resolve(blueprint: &Blueprint, known: &[ModuleRoot]) -> Result<Vec<ModuleRoot>, Diagnostic> {
    let mut problems = Problems::default();
    let mut needed: Vec<ModuleRoot> = Vec::new();
    let engine = rhai::Engine::new_raw();
    for (implementation, span) in blueprint.functions() {
        let Implementation::Function(mapping) = implementation else { continue };
        let OperationPath { plugin, module, function } = mapping;
        let root = known
            .iter()
            .chain(&needed)
            .find(|r| r.name == *plugin)
            .cloned()
            .or_else(|| registry::find(plugin).map(|i| ModuleRoot { name: plugin.clone(), dir: i.dir }));
        let Some(root) = root else {
            problems.add(format!("`{mapping}`: no bundle `{plugin}` is installed (`rhaiflow bundle install`)"), span);
            continue;
        };
        let file = root.dir.join(format!("{module}.rhai"));
        let defined = std::fs::read_to_string(&file)
            .ok()
            .and_then(|text| engine.compile(text).ok())
            .is_some_and(|ast| ast.iter_functions().any(|f| f.name == function));
        if !defined {
            problems.add(format!("`{mapping}`: bundle `{plugin}` has no fn {function} in {module}.rhai"), span);
            continue;
        }
        if !known.iter().chain(&needed).any(|r| r.name == *plugin) {
            needed.push(root);
        }
    }
    if problems.is_empty() {
        Ok(needed)
    } else {
        Err(problems.into_diagnostic(Code::Blueprint, &blueprint.source))
    }
}
