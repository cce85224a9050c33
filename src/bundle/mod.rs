//! Bundles (docs/BUNDLES.md): a folder with `plugin.yaml` and Rhai modules, mapping
//! workflow names to functions with declared parameters; packed into a reproducible
//! `.tar.gz`, installed side by side by version, checked and tested by their authors.
//!
//! `manifest` reads `plugin.yaml`; `parameters` checks a run's parameters against it;
//! `check` compiles every module and matches every mapping; `archive` packs and unpacks
//! safely; `registry` is where installed bundles live; `scaffold` writes a new bundle;
//! `testing` runs a bundle's own tests.

pub mod archive;
pub mod builtin;
pub mod check;
pub mod manifest;
pub mod parameters;
pub mod plugins;
pub mod registry;
pub mod scaffold;

use std::path::{Path, PathBuf};

pub use manifest::{Manifest, WorkflowDecl};

use crate::diagnostic::{Code, Diagnostic};
use crate::script::ModuleRoot;

/// The file every bundle has at its top.
pub const MANIFEST_FILE: &str = "plugin.yaml";

/// A bundle folder with its manifest read and validated.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Bundle {
    /// Reads `dir/plugin.yaml`.
    pub fn load(dir: &Path) -> Result<Bundle, Diagnostic> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Diagnostic::plain(Code::NotABundle, format!("cannot read {}: {e}", path.display())).with_help(
                "a bundle is a folder with plugin.yaml and .rhai modules; `rhaiflow bundle new NAME` makes one",
            )
        })?;
        let manifest = Manifest::parse(&builtin::shown_name(&path), &text)?;
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        Ok(Bundle { dir, manifest })
    }

    /// What `import "<name>/..."` reaches.
    pub fn module_root(&self) -> ModuleRoot {
        ModuleRoot { name: self.manifest.name.clone(), dir: self.dir.clone() }
    }

    /// The file of module `flows` or `aws/ec2`.
    pub fn module_file(&self, module: &str) -> PathBuf {
        self.dir.join(format!("{module}.rhai"))
    }

    /// The declaration of workflow `name`; an unknown name lists the ones there are.
    pub fn workflow(&self, name: &str) -> Result<&WorkflowDecl, Diagnostic> {
        self.manifest.workflow(name).ok_or_else(|| {
            Diagnostic::plain(
                Code::UnknownWorkflow,
                format!(
                    "bundle `{}` has no workflow `{name}`; its workflows are: {}",
                    self.manifest.name,
                    self.manifest.workflow_names()
                ),
            )
        })
    }
}
