#!/usr/bin/env bash
# Installs what rotq builds and tests with: Debian -dev packages (waiting for another apt/dpkg to
# finish), a project-local Python environment in .venv (so Debian's "externally managed" python3
# is never touched), and with --test the Python test oracles in it, llama.cpp's included.
# Idempotent: does nothing when everything is present. Prints nothing on stdout.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkgs=(build-essential cmake pkg-config libopenblas-dev liblapacke-dev libjansson-dev libpcre2-dev libpng-dev libjpeg-dev
      openmpi-bin libopenmpi-dev
      libutf8proc-dev gnuplot-nox python3 python3-venv python3-pip)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done

# apt-get fails at once (exit 100) when another apt/dpkg holds its lock; wait for it instead.
apt_wait() {
  local waited=0 limit=${ROTQ_APT_WAIT:-900} rc
  while true; do
    rc=0; "$@" || rc=$?
    [ "$rc" = 0 ] && return 0
    # 100 is apt's "could not get the lock" (among others); wait only while apt/dpkg really runs.
    if [ "$rc" != 100 ] || [ "$waited" -ge "$limit" ] ||
       ! grep -qsxE 'apt-get|apt|dpkg|unattended-upgr|packagekitd' /proc/[0-9]*/comm; then return "$rc"; fi
    echo "deps: another apt/dpkg holds the package lock; waiting (${waited}s of ${limit}s)" >&2
    sleep 10; waited=$((waited + 10))
  done
}
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  apt_wait $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt_wait $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
fi

# The project's Python: a venv made from Debian's python3 (ROTQ_PYTHON overrides), whatever
# python3 comes first on PATH. Scripts and CTest use .venv/bin/python.
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  base=${ROTQ_PYTHON:-}
  if [ -z "$base" ]; then
    if [ -x /usr/bin/python3 ]; then base=/usr/bin/python3; else base=$(command -v python3); fi
  fi
  echo "deps: creating the project's Python environment .venv from $base" >&2
  rm -rf "$venv"
  "$base" -m venv "$venv" >&2
fi
py="$venv/bin/python"

if [ "${1:-}" = "--test" ]; then
  if ! "$py" - "$root/scripts/requirements-test.txt" <<'PY' 2>/dev/null
import importlib.metadata as md, sys
for line in open(sys.argv[1]):
    req = line.split("#")[0].strip()
    if not req: continue
    name, _, want = req.partition("==")
    have = md.version(name.strip())
    if want and have != want.strip(): sys.exit(1)
PY
  then
    # llama-cpp-python ships only a source distribution; its build (C++, ~6 min on 2 cores)
    # is cached as a wheel in ~/.cache/rotq/wheels so it happens once per machine.
    wheels=${ROTQ_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rotq/wheels}
    mkdir -p "$wheels"
    llama=$(grep -E '^llama-cpp-python==' "$root/scripts/requirements-test.txt" | cut -d' ' -f1)
    if ! ls "$wheels"/llama_cpp_python-"${llama#*==}"-*.whl >/dev/null 2>&1; then
      echo "deps: building $llama once (C++; about 6 minutes on 2 cores), cached in $wheels" >&2
      CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=OFF -DGGML_NATIVE=OFF" \
        CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
        "$py" -m pip wheel -q --no-deps "$llama" -w "$wheels" >&2
    fi
    echo "deps: installing the Python test oracles into .venv" >&2
    "$py" -m pip install -q --find-links "$wheels" -r "$root/scripts/requirements-test.txt" >&2
  fi
fi
