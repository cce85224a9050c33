//! How a bundle workflow is called: through an import of its module, with its parameters by
//! name; and where its errors point when they carry no place.

use rhai::{Dynamic, AST};
use serde_json::Value;

use super::{BundleWorkflow, RunOptions};
use crate::bundle::{parameters, Bundle};

use crate::diagnostic::{Code, Diagnostic, Source};
use crate::value::from_json;

/// Points `options` at workflow `name` of `bundle`: its module and function, and its
/// parameters (`options.parameters` as given, checked against the declarations and merged
/// over their defaults).
pub fn prepare(bundle: &Bundle, name: &str, options: &mut RunOptions) -> Result<(), Diagnostic> {
    let decl = bundle.workflow(name)?;
    options.parameters =
        parameters::resolve(decl, &options.parameters, &options.parameter_texts, &bundle.manifest.source)?;
    options.script = bundle.module_file(&decl.mapping.path.module);
    options.modules = vec![bundle.module_root()];
    options.workflow = Some(BundleWorkflow {
        name: decl.name.clone(),
        module: decl.mapping.path.module.clone(),
        function: decl.mapping.path.function.clone(),
        bundle: bundle.module_root(),
    });
    Ok(())
}

/// How a bundle workflow is run: a script that imports the function's module and calls it,
/// each argument a constant of the same name (parameters by name, `ctx` as it is). Called
/// through an import, the function and its closures see the module's own imports.
pub(super) fn entry_call(
    module: &AST,
    workflow: &BundleWorkflow,
    parameters: &serde_json::Map<String, Value>,
    source: &Source,
) -> Result<(String, Vec<(String, Dynamic)>), Diagnostic> {
    let function = module.iter_functions().find(|f| f.name == workflow.function).ok_or_else(|| {
        Diagnostic::plain(
            Code::NoFunction,
            format!(
                "workflow `{}` maps to fn {}, which {} does not define",
                workflow.name, workflow.function, source.name
            ),
        )
        .with_help("`rhaiflow bundle check` checks every mapping")
    })?;
    let mut arguments = Vec::new();
    for name in &function.params {
        match (*name, parameters.get(*name)) {
            ("ctx", _) => {}
            (_, Some(value)) => arguments.push((name.to_string(), from_json(value))),
            (_, None) => {
                return Err(Diagnostic::plain(
                    Code::UndeclaredParameter,
                    format!(
                        "fn {} takes `{name}`, which workflow `{}` does not declare in plugin.yaml",
                        workflow.function, workflow.name
                    ),
                )
                .with_help("declare it under the workflow's `parameters`, or name it `ctx` to receive the context"))
            }
        }
    }
    let call = format!(
        "import \"{}/{}\" as workflow_module;\nworkflow_module::{}({})",
        workflow.bundle.name,
        workflow.module,
        workflow.function,
        function.params.join(", ")
    );
    Ok((call, arguments))
}

/// For an error without a place in a bundle workflow: the workflow's function. The span is
/// in `source`, so the diagnostic shows `source` (an error from an imported module names
/// that module as its source, with nothing labelled in it).
pub(super) fn point_at_function(diagnostic: &mut Diagnostic, source: &Source, function: &str) {
    let pattern = format!("fn {function}(");
    if let (Some(at), true) = (source.text.find(&pattern), diagnostic.labels.is_empty()) {
        let span = miette::SourceSpan::new((at + 3).into(), function.len());
        diagnostic.labels.push((Some(format!("in workflow function `{function}`")), span, true));
        diagnostic.source = Some(source.named());
    }
}

#[cfg(test)]
mod point_at_function_tests {
    use super::*;

    // An error without a place raised inside an imported module left the module as the
    // diagnostic's source, and the label computed in the workflow's file pointed past its
    // end: "[Failed to read contents for label ... OutOfBounds]".
    #[test]
    fn the_label_is_shown_in_the_workflow_file_it_was_found_in() {
        let module = Source { name: "helpers.rhai".into(), text: "fn f() {}\n".into() };
        let workflow = Source {
            name: "main.rhai".into(),
            text: format!("{}\nfn install(p) {{ f() }}\n", "// ...\n".repeat(40)).into(),
        };
        let mut diagnostic = Diagnostic::plain(Code::Error, "it went wrong");
        diagnostic.source = Some(module.named());
        point_at_function(&mut diagnostic, &workflow, "install");
        let shown = crate::diagnostic::render(&diagnostic, false);
        assert!(!shown.contains("Failed to read"), "{shown}");
        assert!(shown.contains("main.rhai:42:4") && shown.contains("in workflow function `install`"), "{shown}");
    }
}
