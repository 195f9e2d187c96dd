#!/usr/bin/env bash
# The main job: installs missing system packages when it can, builds enma in release mode and
# runs it. For now it shows the adapter enma picks; training and evaluation follow.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
enma_install_system_packages
cargo build --release
./target/release/enma info "$@"
