//! Per-task overhead of the executor and of building graphs from a script.
//!
//! Each benchmark runs a workload script from `benches/workloads/` through the library,
//! in memory (no events written), with N given as a parameter. The `build_*` workloads only
//! build their graph: a workload's time minus its build's is the cost of executing it. Criterion reports time per
//! iteration and, with `Throughput::Elements`, tasks per second.
//!
//!     cargo bench --bench graphs

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rhaiflow::{run, RunOptions, Status, StoreChoice};

fn workload(name: &str, n: u64) -> RunOptions {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/workloads").join(format!("{name}.rhai"));
    let mut options = RunOptions::new(path);
    options.parameters.insert("n".into(), n.into());
    options
}

/// The same workload recorded in the embedded SQLite store (a fresh file per benchmark).
fn durable(mut options: RunOptions, dir: &tempfile::TempDir) -> RunOptions {
    options.store = StoreChoice::At(dir.path().join("bench.db").into());
    options
}

fn run_workload(options: &RunOptions) {
    let report = run(options, Vec::new());
    assert_eq!(report.status, Status::Succeeded, "{:?}", report.diagnostic.map(|d| d.into_message()));
}

fn bench(c: &mut Criterion, group_name: &str, script: &str, sizes: &[u64]) {
    bench_in(c, group_name, script, sizes, false);
}

fn bench_in(c: &mut Criterion, group_name: &str, script: &str, sizes: &[u64], on_disk: bool) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    for &n in sizes {
        let options = if on_disk { durable(workload(script, n), &dir) } else { workload(script, n) };
        group.throughput(Throughput::Elements(n));
        group.bench_with_input(BenchmarkId::from_parameter(n), &options, |b, options| b.iter(|| run_workload(options)));
    }
    group.finish();
}

fn noop_chain(c: &mut Criterion) {
    bench(c, "noop_chain", "noop_chain", &[10_000, 100_000]);
}

fn noop_fanout(c: &mut Criterion) {
    bench(c, "noop_fanout", "noop_fanout", &[10_000, 100_000]);
}

fn closures(c: &mut Criterion) {
    bench(c, "closures", "closures", &[10_000, 100_000]);
}

fn build_only(c: &mut Criterion) {
    bench(c, "build_chain", "build_chain", &[100_000]);
    bench(c, "build_fanout", "build_fanout", &[100_000]);
    bench(c, "build_closures", "build_closures", &[100_000]);
    bench(c, "build_pushed", "build_pushed", &[100_000]);
}

fn durable_store(c: &mut Criterion) {
    bench_in(c, "durable/noop_chain", "noop_chain", &[10_000, 100_000], true);
    bench_in(c, "durable/noop_fanout", "noop_fanout", &[100_000], true);
    bench_in(c, "durable/closures", "closures", &[10_000, 100_000], true);
}

criterion_group!(benches, noop_chain, noop_fanout, closures, build_only, durable_store);
criterion_main!(benches);
