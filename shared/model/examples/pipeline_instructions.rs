//! Instructions per packet of the reference model, for callgrind: wall-clock numbers on a
//! shared machine wander, instruction counts do not.
//!
//! Replays one workload of `benches/pipeline.rs` for `N` packets after the same setup
//! (program the tables, open the flows, prime the stream). Run it under callgrind with
//! `N = 0` and with a large `N`; the difference of the two totals divided by `N` is the
//! cost of one packet, setup excluded:
//!
//! ```text
//! cargo build --release -p fulcrum-model --example pipeline_instructions
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/pipeline_instructions established 0
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/pipeline_instructions established 100000
//! ```
//!
//! Workloads: `established` (NAT, 64-byte ACKs), `established-1500`, `new` (SYNs at
//! steady state), `mix`, `fullnat-return`, `nat-return`.

#[path = "../benches/pipeline.rs"]
#[allow(dead_code)]
mod bench;

use bench::workload::{self, Runner, Service};

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: pipeline_instructions <established|established-1500|new|mix|fullnat-return|nat-return> <packets>";
    let name = args.next().expect(usage);
    let packets: u64 = args.next().and_then(|n| n.parse().ok()).expect(usage);
    let scenario = match name.as_str() {
        "established" => workload::established(Service::Nat, workload::MIN_FRAME),
        "established-1500" => workload::established(Service::Nat, 1500),
        "new" => workload::new_flows(),
        "mix" => workload::mix(),
        "fullnat-return" => workload::returning(Service::Fullnat, workload::MIN_FRAME),
        "nat-return" => workload::returning(Service::Nat, workload::MIN_FRAME),
        _ => panic!("{usage}"),
    };
    let (mut owned, cp) = workload::setup();
    let mut runner = Runner::new(&mut owned, &cp, &scenario);
    let sent = runner.run(packets);
    println!("{name}: {packets} packets, {sent} bytes sent");
}
