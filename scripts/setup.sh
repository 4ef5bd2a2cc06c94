# Sourced by the other scripts: installs what a fresh Debian machine lacks for building
# (Debian's RocksDB, libclang for its bindgen) and testing (Chromium, headless) and picks a
# target dir outside the clone.
# shellcheck shell=bash

need=()
# chromium: the devnet page's test loads it headless.
for pkg in librocksdb-dev libclang-dev clang pkg-config cmake chromium; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    else
        echo "missing packages ${need[*]} and no way to install them (need root or sudo)" >&2
        exit 1
    fi
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed; install the Rust toolchain first" >&2
    exit 1
fi

# Build outputs live outside the clone so fresh clones (and CI) reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sispop-target}"
export ROCKSDB_LIB_DIR=/usr/lib/x86_64-linux-gnu
