//! `FastPath`'s generated Verilog under Verilator: the model is compiled once per
//! Verilog (cached under `target/verilator/<hash>/`), driven by a small C++ main
//! (`verilator/fast_path_main.cpp`) that plays a script and writes a log.
//!
//! [`VerilatedFastPath`] has the interface of [`FastPathSim`](crate::fast_path_sim::FastPathSim)
//! (frames pushed on either port, idle cycles, register writes, commits waited for, the
//! clock set, counters read), but records a script instead of simulating; [`VerilatedFastPath::execute`]
//! compiles the model if needed, runs the script and returns the log as [`LogItem`]s,
//! cycle for cycle what `FastPathSim` logs as [`Event`]s plus the checkpoints the script
//! asked for. The C++ driver steps the model exactly as `FastPathSim::cycle` steps the
//! rust-hdl simulation (inputs with the clock low, outputs sampled, rising edge); its idle
//! cycles and stalls come from its own generator.
//!
//! Verilator is Debian's `verilator` (5.006); the Verilog is read as Verilog-2005
//! (rust-hdl names signals with SystemVerilog keywords, such as `verdict`).

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use fulcrum_model::pipeline::Port;
use fulcrum_model::regmap::RegisterBus;

use crate::fast_path_sim::{Event, verdict_from_codes};
use crate::pipeline::{COUNTER_LATCH_CYCLES, fast_path_verilog};
use crate::sim::Traffic;
use crate::verilog::have_program;

/// The C++ driver of the Verilated model.
pub const DRIVER_CPP: &str = include_str!("verilator/fast_path_main.cpp");

/// One line of the driver's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogItem {
    /// What [`FastPathSim`](crate::fast_path_sim::FastPathSim) logs.
    Event(Event),
    /// `now_ms` changed (from [`VerilatedFastPath::set_now`]).
    Now(u64),
    /// A [`VerilatedFastPath::checkpoint`]: everything before it is through.
    Checkpoint,
    /// A counter read (index, value).
    Counter(u32, u64),
    /// A `run_until_idle` whose frames never all came through.
    Hang,
    /// A `wait_commit` that never saw `STATUS.0` clear.
    NoCommit,
}

/// The result of a script run: the log and how it went.
#[derive(Debug)]
pub struct RunLog {
    /// Every line of the log but the last, in order.
    pub items: Vec<LogItem>,
    /// Clock cycles the script ran.
    pub cycles: u64,
    /// Whether the model had to be compiled (no cached binary).
    pub compiled: bool,
    /// CPU seconds of the compilation (children's user + system), 0 when cached.
    pub compile_seconds: f64,
    /// Wall-clock seconds of the simulation itself.
    pub run_seconds: f64,
}

/// Where compiled models are kept: `$CARGO_TARGET_DIR/verilator`, else the workspace's
/// `target/verilator`.
fn cache_root() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("verilator")
}

/// Arguments of the Verilator build (part of the cache key).
fn verilator_args() -> Vec<String> {
    [
        "--cc",
        "fast_path.v",
        "--exe",
        "main.cpp",
        "--build",
        "-j",
        "2",
        "--top-module",
        "top",
        "--default-language",
        "1364-2005",
        "-Wno-fatal",
        "-Wno-lint",
        "-Wno-style",
        "-O3",
        "-Mdir",
        "obj",
        "-o",
        "fast_path_sim",
        "-CFLAGS",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("-O2 -DCOUNTER_LATCH={COUNTER_LATCH_CYCLES}")])
    .collect()
}

/// One compilation at a time in this process (the tests of a binary share the model).
static BUILD: Mutex<()> = Mutex::new(());

/// CPU seconds the children of this process used so far (user + system), from
/// `/proc/self/stat`; 0 where that is not readable.
fn children_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which ends with the last ')'): cutime is field 16,
    // cstime 17 (1-based over the whole line), i.e. index 13 and 14 here.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    let ticks = 100.0; // USER_HZ on Linux
    (f.get(13).copied().unwrap_or(0.0) + f.get(14).copied().unwrap_or(0.0)) / ticks
}

/// The compiled simulator of `FastPath<A>`, built if not cached: its path, and the CPU
/// seconds of the build (`None` when it was cached).
pub fn fast_path_model<const A: usize>() -> Result<(PathBuf, Option<f64>), String> {
    let verilog = fast_path_verilog::<A>();
    cached_model(
        &format!("fast_path_{A}"),
        &[("fast_path.v", verilog.as_str()), ("main.cpp", DRIVER_CPP)],
        &verilator_args(),
        "fast_path_sim",
    )
}

/// A Verilated simulator built once and kept under `target/verilator/<name>_<hash>/`
/// (the hash covers the sources, the arguments and Verilator's version): `sources` are
/// written into the build directory (file name, text), `verilator` is run there with
/// `args` (which must write `obj/<binary>`, i.e. `-Mdir obj -o <binary>`). Returns the
/// binary, and the CPU seconds of the build (`None` when it was cached).
pub fn cached_model(
    name: &str,
    sources: &[(&str, &str)],
    args: &[String],
    binary: &str,
) -> Result<(PathBuf, Option<f64>), String> {
    if !have_program("verilator") {
        return Err("verilator not installed (Debian: apt-get install -y verilator)".into());
    }
    let version = Command::new("verilator")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (sources, args, &version).hash(&mut h);
    let dir = cache_root().join(format!("{name}_{:016x}", h.finish()));
    let path = dir.join(binary);
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if path.exists() {
        return Ok((path, None));
    }
    // Built beside the final directory, then renamed: another process never sees half a
    // build, and a failed one leaves no cache entry.
    let tmp = cache_root().join(format!("tmp-{}-{name}", std::process::id()));
    std::fs::remove_dir_all(&tmp).ok();
    std::fs::create_dir_all(&tmp).map_err(|e| format!("{}: {e}", tmp.display()))?;
    for (file, text) in sources {
        std::fs::write(tmp.join(file), text).map_err(|e| format!("{file}: {e}"))?;
    }
    let before = children_cpu_seconds();
    let out = Command::new("verilator")
        .args(args)
        .current_dir(&tmp)
        .output()
        .map_err(|e| format!("run verilator: {e}"))?;
    let cpu = children_cpu_seconds() - before;
    if !out.status.success() {
        return Err(format!(
            "verilator failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    std::fs::copy(tmp.join("obj").join(binary), tmp.join(binary)).map_err(|e| e.to_string())?;
    std::fs::remove_dir_all(tmp.join("obj")).ok();
    if std::fs::rename(&tmp, &dir).is_err() {
        // Another process built the same model meanwhile: use its copy.
        std::fs::remove_dir_all(&tmp).ok();
    }
    if !path.exists() {
        return Err(format!("no model at {}", path.display()));
    }
    Ok((path, Some(cpu)))
}

/// `FastPath<A>` in Verilator, driven by a recorded script (see the module doc).
#[derive(Debug)]
pub struct VerilatedFastPath<const A: usize> {
    script: String,
    frames: usize,
}

impl<const A: usize> VerilatedFastPath<A> {
    /// A freshly reset fast path (as [`FastPathSim::new`](crate::fast_path_sim::FastPathSim::new):
    /// run until idle, then the reset commit waited for); `traffic` sets idle cycles on
    /// the inputs and back-pressure on the outputs, drawn from `seed` in the driver.
    pub fn new(traffic: Traffic, seed: u64) -> Self {
        let mut v = VerilatedFastPath {
            script: String::new(),
            frames: 0,
        };
        writeln!(
            v.script,
            "X {} {} {seed:x}",
            traffic.idle_permille, traffic.stall_permille
        )
        .ok();
        v.run_until_idle(1000);
        v.wait_commit(100_000);
        v
    }

    /// Queues a frame on `port` (empty frames are ignored: a stream has none).
    pub fn push(&mut self, port: Port, frame: &[u8]) {
        if frame.is_empty() {
            return;
        }
        self.frames += 1;
        let p = match port {
            Port::Network => 0,
            Port::Mcu => 1,
        };
        write!(self.script, "F {p} ").ok();
        for b in frame {
            write!(self.script, "{b:02x}").ok();
        }
        self.script.push('\n');
    }

    /// `n` cycles with an idle bus.
    pub fn run(&mut self, n: usize) {
        if n > 0 {
            writeln!(self.script, "N {n}").ok();
        }
    }

    /// Runs until every queued frame is through, at most `limit` cycles; logs
    /// [`LogItem::Hang`] if they never are.
    pub fn run_until_idle(&mut self, limit: u64) {
        writeln!(self.script, "U {limit}").ok();
    }

    /// Polls `STATUS.0` until a commit is done, at most `limit` cycles; logs
    /// [`LogItem::NoCommit`] if it never is.
    pub fn wait_commit(&mut self, limit: u64) {
        writeln!(self.script, "S {limit}").ok();
    }

    /// Sets `now_ms` (the model's clock; the port takes its low 32 bits); logged as
    /// [`LogItem::Now`] with all 64.
    pub fn set_now(&mut self, now_ms: u64) {
        writeln!(self.script, "T {now_ms:x}").ok();
    }

    /// A [`LogItem::Checkpoint`] in the log at this point.
    pub fn checkpoint(&mut self) {
        self.script.push_str("D\n");
    }

    /// Reads counter `index` (`COUNTER_SELECT`, the latch wait, `HI`, `LO`); the value is
    /// a [`LogItem::Counter`] in the log.
    pub fn read_counter(&mut self, index: u32) {
        writeln!(self.script, "K {index:x}").ok();
    }

    /// Frames pushed so far.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Compiles the model if needed and runs the script in `work` (created; the script
    /// and log stay there).
    pub fn execute(&self, work: &Path) -> Result<RunLog, String> {
        let (binary, compile) = fast_path_model::<A>()?;
        std::fs::create_dir_all(work).map_err(|e| format!("{}: {e}", work.display()))?;
        let script = work.join("script.txt");
        let log = work.join("log.txt");
        std::fs::write(&script, &self.script).map_err(|e| e.to_string())?;
        let start = std::time::Instant::now();
        let out = Command::new(&binary)
            .arg(&script)
            .arg(&log)
            .output()
            .map_err(|e| format!("run {}: {e}", binary.display()))?;
        let run_seconds = start.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!(
                "the Verilated model failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let text = std::fs::read_to_string(&log).map_err(|e| e.to_string())?;
        let (items, cycles) = parse_log(&text)?;
        Ok(RunLog {
            items,
            cycles,
            compiled: compile.is_some(),
            compile_seconds: compile.unwrap_or(0.0),
            run_seconds,
        })
    }
}

impl<const A: usize> RegisterBus for VerilatedFastPath<A> {
    fn write32(&mut self, addr: u16, value: u32) {
        writeln!(self.script, "W {addr:x} {value:x}").ok();
    }

    /// A script cannot answer now: counters are read with [`Self::read_counter`].
    fn read32(&mut self, addr: u16) -> u32 {
        panic!("VerilatedFastPath records a script: read {addr:#x} with read_counter");
    }
}

fn hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s, 16).map_err(|_| format!("not hex in the log: {s:?}"))
}

fn port(s: &str) -> Result<Port, String> {
    match s {
        "0" => Ok(Port::Network),
        "1" => Ok(Port::Mcu),
        _ => Err(format!("no port {s:?}")),
    }
}

/// The driver's log as [`LogItem`]s and the cycle count of its last line.
pub fn parse_log(text: &str) -> Result<(Vec<LogItem>, u64), String> {
    let mut items = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let item = match w.as_slice() {
            ["I", p] => LogItem::Event(Event::Ingress(port(p)?)),
            ["W", a, d] => LogItem::Event(Event::Write(hex(a)? as u16, hex(d)? as u32)),
            ["C"] => LogItem::Event(Event::Commit),
            ["V", act, reason, service, backend, new_flow, hash, len] => {
                let v = verdict_from_codes(
                    hex(act)?,
                    hex(reason)? as usize,
                    hex(service)? as u8,
                    hex(backend)? as u16,
                    hex(new_flow)? != 0,
                    hex(hash)? as u32,
                    hex(len)? as usize,
                )
                .ok_or_else(|| format!("verdict names no model action: {line}"))?;
                LogItem::Event(Event::Verdict(v))
            }
            ["O", p, bytes] => {
                let b = bytes.as_bytes();
                if b.len() % 2 != 0 {
                    return Err(format!("odd frame hex: {line}"));
                }
                let frame = b
                    .chunks(2)
                    .map(|c| {
                        std::str::from_utf8(c)
                            .map_err(|e| e.to_string())
                            .and_then(hex)
                    })
                    .map(|r| r.map(|v| v as u8))
                    .collect::<Result<Vec<u8>, String>>()?;
                LogItem::Event(Event::Frame(port(p)?, frame))
            }
            ["T", t] => LogItem::Now(hex(t)?),
            ["D"] => LogItem::Checkpoint,
            ["K", i, v] => LogItem::Counter(hex(i)? as u32, hex(v)?),
            ["HANG"] => LogItem::Hang,
            ["NOCOMMIT"] => LogItem::NoCommit,
            ["E", cycles] => {
                let cycles = cycles
                    .parse()
                    .map_err(|_| format!("bad cycle count: {line}"))?;
                return Ok((items, cycles));
            }
            _ => return Err(format!("unexpected line in the log: {line}")),
        };
        items.push(item);
    }
    Err("the log ends without its last line (the driver died?)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_parses_and_a_cut_log_is_an_error() {
        let text = "C\nI 0\nV 3 0 0 0 0 0 3d\nO 1 ffff02\nT 1f\nD\nK 50 7\nHANG\nE 123\n";
        let (items, cycles) = parse_log(text).unwrap();
        assert_eq!(cycles, 123);
        assert_eq!(items.len(), 8);
        assert_eq!(
            items[3],
            LogItem::Event(Event::Frame(Port::Mcu, vec![0xff, 0xff, 0x02]))
        );
        assert_eq!(items[6], LogItem::Counter(0x50, 7));
        assert!(parse_log("C\nI 0\n").is_err());
        assert!(parse_log("V 7 0 0 0 0 0 3d\nE 1\n").is_err());
        assert!(parse_log("O 0 fff\nE 1\n").is_err());
    }
}
