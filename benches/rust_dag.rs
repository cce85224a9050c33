//! The same graphs as rhaiflow's no-op workloads, built and run in Rust by the DAG crate dagx,
//! so that rhaiflow's cost per task can be read beside a native executor's (issue 19;
//! docs/PERFORMANCE.md, "The floor and the peers"). `benches/compare_rust.sh` prints both.
//!
//! Shapes (as `benches/workloads/`): `chain` (each task waits for the one before), `independent`
//! (N tasks, no edges), `layers` (layers of 100, each task waits for one task of the layer
//! before). Every task is a no-op; dagx runs them on a tokio multi-threaded runtime, as
//! rhaiflow's executor runs on one.
//!
//!     cargo bench --bench rust_dag                 # µs per task, best of 5, N = 10,000 and 100,000
//!     target/release/deps/rust_dag-* chain 20000   # one build and run (for callgrind)
//!     target/release/deps/rust_dag-* chain 20000 build   # the build alone
//!     target/release/deps/rust_dag-* time chain 20000    # µs per task: best build, best run

use std::time::{Duration, Instant};

use dagx::{task, DagRunner, Task, TaskHandle};

/// A task with nothing before it.
struct Start;

// dagx's `#[task]` wants the output type written out, `()` too.
#[allow(clippy::unused_unit)]
#[task]
impl Start {
    async fn run(&self) -> () {}
}

/// A task that waits for one other (dagx's dependencies are its inputs: here `()`).
struct After;

#[allow(clippy::unused_unit)]
#[task]
impl After {
    async fn run(&self, _before: &()) -> () {}
}

const SHAPES: &[&str] = &["chain", "independent", "layers"];
const WIDTH: usize = 100;

/// Adds the shape's N tasks to a new graph.
fn build(shape: &str, n: usize) -> DagRunner {
    let dag = DagRunner::new();
    match shape {
        "chain" => {
            let mut last: Option<TaskHandle<()>> = None;
            for _ in 0..n {
                last = Some(match last {
                    None => dag.add_task(Start).into(),
                    Some(before) => dag.add_task(After).depends_on(before),
                });
            }
        }
        "independent" => {
            for _ in 0..n {
                dag.add_task(Start);
            }
        }
        "layers" => {
            let mut previous: Vec<TaskHandle<()>> = Vec::new();
            for _ in 0..n / WIDTH {
                let current: Vec<TaskHandle<()>> = (0..WIDTH)
                    .map(|i| match previous.get(i) {
                        None => dag.add_task(Start).into(),
                        Some(before) => dag.add_task(After).depends_on(before),
                    })
                    .collect();
                previous = current;
            }
        }
        _ => panic!("unknown shape {shape}: one of {SHAPES:?}"),
    }
    dag
}

fn run(runtime: &tokio::runtime::Runtime, dag: &DagRunner) {
    runtime
        .block_on(dag.run(|fut| {
            tokio::spawn(fut);
        }))
        .expect("the graph runs");
}

/// The best of `runs` builds and of `runs` executions, per task.
fn timed(runtime: &tokio::runtime::Runtime, shape: &str, n: usize, runs: usize) -> (Duration, Duration) {
    let (mut build_best, mut run_best) = (Duration::MAX, Duration::MAX);
    for _ in 0..runs {
        let start = Instant::now();
        let dag = build(shape, n);
        build_best = build_best.min(start.elapsed());
        let start = Instant::now();
        run(runtime, &dag);
        run_best = run_best.min(start.elapsed());
    }
    (build_best / n.max(1) as u32, run_best / n.max(1) as u32)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        // One build and run (or only the build), nothing else: what callgrind counts.
        [shape, n] => run(&runtime, &build(shape, size(n))),
        [shape, n, "build"] => drop(build(shape, size(n))),
        // µs per task for compare_rust.sh: the best build, the best run.
        ["time", shape, n] => {
            let (b, r) = timed(&runtime, shape, size(n), 5);
            println!("{:.4} {:.4}", b.as_secs_f64() * 1e6, r.as_secs_f64() * 1e6);
        }
        // `cargo test` runs bench targets without `--bench`: one small pass, as a check.
        [] if !std::env::args().any(|a| a == "--bench") => {
            for shape in SHAPES {
                run(&runtime, &build(shape, 200));
            }
        }
        [] => table(&runtime),
        _ => panic!("usage: rust_dag [SHAPE N [build]] | [time SHAPE N]"),
    }
}

fn size(n: &str) -> usize {
    n.parse().unwrap_or_else(|_| panic!("N must be a number, not {n}"))
}

fn table(runtime: &tokio::runtime::Runtime) {
    println!("{:<12} {:>8} {:>12} {:>12} {:>12}", "shape", "N", "build µs", "run µs", "total µs");
    for shape in SHAPES {
        for n in [10_000, 100_000] {
            let (b, r) = timed(runtime, shape, n, 5);
            let us = |d: Duration| d.as_secs_f64() * 1e6;
            println!("{shape:<12} {n:>8} {:>12.3} {:>12.3} {:>12.3}", us(b), us(r), us(b) + us(r));
        }
    }
}
