#!/usr/bin/env bash
# The whole test suite on a fresh machine: dependencies, default model, Release build + all tests,
# then an ASan+UBSan build running the C unit tests again, and an MPI build (-DROTQ_MPI=ON: the default build
# needs no MPI) running the multi-process checks with mpirun -np 2. Python runs from the project's .venv
# (made by deps.sh), so Debian's "externally managed" python3 is never pip-installed into.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/deps.sh --test
./scripts/fetch_model.sh >/dev/null || echo "test: default model unavailable; tests that need it will skip" >&2
./scripts/fetch_model.sh gemma3 >/dev/null || echo "test: Gemma 3 270M unavailable; its llama.cpp checks will skip" >&2
./scripts/build.sh
rc=0
(cd build && ctest --output-on-failure -j2 --timeout 900 | tee ctest-console.txt) || rc=$?
./scripts/test_summary.sh build build/ctest-console.txt
[ "$rc" = 0 ] || exit "$rc"
if command -v mpicc >/dev/null && command -v mpirun >/dev/null; then
  cmake -S "$root" -B "$root/build-mpi" -DCMAKE_BUILD_TYPE=Release -DROTQ_MPI=ON >/dev/null
  cmake --build "$root/build-mpi" -j"$(nproc)" --target rotq >&2
  ROTQ_BUILD="$root/build-mpi" .venv/bin/python tests/oracle_mpi.py
else
  echo "test: mpicc/mpirun missing: the multi-process checks are skipped" >&2
fi
if [ "${ROTQ_SKIP_ASAN:-0}" != 1 ]; then
  ROTQ_BUILD_DIR="$root/build-asan" ROTQ_BUILD_TYPE=Debug ./scripts/build.sh -DROTQ_SANITIZE=ON
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2 -L unit --timeout 900)
fi
