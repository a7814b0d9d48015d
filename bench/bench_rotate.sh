#!/usr/bin/env bash
# Rotation end to end (load, fuse, R1+R2+R4 (+R3 record), write) against a plain convert of the same
# input to the same output (load + write) measured in the same run; wall time and peak RSS of each.
# usage: bench/bench_rotate.sh MODEL [OUTDIR]   (run from the repository root after ./scripts/build.sh)
set -euo pipefail
model=$1
out=${2:-$(mktemp -d)}
mkdir -p "$out"
rotq=./build/rotq
measure() { # label, command...
  local label=$1; shift
  /usr/bin/time -f "%e %M %U %S" -o "$out/time.txt" "$@" >/dev/null 2>"$out/err.txt" || { cat "$out/err.txt"; exit 1; }
  read -r secs kb usr sys < "$out/time.txt"
  printf "%-28s %8.2f s  (cpu %5.2f s)  peak RSS %8.1f MB   load %s\n" "$label" "$secs" "$(echo "$usr + $sys" | bc -l)" \
    "$(echo "$kb / 1024" | bc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}
echo "$(nproc) cores; $(uptime)"
for run in 1 2 3; do
  rm -rf "$out/conv" "$out/rot"
  measure "convert (baseline) #$run" $rotq convert "$model" "$out/conv" --to hf
  measure "rotate R1+R2+R3+R4 #$run" $rotq rotate "$model" "$out/rot" --to hf --quiet
done
rm -rf "$out/conv" "$out/rot"
