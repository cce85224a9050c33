//! The floor: what Rhai itself costs to run a workload's build loop, so that rhaiflow's distance
//! to it stays visible (issue 19; docs/PERFORMANCE.md, "The floor and the peers").
//!
//! It evaluates the very same scripts as rhaiflow (`benches/workloads/*.rhai`), on the engine a
//! real run starts from (`rhaiflow::plain_engine`: the same optimisation level, limits and
//! progress hook), but with host functions that do nothing except push a small number into a
//! Vec and hand back a tiny handle. Whatever a run adds above this figure is rhaiflow's own;
//! anything that makes `plain_engine` cheaper lowers the floor too.
//!
//!     cargo bench --bench floor                          # every workload at N = 20,000, timed
//!     target/release/deps/floor-* build_chain 20000      # one evaluation (for callgrind)
//!
//! `benches/instructions.sh` runs it under callgrind at N = 0 and N = 20,000.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, FnPtr, ImmutableString, Map, Scope, INT};

/// The workloads whose build loop has a floor: the build-only scripts, and `noop_layers`
/// (whose `execute()` does nothing here, so what is left is its build loop).
const WORKLOADS: &[&str] =
    &["build_chain", "build_fanout", "build_closures", "build_pushed", "build_independent", "noop_layers"];

thread_local! {
    /// Everything the host functions record: one number per call.
    static SINK: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Records one call and returns its number.
fn record() -> u32 {
    SINK.with(|sink| {
        let mut sink = sink.borrow_mut();
        let id = sink.len() as u32;
        sink.push(id);
        id
    })
}

/// What `graph_mode()` returns; its methods only record.
#[derive(Clone, Copy)]
struct Graph;

/// What `g.sequence()` returns.
#[derive(Clone, Copy)]
struct Sequence;

/// What a task constructor returns: a task, as small as a handle can be.
#[derive(Clone, Copy)]
struct Handle(#[allow(dead_code)] u32);

/// The host API the workloads call, each function only recording that it was called.
fn register(engine: &mut Engine) {
    engine
        .register_type_with_name::<Graph>("Graph")
        .register_type_with_name::<Sequence>("Sequence")
        .register_type_with_name::<Handle>("Task")
        .register_fn("graph_mode", || {
            record();
            Graph
        })
        .register_fn("noop", |_name: ImmutableString| Handle(record()))
        .register_fn("task", |_name: ImmutableString, _body: FnPtr| Handle(record()))
        .register_fn("forkjoin", |tasks: Array| Handle(record() + tasks.len() as u32))
        .register_fn("sequence", |_g: &mut Graph| {
            record();
            Sequence
        })
        .register_fn("add", |_s: &mut Sequence, _t: Handle| {
            record();
        })
        .register_fn("add_task", |_g: &mut Graph, t: Handle| {
            record();
            t
        })
        .register_fn("add_dependency", |_g: &mut Graph, _a: Handle, _b: Handle| {
            record();
        })
        .register_fn("execute", |_g: &mut Graph| {
            record();
        });
}

/// Compiles and evaluates one workload with `params.n = n`, as a run does (compile, then
/// evaluate the AST with `params` as a constant); returns how many calls were recorded.
fn evaluate(engine: &Engine, script: &Path, n: INT) -> usize {
    SINK.with(|sink| sink.borrow_mut().clear());
    let text = std::fs::read_to_string(script).unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    let ast = engine.compile(&text).unwrap_or_else(|e| panic!("{}: {e}", script.display()));
    let mut params = Map::new();
    params.insert("n".into(), Dynamic::from(n));
    let mut scope = Scope::new();
    scope.push_constant("params", params);
    if let Err(e) = engine.eval_ast_with_scope::<Dynamic>(&mut scope, &ast) {
        panic!("{}: {e}", script.display());
    }
    SINK.with(|sink| sink.borrow().len())
}

fn workload(name: &str) -> PathBuf {
    if name.ends_with(".rhai") {
        return PathBuf::from(name);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/workloads").join(format!("{name}.rhai"))
}

fn engine() -> Engine {
    let mut engine = rhaiflow::plain_engine(&rhaiflow::Limits::default());
    register(&mut engine);
    engine
}

/// The best of `runs` evaluations, per iteration of the loop.
fn timed(engine: &Engine, name: &str, n: INT, runs: usize) -> Duration {
    let best = (0..runs)
        .map(|_| {
            let start = Instant::now();
            evaluate(engine, &workload(name), n);
            start.elapsed()
        })
        .min()
        .unwrap_or_default();
    best / n.max(1) as u32
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let engine = engine();
    match args.as_slice() {
        // One evaluation, nothing else: what callgrind counts.
        [name, n] => {
            let n: INT = n.parse().unwrap_or_else(|_| panic!("N must be a number, not {n}"));
            let calls = evaluate(&engine, &workload(name), n);
            println!("{name} n={n}: {calls} host calls");
        }
        // `cargo test` runs bench targets without `--bench`: one small pass, as a check that
        // every workload still evaluates against this host API.
        [] if !std::env::args().any(|a| a == "--bench") => {
            for name in WORKLOADS {
                evaluate(&engine, &workload(name), 10);
            }
        }
        [] => {
            println!("{:<20} {:>12}", "workload", "µs / iteration (best of 5, N = 20,000)");
            for name in WORKLOADS {
                let per = timed(&engine, name, 20_000, 5);
                println!("{name:<20} {:>12.3}", per.as_secs_f64() * 1e6);
            }
        }
        _ => panic!("usage: floor [WORKLOAD N]"),
    }
}
