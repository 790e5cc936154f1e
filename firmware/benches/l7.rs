//! What the L7 proxy's own work costs per request, without the network (see
//! `tests/common/l7_workload.rs`).
//!
//! `cargo bench -p fulcrum-firmware --bench l7`

#[path = "../tests/common/l7_workload.rs"]
mod l7_workload;

use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let mut work = l7_workload::Workload::new();
    c.bench_function("l7/request_decision_and_heads", |b| {
        b.iter(|| work.request())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
