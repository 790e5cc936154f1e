//! Running the board top in iverilog at the RGMII pins.
//!
//! [`BoardSim`] compiles `sim/tb_board.v` with the ECP5 primitive models and the board
//! RTL, feeds each port's PHY receive side with frames (as on the wire after the SFD,
//! FCS included, back to back with the 12-byte gap) and returns every frame seen on each
//! port's RGMII transmit pins, with its timing. Port 1's PHY clock runs 500 ppm fast and
//! port 2's 500 ppm slow against the core clock, so every frame crosses clock domains.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a simulation could not run or its output could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// iverilog or vvp is missing or failed.
    #[error("{tool} failed: {detail}")]
    Tool {
        /// The program.
        tool: &'static str,
        /// Its error or output.
        detail: String,
    },
    /// Reading or writing a simulation file failed.
    #[error("simulation file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A line of the testbench's output file did not parse.
    #[error("testbench output line {line}: {text:?}")]
    Output {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

/// A frame seen on a port's RGMII transmit pins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxFrame {
    /// 1 (network) or 2 (MCU).
    pub port: u8,
    /// Simulation time of its first preamble byte, in picoseconds.
    pub start_ps: u64,
    /// Idle byte times on this port before it (the inter-frame gap, or the time since the
    /// simulation started for the first frame).
    pub idle_before: u32,
    /// Seven 0x55 bytes then 0xD5.
    pub preamble_ok: bool,
    /// The bytes after the SFD, FCS included.
    pub wire: Vec<u8>,
}

impl TxFrame {
    /// The frame without its FCS, if the FCS is right.
    pub fn payload(&self) -> Option<&[u8]> {
        let (frame, fcs) = self.wire.split_at(self.wire.len().checked_sub(4)?);
        (fcs == crate::fcs(frame)).then_some(frame)
    }
}

/// The board top in a simulator, compiled once per `BoardSim`.
pub struct BoardSim {
    dir: PathBuf,
    engine: Engine,
}

enum Engine {
    /// `sim/tb_board.v` in iverilog (`vvp` file): the testbench with the ECP5 primitives'
    /// delays.
    Iverilog(PathBuf),
    /// `fulcrum_board` under Verilator, driven by `sim/board_main.cpp` (the binary).
    Verilator(PathBuf),
}

/// The C++ main of the Verilated board.
pub const BOARD_MAIN_CPP: &str = include_str!("../sim/board_main.cpp");
/// The ECP5 primitive models for Verilator (no delays).
pub const ECP5_MODELS_VL: &str = include_str!("../sim/ecp5_models_vl.v");

/// This crate's directory (holding `rtl/` and `sim/`).
pub fn board_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The board RTL files, in `rtl/`, that make up the image.
pub const RTL_SOURCES: &[&str] = &[
    "fulcrum_board.v",
    "eth_port.v",
    "frame_fifo.v",
    "eth_mac_rx.v",
    "eth_mac_tx.v",
    "rgmii_phy_if.v",
    "board_pll.v",
    "core_loopthrough.v",
    "ctrl_bridge.v",
    "frame_arbiter.v",
    "mdio_ctrl.v",
    "axis_skid.v",
];

/// The core the simulated board carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Core {
    /// The image's core (`rtl/core_loopthrough.v`): port 1 <-> port 2 unchanged, no
    /// registers.
    LoopThrough,
    /// `sim/tb_core_regs.v`, test only: the loop-through plus 256 plain registers on the
    /// register bus (word address bits 7:0, `ID` at 0), for the control-frame bridge.
    TestRegisters,
    /// `fulcrum_hdl::pipeline::FastPath` (generated Verilog, [`crate::core_verilog`])
    /// behind `rtl/core_fast_path.v`.
    FastPath,
}

impl BoardSim {
    /// Compiles the testbench with `core` into `work_dir`.
    pub fn compile(work_dir: &Path, core: Core) -> Result<Self, SimError> {
        let board = board_dir();
        let vvp = work_dir.join("tb_board.vvp");
        let mut cmd = Command::new("iverilog");
        match core {
            Core::LoopThrough => {}
            Core::TestRegisters => {
                cmd.arg("-DFULCRUM_CORE=tb_core_regs")
                    .arg(board.join("sim/tb_core_regs.v"));
            }
            Core::FastPath => {
                let verilog = work_dir.join("fulcrum_fast_path.v");
                std::fs::write(&verilog, crate::core_verilog(false)).map_err(|source| {
                    SimError::Io {
                        path: verilog.clone(),
                        source,
                    }
                })?;
                cmd.arg("-DFULCRUM_CORE=core_fast_path")
                    .arg(board.join("rtl/core_fast_path.v"))
                    .arg(&verilog);
            }
        }
        cmd.args(["-g2005", "-s", "tb_board", "-I"])
            .arg(board.join("rtl"))
            .arg("-o")
            .arg(&vvp)
            .arg(board.join("sim/tb_board.v"))
            .arg(board.join("sim/ecp5_models.v"))
            .arg(board.join("sim/ecp5_ddr.v"));
        for src in RTL_SOURCES {
            cmd.arg(board.join("rtl").join(src));
        }
        run("iverilog", &mut cmd)?;
        Ok(Self {
            dir: work_dir.to_path_buf(),
            engine: Engine::Iverilog(vvp),
        })
    }

    /// Builds the board top with `core` under Verilator (cached under
    /// `target/verilator/`, see `fulcrum_hdl::verilator::cached_model`), driven by
    /// `sim/board_main.cpp` with the delay-free primitive models of
    /// `sim/ecp5_models_vl.v`; runs keep their files in `work_dir`. Same inputs and
    /// outputs as the iverilog testbench, hundreds of times faster, so the board with the
    /// whole fast path runs at the pins. What it does not model: the DELAYG taps (the C++
    /// main places the data in the receive clock's window itself) and the PLL (clk25 is
    /// driven at 125 MHz).
    pub fn verilator(work_dir: &Path, core: Core) -> Result<Self, SimError> {
        let board = board_dir();
        let read = |path: PathBuf| -> Result<String, SimError> {
            std::fs::read_to_string(&path).map_err(|source| SimError::Io { path, source })
        };
        let mut sources: Vec<(String, String)> = vec![
            ("main.cpp".into(), BOARD_MAIN_CPP.into()),
            ("ecp5_models_vl.v".into(), ECP5_MODELS_VL.into()),
            ("ecp5_ddr.v".into(), read(board.join("sim/ecp5_ddr.v"))?),
            ("eth_crc32.vh".into(), read(board.join("rtl/eth_crc32.vh"))?),
        ];
        for src in RTL_SOURCES {
            sources.push((src.to_string(), read(board.join("rtl").join(src))?));
        }
        let define = match core {
            Core::LoopThrough => None,
            Core::TestRegisters => {
                sources.push((
                    "tb_core_regs.v".into(),
                    read(board.join("sim/tb_core_regs.v"))?,
                ));
                Some("tb_core_regs")
            }
            Core::FastPath => {
                sources.push((
                    "core_fast_path.v".into(),
                    read(board.join("rtl/core_fast_path.v"))?,
                ));
                sources.push(("fulcrum_fast_path.v".into(), crate::core_verilog(false)));
                Some("core_fast_path")
            }
        };
        let mut args: Vec<String> = [
            "--cc",
            "--exe",
            "--build",
            "-j",
            "2",
            "--top-module",
            "fulcrum_board",
            "--prefix",
            "Vboard",
            "--default-language",
            "1364-2005",
            "-Wno-fatal",
            "-Wno-lint",
            "-Wno-style",
            "-O3",
            "-Mdir",
            "obj",
            "-o",
            "board_sim",
            "-CFLAGS",
            "-O2",
            "-I.",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if let Some(core) = define {
            args.push(format!("+define+FULCRUM_CORE={core}"));
        }
        args.push("main.cpp".into());
        args.extend(
            sources
                .iter()
                .map(|(f, _)| f.clone())
                .filter(|f| f.ends_with(".v")),
        );
        let refs: Vec<(&str, &str)> = sources
            .iter()
            .map(|(f, t)| (f.as_str(), t.as_str()))
            .collect();
        let (binary, _) = fulcrum_hdl::verilator::cached_model("board", &refs, &args, "board_sim")
            .map_err(|detail| SimError::Tool {
                tool: "verilator",
                detail,
            })?;
        Ok(Self {
            dir: work_dir.to_path_buf(),
            engine: Engine::Verilator(binary),
        })
    }

    /// Sends `port1` into port 1's RGMII receive pins and `port2` into port 2's (each a
    /// list of wire frames, FCS included, back to back; an empty frame is a pause of 2048
    /// byte times), runs until both ports have been quiet for 200 µs, and returns every
    /// frame transmitted, in order of time per port.
    pub fn run(&self, port1: &[Vec<u8>], port2: &[Vec<u8>]) -> Result<Vec<TxFrame>, SimError> {
        let in1 = self.dir.join("in1.hex");
        let in2 = self.dir.join("in2.hex");
        let out = self.dir.join("out.txt");
        write_frames(&in1, port1)?;
        write_frames(&in2, port2)?;
        match &self.engine {
            Engine::Iverilog(vvp) => {
                let mut cmd = Command::new("vvp");
                cmd.arg("-n")
                    .arg(vvp)
                    .arg(format!("+in1={}", in1.display()))
                    .arg(format!("+in2={}", in2.display()))
                    .arg(format!("+out={}", out.display()));
                run("vvp", &mut cmd)?;
            }
            Engine::Verilator(binary) => {
                let mut cmd = Command::new(binary);
                cmd.arg(&in1).arg(&in2).arg(&out);
                run("board_sim", &mut cmd)?;
            }
        }
        let text = std::fs::read_to_string(&out).map_err(|source| SimError::Io {
            path: out.clone(),
            source,
        })?;
        text.lines()
            .enumerate()
            .map(|(i, line)| {
                parse_line(line).ok_or_else(|| SimError::Output {
                    line: i + 1,
                    text: line.to_string(),
                })
            })
            .collect()
    }
}

fn run(tool: &'static str, cmd: &mut Command) -> Result<(), SimError> {
    let output = cmd.output().map_err(|e| SimError::Tool {
        tool,
        detail: match tool {
            "iverilog" | "vvp" => format!("{e} (install iverilog: apt-get install iverilog)"),
            _ => e.to_string(),
        },
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(SimError::Tool {
            tool,
            detail: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

fn write_frames(path: &Path, frames: &[Vec<u8>]) -> Result<(), SimError> {
    let mut text = String::new();
    for frame in frames {
        for byte in frame {
            let _ = writeln!(text, "{byte:02x}");
        }
        text.push_str("100\n");
    }
    // An empty file would make $readmemh complain; an explicit end word is harmless.
    text.push_str("1ff\n");
    std::fs::write(path, text).map_err(|source| SimError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_line(line: &str) -> Option<TxFrame> {
    let mut fields = line.split_whitespace();
    let port = fields.next()?.parse().ok()?;
    let start_ps = fields.next()?.parse().ok()?;
    let idle_before = fields.next()?.parse().ok()?;
    let preamble_ok = fields.next()? == "1";
    let hex = fields.next().unwrap_or("");
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let wire = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(TxFrame {
        port,
        start_ps,
        idle_before,
        preamble_ok,
        wire,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_lines_parse_and_reject_garbage() {
        let f = parse_line("2 4170000 12 1 0a0b").unwrap();
        assert_eq!(f.port, 2);
        assert_eq!(f.start_ps, 4_170_000);
        assert_eq!(f.idle_before, 12);
        assert!(f.preamble_ok);
        assert_eq!(f.wire, vec![0x0a, 0x0b]);
        assert!(parse_line("2 x 12 1 0a").is_none());
        assert!(parse_line("2 1 12 1 0a0").is_none());
    }

    #[test]
    fn fcs_matches_the_802_3_check_value() {
        // CRC-32/ISO-HDLC of "123456789" is 0xCBF43926.
        assert_eq!(crate::fcs(b"123456789"), 0xCBF4_3926u32.to_le_bytes());
    }
}
