//! Per-task overhead of the executor and of building graphs from a script.
//!
//! Each benchmark runs a workload script from `benches/workloads/` through the library,
//! in memory (no events written), with N given as a parameter. Criterion reports time per
//! iteration and, with `Throughput::Elements`, tasks per second.
//!
//!     cargo bench --bench graphs

use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rhaiflow::{run, RunOptions, Status};

fn workload(name: &str, n: u64) -> RunOptions {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/workloads").join(format!("{name}.rhai"));
    let mut options = RunOptions::new(path);
    options.parameters.insert("n".into(), n.into());
    options
}

fn run_workload(options: &RunOptions) {
    let report = run(options, Vec::new());
    assert_eq!(report.status, Status::Succeeded, "{:?}", report.diagnostic.map(|d| d.message));
}

fn bench(c: &mut Criterion, group_name: &str, script: &str, sizes: &[u64]) {
    let mut group = c.benchmark_group(group_name);
    group.sample_size(10);
    for &n in sizes {
        let options = workload(script, n);
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
    bench(c, "closures", "closures", &[10_000]);
}

fn build_chain(c: &mut Criterion) {
    bench(c, "build_chain", "build_chain", &[100_000]);
}

criterion_group!(benches, noop_chain, noop_fanout, closures, build_chain);
criterion_main!(benches);
