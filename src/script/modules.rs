//! What `import "..."` finds: the stdlib (`std/flow`, embedded in the binary) and the modules
//! of bundles (`import "demo/flows"` is `flows.rhai` in bundle `demo`).
//!
//! A bundle's imports are confined to its own folder: a path is words joined by `/` (no `..`,
//! no absolute paths), and a file that a link takes outside the folder is refused. Scripts
//! read nothing else from disk.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rhai::module_resolvers::StaticModuleResolver;
use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};

type SharedModule = Shared<Module>;

use crate::names::is_identifier;
use crate::script::diagnostics::HeldSources;

/// A bundle whose modules scripts may import, as `name/module`.
#[derive(Clone, Debug)]
pub struct ModuleRoot {
    pub name: String,
    pub dir: PathBuf,
}

pub struct Modules {
    std: StaticModuleResolver,
    roots: Vec<ModuleRoot>,
    loaded: Mutex<HashMap<String, SharedModule>>,
    /// Imports being evaluated, to report a cycle instead of recursing until the stack ends.
    loading: Mutex<HashSet<(std::thread::ThreadId, String)>>,
    /// The texts of the module files read, the only ones a diagnostic may show.
    held: HeldSources,
}

impl Modules {
    /// The stdlib, compiled with `engine`'s host API, and the modules of `roots`; the files it
    /// reads are kept in `held` for diagnostics.
    pub fn new(engine: &Engine, roots: Vec<ModuleRoot>, held: HeldSources) -> Self {
        let mut std = StaticModuleResolver::new();
        for (name, source) in crate::embedded::STDLIB {
            let module = engine
                .compile(*source)
                .map_err(|e| e.to_string())
                .and_then(|ast| Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(|e| e.to_string()));
            match module {
                Ok(module) => std.insert(*name, module),
                // Covered by a unit test; if it ever happens, importing it says "not found".
                Err(e) => say!("rhaiflow: this is a bug: the stdlib module {name} does not compile: {e}"),
            }
        }
        Modules { std, roots, loaded: Mutex::new(HashMap::new()), loading: Mutex::new(HashSet::new()), held }
    }

    /// The file behind `import "<path>"`, if `path` names a bundle module.
    pub fn file_of(&self, path: &str) -> Result<PathBuf, String> {
        let not_a_module =
            || "imports name a bundle's module as `bundle/module` (no absolute paths, no `..`)".to_string();
        let (name, rest) = path.split_once('/').filter(|(name, _)| is_identifier(name)).ok_or_else(not_a_module)?;
        let root = self.roots.iter().find(|r| r.name == name).ok_or_else(|| {
            let known: Vec<_> = self.roots.iter().map(|r| r.name.as_str()).chain(["std"]).collect();
            format!("no bundle `{name}` here (modules come from: {})", known.join(", "))
        })?;
        if !rest.split('/').all(is_identifier) {
            return Err(format!("`{path}`: module paths are words joined by `/` (no `..`, no extension)"));
        }
        confined(&root.dir, &root.dir.join(format!("{rest}.rhai")))
    }

    fn load(&self, engine: &Engine, path: &str, pos: Position) -> Result<SharedModule, Box<EvalAltResult>> {
        let file = self.file_of(path).map_err(|why| not_found(path, why, pos))?;
        // A module is read whole: one too large is refused before it is read.
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        if size > super::compile::MAX_SCRIPT_BYTES as u64 {
            let why = format!(
                "it is {} bytes, over the {} MiB a module may be",
                size,
                super::compile::MAX_SCRIPT_BYTES >> 20
            );
            return Err(not_found(path, why, pos));
        }
        let text = std::fs::read_to_string(&file).map_err(|e| not_found(path, e.to_string(), pos))?;
        // Errors name the file, so that diagnostics can show it (a built-in one by its name).
        let name = crate::embedded::shown_name(&file);
        self.held.hold(&name, Arc::from(text.as_str()));
        let mut ast =
            engine.compile(text).map_err(|e| Box::new(EvalAltResult::ErrorInModule(name.clone(), e.into(), pos)))?;
        ast.set_source(name.clone());
        let module = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(|e| Box::new(EvalAltResult::ErrorInModule(name, e, pos)))?;
        Ok(module.into())
    }
}

impl ModuleResolver for Modules {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<SharedModule, Box<EvalAltResult>> {
        if path.starts_with("std/") {
            return self.std.resolve(engine, source, path, pos);
        }
        if let Some(module) = self.loaded.lock().get(path) {
            return Ok(module.clone());
        }
        let key = (std::thread::current().id(), path.to_string());
        if !self.loading.lock().insert(key.clone()) {
            return Err(not_found(path, "modules import each other in a cycle".into(), pos));
        }
        let module = self.load(engine, path, pos);
        self.loading.lock().remove(&key);
        let module = module?;
        Ok(self.loaded.lock().entry(path.to_string()).or_insert(module).clone())
    }
}

/// Why `path` cannot be imported. (Rhai replaces a resolver's "module not found" by its own
/// with only the path; wrapped, the reason reaches the person.)
fn not_found(path: &str, why: String, pos: Position) -> Box<EvalAltResult> {
    let inner = EvalAltResult::ErrorModuleNotFound(format!("{path}: {why}"), pos);
    Box::new(EvalAltResult::ErrorInModule(path.to_string(), Box::new(inner), pos))
}

/// `file`, if it exists and stays inside `dir` once links are followed.
fn confined(dir: &Path, file: &Path) -> Result<PathBuf, String> {
    let real = file.canonicalize().map_err(|_| format!("no module file {}", file.display()))?;
    let root = dir.canonicalize().map_err(|e| format!("{}: {e}", dir.display()))?;
    if !real.starts_with(&root) {
        return Err(format!("{} leads outside its bundle", file.display()));
    }
    Ok(real)
}
