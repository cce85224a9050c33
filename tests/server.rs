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
    store: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Served {
    fn start() -> Served {
        let store = tempfile::tempdir().unwrap();
        let mut child = Command::cargo_bin("rhaiflow")
            .unwrap()
            .args(["serve", "--listen", "127.0.0.1:0", "--store"])
            .arg(store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
        let address = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("{line}"));
        Served { child, base: address.to_string(), store }
    }

    /// Runs `script` recorded in this server's store; returns the execution id.
    fn run(&self, script: &str, expect: i32) -> String {
        let path = self.store.path().join("w.rhai");
        std::fs::write(&path, script).unwrap();
        let out = rhaiflow().arg("run").arg(&path).arg("--store").arg(self.store.path()).arg("-q").output().unwrap();
        assert_eq!(out.status.code(), Some(expect), "{}", String::from_utf8_lossy(&out.stderr));
        let listed: Value = self.get("/api/v1/executions?limit=1").1;
        listed["executions"][0]["id"].as_str().unwrap().to_string()
    }

    /// GET `path`: the status, the body as JSON (or as a JSON string when it is not JSON), and
    /// its content type.
    fn get_typed(&self, path: &str) -> (u16, Value, String) {
        let agent = ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build());
        let mut response = agent.get(&format!("{}{path}", self.base)).call().unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
        let text = response.body_mut().read_to_string().unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body, content_type.unwrap_or_default())
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
}

// Without authentication it serves loopback only: another address is refused before it
// listens (exit 2).
#[test]
fn a_non_loopback_address_is_refused() {
    let store = tempfile::tempdir().unwrap();
    let out = rhaiflow().args(["serve", "--listen", "0.0.0.0:0", "--store"]).arg(store.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("will not listen on 0.0.0.0:0 without authentication"), "{said}");
}
