#!/usr/bin/env bash
# Runs every check CI runs, on a fresh machine: installs what it needs first.
# Usage: scripts/test.sh            (from anywhere inside the checkout)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain: targets and components"
rustup target add thumbv7em-none-eabihf wasm32-unknown-unknown
rustup component add rustfmt clippy llvm-tools

step "format"
cargo fmt --all -- --check

step "clippy (host workspace, all targets)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "tests (host workspace; the HDL crate runs in release below)"
cargo test --workspace --locked --exclude fulcrum-hdl

step "HDL tools: yosys (Verilog validation) and iverilog (co-simulation)"
if ! command -v iverilog >/dev/null || ! command -v yosys >/dev/null; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq iverilog yosys
    else
        echo "iverilog/yosys missing and not root: install them (apt-get install -y iverilog yosys)" >&2
        exit 1
    fi
fi

step "HDL testbenches against the model (release: the rust-hdl simulator is ~30x faster)"
cargo test -p fulcrum-hdl --release --locked

step "shared model builds no_std for the MCU (thumbv7em-none-eabihf)"
cargo build -p fulcrum-model --target thumbv7em-none-eabihf --release --locked
cargo clippy -p fulcrum-model --target thumbv7em-none-eabihf --locked -- -D warnings

step "benchmarks compile"
cargo bench --workspace --locked --no-run

step "the README's first command works"
cargo run --release --locked -q -p fulcrum-host --bin fulcrum -- \
    trace --config examples/fulcrum.toml "tcp 192.0.2.7:40001 -> 10.0.0.100:80" >/dev/null

printf '\nall checks passed\n'
