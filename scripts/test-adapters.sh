#!/usr/bin/env bash
# The portability matrix: every kernel's CPU-reference and gradient tests (the kernel modules of
# kernels-tests/, not the model and CLI tests) on each adapter this machine can run, and once
# under the Khronos validation layer. Installs what it needs (as root), prints one result line
# per adapter and exits non-zero if any adapter fails.
#
#   scripts/test-adapters.sh                 # all adapters
#   scripts/test-adapters.sh lavapipe-16 gl  # some of them
#
# Adapters: lavapipe-8 (Mesa's software Vulkan at 256 bits: 8-lane subgroups), lavapipe-16
# (LP_NATIVE_VECTOR_WIDTH=512: 16 lanes; skipped on CPUs without AVX-512), swiftshader (Google's
# software Vulkan from Debian's chromium: 4 lanes, 10 storage buffers per stage), gl (llvmpipe
# through wgpu's GL backend: no subgroups), validation (lavapipe-8 with VK_LAYER_KHRONOS_validation;
# any error message fails it).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh

SWIFTSHADER_ICD=/usr/lib/chromium/vk_swiftshader_icd.json
LAVAPIPE_ICD=$(ls /usr/share/vulkan/icd.d/lvp_icd.*.json 2>/dev/null | head -n 1)

install_packages() {
    local pkgs=()
    command -v dpkg-query >/dev/null 2>&1 || return 0
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || pkgs+=("$p")
    done
    [ ${#pkgs[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "test-adapters: missing packages ${pkgs[*]} (install them as root)" >&2
        return 1
    fi
    echo "test-adapters: installing ${pkgs[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
}

# The kernel tests: everything in kernels-tests/ but the model, training and CLI modules.
SKIP=(--skip cli:: --skip generator:: --skip train:: --skip vae:: --skip vae_blocks:: --skip interp::
      --skip flow:: --skip tune::)

enma_install_system_packages
cargo build --release --tests --quiet || exit 1
# the autotuner's choices of each adapter in a fresh cache unless one is given
if [ -z "${ENMA_CACHE_DIR:-}" ]; then
    export ENMA_CACHE_DIR=$(mktemp -d)
    trap 'rm -rf "$ENMA_CACHE_DIR"' EXIT
fi

declare -a SUMMARY
status=0

# run NAME ENV...: the kernel tests with ENV set; one summary line.
run() {
    local name=$1
    shift
    local log
    log=$(mktemp)
    local t0=$SECONDS
    env "$@" cargo test --release --quiet --test kernels -- "${SKIP[@]}" >"$log" 2>&1
    local rc=$?
    local adapter
    adapter=$(env "$@" ./target/release/enma info 2>/dev/null | sed -n 's/^adapter *//p' | head -n 1)
    local counts
    counts=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i } }
                  END { printf "%d passed, %d failed", p, f }' "$log")
    local verdict=ok
    if [ "$rc" -ne 0 ]; then
        verdict=FAILED
    fi
    if [ "$name" = validation ]; then
        local errors
        errors=$(grep -c -E "Validation Error|VUID-" "$log")
        counts="$counts, $errors validation messages"
        if [ "$errors" -ne 0 ]; then
            verdict=FAILED
            grep -m 5 -E "Validation Error|VUID-" "$log" | cut -c1-400 >&2
        fi
    fi
    if [ "$verdict" != ok ]; then
        status=1
        grep -E "^---- |panicked|error:" "$log" | head -n 20 >&2
    fi
    SUMMARY+=("$(printf '%-12s %-6s %s (%s) in %d s' "$name" "$verdict" "$counts" "${adapter:-no adapter}" $((SECONDS - t0)))")
    rm -f "$log"
}

skip() {
    SUMMARY+=("$(printf '%-12s %-6s %s' "$1" skipped "$2")")
}

wanted=("$@")
[ ${#wanted[@]} -eq 0 ] && wanted=(lavapipe-8 lavapipe-16 swiftshader gl validation)

for a in "${wanted[@]}"; do
    case "$a" in
    lavapipe-8)
        run lavapipe-8 WGPU_BACKEND=vulkan VK_ICD_FILENAMES="$LAVAPIPE_ICD" LP_NATIVE_VECTOR_WIDTH=256
        ;;
    lavapipe-16)
        if grep -q avx512f /proc/cpuinfo; then
            run lavapipe-16 WGPU_BACKEND=vulkan VK_ICD_FILENAMES="$LAVAPIPE_ICD" LP_NATIVE_VECTOR_WIDTH=512
        else
            skip lavapipe-16 "this CPU has no AVX-512"
        fi
        ;;
    swiftshader)
        if install_packages chromium && [ -f "$SWIFTSHADER_ICD" ]; then
            run swiftshader WGPU_BACKEND=vulkan VK_ICD_FILENAMES="$SWIFTSHADER_ICD"
        else
            skip swiftshader "no $SWIFTSHADER_ICD (Debian's chromium package ships it)"
            status=1
        fi
        ;;
    gl)
        if install_packages libegl1 libegl-mesa0 libgl1-mesa-dri; then
            run gl WGPU_BACKEND=gl
        else
            skip gl "no EGL (libegl1, libegl-mesa0)"
            status=1
        fi
        ;;
    validation)
        if install_packages vulkan-validationlayers; then
            run validation WGPU_BACKEND=vulkan VK_ICD_FILENAMES="$LAVAPIPE_ICD" LP_NATIVE_VECTOR_WIDTH=256 \
                VK_INSTANCE_LAYERS=VK_LAYER_KHRONOS_validation
        else
            skip validation "no vulkan-validationlayers"
            status=1
        fi
        ;;
    *)
        echo "test-adapters: unknown adapter '$a' (lavapipe-8, lavapipe-16, swiftshader, gl, validation)" >&2
        exit 2
        ;;
    esac
done

echo "adapter matrix (kernel tests):"
for line in "${SUMMARY[@]}"; do
    echo "  $line"
done
exit "$status"
