//! Bundles (docs/BUNDLES.md): a folder of `plugin.yaml` and Rhai modules, run by
//! workflow name with declared parameters; checked, tested, packed, installed, listed and
//! removed with `rhaiflow bundle`.
//!
//! The fixtures are real bundles under `tests/fixtures/bundles/`; what a test changes (a
//! version, a symlink, a byte of an archive) it changes in a copy in a scratch folder. Every
//! test that installs, or runs an archive (which is unpacked next to the installed bundles),
//! points `RHAIFLOW_BUNDLES` at a scratch folder of its own.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use insta::assert_snapshot;
use serde_json::json;
use sha2::{Digest, Sha256};
use tempfile::TempDir;

use crate::support::{cli, copy_bundle, copy_dir, example, fixtures, normalise, rhaiflow, Cli, Events, Outcome, Run};

/// `rhaiflow run bundles/NAME ARGS…` from the fixtures folder, without a store.
fn run(bundle: &str, args: &[&str]) -> Outcome {
    Run::new(format!("bundles/{bundle}")).args(args.iter().copied()).ephemeral().output()
}

/// The messages of the run's `workflow_event`s, in order.
fn messages(out: &Outcome) -> Vec<String> {
    out.events.of_type("workflow_event").map(|e| e["message"].as_str().unwrap().to_string()).collect()
}

/// The messages of the run's `log` events, in order.
fn logs(out: &Outcome) -> Vec<String> {
    out.events.of_type("log").map(|e| e["message"].as_str().unwrap().to_string()).collect()
}

/// Text as a snapshot may hold it: ids and timings replaced, the fixtures folder (which
/// bundle diagnostics show as an absolute path) and `(12 ms)` of `bundle test` too.
fn shown(text: &str) -> String {
    let mut text = text.to_string();
    for dir in [fixtures().canonicalize().unwrap(), fixtures()] {
        text = text.replace(&dir.display().to_string(), "[FIXTURES]");
    }
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find('(') {
        let (before, after) = rest.split_at(at + 1);
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && after[digits..].starts_with(" ms)") {
            out.push_str("[T])");
            rest = &after[digits + 4..];
        } else {
            rest = after;
        }
    }
    out.push_str(rest);
    normalise(&out)
}

/// A scratch registry of installed bundles, so no test touches the user's.
struct Registry {
    dir: TempDir,
}

impl Registry {
    fn new() -> Registry {
        Registry { dir: tempfile::tempdir().unwrap() }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `rhaiflow ARGS` in the fixtures folder with this registry.
    fn cli(&self, args: &[&str]) -> Cli {
        let output = rhaiflow()
            .env("RHAIFLOW_BUNDLES", self.path())
            .args(args)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        let out = Cli {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        crate::support::assert_no_panic(&out.stdout, &out.stderr);
        out
    }

    /// `rhaiflow run TARGET ARGS…` with this registry, its events collected, without a store.
    fn run(&self, target: &str, args: &[&str]) -> Outcome {
        let scratch = tempfile::tempdir().unwrap();
        let events = scratch.path().join("events.jsonl");
        let output = rhaiflow()
            .env("RHAIFLOW_BUNDLES", self.path())
            .arg("run")
            .arg(target)
            .args(args)
            .args(["--events-json", events.to_str().unwrap(), "--ephemeral"])
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap();
        Outcome::from_output(output.status.code(), &output.stdout, &output.stderr, Events::read(&events), scratch)
    }

    /// The `name\tversion\tworkflows` lines of `bundle list`.
    fn list(&self) -> Vec<String> {
        let out = self.cli(&["bundle", "list"]);
        out.assert_code(0);
        out.stdout.lines().map(str::to_string).collect()
    }
}

/// A copy of the `versioned` fixture with its version (in plugin.yaml and in what its
/// workflow returns) replaced by `version`.
fn versioned(version: &str, into: &Path) -> PathBuf {
    let dir = into.join(format!("versioned-{version}"));
    copy_dir(&fixtures().join("bundles/versioned"), &dir);
    for file in ["plugin.yaml", "flows.rhai"] {
        let text = std::fs::read_to_string(dir.join(file)).unwrap().replace("1.9.0", version);
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

/// `bundle pack DIR -o FILE`; returns the archive's bytes.
fn pack(dir: &Path, output: &Path) -> Vec<u8> {
    cli(&["bundle", "pack", dir.to_str().unwrap(), "-o", output.to_str().unwrap()]).assert_code(0);
    std::fs::read(output).unwrap()
}

/// An archive's entries: (path, header, contents), in order.
fn entries(archive: &[u8]) -> Vec<(String, tar::Header, Vec<u8>)> {
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    tar.entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            (entry.path().unwrap().display().to_string(), entry.header().clone(), bytes)
        })
        .collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------
// Running a bundle's workflows: parameters

#[test]
fn defaults_fill_in_and_the_workflow_gets_its_parameters_by_name() {
    let out = run("good", &["greet", "-p", "target=db1"]);
    out.assert_code(0);
    let result = out.result();
    let expected = json!({
        "target": "db1", "greeting": "Hello", "times": 2, "ratio": 0.5, "loud": false,
        "tags": ["blue"], "options": {"suffix": "!", "style": {"case": "lower", "width": 10}},
        "note": null,
    });
    for (key, value) in expected.as_object().unwrap() {
        assert_eq!(&result[key], value, "parameter `{key}`: {result}");
    }
    assert_eq!(result["types"], json!(["i64", "f64", "bool", "array", "map"]));
    assert_eq!(result["workflow"], "greet", "ctx is the context");
    assert_eq!(result["same_parameters"], true, "ctx.parameters holds what the function was given");
    assert_eq!(messages(&out), ["Hello, db1!", "Hello, db1!"]);
    let started = out.events.of_type("workflow_started").next().unwrap();
    assert_eq!(started["workflow"], "greet");
    assert_eq!(started["parameters"], expected, "the event records the parameters with their defaults");
    assert_eq!(out.events.final_status(), Some("workflow_succeeded"));
}

#[test]
fn given_strings_convert_to_the_declared_types_and_dicts_merge_over_their_defaults() {
    let out = run(
        "good",
        &[
            "greet",
            "-p",
            "target=db1",
            "-p",
            "greeting=Hey",
            "-p",
            r#"times="3""#,
            "-p",
            r#"ratio="5.0""#,
            "-p",
            "loud=TRUE",
            "-p",
            r#"tags=["x","y"]"#,
            "-p",
            r#"options={"style":{"width":3}}"#,
            "-p",
            "note=remember",
        ],
    );
    out.assert_code(0);
    let result = out.result();
    assert_eq!(result["times"], json!(3));
    assert_eq!(result["ratio"], json!(5.0));
    assert_eq!(result["loud"], json!(true));
    assert_eq!(result["tags"], json!(["x", "y"]));
    assert_eq!(
        result["options"],
        json!({"suffix": "!", "style": {"case": "lower", "width": 3}}),
        "the given dict is laid over the default key by key, nested keys too"
    );
    assert_eq!(result["note"], "remember");
    assert_eq!(result["types"], json!(["i64", "f64", "bool", "array", "map"]));
    assert_eq!(messages(&out), ["HEY, DB1!", "HEY, DB1!", "HEY, DB1!"]);
}

#[test]
fn a_params_file_is_merged_under_p() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("params.yaml");
    std::fs::write(&file, "target: web\ntimes: 4\ngreeting: Hi\noptions: {style: {case: upper}}\n").unwrap();
    let out = run("good", &["greet", "--params", file.to_str().unwrap(), "-p", "times=1"]);
    out.assert_code(0);
    let result = out.result();
    assert_eq!(result["times"], json!(1), "-p wins over the file");
    assert_eq!(result["greeting"], "Hi");
    assert_eq!(result["options"], json!({"suffix": "!", "style": {"case": "upper", "width": 10}}));
    assert_eq!(messages(&out), ["Hi, web!"]);
}

#[test]
fn every_bad_parameter_is_in_one_diagnostic_and_nothing_runs() {
    let out = run(
        "good",
        &[
            "greet",
            "-p",
            "times=lots",
            "-p",
            "colour=red",
            "-p",
            "loud=maybe",
            "-p",
            r#"tags={"a":1}"#,
            "-p",
            "options=[1]",
            "-p",
            "ratio=abc",
        ],
    );
    out.assert_code(2);
    assert!(out.events.0.is_empty(), "no events at all:\n{}", out.events.summary());
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert_eq!(out.stderr.matches("rhaiflow::parameters").count(), 1, "one diagnostic:\n{}", out.stderr);
    for expected in [
        "`colour` is not a parameter of `greet`",
        "`target` is mandatory and was not given",
        "`times` must be an integer, not \"lots\"",
        "`ratio` must be a float",
        "`loud` must be a boolean",
        "`tags` must be a list",
        "`options` must be a dict",
        "[bundles/good/plugin.yaml:",
    ] {
        assert!(out.stderr.contains(expected), "`{expected}` is missing:\n{}", out.stderr);
    }
    assert_snapshot!("bundle_bad_parameters", out.normalised_stderr());
}

#[test]
fn bad_parameters_from_a_params_file_are_refused_too() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("params.json");
    std::fs::write(&file, r#"{"target": "web", "times": [1], "extra": true}"#).unwrap();
    let out = run("good", &["greet", "--params", file.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.events.0.is_empty());
    assert!(out.stderr.contains("`times` must be an integer, not [1]"), "{}", out.stderr);
    assert!(out.stderr.contains("`extra` is not a parameter"), "{}", out.stderr);
}

#[test]
fn an_unknown_workflow_lists_the_workflows_of_the_bundle() {
    let out = run("good", &["deploy_everything"]);
    out.assert_code(2);
    assert!(out.events.0.is_empty());
    assert!(out.stderr.contains("no workflow `deploy_everything`"), "{}", out.stderr);
    for workflow in ["simple", "greet", "pipeline", "closures", "explode", "probe"] {
        assert!(out.stderr.contains(workflow), "`{workflow}` is listed:\n{}", out.stderr);
    }
}

#[test]
fn a_bundle_without_a_workflow_argument_lists_its_workflows() {
    let out = run("good", &[]);
    out.assert_code(2);
    assert!(out.events.0.is_empty());
    assert!(out.stderr.contains("bundle `good`: name one of its workflows"), "{}", out.stderr);
    for workflow in ["simple", "greet", "pipeline", "closures", "explode", "probe"] {
        assert!(out.stderr.contains(workflow), "`{workflow}` is listed:\n{}", out.stderr);
    }
}

#[test]
fn a_workflow_argument_after_a_script_is_refused() {
    let out = Run::new("params_echo.rhai").args(["greet"]).ephemeral().output();
    out.assert_code(2);
    assert!(out.events.0.is_empty());
    assert!(out.stderr.contains("only bundles do"), "{}", out.stderr);
}

// Found while writing these tests: a number given with -p is parsed as JSON before the
// declared type is known, so a `type: string` parameter gets the number re-printed.
#[test]
fn a_p_value_for_a_string_parameter_keeps_its_text() {
    for text in ["1.10", "1e3", "007", "0.50"] {
        let out = run("good", &["greet", "-p", &format!("target={text}")]);
        out.assert_code(0);
        assert_eq!(out.result()["target"], text);
    }
}

// ---------------------------------------------------------------------------------------
// Running a bundle's workflows: modules, closures, errors and limits

#[test]
fn a_module_in_a_subfolder_runs_with_the_stdlib() {
    let out = run("good", &["pipeline"]);
    out.assert_code(0);
    assert_eq!(out.result(), json!(3));
    assert_eq!(messages(&out), ["step one", "step two", "step three"]);

    let out = run("good", &["pipeline", "-p", r#"steps=["b","a"]"#]);
    out.assert_code(0);
    assert_eq!(out.result(), json!(2));
    assert_eq!(messages(&out), ["step b", "step a"]);
}

#[test]
fn task_revert_and_handler_closures_see_the_imports_of_their_module() {
    let out = run("good", &["closures"]);
    out.assert_code(1);
    let first = out.events.of_task("task_succeeded", "first").next().expect("`first` succeeded");
    assert_eq!(first["result"], "Hi, task", "the task closure called words::phrase");
    assert_eq!(logs(&out), ["HANDLER RAN", "reverted, Hi, task"], "the handler and the revert called words::");
    assert_eq!(out.events.of_task("task_reverted", "first").count(), 1);
    let last = out.events.of_task("task_failed", "last").next().expect("`last` failed");
    assert!(last["error"].as_str().unwrap().contains("failed, last"), "{last}");
    assert!(!out.stderr.contains("not found"), "{}", out.stderr);
    assert_eq!(out.events.final_status(), Some("workflow_failed"));
}

#[test]
fn an_error_in_an_imported_function_is_shown_in_that_module() {
    let out = run("good", &["explode"]);
    out.assert_code(1);
    assert!(out.stderr.contains("good/words.rhai:13:5]"), "{}", out.stderr);
    assert!(out.stderr.contains("cannot explode bundle"), "{}", out.stderr);
    assert_snapshot!("bundle_error_in_imported_module", shown(&out.stderr));
}

#[test]
fn an_imported_module_that_does_not_compile_is_shown_in_its_file() {
    let out = run("broken_module", &["deploy"]);
    out.assert_code(2);
    assert_eq!(out.events.of_type("task_started").count(), 0);
    assert!(out.stderr.contains("broken_module/helpers.rhai:6:1]"), "{}", out.stderr);
    assert_snapshot!("bundle_imported_module_does_not_compile", shown(&out.stderr));
}

#[test]
fn an_import_with_dotdot_or_an_absolute_path_is_refused() {
    let out = run("escape", &["inside"]);
    out.assert_code(0);
    assert_eq!(out.result(), json!("inside"), "imports inside the bundle work");

    // `../outside.rhai` exists next to the bundle: only the confinement stops the import.
    assert!(fixtures().join("bundles/outside.rhai").is_file());
    let out = run("escape", &["dotdot"]);
    out.assert_code(2);
    assert!(out.stderr.contains("escape/../outside"), "{}", out.stderr);
    assert!(out.stderr.contains("no `..`"), "{}", out.stderr);
    assert!(!out.stdout.contains("escaped"), "{}", out.stdout);

    let out = run("escape", &["absolute"]);
    out.assert_code(2);
    assert!(out.stderr.contains("/tmp/outside"), "{}", out.stderr);
    assert!(!out.stdout.contains("escaped"), "{}", out.stdout);
}

#[test]
fn an_import_through_a_symlink_leading_outside_the_bundle_is_refused() {
    let scratch = tempfile::tempdir().unwrap();
    let bundle = copy_bundle("escape", scratch.path());
    std::fs::copy(fixtures().join("bundles/outside.rhai"), scratch.path().join("outside.rhai")).unwrap();
    std::os::unix::fs::symlink("../outside.rhai", bundle.join("linked.rhai")).unwrap();
    assert!(bundle.join("linked.rhai").is_file(), "the link resolves");

    let out = Run::new(&bundle).args(["linked"]).ephemeral().output();
    out.assert_code(2);
    assert!(out.stderr.contains("leads outside its bundle"), "{}", out.stderr);
    assert!(!out.stdout.contains("escaped"), "{}", out.stdout);
}

#[test]
fn max_operations_stops_a_runaway_bundle_workflow() {
    let out = run("runaway", &["spin", "--max-operations", "10000"]);
    out.assert_code(1);
    assert!(out.stderr.contains("limit of 10000 operations (--max-operations)"), "{}", out.stderr);
    assert!(out.stderr.contains("runaway/flows.rhai"), "{}", out.stderr);
    assert_eq!(out.events.final_status(), Some("workflow_failed"));
}

#[test]
fn endless_recursion_in_a_bundle_workflow_is_stopped() {
    let out = run("runaway", &["recurse"]);
    out.assert_code(1);
    assert!(out.stderr.contains("levels deep"), "{}", out.stderr);
    assert_eq!(out.events.final_status(), Some("workflow_failed"));
}

// The function is called from a generated two-line script (`import …; module::spin()`); a
// limit error carries that script's position (line 2, column 1), which is then shown in the
// module's file, on whatever line 2 holds (here a blank line above `fn spin`).
#[test]
fn a_limit_stopping_a_bundle_workflow_points_into_its_function() {
    for (workflow, lines) in [("spin", 3..=9), ("recurse", 10..=17)] {
        let out = run("runaway", &[workflow, "--max-operations", "10000"]);
        out.assert_code(1);
        let at = out.stderr.split("runaway/flows.rhai:").nth(1).expect("the diagnostic shows flows.rhai");
        let line: usize = at.split(':').next().unwrap().parse().unwrap();
        assert!(lines.contains(&line), "`{workflow}` is shown at line {line}:\n{}", out.stderr);
    }
}

// ---------------------------------------------------------------------------------------
// Resume

#[test]
fn resume_reruns_a_failed_bundle_workflow_with_the_same_parameters() {
    let run = Run::new("bundles/good");
    let marker = run.scratch().join("marker");
    let first = run.args(["probe", "-p", &format!("marker={}", marker.display()), "-p", "label=second"]).output();
    let (scratch, store) = (first.scratch.path(), first.scratch.path().join("store"));
    first.assert_code(1);
    assert_eq!(first.events.outcome("wait_for_marker"), Some("task_failed"));
    let started = first.events.of_type("workflow_started").next().unwrap().clone();
    let id = started["execution_id"].as_str().unwrap().to_string();

    std::fs::write(&marker, "").unwrap();
    // From another folder: the bundle is found by the path recorded, not the working folder.
    let events = scratch.join("resumed.jsonl");
    let out = rhaiflow()
        .current_dir(scratch)
        .args(["executions", "resume", &id, "--store", store.to_str().unwrap()])
        .args(["--events-json", events.to_str().unwrap()])
        .env("USER", "carol")
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "\"second\"");

    let resumed = Events::read(&events);
    let again = resumed.of_type("workflow_started").next().expect("the resume starts the workflow");
    assert_eq!(again["resumed"], true);
    // Who resumed it is named, as a cancel names who asked (it was left out).
    assert_eq!(again["by"], "user carol");
    assert_eq!(again["workflow"], "probe");
    assert_eq!(again["execution_id"], id.as_str());
    assert_eq!(again["parameters"], started["parameters"], "the same parameters");
    assert_eq!(again["parameters"]["label"], "second");
    assert_eq!(resumed.outcome("wait_for_marker"), Some("task_succeeded"));
    let found: Vec<_> = resumed.of_type("workflow_event").map(|e| e["message"].clone()).collect();
    assert!(found.contains(&json!("found second")), "{}", resumed.summary());
    assert_eq!(resumed.final_status(), Some("workflow_succeeded"));
}

// ---------------------------------------------------------------------------------------
// check and graph

#[test]
fn check_of_a_good_bundle_summarises_its_workflows() {
    let out = cli(&["bundle", "check", "bundles/good"]);
    out.assert_code(0);
    assert!(out.stderr.contains("✔ bundle good 1.0.0: 3 modules compile, 6 workflows"), "{}", out.stderr);
    assert_snapshot!("bundle_check_good", out.stderr);

    let same = cli(&["check", "bundles/good"]);
    same.assert_code(0);
    assert_eq!(same.stderr, out.stderr, "`check BUNDLE` is `bundle check BUNDLE`");
}

#[test]
fn check_reports_every_manifest_problem_at_its_line() {
    let out = cli(&["bundle", "check", "bundles/bad_manifest"]);
    out.assert_code(2);
    assert!(out.stderr.contains("has 8 problems"), "{}", out.stderr);
    assert_snapshot!("bundle_check_bad_manifest", out.stderr);

    // A bundle whose manifest is wrong does not run either.
    let run = run("bad_manifest", &["typed"]);
    run.assert_code(2);
    assert!(run.events.0.is_empty());
    assert!(run.stderr.contains("has 8 problems"), "{}", run.stderr);
}

#[test]
fn check_reports_mappings_that_do_not_match_their_functions() {
    let out = cli(&["bundle", "check", "bundles/bad_mapping"]);
    out.assert_code(2);
    for expected in [
        "flows.rhai has no fn not_there",
        "there is no module nowhere.rhai",
        "fn mismatched takes `zone`, which is not declared",
        "`replicas` is declared, but fn mismatched does not take it",
    ] {
        assert!(out.stderr.contains(expected), "`{expected}` is missing:\n{}", out.stderr);
    }
    assert_snapshot!("bundle_check_bad_mapping", out.stderr);
    assert_eq!(cli(&["check", "bundles/bad_mapping"]).code, Some(2));
}

#[test]
fn check_reports_a_module_that_does_not_compile() {
    let out = cli(&["bundle", "check", "bundles/broken_module"]);
    out.assert_code(2);
    assert!(out.stderr.contains("helpers.rhai does not compile"), "{}", out.stderr);
    assert!(out.stderr.contains("helpers.rhai:6:1]"), "{}", out.stderr);
}

#[test]
fn check_of_a_folder_without_plugin_yaml_says_what_a_bundle_is() {
    let scratch = tempfile::tempdir().unwrap();
    let out = cli(&["bundle", "check", scratch.path().to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("plugin.yaml"), "{}", out.stderr);
    assert!(out.stderr.contains("rhaiflow bundle new"), "{}", out.stderr);
}

#[test]
fn graph_draws_a_bundle_workflow_without_running_it() {
    let scratch = tempfile::tempdir().unwrap();
    let marker = scratch.path().join("never");
    let out =
        cli(&["graph", "bundles/good", "probe", "-p", &format!("marker={}", marker.display()), "--format", "text"]);
    out.assert_code(0);
    assert_snapshot!("bundle_graph_probe_text", out.stdout);

    let missing = cli(&["graph", "bundles/good", "probe", "--format", "text"]);
    missing.assert_code(2);
    assert!(missing.stderr.contains("`marker` is mandatory"), "{}", missing.stderr);
}

// ---------------------------------------------------------------------------------------
// new and test

#[test]
fn a_new_bundle_passes_check_and_its_tests_and_runs() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().to_str().unwrap();
    let out = cli(&["bundle", "new", "shop", "--dir", dir]);
    out.assert_code(0);
    let bundle = scratch.path().join("shop");
    for file in ["plugin.yaml", "flows.rhai", "README.md"] {
        assert!(bundle.join(file).is_file(), "{file} is written");
    }
    let shop = bundle.to_str().unwrap();
    cli(&["bundle", "check", shop]).assert_code(0);
    let tested = cli(&["bundle", "test", shop]);
    tested.assert_code(0);
    assert!(tested.stderr.contains(" passed, 0 failed"), "{}", tested.stderr);
    assert!(!tested.stderr.contains("FAILED"), "{}", tested.stderr);

    let run = Run::new(&bundle).args(["deploy", "-p", "server=web1"]).ephemeral().output();
    run.assert_code(0);
    assert_eq!(run.result()["server"], "web1");
    assert_eq!(run.result()["size_gb"], 10);
    assert_eq!(messages(&run), ["web1 is up, tagged ops"]);
    assert_eq!(run.events.start_order(), ["create_volume", "boot_server"]);

    let again = cli(&["bundle", "new", "shop", "--dir", dir]);
    again.assert_code(2);
    assert!(again.stderr.contains("exists already"), "{}", again.stderr);
}

#[test]
fn a_new_bundle_needs_a_name_that_is_a_word() {
    let scratch = tempfile::tempdir().unwrap();
    for name in ["bad-name", "../escape", "9lives"] {
        let out = cli(&["bundle", "new", name, "--dir", scratch.path().to_str().unwrap()]);
        out.assert_code(2);
        assert!(out.stderr.contains("cannot name a bundle"), "{name}: {}", out.stderr);
    }
    assert_eq!(std::fs::read_dir(scratch.path()).unwrap().count(), 0, "nothing was written");
}

#[test]
fn a_failing_bundle_test_fails_with_the_line_of_its_assertion() {
    let out = cli(&["bundle", "test", "bundles/failing_tests"]);
    out.assert_code(1);
    for expected in [
        "test tests/passing_test.rhai ... ok",
        "test tests/wrong_sum_test.rhai ... FAILED",
        "wrong_sum_test.rhai:5:1]",
        "two and two: expected 5, got 4",
        "1 passed, 1 failed",
    ] {
        assert!(out.stderr.contains(expected), "`{expected}` is missing:\n{}", out.stderr);
    }
    assert_snapshot!("bundle_test_failing", shown(&out.stderr));
}

#[test]
fn the_example_bundle_passes_its_own_tests() {
    let cloudops = example("bundles/cloudops");
    let out = cli(&["bundle", "test", cloudops.to_str().unwrap()]);
    out.assert_code(0);
    assert!(out.stderr.contains("2 passed, 0 failed"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------
// pack

#[test]
fn pack_gives_the_same_bytes_twice_with_checksums_first() {
    let scratch = tempfile::tempdir().unwrap();
    let first = pack(&fixtures().join("bundles/good"), &scratch.path().join("a.tar.gz"));
    // A copy elsewhere, its files dated 2001: another path and other times must not change
    // the archive.
    let copy = copy_bundle("good", &scratch.path().join("elsewhere"));
    for file in ["plugin.yaml", "flows.rhai", "words.rhai", "ops/stages.rhai"] {
        let old = std::time::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        std::fs::File::options().write(true).open(copy.join(file)).unwrap().set_modified(old).unwrap();
    }
    let second = pack(&copy, &scratch.path().join("b.tar.gz"));
    assert!(first == second, "packing the same files twice gives the same bytes");

    let entries = entries(&first);
    let names: Vec<&str> = entries.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "good-1.0.0/CHECKSUMS",
            "good-1.0.0/flows.rhai",
            "good-1.0.0/ops/stages.rhai",
            "good-1.0.0/plugin.yaml",
            "good-1.0.0/words.rhai",
        ]
    );
    for (name, header, _) in &entries {
        assert_eq!(header.mtime().unwrap(), 0, "{name}");
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0), "{name}");
    }
    let sums = String::from_utf8(entries[0].2.clone()).unwrap();
    assert_eq!(sums.lines().count(), entries.len() - 1, "every file has its line:\n{sums}");
    for (name, _, bytes) in &entries[1..] {
        let relative = name.strip_prefix("good-1.0.0/").unwrap();
        let line = format!("{}  {relative}", sha256_hex(bytes));
        assert!(sums.lines().any(|l| l == line), "`{line}` is not in CHECKSUMS:\n{sums}");
    }
}

#[test]
fn pack_without_output_writes_name_version_tar_gz_here() {
    let scratch = tempfile::tempdir().unwrap();
    let out = rhaiflow()
        .current_dir(scratch.path())
        .args(["bundle", "pack", fixtures().join("bundles/versioned").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(scratch.path().join("versioned-1.9.0.tar.gz").is_file());
}

#[test]
fn pack_refuses_a_bundle_that_fails_check() {
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("bad.tar.gz");
    let out = cli(&["bundle", "pack", "bundles/bad_mapping", "-o", archive.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("has no fn not_there"), "{}", out.stderr);
    assert!(!archive.exists(), "no archive is written");
}

#[test]
fn pack_and_install_refuse_a_bundle_holding_a_symlink() {
    let scratch = tempfile::tempdir().unwrap();
    let bundle = copy_bundle("good", scratch.path());
    std::os::unix::fs::symlink("words.rhai", bundle.join("alias.rhai")).unwrap();
    let archive = scratch.path().join("linked.tar.gz");
    let out = cli(&["bundle", "pack", bundle.to_str().unwrap(), "-o", archive.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("is a link"), "{}", out.stderr);
    assert!(!archive.exists());

    let registry = Registry::new();
    let out = registry.cli(&["bundle", "install", bundle.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("is a link"), "{}", out.stderr);
    assert!(registry.list().is_empty());
}

// ---------------------------------------------------------------------------------------
// install, list, run by name, remove

#[test]
fn install_from_an_archive_then_list_run_by_name_and_remove() {
    let registry = Registry::new();
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("good.tar.gz");
    pack(&fixtures().join("bundles/good"), &archive);

    let out = registry.cli(&["bundle", "install", archive.to_str().unwrap()]);
    out.assert_code(0);
    assert!(out.stderr.contains("installed good 1.0.0"), "{}", out.stderr);
    assert!(registry.path().join("good/1.0.0/plugin.yaml").is_file());
    assert!(registry.path().join("good/1.0.0/ops/stages.rhai").is_file());
    assert_eq!(registry.list(), ["good\t1.0.0\tsimple, greet, pipeline, closures, explode, probe"]);

    let out = registry.run("good", &["greet", "-p", "target=db9", "-p", "times=1"]);
    out.assert_code(0);
    assert_eq!(messages(&out), ["Hello, db9!"]);
    let out = registry.run("good", &["greet"]);
    out.assert_code(2);
    assert!(out.events.0.is_empty());
    assert!(out.stderr.contains("`target` is mandatory"), "{}", out.stderr);

    let out = registry.cli(&["bundle", "remove", "good"]);
    out.assert_code(0);
    assert!(out.stderr.contains("removed good 1.0.0"), "{}", out.stderr);
    assert!(registry.list().is_empty());
    assert!(!registry.path().join("good").exists());
    let out = registry.run("good", &["simple"]);
    out.assert_code(2);
    assert!(out.stderr.contains("neither a file, an installed bundle"), "{}", out.stderr);
}

#[test]
fn install_from_a_folder() {
    let registry = Registry::new();
    registry.cli(&["bundle", "install", "bundles/good"]).assert_code(0);
    assert_eq!(registry.list().len(), 1);
    let out = registry.run("good", &["simple"]);
    out.assert_code(0);
    assert_eq!(out.result(), json!("simple"));
}

#[test]
fn install_refuses_a_bundle_that_fails_check() {
    let registry = Registry::new();
    let out = registry.cli(&["bundle", "install", "bundles/bad_mapping"]);
    out.assert_code(2);
    assert!(out.stderr.contains("has no fn not_there"), "{}", out.stderr);
    assert!(registry.list().is_empty());
}

#[test]
fn versions_live_side_by_side_and_the_newest_runs_by_name() {
    let registry = Registry::new();
    let scratch = tempfile::tempdir().unwrap();
    // 1.10.0 is newer than 1.9.0: versions compare number by number, not as text.
    for version in ["1.10.0", "1.9.0", "1.2.3"] {
        let dir = versioned(version, scratch.path());
        registry.cli(&["bundle", "install", dir.to_str().unwrap()]).assert_code(0);
    }
    assert_eq!(
        registry.list(),
        ["versioned\t1.2.3\twhich", "versioned\t1.9.0\twhich", "versioned\t1.10.0\twhich"],
        "oldest first"
    );
    assert_eq!(registry.run("versioned", &["which"]).result(), json!("1.10.0"));

    let out = registry.cli(&["bundle", "remove", "versioned", "--version", "1.10.0"]);
    out.assert_code(0);
    assert!(out.stderr.contains("removed versioned 1.10.0"), "{}", out.stderr);
    assert!(!out.stderr.contains("1.9.0"), "only that version: {}", out.stderr);
    assert_eq!(registry.list(), ["versioned\t1.2.3\twhich", "versioned\t1.9.0\twhich"]);
    assert_eq!(registry.run("versioned", &["which"]).result(), json!("1.9.0"));

    let out = registry.cli(&["bundle", "remove", "versioned"]);
    out.assert_code(0);
    assert!(out.stderr.contains("removed versioned 1.2.3") && out.stderr.contains("removed versioned 1.9.0"));
    assert!(registry.list().is_empty());
}

#[test]
fn reinstalling_a_version_needs_force() {
    let registry = Registry::new();
    let scratch = tempfile::tempdir().unwrap();
    let dir = versioned("2.0.0", scratch.path());
    registry.cli(&["bundle", "install", dir.to_str().unwrap()]).assert_code(0);

    // The same version with other contents.
    std::fs::write(dir.join("flows.rhai"), "fn which() {\n    \"2.0.0 rebuilt\"\n}\n").unwrap();
    let out = registry.cli(&["bundle", "install", dir.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("versioned 2.0.0 is installed already"), "{}", out.stderr);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    assert_eq!(registry.run("versioned", &["which"]).result(), json!("2.0.0"), "the first install is kept");

    registry.cli(&["bundle", "install", dir.to_str().unwrap(), "--force"]).assert_code(0);
    assert_eq!(registry.list(), ["versioned\t2.0.0\twhich"]);
    assert_eq!(registry.run("versioned", &["which"]).result(), json!("2.0.0 rebuilt"));
}

#[test]
fn removing_what_is_not_installed_is_refused() {
    let registry = Registry::new();
    let out = registry.cli(&["bundle", "remove", "good"]);
    out.assert_code(2);
    assert!(out.stderr.contains("good is not installed"), "{}", out.stderr);

    registry.cli(&["bundle", "install", "bundles/versioned"]).assert_code(0);
    let out = registry.cli(&["bundle", "remove", "versioned", "--version", "3.0.0"]);
    out.assert_code(2);
    assert!(out.stderr.contains("versioned 3.0.0 is not installed"), "{}", out.stderr);
    assert_eq!(registry.list().len(), 1, "the installed version stays");
}

#[test]
fn a_corrupt_archive_is_refused_with_a_clear_message() {
    let registry = Registry::new();
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("corrupt.tar.gz");
    // Random-looking bytes from a fixed generator.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(&archive, bytes).unwrap();

    let out = registry.cli(&["bundle", "install", archive.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("rhaiflow::bad_archive"), "{}", out.stderr);
    assert!(
        out.stderr.contains("not a .tar.gz archive") || out.stderr.contains("the archive is damaged"),
        "{}",
        out.stderr
    );
    assert!(registry.list().is_empty());

    let out = registry.run(archive.to_str().unwrap(), &["simple"]);
    out.assert_code(2);
    assert!(out.events.0.is_empty());
    assert!(out.stderr.contains("rhaiflow::bad_archive"), "{}", out.stderr);
}

#[test]
fn an_archive_changed_after_packing_is_refused_naming_the_checksum() {
    let registry = Registry::new();
    let scratch = tempfile::tempdir().unwrap();
    let original = pack(&fixtures().join("bundles/good"), &scratch.path().join("good.tar.gz"));

    // The same entries and the original CHECKSUMS, with one byte of flows.rhai changed.
    let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default()));
    let mut changed = false;
    for (name, mut header, mut bytes) in entries(&original) {
        if name.ends_with("/flows.rhai") {
            let at = bytes.windows(8).position(|w| w == b"\"simple\"").unwrap() + 1;
            bytes[at] = b'S';
            changed = true;
        }
        builder.append_data(&mut header, &name, bytes.as_slice()).unwrap();
    }
    assert!(changed);
    let tampered = scratch.path().join("tampered.tar.gz");
    std::fs::write(&tampered, builder.into_inner().unwrap().finish().unwrap()).unwrap();

    let out = registry.cli(&["bundle", "install", tampered.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("`flows.rhai` does not match its checksum"), "{}", out.stderr);
    assert!(registry.list().is_empty());
    assert!(!registry.path().join("good").exists());

    let out = registry.run(tampered.to_str().unwrap(), &["simple"]);
    out.assert_code(2);
    assert!(out.events.0.is_empty(), "nothing of a tampered archive runs");
    assert!(out.stderr.contains("does not match its checksum"), "{}", out.stderr);
    assert!(!out.stdout.contains("Simple"), "{}", out.stdout);
}

#[test]
fn an_archive_runs_directly_without_being_installed() {
    let registry = Registry::new();
    let scratch = tempfile::tempdir().unwrap();
    let archive = scratch.path().join("good-1.0.0.tar.gz");
    pack(&fixtures().join("bundles/good"), &archive);

    for _ in 0..2 {
        // The second run finds the archive unpacked already.
        let out = registry.run(archive.to_str().unwrap(), &["greet", "-p", "target=db2", "-p", "times=1"]);
        out.assert_code(0);
        assert_eq!(messages(&out), ["Hello, db2!"]);
    }
    let out = registry.run(archive.to_str().unwrap(), &["nope"]);
    out.assert_code(2);
    assert!(out.stderr.contains("no workflow `nope`"), "{}", out.stderr);
    assert!(registry.list().is_empty(), "running an archive does not install it");
}

// ---------------------------------------------------------------------------------------
// Versions: found while writing these tests

// `version_order` compares part by part and a longer list wins, so 1.10.0-rc1 sorts after
// 1.10.0 and `run versioned` picks the release candidate over the release.
#[test]
fn a_prerelease_is_not_newer_than_its_release() {
    let registry = Registry::new();
    let scratch = tempfile::tempdir().unwrap();
    for version in ["1.10.0-rc1", "1.10.0"] {
        let dir = versioned(version, scratch.path());
        registry.cli(&["bundle", "install", dir.to_str().unwrap()]).assert_code(0);
    }
    assert_eq!(registry.run("versioned", &["which"]).result(), json!("1.10.0"));
}

// YAML reads an unquoted `version: 1.10` as the float 1.1; the manifest kept the float, so
// the bundle was checked, packed and installed as version 1.1. Now it asks for quotes.
#[test]
fn an_unquoted_decimal_version_is_refused_with_a_request_for_quotes() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = versioned("1.9.0", scratch.path());
    let manifest = std::fs::read_to_string(dir.join("plugin.yaml")).unwrap().replace("version: 1.9.0", "version: 1.10");
    std::fs::write(dir.join("plugin.yaml"), manifest).unwrap();
    let out = cli(&["bundle", "check", dir.to_str().unwrap()]);
    out.assert_code(2);
    assert!(out.stderr.contains("write the version in quotes (\"1.10\")"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------
// More manifests and modules

#[test]
fn modules_that_import_each_other_in_a_cycle_are_reported_not_recursed() {
    cli(&["bundle", "check", "bundles/import_cycle"]).assert_code(0);
    let out = run("import_cycle", &["start"]);
    out.assert_code(2);
    assert!(out.stderr.contains("modules import each other in a cycle"), "{}", out.stderr);
    assert!(out.stderr.contains("import_cycle/second.rhai:1:8]"), "{}", out.stderr);
}

// The YAML library's own message is passed on whole: its rendered snippet (so the file is
// shown three times) and advice meant for a Rust programmer ("set DuplicateKeyPolicy in
// Options").
#[test]
fn a_duplicate_key_in_plugin_yaml_is_one_plain_sentence() {
    let out = cli(&["bundle", "check", "bundles/duplicate_key"]);
    out.assert_code(2);
    assert!(out.stderr.contains("duplicate"), "{}", out.stderr);
    assert!(out.stderr.contains("deploy"), "{}", out.stderr);
    assert!(!out.stderr.contains("DuplicateKeyPolicy"), "{}", out.stderr);
    assert_eq!(out.stderr.matches("duplicate_key.flows.deploy_again").count(), 1, "one snippet:\n{}", out.stderr);
}

// A plugin.yaml nested too deep said "budget breached: Depth { depth: 65 }", the parser's
// Rust Debug text.
#[test]
fn a_plugin_yaml_nested_too_deep_names_the_limit_in_words() {
    let out = cli(&["bundle", "check", "bundles/nested_too_deep"]);
    out.assert_code(2);
    assert!(!out.stderr.contains("Depth {") && !out.stderr.contains("budget"), "{}", out.stderr);
    assert_snapshot!("bundle_nested_too_deep", out.stderr);
}

// A long line of lone `\r`s (line ends to miette, not to the cut of long lines) made the
// snippet's column underflow: `bundle check` panicked instead of saying what is wrong. Found
// by the `manifest` fuzz target (docs/FUZZING.md); the fixture is its minimised input.
#[test]
fn carriage_returns_in_a_long_plugin_yaml_line_render_without_panicking() {
    let out = cli(&["bundle", "check", "bundles/carriage_returns"]);
    out.assert_code(2);
    assert!(out.stderr.contains("not valid YAML"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

// A YAML error whose span ends inside a multi-byte character, on a line long enough to be cut,
// panicked slicing the line there. Found by the `manifest` fuzz target; its input as found.
#[test]
fn a_yaml_error_inside_a_character_of_a_long_line_renders_without_panicking() {
    let out = cli(&["bundle", "check", "bundles/span_inside_a_character"]);
    out.assert_code(2);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

// ---------------------------------------------------------------------------------------
// bundle test on a deployment

// A bundle's tests could not run install or heal: `run_workflow` took no blueprint, so the
// workflows of the deployment model ran on no instance; and what a test printed was lost.
#[test]
fn bundle_tests_run_builtin_workflows_on_a_blueprint_and_show_what_they_print() {
    let out = cli(&["bundle", "test", "bundles/deploy_tests"]);
    out.assert_code(0);
    for expected in [
        "test tests/blueprints_test.rhai ... ok",
        "test tests/install_and_heal_test.rhai ... ok",
        "\n    install succeeded: 16 tasks\n    healed\n",
        "2 passed, 0 failed",
    ] {
        assert!(out.stderr.contains(expected), "`{expected}` is missing:\n{}", out.stderr);
    }
}
