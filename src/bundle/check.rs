//! `rhaiflow bundle check`: everything that can be known about a bundle without running it.
//! The manifest is valid, every module compiles, and every workflow maps to a function whose
//! parameters are exactly the declared ones (plus `ctx`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rhai::AST;

use super::Bundle;
use crate::diagnostic::Problems;
use crate::diagnostic::{Code, Diagnostic, Source};
use crate::script::{self, Limits};

/// What a clean check found, for its summary line.
#[derive(Debug)]
pub struct Checked {
    pub modules: usize,
    pub tests: usize,
}

/// Every problem of `bundle`, each a diagnostic; none means it is fit to pack and run.
pub fn check(bundle: &Bundle) -> Result<Checked, Vec<Diagnostic>> {
    let engine =
        Arc::new(script::build_engine(&std::sync::Weak::new(), &Limits::default(), vec![bundle.module_root()]));
    let mut diagnostics = Vec::new();
    let mut compiled: Vec<(PathBuf, AST)> = Vec::new();
    let files = rhai_files(&bundle.dir);
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                diagnostics.push(Diagnostic::plain(Code::Module, format!("cannot read {}: {e}", file.display())));
                continue;
            }
        };
        let source = Source { name: shown(&bundle.dir, file), text: Arc::from(text.as_str()) };
        match script::compile::compile(&engine, &source) {
            Ok(ast) => compiled.push((file.clone(), ast)),
            Err(d) => diagnostics.push(d),
        }
    }
    let mut problems = Problems::default();
    for workflow in &bundle.manifest.workflows {
        let (mapping, span) = (&workflow.mapping.path, workflow.mapping.span);
        let file = bundle.module_file(&mapping.module);
        let Some((_, ast)) = compiled.iter().find(|(f, _)| *f == file) else {
            if !file.exists() {
                problems.add(format!("workflow `{}`: there is no module {}.rhai", workflow.name, mapping.module), span);
            }
            continue;
        };
        let Some(function) = ast.iter_functions().find(|f| f.name == mapping.function) else {
            problems.add(
                format!("workflow `{}`: {}.rhai has no fn {}", workflow.name, mapping.module, mapping.function),
                span,
            );
            continue;
        };
        let takes: Vec<&str> = function.params.iter().copied().filter(|p| *p != "ctx").collect();
        for name in &takes {
            if !workflow.parameters.iter().any(|p| p.name == *name) {
                problems.add(
                    format!(
                        "workflow `{}`: fn {} takes `{name}`, which is not declared",
                        workflow.name, mapping.function
                    ),
                    span,
                );
            }
        }
        for declared in &workflow.parameters {
            if !takes.contains(&declared.name.as_str()) {
                problems.add(
                    format!(
                        "workflow `{}`: `{}` is declared, but fn {} does not take it",
                        workflow.name, declared.name, mapping.function
                    ),
                    declared.span,
                );
            }
        }
    }
    if !problems.is_empty() {
        diagnostics.insert(0, problems.into_diagnostic(Code::Manifest, &bundle.manifest.source));
    }
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    let tests = files.iter().filter(|f| f.starts_with(bundle.dir.join("tests"))).count();
    Ok(Checked { modules: files.len() - tests, tests })
}

/// The `.rhai` files of a bundle, its tests included, in a stable order; hidden folders are
/// not part of a bundle.
pub fn rhai_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => folders.push(path),
                Ok(t) if t.is_file() && path.extension().is_some_and(|e| e == "rhai") => files.push(path),
                _ => {}
            }
        }
    }
    files.sort();
    files
}

/// `flows.rhai` rather than `/home/me/demo/flows.rhai`.
fn shown(dir: &Path, file: &Path) -> String {
    file.strip_prefix(dir).unwrap_or(file).display().to_string()
}
