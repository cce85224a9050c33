//! The script or bundle of a submitted execution, as it travels through the store to the
//! worker that runs it, possibly on another machine: kept once per checksum, and written out
//! on the worker once per checksum.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::bundle::archive::sha256_hex;
use crate::bundle::{registry, Bundle};
use crate::deploy::Blueprint;
use crate::diagnostic::{Code, Diagnostic};
use crate::store::{ShippedSource, Store};

/// The source of a run about to be submitted: the bundle's archive for a bundle workflow (the
/// built-in ones travel by name), else the script's text.
pub fn of(options: &super::RunOptions) -> Result<Option<ShippedSource>, Diagnostic> {
    if let Some(workflow) = &options.workflow {
        if workflow.bundle.name == "builtin" {
            return Ok(None);
        }
        let bundle = Bundle::load(&workflow.bundle.dir)?;
        let archive = crate::bundle::archive::pack(&bundle).map_err(first)?;
        return Ok(Some(shipped("bundle", workflow.bundle.name.clone(), archive)));
    }
    let text = std::fs::read(&options.script)
        .map_err(|e| Diagnostic::plain(Code::NoScript, format!("cannot read {}: {e}", options.script.display())))?;
    let name = options.script.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or("workflow.rhai".into());
    Ok(Some(shipped("script", name, text)))
}

/// A throw-away deployment's blueprint and the scripts its operations run, as one source: a
/// worker on another machine writes them out as a folder of its own, and runs from there.
pub fn of_blueprint(blueprint: &Blueprint) -> Result<ShippedSource, Diagnostic> {
    let name = Path::new(&blueprint.source.name).file_name().map_or("blueprint.yaml".into(), |n| n.to_string_lossy());
    let mut files = BTreeMap::from([(name.to_string(), blueprint.source.text.to_string())]);
    for path in blueprint.script_paths() {
        // A script that is not there fails its operation when it runs, as it would here.
        if let Ok(text) = std::fs::read_to_string(blueprint.dir.join(&path)) {
            files.insert(path, text);
        }
    }
    let content = serde_json::to_vec(&files).map_err(|e| Diagnostic::plain(Code::Store, e.to_string()))?;
    Ok(shipped("blueprint", name.to_string(), content))
}

fn shipped(kind: &str, name: String, content: Vec<u8>) -> ShippedSource {
    ShippedSource { checksum: sha256_hex(&content), kind: kind.to_string(), name, content }
}

fn first(mut diagnostics: Vec<Diagnostic>) -> Diagnostic {
    diagnostics.swap_remove(0)
}

/// Where the source `checksum` is on this machine, fetched from `store` the first time: the
/// script's file, the unpacked bundle's folder, or the blueprint's file in its folder.
pub fn fetch(store: &dyn Store, checksum: &str) -> Result<PathBuf, Diagnostic> {
    let dir = registry::root().join(".shipped").join(checksum);
    if let Some(found) = std::fs::read_dir(&dir).ok().and_then(|mut d| d.next()).and_then(Result::ok) {
        return Ok(found.path());
    }
    let missing = || Diagnostic::plain(Code::Store, format!("the store holds no source with checksum {checksum}"));
    let source = store.shipped_source(checksum)?.ok_or_else(missing)?;
    if sha256_hex(&source.content) != checksum {
        return Err(Diagnostic::plain(Code::Store, format!("the source {checksum} in the store is damaged")));
    }
    match source.kind.as_str() {
        "bundle" => Ok(registry::unpacked_bytes(&source.content).map_err(first)?.dir),
        "blueprint" => {
            let damaged = |e: serde_json::Error| {
                Diagnostic::plain(Code::Store, format!("the blueprint {checksum} in the store is damaged: {e}"))
            };
            let files: BTreeMap<String, String> = serde_json::from_slice(&source.content).map_err(damaged)?;
            let files = files.iter().map(|(path, text)| (path.as_str(), text.as_bytes()));
            write_out(&dir, files)?;
            Ok(dir.join(&source.name))
        }
        _ => {
            write_out(&dir, [(source.name.as_str(), source.content.as_slice())])?;
            Ok(dir.join(&source.name))
        }
    }
}

/// Writes `files` (relative paths, checked when the blueprint was read) into the folder `dir`:
/// aside, then renamed, so that a worker beside this one never reads half of them.
fn write_out<'a>(dir: &Path, files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> Result<(), Diagnostic> {
    let scratch = registry::root().join(".shipped").join(format!(".{}", uuid::Uuid::new_v4()));
    let mut written = std::fs::create_dir_all(&scratch);
    for (path, content) in files {
        if Path::new(path)
            .components()
            .any(|c| !matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir))
        {
            written = Err(std::io::Error::other(format!("`{path}` leaves its folder")));
        }
        let path = scratch.join(path);
        written = written
            .and_then(|()| path.parent().map_or(Ok(()), std::fs::create_dir_all))
            .and_then(|()| std::fs::write(&path, content));
    }
    let written =
        written.and_then(|()| std::fs::rename(&scratch, dir).or_else(|e| if dir.exists() { Ok(()) } else { Err(e) }));
    let _ = std::fs::remove_dir_all(&scratch);
    written.map_err(|e| Diagnostic::plain(Code::Store, format!("cannot write {}: {e}", dir.display())))
}
