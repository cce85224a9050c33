//! The shipped examples run as the README says, with the events the contract promises.

use serde_json::json;

use crate::support::{example, Run};

#[test]
fn hello_prints_42_and_emits_its_log_and_event() {
    let out = Run::new(example("hello.rhai")).output();
    out.assert_code(0);
    assert_eq!(out.result(), json!(42));

    let log: Vec<_> = out.events.of_type("log").collect();
    assert_eq!(log.len(), 1, "{}", out.events.summary());
    assert_eq!(log[0]["level"], "info");
    assert_eq!(log[0]["message"], "hello from rhai");

    let greet: Vec<_> = out.events.of_task("task_succeeded", "greet").collect();
    assert_eq!(greet[0]["kind"], "shell");
    assert_eq!(greet[0]["result"], json!({"code": 0, "stdout": "hello, world\n", "stderr": ""}));

    let messages: Vec<_> = out.events.of_type("workflow_event").map(|e| e["message"].clone()).collect();
    assert_eq!(messages, [json!("greeted: hello, world")]);
    assert_eq!(out.events.final_status(), Some("workflow_succeeded"));
    assert_eq!(out.events.of_type("workflow_succeeded").next().unwrap()["result"], json!(42));
    assert_eq!(out.events.0[0]["workflow"], "hello");
}

#[test]
fn deploy_app_runs_in_order_with_retries_and_an_ignored_failure() {
    let out = Run::new(example("deploy_app.rhai")).param("release", "v2").output();
    let result = out.result();
    out.assert_code(0);
    // It left its scratch folder behind in /tmp.
    let folder = result["folder"].as_str().unwrap();
    assert!(!std::path::Path::new(folder).exists(), "{folder} is left behind");
    assert_eq!(result["release"], "v2");
    assert_eq!(result["servers"], json!(["web1", "web2"]));
    let ev = &out.events;

    // The flaky health check: three attempts, each a new task id with current_retries + 1.
    let health: Vec<_> = ev.of_task("task_started", "health_check").collect();
    assert_eq!(health.len(), 3, "{}", ev.summary());
    let retries: Vec<_> = health.iter().map(|e| e["current_retries"].as_u64().unwrap()).collect();
    assert_eq!(retries, [0, 1, 2]);
    let mut ids: Vec<_> = health.iter().map(|e| e["task_id"].as_u64().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each attempt has its own task_id");
    assert!(health.iter().all(|e| e["total_retries"] == 5));
    assert_eq!(ev.of_task("task_rescheduled", "health_check").count(), 2);
    assert_eq!(ev.outcome("health_check"), Some("task_succeeded"));

    // warm_cache fails, its handler ignores it, and the workflow goes on.
    let warm: Vec<_> = ev.of_task("task_failed", "warm_cache").collect();
    assert_eq!(warm.len(), 1);
    assert_eq!(warm[0]["ignored"], true);
    assert!(warm[0]["error"].as_str().unwrap().contains("cache node unreachable"));
    assert!(ev
        .of_type("log")
        .any(|e| e["level"] == "warn" && e["message"].as_str().unwrap().starts_with("skipping warm_cache")));

    // The sequence and its fork-joins, by seq numbers.
    ev.assert_before("prepare", "build");
    ev.assert_before("prepare", "provision_db");
    assert!(ev.overlapped("build", "provision_db"), "the fork-join runs side by side:\n{}", ev.summary());
    ev.assert_before("build", "migrate_db");
    ev.assert_before("provision_db", "migrate_db");
    ev.assert_before("migrate_db", "rollout");
    assert!(ev.start_seq("rollout") < ev.start_seq("web1") && ev.start_seq("rollout") < ev.start_seq("web2"));
    assert!(ev.overlapped("web1", "web2"), "{}", ev.summary());
    assert!(ev.end_seq("web1") < ev.end_seq("rollout") && ev.end_seq("web2") < ev.end_seq("rollout"));
    ev.assert_before("rollout", "health_check");
    ev.assert_before("health_check", "warm_cache");
    let deployed = ev.of_type("workflow_event").find(|e| e["message"] == "deployed v2").expect("the event");
    let deployed = deployed["seq"].as_u64().unwrap();
    assert!(ev.end_seq("warm_cache") < deployed && deployed < ev.start_seq("report"), "{}", ev.summary());
    assert_eq!(ev.of_task("task_started", "rollout").next().unwrap()["kind"], "subgraph");
}

#[test]
fn boot_instance_orders_by_data_and_retries_the_flaky_api() {
    let out = Run::new(example("boot_instance.rhai")).param("instance_name", "web-1").output();
    out.assert_code(0);
    assert_eq!(
        out.result(),
        serde_json::json!({"instance_name": "web-1", "attached_volume": {"volume_name": "data-vol", "size_gb": 10}})
    );
    assert_eq!(out.events.attempts("create_instance"), 3);
    assert!(out.events.end_seq("create_instance") < out.events.start_seq("attach"));
    assert!(out.events.end_seq("create_volume") < out.events.start_seq("attach"));
}

#[test]
fn boot_instance_revert_cleans_up_in_reverse_and_fails() {
    let out = Run::new(example("boot_instance_revert.rhai")).output();
    out.assert_code(1);
    let reverted: Vec<&str> = out.events.of_type("task_reverted").map(|e| e["task"].as_str().unwrap()).collect();
    assert_eq!(reverted, ["create_instance", "create_volume"]);
    let logs: Vec<&str> = out.events.of_type("log").map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(logs, ["creating volume", "booting instance", "terminating instance vm-1", "deleting volume vol-1"]);
}

#[test]
fn cloudmesh_flow_string_example_runs_its_stages_in_order() {
    let out = Run::new(example("cloudmesh_flow.rhai")).output();
    out.assert_code(0);
    let ev = &out.events;
    assert!(ev.overlapped("build", "lint"), "{}", ev.summary());
    assert!(ev.end_seq("build") < ev.start_seq("deploy") && ev.end_seq("lint") < ev.start_seq("deploy"));
    let dir = out.result();
    let dir = std::path::Path::new(dir.as_str().unwrap());
    assert!(dir.join("deployed.bin").exists());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cloudharness_dag_example_merges_then_reports() {
    let out = Run::new(example("cloudharness_dag.rhai")).output();
    out.assert_code(0);
    let ev = &out.events;
    assert!(ev.overlapped("fetch_prices", "fetch_stock"), "{}", ev.summary());
    assert!(ev.end_seq("merge") < ev.start_seq("report"));
    let dir = out.result();
    let dir = std::path::Path::new(dir.as_str().unwrap());
    assert_eq!(std::fs::read_to_string(dir.join("available")).unwrap(), "a 1 5\n");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn release_flow_yaml_runs_fetch_then_build_and_check_then_publish() {
    let out = Run::new(example("release_flow.yaml")).param("version", "1.2.0").output();
    out.assert_code(0);
    let ev = &out.events;
    assert!(ev.end_seq("fetch") < ev.start_seq("build") && ev.end_seq("fetch") < ev.start_seq("check"));
    assert!(ev.end_seq("build") < ev.start_seq("publish") && ev.end_seq("check") < ev.start_seq("publish"));
    let result = |task: &str| ev.of_task("task_succeeded", task).next().unwrap()["result"].clone();
    assert_eq!(result("build")["stdout"], "built release\n");
    assert_eq!(result("check"), "42 checks passed");
    assert_eq!(result("publish"), "published 1.2.0");
    assert_eq!(ev.of_task("task_started", "build").next().unwrap()["total_retries"], 2);
}
