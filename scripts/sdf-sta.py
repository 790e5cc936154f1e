#!/usr/bin/env python3
"""Every failing register-to-register path of a routed design, from nextpnr's SDF.

nextpnr prints one critical path per clock; with a handful of endpoints over the
period the worst one moves from seed to seed, so fixing them one place-and-route at a
time chases noise. This reads the delays nextpnr wrote after routing
(`nextpnr-ecp5 ... --sdf X.sdf`), recomputes the longest arrival at every timing
endpoint (flip-flop data, enable and set/reset pins, block-RAM and multiplier inputs)
and lists every endpoint with negative slack, grouped by register, with the worst path
into each group.

    scripts/sdf-sta.py X.sdf [--period 8.0] [--paths 10]

Delays are the SDF's max values in ns. The tool agrees with nextpnr's critical path
to within a few ps (it uses the same numbers), which is what makes the list trustworthy.
"""

import re
import sys
from collections import defaultdict

SCALE = 1000.0  # nextpnr writes TIMESCALE 1ps
CLOCK_PINS = {"CLK", "CLKA", "CLKB", "WCK"}


def tokens(text):
    """S-expression tokens: parentheses, quoted strings, atoms (SDF escapes kept)."""
    i, n = 0, len(text)
    out = []
    while i < n:
        c = text[i]
        if c in " \t\r\n":
            i += 1
        elif c in "()":
            out.append(c)
            i += 1
        elif c == '"':
            j = text.index('"', i + 1)
            out.append(text[i + 1 : j])
            i = j + 1
        else:
            j = i
            while j < n and text[j] not in " \t\r\n()":
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j])
            i = j
    return out


def parse(toks):
    stack = [[]]
    for t in toks:
        if t == "(":
            stack.append([])
        elif t == ")":
            e = stack.pop()
            stack[-1].append(e)
        else:
            stack[-1].append(t)
    return stack[0][0]


def unescape(name):
    return re.sub(r"\\(.)", r"\1", name)


def delay_max(triple):
    """`(min:typ:max)` as a parsed list `['a:b:c']` -> max in ns."""
    if not triple:
        return 0.0
    parts = triple[0].split(":")
    return max(float(p) for p in parts if p) / SCALE


def load(path):
    tree = parse(tokens(open(path).read()))
    comb = defaultdict(list)  # node -> [(next node, delay)]
    starts = {}  # node -> clock-to-out
    ends = {}  # node -> setup
    for cell in tree:
        if not isinstance(cell, list) or not cell or cell[0] != "CELL":
            continue
        inst = ""
        for item in cell[1:]:
            if item[0] == "INSTANCE":
                inst = unescape(item[1]) if len(item) > 1 else ""
        for item in cell[1:]:
            if item[0] == "DELAY":
                for absolute in item[1:]:
                    for d in absolute[1:]:
                        if d[0] == "IOPATH":
                            frm, to = d[1], d[2]
                            delay = delay_max(d[3])
                            if isinstance(frm, list):
                                frm = frm[-1]
                            if frm in CLOCK_PINS:  # clock to output: a start point
                                node = f"{inst}/{unescape(to)}"
                                starts[node] = max(starts.get(node, 0.0), delay)
                            else:
                                comb[f"{inst}/{unescape(frm)}"].append(
                                    (f"{inst}/{unescape(to)}", delay)
                                )
                        elif d[0] == "INTERCONNECT":
                            comb[unescape(d[1])].append((unescape(d[2]), delay_max(d[3])))
            elif item[0] == "TIMINGCHECK":
                for chk in item[1:]:
                    if chk[0] in ("SETUPHOLD", "SETUP"):
                        port = chk[1]
                        if isinstance(port, list):
                            port = port[-1]
                        node = f"{inst}/{unescape(port)}"
                        ends[node] = max(ends.get(node, 0.0), delay_max(chk[3]))
    return comb, starts, ends


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        sys.exit(2)
    period, npaths = 8.0, 10
    if "--period" in args:
        period = float(args[args.index("--period") + 1])
    if "--paths" in args:
        npaths = int(args[args.index("--paths") + 1])
    comb, starts, ends = load(args[0])

    # Longest arrival at every node reachable from a start point (forward, memo-free:
    # relax in topological order).
    indeg = defaultdict(int)
    for u, vs in comb.items():
        for v, _ in vs:
            indeg[v] += 1
    arrival = {}
    prev = {}
    order = [u for u in set(comb) | set(starts) if indeg[u] == 0]
    for u in order:
        arrival.setdefault(u, starts.get(u, float("-inf")))
    i = 0
    while i < len(order):
        u = order[i]
        i += 1
        au = arrival.get(u, float("-inf"))
        for v, d in comb.get(u, ()):
            if au + d > arrival.get(v, float("-inf")):
                arrival[v] = au + d
                prev[v] = u
            indeg[v] -= 1
            if indeg[v] == 0:
                if v in starts and starts[v] > arrival.get(v, float("-inf")):
                    arrival[v] = starts[v]
                    prev.pop(v, None)
                order.append(v)

    failing = []
    for node, setup in ends.items():
        a = arrival.get(node, float("-inf"))
        if a == float("-inf"):
            continue
        slack = period - setup - a
        failing.append((slack, node, a, setup))
    failing.sort()
    worst = failing[0] if failing else None
    if worst:
        print(f"worst slack {worst[0]:.3f} ns -> Fmax {1000 / (period - worst[0]):.1f} MHz")
    neg = [f for f in failing if f[0] < 0]
    print(f"{len(neg)} endpoints with negative slack at {period} ns\n")

    def group(node):
        inst = node.rsplit("/", 1)[0]
        inst = re.sub(r"(_TRELLIS_FF|_LUT4|_DP16KD|_MULT18|\$).*$", "", inst)
        return inst

    groups = defaultdict(list)
    for f in neg:
        groups[group(f[1])].append(f)
    for g, fs in sorted(groups.items(), key=lambda kv: kv[1][0][0]):
        print(f"{fs[0][0]:7.3f}  {len(fs):4d}  {g}")
    print()
    shown = set()
    for slack, node, a, setup in neg:
        g = group(node)
        if g in shown:
            continue
        shown.add(g)
        if len(shown) > npaths:
            break
        path = [node]
        while path[-1] in prev:
            path.append(prev[path[-1]])
        path.reverse()
        print(f"--- {slack:.3f} ns into {node}")
        for p in path:
            print(f"    {arrival.get(p, 0):6.2f}  {p}")


if __name__ == "__main__":
    main()
