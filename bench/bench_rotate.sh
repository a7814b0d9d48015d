#!/usr/bin/env bash
# Rotation end to end (load, fuse, R1+R2+R4 (+R3 record), write) against a plain convert of the same
# input to the same output (load + write) measured in the same run; wall time and peak RSS of each.
# usage: bench/bench_rotate.sh MODEL [OUTDIR]   (run from the repository root after ./scripts/build.sh)
set -euo pipefail
model=$1
out=${2:-$(mktemp -d)}
mkdir -p "$out"
rotq=./build/rotq
. "$(dirname "$0")/lib.sh"
echo "$(nproc) cores; $(uptime)"
for run in 1 2 3; do
  rm -rf "$out/conv" "$out/rot"
  measure_cpu "convert (baseline) #$run" $rotq convert "$model" "$out/conv" --to hf
  measure_cpu "rotate R1+R2+R3+R4 #$run" $rotq rotate "$model" "$out/rot" --to hf --quiet
done
rm -rf "$out/conv" "$out/rot"
