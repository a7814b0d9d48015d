#!/usr/bin/env bash
# Issue 6's whole run, timed end to end: rotq eval --preset w4a4kv4 --w-quant gptq --rotate on a
# model (SmolLM2-135M-Instruct), all of TEXT scored in windows of 2048, GPTQ calibrated on 128×2048
# tokens of CALIB. Three passes dominate: the float baseline (served from the baseline cache when a
# run with the same weights, token ids and windows stored it — the report says so), the calibration
# forward, and the quantized evaluation. A second run with --products float (fake-quantized floats
# through sgemm) is the baseline for the integer products when COMPARE=1.
# usage: bench/bench_eval_full.sh MODEL TEXT CALIB [OUTDIR]   (after ./scripts/build.sh)
set -euo pipefail
model=$1 text=$2 calib=$3
out=${4:-$(mktemp -d)}
mkdir -p "$out"
rotq=${ROTQ:-./build/rotq}
. "$(dirname "$0")/lib.sh"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
run_eval() { measure "$1" $rotq eval "$model" --preset w4a4kv4 --w-quant gptq --rotate --text "$text" --calib "$calib" \
  --json "${@:2}"; }
run_eval eval-int --products int
[ "${COMPARE:-0}" = 1 ] && run_eval eval-float --products float
python3 - "$out" <<'PY'
import json, os, sys
d = sys.argv[1]
for name in ("eval-int", "eval-float"):
    p = f"{d}/{name}.json"
    if not os.path.exists(p):
        continue
    j = json.load(open(p))
    print(f"{name}: {j['products']}")
    print(f"  baseline {j['baseline_perplexity']:.4f} ({'cached, computed ' + j['baseline_computed'] if j['baseline_cached'] else 'computed'}"
          f" in {j['baseline_seconds']:.1f} s); W4A4KV4 GPTQ rotated {j['perplexity']:.4f} over {j['windows']} windows "
          f"({j['scored_tokens']} tokens)")
    print(f"  load {j['load_seconds']:.1f} s, rotate {j['rotate_seconds']:.1f} s, calibration forward {j['calib_seconds']:.1f} s, "
          f"GPTQ {j['gptq_seconds']:.1f} s, quantized eval {j['eval_seconds']:.1f} s, total {j['total_seconds']:.1f} s "
          f"({j['total_seconds'] / 60:.1f} min)")
PY
