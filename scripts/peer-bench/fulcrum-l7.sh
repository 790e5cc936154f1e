#!/usr/bin/env bash
# peer-bench contender: Fulcrum's simulated appliance with the web service in L7 mode (the
# MCU's HTTP/1.1 proxy on the simulated board, round robin per request). Compare with
# the haproxy-http contender:
#   /work/shared/peer-bench/compare.sh nft-dnat haproxy-http --add fulcrum-l7=$PWD/scripts/peer-bench/fulcrum-l7.sh
FULCRUM_PB_MODE=l7 exec "$(dirname "$0")/fulcrum.sh" "$@"
