#!/usr/bin/env bash
# The whole test suite on a fresh machine: dependencies, default model, Release build + all tests,
# then an ASan+UBSan build running the C unit tests again.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./scripts/deps.sh --test
./scripts/fetch_model.sh >/dev/null || echo "test: default model unavailable; tests that need it will skip" >&2
./scripts/build.sh
(cd build && ctest --output-on-failure -j2 --timeout 900)
if [ "${ROTQ_SKIP_ASAN:-0}" != 1 ]; then
  ROTQ_BUILD_DIR="$root/build-asan" ROTQ_BUILD_TYPE=Debug ./scripts/build.sh -DROTQ_SANITIZE=ON
  (cd build-asan && ASAN_OPTIONS=detect_leaks=0 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j2 -L unit --timeout 900)
fi
