//! `rhaiflow serve` under load, against issue 18's targets: `GET /api/v1/executions?limit=100`
//! p99 under 20 ms with 10,000 executions stored; an event at an SSE client within 100 ms of
//! its commit; 1,000 SSE streams open on one process. It drives the real binary over HTTP (the
//! release one under `cargo bench`) on a throw-away store that it fills through the API, and
//! prints a table (docs/PERFORMANCE.md, "rhaiflow serve").
//!
//!     cargo bench --bench serve
//!
//! `SERVE_BENCH_EXECUTIONS` (10000), `SERVE_BENCH_REQUESTS` (1000) and `SERVE_BENCH_STREAMS`
//! (1000) change the sizes; `SERVE_BENCH_BINARY` another binary.
//!
//! An event's latency is measured from its own timestamp (taken when the event is made, before
//! it is committed) to its arrival at the client, on the same clock: an upper bound of the
//! time from its commit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

fn main() {
    // `cargo test` runs bench targets without `--bench`: nothing to measure then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let executions = size("SERVE_BENCH_EXECUTIONS", 10_000);
    let requests = size("SERVE_BENCH_REQUESTS", 1_000);
    let streams = size("SERVE_BENCH_STREAMS", 1_000);
    let files = raise_open_files();
    println!("open files allowed: {files}");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let server = Server::start(dir.path());
    let filled = Instant::now();
    server.fill(executions);
    println!("filled with {executions} executions through POST /api/v1/executions in {:.1?}", filled.elapsed());
    print_header();
    let mut table = Vec::new();
    table.extend(listing(&server, requests));
    table.push(one_stream(&server));
    table.extend(many_streams(&server, streams));
    println!("\nagain, together:");
    print_header();
    table.iter().for_each(print_row);
}

fn size(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Raises this process's soft limit of open files to its hard limit (the server, its child,
/// inherits it): each stream is a socket at both ends.
fn raise_open_files() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a rlimit.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// A `rhaiflow serve` on a store in `dir`, with a bundle `bench` installed.
struct Server {
    child: Child,
    base: String,
    host: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const PLUGIN: &str = "plugin:\n  name: bench\n  version: 1.0.0\n  description: the serve benchmark's workflows\nworkflows:\n  one:\n    mapping: bench.flows.one\n    parameters:\n      fail: {type: boolean, default: false}\n  tick:\n    mapping: bench.flows.tick\n    parameters:\n      n: {type: integer}\n      ms: {type: integer}\n";

/// `one`: a task (and a failing one); `tick`: `n` tasks in a row, `ms` each (two events each).
const FLOWS: &str = r#"
fn one(ctx, fail) { let g = graph_mode(); g.add_task(noop("a")); if fail { g.add_task(task("b", || throw "no")); } g.execute(); }
fn tick(ctx, n, ms) {
    let g = graph_mode();
    let s = g.sequence();
    for i in 0..n { s.add(task(`t${i}`, || sleep(ms / 1000.0))); }
    g.execute();
}
"#;

impl Server {
    fn start(dir: &Path) -> Server {
        let binary = std::env::var("SERVE_BENCH_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rhaiflow").into());
        let bundle = dir.join("bench");
        std::fs::create_dir_all(&bundle).unwrap();
        std::fs::write(bundle.join("plugin.yaml"), PLUGIN).unwrap();
        std::fs::write(bundle.join("flows.rhai"), FLOWS).unwrap();
        let bundles = dir.join("bundles");
        let installed = Command::new(&binary)
            .args(["bundle", "install"])
            .arg(&bundle)
            .env("RHAIFLOW_BUNDLES", &bundles)
            .output()
            .expect("rhaiflow runs");
        assert!(installed.status.success(), "{}", String::from_utf8_lossy(&installed.stderr));
        let mut child = Command::new(&binary)
            .args(["serve", "--listen", "127.0.0.1:0", "--store"])
            .arg(dir.join("store"))
            .env("RHAIFLOW_BUNDLES", &bundles)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("rhaiflow serve starts");
        let mut line = String::new();
        BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
        let base = line.split_whitespace().find(|w| w.starts_with("http://")).expect("an address").to_string();
        let host = base.trim_start_matches("http://").to_string();
        Server { child, base, host }
    }

    fn agent() -> ureq::Agent {
        ureq::Agent::new_with_config(ureq::config::Config::builder().http_status_as_error(false).build())
    }

    fn get(&self, agent: &ureq::Agent, path: &str) -> Value {
        let mut response = agent.get(&format!("{}{path}", self.base)).call().expect("an answer");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        response.body_mut().read_json().expect("JSON")
    }

    /// Submits `workflow` with `parameters`: the execution's id, once it began.
    fn submit(&self, agent: &ureq::Agent, workflow: &str, parameters: Value) -> String {
        let request = serde_json::json!({ "bundle": "bench", "workflow": workflow, "parameters": parameters });
        let mut response = agent
            .post(&format!("{}/api/v1/executions", self.base))
            .header("Content-Type", "application/json")
            .send(request.to_string())
            .expect("an answer");
        let body: Value = response.body_mut().read_json().expect("JSON");
        assert_eq!(response.status().as_u16(), 201, "{body}");
        body["id"].as_str().expect("an id").to_string()
    }

    /// `count` executions of `one` (every tenth fails), from 8 clients at once, through the
    /// API: each recorded by the server as `rhaiflow run` records it.
    fn fill(&self, count: usize) {
        let since = Instant::now();
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    let agent = Server::agent();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return;
                        }
                        self.submit(&agent, "one", serde_json::json!({ "fail": i.is_multiple_of(10) }));
                    }
                });
            }
        });
        println!("submitted in {:.1?}", since.elapsed());
        // The last runs end (a page of running executions would not be the steady state).
        let agent = Server::agent();
        while self.get(&agent, "/api/v1/executions?status=running,queued&limit=1")["executions"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One line of the table: what was measured, how many samples, their p50, p99 and max (ms).
struct Row {
    what: String,
    samples: Vec<f64>,
    note: String,
}

/// A row of the table, printed as soon as it is measured.
fn row(what: impl Into<String>, mut samples: Vec<f64>, note: impl Into<String>) -> Row {
    samples.sort_by(|a, b| a.total_cmp(b));
    let row = Row { what: what.into(), samples, note: note.into() };
    print_row(&row);
    row
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn print_header() {
    println!("\n| measured | samples | p50 ms | p99 ms | max ms | |");
    println!("|---|---:|---:|---:|---:|---|");
}

fn print_row(r: &Row) {
    let (p50, p99) = (percentile(&r.samples, 0.50), percentile(&r.samples, 0.99));
    let max = r.samples.last().copied().unwrap_or(f64::NAN);
    println!("| {} | {} | {p50:.2} | {p99:.2} | {max:.2} | {} |", r.what, r.samples.len(), r.note);
}

/// `GET /api/v1/executions?limit=100`: the first page, a page 5,000 deep (its cursor), and
/// the failed ones; `requests` times each, one after the other on one connection.
fn listing(server: &Server, requests: usize) -> Vec<Row> {
    let agent = Server::agent();
    let mut path = "/api/v1/executions?limit=100".to_string();
    for _ in 0..50 {
        match server.get(&agent, &path)["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/executions?limit=100&cursor={cursor}"),
            None => break,
        }
    }
    let pages = [
        ("first page", "/api/v1/executions?limit=100".to_string()),
        ("5,000 deep (cursor)", path),
        ("status=failed", "/api/v1/executions?limit=100&status=failed".to_string()),
    ];
    pages
        .into_iter()
        .map(|(what, path)| {
            for _ in 0..20 {
                server.get(&agent, &path);
            }
            let samples = (0..requests)
                .map(|_| {
                    let since = Instant::now();
                    let page = server.get(&agent, &path);
                    let took = since.elapsed().as_secs_f64() * 1000.0;
                    assert!(page["executions"].is_array(), "{path}");
                    took
                })
                .collect();
            row(format!("GET /executions?limit=100, {what}"), samples, "target p99 < 20")
        })
        .collect()
}

/// What an SSE stream received: each event's latency (ms), and whether it saw the end.
#[derive(Default)]
struct Received {
    latencies: Vec<f64>,
    ended: bool,
    /// The connection failed before the response's headers (refused, reset).
    failed: bool,
}

/// Reads the Server-Sent Events of `path` until the stream ends or `done` says so for an
/// event (`event` name, `data`); `latency` gives an event's latency from its data and its
/// arrival. `connected` is told once the response's headers arrived.
fn follow(
    host: &str,
    path: &str,
    connected: impl FnOnce(),
    latency: impl Fn(&str, &Value, SystemTime) -> Option<f64>,
    done: impl Fn(&str, &Value) -> bool,
) -> Received {
    let failed = Received { failed: true, ..Received::default() };
    let Ok(mut stream) = TcpStream::connect(host) else { return failed };
    if write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: text/event-stream\r\n\r\n").is_err() {
        return failed;
    }
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return failed;
        }
        if line.trim_end().is_empty() {
            break;
        }
    }
    connected();
    let mut received = Received::default();
    let mut text = String::new();
    // The body is chunked: each chunk a hex size line, the bytes, CRLF.
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return received;
        }
        let size = usize::from_str_radix(line.trim(), 16).unwrap_or(0);
        if size == 0 {
            return received;
        }
        let mut chunk = vec![0; size + 2];
        if reader.read_exact(&mut chunk).is_err() {
            return received;
        }
        let arrived = SystemTime::now();
        text.push_str(&String::from_utf8_lossy(&chunk[..size]));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut event, mut data) = ("", String::new());
            for field in block.lines() {
                if let Some(name) = field.strip_prefix("event:") {
                    event = name.trim();
                } else if let Some(value) = field.strip_prefix("data:") {
                    data.push_str(value.trim_start());
                }
            }
            let Ok(value) = serde_json::from_str::<Value>(&data) else { continue };
            received.latencies.extend(latency(event, &value, arrived));
            if done(event, &value) {
                received.ended = true;
                return received;
            }
        }
    }
}

/// Milliseconds from the RFC 3339 time `at` to `arrived`.
fn since_ms(at: Option<&str>, arrived: SystemTime) -> Option<f64> {
    let at = humantime::parse_rfc3339_weak(at?).ok()?;
    Some(arrived.duration_since(at).unwrap_or_default().as_secs_f64() * 1000.0)
}

/// An execution's events at its own stream (those made after the stream was open).
fn events_of(server: &Server, id: &str, connected: impl FnOnce()) -> Received {
    let opened = Arc::new(Mutex::new(None));
    let mark = opened.clone();
    follow(
        &server.host,
        &format!("/api/v1/executions/{id}/events"),
        move || {
            *mark.lock().unwrap() = Some(SystemTime::now());
            connected();
        },
        move |_, value, arrived| {
            let ts = humantime::parse_rfc3339_weak(value["ts"].as_str()?).ok()?;
            let open = (*opened.lock().unwrap())?;
            (ts >= open).then(|| arrived.duration_since(ts).unwrap_or_default().as_secs_f64() * 1000.0)
        },
        |event, _| event == "end",
    )
}

/// The changes stream until execution `id` ended: the latency of its end (from `ended_at`).
fn changes_until_ended(server: &Server, id: &str, connected: impl FnOnce()) -> Received {
    let ended = |value: &Value| value["id"] == id && value["ended_at"].is_string();
    follow(
        &server.host,
        "/api/v1/events",
        connected,
        |_, value, arrived| ended(value).then(|| since_ms(value["ended_at"].as_str(), arrived)).flatten(),
        |_, value| ended(value),
    )
}

/// One client: the events of a 200-task execution at its stream, and its end at the changes
/// stream.
fn one_stream(server: &Server) -> Row {
    let agent = Server::agent();
    let id = server.submit(&agent, "tick", serde_json::json!({ "n": 200, "ms": 10 }));
    let received = events_of(server, &id, || {});
    assert!(received.ended, "the stream of {id} never ended");
    row("event to one SSE client (execution's stream)", received.latencies, "target < 100")
}

/// `streams` streams at once, half on the changes stream and half on one execution's events
/// (each looking at the store on its own), while the execution runs: every event's latency at
/// every stream, and whether every stream saw the end.
fn many_streams(server: &Server, streams: usize) -> Vec<Row> {
    let agent = Server::agent();
    // Long enough for every stream to connect first: 400 tasks of 25 ms.
    let id = server.submit(&agent, "tick", serde_json::json!({ "n": 400, "ms": 25 }));
    let connected = Arc::new(AtomicUsize::new(0));
    let since = Instant::now();
    let results: Vec<(bool, Received)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..streams)
            .map(|i| {
                // A connection a millisecond: a burst of a thousand within ~50 ms overflows
                // the listen queue of a server this machine's 2 cores also run the clients for.
                std::thread::sleep(Duration::from_millis(1));
                let (id, connected) = (id.clone(), connected.clone());
                let on_changes = i % 2 == 0;
                std::thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn_scoped(scope, move || {
                        let up = move || {
                            connected.fetch_add(1, Ordering::Relaxed);
                        };
                        if on_changes {
                            (true, changes_until_ended(server, &id, up))
                        } else {
                            (false, events_of(server, &id, up))
                        }
                    })
                    .expect("a thread")
            })
            .collect();
        while connected.load(Ordering::Relaxed) < streams && since.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(10));
        }
        println!("{} streams open in {:.1?}", connected.load(Ordering::Relaxed), since.elapsed());
        let joined: Vec<(bool, Received)> = handles.into_iter().map(|h| h.join().expect("a stream")).collect();
        let events: usize = joined.iter().map(|(_, r)| r.latencies.len()).sum();
        println!("{events} events delivered to the streams in {:.1?}", since.elapsed());
        joined
    });
    let open = results.iter().filter(|(_, r)| !r.failed).count();
    let ended = results.iter().filter(|(_, r)| r.ended).count();
    let mut on_changes = Vec::new();
    let mut on_events = Vec::new();
    for (changes, received) in results {
        if changes { &mut on_changes } else { &mut on_events }.extend(received.latencies);
    }
    let note = format!("{open} of {streams} streams served, {ended} saw the end; target < 100");
    vec![
        row(format!("event to each of {} execution streams", streams - streams / 2), on_events, note.clone()),
        row(format!("end to each of {} /events streams", streams / 2), on_changes, note),
    ]
}
