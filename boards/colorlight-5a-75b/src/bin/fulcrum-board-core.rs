//! Writes the Verilog of the fast path the board image carries
//! (`fulcrum_hdl::pipeline::FastPath`), top module renamed `fulcrum_fast_path`, for
//! `build.sh` and the board simulation.
//!
//! `fulcrum-board-core OUT.v [--ecp5-bram]`: `--ecp5-bram` defines `FULCRUM_ECP5_BRAM`
//! (block RAMs as DP16KD with the output register; synthesis only, see hdl/src/ram.rs).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(out), rest) = (args.first(), args.get(1..).unwrap_or_default()) else {
        eprintln!("usage: fulcrum-board-core OUT.v [--ecp5-bram]");
        return ExitCode::from(2);
    };
    let ecp5_bram = match rest {
        [] => false,
        [flag] if flag == "--ecp5-bram" => true,
        _ => {
            eprintln!("usage: fulcrum-board-core OUT.v [--ecp5-bram]");
            return ExitCode::from(2);
        }
    };
    let verilog = fulcrum_board_colorlight::core_verilog(ecp5_bram);
    if let Err(e) = std::fs::write(out, verilog) {
        eprintln!("fulcrum-board-core: writing {out}: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
