//! Checks on generated Verilog: yosys (when installed) must read and elaborate it.
//!
//! rust-hdl's simulator runs the Rust description, not the Verilog it writes, and 0.46
//! has code-generation bugs (see `/work/shared/TOOLCHAIN.md`), so every stage's Verilog is
//! passed through `yosys_validate` and co-simulated in iverilog (`cosim` tests).

use rust_hdl::prelude::*;

/// Whether a program answers `--version` (or `-V`) on this machine.
pub fn have_program(name: &str) -> bool {
    ["--version", "-V"].iter().any(|arg| {
        std::process::Command::new(name)
            .arg(arg)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    })
}

/// Runs rust-hdl's `yosys_validate` on `verilog` if yosys is installed; panics with
/// yosys's complaint if it rejects it. Without yosys it says so on stderr and passes.
pub fn validate(name: &str, verilog: &str) {
    if !have_program("yosys") {
        eprintln!("yosys not installed: {name} Verilog generated but not validated");
        return;
    }
    if let Err(e) = yosys_validate(&format!("fulcrum_{name}"), verilog) {
        panic!("yosys rejects the Verilog of {name}: {e:?}");
    }
}
