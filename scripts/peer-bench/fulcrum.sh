#!/usr/bin/env bash
# peer-bench contender: Fulcrum's simulated appliance (fulcrum-sim-board: the MCU firmware
# and the FPGA data path as the reference model, one thread) on a tap device on the
# client segment, in full-NAT mode, round robin, TCP health checks.
# FULCRUM_PB_MODE=l7 (what fulcrum-l7.sh sets) makes it an L7 service instead: the MCU's
# HTTP proxy terminates each client connection and picks a backend per request (as
# HAProxy's `mode http` contender does).
#
# The appliance has one network port: clients and the router to the backend segment are
# on it. Backends are reached through pb-lb (the config gives the router's MAC as their
# next hop); full NAT makes their answers come back to the appliance's pool address.
#
#   /work/shared/peer-bench/compare.sh --add fulcrum=$PWD/scripts/peer-bench/fulcrum.sh
# (build first: cargo build --release -p fulcrum-sim)
set -euo pipefail
. "${PB_HOME:?run me through bench.sh or compare.sh}/lib.sh"
here="$(cd "$(dirname "$0")/../.." && pwd)"
bin="${FULCRUM_SIM_BOARD:-$here/target/release/fulcrum-sim-board}"
tap=pbt-fc-c
address=10.99.0.3
pool=10.99.0.250

case "${1:-}" in
  check)
    [ -x "$bin" ] || { pb_log "fulcrum: $bin missing (cargo build --release -p fulcrum-sim)"; exit 3; }
    ;;
  start)
    router_mac=$(ip -n "$PB_NS_LB" -br link show "$PB_CLIENT_BRIDGE" | awk '{print $3}')
    cfg="$PB_STATE/fulcrum.toml"
    mkdir -p "$PB_STATE"
    {
      cat <<TOML
[appliance]
name = "peer-bench"
mac = "02:46:4c:43:00:01"
address = "$address"
prefix = 16
gateway = "$PB_LB_CLIENT_IP"
snat_pool = ["$pool"]
maglev_ring_size = 4093
flow_table = { sets = 16384, ways = 2 }
[appliance.timeouts]
tcp_closing = "2s"

[[service]]
name = "web"
vip = "$PB_VIP"
protocol = "tcp"
port = $PB_VIP_PORT
mode = "${FULCRUM_PB_MODE:-fullnat}"
algorithm = "round_robin"
[service.health]
kind = "tcp"
inter = "2s"
TOML
      i=1
      for be in $PB_BACKENDS; do
        printf '[[service.backend]]\nname = "be%s"\naddress = "%s"\nport = %s\nmac = "%s"\n' \
          "$i" "${be%%:*}" "${be##*:}" "$router_mac"
        i=$((i + 1))
      done
    } >"$cfg"
    pb_spawn fulcrum "$PB_NS_LB" "$bin" --config "$cfg" --tap "$tap" \
      --state-dir "$PB_STATE/fulcrum-state"
    for _ in $(seq 100); do
      ip -n "$PB_NS_LB" link show "$tap" >/dev/null 2>&1 && break
      sleep 0.05
    done
    # A bridge takes the lowest MAC of its ports: give the tap a high one so the router's
    # MAC (the backends' next hop in the config) does not change under us.
    ip -n "$PB_NS_LB" link set "$tap" address fe:ff:ff:ff:ff:fe
    ip -n "$PB_NS_LB" link set "$tap" master "$PB_CLIENT_BRIDGE" up
    ip netns exec "$PB_NS_CLIENT" ip neigh flush to "$PB_VIP" 2>/dev/null || true
    ;;
  stop)
    pb_kill fulcrum
    ip -n "$PB_NS_LB" link del "$tap" 2>/dev/null || true
    ip netns exec "$PB_NS_CLIENT" ip neigh flush to "$PB_VIP" 2>/dev/null || true
    ;;
  *) echo "usage: $0 check|start|stop" >&2; exit 2 ;;
esac
