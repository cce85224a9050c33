//! The deployment model (SCRIPT_API.md section 8) and the built-in workflows: blueprints
//! validated, nodes and instances as scripts see them, operations (scripts and bundle
//! functions) with their environment, inputs, retries and runtime properties, deployments
//! kept in the store, and install / uninstall / scale / heal / execute_operation on the
//! three-tier example.
//!
//! Every test works in a [`Lab`]: a scratch folder holding the store, the registry of
//! installed bundles (`RHAIFLOW_BUNDLES`), the folder the three-tier scripts write to
//! (`RHAIFLOW_EXAMPLE_ROOT`) and the one the fixture scripts write to (`RECORD_DIR`), so no
//! test touches another's files or the user's. Operation tasks share names across instances
//! (`lifecycle.create`), so ordering is checked per `(operation, node_instance)`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use insta::assert_snapshot;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::support::{assert_no_panic, example, fixtures, normalise, rhaiflow, Cli, Events, Outcome};

const THREE_TIER: &str = "three_tier/blueprint.yaml";

/// A scratch world for one test: store, bundle registry and the folders operations write to.
struct Lab {
    dir: TempDir,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab { dir: tempfile::tempdir().unwrap() };
        std::fs::create_dir_all(lab.record()).unwrap();
        lab
    }

    fn store(&self) -> String {
        self.dir.path().join("store").display().to_string()
    }

    /// Where the fixture scripts write (`$RECORD_DIR`).
    fn record(&self) -> PathBuf {
        self.dir.path().join("record")
    }

    /// Where the three-tier scripts write (`$RHAIFLOW_EXAMPLE_ROOT`), one folder an instance.
    fn root(&self) -> PathBuf {
        self.dir.path().join("three-tier")
    }

    /// The variables every command of the lab runs with.
    fn envs(&self) -> [(&'static str, PathBuf); 3] {
        [
            ("RHAIFLOW_BUNDLES", self.dir.path().join("bundles")),
            ("RHAIFLOW_EXAMPLE_ROOT", self.root()),
            ("RECORD_DIR", self.record()),
        ]
    }

    fn command(&self) -> assert_cmd::Command {
        let mut cmd = rhaiflow();
        cmd.envs(self.envs());
        cmd
    }

    /// `rhaiflow ARGS` (not a run) in the fixtures folder.
    fn cli(&self, args: &[&str]) -> Cli {
        let output = self.command().args(args).timeout(Duration::from_secs(60)).output().unwrap();
        let out = Cli {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        assert_no_panic(&out.stdout, &out.stderr);
        out
    }

    /// `rhaiflow run ARGS… --events-json … --store STORE`, its events checked.
    fn run(&self, args: &[&str]) -> Outcome {
        let scratch = tempfile::tempdir().unwrap();
        let events = scratch.path().join("events.jsonl");
        let output = self
            .command()
            .arg("run")
            .args(args)
            .args(["--events-json", events.to_str().unwrap(), "--store", &self.store()])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        Outcome::from_output(output.status.code(), &output.stdout, &output.stderr, Events::read(&events), scratch)
    }

    /// `rhaiflow run WORKFLOW --deployment NAME ARGS…`.
    fn on(&self, deployment: &str, workflow: &str, args: &[&str]) -> Outcome {
        let mut all = vec![workflow, "--deployment", deployment];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `deployments create NAME --blueprint FILE`; `blueprint` is relative to the fixtures.
    fn create(&self, name: &str, blueprint: &Path) {
        self.cli(&["deployments", "create", name, "--blueprint", blueprint.to_str().unwrap(), "--store", &self.store()])
            .assert_code(0);
    }

    /// Installs the `depops` fixture bundle into the lab's registry.
    fn install_depops(&self) {
        self.cli(&["bundle", "install", "deployments/bundles/depops"]).assert_code(0);
    }

    /// `deployments show NAME` as `instance → (node, state, container, runtime properties)`.
    fn show(&self, name: &str) -> BTreeMap<String, Shown> {
        let out = self.cli(&["deployments", "show", name, "--store", &self.store()]);
        out.assert_code(0);
        let mut lines = out.stdout.lines();
        assert_eq!(lines.next(), Some(format!("deployment {name}").as_str()), "{}", out.stdout);
        lines
            .map(|line| {
                let (head, properties) = line.split_once("  {").unwrap_or_else(|| panic!("no properties in `{line}`"));
                let words: Vec<&str> = head.split_whitespace().collect();
                let container = match words.as_slice() {
                    [_, _, _, "in", c] => Some(c.to_string()),
                    [_, _, _] => None,
                    _ => panic!("unexpected line `{line}`"),
                };
                let shown = Shown {
                    node: words[1].to_string(),
                    state: words[2].to_string(),
                    container,
                    runtime_properties: serde_json::from_str(&format!("{{{properties}")).unwrap(),
                };
                (words[0].to_string(), shown)
            })
            .collect()
    }

    fn states(&self, name: &str) -> BTreeMap<String, String> {
        self.show(name).into_iter().map(|(id, s)| (id, s.state)).collect()
    }

    /// The three-tier example created as `shop` and installed.
    fn installed_shop() -> Lab {
        let lab = Lab::new();
        lab.create("shop", &example(THREE_TIER));
        lab.on("shop", "install", &[]).assert_code(0);
        lab
    }

    /// What a three-tier instance's scripts appended to its log, in order.
    fn log(&self, instance: &str) -> Vec<String> {
        std::fs::read_to_string(self.root().join(instance).join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Starts `rhaiflow ARGS` in the background (for the test that kills it).
    fn spawn(&self, args: &[&str]) -> Child {
        StdCommand::cargo_bin("rhaiflow")
            .unwrap()
            .current_dir(fixtures())
            .env_remove("RHAIFLOW_STORE")
            .envs(self.envs())
            .args(args).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Shown {
    node: String,
    state: String,
    container: Option<String>,
    runtime_properties: Value,
}
