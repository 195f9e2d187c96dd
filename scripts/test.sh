#!/usr/bin/env bash
# The test command (README, CI): installs missing system packages (software Vulkan, HDF5
# headers) when it can, checks formatting, builds everything, runs the test suite on the
# best adapter (Mesa's lavapipe on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
enma_install_system_packages

if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --check
fi
# Benches and examples must keep compiling; `cargo test` does not build benches.
cargo build --release --benches --examples
./target/release/enma info
cargo test --release "$@"
