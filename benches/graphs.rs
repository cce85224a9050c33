use criterion::*;
fn b(_c: &mut Criterion) {}
criterion_group!(g, b);
criterion_main!(g);
