#!/usr/bin/env bash
# Installs what rotq builds and tests with: Debian -dev packages, then the Python test oracles.
# Idempotent: does nothing when everything is present.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libopenblas-dev liblapacke-dev libjansson-dev libpcre2-dev libutf8proc-dev gnuplot-nox)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ "${1:-}" = "--test" ]; then
  here=$(cd "$(dirname "$0")" && pwd)
  py=${PYTHON:-python3}
  if ! $py - "$here/requirements-test.txt" <<'PY' 2>/dev/null
import importlib, sys
names = {"llama-cpp-python": "llama_cpp"}
for line in open(sys.argv[1]):
    pkg = line.split("#")[0].strip()
    if not pkg: continue
    base = pkg.split("=")[0].split("<")[0].split(">")[0].strip()
    importlib.import_module(names.get(base, base.replace("-", "_")))
PY
  then
    echo "deps: installing Python test oracles" >&2
    $py -m pip install -q -r "$here/requirements-test.txt"
  fi
fi
