//! Simulation speed of the header parser alone, direct-stepping style (a measurement, not
//! a test): `cargo run -p fulcrum-hdl --release --example parser_sim_speed`.

use fulcrum_hdl::parser::HeaderParser;
use fulcrum_hdl::sim::{settle, tick};
use rust_hdl::prelude::*;

fn main() {
    let mut uut = HeaderParser::new();
    uut.connect_all();
    let cycles = 100_000u64;
    let started = std::time::Instant::now();
    for i in 0..cycles {
        uut.s_axis.tvalid.next = true;
        uut.s_axis.tdata.next = (i & 0xff).into();
        uut.s_axis.tlast.next = i % 100 == 99;
        uut.m_axis.tready.next = true;
        uut.m_hdr.tready.next = true;
        settle(&mut uut);
        tick(&mut uut, |u| &mut u.clock);
    }
    let rate = cycles as f64 / started.elapsed().as_secs_f64();
    println!("header parser: {rate:.0} cycles/s");
}
