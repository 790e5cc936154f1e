"""Decapsulates IP-in-IP and GUE (direct IPv4 in UDP, as Linux `fou ... ipproto 4`) for
the simulated appliance's tap lab, where the kernel has no `ipip`/`fou` modules: the outer
packets addressed to this namespace are read from a raw socket (protocol 4) and from UDP
sockets on the GUE ports, and the inner IPv4 packets are written into a TUN device, so the
kernel delivers them to the servers listening on the VIP (held on loopback) as an `ipip`
device would. Usage: decap.py TUN_NAME READY_FILE [GUE_PORT...]; counts on SIGTERM."""

import fcntl
import os
import select
import signal
import socket
import struct
import subprocess
import sys

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000

name, ready, ports = sys.argv[1], sys.argv[2], [int(p) for p in sys.argv[3:]]
tun = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
subprocess.run(["ip", "link", "set", name, "up"], check=True)
# The inner source (the client) is not routed through the TUN device: no reverse-path check.
for conf in ("all", name):
    subprocess.run(["sysctl", "-qw", f"net.ipv4.conf.{conf}.rp_filter=0"], check=True)

raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)  # each read: outer header + inner
gue = []
for port in ports:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", port))
    gue.append(s)
counts = {"ipip": 0, "gue": 0, "refused": 0}


def report(*_):
    print(f"decapsulated ipip {counts['ipip']} gue {counts['gue']} refused {counts['refused']}",
          file=sys.stderr, flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, report)
open(ready, "w").close()
while True:
    for s in select.select([raw] + gue, [], [])[0]:
        data = s.recv(65535)
        kind = "gue"
        if s is raw:
            kind = "ipip"
            data = data[(data[0] & 0x0F) * 4:]
        # An inner IPv4 header, whole, or nothing.
        if len(data) < 20 or data[0] >> 4 != 4 or struct.unpack("!H", data[2:4])[0] > len(data):
            counts["refused"] += 1
            continue
        os.write(tun, data)
        counts[kind] += 1
