//! Workflow parameters: `-p KEY=VALUE` parsed as JSON where it parses, `--params FILE`
//! (YAML or JSON) under `-p`.

use serde_json::json;

use crate::support::Run;

#[test]
fn p_values_are_json_when_they_parse_and_strings_otherwise() {
    let out = Run::new("params_echo.rhai")
        .args(["-p", "n=42", "-p", "f=1.5", "-p", "t=true", "-p", "list=[1,2]", "-p", r#"obj={"a":1}"#])
        .args(["-p", "s=eu-west", "-p", r#"quoted="7""#, "-p", "empty=", "-p", "eq=a=b"])
        .output();
    out.assert_code(0);
    let result = out.result();
    assert_eq!(
        result["params"],
        json!({
            "n": 42, "f": 1.5, "t": true, "list": [1, 2], "obj": {"a": 1},
            "s": "eu-west", "quoted": "7", "empty": "", "eq": "a=b",
        })
    );
    assert_eq!(
        result["types"],
        json!({
            "n": "i64", "f": "f64", "t": "bool", "list": "array", "obj": "map",
            "s": "string", "quoted": "string", "empty": "string", "eq": "string",
        })
    );
    assert_eq!(result["ctx_agrees"], true);
    let started = out.events.of_type("workflow_started").next().unwrap();
    assert_eq!(started["parameters"], result["params"]);
    assert_eq!(started["resumed"], false);
}

#[test]
fn a_yaml_params_file_is_merged_under_p() {
    let run = Run::new("params_echo.rhai");
    let file = run.scratch().join("params.yaml");
    std::fs::write(&file, "region: us-east\nreplicas: 2\nnested: {a: 1, b: [left, right]}\nname: web\n").unwrap();
    let out = run.args(["--params", file.to_str().unwrap(), "-p", "region=eu-west", "-p", "extra=[3]"]).output();
    out.assert_code(0);
    assert_eq!(
        out.result()["params"],
        json!({
            "region": "eu-west", "replicas": 2, "nested": {"a": 1, "b": ["left", "right"]},
            "name": "web", "extra": [3],
        })
    );
}

#[test]
fn a_json_params_file_works_too() {
    let run = Run::new("params_echo.rhai");
    let file = run.scratch().join("params.json");
    std::fs::write(&file, r#"{"replicas": 3, "tags": ["a", "b"], "region": "us"}"#).unwrap();
    let out = run.args(["--params", file.to_str().unwrap(), "-p", "replicas=5"]).output();
    out.assert_code(0);
    assert_eq!(out.result()["params"], json!({"replicas": 5, "tags": ["a", "b"], "region": "us"}));
}

#[test]
fn a_missing_params_file_is_invalid_input() {
    let run = Run::new("params_echo.rhai");
    let file = run.scratch().join("absent.yaml");
    let out = run.args(["--params", file.to_str().unwrap()]).output();
    out.assert_code(2);
    assert!(out.stderr.contains("absent.yaml"), "{}", out.stderr);
    assert!(out.events.0.is_empty(), "nothing ran");
}

#[test]
fn a_params_file_that_is_not_a_map_is_invalid_input() {
    let run = Run::new("params_echo.rhai");
    let file = run.scratch().join("list.yaml");
    std::fs::write(&file, "- a\n- b\n").unwrap();
    let out = run.args(["--params", file.to_str().unwrap()]).output();
    out.assert_code(2);
    assert!(out.stderr.contains("must hold a map"), "{}", out.stderr);
}

// YAML 1.1 read `country: no` as false and `[x, y]` as ["x", true] (the "Norway problem");
// YAML 1.2, the current version, has only true and false as booleans.
#[test]
fn a_yaml_params_file_keeps_yes_no_on_off_y_n_as_strings() {
    let run = Run::new("params_echo.rhai");
    let file = run.scratch().join("params.yaml");
    std::fs::write(&file, "country: no\naxes: [x, y]\nanswer: yes\nswitch: on\nflag: true\n").unwrap();
    let out = run.args(["--params", file.to_str().unwrap()]).output();
    out.assert_code(0);
    assert_eq!(
        out.result()["params"],
        json!({"country": "no", "axes": ["x", "y"], "answer": "yes", "switch": "on", "flag": true})
    );
}

// A params file nested too deep said "budget breached: Depth { depth: 65 }" (the parser's Rust
// Debug text) and rendered its own snippet, `--> <input>`, inside the message.
#[test]
fn a_params_file_nested_too_deep_names_the_limit_in_words() {
    let out = Run::new("params_echo.rhai").ephemeral().args(["--params", "params_nested_too_deep.yaml"]).output();
    out.assert_code(2);
    for internal in ["Depth {", "budget", "<input>"] {
        assert!(!out.stderr.contains(internal), "`{internal}`:\n{}", out.stderr);
    }
    insta::assert_snapshot!("params_nested_too_deep", out.normalised_stderr());
}

// A key written twice said "set DuplicateKeyPolicy in Options if acceptable", advice for the
// Rust programmer calling the parser.
#[test]
fn a_params_file_with_a_duplicate_key_points_at_the_second_one() {
    let out = Run::new("params_echo.rhai").ephemeral().args(["--params", "params_duplicate_key.yaml"]).output();
    out.assert_code(2);
    assert!(!out.stderr.contains("DuplicateKeyPolicy") && !out.stderr.contains("<input>"), "{}", out.stderr);
    assert!(out.stderr.contains("[params_duplicate_key.yaml:4:1]"), "{}", out.stderr);
    insta::assert_snapshot!("params_duplicate_key", out.normalised_stderr());
}
