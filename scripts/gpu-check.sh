#!/usr/bin/env bash
# The GPU check: everything worth knowing about enma on a machine with a real GPU, in under 8
# minutes, written as files into one folder (default gpu-check/, or $OUT when set, or $1).
#
#   scripts/gpu-check.sh --prepare   # here: build and copy the binaries into gpu-check-bin/
#   scripts/gpu-check.sh [DIR]       # there: run (uses gpu-check-bin/ when present, else builds)
#
# Steps, each with its own time limit so that one hang cannot eat the rest:
#   info.txt / info.json        `enma info`: adapter, driver, subgroup sizes, features, limits
#   nvidia-smi.txt              the GPU as its driver sees it (where nvidia-smi exists)
#   kernel-tests.txt            every kernel against its CPU reference and finite differences
#   tune.txt / tune.json        `enma tune --preset advection-small`: every kernel variant
#                               measured on the preset's shapes, the choices and their times
#   bench-kernels.json          `cargo bench --bench kernels -- --json`: the peer shapes (burn's),
#                               matmul, attention, conv, the VAE and generator training steps
#   bench-rollout.json          rollouts of advection-small, 8 trajectories × 16 samples
#   train-*.json, eval.json     a short advection-small run (VAE, generator) and its evaluation
#   summary.txt                 one line per step: status and seconds
# The Vulkan loader may have to be unpacked first on a bare machine (see the device notes in
# the README's benchmark section).
set -uo pipefail
cd "$(dirname "$0")/.."

BIN=gpu-check-bin
if [ "${1:-}" = "--prepare" ]; then
    source scripts/env.sh
    enma_install_system_packages
    cargo build --release --benches --tests || exit 1
    rm -rf "$BIN" && mkdir -p "$BIN"
    cp target/release/enma "$BIN/enma"
    # cargo names test and bench executables kernels-<hash>: ask it which is which
    for cmd in "test --release" "bench"; do
        cargo $cmd --no-run --message-format=json 2>/dev/null |
            python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] in (["test"], ["bench"]):
        print(m["target"]["kind"][0], m["target"]["name"], m["executable"])' |
            while read -r k name exe; do cp "$exe" "$BIN/$k-$name"; done
    done
    # the shared libraries the binaries link (HDF5 and what it needs), but the C runtime's own,
    # for machines without them
    ldd "$BIN/enma" | awk '$3 ~ /^\// && $1 !~ /^(libc|libm|libdl|libpthread|librt|libgcc_s|ld-linux)/ { print $3 }' |
        xargs -r -I{} cp -L {} "$BIN/"
    # the device tool carries at most 64 MiB with the working tree
    command -v strip >/dev/null && strip "$BIN"/enma "$BIN"/test-* "$BIN"/bench-*
    du -sh "$BIN"
    exit 0
fi

OUT=${OUT:-${1:-gpu-check}}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/enma-runtime-$(id -u)}
mkdir -p "$XDG_RUNTIME_DIR"
export ENMA_CACHE_DIR="$OUT/cache"

if [ -x "$BIN/enma" ]; then
    export LD_LIBRARY_PATH="$PWD/$BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    ENMA="$BIN/enma"
    TESTS="$BIN/test-kernels"
    BENCH_KERNELS="$BIN/bench-kernels"
    BENCH_ROLLOUT="$BIN/bench-rollout"
else
    cargo build --release --benches --tests || exit 1
    ENMA=target/release/enma
    TESTS=$(ls -t target/release/deps/kernels-* | grep -v '\.d$' | head -n 1)
    BENCH_KERNELS="cargo bench --bench kernels --"
    BENCH_ROLLOUT="cargo bench --bench rollout --"
fi

# step NAME LIMIT_S OUTFILE COMMAND...: runs COMMAND with a time limit, output to OUTFILE.
step() {
    local name=$1 limit=$2 file=$3
    shift 3
    local t0=$SECONDS
    timeout "$limit" "$@" >"$OUT/$file" 2>"$OUT/$file.stderr"
    local rc=$?
    [ -s "$OUT/$file.stderr" ] || rm -f "$OUT/$file.stderr"
    printf '%-16s rc=%-3d %4d s  %s\n' "$name" "$rc" $((SECONDS - t0)) "$file" | tee -a "$SUMMARY"
}

step info 30 info.txt "$ENMA" info
step info-json 30 info.json "$ENMA" info --json
command -v nvidia-smi >/dev/null && step nvidia-smi 30 nvidia-smi.txt nvidia-smi
step kernel-tests 150 kernel-tests.txt "$TESTS" --skip cli:: --skip generator:: --skip train:: --skip vae:: \
    --skip vae_blocks:: --skip interp:: --skip flow:: --test-threads 4
step generate 60 generate.txt "$ENMA" generate --dataset advection --preset small --out "$OUT/data" --quiet --yes
step tune 120 tune.txt "$ENMA" tune --preset advection-small --data "$OUT/data" --quiet
step tune-json 30 tune.json "$ENMA" tune --show --json
step bench-kernels 120 bench-kernels.json $BENCH_KERNELS --json
step bench-rollout 60 bench-rollout.json $BENCH_ROLLOUT --preset advection-small --trajectories 8 --samples 16 --json
step train-vae 60 train-vae.json "$ENMA" train --preset advection-small --stage vae --data "$OUT/data" \
    --out "$OUT/runs/vae" --steps 300 --quiet --json
step train-generator 60 train-generator.json "$ENMA" train --preset advection-small --stage generator \
    --data "$OUT/data" --vae "$OUT/runs/vae" --out "$OUT/runs/generator" --steps 300 --quiet --json
step eval 60 eval.json "$ENMA" eval --run "$OUT/runs/generator" --json
rm -rf "$OUT/data"
echo "results in $OUT/"
