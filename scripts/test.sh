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
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --release --all-targets --quiet -- -D warnings
fi
# Benches and examples must keep compiling; `cargo test` does not build benches.
cargo build --release --benches --examples
./target/release/enma info

log=$(mktemp)
# the autotuner's choices go to a fresh cache unless one is given: the suite measures them itself
if [ -z "${ENMA_CACHE_DIR:-}" ]; then
    export ENMA_CACHE_DIR=$(mktemp -d)
    trap 'rm -rf "$log" "$ENMA_CACHE_DIR"' EXIT
else
    trap 'rm -f "$log"' EXIT
fi
status=0
cargo test --release "$@" 2>&1 | tee "$log" || status=$?
# The embedding example (a host device shared with enma, a rollout kept on the GPU, the host's
# own pass on it) checks its own numbers and fails loudly.
if [ "$#" -eq 0 ]; then
    if ./target/release/examples/embed; then
        echo "test result: ok. 1 passed; 0 failed; (examples/embed)" | tee -a "$log"
    else
        echo "test result: FAILED. 0 passed; 1 failed; (examples/embed)" | tee -a "$log"
        status=1
    fi
fi
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
     END { printf "enma tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
