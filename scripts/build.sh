#!/usr/bin/env bash
# Configures and builds rotq into build/ (Release). Extra arguments go to cmake's configure step.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${ROTQ_BUILD_DIR:-$root/build}
cmake -S "$root" -B "$dir" -DCMAKE_BUILD_TYPE=${ROTQ_BUILD_TYPE:-Release} "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)" >&2
