//! The script or bundle of a submitted execution, as it travels through the store to the
//! worker that runs it, possibly on another machine: kept once per checksum, and written out
//! on the worker once per checksum.

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
pub fn of_blueprint(blueprint: &Blueprint) -> ShippedSource {
    let name = Path::new(&blueprint.source.name).file_name().map_or("blueprint.yaml".into(), |n| n.to_string_lossy());
    shipped("blueprint", name.to_string(), crate::deploy::packed::pack(blueprint))
}

fn shipped(kind: &str, name: String, content: Vec<u8>) -> ShippedSource {
    ShippedSource { checksum: sha256_hex(&content), kind: kind.to_string(), name, content }
}

fn first(mut diagnostics: Vec<Diagnostic>) -> Diagnostic {
    diagnostics.swap_remove(0)
}

/// Where the source `checksum` is on this machine, fetched from `store` (written out the first
/// time): the script's file, the unpacked bundle's folder, or the blueprint's file in its folder.
pub fn fetch(store: &dyn Store, checksum: &str) -> Result<PathBuf, Diagnostic> {
    let dir = registry::root().join(".shipped").join(checksum);
    let missing = || Diagnostic::plain(Code::Store, format!("the store holds no source with checksum {checksum}"));
    let source = store.shipped_source(checksum)?.ok_or_else(missing)?;
    if sha256_hex(&source.content) != checksum {
        return Err(Diagnostic::plain(Code::Store, format!("the source {checksum} in the store is damaged")));
    }
    match source.kind.as_str() {
        "bundle" => Ok(registry::unpacked_bytes(&source.content).map_err(first)?.dir),
        "blueprint" => crate::deploy::packed::unpack(&source.content, &dir)
            .map_err(|e| Diagnostic::plain(Code::Store, format!("cannot write {}: {e}", dir.display()))),
        _ => {
            if !dir.exists() {
                write_out(&dir, &source.name, &source.content)?;
            }
            Ok(dir.join(&source.name))
        }
    }
}

/// Writes the file `name` into the folder `dir`: aside, then renamed, so that a worker beside
/// this one never reads half of it.
fn write_out(dir: &Path, name: &str, content: &[u8]) -> Result<(), Diagnostic> {
    let scratch = registry::root().join(".shipped").join(format!(".{}", uuid::Uuid::new_v4()));
    let written = std::fs::create_dir_all(&scratch)
        .and_then(|()| std::fs::write(scratch.join(name), content))
        .and_then(|()| std::fs::rename(&scratch, dir).or_else(|e| if dir.exists() { Ok(()) } else { Err(e) }));
    let _ = std::fs::remove_dir_all(&scratch);
    written.map_err(|e| Diagnostic::plain(Code::Store, format!("cannot write {}: {e}", dir.display())))
}
