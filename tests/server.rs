//! `rhaiflow serve`: the real binary listening on a port the system chose, asked over HTTP.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

use crate::support::rhaiflow;

/// A `rhaiflow serve` on a store of its own, killed when the test ends.
struct Served {
    child: Child,
    base: String,
    /// Scripts, and the store unless it is PostgreSQL's.
    dir: tempfile::TempDir,
    /// What `--store` says.
    store: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    /// On a SQLite store in a scratch folder.
    fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store").display().to_string();
        Served::start_on(dir, store, &[])
    }

    fn start_on(dir: tempfile::TempDir, store: String, extra: &[&str]) -> Served {
        let mut child = Command::cargo_bin("rhaiflow")
            .unwrap()
            .arg("serve")
            .args(if extra.contains(&"--listen") { &[][..] } else { &["--listen", "127.0.0.1:0"][..] })
            .args(["--store", &store])
            .args(extra)
            .env("RHAIFLOW_BUNDLES", dir.path().join("bundles"))
            // What its runs unpack or write in the temp folder goes with the test.
            .env("TMPDIR", dir.path())
            .env("RHAIFLOW_EXAMPLE_ROOT", dir.path().join("three-tier"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
        let address = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("{line}"));
        Served { child, base: address.to_string(), dir, store }
    }

    /// Runs `script` recorded in this server's store; returns the execution id.
    fn run(&self, script: &str, expect: i32) -> String {
        let path = self.dir.path().join("w.rhai");
        std::fs::write(&path, script).unwrap();
        let out = rhaiflow().arg("run").arg(&path).args(["--store", &self.store, "-q"]).output().unwrap();
        assert_eq!(out.status.code(), Some(expect), "{}", String::from_utf8_lossy(&out.stderr));
        let listed: Value = self.get("/api/v1/executions?limit=1").1;
        listed["executions"][0]["id"].as_str().unwrap().to_string()
    }

    /// `method path` with `body` (JSON) or none: the status, the body as JSON (or as a JSON
    /// string when it is not JSON), and its content type.
    fn send(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value, String) {
        let (status, body, headers) = self.exchange(method, path, body, &[]);
        let content_type = headers.get("content-type").map(|v| v.to_str().unwrap().to_string());
        (status, body, content_type.unwrap_or_default())
    }

    /// `send` with more request `headers`, answering the response's headers.
    fn exchange(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, Value, ureq::http::HeaderMap) {
        let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
        let mut request = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        if body.is_some() {
            request = request.header("Content-Type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = agent.run(request.body(body.unwrap_or_default().to_string()).unwrap()).unwrap();
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body, response.headers().clone())
    }

    fn get_typed(&self, path: &str) -> (u16, Value, String) {
        self.send("GET", path, None)
    }

    fn get(&self, path: &str) -> (u16, Value) {
        let (status, body, _) = self.get_typed(path);
        (status, body)
    }
}

// The executions of the store, newest first, filtered; one with its parameters and tasks.
#[test]
fn executions_are_listed_newest_first_and_shown_with_their_tasks() {
    let served = Served::start();
    let ok = served.run(r#"let g = graph_mode(); g.add_task(task("add", || 40 + 2)); g.execute();"#, 0);
    let failed = served.run(r#"let g = graph_mode(); g.add_task(task("boom", || throw "no")); g.execute();"#, 1);
    let (status, page) = served.get("/api/v1/executions");
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["executions"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [failed.as_str(), ok.as_str()]);
    let (_, only) = served.get("/api/v1/executions?status=failed");
    assert_eq!(only["executions"].as_array().unwrap().len(), 1);
    assert_eq!(only["executions"][0]["id"], failed.as_str());
    let (_, both) = served.get("/api/v1/executions?status=succeeded,failed&limit=1");
    assert_eq!(both["executions"].as_array().unwrap().len(), 1);
    let (status, shown) = served.get(&format!("/api/v1/executions/{ok}"));
    assert_eq!(status, 200);
    assert_eq!(shown["status"], "succeeded");
    assert_eq!(shown["tasks"][0]["name"], "add");
    assert_eq!(shown["tasks"][0]["state"], "succeeded");
    assert_eq!(shown["tasks"][0]["result"], 42);
    let (_, shown) = served.get(&format!("/api/v1/executions/{failed}"));
    assert_eq!(shown["status"], "failed");
    assert!(shown["tasks"][0]["error"].as_str().unwrap().contains("no"), "{shown}");
}

// Every error is a problem document (RFC 9457) with the status it says.
#[test]
fn errors_are_problem_details() {
    let served = Served::start();
    for (path, status, says) in [
        ("/api/v1/executions/nope", 404, "no execution `nope`"),
        ("/api/v1/executions?status=bogus", 400, "unknown status `bogus`"),
        ("/api/v1/executions?limit=0", 400, "limit must be 1 to 1000"),
        ("/api/v1/executions?limit=many", 400, "limit"),
        ("/api/v1/nothing-here", 404, "no such resource"),
    ] {
        let (got, body, content_type) = served.get_typed(path);
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(content_type, "application/problem+json", "{path}");
        assert_eq!(body["status"], status, "{path}");
        assert!(body["detail"].as_str().unwrap().contains(says), "{path}: {body}");
    }
}

// Alive, ready, and the OpenAPI document it serves is the one generated from the code.
#[test]
fn health_readiness_and_the_openapi_document_are_served() {
    let served = Served::start();
    assert_eq!(served.get("/healthz"), (200, Value::String("ok".into())));
    assert_eq!(served.get("/readyz"), (200, Value::String("ready".into())));
    let (status, document) = served.get("/api/v1/openapi.json");
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    for path in ["/api/v1/executions", "/api/v1/executions/{id}", "/healthz", "/readyz"] {
        assert!(document["paths"][path].is_object(), "{path} is not in the document");
    }
    // What needs a role says it may be refused; what is open does not.
    let listing = &document["paths"]["/api/v1/executions"]["get"]["responses"];
    assert!(listing["401"].is_object() && listing["403"].is_object(), "{listing}");
    assert!(document["paths"]["/healthz"]["get"]["responses"]["401"].is_null());
    assert!(document["paths"]["/api/v1/login"]["post"]["responses"]["403"].is_null());
}

// Without tokens it serves loopback only: another address is refused before it listens
// (exit 2).
#[test]
fn a_non_loopback_address_without_tokens_is_refused() {
    let store = tempfile::tempdir().unwrap();
    let out = rhaiflow().args(["serve", "--listen", "0.0.0.0:0", "--store"]).arg(store.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("will not listen on 0.0.0.0:0: the store has no role tokens"), "{said}");
}

/// The SSE events read from `reader` until `stop` says so or the stream ends: `(id, event,
/// data)`, the event's name empty for plain messages.
fn read_sse(
    reader: &mut impl BufRead,
    mut stop: impl FnMut(&(String, String, String)) -> bool,
) -> Vec<(String, String, String)> {
    let mut events = Vec::new();
    let (mut id, mut name, mut data) = (String::new(), String::new(), String::new());
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap() == 0 {
            return events;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if data.is_empty() {
                continue; // a keep-alive comment's end
            }
            let event = (std::mem::take(&mut id), std::mem::take(&mut name), std::mem::take(&mut data));
            let done = stop(&event);
            events.push(event);
            if done {
                return events;
            }
        } else if let Some(value) = line.strip_prefix("id:") {
            id = value.trim().to_string();
        } else if let Some(value) = line.strip_prefix("event:") {
            name = value.trim().to_string();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push_str(value.trim_start());
        }
    }
}

impl Served {
    /// The SSE stream of `id`'s events, from `last_event_id` on when given.
    fn stream(&self, id: &str, last_event_id: Option<&str>) -> BufReader<impl std::io::Read> {
        let mut request =
            ureq::get(&format!("{}/api/v1/executions/{id}/events", self.base)).header("Accept", "text/event-stream");
        if let Some(seq) = last_event_id {
            request = request.header("Last-Event-ID", seq);
        }
        let response = request.call().unwrap();
        assert_eq!(response.headers().get("content-type").unwrap(), "text/event-stream");
        BufReader::new(response.into_body().into_reader())
    }
}

// The events as JSON, after a seq; followed as Server-Sent Events while the execution runs, a
// reconnection with Last-Event-ID going on with neither a gap nor a duplicate, and an `end`.
#[test]
fn events_are_read_as_json_and_followed_as_server_sent_events_across_a_reconnection() {
    let served = Served::start();
    let done = served.run(r#"let g = graph_mode(); g.add_task(task("a", || 1)); g.execute();"#, 0);
    let (status, all) = served.get(&format!("/api/v1/executions/{done}/events"));
    assert_eq!(status, 200);
    let seqs: Vec<u64> = all["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    let (_, later) = served.get(&format!("/api/v1/executions/{done}/events?after=2"));
    assert_eq!(later["events"][0]["seq"], 3);
    // A running execution, followed.
    let (mut run, id) = served.running(
        r#"let g = graph_mode(); let s = g.sequence();
s.add(task("a", || 1)); s.add(shell("wait", "sleep 1")); s.add(task("b", || 2)); g.execute();"#,
    );
    let first = read_sse(&mut served.stream(&id, None), |(_, _, data)| {
        data.contains("\"task_started\"") && data.contains("\"wait\"")
    });
    let last_id = first.last().unwrap().0.clone();
    let rest = read_sse(&mut served.stream(&id, Some(&last_id)), |(_, name, _)| name == "end");
    assert!(run.wait().unwrap().success());
    let (end, rest) = rest.split_last().unwrap();
    assert_eq!(end.1, "end");
    assert!(end.2.contains("\"succeeded\""), "{end:?}");
    let ids: Vec<u64> = first.iter().chain(rest).map(|(id, _, _)| id.parse().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>(), "a gap or a duplicate across the reconnection");
    assert!(rest.iter().any(|(_, _, data)| data.contains("workflow_succeeded")), "{rest:?}");
}

impl Served {
    /// `script` run in the background on this server's store, once its execution runs (its
    /// graph built): the run and the execution's id. (Clippy cannot see that the run is given
    /// to the caller, who waits for it, or killed and waited for when it never starts.)
    #[allow(clippy::zombie_processes)]
    fn running(&self, script: &str) -> (Child, String) {
        let path = self.dir.path().join("background.rhai");
        std::fs::write(&path, script).unwrap();
        let mut run = Command::cargo_bin("rhaiflow")
            .unwrap()
            .arg("run")
            .arg(&path)
            .args(["--store", &self.store, "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        loop {
            let (_, page) = self.get("/api/v1/executions?status=running");
            let running = &page["executions"][0];
            if let (Some(id), Some(1..)) = (running["id"].as_str(), running["tasks_total"].as_u64()) {
                return (run, id.to_string());
            }
            if started.elapsed() > std::time::Duration::from_secs(30) {
                let _ = run.kill();
                let _ = run.wait();
                panic!("it never ran");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

// A listing goes page by page through its cursor: every execution once, newest first, on
// both stores; a cursor that is not one is refused.
#[test]
fn listings_go_page_by_page_through_their_cursor() {
    let served = Served::start();
    pages_cover_every_execution_once(&served);
    let (status, body) = served.get("/api/v1/executions?cursor=zz");
    assert_eq!(status, 400, "{body}");
    let Some(pg) = crate::postgres_server::postgres() else { return };
    let url = pg.url(&pg.fresh_database("serve_pages", None));
    pages_cover_every_execution_once(&Served::start_on(tempfile::tempdir().unwrap(), url, &[]));
}

fn pages_cover_every_execution_once(served: &Served) {
    let ids: Vec<String> =
        (0..5).map(|_| served.run(r#"let g = graph_mode(); g.add_task(noop("a")); g.execute();"#, 0)).collect();
    let mut seen = Vec::new();
    let mut path = "/api/v1/executions?limit=2".to_string();
    loop {
        let (status, page) = served.get(&path);
        assert_eq!(status, 200, "{page}");
        seen.extend(page["executions"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_string()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/executions?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.into_iter().rev().collect();
    assert_eq!(seen, newest_first);
}

impl Served {
    fn post(&self, path: &str, body: Option<&str>) -> (u16, Value) {
        let (status, body, _) = self.send("POST", path, body);
        (status, body)
    }

    fn delete(&self, path: &str) -> (u16, Value) {
        let (status, body, _) = self.send("DELETE", path, None);
        (status, body)
    }
}

// A running execution is cancelled through the API (forced: its task's process is killed, and
// the run ends cancelled); one that ended is a conflict; a bad body is refused.
#[test]
fn a_running_execution_is_cancelled_and_an_ended_one_is_a_conflict() {
    let served = Served::start();
    let (mut run, id) = served.running(r#"let g = graph_mode(); g.add_task(shell("long", "sleep 30")); g.execute();"#);
    let (status, body) = served.post(&format!("/api/v1/executions/{id}/cancel"), Some(r#"{"forse": true}"#));
    assert_eq!(status, 400, "{body}");
    let asked = std::time::Instant::now();
    let (status, body) = served.post(&format!("/api/v1/executions/{id}/cancel"), Some(r#"{"force": true}"#));
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["id"], id.as_str());
    assert_eq!(run.wait().unwrap().code(), Some(3), "the run did not end cancelled");
    assert!(asked.elapsed() < std::time::Duration::from_secs(5), "{:?}", asked.elapsed());
    assert_eq!(served.get(&format!("/api/v1/executions/{id}")).1["status"], "cancelled");
    let (status, body) = served.post(&format!("/api/v1/executions/{id}/cancel"), None);
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("is not running (it is cancelled)"), "{body}");
    assert_eq!(served.post("/api/v1/executions/nope/cancel", None).0, 404);
    // Finished: it can be deleted, and is gone.
    assert_eq!(served.delete(&format!("/api/v1/executions/{id}")).0, 204);
    assert_eq!(served.get(&format!("/api/v1/executions/{id}")).0, 404);
    assert_eq!(served.get(&format!("/api/v1/executions/{id}/events")).0, 404);
    assert_eq!(served.delete(&format!("/api/v1/executions/{id}")).0, 404);
}

// A running execution cannot be deleted (409); it can once it finished.
#[test]
fn a_running_execution_is_not_deleted() {
    let served = Served::start();
    let (mut run, id) = served.running(r#"let g = graph_mode(); g.add_task(shell("wait", "sleep 1")); g.execute();"#);
    let (status, body) = served.delete(&format!("/api/v1/executions/{id}"));
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("has not finished (it is running)"), "{body}");
    assert!(run.wait().unwrap().success());
    assert_eq!(served.delete(&format!("/api/v1/executions/{id}")).0, 204);
}

// What the tasks printed, as plain text: every line led by its task, one task's bare, an
// unknown task refused with the names there are; followed while the execution runs, to its end.
#[test]
fn logs_are_served_as_text_and_followed_to_the_end() {
    let served = Served::start();
    let id = served.run(
        r#"let g = graph_mode(); let s = g.sequence();
s.add(shell("a", "echo one")); s.add(shell("b", "echo two; echo three")); g.execute();"#,
        0,
    );
    let (status, text, content_type) = served.get_typed(&format!("/api/v1/executions/{id}/logs"));
    assert_eq!((status, content_type.as_str()), (200, "text/plain; charset=utf-8"));
    assert_eq!(text, "a | one\nb | two\nb | three\n");
    assert_eq!(served.get(&format!("/api/v1/executions/{id}/logs?task=b")).1, "two\nthree\n");
    let (status, body) = served.get(&format!("/api/v1/executions/{id}/logs?task=c"));
    assert_eq!(status, 404);
    assert!(body["detail"].as_str().unwrap().contains("no task named `c` (its tasks: a, b)"), "{body}");
    let (mut run, id) = served.running(
        r#"let g = graph_mode(); let s = g.sequence();
s.add(shell("slow", "echo first; sleep 1; echo second")); g.execute();"#,
    );
    let mut followed = String::new();
    let response = ureq::get(&format!("{}/api/v1/executions/{id}/logs?follow=true", served.base)).call().unwrap();
    std::io::Read::read_to_string(&mut response.into_body().into_reader(), &mut followed).unwrap();
    assert!(run.wait().unwrap().success());
    assert_eq!(followed, "slow | first\nslow | second\n");
}

// The workflows that can be run: an installed bundle's, with its parameters and their JSON
// Schema, then the built-in ones.
#[test]
fn workflows_are_listed_with_their_parameters() {
    let served = Served::start();
    let bundles = served.dir.path().join("bundles");
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/bundles/tutorial");
    rhaiflow().args(["bundle", "install", examples]).env("RHAIFLOW_BUNDLES", &bundles).assert().success();
    let (status, body) = served.get("/api/v1/workflows");
    assert_eq!(status, 200);
    let workflows = body["workflows"].as_array().unwrap();
    let names: Vec<String> = workflows
        .iter()
        .map(|w| format!("{}/{}", w["bundle"].as_str().unwrap(), w["name"].as_str().unwrap()))
        .collect();
    assert_eq!(names[0], "tutorial/run_operation", "{names:?}");
    for builtin in ["install", "uninstall", "execute_operation", "scale", "heal"] {
        assert!(names.contains(&format!("builtin/{builtin}")), "{builtin} missing: {names:?}");
    }
    let tutorial = &workflows[0];
    assert_eq!(tutorial["version"], "1.0.0");
    let schema = &tutorial["parameters_schema"];
    assert_eq!(schema["required"], serde_json::json!(["operation"]));
    assert_eq!(schema["properties"]["type_name"]["type"], "string");
    assert_eq!(schema["properties"]["type_name"]["default"], "rhaiflow.nodes.Root");
    assert_eq!(schema["properties"]["operation_kwargs"]["default"], serde_json::json!({}));
    let operation = tutorial["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "operation").unwrap();
    assert_eq!(
        (operation["mandatory"].as_bool(), operation["description"].as_str()),
        (Some(true), Some("the operation to execute"))
    );
}

// The deployments the store keeps, and one's instances with their states and runtime
// properties; an unknown one is 404.
#[test]
fn deployments_are_listed_and_shown() {
    let served = Served::start();
    let blueprint = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/three_tier/blueprint.yaml");
    rhaiflow()
        .args(["deployments", "create", "shop", "--blueprint", blueprint, "--store", &served.store])
        .assert()
        .success();
    let (status, body) = served.get("/api/v1/deployments");
    assert_eq!(status, 200);
    assert_eq!(body["deployments"][0]["name"], "shop");
    let instances = body["deployments"][0]["instances"].as_u64().unwrap();
    assert_eq!(body["deployments"][0]["states"]["uninitialized"].as_u64(), Some(instances));
    let (status, shop) = served.get("/api/v1/deployments/shop");
    assert_eq!(status, 200);
    assert_eq!(shop["instances"].as_array().unwrap().len() as u64, instances);
    let vm = shop["instances"].as_array().unwrap().iter().find(|i| i["node_id"] == "vm").unwrap();
    assert_eq!((vm["state"].as_str(), vm["runtime_properties"].is_object()), (Some("uninitialized"), true));
    let (status, body) = served.get("/api/v1/deployments/nope");
    assert_eq!(status, 404, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("no deployment named `nope`"), "{body}");
}

impl Served {
    /// Installs a bundle `greeter` with `greet(name, times = 1)` in this server's registry.
    fn install_greeter(&self) {
        let source = self.dir.path().join("greeter");
        std::fs::create_dir_all(&source).unwrap();
        std::fs::write(
            source.join("plugin.yaml"),
            "plugin:\n  name: greeter\n  version: 1.0.0\n  description: greets\nworkflows:\n  greet:\n    mapping: greeter.flows.greet\n    parameters:\n      name: {type: string}\n      times: {type: integer, default: 1}\n",
        )
        .unwrap();
        std::fs::write(
            source.join("flows.rhai"),
            "fn greet(ctx, name, times) { let g = graph_mode(); for i in 0..times { g.add_task(noop(`hi_${name}_${i}`)); } g.execute(); }\n",
        )
        .unwrap();
        rhaiflow()
            .arg("bundle")
            .arg("install")
            .arg(&source)
            .env("RHAIFLOW_BUNDLES", self.dir.path().join("bundles"))
            .assert()
            .success();
    }

    /// GETs the execution at `location` until it ended: its detail.
    fn ended(&self, location: &str) -> Value {
        let since = std::time::Instant::now();
        loop {
            let (status, body) = self.get(location);
            assert_eq!(status, 200, "{body}");
            if !matches!(body["status"].as_str(), Some("running" | "queued")) {
                return body;
            }
            assert!(since.elapsed() < std::time::Duration::from_secs(30), "it never ended: {body}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// POST /api/v1/executions: the status, the Location, the body.
    fn submit(&self, request: &str) -> (u16, String, Value) {
        self.submit_keyed(request, None)
    }

    /// `submit` with an `Idempotency-Key`.
    fn submit_keyed(&self, request: &str, key: Option<&str>) -> (u16, String, Value) {
        let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
        let mut post =
            agent.post(&format!("{}/api/v1/executions", self.base)).header("Content-Type", "application/json");
        if let Some(key) = key {
            post = post.header("Idempotency-Key", key);
        }
        let mut response = post.send(request).unwrap();
        let location = response.headers().get("location").map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
        let text = response.body_mut().read_to_string().unwrap();
        (response.status().as_u16(), location, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }
}

// An installed bundle's workflow runs with its parameters checked as `run` checks them: 201 at
// its Location, and it succeeds; what cannot run is 422 saying why, a request that is not one
// 400.
#[test]
fn a_bundle_workflow_is_submitted_and_runs_its_parameters_checked() {
    let served = Served::start();
    served.install_greeter();
    let (status, location, body) =
        served.submit(r#"{"bundle": "greeter", "workflow": "greet", "parameters": {"name": "ada", "times": 3}}"#);
    assert_eq!(status, 201, "{body}");
    assert_eq!(location, format!("/api/v1/executions/{}", body["id"].as_str().unwrap()));
    let ended = served.ended(&location);
    assert_eq!(ended["status"], "succeeded", "{ended}");
    assert_eq!(ended["workflow"], "greet");
    assert_eq!(ended["parameters"], serde_json::json!({"name": "ada", "times": 3}));
    let names: Vec<&str> = ended["tasks"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["hi_ada_0", "hi_ada_1", "hi_ada_2"]);
    for (request, says) in [
        (r#"{"bundle": "greeter", "workflow": "greet", "parameters": {"times": "many"}}"#, "name"),
        (r#"{"bundle": "greeter", "workflow": "greet", "parameters": {"times": "many"}}"#, "times"),
        (r#"{"bundle": "greeter", "workflow": "greet", "parameters": {"name": "x", "colour": 1}}"#, "colour"),
        (r#"{"bundle": "greeter", "workflow": "wave"}"#, "greet"),
        (r#"{"bundle": "nobody", "workflow": "greet"}"#, "no installed bundle named `nobody`"),
        (r#"{"workflow": "install"}"#, "give a `deployment`"),
        (r#"{"workflow": "install", "deployment": "ghost"}"#, "ghost"),
    ] {
        let (status, _, body) = served.submit(request);
        assert_eq!(status, 422, "{request}: {body}");
        assert!(body["detail"].as_str().unwrap().contains(says), "{request}: {body}");
    }
    let (status, _, body) = served.submit(r#"{"workflo": "greet"}"#);
    assert_eq!(status, 400, "{body}");
    let (status, _, body) = served.submit(r#"{"script": "42"}"#);
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("--allow-scripts"), "{body}");
}

// A built-in workflow runs on a stored deployment; a script's text runs on a server started
// with --allow-scripts, and one that does not compile is refused with its diagnostic.
#[test]
fn a_builtin_workflow_runs_on_a_deployment_and_scripts_run_where_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let served = Served::start_on(dir, store, &["--allow-scripts"]);
    let blueprint = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/three_tier/blueprint.yaml");
    rhaiflow()
        .args(["deployments", "create", "shop", "--blueprint", blueprint, "--store", &served.store])
        .assert()
        .success();
    let (status, location, body) = served.submit(r#"{"workflow": "install", "deployment": "shop"}"#);
    assert_eq!(status, 201, "{body}");
    assert_eq!(served.ended(&location)["status"], "succeeded");
    let (_, shop) = served.get("/api/v1/deployments/shop");
    assert!(shop["instances"].as_array().unwrap().iter().all(|i| i["state"] == "started"), "{shop}");
    let (status, location, body) =
        served.submit(r#"{"script": "let g = graph_mode(); g.add_task(task(\"t\", || params.n * 2)); g.execute();", "parameters": {"n": 21}}"#);
    assert_eq!(status, 201, "{body}");
    let ended = served.ended(&location);
    assert_eq!(ended["tasks"][0]["result"], 42, "{ended}");
    let (status, _, body) = served.submit(r#"{"script": "let = ;"}"#);
    assert_eq!(status, 422, "{body}");
}

// A failed execution is resumed through the API: its succeeded tasks are not run again, the
// failed one is, and it succeeds; one that succeeded, or still runs, is a conflict (409,
// saying why).
#[test]
fn a_failed_execution_is_resumed() {
    let served = Served::start();
    let mark = served.dir.path().join("mark");
    let count = served.dir.path().join("count");
    let id = served.run(
        &format!(
            r#"let g = graph_mode(); let s = g.sequence();
s.add(shell("once", "echo x >> {count}")); s.add(shell("flaky", "test -f {mark} || {{ touch {mark}; exit 1; }}")); g.execute();"#,
            count = count.display(),
            mark = mark.display()
        ),
        1,
    );
    let (status, body) = served.post(&format!("/api/v1/executions/{id}/resume"), None);
    assert_eq!(status, 202, "{body}");
    let ended = served.ended(&format!("/api/v1/executions/{id}"));
    assert_eq!((ended["status"].as_str(), ended["resumes"].as_u64()), (Some("succeeded"), Some(1)), "{ended}");
    assert_eq!(std::fs::read_to_string(&count).unwrap(), "x\n", "a succeeded task ran again");
    let (status, body) = served.post(&format!("/api/v1/executions/{id}/resume"), None);
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("it succeeded"), "{body}");
    assert_eq!(served.post("/api/v1/executions/nope/resume", None).0, 404);
    let (mut run, running) =
        served.running(r#"let g = graph_mode(); g.add_task(shell("long", "sleep 30")); g.execute();"#);
    let (status, body) = served.post(&format!("/api/v1/executions/{running}/resume"), None);
    let _ = run.kill();
    let _ = run.wait();
    assert_eq!(status, 409, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("still running"), "{body}");
}

// The changes of executions arrive as Server-Sent Events: one submitted shows, and shows
// again once it succeeded.
#[test]
fn executions_changes_are_streamed() {
    let served = Served::start();
    served.install_greeter();
    let agent = ureq::Agent::new_with_config(
        ureq::config::Config::builder().timeout_global(Some(std::time::Duration::from_secs(30))).build(),
    );
    let response = agent.get(&format!("{}/api/v1/events", served.base)).call().unwrap();
    let mut reader = BufReader::new(response.into_body().into_reader());
    // The watcher's first look is a baseline: what changes after it is told.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, _, body) = served.submit(r#"{"bundle": "greeter", "workflow": "greet", "parameters": {"name": "x"}}"#);
    assert_eq!(status, 201, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let seen = read_sse(&mut reader, |(_, _, data)| {
        let change: Value = serde_json::from_str(data).unwrap();
        change["id"] == id.as_str() && change["status"] == "succeeded"
    });
    let last: Value = serde_json::from_str(&seen.last().unwrap().2).unwrap();
    assert_eq!((last["workflow"].as_str(), last["tasks_done"].as_u64()), (Some("greet"), Some(1)), "{last}");
}

// The same submission with the same Idempotency-Key starts one execution and answers with it
// again; the key with another request is refused.
#[test]
fn an_idempotency_key_starts_one_execution() {
    one_execution_per_idempotency_key(&Served::start());
    let Some(pg) = crate::postgres_server::postgres() else { return };
    let url = pg.url(&pg.fresh_database("serve_idempotent", None));
    one_execution_per_idempotency_key(&Served::start_on(tempfile::tempdir().unwrap(), url, &[]));
}

fn one_execution_per_idempotency_key(served: &Served) {
    served.install_greeter();
    let request = r#"{"bundle": "greeter", "workflow": "greet", "parameters": {"name": "once"}}"#;
    let (status, location, first) = served.submit_keyed(request, Some("order-7"));
    assert_eq!(status, 201, "{first}");
    let (status, again, second) = served.submit_keyed(request, Some("order-7"));
    assert_eq!((status, again.as_str()), (201, location.as_str()), "{second}");
    assert_eq!(first["id"], second["id"]);
    let (_, page) = served.get("/api/v1/executions");
    assert_eq!(page["executions"].as_array().unwrap().len(), 1, "{page}");
    let (status, _, body) = served.submit_keyed(
        r#"{"bundle": "greeter", "workflow": "greet", "parameters": {"name": "twice"}}"#,
        Some("order-7"),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("was used for another request"), "{body}");
    let (status, _, _) = served.submit_keyed(request, Some("order-8"));
    assert_eq!(status, 201);
    assert_eq!(served.submit_keyed(request, Some("")).0, 400);
}

// The graph an execution ran, as its graph_planned event told it, with each task's state and
// its place in layers, also once the execution ended.
#[test]
fn an_execution_s_graph_is_served_with_states_and_layers() {
    let served = Served::start();
    let id = served.run(
        r#"let g = graph_mode(); let s = g.sequence();
s.add(task("first", || 1)); s.add(task("boom", || throw "no")); s.add(noop("never")); g.execute();"#,
        1,
    );
    let (status, body) = served.get(&format!("/api/v1/executions/{id}/graph"));
    assert_eq!(status, 200, "{body}");
    let nodes = body["graphs"][0]["nodes"].as_array().unwrap();
    let shown: Vec<(&str, &str)> =
        nodes.iter().map(|n| (n["task"].as_str().unwrap(), n["state"].as_str().unwrap())).collect();
    assert_eq!(shown, [("first", "succeeded"), ("boom", "failed"), ("never", "pending")]);
    // Laid out left to right: each task's centre right of the one it waits for.
    let xs: Vec<f64> = nodes.iter().map(|n| n["x"].as_f64().unwrap()).collect();
    assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
    assert_eq!(body["graphs"][0]["layout"], "sugiyama");
    assert_eq!(body["graphs"][0]["edges"].as_array().unwrap().len(), 2);
    assert_eq!(nodes[0]["result"], 1);
    assert_eq!(served.get("/api/v1/executions/nope/graph").0, 404);
}

/// Makes a token of `role` in `store` with `rhaiflow tokens create`; returns it.
fn token(store: &str, role: &str) -> String {
    let out = rhaiflow()
        .args(["tokens", "create", "--role", role, "--name", &format!("{role} of a test")])
        .args(["--store", store])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

// `tokens create` prints the token once (stdout, alone); `list` shows its id and role, never
// the token; `revoke` forgets it, and an unknown id is an error (exit 2).
#[test]
fn tokens_are_made_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let made = token(&store, "operator");
    assert!(made.starts_with("rhaiflow_"), "{made}");
    let id = made.split('_').nth(1).unwrap();
    let listed = rhaiflow().args(["tokens", "list", "--store", &store]).output().unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains(&format!("{id}\toperator\t")), "{listed}");
    assert!(listed.contains("operator of a test"), "{listed}");
    assert!(!listed.contains(made.rsplit('_').next().unwrap()), "the token is listed: {listed}");
    let revoked = rhaiflow().args(["tokens", "revoke", id, "--store", &store]).output().unwrap();
    assert_eq!(revoked.status.code(), Some(0));
    let again = rhaiflow().args(["tokens", "revoke", id, "--store", &store]).output().unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains(&format!("no token has the id `{id}`")));
}

// Once the store has tokens every API request needs one (401 without, with a
// WWW-Authenticate), and each role may do only its own: a viewer reads but may not cancel, an
// operator cancels but may not delete or list tokens; the document and health stay public.
#[test]
fn with_tokens_each_request_needs_one_of_a_role_that_may() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let (viewer, operator, admin) = (token(&store, "viewer"), token(&store, "operator"), token(&store, "admin"));
    let script = dir.path().join("w.rhai");
    std::fs::write(&script, r#"let g = graph_mode(); g.add_task(task("a", || 1)); g.execute();"#).unwrap();
    rhaiflow().arg("run").arg(&script).args(["--store", &store, "-q"]).assert().success();
    let served = Served::start_on(dir, store, &[]);
    let ask = |method: &str, path: &str, token: Option<&str>| {
        let auth = token.map(bearer);
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
        let (status, body, headers) = served.exchange(method, path, None, &headers);
        (status, body, headers)
    };
    let (status, body, headers) = ask("GET", "/api/v1/executions", None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer realm=\"rhaiflow\"");
    assert_eq!(ask("GET", "/api/v1/executions", Some("rhaiflow_0_0")).0, 401);
    let (status, listed, _) = ask("GET", "/api/v1/executions", Some(&viewer));
    assert_eq!(status, 200);
    let id = listed["executions"][0]["id"].as_str().unwrap().to_string();
    let cancel = format!("/api/v1/executions/{id}/cancel");
    let (status, body, _) = ask("POST", &cancel, Some(&viewer));
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("needs the operator role"), "{body}");
    assert_eq!(ask("POST", &cancel, Some(&operator)).0, 409, "past the roles: the execution ended");
    let execution = format!("/api/v1/executions/{id}");
    assert_eq!(ask("DELETE", &execution, Some(&operator)).0, 403);
    assert_eq!(ask("GET", "/api/v1/tokens", Some(&operator)).0, 403);
    assert_eq!(ask("DELETE", &execution, Some(&admin)).0, 204);
    assert_eq!(ask("GET", "/api/v1/openapi.json", None).0, 200);
    assert_eq!(ask("GET", "/healthz", None).0, 200);
}

// The page logs in by exchanging a token for an HttpOnly, SameSite=Strict cookie, which then
// stands for the token; a request that changes something with the cookie from another site
// is refused (403), from the page's own origin it passes; logging out clears the cookie.
#[test]
fn a_login_cookie_stands_for_the_token_but_not_from_another_site() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let operator = token(&store, "operator");
    let served = Served::start_on(dir, store, &[]);
    let (status, _, _) = served.exchange("POST", "/api/v1/login", Some(r#"{"token": "rhaiflow_x_y"}"#), &[]);
    assert_eq!(status, 401);
    let login = format!(r#"{{"token": "{operator}"}}"#);
    let (status, _, headers) = served.exchange("POST", "/api/v1/login", Some(&login), &[]);
    assert_eq!(status, 204);
    let set = headers.get("set-cookie").unwrap().to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    let (status, who, _) = served.exchange("GET", "/api/v1/whoami", None, &[("Cookie", &cookie)]);
    assert_eq!(status, 200);
    assert_eq!(who["role"], "operator");
    assert_eq!(who["auth"], true);
    let host = served.base.trim_start_matches("http://").to_string();
    let (status, body, _) = served.exchange(
        "POST",
        "/api/v1/executions/nope/cancel",
        None,
        &[("Cookie", &cookie), ("Origin", "http://evil.example")],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("another site"), "{body}");
    let (status, _, _) = served.exchange(
        "POST",
        "/api/v1/executions/nope/cancel",
        None,
        &[("Cookie", &cookie), ("Origin", &format!("http://{host}")), ("Sec-Fetch-Site", "same-origin")],
    );
    assert_eq!(status, 404, "past the checks: no such execution");
    let (status, _, headers) = served.exchange("POST", "/api/v1/logout", None, &[("Cookie", &cookie)]);
    assert_eq!(status, 204);
    assert!(headers.get("set-cookie").unwrap().to_str().unwrap().contains("Max-Age=0"));
}

// With tokens it listens on any address, and asks every request there for one even once all
// tokens are revoked (a revoked token is refused within a second); an admin makes and revokes
// tokens through the API, the made one working at once.
#[test]
fn a_non_loopback_server_asks_for_tokens_and_admins_manage_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let admin = token(&store, "admin");
    let mut served = Served::start_on(dir, store, &["--listen", "0.0.0.0:0"]);
    served.base = served.base.replace("0.0.0.0", "127.0.0.1");
    let as_admin = [("Authorization", bearer(&admin))];
    let as_admin: Vec<(&str, &str)> = as_admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(served.exchange("GET", "/api/v1/executions", None, &[]).0, 401);
    let (status, made, _) =
        served.exchange("POST", "/api/v1/tokens", Some(r#"{"role": "viewer", "name": "dashboard"}"#), &as_admin);
    assert_eq!(status, 201, "{made}");
    let viewer = made["token"].as_str().unwrap().to_string();
    let (status, who, _) = served.exchange("GET", "/api/v1/whoami", None, &[("Authorization", &bearer(&viewer))]);
    assert_eq!((status, who["role"].as_str(), who["name"].as_str()), (200, Some("viewer"), Some("dashboard")));
    let (_, listed, _) = served.exchange("GET", "/api/v1/tokens", None, &as_admin);
    assert_eq!(listed["tokens"].as_array().unwrap().len(), 2, "{listed}");
    assert!(!listed.to_string().contains(&viewer), "the token is listed");
    let bad = served.exchange("POST", "/api/v1/tokens", Some(r#"{"role": "god"}"#), &as_admin);
    assert_eq!(bad.0, 422);
    // Its own token last: it is refused once revoked.
    let own = admin.split('_').nth(1).unwrap();
    let mut ids: Vec<&str> = listed["tokens"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    ids.sort_by_key(|id| *id == own);
    for id in ids {
        assert_eq!(served.exchange("DELETE", &format!("/api/v1/tokens/{id}"), None, &as_admin).0, 204);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (status, _, _) = served.exchange("GET", "/api/v1/executions", None, &as_admin);
        if status == 401 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a revoked token is still taken");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Waits up to `within` for `child` to exit; its exit code, or `None` if it still runs.
fn exited(child: &mut Child, within: std::time::Duration) -> Option<Option<i32>> {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status.code());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    None
}

// SIGTERM stopped the server only once every connection closed, and a stream of changes
// never closes: the server went on forever. Streams now end when it stops.
#[test]
fn a_stop_ends_open_streams() {
    let mut served = Served::start();
    let mut changes = BufReader::new(
        ureq::get(&format!("{}/api/v1/events", served.base))
            .header("Accept", "text/event-stream")
            .call()
            .unwrap()
            .into_body()
            .into_reader(),
    );
    unsafe { libc::kill(served.child.id() as i32, libc::SIGTERM) };
    assert_eq!(exited(&mut served.child, std::time::Duration::from_secs(8)), Some(Some(0)), "it still runs");
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut changes, &mut rest);
}

// A request's body is bounded (413 past 4 MiB), and a client that sends no whole request
// head is cut off rather than holding its connection open.
#[test]
fn bodies_are_bounded_and_slow_clients_cut_off() {
    use std::io::{Read, Write};
    let served = Served::start();
    // The server answers 413 once it has read 4 MiB and closes the connection: a client still
    // writing the rest may find it closed under it (a broken pipe) before it reads the answer.
    // Asked up to three times, it must answer 413 and nothing else.
    let big = format!(r#"{{"script": "{}"}}"#, "x".repeat(5 * 1024 * 1024));
    let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
    let url = format!("{}/api/v1/executions", served.base);
    let statuses: Vec<Option<u16>> = (0..3)
        .map(|_| {
            let sent = agent.post(&url).header("Content-Type", "application/json").send(big.as_str());
            sent.ok().map(|response| response.status().as_u16())
        })
        .collect();
    assert!(statuses.contains(&Some(413)), "{statuses:?}");
    assert!(statuses.iter().flatten().all(|s| *s == 413), "{statuses:?}");
    let mut slow = std::net::TcpStream::connect(served.base.trim_start_matches("http://")).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let mut answer = Vec::new();
    let read = slow.read_to_end(&mut answer);
    assert!(read.is_ok(), "the connection was left open: {read:?}");
}

// Tokens kept in a PostgreSQL store are taken by a server on it (every `serve` on one store
// takes the same tokens); a revoked one is refused.
#[test]
fn tokens_in_a_postgres_store_are_taken_by_its_servers() {
    let Some(pg) = crate::postgres_server::postgres() else { return };
    let url = pg.url(&pg.fresh_database("serve_tokens", None));
    let viewer = token(&url, "viewer");
    let served = Served::start_on(tempfile::tempdir().unwrap(), url.clone(), &[]);
    let auth = bearer(&viewer);
    assert_eq!(served.exchange("GET", "/api/v1/executions", None, &[]).0, 401);
    assert_eq!(served.exchange("GET", "/api/v1/executions", None, &[("Authorization", &auth)]).0, 200);
    let id = viewer.split('_').nth(1).unwrap();
    rhaiflow().args(["tokens", "revoke", id, "--store", &url]).assert().success();
    let listed = rhaiflow().args(["tokens", "list", "--store", &url]).output().unwrap();
    assert!(!String::from_utf8_lossy(&listed.stdout).contains(id));
}

// The caller is recorded in the events it causes: an execution an operator's token submits
// names it in `workflow_started`'s `by`, and a resume names its own caller.
#[test]
fn the_caller_is_named_in_the_events_it_causes() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let operator = token(&store, "operator");
    let served = Served::start_on(dir, store, &[]);
    served.install_greeter();
    let auth = bearer(&operator);
    let as_operator = [("Authorization", auth.as_str())];
    let request = r#"{"bundle": "greeter", "workflow": "greet", "parameters": {"name": "ann"}}"#;
    let (status, started, _) = served.exchange("POST", "/api/v1/executions", Some(request), &as_operator);
    assert_eq!(status, 201, "{started}");
    let id = started["id"].as_str().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let events = loop {
        let (_, events, _) = served.exchange("GET", &format!("/api/v1/executions/{id}/events"), None, &as_operator);
        if events.to_string().contains("workflow_succeeded") || std::time::Instant::now() > deadline {
            break events;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let first = &events["events"][0];
    assert_eq!(first["type"], "workflow_started", "{events}");
    let token_id = operator.split('_').nth(1).unwrap();
    assert_eq!(first["by"], format!("token {token_id} operator of a test (operator)"), "{first}");
}

// Who cancelled through the API is named in the execution's `workflow_cancelled`.
#[test]
fn who_cancelled_is_named_in_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let operator = token(&store, "operator");
    let served = Served::start_on(dir, store, &[]);
    let auth = bearer(&operator);
    let as_operator = [("Authorization", auth.as_str())];
    let path = served.dir.path().join("long.rhai");
    std::fs::write(&path, r#"let g = graph_mode(); g.add_task(shell("long", "sleep 30")); g.execute();"#).unwrap();
    let mut run = Command::cargo_bin("rhaiflow")
        .unwrap()
        .arg("run")
        .arg(&path)
        .args(["--store", &served.store, "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let id = loop {
        let (_, page, _) = served.exchange("GET", "/api/v1/executions?status=running", None, &as_operator);
        if let Some(id) = page["executions"][0]["id"].as_str() {
            break id.to_string();
        }
        assert!(std::time::Instant::now() < deadline, "it never ran");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let cancel = format!("/api/v1/executions/{id}/cancel");
    assert_eq!(served.exchange("POST", &cancel, Some(r#"{"force": true}"#), &as_operator).0, 202);
    assert_eq!(exited(&mut run, std::time::Duration::from_secs(10)), Some(Some(3)));
    let (_, events, _) = served.exchange("GET", &format!("/api/v1/executions/{id}/events"), None, &as_operator);
    let last = events["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "workflow_cancelled", "{events}");
    let token_id = operator.split('_').nth(1).unwrap();
    assert_eq!(last["by"], format!("token {token_id} operator of a test (operator)"));
}

/// Polls `path` on `served` until `done` says so (at most 20 s); the last answer.
fn poll(served: &Served, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, body) = served.get(path);
        if done(&body) || std::time::Instant::now() > deadline {
            return body;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

// A submission with a `queue` is queued for a worker of that queue (on a PostgreSQL store),
// which runs it as its submitter's: the server only records it. On a SQLite store, which no
// worker shares, it is refused (422).
#[test]
fn a_submission_with_a_queue_is_run_by_a_worker() {
    let served = Served::start();
    served.install_greeter();
    let request = r#"{"bundle": "greeter", "workflow": "greet", "parameters": {"name": "q"}, "queue": "night"}"#;
    let (status, _, body) = served.submit_keyed(request, None);
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("a store that workers share"), "{body}");

    let Some(pg) = crate::postgres_server::postgres() else { return };
    let url = pg.url(&pg.fresh_database("serve_queue", None));
    let served = Served::start_on(tempfile::tempdir().unwrap(), url.clone(), &[]);
    served.install_greeter();
    let (status, location, queued) = served.submit_keyed(request, None);
    assert_eq!(status, 201, "{queued}");
    assert_eq!(queued["status"], "queued", "nothing runs it in the server");
    let mut worker = Command::cargo_bin("rhaiflow")
        .unwrap()
        .args(["worker", "--queue", "night", "--store", &url])
        .env("RHAIFLOW_BUNDLES", served.dir.path().join("no-bundles-here"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let done = poll(&served, &location, |e| e["status"] == "succeeded");
    let _ = worker.kill();
    let said = worker.wait_with_output().unwrap();
    assert_eq!(done["status"], "succeeded", "{done}\n{}", String::from_utf8_lossy(&said.stderr));
    let (_, events) = served.get(&format!("{location}/events"));
    assert_eq!(events["events"][0]["by"], "anonymous (loopback, no tokens)", "{events}");
}

impl Served {
    /// GET `path` with `headers`: the status, the headers, the body as text.
    fn get_raw(&self, path: &str, headers: &[(&str, &str)]) -> (u16, ureq::http::HeaderMap, String) {
        let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
        let mut request = agent.get(&format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = request.call().unwrap();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (response.status().as_u16(), response.headers().clone(), text)
    }
}

// The page at `/`: HTML naming its stylesheet and scripts, each served under /assets/ with
// its type, cached by ETag; an unknown asset is a 404 problem.
#[test]
fn the_page_is_served_with_its_assets() {
    let served = Served::start();
    let (status, headers, html) = served.get_raw("/", &[]);
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert!(headers["content-security-policy"].to_str().unwrap().contains("script-src 'self'"));
    for (asset, content_type) in [
        ("/assets/style.css", "text/css; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        assert!(html.contains(asset), "the page does not load {asset}");
        let (status, headers, body) = served.get_raw(asset, &[]);
        assert_eq!((status, headers["content-type"].to_str().unwrap()), (200, content_type), "{asset}");
        assert!(!body.is_empty());
        let tag = headers["etag"].to_str().unwrap().to_string();
        let (again, _, _) = served.get_raw(asset, &[("If-None-Match", &tag)]);
        assert_eq!(again, 304, "{asset} with its ETag");
    }
    let (_, _, app) = served.get_raw("/assets/app.js", &[]);
    for module in ["./api.js", "./list.js", "./execution.js", "./submit.js"] {
        assert!(app.contains(module), "app.js does not import {module}");
        let path = format!("/assets/{}", &module[2..]);
        assert_eq!(served.get_raw(&path, &[]).0, 200, "{path}");
    }
    let (status, body, content_type) = served.get_typed("/assets/nope.js");
    assert_eq!((status, content_type.as_str()), (404, "application/problem+json"), "{body}");
    assert_eq!(served.get_typed("/assets/index.html").0, 404, "the page itself is served at /");
}

impl Served {
    /// `method path` with these headers and body, nothing added: the status and the body.
    fn send_raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
        let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
        let mut request = ureq::http::Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = agent.run(request.body(body.to_string()).unwrap()).unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        (response.status().as_u16(), serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// The statuses the served document declares for `method` on the path `template`.
    fn documented(&self, method: &str, template: &str) -> Vec<u16> {
        let (_, document) = self.get("/api/v1/openapi.json");
        let responses = document["paths"][template][method.to_lowercase()]["responses"].as_object().unwrap();
        responses.keys().map(|k| k.parse().unwrap()).collect()
    }
}

// What bad requests get is in the document (schemathesis: "undocumented status code"): a bad
// `after` or `follow` and a cancel with an unknown field were an undeclared 400, a submission
// without a JSON content type an undeclared 400 (now 415), a bad Idempotency-Key too.
#[test]
fn bad_requests_get_statuses_the_openapi_document_declares() {
    let served = Served::start();
    let id = served.run(r#"let g = graph_mode(); g.add_task(noop("a")); g.execute();"#, 0);
    let json = ("Content-Type", "application/json");
    for (method, path, template, headers, body, expected) in [
        ("GET", format!("/api/v1/executions/{id}/events?after=-1"), "/api/v1/executions/{id}/events", vec![], "", 400),
        ("GET", format!("/api/v1/executions/{id}/logs?follow=maybe"), "/api/v1/executions/{id}/logs", vec![], "", 400),
        (
            "POST",
            format!("/api/v1/executions/{id}/cancel"),
            "/api/v1/executions/{id}/cancel",
            vec![json],
            r#"{"force": true, "x": 1}"#,
            400,
        ),
        ("POST", "/api/v1/executions".into(), "/api/v1/executions", vec![], r#"{"workflow": "w"}"#, 415),
        // An array was read as the struct's fields in order: a cancel of `[]` was taken (409 here).
        ("POST", format!("/api/v1/executions/{id}/cancel"), "/api/v1/executions/{id}/cancel", vec![json], "[]", 400),
        ("POST", "/api/v1/executions".into(), "/api/v1/executions", vec![json], r#"[null, "w"]"#, 400),
        (
            "POST",
            "/api/v1/executions".into(),
            "/api/v1/executions",
            vec![json, ("Idempotency-Key", "a b")],
            r#"{"workflow": "w"}"#,
            400,
        ),
        // The login and a new token took a body without its JSON content type as 415, which
        // their document did not declare; an array was read as their fields.
        ("POST", "/api/v1/login".into(), "/api/v1/login", vec![], r#"{"token": "t"}"#, 415),
        ("POST", "/api/v1/login".into(), "/api/v1/login", vec![json], r#"["t"]"#, 400),
        ("POST", "/api/v1/tokens".into(), "/api/v1/tokens", vec![], r#"{"role": "viewer"}"#, 415),
        ("POST", "/api/v1/tokens".into(), "/api/v1/tokens", vec![json], r#"["viewer", "x"]"#, 400),
    ] {
        let (status, answer) = served.send_raw(method, &path, &headers, body);
        assert_eq!(status, expected, "{method} {path}: {answer}");
        assert!(served.documented(method, template).contains(&status), "{method} {template} does not declare {status}");
    }
}

// A seq is an int64 in the document; `after` past it was taken as a seq (200), a negative one
// is refused as before.
#[test]
fn an_after_that_is_no_int64_is_refused() {
    let served = Served::start();
    let id = served.run(r#"let g = graph_mode(); g.add_task(noop("a")); g.execute();"#, 0);
    for after in ["9223372036854775808", "-1"] {
        let (status, body) = served.get(&format!("/api/v1/executions/{id}/events?after={after}"));
        assert_eq!(status, 400, "after={after}: {body}");
    }
    assert_eq!(served.get(&format!("/api/v1/executions/{id}/events?after=9223372036854775807")).0, 200);
}

// The document's request body allows `null` for a cancel (no request: graceful), which was
// refused (400); and `limit` was documented from 0, which is refused (400): now 1 to 1000; an
// empty cursor, as an empty status, is none (it was 400).
#[test]
fn what_the_document_allows_is_accepted() {
    let served = Served::start();
    let id = served.run(r#"let g = graph_mode(); g.add_task(noop("a")); g.execute();"#, 0);
    let json = [("Content-Type", "application/json")];
    let (status, body) = served.send_raw("POST", &format!("/api/v1/executions/{id}/cancel"), &json, "null");
    assert_eq!(status, 409, "{body}");
    let (_, document) = served.get("/api/v1/openapi.json");
    let parameters = document["paths"]["/api/v1/executions"]["get"]["parameters"].as_array().unwrap();
    let limit = &parameters.iter().find(|p| p["name"] == "limit").unwrap()["schema"];
    assert_eq!((limit["minimum"].as_u64(), limit["maximum"].as_u64()), (Some(1), Some(1000)), "{limit}");
    let (status, body) = served.get("/api/v1/executions?status=&cursor=");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["executions"][0]["id"], id.as_str());
}

// A quoted Idempotency-Key (a structured-field string) is the key inside its quotes: kept
// through the stricter check of the key that the document now states (no spaces).
#[test]
fn a_quoted_idempotency_key_is_the_same_key() {
    let served = Served::start();
    served.install_greeter();
    let request = r#"{"bundle": "greeter", "workflow": "greet", "parameters": {"name": "x"}}"#;
    let (status, first, body) = served.submit_keyed(request, Some("k-1"));
    assert_eq!(status, 201, "{body}");
    let (status, again, body) = served.submit_keyed(request, Some("\"k-1\""));
    assert_eq!(status, 201, "{body}");
    assert_eq!(first, again);
}

// An execution the server runs is cancelled through the API and the server lives on: the
// cancel's nudge (SIGUSR1, to the pid that runs it: the server's own) killed the server, whose
// process had no handler for it.
#[test]
fn cancelling_an_execution_the_server_runs_leaves_the_server_running() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    let served = Served::start_on(dir, store, &["--allow-scripts"]);
    let (status, location, body) =
        served.submit(r#"{"script": "let g = graph_mode(); g.add_task(sleep(\"wait\", 30)); g.execute();"}"#);
    assert_eq!(status, 201, "{body}");
    let (status, body) = served.post(&format!("{location}/cancel"), None);
    assert_eq!(status, 202, "{body}");
    let ended = served.ended(&location);
    assert_eq!(ended["status"], "cancelled", "{ended}");
    assert_eq!(served.get("/healthz").0, 200);
}

// Two servers on one store, asked the same request with the same Idempotency-Key at once,
// started an execution each (each held the key only against itself): the store now keeps a
// key to one execution, and every answer names that one.
#[test]
fn one_key_starts_one_execution_across_servers() {
    let check = |store: String, dir: tempfile::TempDir| {
        let bundles = dir.path().join("bundles");
        let first = Served::start_on(dir, store.clone(), &[]);
        first.install_greeter();
        let second_dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&bundles, second_dir.path().join("bundles")).unwrap();
        let second = Served::start_on(second_dir, store, &[]);
        let request = r#"{"bundle": "greeter", "workflow": "greet", "parameters": {"name": "once"}}"#;
        let answers: Vec<(u16, String, Value)> = std::thread::scope(|scope| {
            let asked: Vec<_> = (0..8)
                .map(|i| {
                    let served = if i % 2 == 0 { &first } else { &second };
                    scope.spawn(move || served.submit_keyed(request, Some("same-key")))
                })
                .collect();
            asked.into_iter().map(|a| a.join().unwrap()).collect()
        });
        for (status, _, body) in &answers {
            assert_eq!(*status, 201, "{body}");
        }
        let locations: std::collections::BTreeSet<&str> = answers.iter().map(|(_, l, _)| l.as_str()).collect();
        assert_eq!(locations.len(), 1, "{locations:?}");
        let (_, listed) = first.get("/api/v1/executions?workflow=greet");
        assert_eq!(listed["executions"].as_array().unwrap().len(), 1, "{listed}");
    };
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store").display().to_string();
    check(store, dir);
    let Some(pg) = crate::postgres_server::postgres() else { return };
    let url = pg.url(&pg.fresh_database("serve_one_key", None));
    check(url, tempfile::tempdir().unwrap());
}
