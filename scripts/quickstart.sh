#!/usr/bin/env bash
# The main job: installs missing system packages when it can (software Vulkan, HDF5), builds
# enma in release mode and runs `enma quickstart`: generates the advection-tiny data, trains the
# VAE and the generator, evaluates both protocols with uncertainty, and writes plots and
# report.md into runs/quickstart/. Arguments go to `enma quickstart` (e.g. --preset advection-small).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
enma_install_system_packages
cargo build --release
./target/release/enma quickstart "$@"
