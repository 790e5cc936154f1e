#!/usr/bin/env python3
"""Worst-case stack depth of a Cortex-M (Thumb-2) firmware, from its disassembly.

usage: stack_depth.py LLVM-OBJDUMP ELF [TOP]

Each function's frame is what its prologue takes: the registers it pushes (`push`,
`stmdb sp!`, `vpush`) plus every `sub sp, #n`. Its depth is its frame plus the deepest
depth among the functions it calls directly (`bl`, and tail calls `b`/`b.w` to another
function's entry). The deepest chain over all functions is printed with its frames, and
the last line is `DEPTH <bytes>`.

What this cannot see, so the result is a lower bound: calls through function pointers and
trait objects (each task's poll function, which the executor calls that way, is a root of
its own here, so a task's own chain is counted), interrupt handlers that nest on top of
the running code, and dynamic stack allocation (Rust has none). Recursion is cut at the
first repeated function. The caller (build.sh) adds a margin for the first two.
"""

import re
import subprocess
import sys

FUNC = re.compile(r"^([0-9a-f]+) <(.+)>:$")
SUB_SP = re.compile(r"\bsubw?(?:\.w)?\s+sp,\s*(?:sp,\s*)?#(0x[0-9a-f]+|\d+)")
PUSH = re.compile(r"\b(?:push(?:\.w)?\s*|stmdb(?:\.w)?\s+sp!,\s*)\{([^}]*)\}")
VPUSH = re.compile(r"\bvpush(?:\.\d+)?\s*\{([^}]*)\}")
CALL = re.compile(r"\b(bl|b\.w|b)\s+0x[0-9a-f]+\s+<([^>]+)>")


def registers(spec):
    """Registers in a register list ('r4, r5, lr' or 'd8-d9')."""
    n = 0
    for part in spec.split(","):
        part = part.strip()
        m = re.match(r"([a-z]+)(\d+)-[a-z]*(\d+)$", part)
        n += int(m.group(3)) - int(m.group(2)) + 1 if m else 1
    return n


def parse(text):
    frames, calls = {}, {}
    current = None
    for line in text.splitlines():
        m = FUNC.match(line)
        if m:
            current = m.group(2)
            frames.setdefault(current, 0)
            calls.setdefault(current, set())
            continue
        if current is None:
            continue
        m = SUB_SP.search(line)
        if m:
            v = m.group(1)
            frames[current] += int(v, 16) if v.startswith("0x") else int(v)
            continue
        m = VPUSH.search(line)
        if m:
            frames[current] += 8 * registers(m.group(1))
            continue
        m = PUSH.search(line)
        if m:
            frames[current] += 4 * registers(m.group(1))
            continue
        m = CALL.search(line)
        if m:
            target = m.group(2)
            # a branch inside a function (`<f+0x24>`) is not a call
            if "+0x" not in target and target != current:
                calls[current].add(target)
    return frames, calls


def deepest(frames, calls):
    sys.setrecursionlimit(100000)
    memo = {}
    on_path = set()

    def depth(f):
        if f in memo:
            return memo[f]
        if f in on_path:  # recursion: cut
            return (0, None)
        on_path.add(f)
        best, via = 0, None
        for c in calls.get(f, ()):
            if c in frames:
                d, _ = depth(c)
                if d > best:
                    best, via = d, c
        on_path.discard(f)
        memo[f] = (frames.get(f, 0) + best, via)
        return memo[f]

    root = max(frames, key=lambda f: depth(f)[0])
    chain = []
    f = root
    while f is not None and f not in chain:
        chain.append(f)
        f = memo[f][1]
    return memo[root][0], chain


def main():
    objdump, elf = sys.argv[1], sys.argv[2]
    top = int(sys.argv[3]) if len(sys.argv) > 3 else 12
    text = subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", "-C", elf],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    frames, calls = parse(text)
    total, chain = deepest(frames, calls)
    print(f"deepest call chain: {total} bytes")
    for f in chain[:top]:
        print(f"  {frames[f]:7d}  {f[:110]}")
    if len(chain) > top:
        rest = sum(frames[f] for f in chain[top:])
        print(f"  {rest:7d}  ... {len(chain) - top} more")
    print(f"DEPTH {total}")


if __name__ == "__main__":
    main()
