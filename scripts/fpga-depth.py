#!/usr/bin/env python3
"""Rough static timing on a yosys synth_ecp5 JSON netlist (fulcrum-synth leaves it in its
out dir as fulcrum_core.json): the worst register-to-register paths under a simple delay
model (LUT, carry and mux delays plus a fanout-based net delay), one line per endpoint
register, with the start register, LUT levels and the fan-outs on the path. nextpnr
reports one critical path per clock; this lists dozens from one yosys run (~1 s), so a
batch of fixes can be chosen before the next place and route. Model ns are about 1.6x
nextpnr's (18.8 model ns was 11.85 ns placed); rank, do not trust absolute values.

usage: scripts/fpga-depth.py target/fpga/fulcrum_core.json [N [verbose]]"""
import json, math, sys, collections

data = json.load(open(sys.argv[1]))
top_n = int(sys.argv[2]) if len(sys.argv) > 2 else 40
VERBOSE = len(sys.argv) > 3
mod = next(m for n, m in data["modules"].items() if m.get("attributes", {}).get("top") or n == "fulcrum_core")
cells = mod["cells"]
netname = {}
for name, n in mod["netnames"].items():
    for b in n["bits"]:
        if isinstance(b, int):
            def score(n):
                bad = any(t in n for t in ("_LUT4", "_TRELLIS", "_CCU2C", "_PFUMX", "_L6MUX", "_DPR16"))
                return (bad, n.count("$"), len(n))
            if b not in netname or score(name) < score(netname[b]):
                netname[b] = name

drivers = {}
sinks = collections.defaultdict(list)
for cname, c in cells.items():
    dirs = c["port_directions"]
    for port, bits in c["connections"].items():
        for b in bits:
            if not isinstance(b, int):
                continue
            if dirs[port] == "output":
                drivers[b] = (cname, port)
            else:
                sinks[b].append((cname, port))

def net_delay(b):
    f = max(1, len(sinks[b]))
    return 0.7 + 0.35 * math.log2(f)

def cell_delay(c, in_port, out_port):
    t = c["type"]
    if t == "LUT4":
        return 0.4
    if t == "CCU2C":
        if in_port == "CIN" and out_port == "COUT":
            return 0.06
        if in_port == "CIN":
            return 0.3
        if out_port == "COUT":
            return 0.45
        return 0.5
    if t in ("PFUMX", "L6MUX21"):
        return 0.25
    if t == "TRELLIS_DPR16X4":
        return 0.6
    return 0.5

sys.setrecursionlimit(100000)
arrival = {}
pred = {}

def start_delay(c, port):
    # Flip-flops; block RAMs read through their output register (ram.rs instantiates
    # every DP16KD with REGMODE_B = "OUTREG").
    return 0.5 if c["type"] == "TRELLIS_FF" else 1.0

def arr(b):
    if b in arrival:
        return arrival[b]
    arrival[b] = 0.0
    d = drivers.get(b)
    if d is None:
        return 0.0
    cname, oport = d
    c = cells[cname]
    t = c["type"]
    sd = start_delay(c, oport) if t in ("TRELLIS_FF", "DP16KD") else None
    if sd is not None:
        arrival[b] = sd
        pred[b] = None
        return sd
    best, bp = 0.0, None
    for port, bits in c["connections"].items():
        if c["port_directions"][port] != "input":
            continue
        if t == "TRELLIS_DPR16X4" and not port.startswith("RAD"):
            continue
        for ib in bits:
            if not isinstance(ib, int):
                continue
            nd = 0.0 if port == "CIN" else net_delay(ib)
            a = arr(ib) + nd + cell_delay(c, port, oport)
            if a > best:
                best, bp = a, ib
    arrival[b] = best
    pred[b] = bp
    return best

ends = []
for cname, c in cells.items():
    t = c["type"]
    if t not in ("TRELLIS_FF", "DP16KD", "TRELLIS_DPR16X4"):
        continue
    for port, bits in c["connections"].items():
        if c["port_directions"][port] != "input" or port.startswith("CLK"):
            continue
        for b in bits:
            if isinstance(b, int) and b in drivers:
                ends.append((arr(b) + net_delay(b) + 0.1, cname, port, b))

ends.sort(reverse=True)
seen = set()
shown = 0
for a, cname, port, b in ends:
    # One line per endpoint register name (bits of one bus together).
    key = netname.get(next((x for x in cells[cname]["connections"].get("Q", []) if isinstance(x, int)), -1), cname).split("[")[0]
    if key in seen:
        continue
    seen.add(key)
    path = []
    x = b
    luts = carry = 0
    fos = []
    start = "?"
    while x is not None:
        d = drivers.get(x)
        fos.append(len(sinks[x]))
        if d:
            t = cells[d[0]]["type"]
            if t in ("LUT4", "PFUMX", "L6MUX21"):
                luts += 1
            elif t == "CCU2C":
                carry += 1
            elif t == "TRELLIS_DPR16X4":
                luts += 1
        if pred.get(x) is None:
            start = netname.get(x, "?").split("[")[0]
            if d:
                start += "(%s)" % cells[d[0]]["type"]
        x = pred.get(x)
    print("%.1f ns  %s.%s  <- %s  [%d lut, %d carry, fanouts %s]" % (a, key[-50:], port, start[-60:], luts, carry, ",".join(str(f) for f in reversed(fos) if f > 4)))
    if VERBOSE:
        x = b
        names = []
        while x is not None:
            d = drivers.get(x)
            names.append("%s[%s fo%d]" % (netname.get(x, "?")[-70:], cells[d[0]]["type"] if d else "in", len(sinks[x])))
            x = pred.get(x)
        for n in reversed(names):
            print("        " + n)
    shown += 1
    if shown >= top_n:
        break
