#!/usr/bin/env bash
# Runs every check CI runs, on a fresh machine: installs what it needs first.
# Usage: scripts/test.sh            (from anywhere inside the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step is stamped with the minutes:seconds since the start (the CI budget is 45 min).
started=$SECONDS
step() { printf '\n==> [%d:%02d] %s\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }

step "toolchain: targets and components"
rustup target add thumbv7em-none-eabihf wasm32-unknown-unknown
rustup component add rustfmt clippy llvm-tools

step "system packages: real backends for the simulated board's tests, keepalived as VRRP peer (nftables: its Linux side balances in ha_keepalived_tap)"
need=()
for tool in redis-server:redis-server memcached:memcached python3:python3 ip:iproute2 keepalived:keepalived curl:curl nft:nftables; do
    command -v "${tool%%:*}" >/dev/null || need+=("${tool##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "missing ${need[*]}: install them, or run as root (the tap tests need root anyway)" >&2
        exit 1
    fi
fi

step "format"
cargo fmt --all -- --check

step "example WebAssembly filters (wasm32-unknown-unknown; the firmware tests load them)"
# From inside the directory: its .cargo/config.toml sets the target and memory flags.
(cd examples/filters && cargo fmt --all -- --check \
    && cargo clippy --release --locked -- -D warnings \
    && cargo build --release --locked)
ls -l examples/filters/target/wasm32-unknown-unknown/release/*.wasm

step "clippy (host workspace, all targets: the benches are type-checked and linted here, not built)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests (host workspace; the HDL and board crates run in release below)"
cargo test --workspace --locked --exclude fulcrum-hdl --exclude fulcrum-board-colorlight

step "the HA drill, alone (wall clock, 10 ms adverts: two simulated appliances, kill, rejoin, split brain)"
# It measures takeovers of tens of milliseconds in real time, so nothing else runs beside
# it. One retry, loudly: a run can still lose to a scheduling stall of the machine (the
# failure is printed in full either way); two failures fail CI.
if ! cargo test -p fulcrum-sim --locked --test ha_drill -- --ignored --nocapture; then
    echo "WARNING: the HA drill failed once (output above); running it again" >&2
    cargo test -p fulcrum-sim --locked --test ha_drill -- --ignored --nocapture
fi

step "HDL tools: yosys (Verilog validation), iverilog (stage co-simulations) and verilator (FastPath's 100k-frame co-simulation)"
if ! command -v iverilog >/dev/null || ! command -v yosys >/dev/null || ! command -v verilator >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq iverilog yosys verilator
    else
        echo "iverilog/yosys/verilator missing and not root: install them (apt-get install -y iverilog yosys verilator)" >&2
        exit 1
    fi
fi

python3 -c "import ensurepip" 2>/dev/null || {  # Debian splits venv support out
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else echo "python3-venv missing and not root: apt-get install -y python3-venv" >&2; exit 1; fi
}

step "the board image with FastPath (Colorlight 5A-75B, yosys + nextpnr, seed 1: the bitstream that ships), in the background while the tests below run (nextpnr is single-threaded; log target/colorlight-5a-75b/build.log)"
# The FastPath Verilog is written here, before the tests: build.sh's own `cargo run` would
# wait on the build directory's lock, which cargo test holds while its tests run. One seed,
# not build.sh's three: each costs ~6.5 min of a core and CI has two (with seeds 1 and 2
# CI took 41 min of its 45). nextpnr is deterministic, so seeds 2 and 3 of this netlist
# are what docs/PERFORMANCE.md records; after a change to FastPath or the board RTL, run
# build.sh with its 3 seeds.
cargo build -p fulcrum-board-colorlight --release --locked --bin fulcrum-board-core
mkdir -p target/colorlight-5a-75b
target/release/fulcrum-board-core target/colorlight-5a-75b/fulcrum_fast_path.v --ecp5-bram
# niced: the testbenches keep both cores while they compile and run in parallel; the
# router takes the core that one long test leaves idle.
nice -n 10 boards/colorlight-5a-75b/build.sh --seeds 1 \
    --core-v target/colorlight-5a-75b/fulcrum_fast_path.v >target/colorlight-5a-75b/build.log 2>&1 &
board_pid=$!

step "HDL testbenches against the model (release: the rust-hdl simulator is ~30x faster; FastPath's Verilog on 100k frames in Verilator, model cached in target/verilator)"
cargo test -p fulcrum-hdl --release --locked
cargo test -p fulcrum-host --release --locked --test engine_hdl  # --engine hdl = model
cargo test -p fulcrum-host --release --locked --test sim_engine_hdl  # fulcrum sim --engine hdl = model

step "Colorlight 5A-75B board: RGMII-level simulation (iverilog; the board with FastPath in Verilator)"
cargo test -p fulcrum-board-colorlight --release --locked

step "shared model builds no_std for the MCU (thumbv7em-none-eabihf)"
cargo build -p fulcrum-model --target thumbv7em-none-eabihf --release --locked
cargo clippy -p fulcrum-model --target thumbv7em-none-eabihf --locked -- -D warnings
step "firmware and management protocol build no_std for the MCU, with defmt"
cargo clippy -p fulcrum-firmware -p fulcrum-mgmt --features fulcrum-firmware/net,fulcrum-firmware/defmt \
    --target thumbv7em-none-eabihf --release --locked -- -D warnings
cargo clippy -p fulcrum-firmware -p fulcrum-mgmt -p fulcrum-filter-sdk \
    --features fulcrum-firmware/net,fulcrum-firmware/defmt,fulcrum-firmware/filters \
    --target thumbv7em-none-eabihf --release --locked -- -D warnings

step "NUCLEO-F767ZI firmware image (thumbv7em, release) and its size"
# A placeholder key so the image includes TCP management, as a real build would; a real
# appliance is built with its own FULCRUM_KEY. build.sh fails when the deepest call chain
# does not fit the stack the statics leave.
FULCRUM_KEY=ci-size-check-only-not-a-real-key boards/nucleo-f767zi/build.sh
(cd boards/nucleo-f767zi && cargo fmt -- --check && FULCRUM_KEY=ci-size-check-only-not-a-real-key \
    cargo clippy --release --locked -- -D warnings && FULCRUM_KEY=ci-size-check-only-not-a-real-key \
    cargo clippy --release --locked --features spi-bus -- -D warnings)
# The filters and ha images too: build.sh fails when their deepest call chain does not fit.
step "NUCLEO-F767ZI image with WebAssembly filters (wasmi + heap) and its size"
FEATURES=filters FULCRUM_KEY=ci-size-check-only-not-a-real-key boards/nucleo-f767zi/build.sh
(cd boards/nucleo-f767zi && FULCRUM_KEY=ci-size-check-only-not-a-real-key \
    cargo clippy --release --locked --features filters -- -D warnings)

step "NUCLEO-F767ZI image with the HA runner (VRRP + flow sync) and its size"
FEATURES=ha FULCRUM_KEY=ci-size-check-only-not-a-real-key boards/nucleo-f767zi/build.sh
(cd boards/nucleo-f767zi && FULCRUM_KEY=ci-size-check-only-not-a-real-key \
    cargo clippy --release --locked --features ha -- -D warnings)

step "the README's first command works (the simulated appliance, 10 s, no failed request)"
out="$(cargo run --release --locked -q -p fulcrum-host --bin fulcrum -- \
    sim --config examples/fulcrum.toml --duration 10 2>/dev/null)"
tail -n 8 <<<"$out"
for svc in web dns app; do
    grep -qE "^  $svc +sent [1-9][0-9]* ok [0-9]+ failed 0 " <<<"$out" \
        || { echo "the simulated appliance did not serve $svc without failures" >&2; exit 1; }
done
cargo run --release --locked -q -p fulcrum-sim --bin fulcrum-sim-board -- \
    --config examples/fulcrum.toml --duration 3 --state-dir target/sim-board-state >/dev/null 2>&1

step "the board image with FastPath: the background build (fails when a clock misses 125 MHz; seeds 2 and 3 and the bring-up core are in docs/PERFORMANCE.md)"
if ! wait "$board_pid"; then
    cat target/colorlight-5a-75b/build.log
    echo "the board image failed (log above)" >&2
    exit 1
fi
cat target/colorlight-5a-75b/build.log

printf '\nall checks passed in %d:%02d\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60))
