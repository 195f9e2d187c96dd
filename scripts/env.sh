# Sourced by the scripts: installs the system packages enma needs when they are missing and it
# can (root or sudo with apt-get), and sets quiet defaults for Mesa's software Vulkan.

enma_install_system_packages() {
    local pkgs=()
    command -v dpkg-query >/dev/null 2>&1 || return 0
    for p in mesa-vulkan-drivers libvulkan1 libhdf5-dev pkg-config; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || pkgs+=("$p")
    done
    [ ${#pkgs[@]} -eq 0 ] && return 0
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo="sudo -n"
        else
            echo "enma: missing system packages: ${pkgs[*]} (install them with apt-get as root)" >&2
            return 0
        fi
    fi
    echo "enma: installing ${pkgs[*]}" >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

# Mesa warns on every process without it.
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    export XDG_RUNTIME_DIR="${TMPDIR:-/tmp}/enma-runtime-$(id -u)"
    mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
fi
