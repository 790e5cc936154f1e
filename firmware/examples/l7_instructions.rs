//! Runs the L7 proxy's per-request work `N` times, for instruction counts under
//! callgrind: one request costs (count with `N` − count with 0) / `N` (setup cancels).
//!
//! ```sh
//! cargo build --release -p fulcrum-firmware --example l7_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/l7_instructions 10000
//! ```

#[path = "../tests/common/l7_workload.rs"]
mod l7_workload;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let mut work = l7_workload::Workload::new();
    let mut bytes = 0;
    for _ in 0..n {
        bytes += work.request();
    }
    println!("{n} requests, {bytes} response-head bytes");
}
