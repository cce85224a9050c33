//! Parses arbitrary text as YAML, as a bundle's `plugin.yaml` and as a blueprint, renders
//! every diagnostic (they point into the text), and builds a deployment of a blueprint that
//! validated. Any problem must be a diagnostic: a panic, an abort or a hang is a finding.

#![no_main]

use std::path::PathBuf;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rhaiflow::fuzzing::{defaults, parse_json, parse_yaml, Blueprint, Deployment, Manifest};
use rhaiflow::diagnostic::{render, Diagnostic};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(node) = parse_yaml(text) {
        let _ = node.to_json();
    }
    let _ = parse_json(text);
    match Manifest::parse("plugin.yaml", text) {
        Ok(manifest) => {
            for workflow in &manifest.workflows {
                let _ = defaults(workflow);
            }
        }
        Err(error) => {
            let _ = render(&Diagnostic::from(error), false);
        }
    }
    match Blueprint::parse("blueprint.yaml", text, PathBuf::from("/nonexistent")) {
        Ok(blueprint) => deploy(blueprint),
        Err(error) => {
            let _ = render(&Diagnostic::from(error), false);
        }
    }
});

/// What `rhaiflow deployments create` does with a valid blueprint.
fn deploy(blueprint: Blueprint) {
    for template in &blueprint.templates {
        let _ = blueprint.resolved_node(template);
        let _ = blueprint.node_hierarchy(&template.type_name);
        for relationship in &template.relationships {
            let _ = blueprint.resolved_relationship(&relationship.type_name);
        }
    }
    let _ = blueprint.functions();
    let deployment = Deployment::new("fuzzed", Arc::new(blueprint));
    let _ = deployment.snapshot();
}
