//! The deployment model (docs/DEPLOYMENTS.md) and the built-in workflows: blueprints
//! validated, nodes and instances as scripts see them, operations (scripts and bundle
//! functions) with their environment, inputs, retries and runtime properties, deployments
//! kept in the store, and install / uninstall / scale / heal / execute_operation on the
//! three-tier example.
//!
//! Every test works in a [`Lab`]: a scratch folder holding the store (or a database of its
//! own on the tests' PostgreSQL server, for the tests `postgres_deployments` runs again
//! there), the registry of installed bundles (`RHAIFLOW_BUNDLES`), the folder the three-tier
//! scripts write to (`RHAIFLOW_EXAMPLE_ROOT`) and the one the fixture scripts write to
//! (`RECORD_DIR`), so no test touches another's files or the user's. Operation tasks share
//! names across instances (`lifecycle.create`), so ordering is checked per
//! `(operation, node_instance)`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use assert_cmd::cargo::CommandCargoExt;
use insta::assert_snapshot;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::postgres_server::postgres;
use crate::support::{cli_of, example, fixtures, rhaiflow, Cli, Events, Outcome, Run};

const THREE_TIER: &str = "three_tier/blueprint.yaml";

/// The password in a PostgreSQL lab's store URL: never shown by any command.
const LAB_PASSWORD: &str = "lab-s3cret";

/// A scratch world for one test: store, bundle registry and the folders operations write to.
pub(crate) struct Lab {
    dir: TempDir,
    /// The lab's database on the tests' PostgreSQL server; `None`: a SQLite file in `dir`.
    database: Option<String>,
}

impl Lab {
    fn new() -> Lab {
        let lab = Lab { dir: tempfile::tempdir().unwrap(), database: None };
        std::fs::create_dir_all(lab.record()).unwrap();
        std::fs::create_dir_all(lab.temp()).unwrap();
        lab
    }

    /// A lab whose store is a new database of the tests' PostgreSQL server (which the test
    /// made sure runs).
    pub(crate) fn on_postgres() -> Lab {
        static DATABASES: AtomicUsize = AtomicUsize::new(0);
        let server = postgres().expect("the test skips when no PostgreSQL is installed");
        let database = format!("deployments_{}", DATABASES.fetch_add(1, Ordering::Relaxed));
        server.psql("postgres", &format!("CREATE DATABASE {database}"));
        Lab { database: Some(database), ..Lab::new() }
    }

    /// `--store`: the SQLite folder, or the database's URL with a password.
    fn store(&self) -> String {
        match &self.database {
            Some(database) => {
                let url = postgres().unwrap().url(database);
                url.replacen("@", &format!(":{LAB_PASSWORD}@"), 1)
            }
            None => self.dir.path().join("store").display().to_string(),
        }
    }

    /// A table of the store as its SQL names it (PostgreSQL's carry a prefix).
    fn table(&self, name: &str) -> String {
        match self.database {
            Some(_) => format!("rhaiflow_{name}"),
            None => name.to_string(),
        }
    }

    /// `sql` with `{table}` replaced by the table's name in this lab's store.
    fn tables_in(&self, sql: &str) -> String {
        ["deployment_instances", "deployments"]
            .iter()
            .fold(sql.to_string(), |sql, t| sql.replace(&format!("{{{t}}}"), &self.table(t)))
    }

    /// A command's output, which never shows the password of a store URL.
    fn checked(&self, stdout: &str, stderr: &str) {
        for shown in [stdout, stderr] {
            assert!(!shown.contains(LAB_PASSWORD), "the store's password was shown:\n{shown}");
        }
    }

    /// Where the fixture scripts write (`$RECORD_DIR`).
    fn record(&self) -> PathBuf {
        self.dir.path().join("record")
    }

    /// Where the three-tier scripts write (`$RHAIFLOW_EXAMPLE_ROOT`), one folder an instance.
    fn root(&self) -> PathBuf {
        self.dir.path().join("three-tier")
    }

    /// The lab's own temp folder (`$TMPDIR`), to see what a run leaves there.
    fn temp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// The variables every command of the lab runs with.
    fn envs(&self) -> [(&'static str, PathBuf); 4] {
        [
            ("RHAIFLOW_BUNDLES", self.dir.path().join("bundles")),
            ("RHAIFLOW_EXAMPLE_ROOT", self.root()),
            ("RECORD_DIR", self.record()),
            ("TMPDIR", self.temp()),
        ]
    }

    fn command(&self) -> assert_cmd::Command {
        let mut cmd = rhaiflow();
        cmd.envs(self.envs());
        cmd
    }

    /// `rhaiflow ARGS` (not a run) in the fixtures folder.
    fn cli(&self, args: &[&str]) -> Cli {
        let out = cli_of(self.command().args(args));
        self.checked(&out.stdout, &out.stderr);
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
        let out =
            Outcome::from_output(output.status.code(), &output.stdout, &output.stderr, Events::read(&events), scratch);
        self.checked(&out.stdout, &out.stderr);
        out
    }

    /// `rhaiflow run WORKFLOW --deployment NAME ARGS…`.
    fn on(&self, deployment: &str, workflow: &str, args: &[&str]) -> Outcome {
        let mut all = vec![workflow, "--deployment", deployment];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// `deployments create NAME --blueprint FILE`; `blueprint` is relative to the fixtures.
    fn create(&self, name: &str, blueprint: &Path) {
        self.cli(&[
            "deployments",
            "create",
            name,
            "--blueprint",
            blueprint.to_str().unwrap(),
            "--store",
            &self.store(),
        ])
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

    /// Changes the lab's store file behind rhaiflow's back (a damaged row, a failing write).
    fn alter_store(&self, sql: &str) {
        match &self.database {
            Some(database) => drop(postgres().unwrap().psql(database, sql)),
            None => {
                let file = self.dir.path().join("store").join("rhaiflow.db");
                rusqlite::Connection::open(file).unwrap().execute_batch(sql).unwrap();
            }
        }
    }

    fn states(&self, name: &str) -> BTreeMap<String, String> {
        self.show(name).into_iter().map(|(id, s)| (id, s.state)).collect()
    }

    /// The three-tier example created as `shop` and installed.
    fn installed_shop() -> Lab {
        Lab::new().with_shop_installed()
    }

    /// This lab with the three-tier example created as `shop` and installed.
    fn with_shop_installed(self) -> Lab {
        self.create("shop", &example(THREE_TIER));
        self.on("shop", "install", &[]).assert_code(0);
        self
    }

    /// What a three-tier instance's scripts appended to its log, in order.
    fn log(&self, instance: &str) -> Vec<String> {
        std::fs::read_to_string(self.root().join(instance).join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// `rhaiflow run install --deployment NAME` in the background, writing its events to `events`.
    fn spawn_install(&self, deployment: &str, events: &Path) -> Child {
        let store = self.store();
        self.spawn(&[
            "run",
            "install",
            "--deployment",
            deployment,
            "--store",
            &store,
            "--events-json",
            events.to_str().unwrap(),
        ])
    }

    /// Starts `rhaiflow ARGS` in the background (for the test that kills it).
    fn spawn(&self, args: &[&str]) -> Child {
        StdCommand::cargo_bin("rhaiflow")
            .unwrap()
            .current_dir(fixtures())
            .env_remove("RHAIFLOW_STORE")
            .envs(self.envs())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Shown {
    node: String,
    state: String,
    container: Option<String>,
    runtime_properties: Value,
}

/// An operation as called on one instance: `(lifecycle.create, vm_1)`.
type Op<'a> = (&'a str, &'a str);

/// Operation tasks (not `set_state`) in the order they first started, with their instance.
fn operations(events: &Events) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    for e in events.of_type("task_started") {
        if e["kind"] == "operation" && e["task"] != "set_state" {
            let op = (e["task"].as_str().unwrap().to_string(), e["node_instance"].as_str().unwrap().to_string());
            if !seen.contains(&op) {
                seen.push(op);
            }
        }
    }
    seen
}

/// The operations that ran on `instance`, in order.
fn operations_on(events: &Events, instance: &str) -> Vec<String> {
    operations(events).into_iter().filter(|(_, i)| i == instance).map(|(op, _)| op).collect()
}

fn seq_of(events: &Events, (task, instance): Op, kinds: &[&str], first: bool) -> u64 {
    let mut matching = events.0.iter().filter(|e| {
        e["task"] == task && e["node_instance"] == instance && kinds.contains(&e["type"].as_str().unwrap())
    });
    let found = if first { matching.next() } else { matching.next_back() };
    found.unwrap_or_else(|| panic!("no {kinds:?} of `{task}` on {instance}:\n{}", events.summary()))["seq"]
        .as_u64()
        .unwrap()
}

/// Operation `a` (on its instance) ended before operation `b` started.
#[track_caller]
fn assert_op_before(events: &Events, a: Op, b: Op) {
    let end = seq_of(events, a, &["task_succeeded", "task_failed"], false);
    let start = seq_of(events, b, &["task_started"], true);
    assert!(end < start, "{a:?} should end before {b:?} starts:\n{}", events.summary());
}

/// The messages of `node_event`s, with their instance, in order.
fn node_events(events: &Events) -> Vec<(String, String)> {
    events
        .of_type("node_event")
        .map(|e| (e["node_instance"].as_str().unwrap().to_string(), e["message"].as_str().unwrap().to_string()))
        .collect()
}

/// `KEY=VALUE` lines that `record_env.sh` wrote.
fn recorded_env(lab: &Lab, file: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(lab.record().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn blueprint(name: &str) -> PathBuf {
    fixtures().join("deployments").join(name)
}

// ---------------------------------------------------------------------------------------
// The model as a script sees it

#[test]
fn a_script_sees_nodes_instances_relationships_and_type_hierarchies() {
    let out = Lab::new().run(&["deployments/model.rhai", "--blueprint", "deployments/model.yaml"]);
    out.assert_code(0);
    let result = out.result();
    let node = |id: &str| result["nodes"].as_array().unwrap().iter().find(|n| n["id"] == id).unwrap().clone();
    assert_eq!(
        node("db"),
        json!({
            "id": "db", "type": "shop.Database",
            "type_hierarchy": ["rhaiflow.nodes.Root", "shop.Server", "shop.Database"],
            "properties": {"port": 5432, "tier": "back", "name": "orders"},
            "instances": ["db_1", "db_2", "db_3", "db_4"], "number_of_instances": 4,
        }),
        "the nearest default wins, template properties are added, 2 instances per host"
    );
    assert_eq!(node("host")["type_hierarchy"], json!(["rhaiflow.nodes.Root", "rhaiflow.nodes.Compute"]));
    assert_eq!(node("app")["properties"], json!({"port": 8080, "tier": "back"}), "the template overrides a default");
    assert_eq!(node("agent")["instances"], json!(["agent_1", "agent_2", "agent_3", "agent_4"]), "one per db");
    assert_eq!(node("app")["number_of_instances"], 1);

    let instances: BTreeMap<String, Value> = result["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["id"].as_str().unwrap().to_string(), i.clone()))
        .collect();
    assert_eq!(instances.len(), 2 + 4 + 4 + 1);
    let host_2 = &instances["host_2"];
    assert_eq!(host_2["contained_instances"], json!(["db_3", "db_4"]));
    assert_eq!(host_2["subgraph"], json!(["host_2", "db_3", "db_4", "agent_3", "agent_4"]), "itself first");
    assert_eq!(instances["db_3"]["relationships"][0]["target_id"], "host_2", "contained in its own host");
    assert_eq!(instances["agent_4"]["relationships"][0]["target_id"], "db_4");
    for i in instances.values() {
        assert_eq!(i["state"], "uninitialized");
        assert_eq!(i["runtime_properties"], json!({}));
        assert_eq!(i["modification"], "");
        assert_eq!(i["node"], i["node_id"]);
    }
    let app = &instances["app_1"]["relationships"];
    let targets: Vec<(&str, &str)> = app
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["type"].as_str().unwrap(), r["target_id"].as_str().unwrap()))
        .collect();
    assert_eq!(
        targets,
        [
            ("shop.uses", "db_1"),
            ("shop.uses", "db_2"),
            ("shop.uses", "db_3"),
            ("shop.uses", "db_4"),
            ("rhaiflow.relationships.depends_on", "host_1"),
            ("rhaiflow.relationships.depends_on", "host_2"),
        ],
        "connected_to and depends_on link to every instance of the target node"
    );
    assert_eq!(
        app[0],
        json!({
            "type": "shop.uses", "target_id": "db_1", "target": "db_1", "target_node": "db",
            "type_hierarchy": ["rhaiflow.relationships.depends_on", "rhaiflow.relationships.connected_to", "shop.uses"],
        })
    );
    assert_eq!(result["get_node"], "shop.Database");
    assert_eq!(result["get_node_instance"], "agent");
    assert_eq!(result["deployment"], "model", "a blueprint's throw-away deployment is named after its file");
}

// ---------------------------------------------------------------------------------------
// Validation

#[test]
fn blueprint_problems_are_reported_together_before_anything_runs() {
    let out = Lab::new().run(&["install", "--blueprint", "deployments/invalid.yaml"]);
    out.assert_code(2);
    assert!(out.events.0.is_empty(), "nothing ran, no events:\n{}", out.events.summary());
    for expected in [
        "deployments/invalid.yaml has 9 problems",
        "script `../outside.sh` must be a path inside the blueprint's folder",
        "script `/usr/local/bin/start.sh` must be a path inside the blueprint's folder",
        "derives from `shop.Missing`, which is not defined",
        "node `web` has type `shop.Typo`, which is not defined",
        "node `app` relates to `ghost`, which is not a node template",
        "relationship type `shop.links_to` is not defined",
        "node `app` is contained in more than one node",
        "contained_in makes a cycle: left → right → left",
        "[deployments/invalid.yaml:4:19]",
    ] {
        assert!(out.stderr.contains(expected), "`{expected}` is missing:\n{}", out.stderr);
    }
    assert_snapshot!("deployments_invalid_blueprint", out.normalised_stderr());
}

#[test]
fn deployments_create_refuses_an_invalid_blueprint_and_keeps_nothing() {
    let lab = Lab::new();
    let out =
        lab.cli(&["deployments", "create", "bad", "--blueprint", "deployments/invalid.yaml", "--store", &lab.store()]);
    out.assert_code(2);
    assert!(out.stderr.contains("has 9 problems"), "{}", out.stderr);
    let list = lab.cli(&["deployments", "list", "--store", &lab.store()]);
    list.assert_code(0);
    assert_eq!(list.stdout, "", "no deployment was recorded");
}

// The problems of node types and relationship types came out of a HashMap: their order
// changed from one run to the next on the same file.
#[test]
fn type_problems_are_listed_in_the_same_order_on_every_run() {
    let lab = Lab::new();
    let reports: Vec<String> = (0..6)
        .map(|_| {
            let out = lab.cli(&["run", "install", "--blueprint", "deployments/type_problems.yaml", "--ephemeral"]);
            out.assert_code(2);
            out.stderr
        })
        .collect();
    assert!(reports[0].contains("has 6 problems"), "{}", reports[0]);
    for report in &reports[1..] {
        assert_eq!(report, &reports[0], "the same blueprint gives the same report");
    }
}

#[test]
fn invalid_yaml_and_duplicate_keys_point_at_their_line() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let duplicate = dir.path().join("duplicate.yaml");
    std::fs::write(
        &duplicate,
        "node_templates:\n  vm: {type: rhaiflow.nodes.Compute}\n  vm: {type: rhaiflow.nodes.Root}\n",
    )
    .unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "node_templates:\n  vm: {type: rhaiflow.nodes.Compute\n").unwrap();
    for (file, line) in [(&duplicate, ":3:"), (&broken, ":2:")] {
        let out = lab.run(&["install", "--blueprint", file.to_str().unwrap()]);
        out.assert_code(2);
        assert!(out.events.0.is_empty());
        assert!(out.stderr.contains(&format!("{}{line}", file.display())), "points at the line:\n{}", out.stderr);
    }
    let out = lab.run(&["install", "--blueprint", duplicate.to_str().unwrap()]);
    assert!(out.stderr.to_lowercase().contains("duplicate"), "{}", out.stderr);
}

#[test]
fn an_operation_mapped_to_a_missing_bundle_or_function_is_invalid_input() {
    let lab = Lab::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("missing.yaml");
    std::fs::write(
        &file,
        "node_templates:\n  a:\n    type: rhaiflow.nodes.Root\n    interfaces: {lifecycle: {create: nobundle.ops.create, start: depops.ops.nothere}}\n",
    )
    .unwrap();
    lab.install_depops();
    let out = lab.run(&["install", "--blueprint", file.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.events.of_type("task_started").next().is_none(), "{}", out.events.summary());
    for expected in [
        "`nobundle.ops.create`: no bundle `nobundle` is installed",
        "`depops.ops.nothere`: bundle `depops` has no fn nothere in ops.rhai",
        "missing.yaml:4:",
    ] {
        assert!(out.stderr.contains(expected), "`{expected}` is missing:\n{}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------
// Operations: environment, inputs, retries, runtime properties

#[test]
fn a_script_operation_gets_its_instance_properties_and_inputs_in_its_environment() {
    let lab = Lab::new();
    lab.install_depops();
    let out = lab.run(&["deployments/env.rhai", "--blueprint", "deployments/env.yaml"]);
    out.assert_code(0);

    let feeder = recorded_env(&lab, "feeder_1.lifecycle.configure");
    assert_eq!(feeder["RHAIFLOW_NODE"], "feeder");
    assert_eq!(feeder["RHAIFLOW_INSTANCE"], "feeder_1");
    assert_eq!(feeder["RHAIFLOW_OPERATION"], "lifecycle.configure");
    assert_eq!(feeder["RHAIFLOW_DEPLOYMENT"], "env");
    assert_eq!(json_of(&feeder["RHAIFLOW_PROPERTIES"]), json!({"port": 80, "name": "svc"}));
    assert_eq!(
        json_of(&feeder["RHAIFLOW_INPUTS"]),
        json!({"mode": "fast", "level": 2, "extra": "given"}),
        "the call's kwargs are laid over the declared inputs"
    );
    assert_eq!(json_of(&feeder["RUNTIME_PROPERTIES_FILE"]), json!({}));
    assert_eq!(
        Path::new(&feeder["CWD"]).canonicalize().unwrap(),
        fixtures().join("deployments").canonicalize().unwrap(),
        "scripts run in the blueprint's folder"
    );
    assert!(!feeder.contains_key("RHAIFLOW_TARGET_INSTANCE"), "not a relationship operation");

    let store = recorded_env(&lab, "store_1.lifecycle.configure");
    assert_eq!(json_of(&store["RHAIFLOW_PROPERTIES"]), json!({"port": 5432, "name": "svc"}));
    assert_eq!(
        json_of(&store["RHAIFLOW_INPUTS"]),
        json!({"mode": "fast", "level": 1}),
        "no kwargs: the declared inputs"
    );

    let source = recorded_env(&lab, "feeder_1.relationship_lifecycle.preconfigure");
    assert_eq!(source["RHAIFLOW_SOURCE_INSTANCE"], "feeder_1");
    assert_eq!(source["RHAIFLOW_TARGET_INSTANCE"], "store_1");
    assert_eq!(source["RHAIFLOW_OPERATION"], "relationship_lifecycle.preconfigure");
    assert_eq!(json_of(&source["RHAIFLOW_INPUTS"]), json!({"side": "source"}));

    // The target end is a bundle function: it sees both ends in ctx.source / ctx.target.
    let target = out
        .events
        .of_type("task_succeeded")
        .find(|e| e["task"] == "relationship_lifecycle.preconfigure" && e["result"].get("target").is_some())
        .unwrap_or_else(|| panic!("no result of the target operation:\n{}", out.events.summary()));
    assert_eq!(
        target["result"],
        json!({"source": "feeder_1", "source_node": "feeder", "target": "store_1", "target_node": "store"})
    );
    for e in out.events.of_type("task_started").filter(|e| e["kind"] == "operation") {
        assert!(e["node_instance"].is_string(), "an operation's events carry node_instance: {e}");
    }
}

// A script that left its runtime-properties file unreadable succeeded, and whatever it
// meant to keep was dropped without a word.
#[test]
fn an_unreadable_runtime_properties_file_fails_the_operation() {
    let lab = Lab::new();
    let out = lab.run(&["install", "--blueprint", "deployments/garbled_runtime.yaml"]);
    out.assert_code(1);
    assert!(out.stderr.contains("lifecycle.create left $RHAIFLOW_RUNTIME_PROPERTIES unreadable"), "{}", out.stderr);
    assert_eq!(out.events.outcome("lifecycle.create"), Some("task_failed"), "{}", out.events.summary());
}

#[test]
fn runtime_properties_from_script_and_function_operations_persist_in_a_stored_deployment() {
    runtime_properties_persist_in(Lab::new());
}

pub(crate) fn runtime_properties_persist_in(lab: Lab) {
    lab.install_depops();
    lab.create("rt", &blueprint("runtime.yaml"));
    lab.on("rt", "install", &[]).assert_code(0);

    let shown = lab.show("rt");
    assert_eq!(
        shown["svc_2"],
        Shown {
            node: "svc".into(),
            state: "started".into(),
            container: None,
            runtime_properties: json!({
                "from_script": "svc_2", "before": {},
                "from_function": "configured",
                "seen_by_function": "lifecycle.configure on svc_2 of svc in rt",
            }),
        },
        "the script's rewrite of the file and the function's assignment are both kept"
    );

    // The next execution starts from what the last one left.
    let out = lab.on("rt", "depops", &["states"]);
    out.assert_code(0);
    assert_eq!(out.result()["svc_1"]["state"], "started");
    assert_eq!(out.result()["svc_1"]["runtime_properties"]["from_script"], "svc_1");
    assert_eq!(out.result()["svc_1"]["runtime_properties"]["from_function"], "configured");

    // A script operation sees the stored properties in its file, and may replace them.
    let out = lab.on(
        "rt",
        "execute_operation",
        &["-p", "operation=lifecycle.create", "-p", r#"node_instance_ids=["svc_1"]"#],
    );
    out.assert_code(0);
    let shown = lab.show("rt");
    assert_eq!(shown["svc_1"].runtime_properties["before"]["from_function"], "configured");
    assert_eq!(shown["svc_1"].runtime_properties.get("from_function"), None, "the script replaced them");
    assert_eq!(shown["svc_2"].runtime_properties["from_function"], "configured", "svc_2 was not chosen");
}

#[test]
fn operation_retry_from_a_function_retries_and_counts_against_the_retries() {
    let lab = Lab::new();
    lab.install_depops();
    let args = ["execute_operation", "--blueprint", "deployments/retries.yaml", "-p", "operation=lifecycle.start"];
    let patient = |retries: &str| {
        let mut all = args.to_vec();
        all.extend(["-p", r#"node_ids=["patient"]"#, "--task-retries", retries]);
        lab.run(&all)
    };
    let out = patient("5");
    out.assert_code(0);
    assert_eq!(out.events.attempts("lifecycle.start"), 3);
    let retried: Vec<&Value> = out.events.of_task("task_rescheduled", "lifecycle.start").collect();
    assert_eq!(retried.len(), 2);
    assert!(retried[0]["error"].as_str().unwrap().contains("not ready yet (attempt 0)"), "{}", retried[0]);
    assert_eq!(retried[0]["retry_after"].as_f64(), Some(0.0), "after the seconds it asked for");
    let done = out.events.of_task("task_succeeded", "lifecycle.start").next().unwrap();
    assert_eq!(done["result"], json!({"attempt": 2, "instance": "patient_1"}), "ctx.operation.retry_number");

    let out = patient("1");
    out.assert_code(1);
    assert_eq!(out.events.attempts("lifecycle.start"), 2, "two attempts, then the retries are used up");
    assert_eq!(out.events.outcome("lifecycle.start"), Some("task_failed"));
}

#[test]
fn non_recoverable_from_a_function_fails_at_once() {
    let lab = Lab::new();
    lab.install_depops();
    let out = lab.run(&[
        "execute_operation",
        "--blueprint",
        "deployments/retries.yaml",
        "-p",
        "operation=lifecycle.start",
        "-p",
        r#"node_ids=["broken"]"#,
        "--task-retries",
        "5",
    ]);
    out.assert_code(1);
    assert_eq!(out.events.attempts("lifecycle.start"), 1, "not retried");
    let failed = out.events.of_task("task_failed", "lifecycle.start").next().unwrap();
    assert!(failed["error"].as_str().unwrap().contains("the disk of broken_1 is gone"), "{failed}");
    assert_eq!(failed["node_instance"], "broken_1");
    assert!(out.stderr.contains("the disk of broken_1 is gone"), "{}", out.stderr);
}

#[test]
fn a_failing_script_operation_is_retried_with_task_retries() {
    let lab = Lab::new();
    lab.install_depops();
    let run = |retries: &str| {
        let _ = std::fs::remove_file(lab.record().join("flaky_1.attempts"));
        lab.run(&[
            "execute_operation",
            "--blueprint",
            "deployments/retries.yaml",
            "-p",
            "operation=lifecycle.start",
            "-p",
            r#"type_names=["rhaiflow.nodes.Root"]"#,
            "-p",
            r#"node_instance_ids=["flaky_1"]"#,
            "--task-retries",
            retries,
            "--retry-interval",
            "0",
        ])
    };
    let out = run("2");
    out.assert_code(0);
    assert_eq!(out.events.attempts("lifecycle.start"), 3);
    assert_eq!(out.events.of_task("task_rescheduled", "lifecycle.start").count(), 2);
    let done = out.events.of_task("task_succeeded", "lifecycle.start").next().unwrap();
    assert_eq!(done["result"]["stdout"], "succeeded on attempt 3\n");

    let out = run("1");
    out.assert_code(1);
    assert_eq!(out.events.attempts("lifecycle.start"), 2);
    let failed = out.events.of_task("task_failed", "lifecycle.start").next().unwrap();
    assert_eq!(failed["current_retries"], 1);
    assert_eq!(failed["node_instance"], "flaky_1");
}

// ---------------------------------------------------------------------------------------
// Stored deployments and the built-in workflows on the three-tier example

#[test]
fn three_tier_install_runs_each_lifecycle_in_order_targets_first() {
    three_tier_install_runs_each_lifecycle_in_order_targets_first_in(Lab::new());
}

pub(crate) fn three_tier_install_runs_each_lifecycle_in_order_targets_first_in(lab: Lab) {
    lab.create("shop", &example(THREE_TIER));
    let list = lab.cli(&["deployments", "list", "--store", &lab.store()]);
    let fields: Vec<&str> = list.stdout.lines().nth(1).unwrap_or_default().split('\t').collect();
    assert_eq!(fields[..2], ["shop", "4 instances (4 uninitialized)"], "{}", list.stdout);
    assert!(fields[3].ends_with("three_tier/blueprint.yaml"), "{}", list.stdout);
    let before = lab.show("shop");
    assert_eq!(before["database_1"].container.as_deref(), Some("vm_1"));
    assert_eq!(before["vm_1"].container, None);
    assert!(before.values().all(|i| i.state == "uninitialized"));

    let out = lab.on("shop", "install", &[]);
    out.assert_code(0);
    let e = &out.events;
    assert_eq!(operations_on(e, "vm_1"), ["lifecycle.create", "lifecycle.configure", "lifecycle.start"]);
    assert_eq!(operations_on(e, "database_1"), ["lifecycle.create", "lifecycle.configure", "lifecycle.start"]);
    for web in ["web_1", "web_2"] {
        assert_eq!(
            operations_on(e, web),
            ["lifecycle.create", "relationship_lifecycle.preconfigure", "lifecycle.configure", "lifecycle.start"]
        );
        // An instance starts only once the instances it relates to are started.
        assert_op_before(e, ("lifecycle.start", "database_1"), ("lifecycle.create", web));
        assert_op_before(e, ("lifecycle.start", "vm_1"), ("lifecycle.create", web));
    }
    assert_op_before(e, ("lifecycle.start", "vm_1"), ("lifecycle.create", "database_1"));
    assert_eq!(
        node_events(e).iter().filter(|(i, _)| i == "web_1").map(|(_, m)| m.as_str()).collect::<Vec<_>>(),
        ["Creating node instance", "Configuring node instance", "Starting node instance"]
    );

    // What the scripts did.
    assert_eq!(lab.log("vm_1"), ["lifecycle.create"], "configure and start are the Root's no-ops");
    assert_eq!(lab.log("database_1"), ["lifecycle.create", "lifecycle.configure", "lifecycle.start"]);
    assert_eq!(
        lab.log("web_2"),
        ["lifecycle.create", "relationship_lifecycle.preconfigure", "lifecycle.configure", "lifecycle.start"]
    );
    let database = std::fs::read_to_string(lab.root().join("web_1/database")).unwrap();
    assert_eq!(database, "database_1 {\"pool_size\":5}\n", "the relationship's target and declared inputs");
    assert_eq!(
        json_of(&std::fs::read_to_string(lab.root().join("vm_1/properties.json")).unwrap()),
        json!({"size": "large"}),
        "the template's property over the type's default"
    );
    assert!(lab.root().join("web_1/pid").exists());

    let after = lab.show("shop");
    assert!(after.values().all(|i| i.state == "started"), "{after:?}");
    assert_eq!(after["vm_1"].runtime_properties, json!({"ip": "10.0.0.1"}));
    let list = lab.cli(&["deployments", "list", "--store", &lab.store()]);
    assert!(list.stdout.contains("shop\t4 instances (4 started)\t"), "{}", list.stdout);
}

#[test]
fn a_second_install_runs_no_operation() {
    let lab = Lab::installed_shop();
    let out = lab.on("shop", "install", &[]);
    out.assert_code(0);
    assert_eq!(
        out.events.of_type("task_started").filter(|e| e["kind"] != "subgraph").count(),
        0,
        "{}",
        out.events.summary()
    );
    assert_eq!(lab.log("database_1").len(), 3, "no script ran again");
}

#[test]
fn scale_out_installs_a_new_web_and_scale_in_uninstalls_the_newest() {
    let lab = Lab::installed_shop();
    let out = lab.on("shop", "scale", &["-p", "node_id=web"]);
    out.assert_code(0);
    assert_eq!(out.result(), json!({"node_id": "web", "instances": 3}));
    let touched: Vec<String> = operations(&out.events).into_iter().map(|(_, i)| i).collect();
    assert!(touched.iter().all(|i| i == "web_3"), "only the new instance is installed: {touched:?}");
    assert_eq!(
        operations_on(&out.events, "web_3"),
        ["lifecycle.create", "relationship_lifecycle.preconfigure", "lifecycle.configure", "lifecycle.start"]
    );
    assert_eq!(std::fs::read_to_string(lab.root().join("web_3/database")).unwrap(), "database_1 {\"pool_size\":5}\n");
    let shown = lab.show("shop");
    assert_eq!(shown.keys().collect::<Vec<_>>(), ["database_1", "vm_1", "web_1", "web_2", "web_3"]);
    assert_eq!(shown["web_3"].state, "started");
    assert_eq!(shown["web_3"].container.as_deref(), Some("vm_1"), "in the container of the others");

    let out = lab.on("shop", "scale", &["-p", "node_id=web", "-p", "delta=-1"]);
    out.assert_code(0);
    assert_eq!(out.result(), json!({"node_id": "web", "instances": 2}));
    assert_eq!(
        operations_on(&out.events, "web_3"),
        ["lifecycle.stop", "relationship_lifecycle.unlink", "lifecycle.delete"],
        "the newest is uninstalled before it goes"
    );
    assert!(operations(&out.events).iter().all(|(_, i)| i == "web_3"));
    assert!(!lab.root().join("web_3").exists(), "its folder was deleted");
    assert_eq!(lab.show("shop").keys().collect::<Vec<_>>(), ["database_1", "vm_1", "web_1", "web_2"]);
    assert_eq!(lab.log("web_1").len(), 4, "web_1 was not touched");
}

// A stored deployment forgot the highest instance number given out: after scaling web in
// (web_3 removed) and out again, the new instance was called web_3 again.
#[test]
fn ids_of_removed_instances_are_not_reused() {
    ids_of_removed_instances_are_not_reused_in(Lab::new());
}

pub(crate) fn ids_of_removed_instances_are_not_reused_in(lab: Lab) {
    let lab = lab.with_shop_installed();
    lab.on("shop", "scale", &["-p", "node_id=web"]).assert_code(0);
    lab.on("shop", "scale", &["-p", "node_id=web", "-p", "delta=-1"]).assert_code(0);
    let out = lab.on("shop", "scale", &["-p", "node_id=web"]);
    out.assert_code(0);
    assert_eq!(lab.show("shop").keys().collect::<Vec<_>>(), ["database_1", "vm_1", "web_1", "web_2", "web_4"]);
}

// An instance's new state that the store could not write was printed and forgotten: install
// went on and "succeeded", and the stored deployment still had every instance uninitialized.
#[test]
fn an_instance_state_the_store_cannot_record_fails_the_run() {
    an_instance_state_the_store_cannot_record_fails_the_run_in(
        Lab::new(),
        "CREATE TRIGGER fail_instance_writes BEFORE INSERT ON deployment_instances
         BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END;",
    );
}

/// `fail_instance_writes`: SQL that makes every write of an instance fail with "disk I/O
/// error (injected)".
pub(crate) fn an_instance_state_the_store_cannot_record_fails_the_run_in(lab: Lab, fail_instance_writes: &str) {
    lab.create("shop", &example(THREE_TIER));
    lab.alter_store(fail_instance_writes);
    let out = lab.on("shop", "install", &[]);
    out.assert_code(1);
    let said = out.stderr.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
    assert!(
        said.contains("in deployment shop was not recorded") && said.contains("disk I/O error (injected)"),
        "{said}"
    );
    assert_ne!(out.events.final_status(), Some("workflow_succeeded"));
    assert!(lab.states("shop").values().all(|s| s == "uninitialized"), "{:?}", lab.states("shop"));
}

// An operation's success was not waited for until the store had committed it: when that
// commit failed, the operations that depend on it (configure after create) ran anyway.
#[test]
fn an_operation_whose_success_is_not_recorded_stops_the_install() {
    let lab = Lab::new();
    lab.create("shop", &example(THREE_TIER));
    lab.alter_store(
        "CREATE TRIGGER fail_success_commits BEFORE UPDATE OF tasks_done ON executions
         WHEN NEW.tasks_done > OLD.tasks_done
         BEGIN SELECT RAISE(ABORT, 'disk I/O error (injected)'); END;",
    );
    let out = lab.on("shop", "install", &[]);
    out.assert_code(1);
    let ran: Vec<String> = operations(&out.events).into_iter().map(|(op, _)| op).collect();
    assert!(ran.iter().all(|op| op == "lifecycle.create"), "ran on top of an unrecorded create: {ran:?}");
}

// Stored runtime properties that did not read as a JSON object were read as `{}` (and written
// back so on the next change); damaged instance numbers as none given out, so ids came again.
#[test]
fn damaged_instance_data_is_reported() {
    damaged_instance_data_is_reported_in(Lab::new);
}

/// Each damage done to a store of its own, in a lab `new_lab` makes.
pub(crate) fn damaged_instance_data_is_reported_in(new_lab: fn() -> Lab) {
    for (damage, why) in [
        (
            "UPDATE {deployment_instances} SET runtime_properties = 'not json' WHERE id = 'vm_1'",
            "runtime properties of vm_1",
        ),
        ("UPDATE {deployments} SET counters = '{\"web\": '", "instance numbers of deployment shop"),
        ("UPDATE {deployment_instances} SET node_id = 'ghost' WHERE id = 'vm_1'", "of node `ghost`"),
    ] {
        let lab = new_lab().with_shop_installed();
        lab.alter_store(&lab.tables_in(damage));
        let run = lab.on("shop", "scale", &["-p", "node_id=web"]);
        run.assert_code(2);
        let said = run.stderr.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
        assert!(said.contains("is damaged or not a rhaiflow store") && said.contains(why), "{damage}:\n{said}");
        assert!(run.events.0.is_empty(), "nothing ran on a guess");
    }
    let lab = new_lab().with_shop_installed();
    lab.alter_store(&lab.tables_in("UPDATE {deployment_instances} SET runtime_properties = '[]' WHERE id = 'web_1'"));
    for command in [&["deployments", "show", "shop"][..], &["deployments", "list"]] {
        let out = lab.cli(&[command, &["--store", &lab.store()]].concat());
        out.assert_code(2);
        assert!(out.stderr.contains("runtime properties of web_1"), "{command:?}:\n{}", out.stderr);
    }
}

// scale computed the wanted count from the node's total over all containers and applied it
// per container: +1 on a node with 2 instances in each of 2 hosts gave every host 5.
#[test]
fn scaling_a_node_in_two_containers_adds_one_per_container() {
    let out = Lab::new().run(&["scale", "--blueprint", "deployments/model.yaml", "-p", "node_id=db"]);
    out.assert_code(0);
    let mut created: Vec<String> = operations(&out.events)
        .into_iter()
        .filter(|(op, i)| op == "lifecycle.create" && i.starts_with("db_"))
        .map(|(_, i)| i)
        .collect();
    // The two hosts' new dbs are installed in parallel: in either order.
    created.sort();
    assert_eq!(created, ["db_5", "db_6"], "one new db in each host");
}

#[test]
fn heal_of_a_web_server_reinstalls_its_vm_and_everything_on_it() {
    let lab = Lab::installed_shop();
    let out = lab.on("shop", "heal", &["-p", "node_instance_id=web_1"]);
    out.assert_code(0);
    assert_eq!(out.result(), json!({"healed": ["vm_1", "database_1", "web_1", "web_2"]}), "the host's subgraph");
    assert_eq!(
        operations_on(&out.events, "web_1"),
        [
            "lifecycle.stop",
            "relationship_lifecycle.unlink",
            "lifecycle.delete",
            "lifecycle.create",
            "relationship_lifecycle.preconfigure",
            "lifecycle.configure",
            "lifecycle.start",
        ]
    );
    assert_eq!(lab.log("web_1").len(), 4, "a fresh folder, installed again");
    assert_eq!(lab.log("web_2").len(), 4);
    assert_eq!(lab.log("database_1").len(), 3);
    let e = &out.events;
    assert_op_before(e, ("lifecycle.delete", "web_1"), ("lifecycle.stop", "database_1"));
    assert_op_before(e, ("lifecycle.delete", "database_1"), ("lifecycle.stop", "vm_1"));
    assert_op_before(e, ("lifecycle.start", "database_1"), ("lifecycle.create", "web_2"));
    assert!(lab.states("shop").values().all(|s| s == "started"));
    assert_eq!(lab.show("shop")["vm_1"].runtime_properties, json!({"ip": "10.0.0.1"}));
}

#[test]
fn execute_operation_on_chosen_nodes_by_dependency_order() {
    let lab = Lab::installed_shop();
    let out = lab.on(
        "shop",
        "execute_operation",
        &[
            "-p",
            "operation=lifecycle.configure",
            "-p",
            r#"node_ids=["web", "database"]"#,
            "-p",
            "run_by_dependency_order=true",
        ],
    );
    out.assert_code(0);
    assert_eq!(out.result(), json!(3), "three instances chosen");
    let mut touched: Vec<String> = operations(&out.events).into_iter().map(|(_, i)| i).collect();
    touched.sort();
    assert_eq!(touched, ["database_1", "web_1", "web_2"], "not the vm");
    assert_op_before(&out.events, ("lifecycle.configure", "database_1"), ("lifecycle.configure", "web_1"));
    assert_op_before(&out.events, ("lifecycle.configure", "database_1"), ("lifecycle.configure", "web_2"));
    assert_eq!(lab.log("web_1").last().map(String::as_str), Some("lifecycle.configure"));
    assert_eq!(
        node_events(&out.events).iter().filter(|(i, _)| i == "database_1").map(|(_, m)| m.as_str()).collect::<Vec<_>>(),
        ["Starting to execute operation lifecycle.configure", "Finished executing operation lifecycle.configure"]
    );
    assert!(lab.states("shop").values().all(|s| s == "started"), "execute_operation does not change states");
}

#[test]
fn uninstall_goes_sources_first_and_then_the_deployment_can_be_deleted() {
    uninstall_then_delete_in(Lab::new());
}

pub(crate) fn uninstall_then_delete_in(lab: Lab) {
    let lab = lab.with_shop_installed();
    let refused = lab.cli(&["deployments", "delete", "shop", "--store", &lab.store()]);
    refused.assert_code(2);
    assert!(refused.stderr.contains("still has installed instances"), "{}", refused.stderr);
    assert!(refused.stderr.contains("rhaiflow run uninstall --deployment shop"), "{}", refused.stderr);

    let out = lab.on("shop", "uninstall", &[]);
    out.assert_code(0);
    let e = &out.events;
    for web in ["web_1", "web_2"] {
        assert_eq!(operations_on(e, web), ["lifecycle.stop", "relationship_lifecycle.unlink", "lifecycle.delete"]);
        assert_op_before(e, ("lifecycle.delete", web), ("lifecycle.stop", "database_1"));
    }
    assert_eq!(operations_on(e, "database_1"), ["lifecycle.stop", "lifecycle.delete"]);
    assert_op_before(e, ("lifecycle.delete", "database_1"), ("lifecycle.stop", "vm_1"));
    assert_eq!(std::fs::read_dir(lab.root()).unwrap().count(), 0, "every instance's folder was deleted");
    assert!(lab.states("shop").values().all(|s| s == "deleted"), "{:?}", lab.states("shop"));

    let out = lab.on("shop", "uninstall", &[]);
    out.assert_code(0);
    assert!(operations(&out.events).is_empty(), "nothing left to uninstall");

    lab.cli(&["deployments", "delete", "shop", "--store", &lab.store()]).assert_code(0);
    assert_eq!(lab.cli(&["deployments", "list", "--store", &lab.store()]).stdout, "");
    let gone = lab.on("shop", "install", &[]);
    gone.assert_code(2);
}

#[test]
fn delete_with_force_forgets_an_installed_deployment() {
    let lab = Lab::installed_shop();
    let out = lab.cli(&["deployments", "delete", "shop", "--force", "--store", &lab.store()]);
    out.assert_code(0);
    assert_eq!(lab.cli(&["deployments", "list", "--store", &lab.store()]).stdout, "");
}

#[test]
fn tutorial_bundle_runs_an_operation_targets_first_on_the_three_tier_blueprint() {
    let lab = Lab::new();
    let tutorial = example("bundles/tutorial");
    let out = lab.run(&[
        tutorial.to_str().unwrap(),
        "run_operation",
        "--blueprint",
        example(THREE_TIER).to_str().unwrap(),
        "-p",
        "operation=lifecycle.configure",
        "-p",
        "type_name=three_tier.Service",
    ]);
    out.assert_code(0);
    assert_eq!(out.result(), json!(3), "the vm is no three_tier.Service");
    let messages = node_events(&out.events);
    let at = |instance: &str, message: &str| {
        messages
            .iter()
            .position(|(i, m)| i == instance && m == message)
            .unwrap_or_else(|| panic!("no `{message}` of {instance}: {messages:?}"))
    };
    assert_eq!(messages.len(), 6, "{messages:?}");
    for web in ["web_1", "web_2"] {
        assert!(at("database_1", "Done running operation on database") < at(web, "Starting to run operation on web"));
        assert!(at(web, "Starting to run operation on web") < at(web, "Done running operation on web"));
    }
    assert_op_before(&out.events, ("lifecycle.configure", "database_1"), ("lifecycle.configure", "web_2"));
    assert_eq!(lab.log("web_1"), ["lifecycle.configure"]);
    assert!(!lab.root().join("vm_1").exists(), "the vm's configure did not run");
}

#[test]
fn a_builtin_workflow_with_bad_parameters_runs_nothing() {
    let lab = Lab::new();
    let out = lab.run(&["scale", "--blueprint", example(THREE_TIER).to_str().unwrap(), "-p", "delta=many"]);
    out.assert_code(2);
    assert!(out.events.of_type("task_started").next().is_none(), "{}", out.events.summary());
    assert!(out.stderr.contains("`node_id` is mandatory"), "{}", out.stderr);
    assert!(out.stderr.contains("delta"), "{}", out.stderr);

    let out = lab.run(&["execute_operation", "--blueprint", example(THREE_TIER).to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("`operation` is mandatory"), "{}", out.stderr);

    let out = lab.run(&[
        "execute_operation",
        "--blueprint",
        example(THREE_TIER).to_str().unwrap(),
        "-p",
        "operation=lifecycle.start",
        "-p",
        "run_by_dependency_order=perhaps",
    ]);
    out.assert_code(2);
    assert!(out.stderr.contains("run_by_dependency_order"), "{}", out.stderr);

    let out = lab.run(&["heal", "--blueprint", example(THREE_TIER).to_str().unwrap(), "-p", "node_instance_id=web_9"]);
    out.assert_code(2);
    assert!(out.stderr.contains("the deployment has no node instance `web_9`"), "{}", out.stderr);
    assert!(out.events.of_type("task_started").next().is_none(), "{}", out.events.summary());
    assert!(!lab.root().exists(), "no operation ran");
}

#[test]
fn an_unknown_deployment_is_invalid_input() {
    an_unknown_deployment_is_invalid_input_in(Lab::new());
}

pub(crate) fn an_unknown_deployment_is_invalid_input_in(lab: Lab) {
    let out = lab.on("nosuch", "install", &[]);
    out.assert_code(2);
    assert!(out.events.0.is_empty(), "{}", out.events.summary());
    assert!(out.stderr.contains("no deployment named `nosuch`"), "{}", out.stderr);
    assert!(out.stderr.contains("rhaiflow deployments list"), "says where to look:\n{}", out.stderr);
    let show = lab.cli(&["deployments", "show", "nosuch", "--store", &lab.store()]);
    show.assert_code(2);
    assert!(show.stderr.contains("no deployment named `nosuch`"), "{}", show.stderr);
}

#[test]
fn a_deployment_name_is_created_once() {
    a_deployment_name_is_created_once_in(Lab::new());
}

pub(crate) fn a_deployment_name_is_created_once_in(lab: Lab) {
    lab.create("shop", &example(THREE_TIER));
    let again = lab.cli(&[
        "deployments",
        "create",
        "shop",
        "--blueprint",
        example(THREE_TIER).to_str().unwrap(),
        "--store",
        &lab.store(),
    ]);
    again.assert_code(2);
    assert!(again.stderr.contains("a deployment named `shop` exists already"), "{}", again.stderr);
    let bad = lab.cli(&[
        "deployments",
        "create",
        "my-shop",
        "--blueprint",
        "deployments/model.yaml",
        "--store",
        &lab.store(),
    ]);
    bad.assert_code(2);
    assert!(bad.stderr.contains("cannot name a deployment"), "{}", bad.stderr);
}

// ---------------------------------------------------------------------------------------
// A killed install

/// Waits (at most 20 s) until `events` holds `count` events matching `pred`.
fn wait_for_events(events: &Path, count: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found: Vec<Value> = Events::read(events).0.into_iter().filter(|e| pred(e)).collect();
        if found.len() >= count {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "not {count} matching events within 20 s:\n{}",
            Events::read(events).summary()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Installs `slow.yaml` as deployment `slow` and kills the run with SIGKILL while every
/// worker's start waits; then lets the orphaned start scripts end. Returns the execution id.
fn kill_install_half_way(lab: &Lab) -> String {
    lab.create("slow", &blueprint("slow.yaml"));
    let events = lab.dir.path().join("killed.jsonl");
    let mut child = lab.spawn_install("slow", &events);
    let waiting = wait_for_events(&events, 3, |e| {
        e["type"] == "task_started" && e["task"] == "lifecycle.start" && e["node_instance"] != "base_1"
    });
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::write(lab.record().join("release"), "").unwrap();
    waiting[0]["execution_id"].as_str().unwrap().to_string()
}

/// How many times each instance's create script ran.
fn creates(lab: &Lab) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in std::fs::read_to_string(lab.record().join("creates")).unwrap_or_default().lines() {
        *counts.entry(line.to_string()).or_default() += 1;
    }
    counts
}

// Each script operation's runtime properties file was left in the temp folder when the run
// was killed while the operation ran.
#[test]
fn a_killed_run_leaves_no_runtime_properties_file_behind() {
    let lab = Lab::new();
    kill_install_half_way(&lab);
    let left: Vec<_> = std::fs::read_dir(lab.temp())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with("rhaiflow-builtin-"))
        .collect();
    assert!(left.is_empty(), "left in the temp folder: {left:?}");
}

// `executions resume` of an install on a stored deployment rebuilt the graph from the
// states the killed run had stored, skipping steps, and so refused it as a different graph.
#[test]
fn a_killed_install_is_finished_by_executions_resume() {
    killed_install_finished_by_resume_in(Lab::new());
}

pub(crate) fn killed_install_finished_by_resume_in(lab: Lab) {
    let id = kill_install_half_way(&lab);
    let resume = lab.cli(&["executions", "resume", &id, "--store", &lab.store()]);
    resume.assert_code(0);
    for (instance, n) in creates(&lab) {
        assert!((1..=2).contains(&n), "{instance} was created {n} times: at least once, at most once more");
    }
    assert_eq!(creates(&lab).len(), 4);
    assert!(lab.states("slow").values().all(|s| s == "started"), "{:?}", lab.states("slow"));
}

#[test]
fn a_killed_install_is_finished_by_running_install_again() {
    let lab = Lab::new();
    kill_install_half_way(&lab);
    let states = lab.states("slow");
    assert_eq!(states["base_1"], "started");
    for worker in ["worker_1", "worker_2", "worker_3"] {
        assert_eq!(states[worker], "configured", "the state each reached was stored as it changed");
    }
    let out = lab.on("slow", "install", &[]);
    out.assert_code(0);
    assert_eq!(
        operations(&out.events).into_iter().map(|(op, _)| op).collect::<Vec<_>>(),
        ["lifecycle.start", "lifecycle.start", "lifecycle.start"],
        "only what the killed run had not finished"
    );
    assert_eq!(
        creates(&lab),
        BTreeMap::from([("base_1".into(), 1), ("worker_1".into(), 1), ("worker_2".into(), 1), ("worker_3".into(), 1)])
    );
    assert!(lab.states("slow").values().all(|s| s == "started"), "{:?}", lab.states("slow"));
}

// ---------------------------------------------------------------------------------------
// Output

// Printing the result to a closed stdout (`rhaiflow run ... | head -c 100`) panicked with
// "failed printing to stdout: Broken pipe".
#[test]
fn a_closed_stdout_does_not_panic() {
    let lab = Lab::new();
    let mut child = StdCommand::cargo_bin("rhaiflow")
        .unwrap()
        .current_dir(fixtures())
        .envs(lab.envs())
        .args(["run", "deployments/model.rhai", "--blueprint", "deployments/model.yaml", "--ephemeral", "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

// ---------------------------------------------------------------------------------------
// The built-in workflows as Cloudify orders them (issue 15): unlink in reverse, heal of a
// host's subgraph, relationships of instances outside a workflow's set, dependency order
// through nodes not chosen, a modification's node counts, target-side operations.

/// `rhaiflow run WORKFLOW --deployment NAME -p PARAM…` through the shared `Run` builder, in
/// the lab's store and environment.
fn run_on(lab: &Lab, deployment: &str, workflow: &str, params: &[(&str, &str)]) -> Outcome {
    let mut run = Run::new(workflow).args(["--deployment", deployment]).store_at(lab.store());
    for (key, value) in lab.envs() {
        run = run.env(key, value.to_str().unwrap());
    }
    for (key, value) in params {
        run = run.param(key, value);
    }
    run.output()
}

/// The lines `record_op.sh` appended, in order (`OPERATION INSTANCE [-> TARGET]`).
fn recorded_ops(lab: &Lab) -> Vec<String> {
    let text = std::fs::read_to_string(lab.record().join("ops")).unwrap_or_default();
    text.lines().map(str::to_string).collect()
}

/// A lab with `blueprint` (a deployments fixture) created as `name` and installed.
fn installed(blueprint_name: &str, name: &str) -> Lab {
    let lab = Lab::new();
    lab.create(name, &blueprint(blueprint_name));
    run_on(&lab, name, "install", &[]).assert_code(0);
    lab
}

// Uninstall ran an instance's unlink operations in the order its relationships are declared,
// not in the reverse (Cloudify's `_relationships_operations(reverse=True)`).
#[test]
fn uninstall_unlinks_relationships_in_reverse_declaration_order() {
    let lab = installed("relationship_order.yaml", "order");
    let establish = recorded_ops(&lab);
    assert_eq!(
        establish,
        ["relationship_lifecycle.establish app_1 -> first_1", "relationship_lifecycle.establish app_1 -> second_1",]
    );
    std::fs::remove_file(lab.record().join("ops")).unwrap();
    let out = run_on(&lab, "order", "uninstall", &[]);
    out.assert_code(0);
    assert_eq!(
        recorded_ops(&lab),
        ["relationship_lifecycle.unlink app_1 -> second_1", "relationship_lifecycle.unlink app_1 -> first_1"]
    );
    let e = &out.events;
    assert_eq!(operations_on(e, "app_1"), ["lifecycle.stop", "relationship_lifecycle.unlink", "lifecycle.delete"]);
    assert_op_before(e, ("lifecycle.delete", "app_1"), ("lifecycle.stop", "second_1"));
}

// Heal reinstalled only the instance named and what it contains, not its host, and left the
// instances related to it with relationships to an instance that was torn down (Cloudify's
// `test_heal_correct_order`: unlink before the teardown, establish after the reinstall).
#[test]
fn heal_reinstalls_the_host_subgraph_and_relinks_the_instances_related_to_it() {
    let lab = installed("heal_order.yaml", "heal");
    std::fs::remove_file(lab.record().join("ops")).unwrap();
    let out = run_on(&lab, "heal", "heal", &[("node_instance_id", "app_1")]);
    out.assert_code(0);
    assert_eq!(out.result(), json!({"healed": ["host_1", "app_1"]}), "the host and what it contains");
    assert_eq!(
        recorded_ops(&lab),
        [
            "lifecycle.stop app_1",
            "relationship_lifecycle.unlink peer_1 -> host_1",
            "lifecycle.stop host_1",
            "lifecycle.create host_1",
            "relationship_lifecycle.establish peer_1 -> host_1",
            "lifecycle.create app_1",
        ]
    );
    let e = &out.events;
    assert_op_before(e, ("lifecycle.stop", "app_1"), ("relationship_lifecycle.unlink", "peer_1"));
    assert_op_before(e, ("relationship_lifecycle.unlink", "peer_1"), ("lifecycle.stop", "host_1"));
    assert_op_before(e, ("lifecycle.start", "host_1"), ("relationship_lifecycle.establish", "peer_1"));
    assert_op_before(e, ("relationship_lifecycle.establish", "peer_1"), ("lifecycle.create", "app_1"));
    let touched: Vec<(String, String)> =
        operations(e).into_iter().filter(|(_, i)| i == "peer_1" || i == "bystander_1").collect();
    assert_eq!(
        touched,
        [
            ("relationship_lifecycle.unlink".to_string(), "peer_1".to_string()),
            ("relationship_lifecycle.establish".to_string(), "peer_1".to_string())
        ],
        "the peer only relinks; the bystander is left alone"
    );
    assert!(lab.states("heal").values().all(|s| s == "started"), "{:?}", lab.states("heal"));
}

// Scaling a relationship target neither established the existing sources' relationships to
// the new instances nor unlinked them from the removed ones.
#[test]
fn scale_relinks_the_sources_of_added_and_removed_instances() {
    let lab = installed("scale_relink.yaml", "scale");
    std::fs::remove_file(lab.record().join("ops")).unwrap();
    let out = run_on(&lab, "scale", "scale", &[("node_id", "db"), ("delta", "1")]);
    out.assert_code(0);
    assert_eq!(recorded_ops(&lab), ["lifecycle.create db_2", "relationship_lifecycle.establish app_1 -> db_2"]);
    assert_op_before(&out.events, ("lifecycle.start", "db_2"), ("relationship_lifecycle.establish", "app_1"));

    std::fs::remove_file(lab.record().join("ops")).unwrap();
    let out = run_on(&lab, "scale", "scale", &[("node_id", "db"), ("delta", "-1")]);
    out.assert_code(0);
    assert_eq!(
        recorded_ops(&lab),
        ["relationship_lifecycle.unlink app_1 -> db_2", "lifecycle.stop db_2", "lifecycle.delete db_2"]
    );
    assert_op_before(&out.events, ("relationship_lifecycle.unlink", "app_1"), ("lifecycle.stop", "db_2"));
    let shown: Vec<String> = lab.show("scale").into_keys().collect();
    assert_eq!(shown, ["app_1", "db_1"]);
}

// A scale-out whose install failed rolled the modification back but left what it had created
// (db_2's create ran; nothing deleted it).
#[test]
fn a_failed_scale_out_uninstalls_what_it_created_and_rolls_back() {
    let lab = installed("scale_relink.yaml", "scale");
    std::fs::remove_file(lab.record().join("ops")).unwrap();
    std::fs::write(lab.record().join("fail db_2 lifecycle.create"), "").unwrap();
    let out = run_on(&lab, "scale", "scale", &[("node_id", "db"), ("delta", "1")]);
    out.assert_code(1);
    assert_eq!(
        recorded_ops(&lab),
        [
            "lifecycle.create db_2",
            "relationship_lifecycle.unlink app_1 -> db_2",
            "lifecycle.stop db_2",
            "lifecycle.delete db_2",
        ]
    );
    assert_op_before(&out.events, ("lifecycle.create", "db_2"), ("lifecycle.delete", "db_2"));
    assert_eq!(out.events.of_task("task_failed", "lifecycle.create").count(), 1);
    let states = lab.states("scale");
    assert_eq!(states.keys().collect::<Vec<_>>(), ["app_1", "db_1"], "the modification was rolled back");
    assert!(states.values().all(|s| s == "started"), "{states:?}");
}

// With run_by_dependency_order, chosen instances waited only for chosen instances they relate
// to directly: front -> middle -> back with middle not chosen ran front and back together.
#[test]
fn execute_operation_by_dependency_order_follows_relationships_through_nodes_not_chosen() {
    let lab = Lab::new();
    lab.create("chain", &blueprint("indirect_order.yaml"));
    let params = [
        ("operation", "lifecycle.configure"),
        ("node_ids", r#"["front", "back"]"#),
        ("run_by_dependency_order", "true"),
    ];
    let out = run_on(&lab, "chain", "execute_operation", &params);
    out.assert_code(0);
    assert_eq!(out.result(), json!(2), "two instances chosen");
    assert_op_before(&out.events, ("lifecycle.configure", "back_1"), ("lifecycle.configure", "front_1"));
    assert_eq!(recorded_ops(&lab), ["lifecycle.configure back_1", "lifecycle.configure front_1"], "not middle");
}

// During a modification a node already counted the instances it added, so `use_modify`
// (which compares the count after start_modification) took the scale-in branch on a
// scale-out and did nothing.
#[test]
fn a_node_reports_its_instance_count_until_the_modification_finishes() {
    let out = Run::new("deployments/use_modify.rhai")
        .args(["--blueprint", "deployments/scale_relink.yaml"])
        .ephemeral()
        .output();
    out.assert_code(0);
    assert_eq!(
        out.result(),
        json!({
            "up": {"going_up": true, "touched": ["db_2", "db_3"], "after": 3},
            "down": {"going_up": false, "touched": ["db_2", "db_3"], "after": 1},
        })
    );
    let events: Vec<(String, String)> = node_events(&out.events);
    let expected = [("db_2", "added"), ("db_3", "added"), ("db_2", "removed"), ("db_3", "removed")];
    let mut sorted_up = events[..2].to_vec();
    sorted_up.sort();
    let mut sorted_down = events[2..].to_vec();
    sorted_down.sort();
    assert_eq!(
        [sorted_up, sorted_down].concat(),
        expected.map(|(i, m)| (i.to_string(), m.to_string())),
        "the adds, then the removals"
    );
}

// A target-side relationship operation ran with the source's identity: RHAIFLOW_NODE,
// RHAIFLOW_INSTANCE, ctx.instance and its events' node_instance all named the source.
#[test]
fn a_target_side_relationship_operation_runs_with_the_target_identity() {
    let lab = Lab::new();
    lab.install_depops();
    lab.create("side", &blueprint("target_side.yaml"));
    let out = run_on(&lab, "side", "install", &[]);
    out.assert_code(0);

    let target = recorded_env(&lab, "store_1.relationship_lifecycle.establish");
    assert_eq!(target["RHAIFLOW_NODE"], "store");
    assert_eq!(target["RHAIFLOW_INSTANCE"], "store_1");
    assert_eq!(json_of(&target["RHAIFLOW_PROPERTIES"]), json!({"port": 5432}));
    assert_eq!(json_of(&target["RUNTIME_PROPERTIES_FILE"]), json!({"from_script": "store_1", "before": {}}));
    assert_eq!(
        (target["RHAIFLOW_SOURCE_INSTANCE"].as_str(), target["RHAIFLOW_TARGET_INSTANCE"].as_str()),
        ("feeder_1", "store_1")
    );
    let source = recorded_env(&lab, "feeder_1.relationship_lifecycle.establish");
    assert_eq!((source["RHAIFLOW_NODE"].as_str(), source["RHAIFLOW_INSTANCE"].as_str()), ("feeder", "feeder_1"));
    assert_eq!(json_of(&source["RHAIFLOW_PROPERTIES"]), json!({"port": 80}));

    let e = &out.events;
    let establish: Vec<String> = operations(e)
        .into_iter()
        .filter(|(op, _)| op == "relationship_lifecycle.establish")
        .map(|(_, instance)| instance)
        .collect();
    assert_eq!(establish, ["feeder_1", "store_1"], "the source end, then the target end");
    let done = e
        .of_type("task_succeeded")
        .find(|t| t["task"] == "relationship_lifecycle.postconfigure")
        .unwrap_or_else(|| panic!("no postconfigure:\n{}", e.summary()));
    assert_eq!(done["node_instance"], "store_1");
    assert_eq!(done["result"], json!({"node": "store", "instance": "store_1"}));
}

// What the listing commands say of deployment runs

// `executions show` of an install listed a `set_state` and a `lifecycle.create` row per
// instance with nothing saying which instance each was, nor what deployment the run was on.
#[test]
fn executions_show_names_the_deployment_and_the_instance_of_each_task() {
    let lab = Lab::new();
    lab.create("shop", &example(THREE_TIER));
    let run = lab.on("shop", "install", &[]);
    run.assert_code(0);
    let show = lab.cli(&["executions", "show", &run.execution_id(), "--store", &lab.store()]);
    show.assert_code(0);
    assert!(show.stdout.lines().any(|l| l == "deployment  shop"), "{}", show.stdout);
    let header = show.stdout.lines().find(|l| l.starts_with("TASK")).unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["TASK", "INSTANCE", "KIND", "STATE", "ATTEMPTS", "ERROR"]
    );
    let created: Vec<&str> = show
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|words| words.first() == Some(&"lifecycle.create"))
        .map(|words| words[1])
        .collect();
    let instances: Vec<String> = lab.show("shop").into_keys().collect();
    let mut sorted = created.clone();
    sorted.sort();
    assert_eq!(sorted, instances, "one lifecycle.create row per instance, each naming it:\n{}", show.stdout);

    let events = lab.cli(&["executions", "events", &run.execution_id(), "--store", &lab.store()]);
    let started = |what: &str| events.stdout.lines().any(|l| l.contains("task_started") && l.ends_with(what));
    assert!(started("  vm_1 lifecycle.create") && started("  web_2 lifecycle.start"), "{}", events.stdout);
    assert!(events.stdout.lines().any(|l| l.ends_with("  vm_1: Creating node instance")), "{}", events.stdout);
}

// `deployments list` and `bundle list` printed tab-separated text only: nothing a script could
// read without guessing at the columns.
#[test]
fn deployments_and_bundles_list_as_json() {
    let lab = Lab::new();
    let empty = lab.cli(&["deployments", "list", "--json", "--store", &lab.store()]);
    empty.assert_code(0);
    assert_eq!(json_of(&empty.stdout), json!([]));
    assert_eq!(json_of(&lab.cli(&["bundle", "list", "--json"]).stdout), json!([]));

    lab.install_depops();
    lab.create("shop", &example(THREE_TIER));
    let deployments = json_of(&lab.cli(&["deployments", "list", "--json", "--store", &lab.store()]).stdout);
    assert_eq!(deployments.as_array().map(Vec::len), Some(1), "{deployments}");
    let shop = &deployments[0];
    assert_eq!(
        (&shop["name"], &shop["instances"], &shop["states"]),
        (&json!("shop"), &json!(4), &json!({"uninitialized": 4}))
    );
    assert!(shop["blueprint"].as_str().unwrap().ends_with("three_tier/blueprint.yaml"), "{shop}");
    assert!(shop["created_at"].is_string(), "{shop}");

    let bundles = json_of(&lab.cli(&["bundle", "list", "--json"]).stdout);
    let depops = &bundles[0];
    assert_eq!((&depops["name"], &depops["version"]), (&json!("depops"), &json!("1.0.0")), "{bundles}");
    assert_eq!(depops["workflows"], json!(["states"]));
    assert_eq!(depops["description"], "operations for the deployment tests");
}

// The command line of deployments: what a run is pointed at, names shown, the list

// `rhaiflow run install` with neither --deployment nor --blueprint ran on no instance and
// said "✔ workflow succeeded · 0 tasks", exit 0.
#[test]
fn a_builtin_workflow_without_a_deployment_is_refused() {
    let lab = Lab::new();
    for workflow in ["install", "uninstall", "heal"] {
        let out = lab.run(&[workflow]);
        out.assert_code(2);
        assert!(out.events.0.is_empty(), "nothing ran:\n{}", out.events.summary());
        assert!(out.stderr.contains("it needs a deployment to work on"), "{}", out.stderr);
        assert!(out.stderr.contains("--deployment NAME") && out.stderr.contains("--blueprint FILE"), "{}", out.stderr);
    }
}

// `--blueprint blueprint.yaml` (no folder in the path) gave the blueprint an empty folder: every
// script operation failed with "cannot start `sh` (in )".
#[test]
fn a_blueprint_named_without_a_folder_runs_its_scripts() {
    let lab = Lab::new();
    let mut command = lab.command();
    command.current_dir(example("three_tier"));
    let out = cli_of(command.args(["run", "install", "--blueprint", "blueprint.yaml", "--ephemeral", "-q"]));
    out.assert_code(0);
    assert_eq!(lab.log("database_1"), ["lifecycle.create", "lifecycle.configure", "lifecycle.start"]);
    // A stored deployment keeps the blueprint's folder, wherever it then runs from.
    let lab = Lab::new();
    let mut command = lab.command();
    command.current_dir(example("three_tier"));
    let store = lab.store();
    cli_of(command.args(["deployments", "create", "bare", "--blueprint", "blueprint.yaml", "--store", &store]))
        .assert_code(0);
    lab.on("bare", "install", &[]).assert_code(0);
    assert_eq!(lab.log("database_1"), ["lifecycle.create", "lifecycle.configure", "lifecycle.start"]);
}

// Diagnostics about a built-in workflow pointed into `/tmp/rhaiflow-builtin-<hash>/…`, the
// folder it is unpacked into.
#[test]
fn diagnostics_name_builtin_files_by_their_builtin_name() {
    let lab = Lab::new();
    let out = lab.run(&["heal", "--blueprint", example(THREE_TIER).to_str().unwrap(), "-p", "node_instance_id=web_9"]);
    out.assert_code(2);
    assert!(out.stderr.contains("[builtin:lifecycle.rhai:"), "{}", out.stderr);
    let out = lab.run(&["scale", "--blueprint", example(THREE_TIER).to_str().unwrap(), "-p", "delta=many"]);
    out.assert_code(2);
    assert!(out.stderr.contains("[builtin:plugin.yaml:"), "{}", out.stderr);
    for out in [&out.stderr, &lab.run(&["install", "--blueprint", "deployments/invalid.yaml"]).stderr] {
        assert!(!out.contains("rhaiflow-builtin-"), "the scratch folder is named:\n{out}");
    }
    // The execution records it so too.
    let installed = lab.run(&["install", "--blueprint", example(THREE_TIER).to_str().unwrap()]);
    installed.assert_code(0);
    let shown = lab.cli(&["executions", "show", &installed.execution_id(), "--store", &lab.store()]);
    assert!(shown.stdout.contains("builtin:lifecycle.rhai"), "{}", shown.stdout);
    assert!(!shown.stdout.contains("rhaiflow-builtin-"), "{}", shown.stdout);
}

// `deployments list` printed rows without saying what the columns are; a missing deployment
// was "the execution store failed: there is no deployment …", as if the store were broken.
#[test]
fn deployments_list_has_a_header_and_a_missing_deployment_is_named() {
    let lab = Lab::new();
    lab.create("shop", &example(THREE_TIER));
    let list = lab.cli(&["deployments", "list", "--store", &lab.store()]);
    list.assert_code(0);
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines[0], "NAME\tINSTANCES\tCREATED\tBLUEPRINT", "{}", list.stdout);
    assert!(lines[1].starts_with("shop\t4 instances (4 uninitialized)\t"), "{}", list.stdout);
    for command in [
        &["deployments", "show", "nosuch"][..],
        &["deployments", "delete", "nosuch"],
        &["run", "install", "--deployment", "nosuch"],
    ] {
        let out = lab.cli(&[command, &["--store", &lab.store()]].concat());
        out.assert_code(2);
        assert!(out.stderr.contains("no deployment named `nosuch`"), "{command:?}:\n{}", out.stderr);
        assert!(!out.stderr.contains("the execution store failed"), "{command:?}:\n{}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------
// One execution at a time on a stored deployment

/// A background run that ends with the test, passed or failed: killed, and the operations it
/// left waiting released (they would wait for ever once the lab's folder is gone).
struct Released {
    child: Child,
    release: PathBuf,
}

impl Released {
    fn new(lab: &Lab, child: Child) -> Released {
        Released { child, release: lab.record().join("release") }
    }
}

impl Drop for Released {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::write(&self.release, "");
    }
}

/// Waits (at most 20 s) for `child` to end; its exit code.
fn exit_code_within(child: &mut Child, what: &str) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not end within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// A second install (or an uninstall) on a deployment that an install was running on ran
// beside it, both changing the same instances.
#[test]
fn a_second_execution_on_a_busy_deployment_is_refused_until_the_first_is_gone() {
    busy_deployment_refuses_a_second_execution_in(Lab::new());
}

pub(crate) fn busy_deployment_refuses_a_second_execution_in(lab: Lab) {
    lab.create("slow", &blueprint("slow.yaml"));
    let events = lab.dir.path().join("first.jsonl");
    let first = lab.spawn_install("slow", &events);
    let first = Released::new(&lab, first);
    let started = wait_for_events(&events, 1, |e| e["type"] == "task_started" && e["task"] == "lifecycle.start");
    let running = started[0]["execution_id"].as_str().unwrap().to_string();
    for workflow in ["install", "uninstall"] {
        let refused = lab.on("slow", workflow, &[]);
        refused.assert_code(2);
        assert!(refused.events.0.is_empty(), "{workflow} ran:\n{}", refused.events.summary());
        let said = refused.stderr.split_whitespace().filter(|w| *w != "│").collect::<Vec<_>>().join(" ");
        assert!(said.contains("deployment `slow` is busy"), "{said}");
        assert!(said.contains(&format!("execution {running} (install) is running on it")), "{said}");
        assert!(said.contains(&format!("rhaiflow executions cancel {running}")), "{said}");
    }
    // Killed, the install crashed: it holds the deployment no more.
    drop(first);
    lab.on("slow", "install", &[]).assert_code(0);
    assert!(lab.states("slow").values().all(|s| s == "started"), "{:?}", lab.states("slow"));
}

// Two installs started at the same moment on one deployment: both saw it free, both ran.
#[test]
fn of_two_executions_started_together_on_a_deployment_one_is_refused() {
    let lab = Lab::new();
    lab.create("slow", &blueprint("slow.yaml"));
    let store = lab.store();
    let mut runs: Vec<Released> = (0..2)
        .map(|_| Released::new(&lab, lab.spawn(&["run", "install", "--deployment", "slow", "--store", &store])))
        .collect();
    // The refused one ends at once; the other waits for the release in its start operations.
    let deadline = Instant::now() + Duration::from_secs(20);
    let refused = loop {
        if let Some(i) = runs.iter_mut().position(|r| r.child.try_wait().unwrap().is_some()) {
            break i;
        }
        if Instant::now() > deadline {
            std::fs::write(lab.record().join("release"), "").unwrap();
            let codes: Vec<_> = runs.iter_mut().map(|r| exit_code_within(&mut r.child, "an install")).collect();
            panic!("neither install was refused; they ended with {codes:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let refused_code = exit_code_within(&mut runs[refused].child, "the refused install");
    std::fs::write(lab.record().join("release"), "").unwrap();
    let other_code = exit_code_within(&mut runs[1 - refused].child, "the install that ran");
    assert_eq!((refused_code, other_code), (Some(2), Some(0)), "one refused (2), one ran (0)");
    assert_eq!(creates(&lab).values().copied().collect::<Vec<_>>(), [1, 1, 1, 1], "each instance created once");
}

// `executions resume` of a cancelled install took the execution over (status "running", in
// its process) before it learned that another install was running on the deployment: refused,
// it was left looking crashed.
#[test]
fn a_resume_on_a_busy_deployment_is_refused_and_leaves_the_execution_as_it_was() {
    let lab = Lab::new();
    lab.create("slow", &blueprint("slow.yaml"));
    let store = lab.store();
    let start = |events: &Path| {
        let child = lab.spawn_install("slow", events);
        let run = Released::new(&lab, child);
        let started = wait_for_events(events, 1, |e| e["type"] == "task_started" && e["task"] == "lifecycle.start");
        (run, started[0]["execution_id"].as_str().unwrap().to_string())
    };
    let (mut first, cancelled) = start(&lab.dir.path().join("first.jsonl"));
    lab.cli(&["executions", "cancel", &cancelled, "--force", "--store", &store]).assert_code(0);
    assert_eq!(exit_code_within(&mut first.child, "the cancelled install"), Some(3));
    let (_second, _) = start(&lab.dir.path().join("second.jsonl"));
    let resume = lab.cli(&["executions", "resume", &cancelled, "--store", &store]);
    resume.assert_code(2);
    assert!(resume.stderr.contains("deployment `slow` is busy"), "{}", resume.stderr);
    let shown = lab.cli(&["executions", "show", &cancelled, "--store", &store]);
    let status = shown.stdout.lines().find(|l| l.starts_with("status")).unwrap_or_default().to_string();
    assert!(status.ends_with(" cancelled"), "still cancelled, not taken over:\n{}", shown.stdout);
}

// `--ephemeral --deployment NAME` recorded no execution, so it ran beside any other on the
// deployment while it changed the stored instances.
#[test]
fn an_ephemeral_run_on_a_stored_deployment_is_refused() {
    let lab = Lab::new();
    lab.create("shop", &example(THREE_TIER));
    let mut command = lab.command();
    let out = cli_of(command.env("RHAIFLOW_STORE", lab.store()).args([
        "run",
        "install",
        "--deployment",
        "shop",
        "--ephemeral",
    ]));
    out.assert_code(2);
    assert!(out.stderr.contains("--ephemeral") && out.stderr.contains("--deployment"), "{}", out.stderr);
    assert!(!lab.root().exists(), "no operation ran");
}
